// Package hubtest is the contract every gateway.Hub must keep, as a test
// suite: the in-process hub runs it today, and a hub spanning nodes will
// run the same suite. Pushes are awaited with a timeout rather than
// expected at once, so that a hub that delivers through a network passes
// as well as one that delivers before it returns.
package hubtest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/subgate/subgate/codec"
	"github.com/subgate/subgate/codec/jsonrpc"
	"github.com/subgate/subgate/gateway"
	"github.com/subgate/subgate/protocols/chat"
)

// Wait bounds every wait for a push.
const Wait = 5 * time.Second

// wire encodes and decodes pushes as a json-rpc client sees them.
var wire codec.Codec = jsonrpc.New(chat.Table)

// Peer is a connection as the hub sees it; it records what it is sent,
// each push encoded by the json-rpc codec and decoded again, as a client
// would see it.
type Peer struct {
	ID     string
	pushes chan push
}

type push struct {
	method string
	params []byte
}

// NewPeer returns a peer of client id.
func NewPeer(id string) *Peer { return &Peer{ID: id, pushes: make(chan push, 1024)} }

// ClientID is the peer's client id.
func (p *Peer) ClientID() string { return p.ID }

// Deliver records the push.
func (p *Peer) Deliver(ps *gateway.Push) bool {
	b, err := ps.Bytes(wire)
	if err != nil {
		return false
	}
	msgs, _, err := wire.Decode(nil, b)
	if err != nil || len(msgs) != 1 {
		return false
	}
	select {
	case p.pushes <- push{msgs[0].Method, append([]byte(nil), msgs[0].Body...)}:
		return true
	default:
		return false
	}
}

// Next waits for the next push of method (others are skipped) and decodes
// its params into v.
func (p *Peer) Next(t testing.TB, method string, v any) {
	t.Helper()
	timeout := time.After(Wait)
	for {
		select {
		case ps := <-p.pushes:
			if ps.method != method {
				continue
			}
			if err := wire.Unmarshal(ps.params, v); err != nil {
				t.Fatalf("%s: %s params: %v", p.ID, method, err)
			}
			return
		case <-timeout:
			t.Fatalf("%s: no %s push within %v", p.ID, method, Wait)
		}
	}
}

// Quiet checks that no push of method is waiting (what is waiting of other
// methods is dropped). A hub that delivers later than it returns must
// have delivered by the time a later push (awaited with Next) arrives: use
// it after such a push.
func (p *Peer) Quiet(t testing.TB, method string) {
	t.Helper()
	for {
		select {
		case ps := <-p.pushes:
			if ps.method == method {
				t.Fatalf("%s: unexpected %s push: %s", p.ID, method, ps.params)
			}
		default:
			return
		}
	}
}

// Run runs the contract against hubs made by newHub, one per subtest.
// Limits the hub must be made with: at most 3 rooms per client id.
func Run(t *testing.T, newHub func(t *testing.T) gateway.Hub) {
	ctx := context.Background()
	attach := func(t *testing.T, h gateway.Hub, ids ...string) []*Peer {
		t.Helper()
		var out []*Peer
		for _, id := range ids {
			p := NewPeer(id)
			if err := h.Attach(ctx, p); err != nil {
				t.Fatalf("attach %s: %v", id, err)
			}
			out = append(out, p)
		}
		return out
	}
	join := func(t *testing.T, h gateway.Hub, room, id string) ([]string, gateway.Position) {
		t.Helper()
		members, pos, err := h.Join(ctx, room, id)
		if err != nil {
			t.Fatalf("%s joins %s: %v", id, room, err)
		}
		return members, pos
	}

	t.Run("join is idempotent and tells the others once", func(t *testing.T) {
		h := newHub(t)
		ps := attach(t, h, "a", "b")
		join(t, h, "r", "a")
		members, _ := join(t, h, "r", "b")
		if !slices.Equal(members, []string{"a", "b"}) {
			t.Fatalf("members %v, want [a b]", members)
		}
		var pr chat.Presence
		ps[0].Next(t, chat.PushPresence, &pr)
		if pr != (chat.Presence{Room: "r", ClientID: "b", Event: chat.EventJoin}) {
			t.Fatalf("presence %+v", pr)
		}
		join(t, h, "r", "b") // again: no second presence
		sendOK(t, h, "r", "a", "after")
		for _, p := range ps { // the message comes after anything the joins pushed
			var m chat.Message
			p.Next(t, chat.PushMessage, &m)
		}
		ps[0].Quiet(t, chat.PushPresence)
		ps[1].Quiet(t, chat.PushPresence) // a member is not told of its own join
	})

	t.Run("a client without a connection cannot join", func(t *testing.T) {
		h := newHub(t)
		if _, _, err := h.Join(ctx, "r", "ghost"); !errors.Is(err, gateway.ErrNotAttached) {
			t.Fatalf("join of a ghost: %v, want ErrNotAttached", err)
		}
	})

	t.Run("send reaches every member with growing offsets, history returns them", func(t *testing.T) {
		h := newHub(t)
		ps := attach(t, h, "a", "b", "c")
		join(t, h, "r", "a")
		_, start := join(t, h, "r", "b")
		var pos []gateway.Position
		for i := range 3 {
			pos = append(pos, sendOK(t, h, "r", "a", fmt.Sprint("m", i)))
		}
		for i := 1; i < len(pos); i++ {
			if pos[i].Offset <= pos[i-1].Offset || pos[0].Offset <= start.Offset {
				t.Fatalf("positions %v after join at %v: want growing offsets", pos, start)
			}
		}
		for _, p := range ps[:2] { // the sender included
			for i, want := range pos {
				var m chat.Message
				p.Next(t, chat.PushMessage, &m)
				if m.Room != "r" || m.From != "a" || m.Message != fmt.Sprint("m", i) || (gateway.Position{Offset: m.Offset, Epoch: m.Epoch}) != want {
					t.Fatalf("%s got %+v, want m%d at %+v", p.ID, m, i, want)
				}
			}
		}
		last := sendOK(t, h, "r", "b", "marker")
		var m chat.Message
		ps[1].Next(t, chat.PushMessage, &m)
		ps[2].Quiet(t, chat.PushMessage) // not a member
		got, latest, err := h.History(ctx, "r", pos[0].Offset, 10)
		if err != nil || len(got) != 3 || got[0].Offset != pos[1].Offset || got[1].Offset != pos[2].Offset || got[0].Message != "m1" {
			t.Fatalf("history since %d: %+v, %v", pos[0].Offset, got, err)
		}
		if latest != last {
			t.Fatalf("history's position %+v, want the last send's %+v", latest, last)
		}
		if got, latest, err := h.History(ctx, "r", 0, 2); err != nil || len(got) != 2 || got[0].Offset != pos[0].Offset || latest != last {
			t.Fatalf("history limit 2: %+v at %+v, %v; want the last send's position %+v", got, latest, err, last)
		}
		if got, _, err := h.History(ctx, "nowhere", 0, 10); err != nil || got == nil || len(got) != 0 {
			t.Fatalf("history of an unknown room: %#v, %v, want an empty list", got, err)
		}
	})

	t.Run("one epoch per room stream: send, push, join and history agree", func(t *testing.T) {
		h := newHub(t)
		ps := attach(t, h, "a", "b")
		join(t, h, "r", "a")
		sent := sendOK(t, h, "r", "a", "first")
		if !gateway.ValidEpoch(sent.Epoch) {
			t.Fatalf("send's epoch %q: want 1-%d characters of [A-Za-z0-9_-]", sent.Epoch, chat.MaxEpochLen)
		}
		var m chat.Message
		ps[0].Next(t, chat.PushMessage, &m)
		if m.Offset != sent.Offset || m.Epoch != sent.Epoch {
			t.Fatalf("pushed offset %d epoch %q, send returned %+v", m.Offset, m.Epoch, sent)
		}
		if _, pos := join(t, h, "r", "b"); pos != sent {
			t.Fatalf("join after a send: %+v, want the send's %+v", pos, sent)
		}
		if _, pos := join(t, h, "r", "a"); pos != sent { // a member joining again
			t.Fatalf("join again: %+v, want %+v", pos, sent)
		}
		if got, pos, err := h.History(ctx, "r", sent.Offset, 10); err != nil || len(got) != 0 || pos != sent {
			t.Fatalf("history after the last message: %+v at %+v, %v; want none at %+v", got, pos, err, sent)
		}
		next := sendOK(t, h, "r", "b", "second")
		if next.Epoch != sent.Epoch || next.Offset <= sent.Offset {
			t.Fatalf("second send %+v after %+v: want the same epoch and a higher offset", next, sent)
		}
	})

	t.Run("only members send and leave", func(t *testing.T) {
		h := newHub(t)
		attach(t, h, "a", "b")
		join(t, h, "r", "a")
		if _, err := h.Send(ctx, chat.Message{Room: "r", From: "b", Message: "x"}); !errors.Is(err, gateway.ErrNotMember) {
			t.Fatalf("send by a non-member: %v", err)
		}
		if err := h.Leave(ctx, "r", "b"); !errors.Is(err, gateway.ErrNotMember) {
			t.Fatalf("leave by a non-member: %v", err)
		}
		if err := h.Leave(ctx, "nowhere", "a"); !errors.Is(err, gateway.ErrNotMember) {
			t.Fatalf("leave of an unknown room: %v", err)
		}
	})

	t.Run("leave and the last connection's detach tell the others", func(t *testing.T) {
		h := newHub(t)
		ps := attach(t, h, "a", "b", "c")
		second := NewPeer("c")
		if err := h.Attach(ctx, second); err != nil {
			t.Fatal(err)
		}
		for _, id := range []string{"a", "b", "c"} {
			join(t, h, "r", id)
		}
		if err := h.Leave(ctx, "r", "b"); err != nil {
			t.Fatal(err)
		}
		expectLeave(t, ps[0], "r", "b")
		if err := h.Detach(ctx, ps[2]); err != nil { // c still has a connection
			t.Fatal(err)
		}
		if m := members(t, h, "r"); !slices.Equal(m, []string{"a", "c"}) {
			t.Fatalf("members after one of c's connections left: %v", m)
		}
		if err := h.Detach(ctx, second); err != nil {
			t.Fatal(err)
		}
		expectLeave(t, ps[0], "r", "c")
		if m := members(t, h, "r"); !slices.Equal(m, []string{"a"}) {
			t.Fatalf("members after c's last connection left: %v", m)
		}
		if m := members(t, h, "nowhere"); m == nil || len(m) != 0 {
			t.Fatalf("members of an unknown room: %#v, want an empty list", m)
		}
	})

	t.Run("broadcast and direct count connections", func(t *testing.T) {
		h := newHub(t)
		ps := attach(t, h, "a", "b", "b")
		n, err := h.Broadcast(ctx, gateway.NewPush(chat.PushMessage, &chat.Message{From: "a", Message: "all"}))
		if err != nil || n != 3 {
			t.Fatalf("broadcast: %d, %v; want 3", n, err)
		}
		for _, p := range ps {
			var m chat.Message
			p.Next(t, chat.PushMessage, &m)
			if m.Message != "all" {
				t.Fatalf("%s got %+v", p.ID, m)
			}
		}
		n, err = h.Direct(ctx, "b", gateway.NewPush(chat.PushMessage, &chat.Message{From: "a", To: "b", Message: "psst"}))
		if err != nil || n != 2 {
			t.Fatalf("direct to b: %d, %v; want 2 (two connections)", n, err)
		}
		if n, err := h.Direct(ctx, "nobody", gateway.NewPush(chat.PushMessage, &chat.Message{From: "a", To: "nobody", Message: "x"})); err != nil || n != 0 {
			t.Fatalf("direct to nobody: %d, %v; want 0", n, err)
		}
	})

	t.Run("rooms per client are bounded", func(t *testing.T) {
		h := newHub(t)
		attach(t, h, "a")
		for i := range 3 {
			join(t, h, fmt.Sprint("r", i), "a")
		}
		_, _, err := h.Join(ctx, "r3", "a")
		if le, ok := errors.AsType[*gateway.LimitError](err); !ok || le.Max != 3 {
			t.Fatalf("fourth room: %v, want a *LimitError of 3", err)
		}
	})
}

func sendOK(t *testing.T, h gateway.Hub, room, from, text string) gateway.Position {
	t.Helper()
	pos, err := h.Send(context.Background(), chat.Message{Room: room, From: from, Message: text, TS: time.Now().UnixMilli()})
	if err != nil {
		t.Fatalf("%s sends to %s: %v", from, room, err)
	}
	return pos
}

func members(t *testing.T, h gateway.Hub, room string) []string {
	t.Helper()
	m, err := h.Members(context.Background(), room)
	if err != nil {
		t.Fatalf("members of %s: %v", room, err)
	}
	return m
}

// expectLeave waits for the next leave presence (joins before it are
// skipped) and checks it.
func expectLeave(t *testing.T, p *Peer, room, id string) {
	t.Helper()
	for {
		var pr chat.Presence
		p.Next(t, chat.PushPresence, &pr)
		if pr.Event == chat.EventJoin {
			continue
		}
		if pr != (chat.Presence{Room: room, ClientID: id, Event: chat.EventLeave}) {
			t.Fatalf("%s: presence %+v, want %s leaving %s", p.ID, pr, id, room)
		}
		return
	}
}
