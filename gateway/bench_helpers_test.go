package gateway

import (
	"context"
	"math"
	"testing"

	"github.com/subgate/subgate/client"
	"github.com/subgate/subgate/codec"
	"github.com/subgate/subgate/protocols"
)

var allCodecs = func() []codec.Codec {
	out := make([]codec.Codec, len(protocols.All))
	for i, p := range protocols.All {
		out[i] = p.Codec
	}
	return out
}()

// countingPeer is a hub peer that encodes what it gets, as a connection
// would, and counts it.
type countingPeer struct {
	id    string
	codec codec.Codec
	bytes int
}

func (p *countingPeer) ClientID() string { return p.id }

func (p *countingPeer) Deliver(push *Push) bool {
	b, err := push.Bytes(p.codec)
	p.bytes += len(b)
	return err == nil
}

func startServerB(b *testing.B) (*Server, string) {
	// Unlimited calls: a benchmark calls as fast as it can.
	return startServerTB(b, Config{RateLimit: math.Inf(1)})
}

func dialB(b *testing.B, addr, id, proto string) *client.Client {
	c, err := client.Dial(context.Background(), "ws://"+addr+"/ws/"+id, client.Options{Protocol: proto})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	return c
}
