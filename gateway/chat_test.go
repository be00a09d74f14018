package gateway

import (
	"context"
	"fmt"
	"math"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/subgate/subgate/client"
	"github.com/subgate/subgate/codec"
	"github.com/subgate/subgate/internal/testutil"
	"github.com/subgate/subgate/protocols"
	"github.com/subgate/subgate/protocols/chat"
)

var allProtos = []string{protocols.JSONRPC, protocols.MsgPack, protocols.BinaryRaw}

func dial(t *testing.T, addr, id, proto string) *client.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, "ws://"+addr+"/ws/"+id, client.Options{Protocol: proto})
	if err != nil {
		t.Fatalf("dial %s %s: %v", id, proto, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func call[R any](t *testing.T, c *client.Client, method string, params any) *R {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	r := new(R)
	if err := c.Call(ctx, method, params, r); err != nil {
		t.Fatalf("%s over %s: %v", method, c.Protocol(), err)
	}
	return r
}

func callErr(t *testing.T, c *client.Client, method string, params any) int64 {
	t.Helper()
	return rpcErr(t, c, method, params).Code
}

// waitPush returns the next push of method (others are skipped).
func waitPush[T any](t *testing.T, c *client.Client, method string) *T {
	t.Helper()
	return testutil.WaitPush[T](t, c, method)
}

func TestEveryMethodInEveryEncoding(t *testing.T) {
	_, addr := startServer(t, Config{})
	for _, proto := range allProtos {
		t.Run(proto, func(t *testing.T) {
			id, room := "u-"+proto, "room-"+proto
			c := dial(t, addr, id, proto)
			if r := call[chat.PingResult](t, c, chat.MethodPing, &chat.PingParams{}); r.Status != "ok" || time.Since(time.Unix(r.Timestamp, 0)).Abs() > time.Minute {
				t.Fatalf("ping: %+v", r)
			}
			if r := call[chat.DiscoverResult](t, c, chat.MethodDiscover, &chat.DiscoverParams{}); !reflect.DeepEqual(r.Methods, chat.Describe()) {
				t.Fatalf("discover: %+v", r)
			}
			j := call[chat.JoinResult](t, c, chat.MethodJoin, &chat.JoinParams{Room: room})
			if !reflect.DeepEqual(j.Members, []string{id}) || j.Offset != 0 || !ValidEpoch(j.Epoch) {
				t.Fatalf("join: %+v", j)
			}
			if r := call[chat.MembersResult](t, c, chat.MethodMembers, &chat.MembersParams{Room: room}); !reflect.DeepEqual(r.Members, []string{id}) {
				t.Fatalf("members: %+v", r)
			}
			if r := call[chat.SendResult](t, c, chat.MethodSend, &chat.SendParams{Room: room, Message: "one"}); r.Offset != 1 || r.Epoch != j.Epoch {
				t.Fatalf("send: %+v, want offset 1 in epoch %q", r, j.Epoch)
			}
			if m := waitPush[chat.Message](t, c, chat.PushMessage); m.Room != room || m.From != id || m.Message != "one" || m.Offset != 1 || m.Epoch != j.Epoch {
				t.Fatalf("push: %+v", m)
			}
			if r := call[chat.DirectResult](t, c, chat.MethodDirect, &chat.DirectParams{To: id, Message: "self"}); r.Delivered != 1 {
				t.Fatalf("direct: %+v", r)
			}
			if m := waitPush[chat.Message](t, c, chat.PushMessage); m.To != id || m.Message != "self" || m.Offset != 0 || m.Epoch != "" {
				t.Fatalf("direct push: %+v", m)
			}
			if r := call[chat.BroadcastResult](t, c, chat.MethodBroadcast, &chat.BroadcastParams{Message: "all"}); r.Status != "ok" || r.Delivered < 1 {
				t.Fatalf("broadcast: %+v", r)
			}
			h := call[chat.HistoryResult](t, c, chat.MethodHistory, &chat.HistoryParams{Room: room})
			if len(h.Messages) != 1 || h.Messages[0].Message != "one" || h.Messages[0].From != id || h.Epoch != j.Epoch || !h.Recovered {
				t.Fatalf("history: %+v", h)
			}
			if r := call[chat.LeaveResult](t, c, chat.MethodLeave, &chat.LeaveParams{Room: room}); r.Room != room {
				t.Fatalf("leave: %+v", r)
			}
			for _, tc := range []struct {
				method string
				params any
				code   int64
			}{
				{"chat.nope", &chat.PingParams{}, codec.CodeMethodNotFound},
				{chat.MethodLeave, &chat.LeaveParams{Room: room}, chat.CodeNotMember},
				{chat.MethodSend, &chat.SendParams{Room: room, Message: "x"}, chat.CodeNotMember},
				{chat.MethodJoin, &chat.JoinParams{Room: "no spaces"}, chat.CodeInvalidRoom},
				{chat.MethodDirect, &chat.DirectParams{To: "ghost", Message: "x"}, chat.CodeUnknownClient},
				{chat.MethodBroadcast, &chat.BroadcastParams{}, chat.CodeEmptyMessage},
				{chat.MethodJoin, wrongParams(proto), codec.CodeInvalidParams},
			} {
				if code := callErr(t, c, tc.method, tc.params); code != tc.code {
					t.Errorf("%s: code %d, want %d", tc.method, code, tc.code)
				}
			}
		})
	}
}

// badRoom has a room of the wrong type.
type badRoom struct {
	Room int `json:"room"`
}

// wrongParams returns params of the wrong shape for chat.join: a number
// for the room, or for binary-raw an empty payload (the room is missing).
func wrongParams(proto string) any {
	if proto == protocols.BinaryRaw {
		return &chat.PingParams{}
	}
	return &badRoom{Room: 7}
}

func TestCrossEncodingRoom(t *testing.T) {
	_, addr := startServer(t, Config{})
	clients := map[string]*client.Client{}
	for _, p := range allProtos {
		clients[p] = dial(t, addr, "x-"+p, p)
		call[chat.JoinResult](t, clients[p], chat.MethodJoin, &chat.JoinParams{Room: "mixed"})
	}
	// Each join is pushed to the members already there: json-rpc saw both others.
	j := clients[protocols.JSONRPC]
	for _, want := range []string{"x-msgpack", "x-binary-raw"} {
		if p := waitPush[chat.Presence](t, j, chat.PushPresence); p.ClientID != want || p.Event != chat.EventJoin {
			t.Fatalf("presence: %+v, want join of %s", p, want)
		}
	}
	for _, from := range allProtos {
		text := "from " + from
		call[chat.SendResult](t, clients[from], chat.MethodSend, &chat.SendParams{Room: "mixed", Message: text})
		for _, to := range allProtos {
			m := waitPush[chat.Message](t, clients[to], chat.PushMessage)
			if m.From != "x-"+from || m.Message != text || m.Room != "mixed" {
				t.Fatalf("%s -> %s: %+v", from, to, m)
			}
		}
	}
	// chat.direct by client id across encodings.
	for _, from := range allProtos {
		for _, to := range allProtos {
			if from == to {
				continue
			}
			text := fmt.Sprintf("%s to %s", from, to)
			call[chat.DirectResult](t, clients[from], chat.MethodDirect, &chat.DirectParams{To: "x-" + to, Message: text})
			if m := waitPush[chat.Message](t, clients[to], chat.PushMessage); m.Message != text || m.To != "x-"+to {
				t.Fatalf("direct: %+v", m)
			}
		}
	}
	// Closing the last connection of a client is leaving its rooms.
	clients[protocols.BinaryRaw].Close()
	if p := waitPush[chat.Presence](t, j, chat.PushPresence); p.ClientID != "x-binary-raw" || p.Event != chat.EventLeave {
		t.Fatalf("presence on close: %+v", p)
	}
}

func TestSeveralConnectionsPerClient(t *testing.T) {
	_, addr := startServer(t, Config{})
	a1 := dial(t, addr, "multi", protocols.JSONRPC)
	a2 := dial(t, addr, "multi", protocols.MsgPack)
	b := dial(t, addr, "other", protocols.BinaryRaw)
	call[chat.PingResult](t, a2, chat.MethodPing, &chat.PingParams{})
	if r := call[chat.DirectResult](t, b, chat.MethodDirect, &chat.DirectParams{To: "multi", Message: "both"}); r.Delivered != 2 {
		t.Fatalf("delivered to %d connections, want 2", r.Delivered)
	}
	waitPush[chat.Message](t, a1, chat.PushMessage)
	waitPush[chat.Message](t, a2, chat.PushMessage)
	// Membership belongs to the client id: closing one of two connections keeps it.
	call[chat.JoinResult](t, a1, chat.MethodJoin, &chat.JoinParams{Room: "r"})
	a1.Close()
	if r := call[chat.MembersResult](t, b, chat.MethodMembers, &chat.MembersParams{Room: "r"}); !reflect.DeepEqual(r.Members, []string{"multi"}) {
		t.Fatalf("members after closing one connection: %v", r.Members)
	}
}

func TestHistoryAfterReconnect(t *testing.T) {
	_, addr := startServer(t, Config{HistorySize: 3})
	for _, proto := range allProtos {
		t.Run(proto, func(t *testing.T) {
			room := "h-" + proto
			c := dial(t, addr, "h", proto)
			call[chat.JoinResult](t, c, chat.MethodJoin, &chat.JoinParams{Room: room})
			var last uint64
			for i := 1; i <= 5; i++ {
				last = call[chat.SendResult](t, c, chat.MethodSend, &chat.SendParams{Room: room, Message: fmt.Sprint(i)}).Offset
			}
			c.Close()
			<-c.Done()
			c = dial(t, addr, "h", proto)
			j := call[chat.JoinResult](t, c, chat.MethodJoin, &chat.JoinParams{Room: room})
			if j.Offset != last || last != 5 {
				t.Fatalf("join offset %d, last sent %d", j.Offset, last)
			}
			h := call[chat.HistoryResult](t, c, chat.MethodHistory, &chat.HistoryParams{Room: room, Since: 3, Epoch: j.Epoch})
			if len(h.Messages) != 2 || h.Messages[0].Offset != 4 || h.Messages[1].Message != "5" || !h.Recovered {
				t.Fatalf("since 3: %+v", h)
			}
			// Only the last 3 are kept; limit caps the answer.
			h = call[chat.HistoryResult](t, c, chat.MethodHistory, &chat.HistoryParams{Room: room, Limit: 2})
			if len(h.Messages) != 2 || h.Messages[0].Offset != 3 || h.Messages[1].Offset != 4 {
				t.Fatalf("limit 2: %+v", h.Messages)
			}
		})
	}
}

func TestSlowConsumerIsClosed(t *testing.T) {
	_, addr := startServer(t, Config{SendQueueBytes: 64 << 10, RateLimit: math.Inf(1)})
	handshake(t, addr, "/ws/slow", strp("json-rpc")) // never reads
	fast := dial(t, addr, "fast", protocols.MsgPack)
	msg := fmt.Sprintf("%04000d", 0)
	deadline := time.Now().Add(10 * time.Second)
	for {
		r := call[chat.BroadcastResult](t, fast, chat.MethodBroadcast, &chat.BroadcastParams{Message: msg})
		if r.Delivered == 1 { // only the sender itself is left
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("slow consumer never closed")
		}
	}
}

// A client is reachable as soon as its handshake completes: the server
// registers the connection before it sends the 101. (Registering after the
// upgrade left a window in which chat.direct found nobody.)
func TestReachableAsSoonAsConnected(t *testing.T) {
	_, addr := startServer(t, Config{})
	b := dial(t, addr, "sender", protocols.BinaryRaw)
	for i := range 50 {
		id := fmt.Sprint("fresh", i)
		a := dial(t, addr, id, protocols.All[i%len(protocols.All)].Name)
		if r := call[chat.DirectResult](t, b, chat.MethodDirect, &chat.DirectParams{To: id, Message: "hi"}); r.Delivered != 1 {
			t.Fatalf("connection %d: delivered to %d, want 1", i, r.Delivered)
		}
		a.Close()
	}
}

// historyCase is one chat.history call of TestHistoryRecovered and what it
// must answer.
type historyCase struct {
	name      string
	params    chat.HistoryParams
	offsets   []uint64 // of the messages returned
	recovered bool
}

// chat.history says whether the client recovered: its since continues in
// the room's current epoch with nothing evicted in between. A stale epoch
// (here a previous server's, as after a restart) gets the room from its
// oldest kept message and recovered false.
func TestHistoryRecovered(t *testing.T) {
	_, before := startServer(t, Config{})
	_, addr := startServer(t, Config{HistorySize: 3}) // keeps offsets 3..5 of 5
	for _, proto := range allProtos {
		t.Run(proto, func(t *testing.T) {
			old := call[chat.JoinResult](t, dial(t, before, "o", proto), chat.MethodJoin, &chat.JoinParams{Room: "r"}).Epoch
			room := "rec-" + proto
			c := dial(t, addr, "rec", proto)
			epoch := call[chat.JoinResult](t, c, chat.MethodJoin, &chat.JoinParams{Room: room}).Epoch
			if old == epoch {
				t.Fatalf("two servers share epoch %q", epoch)
			}
			for i := range 5 {
				call[chat.SendResult](t, c, chat.MethodSend, &chat.SendParams{Room: room, Message: fmt.Sprint(i)})
			}
			for _, tc := range []historyCase{
				{"caught up", chat.HistoryParams{Since: 5, Epoch: epoch}, nil, true},
				{"nothing missed since 2", chat.HistoryParams{Since: 2, Epoch: epoch}, []uint64{3, 4, 5}, true},
				{"page by limit", chat.HistoryParams{Since: 3, Limit: 1, Epoch: epoch}, []uint64{4}, true},
				{"no epoch given", chat.HistoryParams{Since: 4}, []uint64{5}, true},
				{"offset 2 was evicted", chat.HistoryParams{Since: 1, Epoch: epoch}, []uint64{3, 4, 5}, false},
				{"since 0 with the oldest evicted", chat.HistoryParams{}, []uint64{3, 4, 5}, false},
				{"since beyond the last offset", chat.HistoryParams{Since: 9, Epoch: epoch}, nil, false},
				{"stale epoch", chat.HistoryParams{Since: 4, Epoch: old}, []uint64{3, 4, 5}, false},
				{"stale epoch, caught up there", chat.HistoryParams{Since: 5, Limit: 2, Epoch: old}, []uint64{3, 4}, false},
			} {
				tc.params.Room = room
				h := call[chat.HistoryResult](t, c, chat.MethodHistory, &tc.params)
				var got []uint64
				for _, m := range h.Messages {
					got = append(got, m.Offset)
				}
				if !slices.Equal(got, tc.offsets) || h.Recovered != tc.recovered || h.Epoch != epoch || h.Room != room {
					t.Errorf("%s: offsets %v recovered %v epoch %q; want %v, %v, %q", tc.name, got, h.Recovered, h.Epoch, tc.offsets, tc.recovered, epoch)
				}
			}
		})
	}
}

// An epoch that is not 1-32 characters of [A-Za-z0-9_-] is -32602, with a
// data text that says what an epoch is.
func TestHistoryInvalidEpoch(t *testing.T) {
	_, addr := startServer(t, Config{})
	for _, proto := range allProtos {
		c := dial(t, addr, "ep-"+proto, proto)
		for _, epoch := range []string{strings.Repeat("e", chat.MaxEpochLen+1), "a.b", "sp ace", "é"} {
			e := rpcErr(t, c, chat.MethodHistory, &chat.HistoryParams{Room: "r", Epoch: epoch})
			if e.Code != codec.CodeInvalidParams || e.Data != epochDetail {
				t.Errorf("%s: epoch %q: %d %q, want -32602 %q", proto, epoch, e.Code, e.Data, epochDetail)
			}
		}
		long := strings.Repeat("e", chat.MaxEpochLen)
		if h := call[chat.HistoryResult](t, c, chat.MethodHistory, &chat.HistoryParams{Room: "r", Epoch: long}); h.Recovered || len(h.Messages) != 0 {
			t.Errorf("%s: a %d-byte epoch of an empty room: %+v, want no messages, not recovered", proto, chat.MaxEpochLen, h)
		}
	}
}
