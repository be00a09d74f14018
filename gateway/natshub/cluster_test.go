package natshub_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/subgate/subgate/client"
	"github.com/subgate/subgate/codec"
	"github.com/subgate/subgate/gateway"
	"github.com/subgate/subgate/gateway/natshub"
	"github.com/subgate/subgate/internal/natstest"
	"github.com/subgate/subgate/internal/testutil"
	"github.com/subgate/subgate/protocols/chat"
)

// node is one gateway of a test cluster.
type node struct {
	hub *natshub.Hub
	srv *gateway.Server
	hs  *httptest.Server
	log *testutil.SyncBuffer
}

type clusterOpts struct {
	limits      gateway.HubLimits
	presenceTTL time.Duration
}

// startCluster starts n gateways on ns, sharing a prefix of their own.
func startCluster(t *testing.T, ns *natstest.Server, n int, o clusterOpts) []*node {
	t.Helper()
	prefix := uniquePrefix()
	nodes := make([]*node, n)
	for i := range nodes {
		nodes[i] = startNode(t, ns, prefix, fmt.Sprintf("node%d", i), o)
	}
	return nodes
}

func startNode(t *testing.T, ns *natstest.Server, prefix, name string, o clusterOpts) *node {
	t.Helper()
	buf := &testutil.SyncBuffer{}
	log := slog.New(slog.NewTextHandler(buf, nil))
	h, err := natshub.New(context.Background(), natshub.Options{
		URL: ns.URL(), Prefix: prefix, Name: name, Limits: o.limits, PresenceTTL: o.presenceTTL, Logger: log,
	})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := gateway.New(gateway.Config{Hub: h, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	n := &node{hub: h, srv: srv, hs: httptest.NewServer(srv), log: buf}
	t.Cleanup(n.stop)
	return n
}

// stop shuts the node down as SIGTERM does: its clients leave first.
func (n *node) stop() {
	n.hs.Close()
	n.srv.Close()
	n.hub.Close()
}

// crash kills the node: it says nothing to the cluster, its connections
// are cut.
func (n *node) crash() {
	n.hub.Crash()
	n.hs.CloseClientConnections()
	n.srv.Close()
	n.hs.Close()
}

func (n *node) url(id string) string {
	return "ws" + strings.TrimPrefix(n.hs.URL, "http") + "/ws/" + id
}

func dial(t *testing.T, n *node, id, protocol string) *client.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, n.url(id), client.Options{Protocol: protocol, PushBuffer: 4096})
	if err != nil {
		t.Fatalf("dial %s as %s: %v", n.hs.URL, id, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func call(t *testing.T, c *client.Client, method string, params, result any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Call(ctx, method, params, result); err != nil {
		t.Fatalf("%s %s: %v", c.Protocol(), method, err)
	}
}

func callCode(t *testing.T, c *client.Client, method string, params any) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := c.Call(ctx, method, params, nil)
	var ce *codec.Error
	if !errors.As(err, &ce) {
		t.Fatalf("%s %s: want an error reply, got %v", c.Protocol(), method, err)
	}
	return int(ce.Code)
}

// next returns the client's next push of method, skipping others.
func next[T any](t *testing.T, c *client.Client, method string) *T {
	t.Helper()
	return testutil.WaitPush[T](t, c, method)
}

var encodings = []string{"json-rpc", "msgpack", "binary-raw"}

// Three nodes, a client of a different encoding on each: every chat method
// works across them.
func TestClusterChatAcrossNodes(t *testing.T) {
	ns := natstest.Start(t)
	nodes := startCluster(t, ns, 3, clusterOpts{})
	ids := []string{"alice", "bob", "carol"}
	cs := make([]*client.Client, 3)
	for i := range cs {
		cs[i] = dial(t, nodes[i], ids[i], encodings[i])
	}
	for i, c := range cs {
		var jr chat.JoinResult
		call(t, c, chat.MethodJoin, &chat.JoinParams{Room: "lobby"}, &jr)
		if want := ids[:i+1]; !slices.Equal(jr.Members, want) {
			t.Fatalf("%s joined: members %v, want %v", ids[i], jr.Members, want)
		}
		for _, other := range cs[:i] {
			if p := next[chat.Presence](t, other, chat.PushPresence); p.ClientID != ids[i] || p.Event != chat.EventJoin {
				t.Fatalf("presence %+v, want %s join", p, ids[i])
			}
		}
	}
	for i, c := range cs {
		var mr chat.MembersResult
		call(t, c, chat.MethodMembers, &chat.MembersParams{Room: "lobby"}, &mr)
		if !slices.Equal(mr.Members, ids) {
			t.Fatalf("members seen from node%d: %v", i, mr.Members)
		}
	}

	// Each sends once; everyone gets every message with the same offset and
	// epoch, in offset order.
	var epoch string
	for i, c := range cs {
		var sr chat.SendResult
		call(t, c, chat.MethodSend, &chat.SendParams{Room: "lobby", Message: "hi from " + ids[i]}, &sr)
		if sr.Offset != uint64(i+1) || sr.Epoch == "" || (epoch != "" && sr.Epoch != epoch) {
			t.Fatalf("send %d: %+v (epoch so far %q)", i, sr, epoch)
		}
		epoch = sr.Epoch
		for j, r := range cs {
			m := next[chat.Message](t, r, chat.PushMessage)
			if m.Offset != sr.Offset || m.Epoch != epoch || m.From != ids[i] || m.Message != "hi from "+ids[i] {
				t.Fatalf("%s got %+v, want offset %d from %s", ids[j], m, sr.Offset, ids[i])
			}
		}
	}
	var hr chat.HistoryResult
	call(t, cs[2], chat.MethodHistory, &chat.HistoryParams{Room: "lobby", Since: 1, Epoch: epoch}, &hr)
	if len(hr.Messages) != 2 || hr.Messages[0].Offset != 2 || hr.Messages[1].From != "carol" || !hr.Recovered || hr.Epoch != epoch {
		t.Fatalf("history since 1: %+v", hr)
	}

	// Broadcast counts every connection on every node.
	var br chat.BroadcastResult
	call(t, cs[1], chat.MethodBroadcast, &chat.BroadcastParams{Message: "to all"}, &br)
	if br.Delivered != 3 {
		t.Fatalf("broadcast delivered %d, want 3", br.Delivered)
	}
	for _, c := range cs {
		if m := next[chat.Message](t, c, chat.PushMessage); m.Message != "to all" || m.From != "bob" {
			t.Fatalf("broadcast push %+v", m)
		}
	}
	// A direct message crosses nodes; one to nobody is -32002.
	var dr chat.DirectResult
	call(t, cs[0], chat.MethodDirect, &chat.DirectParams{To: "carol", Message: "psst"}, &dr)
	if dr.Delivered != 1 {
		t.Fatalf("direct delivered %d", dr.Delivered)
	}
	if m := next[chat.Message](t, cs[2], chat.PushMessage); m.To != "carol" || m.From != "alice" || m.Message != "psst" {
		t.Fatalf("direct push %+v", m)
	}
	if code := callCode(t, cs[0], chat.MethodDirect, &chat.DirectParams{To: "nobody", Message: "hello?"}); code != chat.CodeUnknownClient {
		t.Fatalf("direct to nobody: code %d", code)
	}
	// Leaving is seen on the other nodes; a non-member cannot send.
	call(t, cs[1], chat.MethodLeave, &chat.LeaveParams{Room: "lobby"}, nil)
	for _, i := range []int{0, 2} {
		if p := next[chat.Presence](t, cs[i], chat.PushPresence); p.ClientID != "bob" || p.Event != chat.EventLeave {
			t.Fatalf("presence %+v, want bob leave", p)
		}
	}
	if code := callCode(t, cs[1], chat.MethodSend, &chat.SendParams{Room: "lobby", Message: "still here?"}); code != chat.CodeNotMember {
		t.Fatalf("send after leave: code %d", code)
	}
	var mr chat.MembersResult
	call(t, cs[0], chat.MethodMembers, &chat.MembersParams{Room: "lobby"}, &mr)
	if !slices.Equal(mr.Members, []string{"alice", "carol"}) {
		t.Fatalf("members after bob left: %v", mr.Members)
	}
}

// A node dies while a room streams: its client reconnects to another node
// and catches up by offset, and the messages it assembles are every
// message once, in order.
func TestClusterNodeDiesMidStream(t *testing.T) {
	ns := natstest.Start(t)
	nodes := startCluster(t, ns, 2, clusterOpts{})
	const total = 60
	sender := dial(t, nodes[0], "sender", "msgpack")
	reader := dial(t, nodes[1], "reader", "binary-raw")
	call(t, sender, chat.MethodJoin, &chat.JoinParams{Room: "stream"}, nil)
	call(t, reader, chat.MethodJoin, &chat.JoinParams{Room: "stream"}, nil)

	sent, crashed := make(chan error, 1), make(chan struct{})
	go func() {
		for i := 1; i <= total; i++ {
			if i == total/2+1 {
				<-crashed // the second half is sent while the reader is away
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			err := sender.Call(ctx, chat.MethodSend, &chat.SendParams{Room: "stream", Message: fmt.Sprint(i)}, nil)
			cancel()
			if err != nil {
				sent <- err
				return
			}
		}
		sent <- nil
	}()

	var got []uint64
	var epoch string
	take := func(m *chat.Message) {
		if n := len(got); n > 0 && m.Offset <= got[n-1] {
			return // the reconnect recipe: what history already gave is dropped
		}
		if m.Message != fmt.Sprint(m.Offset) {
			t.Fatalf("offset %d carries %q", m.Offset, m.Message)
		}
		got = append(got, m.Offset)
		epoch = m.Epoch
	}
	for len(got) < 10 {
		take(next[chat.Message](t, reader, chat.PushMessage))
	}
	nodes[1].crash()
	close(crashed)

	reader = dial(t, nodes[0], "reader", "json-rpc")
	var jr chat.JoinResult
	call(t, reader, chat.MethodJoin, &chat.JoinParams{Room: "stream"}, &jr)
	for len(got) < total {
		var hr chat.HistoryResult
		call(t, reader, chat.MethodHistory, &chat.HistoryParams{Room: "stream", Since: got[len(got)-1], Epoch: epoch}, &hr)
		if !hr.Recovered {
			t.Fatalf("history since %d in epoch %s not recovered: %+v", got[len(got)-1], epoch, hr)
		}
		for _, e := range hr.Messages {
			take(&chat.Message{Offset: e.Offset, Message: e.Message, Epoch: hr.Epoch})
		}
		if len(hr.Messages) == 0 {
			// Caught up: the rest arrives live.
			take(next[chat.Message](t, reader, chat.PushMessage))
		}
	}
	if err := <-sent; err != nil {
		t.Fatal(err)
	}
	for i, off := range got {
		if off != uint64(i+1) {
			t.Fatalf("assembled offsets %v: want 1..%d once each", got, total)
		}
	}
}

// twoMembers starts two nodes with alice (json-rpc) on the first and bob
// (msgpack) on the second, both in room "r", alice having seen bob join.
func twoMembers(t *testing.T, o clusterOpts) (*natstest.Server, []*node, *client.Client, *client.Client) {
	t.Helper()
	ns := natstest.Start(t)
	nodes := startCluster(t, ns, 2, o)
	alice := dial(t, nodes[0], "alice", "json-rpc")
	bob := dial(t, nodes[1], "bob", "msgpack")
	call(t, alice, chat.MethodJoin, &chat.JoinParams{Room: "r"}, nil)
	call(t, bob, chat.MethodJoin, &chat.JoinParams{Room: "r"}, nil)
	if p := next[chat.Presence](t, alice, chat.PushPresence); p.ClientID != "bob" || p.Event != chat.EventJoin {
		t.Fatalf("presence %+v, want bob join", p)
	}
	return ns, nodes, alice, bob
}

// expectBobLeft awaits alice's push of bob leaving room "r" and checks
// that she is its only member then.
func expectBobLeft(t *testing.T, alice *client.Client) {
	t.Helper()
	if p := next[chat.Presence](t, alice, chat.PushPresence); p.ClientID != "bob" || p.Event != chat.EventLeave {
		t.Fatalf("presence %+v, want bob leave", p)
	}
	var mr chat.MembersResult
	call(t, alice, chat.MethodMembers, &chat.MembersParams{Room: "r"}, &mr)
	if !slices.Equal(mr.Members, []string{"alice"}) {
		t.Fatalf("members: %v", mr.Members)
	}
}

// A crashed node's clients leave their rooms within the presence bound,
// and the members on other nodes get the leave pushes.
func TestClusterCrashedNodeMembersLeave(t *testing.T) {
	_, nodes, alice, _ := twoMembers(t, clusterOpts{presenceTTL: 900 * time.Millisecond})
	nodes[1].crash()
	expectBobLeft(t, alice)
	if !strings.Contains(nodes[0].log.String(), "node lease expired") {
		t.Fatalf("the reaping is not logged:\n%s", nodes[0].log.String())
	}
}

// A client with connections on two nodes stays in its rooms until its
// last connection, on whichever node, is gone.
func TestClusterLastConnectionAnywhere(t *testing.T) {
	ns := natstest.Start(t)
	nodes := startCluster(t, ns, 2, clusterOpts{})
	watcher := dial(t, nodes[0], "watcher", "json-rpc")
	call(t, watcher, chat.MethodJoin, &chat.JoinParams{Room: "r"}, nil)
	a := dial(t, nodes[0], "multi", "msgpack")
	b := dial(t, nodes[1], "multi", "binary-raw")
	call(t, a, chat.MethodJoin, &chat.JoinParams{Room: "r"}, nil)
	next[chat.Presence](t, watcher, chat.PushPresence)
	a.Close()
	// Still a member: b, on the other node, sends in the room.
	var sr chat.SendResult
	call(t, b, chat.MethodSend, &chat.SendParams{Room: "r", Message: "still here"}, &sr)
	if m := next[chat.Message](t, watcher, chat.PushMessage); m.From != "multi" {
		t.Fatalf("message %+v", m)
	}
	b.Close()
	if p := next[chat.Presence](t, watcher, chat.PushPresence); p.ClientID != "multi" || p.Event != chat.EventLeave {
		t.Fatalf("presence %+v, want multi leave", p)
	}
}

// The hardening limits hold for the cluster: rooms per client counts the
// rooms joined through every node, and history keeps HistorySize
// messages per room whichever node sent them.
func TestClusterLimits(t *testing.T) {
	ns := natstest.Start(t)
	nodes := startCluster(t, ns, 2, clusterOpts{limits: gateway.HubLimits{MaxRoomsPerClient: 2, HistorySize: 5}})
	a := dial(t, nodes[0], "alice", "json-rpc")
	b := dial(t, nodes[1], "alice", "msgpack")
	call(t, a, chat.MethodJoin, &chat.JoinParams{Room: "one"}, nil)
	call(t, b, chat.MethodJoin, &chat.JoinParams{Room: "two"}, nil)
	if code := callCode(t, a, chat.MethodJoin, &chat.JoinParams{Room: "three"}); code != chat.CodeLimitReached {
		t.Fatalf("third room: code %d, want %d", code, chat.CodeLimitReached)
	}
	for i := 1; i <= 8; i++ {
		c := a
		if i%2 == 0 {
			c = b
		}
		call(t, c, chat.MethodSend, &chat.SendParams{Room: "one", Message: fmt.Sprint(i)}, nil)
	}
	var hr chat.HistoryResult
	call(t, b, chat.MethodHistory, &chat.HistoryParams{Room: "one"}, &hr)
	var offs []uint64
	for _, e := range hr.Messages {
		offs = append(offs, e.Offset)
	}
	if !slices.Equal(offs, []uint64{4, 5, 6, 7, 8}) || hr.Recovered {
		t.Fatalf("history after 8 sends with 5 kept: offsets %v, recovered %v", offs, hr.Recovered)
	}
}

// Rooms with members are bounded cluster-wide, and so are the bytes of
// history, whichever node the senders are on.
func TestClusterRoomAndByteLimits(t *testing.T) {
	ns := natstest.Start(t)
	nodes := startCluster(t, ns, 2, clusterOpts{limits: gateway.HubLimits{MaxRooms: 2, HistoryBytes: 8 << 10}})
	a := dial(t, nodes[0], "alice", "json-rpc")
	b := dial(t, nodes[1], "bob", "binary-raw")
	call(t, a, chat.MethodJoin, &chat.JoinParams{Room: "one"}, nil)
	call(t, b, chat.MethodJoin, &chat.JoinParams{Room: "two"}, nil)
	if code := callCode(t, b, chat.MethodJoin, &chat.JoinParams{Room: "three"}); code != chat.CodeLimitReached {
		t.Fatalf("a third room with members: code %d, want %d", code, chat.CodeLimitReached)
	}
	call(t, b, chat.MethodJoin, &chat.JoinParams{Room: "one"}, nil) // an existing room is fine

	text := strings.Repeat("x", 1000)
	const sends = 30 // 30 KB of text into 8 KiB of history
	for i := 1; i <= sends; i++ {
		c := a
		if i%2 == 0 {
			c = b
		}
		call(t, c, chat.MethodSend, &chat.SendParams{Room: "one", Message: text}, nil)
	}
	var hr chat.HistoryResult
	call(t, a, chat.MethodHistory, &chat.HistoryParams{Room: "one"}, &hr)
	n := len(hr.Messages)
	if n == 0 || n >= 9 || hr.Recovered {
		t.Fatalf("history of %d KB sent into 8 KiB: %d messages, recovered %v", sends, n, hr.Recovered)
	}
	for i, e := range hr.Messages {
		if e.Offset != uint64(sends-n+1+i) {
			t.Fatalf("kept offsets are not the last %d in order: %d at %d", n, e.Offset, i)
		}
	}
}

// NATS restarts under connected clients: the nodes say so (log, metric,
// /readyz 503), reconnect, and chat works across them again with the
// history kept.
func TestClusterBusRestart(t *testing.T) {
	ns := natstest.Start(t)
	nodes := startCluster(t, ns, 2, clusterOpts{})
	alice := dial(t, nodes[0], "alice", "json-rpc")
	bob := dial(t, nodes[1], "bob", "binary-raw")
	call(t, alice, chat.MethodJoin, &chat.JoinParams{Room: "r"}, nil)
	call(t, bob, chat.MethodJoin, &chat.JoinParams{Room: "r"}, nil)
	var first chat.SendResult
	call(t, alice, chat.MethodSend, &chat.SendParams{Room: "r", Message: "before"}, &first)
	next[chat.Message](t, alice, chat.PushMessage)
	next[chat.Message](t, bob, chat.PushMessage)

	ns.Stop()
	for _, n := range nodes {
		awaitStatus(t, n, "/readyz", 503)
		if m := metric(t, n, "subgate_bus_connected"); m != "0" {
			t.Fatalf("subgate_bus_connected %q while NATS is down", m)
		}
	}
	ns.Restart()
	for _, n := range nodes {
		awaitStatus(t, n, "/readyz", 200)
		if m := metric(t, n, "subgate_bus_reconnects_total"); m != "1" {
			t.Fatalf("subgate_bus_reconnects_total %q", m)
		}
		for _, line := range []string{"bus disconnected", "bus reconnected"} {
			if !strings.Contains(n.log.String(), line) {
				t.Fatalf("log lacks %q:\n%s", line, n.log.String())
			}
		}
	}
	var sr chat.SendResult
	call(t, bob, chat.MethodSend, &chat.SendParams{Room: "r", Message: "after"}, &sr)
	if sr.Offset != first.Offset+1 || sr.Epoch != first.Epoch {
		t.Fatalf("send after the restart: %+v, want offset %d in epoch %s", sr, first.Offset+1, first.Epoch)
	}
	if m := next[chat.Message](t, alice, chat.PushMessage); m.Message != "after" || m.Offset != sr.Offset {
		t.Fatalf("push after the restart: %+v", m)
	}
	// Presence still flows: the nodes watch the bucket again.
	carol := dial(t, nodes[1], "carol", "msgpack")
	call(t, carol, chat.MethodJoin, &chat.JoinParams{Room: "r"}, nil)
	if p := next[chat.Presence](t, alice, chat.PushPresence); p.ClientID != "carol" || p.Event != chat.EventJoin {
		t.Fatalf("presence after the restart: %+v", p)
	}
}

// awaitStatus polls a path until it answers want, for at most 15 s.
func awaitStatus(t *testing.T, n *node, path string, want int) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		code := testutil.HTTPStatus(t, n.hs.URL+path)
		if code == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s answers %d, want %d", path, code, want)
		}
		time.Sleep(20 * time.Millisecond) // polling a condition, bounded above
	}
}

// metric returns a sample's value from /metrics.
func metric(t *testing.T, n *node, name string) string {
	t.Helper()
	for _, line := range strings.Split(string(testutil.GetOK(t, n.hs.URL+"/metrics")), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			return v
		}
	}
	t.Fatalf("/metrics has no %s", name)
	return ""
}

// A client that disconnects while NATS is away cannot be taken out of
// its rooms then; once NATS is back its node repairs that, and the other
// members get the leave.
func TestClusterDetachDuringOutage(t *testing.T) {
	ns, nodes, alice, bob := twoMembers(t, clusterOpts{presenceTTL: 900 * time.Millisecond})

	ns.Stop()
	awaitStatus(t, nodes[1], "/readyz", 503)
	bob.Close()
	if err := nodes[1].srv.WaitConns(context.Background(), 0); err != nil {
		t.Fatal(err)
	}
	ns.Restart()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("node0:\n%s\nnode1:\n%s", nodes[0].log.String(), nodes[1].log.String())
		}
	})
	expectBobLeft(t, alice)
}

// A node too busy to refresh its lease in time, but that answers, is not
// taken for dead: its clients keep their rooms.
func TestClusterSlowNodeIsNotReaped(t *testing.T) {
	_, nodes, alice, _ := twoMembers(t, clusterOpts{})
	nodes[0].hub.AgeLease(nodes[1].hub.Node(), time.Hour)
	if !strings.Contains(nodes[0].log.String(), "did not refresh its lease in time") {
		t.Fatalf("the slow node was not asked:\n%s", nodes[0].log.String())
	}
	var mr chat.MembersResult
	call(t, alice, chat.MethodMembers, &chat.MembersParams{Room: "r"}, &mr)
	if !slices.Equal(mr.Members, []string{"alice", "bob"}) {
		t.Fatalf("members after the slow node's lease expired: %v", mr.Members)
	}
}
