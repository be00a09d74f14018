package gateway

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// serveListener runs a gateway behind an http.Server on l, as
// cmd/subgate does, and stops both with the test.
func serveListener(t *testing.T, l *Listener, cfg Config) *Server {
	t.Helper()
	srv, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: srv, ReadHeaderTimeout: 5 * time.Second}
	go hs.Serve(l)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = hs.Shutdown(ctx)
		_ = srv.Shutdown(ctx)
	})
	return srv
}

func TestListenerBudget(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	l := NewListener(ln, 2, log)
	srv := serveListener(t, l, Config{Logger: log})
	addr := ln.Addr().String()
	a := handshake(t, addr, "/ws/a", nil)
	handshake(t, addr, "/ws/b", nil).expectStatus(101, "")
	// The third is answered at accept time, before its request is read.
	resp, nc, br := rawRequest(t, addr, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
	c := &rawConn{t: t, nc: nc, br: br, resp: resp}
	c.expectStatus(503, "server at its connection limit")
	if !resp.Close {
		t.Fatal("the refusal does not close the connection")
	}
	expectEOF(t, nc, br)

	a.nc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.WaitConns(ctx, 1); err != nil {
		t.Fatal(err)
	}
	// The gateway forgets a connection before it closes the socket: wait
	// for the budget slot too, within a bound.
	for deadline := time.Now().Add(5 * time.Second); l.Open() > 1; {
		if time.Now().After(deadline) {
			t.Fatalf("%d connections still counted open", l.Open())
		}
		time.Sleep(time.Millisecond)
	}
	handshake(t, addr, "/ws/c", nil).expectStatus(101, "")
}

func TestDefaultMaxConns(t *testing.T) {
	b := FDBudget()
	if n, ok := fdLimit(); !ok || n > 1<<30 {
		if b != 0 || DefaultMaxConns() != maxConnsCap {
			t.Fatalf("no known limit: FDBudget %d, DefaultMaxConns %d", b, DefaultMaxConns())
		}
		return
	} else if b <= 0 || uint64(b) >= n {
		t.Fatalf("FDBudget %d with RLIMIT_NOFILE %d (%v): want 0 < budget < limit", b, n, ok)
	}
	if m := DefaultMaxConns(); m < 1 || m > b || m > maxConnsCap || (b*9/10 <= maxConnsCap && m != b*9/10) {
		t.Fatalf("DefaultMaxConns %d with budget %d", m, b)
	}
	if !strings.HasPrefix(string(refusalResponse), "HTTP/1.1 503 Service Unavailable\r\n") {
		t.Fatalf("refusal %q", refusalResponse)
	}
}
