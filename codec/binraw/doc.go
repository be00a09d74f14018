// Package binraw implements binary-raw, subgate's compact binary encoding
// (subprotocol "binary-raw", binary WebSocket frames). The normative
// specification is protocols/binary-raw.md; this package is its envelope
// half, and the payload layouts live with the types in protocols/chat.
//
// A frame holds one message or one batch. Byte 0 is a tag (kind in bits
// 0-2, "method by name" in bit 3, "null id" in bit 4, bits 5-7 reserved and
// zero); then come uvarints, and the payload runs to the end of the frame.
// A chat.ping request with id 1 is three bytes:
//
//	00 01 10   tag (request), id 1, method 0x10 (chat.ping), empty payload
//
//	c := binraw.New(chat.Table)
//	msgs, _, err := c.Decode(nil, []byte{0x00, 0x01, 0x10})
//	// msgs[0]: KindRequest, ID 1, Method "chat.ping", empty Body
//	out, err := codec.AppendResult(c, nil, msgs[0].ID, &chat.PingResult{Status: "ok", Timestamp: 1764000000})
//	// out: 02 01 02 6f 6b 80 84 a4 92 0d
//
// # Mapping to the message model
//
//   - Ids are uvarints 0..2^63-1, decoded as IDNumber without Raw. String
//     ids cannot be encoded; IDNull exists only on errors (the null-id flag),
//     and an error with IDNone is written with a null id too.
//   - Methods travel as numeric ids from the codec's [codec.MethodTable]
//     when the name is in it, by name otherwise. Decoding interns the names
//     of the table, so it does not allocate; an id missing from the table
//     decodes as the name "#<id>" (e.g. "#127"), which no method has, so
//     the core answers -32601 Method not found with the id echoed.
//   - Body is the payload and aliases the frame. Error messages decode into
//     [codec.Error], with Data the UTF-8 bytes after the message (empty:
//     absent).
//
// # Errors
//
// A frame that is not binary-raw (bad tag, reserved bits, truncated or
// non-minimal varints, ids of 2^63 and more, lengths past the end, invalid
// UTF-8 in a name or an error) is a [codec.ParseError]; an empty batch or a
// batch of more than [MaxBatch] messages is a [codec.InvalidRequest]. Inside
// a batch, an element that fails to decode (a nested batch, say) comes back
// as a KindInvalid message carrying its error, and the others decode
// normally. A message whose kind bits say result or error is never refused,
// whatever its other bits and bytes: a malformed one is a KindInvalidReply
// message carrying its parse error, which the server drops unanswered.
//
// # Typed bodies
//
// Unmarshal needs an [encoding.BinaryUnmarshaler] (else -32603) and wraps
// its error as -32602 Invalid params. Unlike JSON, binary-raw cannot tell
// "no params" from "empty params": an empty body is passed to
// UnmarshalBinary too, which accepts it only for the empty layouts
// (chat.PingParams, chat.DiscoverParams). Append needs an
// [encoding.BinaryAppender] body, or nil for an empty payload; [Raw] passes
// a payload through verbatim.
package binraw
