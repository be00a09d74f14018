package msgpackrpc

import (
	"testing"

	"github.com/subgate/subgate/codec"
	"github.com/subgate/subgate/protocols/chat"
)

// pingFrame is [0, 1, "chat.ping", []].
var pingFrame = []byte("\x94\x00\x01\xa9chat.ping\x90")

// BenchmarkRoundTrip measures the codec's share of a call: decode a
// chat.ping request, encode its reply into a reused buffer. The handler's
// result value is the caller's and is made once, outside the loop.
func BenchmarkRoundTrip(b *testing.B) {
	c := New(chat.Table)
	b.Run("msgpack/ping", func(b *testing.B) {
		res := &chat.PingResult{Status: "ok", Timestamp: 1764000000}
		var msgs []codec.Message
		buf := make([]byte, 0, 256)
		b.ReportAllocs()
		for b.Loop() {
			var err error
			msgs, _, err = c.Decode(msgs[:0], pingFrame)
			if err != nil || msgs[0].Method != chat.MethodPing {
				b.Fatal(err)
			}
			if buf, err = codec.AppendResult(c, buf[:0], msgs[0].ID, res); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("msgpack/broadcast", func(b *testing.B) {
		msg := &chat.Message{From: "alice", Message: "hello, world", TS: 1764000000123}
		buf := make([]byte, 0, 256)
		b.ReportAllocs()
		for b.Loop() {
			var err error
			if buf, err = codec.AppendNotification(c, buf[:0], chat.PushMessage, msg); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkUnmarshal measures decoding typed params, named and positional.
func BenchmarkUnmarshal(b *testing.B) {
	c := New(chat.Table)
	for _, bc := range []struct {
		name string
		body []byte
	}{
		{"send/named", []byte("\x91\x82\xa4room\xa5lobby\xa7message\xa6hi all")},
		{"send/positional", []byte("\x92\xa5lobby\xa6hi all")},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				var p chat.SendParams
				if err := c.Unmarshal(bc.body, &p); err != nil || p.Room != "lobby" {
					b.Fatal(err)
				}
			}
		})
	}
}
