package bench

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/subgate/subgate/codec"
)

// calls runs ping (one call at a time per connection) and pipeline
// (Inflight at a time).
func (r *run) calls(ctx context.Context) (*Result, error) {
	n := r.cfg.share(r.cfg.Conns)
	conns := r.dialAll(ctx, n, r.cfg.global, nil, false)
	closeAll := r.closer(conns, r.cfg.global)
	defer closeAll()
	if err := r.ready(); err != nil {
		return nil, err
	}
	slots := 1
	if r.cfg.Scenario == "pipeline" {
		slots = r.cfg.Inflight
	}
	s := r.newSchedule()
	var wg sync.WaitGroup
	for i, c := range conns {
		if c == nil {
			continue
		}
		p := r.proto(r.cfg.global(i))
		for range slots {
			wg.Go(func() { r.callLoop(ctx, s, c, p, i) })
		}
	}
	wg.Wait()
	closeAll()
	return r.finishCalls(n), nil
}

func (r *run) finishCalls(n int) *Result {
	_, byProto := r.rec.snapshot()
	return r.newResult(n, r.cfg.Duration, byProto)
}

// callLoop pings until the schedule ends or the connection breaks.
func (r *run) callLoop(ctx context.Context, s *schedule, c conn, p, key int) {
	for {
		due, ok := s.take(ctx)
		if !ok {
			return
		}
		cctx, cancel := context.WithTimeout(ctx, callTimeout)
		err := c.ping(cctx)
		cancel()
		took := time.Since(due)
		if err != nil {
			if r.measured(due) {
				r.noteErr(p, key, err)
			}
			if connLost(c, err) {
				// The connection is gone: one error, not one per retry. Its
				// reader says so soon; then closing the run counts it dropped.
				select {
				case <-c.ended():
				case <-time.After(callTimeout):
				}
				return
			}
			continue
		}
		if r.measured(due) {
			r.rec.record(p, key, took)
		}
	}
}

// subscriber is one receiving connection of broadcast or room.
type subscriber struct {
	p, room  int
	received atomic.Int64
	expected int64
}

// deliveries runs broadcast (every subscriber gets every message) and room
// (members get their room's messages).
func (r *run) deliveries(ctx context.Context) (*Result, error) {
	c := r.cfg
	var subs []*subscriber
	var globals []int
	if c.Scenario == "broadcast" {
		for i := range c.share(c.Subs) {
			globals = append(globals, c.global(i))
		}
	} else {
		for room := c.Shard; room < c.Rooms; room += c.Shards {
			for m := range c.Subs {
				globals = append(globals, room*c.Subs+m)
			}
		}
	}
	for _, g := range globals {
		subs = append(subs, &subscriber{p: r.proto(g), room: g / c.Subs})
	}
	g := func(i int) int { return globals[i] }
	prefix := "sgb " + c.RunID + " "
	conns := r.dialAll(ctx, len(subs), g, func(i int) func(string) {
		return func(text string) { r.delivered(subs[i], i, prefix, text) }
	}, false)
	closeAll := r.closer(conns, g)
	defer closeAll()
	if c.Scenario == "room" {
		r.joinAll(ctx, conns, subs)
	}
	if err := r.ready(); err != nil {
		return nil, err
	}

	sent := make([]atomic.Int64, max(c.Rooms, 1)) // measured messages sent, per room
	sentByProto := make([]int64, len(r.protos))
	var mu sync.Mutex
	s := r.newSchedule()
	var wg sync.WaitGroup
	for i, conn := range conns {
		if conn == nil || !r.isSender(globals[i]) {
			continue
		}
		wg.Go(func() {
			n := r.sendLoop(ctx, s, conn, subs[i], i, globals[i], prefix, &sent[subs[i].room])
			mu.Lock()
			sentByProto[subs[i].p] += n
			mu.Unlock()
		})
	}
	wg.Wait()

	total := int64(0)
	for i := range sent {
		total += sent[i].Load()
	}
	if c.Scenario == "broadcast" && c.Sync != nil {
		var err error
		if total, err = c.Sync.TotalSent(total); err != nil {
			return nil, err
		}
	}
	for i, sub := range subs {
		switch {
		case conns[i] == nil: // never connected: its deliveries are not expected
		case c.Scenario == "broadcast":
			sub.expected = total
		default:
			sub.expected = sent[sub.room].Load()
		}
	}
	r.drain(ctx, subs)
	closeAll()
	return r.deliveryResult(len(subs), subs, sentByProto), nil
}

// isSender says whether run-wide subscriber g also sends: the first
// Senders subscribers (broadcast) or members of each room (room).
func (r *run) isSender(g int) bool {
	if r.cfg.Scenario == "broadcast" {
		return g < r.cfg.Senders
	}
	return g%r.cfg.Subs < r.cfg.Senders
}

// joinAll makes every member join its room before anything is sent.
func (r *run) joinAll(ctx context.Context, conns []conn, subs []*subscriber) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(dialWorkers, len(conns)) {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < len(conns); i = int(next.Add(1) - 1) {
				if conns[i] == nil {
					continue
				}
				jctx, cancel := context.WithTimeout(ctx, callTimeout)
				if err := conns[i].join(jctx, r.roomName(subs[i].room)); err != nil {
					r.noteErr(subs[i].p, i, fmt.Errorf("bench: join: %w", err))
				}
				cancel()
			}
		})
	}
	wg.Wait()
}

func (r *run) roomName(room int) string { return "bench-" + r.cfg.RunID + "-" + strconv.Itoa(room) }

// sendLoop sends messages until the schedule ends and returns how many
// measured ones got a successful reply.
func (r *run) sendLoop(ctx context.Context, s *schedule, c conn, sub *subscriber, key, g int, prefix string, sent *atomic.Int64) int64 {
	var n int64
	for seq := 0; ; seq++ {
		due, ok := s.take(ctx)
		if !ok {
			return n
		}
		mark := "W"
		if r.measured(due) {
			mark = "M"
		}
		text := prefix + strconv.Itoa(g) + " " + strconv.Itoa(seq) + " " + mark + " " + strconv.FormatInt(due.UnixNano(), 10)
		cctx, cancel := context.WithTimeout(ctx, callTimeout)
		var err error
		if r.cfg.Scenario == "broadcast" {
			err = c.broadcast(cctx, text)
		} else {
			err = c.send(cctx, r.roomName(sub.room), text)
		}
		cancel()
		switch {
		case err != nil && mark == "M":
			r.noteErr(sub.p, key, err)
		case err == nil && mark == "M":
			n++
			sent.Add(1)
		}
		if err != nil && c.broken() != nil {
			return n
		}
	}
}

// delivered counts a message pushed to sub if it is a measured one of this
// run, with its send-to-delivery latency.
func (r *run) delivered(sub *subscriber, key int, prefix, text string) {
	rest, ok := strings.CutPrefix(text, prefix)
	if !ok {
		return
	}
	f := strings.Fields(rest) // sender, seq, mark, send time
	if len(f) != 4 || f[2] != "M" {
		return
	}
	ns, err := strconv.ParseInt(f[3], 10, 64)
	if err != nil {
		return
	}
	sub.received.Add(1)
	r.rec.record(sub.p, key, time.Since(time.Unix(0, ns)))
}

// drain waits, at most drainTimeout, until every subscriber has received
// what it expects.
func (r *run) drain(ctx context.Context, subs []*subscriber) {
	deadline := time.Now().Add(drainTimeout)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for time.Now().Before(deadline) {
		missing := false
		for _, s := range subs {
			if s.received.Load() < s.expected {
				missing = true
				break
			}
		}
		if !missing {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

func (r *run) deliveryResult(n int, subs []*subscriber, sentByProto []int64) *Result {
	_, byProto := r.rec.snapshot()
	for p, name := range r.protos {
		byProto[name].Sent = sentByProto[p]
	}
	for _, s := range subs {
		st := byProto[r.protos[s.p]]
		st.Expected += s.expected
		st.Lost += max(0, s.expected-s.received.Load())
	}
	return r.newResult(n, r.cfg.Duration, byProto)
}

// idle holds connections open doing nothing; ops are the connections
// established and latency is the handshake's.
func (r *run) idle(ctx context.Context) (*Result, error) {
	n := r.cfg.share(r.cfg.Conns)
	t0 := time.Now()
	conns := r.dialAll(ctx, n, r.cfg.global, nil, true)
	ramp := time.Since(t0)
	defer r.closeAll(conns, r.cfg.global)
	if err := r.ready(); err != nil {
		return nil, err
	}
	_, byProto := r.rec.snapshot()
	res := r.newResult(n, ramp, byProto)
	if r.cfg.OnHolding != nil {
		r.cfg.OnHolding(res)
	}
	t := time.NewTimer(r.cfg.Hold)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
	return res, nil
}

// connect runs Conns dialers, each connecting, upgrading and closing in a
// loop; latency is the handshake's (to the end of the upgrade).
func (r *run) connect(ctx context.Context) (*Result, error) {
	n := r.cfg.share(r.cfg.Conns)
	if err := r.ready(); err != nil {
		return nil, err
	}
	s := r.newSchedule()
	var wg sync.WaitGroup
	for i := range n {
		g := r.cfg.global(i)
		wg.Go(func() { r.connectLoop(ctx, s, g, r.proto(g), i) })
	}
	wg.Wait()
	_, byProto := r.rec.snapshot()
	return r.newResult(n, r.cfg.Duration, byProto), nil
}

func (r *run) connectLoop(ctx context.Context, s *schedule, g, p, key int) {
	for {
		due, ok := s.take(ctx)
		if !ok {
			return
		}
		c, err := r.dialOne(ctx, g, p, nil)
		took := time.Since(due)
		if err == nil {
			c.close()
			r.rec.conns.Add(-1)
		}
		if !r.measured(due) {
			continue
		}
		if err != nil {
			r.noteErr(p, key, err)
			continue
		}
		r.rec.record(p, key, took)
	}
}

// connLost tells a failed call on a connection that is gone from one that
// failed alone (an error reply, a timeout): a write to a dropped socket can
// fail before the client's reader has noticed the drop.
func connLost(c conn, err error) bool {
	var rpc *codec.Error
	return c.broken() != nil || !(errors.As(err, &rpc) || errors.Is(err, context.DeadlineExceeded))
}
