// Package protocols is the registry of subgate's subprotocols and the home
// of their specifications:
//
//	json-rpc.md    JSON-RPC 2.0 (text frames)
//	msgpack.md     MessagePack-RPC (binary frames)
//	binary-raw.md  subgate's compact binary framing (binary frames)
//
// Each [Protocol] couples a name offered in Sec-WebSocket-Protocol with the
// WebSocket frame type it uses and its codec. [Negotiate] picks one from a
// client's offer: the first offered name that the server has enabled.
//
//	p, ok := protocols.Negotiate("foo, msgpack, json-rpc", protocols.All)
//	// p.Name == "msgpack", ok == true
//
// Sub-package chat holds the chat service's wire contract.
package protocols
