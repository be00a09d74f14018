package gateway

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/subgate/subgate/codec"
	"github.com/subgate/subgate/protocols"
)

// countCalls is a middleware that counts the calls it sees.
func countCalls(n *atomic.Int64) Middleware {
	return func(next Handler) Handler {
		return func(ctx context.Context, call *Call) (any, error) {
			n.Add(1)
			return next(ctx, call)
		}
	}
}

// Methods and middleware added while connections are calling: every call
// to a method registered before the call started is answered by that
// method, a name not registered yet gets -32601, and each middleware added
// sees every call made after it. Run it with -race.
func TestRouterHandleWhileServing(t *testing.T) {
	const (
		methods  = 200 // test.m0 ... test.m199, one every loop of the registrar
		mwEvery  = 20  // a middleware after every 20 methods
		maxCalls = 3000
	)
	// Unlimited rate: the calls per connection depend on how fast the
	// registrar goes, and this test is not about the rate limit.
	srv, addr := startServer(t, Config{RateLimit: math.Inf(1)})
	r := srv.Router()

	var registered atomic.Int64 // test.m0 ... test.m(registered-1) exist
	var seen [methods / mwEvery]atomic.Int64
	answered := make(chan struct{}, 1) // a call was answered since the last registration
	done := make(chan struct{})
	go func() {
		defer close(done)
		deadline := time.After(20 * time.Second)
		for i := range methods {
			select { // register while calls are being answered
			case <-answered:
			case <-deadline:
			}
			var opts []MethodOption
			if i%2 == 1 {
				opts = append(opts, Concurrent)
			}
			r.Handle(fmt.Sprint("test.m", i), func(context.Context, *Call) (any, error) { return i, nil }, opts...)
			registered.Store(int64(i + 1))
			if i%mwEvery == 0 {
				r.Use(countCalls(&seen[i/mwEvery]))
			}
		}
	}()

	var wg sync.WaitGroup
	for k, proto := range []string{protocols.JSONRPC, protocols.MsgPack, protocols.JSONRPC, protocols.MsgPack} {
		c := dial(t, addr, fmt.Sprint("caller", k), proto)
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			for n := 0; n < maxCalls; n++ {
				select {
				case <-done:
					if n%10 == 0 {
						return // a few calls after the last registration
					}
				default:
				}
				m := int(registered.Load())
				j := m - 1 // the newest method, or another one
				if n%3 == 0 || j < 0 {
					j = (n / 3) % (m + 1)
				}
				var got int
				err := c.Call(ctx, fmt.Sprint("test.m", j), nil, &got)
				select {
				case answered <- struct{}{}:
				default:
				}
				if j >= m {
					continue // not registered when the call started: either answer is right
				}
				if err != nil || got != j {
					t.Errorf("%s: test.m%d (registered before the call) answered %d, %v", proto, j, got, err)
					return
				}
			}
		})
	}
	wg.Wait()
	<-done

	// After the last Use every middleware is in the chain, outermost
	// first; a name never registered is still -32601.
	c := dial(t, addr, "last", protocols.JSONRPC)
	var before [len(seen)]int64
	for i := range seen {
		before[i] = seen[i].Load()
	}
	if got := *call[int](t, c, "test.m7", nil); got != 7 {
		t.Errorf("test.m7 answered %d", got)
	}
	for i := range seen {
		if d := seen[i].Load() - before[i]; d != 1 {
			t.Errorf("middleware %d saw the last call %d times, want 1", i, d)
		}
	}
	if code := callErr(t, c, "test.nope", nil); code != codec.CodeMethodNotFound {
		t.Errorf("unknown method: code %d, want %d", code, codec.CodeMethodNotFound)
	}
	if !r.IsConcurrent("test.m199") || r.IsConcurrent("test.m198") {
		t.Error("IsConcurrent lost a method's option")
	}
}

// TestRouterUseOrder: the first middleware added is the outermost, also
// when methods are added in between.
func TestRouterUseOrder(t *testing.T) {
	r := NewRouter()
	var order []string
	tag := func(s string) Middleware {
		return func(next Handler) Handler {
			return func(ctx context.Context, call *Call) (any, error) {
				order = append(order, s)
				return next(ctx, call)
			}
		}
	}
	r.Use(tag("a"))
	r.Handle("m", func(context.Context, *Call) (any, error) { order = append(order, "m"); return nil, nil })
	r.Use(tag("b"), tag("c"))
	if _, err := r.Serve(context.Background(), &Call{Method: "m"}); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(order) != "[a b c m]" {
		t.Errorf("order %v, want [a b c m]", order)
	}
	order = nil
	_, err := r.Serve(context.Background(), &Call{Method: "nope"})
	if e, ok := errors.AsType[*codec.Error](err); !ok || e.Code != codec.CodeMethodNotFound || fmt.Sprint(order) != "[a b c]" {
		t.Errorf("unknown method: %v, order %v; want -32601 after [a b c]", err, order)
	}
}

// BenchmarkRouterServe measures the router's own cost per call (one
// middleware, 50 methods): the hot path takes no lock and allocates nothing.
func BenchmarkRouterServe(b *testing.B) {
	r := NewRouter()
	var n atomic.Int64
	r.Use(countCalls(&n))
	for i := range 50 {
		r.Handle(fmt.Sprint("test.m", i), func(context.Context, *Call) (any, error) { return nil, nil })
	}
	ctx := context.Background()
	call := &Call{Method: "test.m25"}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := r.Serve(ctx, call); err != nil {
			b.Fatal(err)
		}
	}
}
