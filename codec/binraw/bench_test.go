package binraw_test

import (
	"testing"

	"github.com/subgate/subgate/codec"
	"github.com/subgate/subgate/protocols/chat"
)

// BenchmarkRoundTrip measures the server's hot paths: answering a chat.ping
// (decode the request, encode the result into a reused buffer) and encoding
// a chat.message push, the once-per-encoding cost of a broadcast.
func BenchmarkRoundTrip(b *testing.B) {
	b.Run("binary-raw/ping", func(b *testing.B) {
		frame := []byte{0x00, 0x01, 0x10}
		res := &chat.PingResult{Status: "ok", Timestamp: 1764000000}
		msgs := make([]codec.Message, 0, 1)
		buf := make([]byte, 0, 64)
		b.ReportAllocs()
		b.SetBytes(int64(len(frame)))
		for b.Loop() {
			var err error
			msgs, _, err = c.Decode(msgs[:0], frame)
			if err != nil {
				b.Fatal(err)
			}
			if buf, err = codec.AppendResult(c, buf[:0], msgs[0].ID, res); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("binary-raw/broadcast", func(b *testing.B) {
		msg := &chat.Message{Room: "lobby", From: "alice", Message: "hi all", Offset: 42, TS: 1764000000123}
		buf := make([]byte, 0, 128)
		b.ReportAllocs()
		for b.Loop() {
			var err error
			if buf, err = codec.AppendNotification(c, buf[:0], chat.PushMessage, msg); err != nil {
				b.Fatal(err)
			}
		}
		b.SetBytes(int64(len(buf)))
	})
}
