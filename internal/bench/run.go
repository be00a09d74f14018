package bench

import (
	"context"
	"fmt"
	"io"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
)

// run is the state of one Run.
type run struct {
	cfg    *Config
	dial   dialFunc
	rec    *recorder
	protos []string

	mStart  time.Time // the measured window: [mStart, mStart+Duration)
	endMark sync.Once // "window end" is printed once: by its timer or when the run returns
	errMu   sync.Mutex
	first   string // the first error, for the report
}

// Run runs cfg's scenario against its target and returns the result. It
// returns an error only when the run could not start (a bad
// configuration); failures during the run are counted in the result.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	if err := cfg.fill(); err != nil {
		return nil, err
	}
	dial, err := cfg.dialer()
	if err != nil {
		return nil, err
	}
	r := &run{cfg: &cfg, dial: dial, protos: cfg.protos()}
	r.rec = newRecorder(r.protos)
	if cfg.Progress != nil {
		stop := r.progress(cfg.Progress)
		defer stop()
	}
	if cfg.Marks != nil {
		// The run may return before the end timer fires (a connect loop
		// ends at the window's end); the process must not exit unmarked.
		defer func() {
			if !r.mStart.IsZero() {
				r.markEnd()
			}
		}()
	}
	switch cfg.Scenario {
	case "ping", "pipeline":
		return r.calls(ctx)
	case "broadcast", "room":
		return r.deliveries(ctx)
	case "idle":
		return r.idle(ctx)
	default:
		return r.connect(ctx)
	}
}

// noteErr counts an error of connection (encoding p, key) and keeps the
// first one's text.
func (r *run) noteErr(p, key int, err error) {
	r.rec.fail(p, key)
	r.errMu.Lock()
	if r.first == "" {
		r.first = err.Error()
	}
	r.errMu.Unlock()
}

// proto is the encoding index of connection g: with -proto all a third
// each.
func (r *run) proto(g int) int { return g % len(r.protos) }

// dialAll opens n connections, the i-th being run-wide connection g(i),
// paced by DialRate, with dialWorkers handshakes at once. Failures are nil
// and counted; with timed set, each handshake's time is recorded as an op.
func (r *run) dialAll(ctx context.Context, n int, g func(int) int, onText func(i int) func(string), timed bool) []conn {
	conns := make([]timedConn, n)
	limit := rate.Inf
	ramp := rampSlack
	if d := r.cfg.DialRate / float64(r.cfg.Shards); d > 0 {
		limit = rate.Limit(d)
		ramp += time.Duration(float64(n) / d * float64(time.Second))
	}
	lim := rate.NewLimiter(limit, dialWorkers)
	ctx, cancel := context.WithTimeout(ctx, ramp)
	defer cancel()
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(dialWorkers, n) {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
				p := r.proto(g(i))
				if err := lim.Wait(ctx); err != nil {
					r.noteErr(p, i, fmt.Errorf("bench: ramp-up took longer than %v", ramp))
					continue
				}
				var text func(string)
				if onText != nil {
					text = onText(i)
				}
				c, err := r.dialOne(ctx, g(i), p, text)
				if err != nil {
					r.noteErr(p, i, err)
					continue
				}
				conns[i] = c
				if timed {
					r.rec.record(p, i, c.took)
				}
			}
		})
	}
	wg.Wait()
	out := make([]conn, n)
	for i, c := range conns {
		if c.conn != nil {
			out[i] = c.conn
		}
	}
	return out
}

// timedConn is a connection and how long its handshake took.
type timedConn struct {
	conn
	took time.Duration
}

func (r *run) dialOne(ctx context.Context, g, p int, onText func(string)) (timedConn, error) {
	dctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	t0 := time.Now()
	c, err := r.dial(dctx, g, r.protos[p], onText)
	if err != nil {
		return timedConn{}, err
	}
	r.rec.conns.Add(1)
	return timedConn{c, time.Since(t0)}, nil
}

// closeAll closes the connections, counting those that had broken.
func (r *run) closeAll(conns []conn, g func(int) int) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(closeWorkers, len(conns)) {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < len(conns); i = int(next.Add(1) - 1) {
				c := conns[i]
				if c == nil {
					continue
				}
				if err := c.broken(); err != nil {
					r.noteErr(r.proto(g(i)), i, fmt.Errorf("bench: connection dropped: %w", err))
				}
				c.close()
				r.rec.conns.Add(-1)
			}
		})
	}
	wg.Wait()
}

// closer returns closeAll of conns as a function that runs once: a run
// calls it before taking its result, so that the connections found
// dropped count as errors, and defers it for the paths that return early.
func (r *run) closer(conns []conn, g func(int) int) func() {
	return sync.OnceFunc(func() { r.closeAll(conns, g) })
}

// ready waits for the other processes of -procs, if any.
func (r *run) ready() error {
	if r.cfg.Sync == nil {
		return nil
	}
	return r.cfg.Sync.Ready()
}

// schedule hands out operations: with a rate, tickets due at fixed times
// from start (shared by every slot of the process); without, now.
type schedule struct {
	start, stop time.Time
	perSec      float64 // 0: closed loop
	next        atomic.Int64
}

// markEnd prints "window end", once.
func (r *run) markEnd() {
	r.endMark.Do(func() { fmt.Fprintln(r.cfg.Marks, "window end") })
}

func (r *run) newSchedule() *schedule {
	now := time.Now()
	r.mStart = now.Add(r.cfg.Warmup)
	stop := r.mStart.Add(r.cfg.Duration)
	if w := r.cfg.Marks; w != nil {
		time.AfterFunc(r.cfg.Warmup, func() { fmt.Fprintln(w, "window start") })
		time.AfterFunc(stop.Sub(now), r.markEnd)
	}
	return &schedule{start: now, stop: stop, perSec: r.rate()}
}

// rate is this process's part of Config.Rate: in proportion to the
// senders it holds in broadcast and room (a process of -procs may hold
// none: with one sender, only the first does), an even share otherwise.
func (r *run) rate() float64 {
	c := r.cfg
	switch c.Scenario {
	case "broadcast":
		return c.Rate * float64(c.share(c.Senders)) / float64(c.Senders)
	case "room":
		return c.Rate * float64(c.share(c.Rooms)) / float64(c.Rooms)
	}
	return c.Rate / float64(c.Shards)
}

// take returns the time the next operation is due (its latency is measured
// from it), after waiting for it; ok is false once the run is over.
func (s *schedule) take(ctx context.Context) (due time.Time, ok bool) {
	if s.perSec == 0 {
		now := time.Now()
		return now, now.Before(s.stop) && ctx.Err() == nil
	}
	n := s.next.Add(1) - 1
	due = s.start.Add(time.Duration(math.Round(float64(n) / s.perSec * 1e9)))
	if !due.Before(s.stop) {
		return due, false
	}
	if wait := time.Until(due); wait > 0 {
		t := time.NewTimer(wait)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
			return due, false
		}
	}
	return due, ctx.Err() == nil
}

// measured says whether an operation due at t counts.
func (r *run) measured(t time.Time) bool { return !t.Before(r.mStart) }

// newResult fills a Result from the recorder; lost deliveries, already in
// byProto, count as errors.
func (r *run) newResult(conns int, window time.Duration, byProto map[string]*Stats) *Result {
	c := r.cfg
	res := &Result{
		Scenario: c.Scenario, Target: c.Target, Proto: c.Proto, Conns: conns,
		Subs: c.Subs, Rooms: c.Rooms, Senders: c.Senders, Inflight: c.Inflight,
		Rate: r.rate(), DurationS: window.Seconds(),
		FirstError: r.first,
	}
	if c.Target == "centrifugo" {
		res.Proto = "json"
	} else if c.Target != "subgate" {
		res.Proto = r.protos[0]
	}
	res.Stats.h = newHist()
	for _, name := range r.protos {
		s := byProto[name]
		s.Errors += s.Lost
		res.Stats.add(s)
	}
	if len(r.protos) > 1 {
		res.ByProto = byProto
	}
	res.finish()
	return res
}

// progress prints a line every second until the returned stop is called.
func (r *run) progress(w io.Writer) (stop func()) {
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(time.Second)
		defer t.Stop()
		start, last := time.Now(), int64(0)
		for {
			select {
			case <-done:
				fmt.Fprintln(w)
				return
			case <-t.C:
			}
			total, _ := r.rec.snapshot()
			ops := r.rec.ops.Load()
			fmt.Fprintf(w, "\r%4.0fs %10d ops/s  p50 %7dus  p99 %7dus  errors %d  conns %d   ",
				time.Since(start).Seconds(), ops-last, total.h.ValueAtQuantile(50), total.h.ValueAtQuantile(99),
				r.rec.errs.Load(), r.rec.conns.Load())
			last = ops
		}
	}()
	return func() { close(done); <-finished }
}
