// Package msgpackrpc is the msgpack subprotocol: MessagePack-RPC over
// WebSocket binary frames, one message per frame, with notifications in
// both directions and msgids echoed byte for byte.
//
//	[0, msgid, method, params]   request
//	[1, msgid, error, result]    response (error is nil or {code, message, data?})
//	[2, method, params]          notification (server pushes included)
//
// # Hostile input
//
// Decoding untrusted MessagePack with a general-purpose decoder can kill
// the process: vmihailenco/msgpack v5.4.1 decodes dd ff ff ff ff (an array
// of 2^32-1 items) into an interface by allocating all 64 GiB up front, a
// fatal error that recover cannot catch, and a few megabytes of 0x91 nest
// deeply enough to overflow the stack. So every frame, and every body given
// to Unmarshal, first passes a bounds pre-scan (scan.go): exactly one value,
// every declared length and count within the bytes left, nesting at most
// [MaxDepth], no extension types, no 0xc1. A frame failing it is a parse
// error (-32700); a well-formed frame that is not a valid message is an
// invalid request (-32600). The exception is a frame that starts like a
// response (an array whose first element is 1): whatever follows, it is a
// message, KindInvalidReply when malformed, which the server drops instead
// of answering, so that a peer that answers errors (pynvim sends
// [1, 0, "traceback", nil] for a nil-msgid error) cannot loop with it.
//
// # Decoding
//
// The envelope is read by hand from the scanned bytes: decoding a request
// allocates nothing (known method names are interned through the
// [codec.MethodTable]), and Message.Body and ID.Raw alias the frame. Params
// and results are decoded by Unmarshal with a small reflection walker that
// names fields by their json tags; it does not use the library's decoder,
// which would prefer the chat types' encoding.BinaryUnmarshaler (the
// binary-raw layout) to their fields. Named params must use field names
// exactly and may not carry unknown keys (-32602, as in json-rpc); results
// may, so clients survive new result fields.
//
// # Encoding
//
// Envelopes (array headers, msgids, the method, the error map) are appended
// by hand in their smallest forms; params and results go through a pooled
// msgpack.Encoder (json tags, compact ints, sorted map keys) that appends
// straight into the caller's buffer, so steady-state encoding allocates
// nothing of its own.
//
//	c := msgpackrpc.New(chat.Table)
//	msgs, _, err := c.Decode(nil, frame) // frame: 94 00 01 a9 "chat.ping" 90
//	out, err := codec.AppendResult(c, nil, msgs[0].ID, &chat.PingResult{Status: "ok"})
//	// out: [1, 1, nil, {"status": "ok", "timestamp": 0}]
//
// The normative description is protocols/msgpack.md.
package msgpackrpc
