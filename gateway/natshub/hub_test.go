package natshub_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/subgate/subgate/gateway"
	"github.com/subgate/subgate/gateway/hubtest"
	"github.com/subgate/subgate/gateway/natshub"
	"github.com/subgate/subgate/internal/natstest"
	"github.com/subgate/subgate/protocols/chat"
)

var prefixes atomic.Int64

// newNode starts a hub on ns under prefix, closed when the test ends.
func newNode(t testing.TB, ns *natstest.Server, prefix, name string) *natshub.Hub {
	t.Helper()
	h, err := natshub.New(context.Background(), natshub.Options{
		URL: ns.URL(), Prefix: prefix, Name: name,
		Limits: gateway.HubLimits{MaxRoomsPerClient: 3},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	return h
}

func uniquePrefix() string { return fmt.Sprintf("t%d", prefixes.Add(1)) }

// One node keeps the contract of every hub.
func TestContractOneNode(t *testing.T) {
	ns := natstest.Start(t)
	hubtest.Run(t, func(t *testing.T) gateway.Hub { return newNode(t, ns, uniquePrefix(), "a") })
}

// Two nodes keep it too, as one hub: each client's connections alternate
// between the nodes, and every call goes through a node that holds one
// of the caller's connections, as a load balancer would send it.
func TestContractTwoNodes(t *testing.T) {
	ns := natstest.Start(t)
	hubtest.Run(t, func(t *testing.T) gateway.Hub {
		p := uniquePrefix()
		return &pair{nodes: [2]*natshub.Hub{newNode(t, ns, p, "a"), newNode(t, ns, p, "b")}, at: map[gateway.Peer]int{}, home: map[string]int{}}
	})
}

type pair struct {
	nodes [2]*natshub.Hub
	mu    sync.Mutex
	n     int
	at    map[gateway.Peer]int // the node a connection is attached to
	home  map[string]int       // the node of a client's first connection
}

func (p *pair) node(client string) gateway.Hub {
	p.mu.Lock()
	defer p.mu.Unlock()
	i, ok := p.home[client]
	if !ok {
		p.n++
		i = p.n % 2
	}
	return p.nodes[i]
}

// other is the node a call without a caller goes to: the two in turn.
func (p *pair) other() gateway.Hub {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.n++
	return p.nodes[p.n%2]
}

func (p *pair) Attach(ctx context.Context, peer gateway.Peer) error {
	p.mu.Lock()
	p.n++
	i := p.n % 2
	p.at[peer] = i
	if _, ok := p.home[peer.ClientID()]; !ok {
		p.home[peer.ClientID()] = i
	}
	p.mu.Unlock()
	return p.nodes[i].Attach(ctx, peer)
}

func (p *pair) Detach(ctx context.Context, peer gateway.Peer) error {
	p.mu.Lock()
	i := p.at[peer]
	delete(p.at, peer)
	p.mu.Unlock()
	return p.nodes[i].Detach(ctx, peer)
}

func (p *pair) Join(ctx context.Context, room, client string) ([]string, gateway.Position, error) {
	return p.node(client).Join(ctx, room, client)
}
func (p *pair) Leave(ctx context.Context, room, client string) error {
	return p.node(client).Leave(ctx, room, client)
}
func (p *pair) Members(ctx context.Context, room string) ([]string, error) {
	return p.other().Members(ctx, room)
}
func (p *pair) Send(ctx context.Context, m chat.Message) (gateway.Position, error) {
	return p.node(m.From).Send(ctx, m)
}
func (p *pair) History(ctx context.Context, room string, since, limit uint64) ([]chat.HistoryEntry, gateway.Position, error) {
	return p.other().History(ctx, room, since, limit)
}
func (p *pair) Broadcast(ctx context.Context, push *gateway.Push) (int, error) {
	return p.other().Broadcast(ctx, push)
}
func (p *pair) Direct(ctx context.Context, client string, push *gateway.Push) (int, error) {
	return p.other().Direct(ctx, client, push)
}
