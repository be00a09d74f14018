package bench

import (
	"context"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/subgate/subgate/gateway"
	"github.com/subgate/subgate/gateway/natshub"
	"github.com/subgate/subgate/internal/natstest"
)

// clusterNode is a gateway of a NATS cluster that notes which client ids
// and encodings opened a WebSocket on it.
type clusterNode struct {
	url  string
	mu   sync.Mutex
	seen map[string]string // client id -> subprotocol offered
}

func (n *clusterNode) dialed() map[string]string {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := make(map[string]string, len(n.seen))
	for id, p := range n.seen {
		out[id] = p
	}
	return out
}

// startClusterNode runs a gateway whose hub is a natshub node on ns.
func startClusterNode(t *testing.T, ns *natstest.Server, name string) *clusterNode {
	t.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	h, err := natshub.New(context.Background(), natshub.Options{URL: ns.URL(), Name: name, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := gateway.New(gateway.Config{Hub: h, RateLimit: math.Inf(1), Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	n := &clusterNode{seen: map[string]string{}}
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if id, ok := strings.CutPrefix(r.URL.Path, "/ws/"); ok {
			n.mu.Lock()
			n.seen[id] = r.Header.Get("Sec-WebSocket-Protocol")
			n.mu.Unlock()
		}
		srv.ServeHTTP(w, r)
	}))
	t.Cleanup(func() {
		hs.Close()
		srv.Close()
		h.Close()
	})
	n.url = "ws://" + hs.Listener.Addr().String()
	return n
}

// TestClusterSpread loads two gateways joined through NATS with one run:
// connections alternate between the nodes, one of each encoding at a
// time, and every delivery made on either node is counted (nothing lost,
// as many deliveries as messages times subscribers).
func TestClusterSpread(t *testing.T) {
	ns := natstest.Start(t)
	nodes := []*clusterNode{startClusterNode(t, ns, "a"), startClusterNode(t, ns, "b")}
	urls := nodes[0].url + "," + nodes[1].url + "/"
	for _, c := range []Config{
		{Scenario: "broadcast", Subs: 12, Senders: 2},
		{Scenario: "room", Rooms: 2, Subs: 6},
	} {
		t.Run(c.Scenario, func(t *testing.T) {
			for _, n := range nodes {
				n.mu.Lock()
				clear(n.seen)
				n.mu.Unlock()
			}
			c.URL, c.Proto = urls, "all"
			res := runOK(t, c)
			if res.Expected != res.Sent*int64(c.Subs) || res.Conns != 12 {
				t.Errorf("%d conns, expected %d deliveries for %d messages to %d subscribers", res.Conns, res.Expected, res.Sent, c.Subs)
			}
			protos := []string{"json-rpc", "msgpack", "binary-raw"}
			for i, n := range nodes {
				got := n.dialed()
				want := map[string]string{}
				for g := range 12 {
					if g/3%2 == i {
						want[strconv.Itoa(idBase+g)] = protos[g%3]
					}
				}
				if len(got) != len(want) {
					t.Errorf("node %d: dialed by %v, want %v", i, got, want)
				}
				for id, p := range want {
					if got[id] != p {
						t.Errorf("node %d: client %s offered %q, want %q", i, id, got[id], p)
					}
				}
			}
		})
	}
}

// TestLostAcrossNodes loads two naive servers that are not joined: a
// broadcast reaches the sender's node only, so the subscribers of the
// other node lose exactly every message, and the run says so.
func TestLostAcrossNodes(t *testing.T) {
	defer func(d time.Duration) { drainTimeout = d }(drainTimeout)
	drainTimeout = 200 * time.Millisecond
	a, b := startPeer(t, false, noStall), startPeer(t, false, noStall)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	res, err := Run(ctx, short(Config{URL: a.url() + "," + b.url(), Target: "naive", Scenario: "broadcast", Subs: 6}))
	if err != nil {
		t.Fatal(err)
	}
	a.check(t)
	b.check(t)
	// Subscribers 0, 2, 4 (the sender's) are on a; 1, 3, 5 on b.
	if res.Sent == 0 || res.Expected != 6*res.Sent || res.Ops != 3*res.Sent || res.Lost != 3*res.Sent || res.Errors != res.Lost {
		t.Errorf("sent %d, expected %d, delivered %d, lost %d, errors %d; want 6x, 3x, 3x, 3x sent",
			res.Sent, res.Expected, res.Ops, res.Lost, res.Errors)
	}
}

// TestNodeSpread checks the assignment itself: over 5 nodes and three
// encodings, each node gets as many connections of each encoding.
func TestNodeSpread(t *testing.T) {
	c := Config{URL: "ws://127.0.0.1:1,ws://127.0.0.1:2,ws://127.0.0.1:3,ws://127.0.0.1:4,ws://127.0.0.1:5", Proto: "all"}
	if _, err := Check(c); err != nil {
		t.Fatal(err)
	}
	c.fill()
	var count [5][3]int
	for g := range 150 {
		count[c.node(g)][g%3]++
	}
	for n := range count {
		for p := range count[n] {
			if count[n][p] != 10 {
				t.Fatalf("connections per node and encoding: %v, want 10 each", count)
			}
		}
	}
}
