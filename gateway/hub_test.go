package gateway

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/subgate/subgate/client"
	"github.com/subgate/subgate/codec"
	"github.com/subgate/subgate/protocols"
	"github.com/subgate/subgate/protocols/chat"
)

// rpcErr calls method and returns the RPC error it must fail with.
func rpcErr(t *testing.T, c *client.Client, method string, params any) *codec.Error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := c.Call(ctx, method, params, nil)
	e, ok := errors.AsType[*codec.Error](err)
	if !ok {
		t.Fatalf("%s over %s: got %v, want an RPC error", method, c.Protocol(), err)
	}
	return e
}

// testHub returns an in-process hub with lim and peers attached for ids.
func testHub(t testing.TB, lim HubLimits, ids ...string) *memoryHub {
	t.Helper()
	h := NewMemoryHub(lim).(*memoryHub)
	for _, id := range ids {
		h.Attach(bg, &countingPeer{id: id, codec: allCodecs[0]})
	}
	return h
}

// bg is the context of hub calls in tests: the in-process hub never waits.
var bg = context.Background()

// members and history call the hub and fail the test on an error.
func members(t testing.TB, h Hub, room string) []string {
	t.Helper()
	m, err := h.Members(bg, room)
	if err != nil {
		t.Fatalf("members of %s: %v", room, err)
	}
	return m
}

func history(t testing.TB, h Hub, room string, since, limit uint64) []chat.HistoryEntry {
	t.Helper()
	e, _, err := h.History(bg, room, since, limit)
	if err != nil {
		t.Fatalf("history of %s: %v", room, err)
	}
	return e
}

func mustJoin(t testing.TB, h Hub, room, client string) uint64 {
	t.Helper()
	_, pos, err := h.Join(bg, room, client)
	if err != nil {
		t.Fatalf("%s joins %s: %v", client, room, err)
	}
	return pos.Offset
}

func mustSend(t testing.TB, h Hub, room, from, text string) uint64 {
	t.Helper()
	pos, err := h.Send(bg, chat.Message{Room: room, From: from, Message: text})
	if err != nil {
		t.Fatalf("%s sends to %s: %v", from, room, err)
	}
	return pos.Offset
}

// hubState is what a test inspects of a memoryHub, read under its lock.
type hubState struct {
	rooms, idle, busy, clientsIndexed int
	historyBytes                      int
}

// state reads the hub and checks its invariants: the list lengths, the
// index and the byte count agree with the rooms themselves.
func (h *memoryHub) state(t testing.TB) hubState {
	t.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()
	sum, idle, busy, indexed := 0, 0, 0, 0
	for name, r := range h.rooms {
		sum += r.bytes
		switch {
		case len(r.members) == 0 && r.count == 0:
			t.Errorf("room %s has neither members nor history but exists", name)
		case len(r.members) == 0:
			idle++
		case r.count > 0:
			busy++
		}
		for id := range r.members {
			if h.joined[id][name] != r {
				t.Errorf("member %s of %s is missing from the index", id, name)
			}
		}
	}
	for _, rooms := range h.joined {
		indexed += len(rooms)
	}
	members := 0
	for _, r := range h.rooms {
		members += len(r.members)
	}
	if idle != h.idle.Len() || busy != h.busy.Len() || sum != h.historyBytes || indexed != members {
		t.Errorf("idle %d/%d, busy %d/%d, bytes %d/%d, index %d/%d members", idle, h.idle.Len(), busy, h.busy.Len(), sum, h.historyBytes, indexed, members)
	}
	return hubState{rooms: len(h.rooms), idle: idle, busy: busy, clientsIndexed: len(h.joined), historyBytes: h.historyBytes}
}

func (h *memoryHub) hasRoom(name string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.rooms[name] != nil
}

// heapInUse returns the live heap after a collection.
func heapInUse() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// A client id may be in MaxRoomsPerClient rooms; one more is -32009 with a
// detail naming the bound, in every encoding. Re-joining is not a new room.
func TestRoomsPerClientBound(t *testing.T) {
	_, addr := startServer(t, Config{MaxRoomsPerClient: 3})
	for _, proto := range allProtos {
		t.Run(proto, func(t *testing.T) {
			c := dial(t, addr, "many-"+proto, proto)
			for i := range 3 {
				call[chat.JoinResult](t, c, chat.MethodJoin, &chat.JoinParams{Room: fmt.Sprint(proto, i)})
			}
			e := rpcErr(t, c, chat.MethodJoin, &chat.JoinParams{Room: proto + "3"})
			if e.Code != chat.CodeLimitReached || e.Data != "rooms per client: at most 3" {
				t.Fatalf("4th room: %d %q", e.Code, e.Data)
			}
			call[chat.JoinResult](t, c, chat.MethodJoin, &chat.JoinParams{Room: proto + "0"})
			call[chat.LeaveResult](t, c, chat.MethodLeave, &chat.LeaveParams{Room: proto + "0"})
			call[chat.JoinResult](t, c, chat.MethodJoin, &chat.JoinParams{Room: proto + "3"})
		})
	}
}

// At MaxRooms a new room evicts the least recently active room without
// members, history and all; when every room has members the join is -32009.
func TestRoomsPerNodeBound(t *testing.T) {
	srv, addr := startServer(t, Config{MaxRooms: 3})
	h := srv.Hub().(*memoryHub)
	a := dial(t, addr, "a", protocols.MsgPack)
	for _, room := range []string{"old", "older", "kept"} {
		call[chat.JoinResult](t, a, chat.MethodJoin, &chat.JoinParams{Room: room})
		call[chat.SendResult](t, a, chat.MethodSend, &chat.SendParams{Room: room, Message: "x"})
	}
	call[chat.LeaveResult](t, a, chat.MethodLeave, &chat.LeaveParams{Room: "old"})
	call[chat.LeaveResult](t, a, chat.MethodLeave, &chat.LeaveParams{Room: "older"})
	b := dial(t, addr, "b", protocols.BinaryRaw)
	call[chat.JoinResult](t, b, chat.MethodJoin, &chat.JoinParams{Room: "new"})
	if h.hasRoom("old") || !h.hasRoom("older") || !h.hasRoom("kept") || h.state(t).rooms != 3 {
		t.Fatalf("evicted the wrong room: %+v", h.state(t))
	}
	if hist := call[chat.HistoryResult](t, b, chat.MethodHistory, &chat.HistoryParams{Room: "old"}); len(hist.Messages) != 0 {
		t.Fatalf("evicted room kept history: %+v", hist.Messages)
	}
	call[chat.JoinResult](t, a, chat.MethodJoin, &chat.JoinParams{Room: "older"})
	e := rpcErr(t, b, chat.MethodJoin, &chat.JoinParams{Room: "one-too-many"})
	if e.Code != chat.CodeLimitReached || e.Data != "rooms per node (all have members): at most 3" {
		t.Fatalf("join with every room in use: %d %q", e.Code, e.Data)
	}
	if s := h.state(t); s.rooms != 3 || s.idle != 0 {
		t.Fatalf("after the refused join: %+v", s)
	}
}

// A room with neither members nor history is deleted at once, by leave
// and by detach; a room with history outlives its members.
func TestEmptyRoomDeleted(t *testing.T) {
	h := testHub(t, HubLimits{}, "b")
	a := &countingPeer{id: "a", codec: allCodecs[0]}
	h.Attach(bg, a)
	mustJoin(t, h, "quiet", "a")
	if err := h.Leave(bg, "quiet", "a"); err != nil || h.hasRoom("quiet") {
		t.Fatalf("leave: %v, room kept: %v", err, h.hasRoom("quiet"))
	}
	mustJoin(t, h, "alone", "a")
	mustJoin(t, h, "pair", "a")
	mustJoin(t, h, "pair", "b")
	h.Detach(bg, a)
	if h.hasRoom("alone") || !reflect.DeepEqual(members(t, h, "pair"), []string{"b"}) {
		t.Fatalf("after detach: alone kept %v, pair members %v", h.hasRoom("alone"), members(t, h, "pair"))
	}
	mustSend(t, h, "pair", "b", "hello")
	if err := h.Leave(bg, "pair", "b"); err != nil || !h.hasRoom("pair") {
		t.Fatalf("a room with history was deleted on leave (%v)", err)
	}
	if s := h.state(t); s.rooms != 1 || s.idle != 1 {
		t.Fatalf("state: %+v", s)
	}
}

// Detaching the last connection leaves only the client's own rooms: its
// index entry goes, the other client's rooms and history are untouched,
// and the only push the other client gets is the leave of the room they
// shared.
func TestDetachTouchesOnlyOwnRooms(t *testing.T) {
	h := testHub(t, HubLimits{}, "other")
	leaver := &recordingPeer{id: "leaver"}
	watcher := &recordingPeer{id: "other"}
	h.Attach(bg, leaver)
	h.Attach(bg, watcher)
	for i := range 20 {
		mustJoin(t, h, fmt.Sprint("o", i), "other")
		mustSend(t, h, fmt.Sprint("o", i), "other", "kept")
	}
	for i := range 5 {
		mustJoin(t, h, fmt.Sprint("own", i), "leaver")
	}
	mustJoin(t, h, "o0", "leaver")
	before := h.state(t)
	watcher.pushes = nil
	h.Detach(bg, leaver)
	after := h.state(t)
	if after.clientsIndexed != 1 || after.rooms != before.rooms-5 || after.historyBytes != before.historyBytes || after.busy != 20 {
		t.Fatalf("before %+v, after %+v", before, after)
	}
	if len(watcher.pushes) != 1 || watcher.pushes[0].Method != chat.PushPresence {
		t.Fatalf("the other client got %d pushes, want the one leave", len(watcher.pushes))
	}
	if p := watcher.pushes[0].Body.(*chat.Presence); p.Room != "o0" || p.ClientID != "leaver" || p.Event != chat.EventLeave {
		t.Fatalf("presence: %+v", p)
	}
}

// recordingPeer keeps the pushes it gets (the hub calls it under its lock).
type recordingPeer struct {
	id     string
	pushes []*Push
}

func (p *recordingPeer) ClientID() string { return p.id }

func (p *recordingPeer) Deliver(push *Push) bool {
	p.pushes = append(p.pushes, push)
	return true
}

// A room keeps at most HistoryBytesPerRoom bytes of history (besides
// HistorySize messages): the oldest go, the newest stay in order.
func TestHistoryBytesPerRoomBound(t *testing.T) {
	text := strings.Repeat("m", 1000)
	per := entryCost(&chat.HistoryEntry{From: "a", Message: text})
	h := testHub(t, HubLimits{HistoryBytesPerRoom: 10 * per}, "a")
	mustJoin(t, h, "r", "a")
	for range 30 {
		mustSend(t, h, "r", "a", text)
	}
	got := history(t, h, "r", 0, chat.MaxHistoryLimit)
	if len(got) != 10 || got[0].Offset != 21 || got[9].Offset != 30 {
		t.Fatalf("kept %d messages, offsets %d..%d", len(got), got[0].Offset, got[len(got)-1].Offset)
	}
	if s := h.state(t); s.historyBytes != 10*per {
		t.Fatalf("history bytes %d, want %d", s.historyBytes, 10*per)
	}
	// A message larger than the room's bound is still kept, alone.
	h = testHub(t, HubLimits{HistoryBytesPerRoom: 10}, "a")
	mustJoin(t, h, "r", "a")
	mustSend(t, h, "r", "a", "one")
	mustSend(t, h, "r", "a", "two")
	if got := history(t, h, "r", 0, 10); len(got) != 1 || got[0].Message != "two" {
		t.Fatalf("history: %+v", got)
	}
}

// The node keeps at most HistoryBytes of history over all its rooms,
// memberless or not, and sends never fail for it. Measured on the heap:
// 64 MiB of messages leave at most the budget plus room bookkeeping.
func TestNodeHistoryBudget(t *testing.T) {
	const budget = 4 << 20
	text := strings.Repeat("n", 4000)
	h := testHub(t, HubLimits{HistoryBytes: budget, MaxRooms: 100000, MaxRoomsPerClient: 100}, "a")
	before := heapInUse()
	for i := range 4000 { // rooms left with history: idle ones
		room := fmt.Sprint("idle", i)
		mustJoin(t, h, room, "a")
		for range 4 {
			mustSend(t, h, room, "a", text)
		}
		if err := h.Leave(bg, room, "a"); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 50 { // rooms the client stays in: busy ones
		mustJoin(t, h, fmt.Sprint("busy", i), "a")
	}
	for range 100 {
		for i := range 50 {
			room := fmt.Sprint("busy", i)
			off := mustSend(t, h, room, "a", text)
			if got := history(t, h, room, off-1, 1); len(got) != 1 || got[0].Offset != off {
				t.Fatalf("%s lost its newest message %d: %+v", room, off, got)
			}
		}
	}
	grown := int64(heapInUse()) - int64(before)
	s := h.state(t)
	if s.historyBytes > budget || s.idle != 0 || s.busy != 50 {
		t.Fatalf("state %+v", s)
	}
	if grown > budget+2<<20 {
		t.Fatalf("heap grew by %d bytes for a %d-byte history budget", grown, budget)
	}
	t.Logf("heap grew by %d bytes; history %d bytes in %d rooms", grown, s.historyBytes, s.rooms)
	runtime.KeepAlive(h)
}

// The attack of issue 6: one client makes rooms with history as fast as
// it can through the real server. The node ends with at most MaxRooms
// rooms, history within its budget, nothing indexed for the client once
// it is gone, and the heap no bigger than the budgets allow.
func TestRoomFloodMemoryFlat(t *testing.T) {
	const budget, maxRooms, rooms = 1 << 20, 100, 1000
	srv, addr := startServer(t, Config{MaxRooms: maxRooms, HistoryBytes: budget, RateLimit: math.Inf(1)})
	h := srv.Hub().(*memoryHub)
	text := strings.Repeat("f", 4000)
	before := heapInUse()
	c := dial(t, addr, "flood", protocols.MsgPack)
	for i := range rooms {
		room := fmt.Sprint("flood", i)
		call[chat.JoinResult](t, c, chat.MethodJoin, &chat.JoinParams{Room: room})
		call[chat.SendResult](t, c, chat.MethodSend, &chat.SendParams{Room: room, Message: text})
		call[chat.SendResult](t, c, chat.MethodSend, &chat.SendParams{Room: room, Message: text})
		if i < rooms-50 { // it stays in the last 50 until it disconnects
			call[chat.LeaveResult](t, c, chat.MethodLeave, &chat.LeaveParams{Room: room})
		}
	}
	c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.WaitConns(ctx, 0); err != nil {
		t.Fatal(err)
	}
	s := h.state(t)
	if s.rooms > maxRooms || s.historyBytes > budget || s.clientsIndexed != 0 || s.busy != 0 {
		t.Fatalf("after the flood: %+v", s)
	}
	grown := int64(heapInUse()) - int64(before)
	if grown > budget+2<<20 {
		t.Fatalf("heap grew by %d bytes (history budget %d)", grown, budget)
	}
	t.Logf("heap grew by %d bytes; %d rooms, history %d bytes", grown, s.rooms, s.historyBytes)
}

// A room deleted and created again never reuses an offset: it starts after
// the highest offset of any deleted room, so a client's since never skips
// the new messages.
func TestOffsetsNeverRepeat(t *testing.T) {
	h := testHub(t, HubLimits{MaxRooms: 1}, "a")
	mustJoin(t, h, "r", "a")
	for range 3 {
		mustSend(t, h, "r", "a", "old")
	}
	evict(t, h, "r", "a")
	if off := mustJoin(t, h, "r", "a"); off != 3 {
		t.Fatalf("re-created room reports offset %d, want 3", off)
	}
	if off := mustSend(t, h, "r", "a", "new"); off != 4 {
		t.Fatalf("first message of the re-created room: offset %d, want 4", off)
	}
	if got := history(t, h, "r", 3, 10); len(got) != 1 || got[0].Message != "new" {
		t.Fatalf("since 3: %+v", got)
	}
}

// evict makes client leave room and deletes it, history and all, on a hub
// of MaxRooms 1: client joins another room, then leaves that too.
func evict(t *testing.T, h *memoryHub, room, client string) {
	t.Helper()
	if err := h.Leave(bg, room, client); err != nil {
		t.Fatal(err)
	}
	mustJoin(t, h, "evictor", client) // at MaxRooms 1: room goes, history and all
	if h.hasRoom(room) {
		t.Fatalf("%s was not evicted", room)
	}
	if err := h.Leave(bg, "evictor", client); err != nil {
		t.Fatal(err)
	}
}

// The in-process hub has one epoch for its life, 16 random hex characters,
// kept by a room deleted and made again (offsets never repeat under it)
// and different in the next hub (a restart, which loses history).
func TestMemoryHubEpoch(t *testing.T) {
	h := testHub(t, HubLimits{MaxRooms: 1}, "a")
	_, joined, err := h.Join(bg, "r", "a")
	if err != nil {
		t.Fatal(err)
	}
	if len(joined.Epoch) != 16 || strings.Trim(joined.Epoch, "0123456789abcdef") != "" {
		t.Fatalf("epoch %q: want 16 hex characters", joined.Epoch)
	}
	mustSend(t, h, "r", "a", "x")
	evict(t, h, "r", "a")
	_, again, err := h.Join(bg, "r", "a")
	if err != nil || again.Epoch != joined.Epoch {
		t.Fatalf("re-created room: %+v, %v; want epoch %q", again, err, joined.Epoch)
	}
	if _, pos, err := h.History(bg, "never", 0, 10); err != nil || pos.Epoch != joined.Epoch {
		t.Fatalf("history of a room that never existed: %+v, %v; want epoch %q", pos, err, joined.Epoch)
	}
	other := testHub(t, HubLimits{}, "a")
	if _, pos, err := other.Join(bg, "r", "a"); err != nil || pos.Epoch == joined.Epoch {
		t.Fatalf("a second hub's epoch %q, %v: want one different from %q", pos.Epoch, err, joined.Epoch)
	}
}

// Only a client id with a live connection joins: a membership nobody can
// end would pin its room forever.
func TestJoinNeedsLiveConnection(t *testing.T) {
	h := testHub(t, HubLimits{})
	if _, _, err := h.Join(bg, "r", "ghost"); !errors.Is(err, ErrNotAttached) {
		t.Fatalf("join without a connection: %v", err)
	}
	if h.hasRoom("r") {
		t.Fatal("the refused join made a room")
	}
}

// chat.history takes at most chat.MaxHistoryLimit (100) messages.
func TestHistoryLimitBound(t *testing.T) {
	_, addr := startServer(t, Config{})
	for _, proto := range allProtos {
		c := dial(t, addr, "lim-"+proto, proto)
		call[chat.HistoryResult](t, c, chat.MethodHistory, &chat.HistoryParams{Room: "r", Limit: chat.MaxHistoryLimit})
		e := rpcErr(t, c, chat.MethodHistory, &chat.HistoryParams{Room: "r", Limit: chat.MaxHistoryLimit + 1})
		if e.Code != codec.CodeInvalidParams || e.Data != "limit: at most 100" {
			t.Fatalf("%s: limit 101: %d %q", proto, e.Code, e.Data)
		}
	}
}

// The largest legal chat.history reply fits the default 4 MiB send queue
// in every encoding: 100 messages of 4096 control characters (json-rpc
// writes each as \u00XX, 6 bytes), 64-byte sender and room, the largest
// offsets and times, and in json-rpc a string id as long as the largest
// request could carry.
func TestLargestHistoryReplyFitsSendQueue(t *testing.T) {
	queue := Config{}.withDefaults().SendQueueBytes
	res := &chat.HistoryResult{Room: strings.Repeat("r", chat.MaxIDLen)}
	for range chat.MaxHistoryLimit {
		res.Messages = append(res.Messages, chat.HistoryEntry{
			Offset: math.MaxUint64, From: strings.Repeat("f", chat.MaxIDLen),
			Message: strings.Repeat("\x01", chat.MaxMessageLen), TS: math.MinInt64,
		})
	}
	maxFrame := int(Config{}.withDefaults().MaxMessageSize)
	for _, p := range protocols.All {
		id := codec.NumberID(math.MaxInt64)
		if p.Name == protocols.JSONRPC {
			id = codec.ID{Kind: codec.IDString, Raw: []byte(`"` + strings.Repeat("i", maxFrame-200) + `"`)}
		}
		b, err := codec.AppendResult(p.Codec, nil, id, res)
		if err != nil {
			t.Fatalf("%s: %v", p.Name, err)
		}
		if len(b) >= queue {
			t.Errorf("%s: the largest history reply is %d bytes, the send queue %d", p.Name, len(b), queue)
		}
		t.Logf("%s: %d bytes", p.Name, len(b))
	}
}

// BenchmarkDetach measures a disconnect of a client in 10 rooms while the
// node has n rooms: with the per-client index its cost does not grow
// with n.
func BenchmarkDetach(b *testing.B) {
	for _, n := range []int{1000, 100000} {
		b.Run(fmt.Sprint("rooms=", n), func(b *testing.B) {
			h := testHub(b, HubLimits{MaxRooms: n + 10, MaxRoomsPerClient: n}, "resident")
			for i := range n {
				mustJoin(b, h, fmt.Sprint("r", i), "resident")
			}
			p := &countingPeer{id: "visitor", codec: allCodecs[0]}
			for b.Loop() {
				b.StopTimer()
				h.Attach(bg, p)
				for i := range 10 {
					mustJoin(b, h, fmt.Sprint("r", i*(n/10)), "visitor")
				}
				b.StartTimer()
				h.Detach(bg, p)
			}
		})
	}
}

// errBus is what a hub on a network answers when it cannot reach its bus.
var errBus = errors.New("test: the bus is down")

// failingHub wraps the in-process hub; attach makes Attach fail, and
// History and Broadcast always fail.
type failingHub struct {
	Hub
	attach bool
}

func (f failingHub) Attach(ctx context.Context, p Peer) error {
	if f.attach {
		return errBus
	}
	return f.Hub.Attach(ctx, p)
}

func (f failingHub) History(context.Context, string, uint64, uint64) ([]chat.HistoryEntry, Position, error) {
	return nil, Position{}, errBus
}

func (f failingHub) Broadcast(context.Context, *Push) (int, error) { return 0, errBus }

// A hub that cannot answer refuses the upgrade with 503 when it cannot
// register the connection, and fails a call with -32603 (logged), never
// with a wrong answer.
func TestHubErrors(t *testing.T) {
	srv, addr := startServer(t, Config{Hub: failingHub{Hub: NewMemoryHub(HubLimits{}), attach: true}})
	upgrade(t, addr, addr, "/ws/a", "").expectStatus(http.StatusServiceUnavailable, refuseHub.text)
	expectMetric(t, srv, 1, "subgate_handshakes_refused_total", "reason=unavailable")
	expectNoConns(t, srv)

	_, addr = startServer(t, Config{Hub: failingHub{Hub: NewMemoryHub(HubLimits{})}})
	for _, proto := range allProtos {
		c := dial(t, addr, "b-"+proto, proto)
		call[chat.JoinResult](t, c, chat.MethodJoin, &chat.JoinParams{Room: "r"})
		if code := callErr(t, c, chat.MethodHistory, &chat.HistoryParams{Room: "r"}); code != codec.CodeInternalError {
			t.Errorf("%s: history on a failing hub: %d, want -32603", proto, code)
		}
		if code := callErr(t, c, chat.MethodBroadcast, &chat.BroadcastParams{Message: "x"}); code != codec.CodeInternalError {
			t.Errorf("%s: broadcast on a failing hub: %d, want -32603", proto, code)
		}
	}
}
