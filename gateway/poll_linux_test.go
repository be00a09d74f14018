package gateway

import (
	"fmt"
	"runtime"
	"testing"
	"time"

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
