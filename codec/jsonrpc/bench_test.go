package jsonrpc

import (
	"testing"

	"github.com/subgate/subgate/codec"
	"github.com/subgate/subgate/protocols/chat"
)

// BenchmarkRoundTrip measures the codec's share of a call: decode a
// chat.ping request, encode its reply into a reused buffer. The handler's
// result value is the caller's and is made once, outside the loop.
func BenchmarkRoundTrip(b *testing.B) {
	c := New(chat.Table)
	b.Run("json-rpc/ping", func(b *testing.B) {
		frame := []byte(`{"jsonrpc":"2.0","method":"chat.ping","id":1}`)
		res := &chat.PingResult{Status: "ok", Timestamp: 1764000000}
		var msgs []codec.Message
		buf := make([]byte, 0, 256)
		b.ReportAllocs()
		for b.Loop() {
			var err error
			msgs, _, err = c.Decode(msgs[:0], frame)
			if err != nil || msgs[0].Method != chat.MethodPing {
				b.Fatal(err)
			}
			if buf, err = codec.AppendResult(c, buf[:0], msgs[0].ID, res); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("json-rpc/broadcast", func(b *testing.B) {
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
