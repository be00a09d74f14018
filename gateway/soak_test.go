package gateway

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/subgate/subgate/client"
	"github.com/subgate/subgate/protocols/chat"
)

// TestSoak runs a few hundred well-behaved clients in the three encodings
// against one server for SUBGATE_SOAK_DURATION, while others stall, reset
// mid-frame, send garbage and churn. At the end: no goroutine or
// descriptor leak, a bounded heap, every answered chat.send in history
// exactly once and in order, and every well-behaved member got every
// message of its rooms, in order. Gated by SUBGATE_SOAK=1 (test.sh sets
// it); SUBGATE_SOAK_SEED repeats a run's random choices.
func TestSoak(t *testing.T) {
	if os.Getenv("SUBGATE_SOAK") != "1" {
		t.Skip("soak test: set SUBGATE_SOAK=1 to run it (test.sh does); SUBGATE_SOAK_DURATION sets its length (default 45s)")
	}
	duration, seed := soakSettings(t)
	start := time.Now()
	s := newSoak(t, seed)
	goroutines, fds := runtime.NumGoroutine(), openFDs(t)
	var phases []string
	phase := func(name string, f func()) {
		begin := time.Now()
		f()
		phases = append(phases, fmt.Sprintf("%s %v", name, time.Since(begin).Round(time.Millisecond)))
	}
	phase("setup", s.setup)
	phase("run", func() { s.run(duration) })
	phase("settle", s.settle)
	phase("check", func() {
		s.expectRoomsEmpty()
		s.checkHistory()
		s.checkDeliveries()
	})
	summary := s.summary()
	phase("close", s.closeAll)
	s.release()
	phase("leaks", func() { s.expectNoLeaks(goroutines, fds) })
	s.log.check(t)
	t.Logf("soak: %s", summary)
	t.Logf("soak: wall time %v (%s)", time.Since(start).Round(time.Millisecond), strings.Join(phases, ", "))
}

const (
	soakPerProto  = 80   // well-behaved members per encoding
	soakRooms     = 8    // rooms the members use
	soakMaxRooms  = 2    // rooms a member is in at most at once
	soakPageLimit = 100  // chat.history pages (the largest limit issue 6 keeps)
	soakFillSize  = 4000 // bytes of each message of the stall room
	// soakHeapBound bounds the heap after GC at the end, once the test has
	// dropped its records: what is left is the server's history (about
	// 2 MiB for a 45 s run, 10 MiB would be several minutes) and the
	// runtime's own; leaked connections or their buffers would exceed it.
	soakHeapBound = 16 << 20
	// Slack for goroutines and descriptors the runtime and net/http may
	// still be winding down (poller, timers), far below one per client.
	soakGoroutineSlack, soakFDSlack = 10, 5
	soakCallTimeout                 = 10 * time.Second
)

// soakStallRoom holds soakPageLimit messages of soakFillSize bytes: a
// chat.history of it is a 400 KB reply, which stallers ask for and never
// read.
const soakStallRoom = "stall-room"

func soakSettings(t *testing.T) (time.Duration, uint64) {
	duration := 45 * time.Second
	if v := os.Getenv("SUBGATE_SOAK_DURATION"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("SUBGATE_SOAK_DURATION: %v", err)
		}
		duration = d
	}
	seed := uint64(time.Now().UnixNano())
	if v := os.Getenv("SUBGATE_SOAK_SEED"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("SUBGATE_SOAK_SEED: %v", err)
		}
		seed = n
	}
	t.Logf("soak: %v, seed %d (SUBGATE_SOAK_SEED=%d repeats the random choices)", duration, seed, seed)
	return duration, seed
}

// soakOp names what the summary counts.
type soakOp int

const (
	opJoin soakOp = iota
	opLeave
	opSend
	opBroadcast
	opDirect
	opHistory
	opMembers
	opDelivered // chat.message pushes received by members
	opStall
	opReset
	opGarbage
	opChurn
	opCount
)

var opNames = [opCount]string{"join", "leave", "send", "broadcast", "direct", "history", "members",
	"delivered", "stall", "reset", "garbage", "churn"}

// sendRecord is one chat.send attempt. Ticks order events across
// goroutines; done is 0 when no result came back.
type sendRecord struct {
	from, room, text string
	start, done      uint64
	offset           uint64
}

type soak struct {
	t     *testing.T
	srv   *Server
	addr  string
	log   *serverLog
	seed  uint64
	ctx   context.Context // ends when the run's duration has passed
	clock atomic.Uint64
	ops   [opCount]atomic.Int64

	mu         sync.Mutex
	sends      map[string]*sendRecord // every attempt, by text
	broadcasts []string               // answered chat.broadcast texts

	members []*member
	rooms   []string
	checker *client.Client
	history map[string][]chat.HistoryEntry // by room, read at the end
}

func newSoak(t *testing.T, seed uint64) *soak {
	log := &serverLog{}
	srv, addr := startServer(t, Config{
		// Members read promptly: a generous queue never drops them, and a
		// staller still overflows it with a few 400 KB replies.
		SendQueueBytes: 2 << 20,
		WriteTimeout:   5 * time.Second,
		CloseTimeout:   500 * time.Millisecond,
		// Every message of the run is kept, for the exactly-once check.
		HistorySize:         1 << 20,
		HistoryBytesPerRoom: 256 << 20,
		HistoryBytes:        256 << 20,
		// Members call about once a second; feeders as fast as they can
		// (a high limit still runs the limiter). The connection caps keep
		// their defaults: the run holds about 300 connections.
		RateLimit: 1e6,
		RateBurst: 1e6,
		Logger:    slog.New(log),
	})
	s := &soak{t: t, srv: srv, addr: addr, log: log, seed: seed, sends: map[string]*sendRecord{}}
	for i := range soakRooms {
		s.rooms = append(s.rooms, fmt.Sprint("room-", i))
	}
	return s
}

func (s *soak) tick() uint64                 { return s.clock.Add(1) }
func (s *soak) count(op soakOp)              { s.ops[op].Add(1) }
func (s *soak) rng(stream uint64) *rand.Rand { return rand.New(rand.NewPCG(s.seed, stream)) }

// attempt records a chat.send about to be made.
func (s *soak) attempt(from, room, text string) *sendRecord {
	r := &sendRecord{from: from, room: room, text: text, start: s.tick()}
	s.mu.Lock()
	s.sends[text] = r
	s.mu.Unlock()
	return r
}

// send makes a recorded chat.send.
func (s *soak) send(c *client.Client, from, room, text string) (*sendRecord, error) {
	r := s.attempt(from, room, text)
	var res chat.SendResult
	if err := soakCall(c, chat.MethodSend, &chat.SendParams{Room: room, Message: text}, &res); err != nil {
		return nil, err
	}
	r.done, r.offset = s.tick(), res.Offset
	if res.Room != room || res.Offset == 0 {
		return nil, fmt.Errorf("send to %s: result %+v", room, res)
	}
	s.count(opSend)
	return r, nil
}

func soakCall(c *client.Client, method string, params, result any) error {
	ctx, cancel := context.WithTimeout(context.Background(), soakCallTimeout)
	defer cancel()
	if err := c.Call(ctx, method, params, result); err != nil {
		return fmt.Errorf("%s over %s: %w", method, c.Protocol(), err)
	}
	return nil
}

// setup fills the stall room and connects the members.
func (s *soak) setup() {
	filler := dial(s.t, s.addr, "filler", allProtos[0])
	call[chat.JoinResult](s.t, filler, chat.MethodJoin, &chat.JoinParams{Room: soakStallRoom})
	for i := range soakPageLimit {
		text := fmt.Sprintf("fill/%d/", i)
		if _, err := s.send(filler, "filler", soakStallRoom, text+strings.Repeat("x", soakFillSize-len(text))); err != nil {
			s.t.Fatal(err)
		}
	}
	filler.Close()
	for i := range soakPerProto * len(allProtos) {
		s.members = append(s.members, s.dialMember(i))
	}
	s.checker = dial(s.t, s.addr, "checker", allProtos[0])
}

// run lets members and misbehaving clients loose for duration.
func (s *soak) run(duration time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), duration)
	defer cancel()
	s.ctx = ctx
	var wg sync.WaitGroup
	for _, m := range s.members {
		wg.Go(m.loop)
	}
	for i, proto := range allProtos {
		for k, op := range []soakOp{opStall, opReset, opGarbage, opChurn} {
			rng := s.rng(uint64(1000 + 10*i + k))
			wg.Go(func() { s.misbehave(op, proto, rng) })
		}
	}
	stopped := make(chan struct{})
	go func() { wg.Wait(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(duration + time.Minute):
		s.t.Fatal("clients still running a minute after the end of the run")
	}
}

// settle has every member leave its rooms, which closes every membership
// after the last send, and makes one call last: its reply comes after
// every push queued to the member before it.
func (s *soak) settle() {
	var wg sync.WaitGroup
	for _, m := range s.members {
		wg.Go(func() {
			for _, room := range m.memberOf() {
				if err := m.leave(room); err != nil {
					s.t.Errorf("%s: %v", m.id, err)
				}
			}
			if err := soakCall(m.c, chat.MethodPing, &chat.PingParams{}, nil); err != nil {
				s.t.Errorf("%s: %v", m.id, err)
			}
		})
	}
	wg.Wait()
	if s.t.Failed() {
		s.t.FailNow()
	}
}

// expectRoomsEmpty waits for the server to forget every client but the
// members and the checker, then checks that nobody is left in a room:
// the members left theirs, and the others left theirs by disconnecting.
func (s *soak) expectRoomsEmpty() {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := s.srv.WaitConns(ctx, len(s.members)+1); err != nil {
		s.t.Fatal(err)
	}
	for _, room := range append(slices.Clone(s.rooms), soakStallRoom) {
		if r := call[chat.MembersResult](s.t, s.checker, chat.MethodMembers, &chat.MembersParams{Room: room}); len(r.Members) > 0 {
			s.t.Fatalf("%s: members %v left after everyone left or disconnected", room, r.Members)
		}
	}
}

// checkHistory reads every room's history in pages and checks it against
// the sends: offsets from 1 without a gap, every message a recorded send
// from its sender, every answered send at its offset exactly once, and
// each sender's offsets increasing in the order it sent.
func (s *soak) checkHistory() {
	t := s.t
	s.history = map[string][]chat.HistoryEntry{}
	seen := map[string]bool{}
	for _, room := range append(slices.Clone(s.rooms), soakStallRoom) {
		h := s.readHistory(room)
		s.history[room] = h
		for i, e := range h {
			r := s.sends[e.Message]
			switch {
			case e.Offset != uint64(i+1):
				t.Fatalf("%s: history entry %d has offset %d", room, i, e.Offset)
			case r == nil || r.room != room || r.from != e.From:
				t.Fatalf("%s: offset %d from %s holds a message nobody sent there: %.40q", room, e.Offset, e.From, e.Message)
			case seen[e.Message]:
				t.Fatalf("%s: %.40q is in history twice", room, e.Message)
			}
			seen[e.Message] = true
		}
	}
	for _, r := range s.sends {
		if r.done == 0 {
			continue
		}
		if h := s.history[r.room]; r.offset > uint64(len(h)) || h[r.offset-1].Message != r.text {
			t.Fatalf("%s: send %.40q answered with offset %d is not in history there", r.room, r.text, r.offset)
		}
	}
	for _, m := range s.members {
		last := map[string]uint64{}
		for _, r := range m.sends {
			if r.offset <= last[r.room] {
				t.Fatalf("%s: send to %s got offset %d after %d", m.id, r.room, r.offset, last[r.room])
			}
			last[r.room] = r.offset
		}
	}
}

// readHistory pages through a room's history, soakPageLimit at a time.
func (s *soak) readHistory(room string) []chat.HistoryEntry {
	var all []chat.HistoryEntry
	for pages := 0; pages < 1<<16; pages++ {
		var since uint64
		if len(all) > 0 {
			since = all[len(all)-1].Offset
		}
		h := call[chat.HistoryResult](s.t, s.checker, chat.MethodHistory, &chat.HistoryParams{Room: room, Since: since, Limit: soakPageLimit})
		all = append(all, h.Messages...)
		if len(h.Messages) < soakPageLimit {
			return all
		}
	}
	s.t.Fatalf("%s: history never ends", room)
	return nil
}

// checkDeliveries checks what each member received: the messages of its
// rooms while it was a member, every broadcast in the same order as every
// other member, and every direct message sent to it, per sender in order.
func (s *soak) checkDeliveries() {
	sentTo := map[string][]string{} // "from>to" -> texts in order
	for _, m := range s.members {
		for _, d := range m.directs {
			sentTo[m.id+">"+d.to] = append(sentTo[m.id+">"+d.to], d.text)
		}
	}
	for _, m := range s.members {
		for _, room := range s.rooms {
			if err := s.checkRoom(m, room); err != nil {
				s.t.Fatalf("%s in %s: %v", m.id, room, err)
			}
		}
		if !slices.Equal(m.gotBroadcasts, s.members[0].gotBroadcasts) {
			s.t.Fatalf("%s received %d broadcasts, %s %d, or in another order", m.id, len(m.gotBroadcasts), s.members[0].id, len(s.members[0].gotBroadcasts))
		}
		got := map[string][]string{}
		for _, d := range m.gotDirects {
			got[d.From+">"+m.id] = append(got[d.From+">"+m.id], d.Message)
		}
		for _, from := range s.members {
			key := from.id + ">" + m.id
			if !slices.Equal(got[key], sentTo[key]) {
				s.t.Fatalf("%s: direct messages %v, sent %v", key, got[key], sentTo[key])
			}
		}
	}
	got := slices.Clone(s.members[0].gotBroadcasts)
	slices.Sort(got)
	want := slices.Clone(s.broadcasts)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		s.t.Fatalf("members received %d broadcasts, %d were answered", len(got), len(want))
	}
}

// checkRoom checks the chat.message pushes m received for room against
// its memberships there. A membership that joined at offset j gets
// exactly the offsets j+1..L, where L, the room's offset when the leave
// was handled, is at least that of every send answered before the leave
// started and at most that of every send started before the leave was
// answered. The pushes must match the history.
func (s *soak) checkRoom(m *member, room string) error {
	got, stints := m.got[room], m.stints[room]
	i := 0
	for k, st := range stints {
		bound := ^uint64(0)
		if k+1 < len(stints) {
			bound = stints[k+1].joinOffset
		}
		next := st.joinOffset + 1
		for ; i < len(got) && got[i].Offset <= bound; i++ {
			if got[i].Offset != next {
				return fmt.Errorf("membership %d (joined at %d): got offset %d, want %d", k, st.joinOffset, got[i].Offset, next)
			}
			if e := s.history[room][next-1]; e.From != got[i].From || e.Message != got[i].Message {
				return fmt.Errorf("offset %d: pushed %+v, history has %+v", next, got[i], e)
			}
			next++
		}
		if lo, hi := s.windowOf(room, st); next-1 < lo || next-1 > hi {
			return fmt.Errorf("membership %d (joined at %d): received up to %d, want between %d and %d", k, st.joinOffset, next-1, lo, hi)
		}
	}
	if i < len(got) {
		return fmt.Errorf("offset %d received outside any membership", got[i].Offset)
	}
	return nil
}

// windowOf returns the least and the greatest last offset a membership
// may have received.
func (s *soak) windowOf(room string, st *stint) (lo, hi uint64) {
	lo, hi = st.joinOffset, st.joinOffset
	for _, e := range s.history[room] {
		r := s.sends[e.Message]
		if r.done != 0 && r.done < st.leaveStart {
			lo = max(lo, e.Offset)
		}
		if r.start < st.leaveDone {
			hi = max(hi, e.Offset)
		}
	}
	return lo, hi
}

// closeAll closes every client and waits for the server to forget them.
func (s *soak) closeAll() {
	for _, m := range s.members {
		m.c.Close()
	}
	s.checker.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := s.srv.WaitConns(ctx, 0); err != nil {
		s.t.Fatal(err)
	}
}

// expectNoLeaks waits for the goroutines and descriptors to come back to
// what they were before the clients, and checks the heap.
func (s *soak) expectNoLeaks(goroutines, fds int) {
	deadline := time.Now().Add(10 * time.Second)
	poll := time.NewTicker(20 * time.Millisecond)
	defer poll.Stop()
	for runtime.NumGoroutine() > goroutines+soakGoroutineSlack || openFDs(s.t) > fds+soakFDSlack {
		if time.Now().After(deadline) {
			var b bytes.Buffer
			_ = pprof.Lookup("goroutine").WriteTo(&b, 1)
			s.t.Fatalf("goroutines %d (before %d), descriptors %d (before %d):\n%s",
				runtime.NumGoroutine(), goroutines, openFDs(s.t), fds, b.String())
		}
		<-poll.C
	}
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	if ms.HeapAlloc > soakHeapBound {
		s.t.Fatalf("heap %d MiB after GC, bound %d MiB", ms.HeapAlloc>>20, soakHeapBound>>20)
	}
	s.t.Logf("soak: heap after GC %.1f MiB, goroutines %d (before %d), descriptors %d (before %d)",
		float64(ms.HeapAlloc)/(1<<20), runtime.NumGoroutine(), goroutines, openFDs(s.t), fds)
}

// openFDs counts the process's open descriptors.
func openFDs(t *testing.T) int {
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatalf("counting descriptors needs /proc (Linux): %v", err)
	}
	return len(entries)
}

// summary counts what the run did.
func (s *soak) summary() string {
	var b strings.Builder
	answered := 0
	for _, r := range s.sends {
		if r.done != 0 {
			answered++
		}
	}
	fmt.Fprintf(&b, "%d members, %d sends answered, %d broadcasts; counts:", len(s.members), answered, len(s.broadcasts))
	for op := range opCount {
		fmt.Fprintf(&b, " %s=%d", opNames[op], s.ops[op].Load())
	}
	return b.String()
}

// release drops the test's records, so that the heap measured after it
// is the server's.
func (s *soak) release() {
	for _, m := range s.members { // still reachable through the cleanups' clients
		m.stints, m.sends, m.directs, m.got, m.gotBroadcasts, m.gotDirects = nil, nil, nil, nil, nil, nil
	}
	s.sends, s.broadcasts, s.history, s.members = nil, nil, nil, nil
}
