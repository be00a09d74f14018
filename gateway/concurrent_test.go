package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/subgate/subgate/codec"
	"github.com/subgate/subgate/protocols"
)

// gate holds test calls until the test releases them by key.
type gate struct {
	mu      sync.Mutex
	release map[string]chan struct{}
	entered chan string
}

func newGate() *gate {
	return &gate{release: map[string]chan struct{}{}, entered: make(chan string, 16)}
}

func (g *gate) ch(key string) chan struct{} {
	g.mu.Lock()
	defer g.mu.Unlock()
	c, ok := g.release[key]
	if !ok {
		c = make(chan struct{})
		g.release[key] = c
	}
	return c
}

func (g *gate) open(key string) { close(g.ch(key)) }

type blockParams struct {
	Key string `json:"key"`
}

type blockResult struct {
	Key string `json:"key"`
}

// register declares test.block (in order) and test.blockc (concurrent):
// both report that they started, then wait for their key to be released.
func (g *gate) register(r *Router) {
	h := func(ctx context.Context, p *blockParams) (*blockResult, error) {
		g.entered <- p.Key
		select {
		case <-g.ch(p.Key):
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		return &blockResult{Key: p.Key}, nil
	}
	Register(r, "test.block", h)
	Register(r, "test.blockc", h, Concurrent)
}

func (c *rawConn) sendJSON(format string, a ...any) {
	c.t.Helper()
	c.send(ws.OpText, true, fmt.Appendf(nil, format, a...))
}

// replyID reads the next frame and returns the id of the reply in it.
func (c *rawConn) replyID() any {
	c.t.Helper()
	f := c.next()
	var m struct {
		ID     any             `json:"id"`
		Result json.RawMessage `json:"result"`
		Error  json.RawMessage `json:"error"`
	}
	if err := json.Unmarshal(f.Payload, &m); err != nil || m.Result == nil {
		c.t.Fatalf("want a result, got %q (%v)", f.Payload, err)
	}
	return m.ID
}

// A concurrent call that waits does not hold up the calls after it; an
// ordinary one does.
func TestConcurrentMethod(t *testing.T) {
	srv, addr := startServer(t, Config{})
	g := newGate()
	g.register(srv.Router())
	c := handshake(t, addr, "/ws/alice", strp("json-rpc"))

	c.sendJSON(`{"jsonrpc":"2.0","method":"test.blockc","params":{"key":"c1"},"id":"c1"}`)
	<-g.entered
	c.sendJSON(`{"jsonrpc":"2.0","method":"chat.ping","id":2}`)
	if id := c.replyID(); id != 2.0 {
		t.Fatalf("first reply is %v, want the ping's (2)", id)
	}
	g.open("c1")
	if id := c.replyID(); id != "c1" {
		t.Fatalf("reply %v, want c1", id)
	}

	// In order: the ping waits for the blocked call before it.
	c.sendJSON(`{"jsonrpc":"2.0","method":"test.block","params":{"key":"s1"},"id":"s1"}`)
	<-g.entered
	c.sendJSON(`{"jsonrpc":"2.0","method":"chat.ping","id":3}`)
	g.open("s1")
	if id := c.replyID(); id != "s1" {
		t.Fatalf("reply %v, want s1 before the ping", id)
	}
	if id := c.replyID(); id != 3.0 {
		t.Fatalf("reply %v, want the ping's (3)", id)
	}
}

// With MaxConcurrentCalls in flight the connection stops reading: the ping
// after them is read only when one of them has finished.
func TestConcurrentCallsBounded(t *testing.T) {
	srv, addr := startServer(t, Config{MaxConcurrentCalls: 2})
	g := newGate()
	g.register(srv.Router())
	c := handshake(t, addr, "/ws/alice", strp("json-rpc"))
	for _, k := range []string{"a", "b", "c"} {
		c.sendJSON(`{"jsonrpc":"2.0","method":"test.blockc","params":{"key":%q},"id":%q}`, k, k)
	}
	c.sendJSON(`{"jsonrpc":"2.0","method":"chat.ping","id":4}`)
	started := map[string]bool{<-g.entered: true, <-g.entered: true}
	if !started["a"] || !started["b"] {
		t.Fatalf("started %v, want a and b", started)
	}
	g.open("a")
	if id := c.replyID(); id != "a" {
		t.Fatalf("reply %v, want a (the ping must wait for a free slot)", id)
	}
	if k := <-g.entered; k != "c" {
		t.Fatalf("entered %q, want c", k)
	}
	if id := c.replyID(); id != 4.0 {
		t.Fatalf("reply %v, want the ping's (4)", id)
	}
	g.open("b")
	g.open("c")
	got := map[any]bool{c.replyID(): true, c.replyID(): true}
	if !got["b"] || !got["c"] {
		t.Fatalf("replies %v, want b and c", got)
	}
}

// Shutdown answers the calls in flight, ordinary and concurrent, before it
// closes with 1001.
func TestShutdownAnswersCallsInFlight(t *testing.T) {
	for _, method := range []string{"test.block", "test.blockc"} {
		t.Run(method, func(t *testing.T) {
			srv, addr := startServer(t, Config{})
			g := newGate()
			g.register(srv.Router())
			c := handshake(t, addr, "/ws/alice", strp("json-rpc"))
			c.sendJSON(`{"jsonrpc":"2.0","method":%q,"params":{"key":"k"},"id":7}`, method)
			<-g.entered

			// A cancelled context makes Shutdown return as soon as it has
			// told every connection to close.
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			if err := srv.Shutdown(ctx); err != context.Canceled {
				t.Fatalf("Shutdown: %v", err)
			}
			g.open("k")
			if f := c.next(); !strings.Contains(string(f.Payload), `"gateway.notice"`) {
				t.Fatalf("first frame %q, want the notice", f.Payload)
			}
			if id := c.replyID(); id != 7.0 {
				t.Fatalf("reply %v, want 7", id)
			}
			c.expectClose(ws.StatusGoingAway)
		})
	}
}

// A handler that panics answers -32603 and the connection goes on.
func TestHandlerPanic(t *testing.T) {
	srv, addr := startServer(t, Config{})
	srv.Router().Handle("test.panic", func(context.Context, *Call) (any, error) { panic("boom") })
	srv.Router().Handle("test.panicc", func(context.Context, *Call) (any, error) { panic("boom") }, Concurrent)
	c := handshake(t, addr, "/ws/alice", strp("json-rpc"))
	for i, m := range []string{"test.panic", "test.panicc"} {
		v := c.callJSON(fmt.Sprintf(`{"jsonrpc":"2.0","method":%q,"id":%d}`, m, i))
		e, _ := v["error"].(map[string]any)
		if e == nil || e["code"] != -32603.0 || v["id"] != float64(i) {
			t.Fatalf("%s: %v", m, v)
		}
	}
	if v := c.callJSON(`{"jsonrpc":"2.0","method":"chat.ping","id":9}`); v["result"] == nil {
		t.Fatalf("ping after panics: %v", v)
	}
}

// panicCodec is a codec with a bug: it panics on every frame.
type panicCodec struct{ codec.Codec }

func (panicCodec) Decode([]codec.Message, []byte) ([]codec.Message, bool, error) {
	panic("codec bug")
}

// A panic in a connection's reader (here a codec's) closes that connection
// with 1011; the server and its other connections go on.
func TestReaderPanicCloses1011(t *testing.T) {
	json := protocols.All[0]
	buggy := protocols.Protocol{Name: "buggy", Codec: panicCodec{json.Codec}}
	srv, addr := startServer(t, Config{Protocols: []protocols.Protocol{json, buggy}})
	other := handshake(t, addr, "/ws/other", strp("json-rpc"))
	c := handshake(t, addr, "/ws/alice", strp("buggy"))
	c.sendJSON(`{"jsonrpc":"2.0","method":"chat.ping","id":1}`)
	c.expectClose(ws.StatusInternalServerError)
	c.nc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.WaitConns(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if v := other.callJSON(`{"jsonrpc":"2.0","method":"chat.ping","id":2}`); v["result"] == nil {
		t.Fatalf("other connection after the panic: %v", v)
	}
}
