package gateway

import (
	"encoding/json"
	"fmt"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/subgate/subgate/protocols"
)

// With the poller, idle connections hold no goroutine: 300 connections
// that each made a call leave the server's goroutine count where it was
// (plus a slack for the poller, the timers and workers about to exit),
// and each still answers afterwards.
func TestPollerIdleConnsHoldNoGoroutine(t *testing.T) {
	const conns, slack = 300, 30
	srv, addr := startServer(t, Config{Poller: PollerEpoll, MaxConnsPerIP: conns})
	if srv.poller == nil {
		t.Fatal("Poller epoll: no poller on Linux")
	}
	base := runtime.NumGoroutine()
	cs := make([]*rawConn, conns)
	for i := range cs {
		cs[i] = handshake(t, addr, fmt.Sprintf("/ws/idle%d", i), strp(protocols.JSONRPC))
		if v := cs[i].callJSON(`{"jsonrpc":"2.0","id":1,"method":"chat.ping"}`); v["result"] == nil {
			t.Fatalf("ping %d: %v", i, v)
		}
	}
	deadline := time.Now().Add(10 * time.Second) // workers linger a second
	for runtime.NumGoroutine() > base+slack {
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines with %d idle connections, %d before them", runtime.NumGoroutine(), conns, base)
		}
		time.Sleep(10 * time.Millisecond)
	}
	for i, c := range cs {
		if v := c.callJSON(`{"jsonrpc":"2.0","id":2,"method":"chat.ping"}`); v["result"] == nil {
			t.Fatalf("ping %d after idling: %v", i, v)
		}
	}
}

// The poller's idle timeout is a shared timer: a connection that sends
// nothing is closed with 1001 "idle timeout", one that keeps sending is
// not.
func TestPollerIdleTimeout(t *testing.T) {
	const idle = time.Second
	_, addr := startServer(t, Config{Poller: PollerEpoll, IdleTimeout: idle, PingInterval: time.Hour})
	quiet := handshake(t, addr, "/ws/quiet", strp(protocols.JSONRPC))
	busy := handshake(t, addr, "/ws/busy", strp(protocols.JSONRPC))
	for range 15 { // 15 x idle/10: past the idle timeout
		if v := busy.callJSON(`{"jsonrpc":"2.0","id":1,"method":"chat.ping"}`); v["result"] == nil {
			t.Fatalf("busy ping: %v", v)
		}
		time.Sleep(idle / 10) // the client's pace, well within the timeout
	}
	if text := quiet.expectClose(1001); text != "idle timeout" {
		t.Fatalf("quiet closed with %q", text)
	}
	if v := busy.callJSON(`{"jsonrpc":"2.0","id":2,"method":"chat.ping"}`); v["result"] == nil {
		t.Fatalf("busy connection after the quiet one's timeout: %v", v)
	}
}

func TestPollerConfig(t *testing.T) {
	if _, err := New(Config{Poller: "kqueue"}); err == nil {
		t.Fatal(`Poller "kqueue" accepted`)
	}
	for _, p := range []string{PollerAuto, PollerEpoll, PollerGoroutines} {
		if _, err := New(Config{Poller: p}); err != nil {
			t.Fatalf("Poller %q: %v", p, err)
		}
	}
}

// piecesConn writes in pieces of n bytes, each its own segment on
// loopback, so that the server's reads end inside headers and payloads.
type piecesConn struct {
	net.Conn
	n int
}

func (c piecesConn) Write(b []byte) (int, error) {
	for i := 0; i < len(b); i += c.n {
		if _, err := c.Conn.Write(b[i:min(i+c.n, len(b))]); err != nil {
			return i, err
		}
	}
	return len(b), nil
}

// A message in three fragments with a ping between them, every frame
// arriving 7 bytes at a time: the poller's reader keeps each unfinished
// frame across reads, answers the ping, then the whole call.
func TestPollerFramesInPieces(t *testing.T) {
	_, addr := startServer(t, Config{Poller: PollerEpoll})
	c := handshake(t, addr, "/ws/pieces", strp(protocols.JSONRPC))
	c.nc = piecesConn{c.nc, 7}
	msg := `{"jsonrpc":"2.0",` + strings.Repeat(" ", 20000) + `"id":7,"method":"chat.ping"}`
	c.send(ws.OpText, false, []byte(msg[:300]))
	c.send(ws.OpContinuation, false, []byte(msg[300:15000]))
	c.send(ws.OpPing, true, []byte("between"))
	c.send(ws.OpContinuation, true, []byte(msg[15000:]))
	if f := c.next(); f.Header.OpCode != ws.OpPong || string(f.Payload) != "between" {
		t.Fatalf("got %v %q, want the pong", f.Header.OpCode, f.Payload)
	}
	var v map[string]any
	if f := c.next(); json.Unmarshal(f.Payload, &v) != nil || v["id"] != float64(7) || v["result"] == nil {
		t.Fatalf("reply %s", f.Payload)
	}
}

// A connection that calls back to back is hot: its worker waits for the
// next input in the runtime's poller. Once it stops calling, the worker
// lets go (the reader goes back to readIdle, re-armed in the poller) and
// the connection still answers through the poller.
func TestPollerHotConnectionLetsGo(t *testing.T) {
	srv, addr := startServer(t, Config{Poller: PollerEpoll, PingInterval: time.Hour})
	c := handshake(t, addr, "/ws/hot", strp(protocols.JSONRPC))
	for i := range 20 {
		if v := c.callJSON(fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"chat.ping"}`, i)); v["result"] == nil {
			t.Fatalf("ping %d: %v", i, v)
		}
	}
	conns := srv.snapshot()
	if len(conns) != 1 {
		t.Fatalf("%d connections, want 1", len(conns))
	}
	conns[0].mu.Lock()
	pr := conns[0].pr
	conns[0].mu.Unlock()
	if pr == nil {
		t.Fatal("the connection is not polled")
	}
	deadline := time.Now().Add(10 * time.Second)
	for pr.rs.Load() != readIdle {
		if time.Now().After(deadline) {
			t.Fatalf("reader state %d after the calls stopped, want idle", pr.rs.Load())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if v := c.callJSON(`{"jsonrpc":"2.0","id":99,"method":"chat.ping"}`); v["result"] == nil {
		t.Fatalf("ping after letting go: %v", v)
	}
}
