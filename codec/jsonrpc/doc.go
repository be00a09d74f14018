// Package jsonrpc is the json-rpc subprotocol: JSON-RPC 2.0 over WebSocket
// text frames, complete with batches, notifications in both directions and
// ids echoed byte for byte.
//
// Reading a message never goes through map[string]any: the frame is
// validated once (encoding/json's scanner), then a small walker finds the
// spans of the envelope members, which must be spelled exactly
// ("JSONRPC" is not "jsonrpc"). Params stay as raw JSON until the handler
// asks for them with Unmarshal, which decodes by-name params (an object) or
// by-position params (an array, in the struct's field order) and refuses
// keys that do not name a field exactly.
//
// An object with "result" or "error" and no "method" is a Response object:
// it decodes to KindResult or KindError, or to KindInvalidReply when it is
// malformed (a string error, both members, a bad id, "jsonrpc" not "2.0",
// duplicate or escaped member names), never to KindInvalid, since a
// Response is never answered.
//
//	c := jsonrpc.New(chat.Table)
//	msgs, _, err := c.Decode(nil, []byte(`{"jsonrpc":"2.0","method":"chat.ping","id":7}`))
//	out, _ := codec.AppendResult(c, nil, msgs[0].ID, &chat.PingResult{Status: "ok"})
//	// out: {"jsonrpc":"2.0","result":{"status":"ok","timestamp":0},"id":7}
//
// The normative description is protocols/json-rpc.md.
package jsonrpc
