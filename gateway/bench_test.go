package gateway

import (
	"context"
	"fmt"
	"testing"

	"github.com/subgate/subgate/protocols/chat"
)

// BenchmarkCall measures one chat.ping round trip over loopback through the
// whole stack (Go client, WebSocket, codec, router, writer), per encoding.
// Client and server share the process, so allocs/op counts both sides.
func BenchmarkCall(b *testing.B) {
	for _, proto := range allProtos {
		b.Run(proto, func(b *testing.B) {
			_, addr := startServerB(b)
			c := dialB(b, addr, "bench", proto)
			ctx := context.Background()
			var res chat.PingResult
			b.ReportAllocs()
			for b.Loop() {
				if err := c.Call(ctx, chat.MethodPing, &chat.PingParams{}, &res); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkBroadcast measures chat.broadcast to n subscribers per encoding
// mix: the push is encoded once per encoding and queued to every connection.
func BenchmarkBroadcast(b *testing.B) {
	for _, n := range []int{1, 100, 1000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			hub := NewMemoryHub(HubLimits{})
			peers := make([]*countingPeer, n)
			for i := range peers {
				peers[i] = &countingPeer{id: fmt.Sprint("p", i), codec: allCodecs[i%len(allCodecs)]}
				hub.Attach(bg, peers[i])
			}
			msg := &chat.Message{From: "alice", Message: "hello, world", TS: 1764000000123}
			b.ReportAllocs()
			for b.Loop() {
				if got, err := hub.Broadcast(bg, NewPush(chat.PushMessage, msg)); err != nil || got != n {
					b.Fatalf("delivered %d", got)
				}
			}
		})
	}
}
