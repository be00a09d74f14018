package chat

import (
	"bytes"
	"testing"

	"github.com/vmihailenco/msgpack/v5"
)

// plainMessage has Message's fields and tags but not its EncodeMsgpack, so
// the library encodes it by reflection.
type plainMessage struct {
	Room    string `json:"room,omitempty"`
	From    string `json:"from"`
	To      string `json:"to,omitempty"`
	Message string `json:"message"`
	Offset  uint64 `json:"offset,omitempty"`
	TS      int64  `json:"ts"`
}

func encodeJSONTags(t *testing.T, v any) []byte {
	t.Helper()
	var buf bytes.Buffer
	enc := msgpack.NewEncoder(&buf)
	enc.SetCustomStructTag("json")
	enc.UseCompactInts(true)
	if err := enc.Encode(v); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestMessageEncodeMsgpack checks the hand-written encoding against the
// reflection path for every combination of optional fields.
func TestMessageEncodeMsgpack(t *testing.T) {
	for mask := range 8 {
		for _, ts := range []int64{0, 1, -1, 1764000000123} {
			m := Message{From: "alice", Message: "hi", TS: ts}
			if mask&1 != 0 {
				m.Room = "lobby"
			}
			if mask&2 != 0 {
				m.To = "bob"
			}
			if mask&4 != 0 {
				m.Offset = 70000
			}
			got := encodeJSONTags(t, &m)
			want := encodeJSONTags(t, plainMessage(m))
			if !bytes.Equal(got, want) {
				t.Errorf("%+v:\n got % x\nwant % x", m, got, want)
			}
		}
	}
}
