package chat

import "github.com/vmihailenco/msgpack/v5"

// EncodeMsgpack writes the chat.message push as the map of
// protocols/msgpack.md, keys in declaration order and empty optional keys
// left out, exactly what the json-tag reflection path writes. It exists
// because this push is encoded for every fan-out and the library's
// omitempty check boxes each optional field (4 allocations per push);
// written out, it allocates nothing. The golden vectors and
// TestMessageEncodeMsgpack in codec/msgpackrpc hold it to the reflection
// path's bytes.
func (m *Message) EncodeMsgpack(enc *msgpack.Encoder) error {
	n := 3 // from, message, ts
	if m.Room != "" {
		n++
	}
	if m.To != "" {
		n++
	}
	if m.Offset != 0 {
		n++
	}
	if m.Epoch != "" {
		n++
	}
	if err := enc.EncodeMapLen(n); err != nil {
		return err
	}
	if m.Room != "" {
		if err := encodeKV(enc, "room", m.Room); err != nil {
			return err
		}
	}
	if err := encodeKV(enc, "from", m.From); err != nil {
		return err
	}
	if m.To != "" {
		if err := encodeKV(enc, "to", m.To); err != nil {
			return err
		}
	}
	if err := encodeKV(enc, "message", m.Message); err != nil {
		return err
	}
	if m.Offset != 0 {
		if err := enc.EncodeString("offset"); err != nil {
			return err
		}
		if err := enc.EncodeUint(m.Offset); err != nil {
			return err
		}
	}
	if m.Epoch != "" {
		if err := encodeKV(enc, "epoch", m.Epoch); err != nil {
			return err
		}
	}
	if err := enc.EncodeString("ts"); err != nil {
		return err
	}
	return enc.EncodeInt(m.TS)
}

func encodeKV(enc *msgpack.Encoder, k, v string) error {
	if err := enc.EncodeString(k); err != nil {
		return err
	}
	return enc.EncodeString(v)
}
