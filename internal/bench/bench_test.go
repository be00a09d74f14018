package bench

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"math"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/subgate/subgate/gateway"
)

// startGateway runs an in-process gateway on 127.0.0.1 without a call
// rate limit (a load test calls as fast as it can).
func startGateway(t *testing.T) (*gateway.Server, string) {
	t.Helper()
	srv, err := gateway.New(gateway.Config{
		RateLimit: math.Inf(1),
		Logger:    slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		hs.Close()
	})
	return srv, "ws://" + hs.Listener.Addr().String()
}

// short is a quick run's timing.
func short(c Config) Config {
	c.Duration = or(c.Duration, 300*time.Millisecond)
	c.Warmup = 50 * time.Millisecond
	c.Hold = 10 * time.Millisecond
	return c
}

func runOK(t *testing.T, c Config) *Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	res, err := Run(ctx, short(c))
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if res.Errors != 0 {
		t.Fatalf("%s: %d errors, first: %s", c.Scenario, res.Errors, res.FirstError)
	}
	if res.Ops == 0 {
		t.Fatalf("%s: no ops", c.Scenario)
	}
	checkTotals(t, res)
	return res
}

// checkTotals checks that the per-encoding numbers add up to the total and
// that deliveries are all accounted for.
func checkTotals(t *testing.T, res *Result) {
	t.Helper()
	if res.Proto == "all" {
		if len(res.ByProto) != 3 {
			t.Fatalf("by_proto has %d encodings, want 3", len(res.ByProto))
		}
		var sum Stats
		for name, s := range res.ByProto {
			if s.Ops == 0 {
				t.Errorf("%s: no ops", name)
			}
			sum.Ops += s.Ops
			sum.Errors += s.Errors
			sum.Sent += s.Sent
			sum.Expected += s.Expected
			sum.Lost += s.Lost
		}
		if sum.Ops != res.Ops || sum.Errors != res.Errors || sum.Sent != res.Sent || sum.Expected != res.Expected || sum.Lost != res.Lost {
			t.Errorf("by_proto adds up to %+v, total %+v", sum, res.Stats)
		}
	}
	if res.Scenario == "broadcast" || res.Scenario == "room" {
		if res.Lost != 0 || res.Ops != res.Expected {
			t.Errorf("ops %d, expected %d, lost %d", res.Ops, res.Expected, res.Lost)
		}
		if res.Sent == 0 {
			t.Errorf("nothing sent")
		}
	}
	if !(res.P50 <= res.P90 && res.P90 <= res.P99 && res.P99 <= res.P999 && res.P999 <= res.Max && res.P50 > 0) {
		t.Errorf("percentiles out of order: %+v", res.Stats)
	}
}

func TestScenariosAgainstGateway(t *testing.T) {
	srv, url := startGateway(t)
	for _, proto := range []string{"json-rpc", "all"} {
		for _, c := range []Config{
			{Scenario: "ping", Conns: 6},
			{Scenario: "pipeline", Conns: 3, Inflight: 4},
			{Scenario: "broadcast", Subs: 30, Senders: 2},
			{Scenario: "room", Rooms: 3, Subs: 6},
			{Scenario: "connect", Conns: 3},
			{Scenario: "ping", Conns: 6, Rate: 300},
		} {
			t.Run(c.Scenario+"/"+proto, func(t *testing.T) {
				c.URL, c.Proto = url, proto
				res := runOK(t, c)
				switch c.Scenario {
				case "broadcast":
					// Every subscriber gets every message.
					if res.Expected != res.Sent*int64(c.Subs) {
						t.Errorf("expected %d deliveries for %d messages to %d subscribers", res.Expected, res.Sent, c.Subs)
					}
				case "room":
					if res.Expected != res.Sent*int64(c.Subs) || res.Conns != c.Rooms*c.Subs {
						t.Errorf("expected %d deliveries for %d messages in rooms of %d, %d conns", res.Expected, res.Sent, c.Subs, res.Conns)
					}
				}
				if c.Rate > 0 {
					// An open loop offers exactly rate*duration operations.
					if want := int64(c.Rate * short(c).Duration.Seconds()); res.Ops != want {
						t.Errorf("open loop: %d ops, want %d", res.Ops, want)
					}
				}
			})
		}
	}
	t.Run("idle", func(t *testing.T) {
		held := -1
		c := Config{URL: url, Scenario: "idle", Conns: 40, Proto: "all"}
		c.OnHolding = func(r *Result) { held = srv.Conns() }
		res := runOK(t, c)
		if res.Ops != 40 || held != 40 {
			t.Errorf("idle: %d connections established, the server had %d while held; want 40", res.Ops, held)
		}
	})
}

// TestOpenLoopShowsStalls stalls one reply for 300ms in a run offering 200
// pings a second on one connection: the pings due meanwhile are late, and
// an open loop measures them from when they were due, so p90 shows the
// stall (measured from the actual send, only one ping in 200 would).
func TestOpenLoopShowsStalls(t *testing.T) {
	const stall = 300 * time.Millisecond
	s := startPeer(t, false, func(n int64) time.Duration {
		if n == 50 {
			return stall
		}
		return 0
	})
	res := runOK(t, Config{URL: s.url(), Target: "naive", Scenario: "ping", Conns: 1, Rate: 200, Duration: time.Second})
	s.check(t)
	if res.Max < stall.Microseconds() || res.P90 < stall.Microseconds()/3 {
		t.Errorf("p90 %dus, max %dus: the %v stall is hidden", res.P90, res.Max, stall)
	}
}

func TestPeers(t *testing.T) {
	for _, seed := range []bool{false, true} {
		target := map[bool]string{false: "naive", true: "seed"}[seed]
		for _, c := range []Config{
			{Scenario: "ping", Conns: 3},
			{Scenario: "pipeline", Conns: 2, Inflight: 3},
			{Scenario: "broadcast", Subs: 5},
			{Scenario: "connect", Conns: 2},
			{Scenario: "idle", Conns: 5},
		} {
			t.Run(target+"/"+c.Scenario, func(t *testing.T) {
				s := startPeer(t, seed, noStall)
				c.URL, c.Target = s.url(), target
				res := runOK(t, c)
				s.check(t)
				if res.Proto != "json-rpc" {
					t.Errorf("proto %q", res.Proto)
				}
			})
		}
	}
}

func TestCentrifugo(t *testing.T) {
	for _, c := range []Config{
		{Scenario: "broadcast", Subs: 6, Senders: 2},
		{Scenario: "connect", Conns: 2},
		{Scenario: "idle", Conns: 4},
	} {
		t.Run(c.Scenario, func(t *testing.T) {
			var pongs atomic.Int64
			s := startCentrifugo(t, &pongs)
			c.URL, c.Target, c.Proto = s.url(), "centrifugo", "msgpack" // ignored
			res := runOK(t, c)
			s.check(t)
			if res.Proto != "json" {
				t.Errorf("proto %q", res.Proto)
			}
			// Every connection answered the ping before its connect returned.
			if c.Scenario != "connect" && pongs.Load() != int64(res.Conns) {
				t.Errorf("%d pongs from %d connections", pongs.Load(), res.Conns)
			}
		})
	}
}

func TestRefusals(t *testing.T) {
	for _, tc := range []struct {
		c    Config
		want string
	}{
		{Config{URL: "ws://10.1.2.3:8080"}, "not loopback"},
		{Config{URL: "ws://example.com"}, "not loopback"},
		{Config{URL: "ws://127.0.0.1:1", Target: "centrifugo", Scenario: "ping"}, "supports: broadcast, idle, connect"},
		{Config{URL: "ws://127.0.0.1:1", Target: "naive", Scenario: "room"}, "supports: ping, pipeline, broadcast, idle, connect"},
		{Config{URL: "ws://127.0.0.1:1", Target: "seed", Proto: "msgpack"}, "json-rpc only"},
		{Config{URL: "ws://127.0.0.1:1", Subs: 2, Senders: 3, Scenario: "broadcast"}, "senders"},
		{Config{URL: "http://127.0.0.1:1"}, "want ws://"},
		{Config{URL: "ws://127.0.0.1:1/ws/x"}, "base only"},
		{Config{URL: "ws://127.0.0.1:1,http://127.0.0.1:2"}, "want ws://"},
		{Config{URL: "ws://127.0.0.1:1,"}, "want ws://"},
		{Config{URL: "ws://127.0.0.1:1,ws://10.1.2.3:8080"}, "not loopback"},
		{Config{URL: "ws://127.0.0.1:1", Token: "nope"}, "not a JWT"},
		{Config{URL: "ws://127.0.0.1:1", Token: "x.eyJzdWIiOiJhIn0.y", Scenario: "room"}, "room needs distinct ids"},
	} {
		_, err := Check(tc.c)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: error %v, want one saying %q", tc.c, err, tc.want)
		}
	}
	if _, err := Check(Config{URL: "ws://10.1.2.3:8080"}); !errors.Is(err, ErrRemote) {
		t.Errorf("remote URL: %v, want ErrRemote", err)
	}
	for _, u := range []string{"ws://10.1.2.3:8080", "ws://localhost:1", "ws://[::1]:1"} {
		if _, err := Check(Config{URL: u, AllowRemote: strings.HasPrefix(u, "ws://10.")}); err != nil {
			t.Errorf("%s: %v", u, err)
		}
	}
}

// TestMerge merges two children's results: counts add up and percentiles
// come from the merged histogram, not from averaging the children's.
func TestMerge(t *testing.T) {
	part := func(us int64, n int) *Result {
		h := newHist()
		h.RecordValues(us, int64(n))
		r := &Result{Scenario: "ping", Conns: 5, Rate: 10, DurationS: 2, Stats: Stats{Ops: int64(n), Errors: 1, h: h}}
		if err := r.EncodeHists(); err != nil {
			t.Fatal(err)
		}
		r.h = nil // as decoded from a child's JSON
		return r
	}
	m, err := Merge([]*Result{part(100, 900), part(10000, 100)})
	if err != nil {
		t.Fatal(err)
	}
	if m.Ops != 1000 || m.Errors != 2 || m.Conns != 10 || m.Rate != 20 || m.OpsPerS != 500 {
		t.Errorf("merged %+v", m)
	}
	near := func(got, want int64) bool { return math.Abs(float64(got-want)) <= float64(want)/100 }
	if !near(m.P50, 100) || !near(m.P90, 100) || !near(m.P99, 10000) || !near(m.Max, 10000) {
		t.Errorf("merged percentiles p50 %d p90 %d p99 %d max %d; want 100, 100, 10000, 10000", m.P50, m.P90, m.P99, m.Max)
	}
	if m.Hist != "" {
		t.Errorf("merged result keeps a histogram")
	}
}

// TestDroppedConnectionsCount has the server drop every connection in the
// middle of the measured window: each one's call in flight fails and the
// connection is counted as dropped, both in the result (not after it).
func TestDroppedConnectionsCount(t *testing.T) {
	start := time.Now()
	var once sync.Once
	var s *fakeServer
	s = startPeer(t, false, func(int64) time.Duration {
		if time.Since(start) > 150*time.Millisecond {
			once.Do(func() { s.each(func(c *fakeConn) { c.nc.Close() }) })
		}
		return 0
	})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	res, err := Run(ctx, short(Config{URL: s.url(), Target: "naive", Scenario: "ping", Conns: 2}))
	if err != nil {
		t.Fatal(err)
	}
	if res.Errors != 4 || res.FirstError == "" {
		t.Errorf("%d errors (first: %q), want 4: a failed ping and a dropped connection each", res.Errors, res.FirstError)
	}
}
