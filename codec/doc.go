// Package codec is the seam between the wire and the RPC core.
//
// It defines the transport-neutral message model ([Message], [ID], [Error])
// and the small [Codec] interface that every wire format implements. The RPC
// core in package gateway consumes the interface; the formats live in
// sub-packages:
//
//	codec/jsonrpc     JSON-RPC 2.0 (subprotocol "json-rpc", text frames)
//	codec/msgpackrpc  MessagePack-RPC (subprotocol "msgpack", binary frames)
//	codec/binraw      subgate's compact binary framing ("binary-raw", binary frames)
//
// A codec is pure: it turns one WebSocket message payload into messages and
// appends encoded messages to a caller-owned byte slice. It does no I/O and
// knows nothing about WebSocket.
//
// # How a call flows through a codec
//
//	msgs, batch, err := c.Decode(msgs[:0], frame) // frame: one WebSocket message
//	// err != nil: the whole frame is unusable; reply c.AppendError(dst, codec.ID{Kind: codec.IDNull}, err)
//	for _, m := range msgs {
//		var p chat.SendParams
//		err := c.Unmarshal(m.Params, &p) // typed params, decoded with the request's codec
//		...
//		dst, err = c.AppendResult(dst, m.ID, &result)
//	}
//
// # Aliasing
//
// Decoded messages alias the frame: [Message.Params], [ID] raw bytes and
// [Error.Data] point into the bytes passed to Decode. They are valid until the
// caller reuses the frame; copy what must outlive it ([ID.Clone]).
//
// # Typed bodies
//
// Params, results and push payloads are Go structs with json tags. The JSON
// and MessagePack codecs encode them by those tags; binary-raw needs the byte
// layout of each type, so those types implement [encoding.BinaryAppender] and
// [encoding.BinaryUnmarshaler] (see protocols/chat).
package codec
