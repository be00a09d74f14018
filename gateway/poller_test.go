package gateway

import (
	"os"
	"runtime"
	"testing"
	"time"
)

// SUBGATE_TEST_POLLER runs the package's tests with the given reader
// ("goroutines" or "epoll") for Config.Poller "auto": test.sh runs them
// with each.
func init() {
	if p := os.Getenv("SUBGATE_TEST_POLLER"); p != "" {
		autoPoller = p
	}
}

// waitPartialFrames waits until n connections have received the start of
// a frame and wait for the rest: n goroutine readers in fn, or, with the
// poller, n connections idle with an unfinished frame kept.
func waitPartialFrames(t *testing.T, srv *Server, fn string, n int) {
	t.Helper()
	if srv.poller == nil {
		waitGoroutinesIn(t, fn, n)
		return
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := 0
		for _, c := range srv.snapshot() {
			c.mu.Lock()
			pr := c.pr
			c.mu.Unlock()
			if pr != nil && holdsPartialFrame(c, pr) {
				got++
			}
		}
		if got >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d connections wait for the rest of a frame, want %d", got, n)
		}
		runtime.Gosched()
	}
}

// holdsPartialFrame reports whether c's idle reader kept an unfinished
// frame. It takes the read side as a worker does, and gives it back as
// pollLoop does (a report meanwhile gets a worker).
func holdsPartialFrame(c *Conn, pr *pollReader) bool {
	if !pr.rs.CompareAndSwap(readIdle, readRunning) {
		return false
	}
	has := len(pr.in) > 0
	if !pr.rs.CompareAndSwap(readRunning, readIdle) {
		pr.rs.Store(readRunning)
		dispatch(c)
	}
	return has
}
