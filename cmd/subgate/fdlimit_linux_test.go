package main

import (
	"os"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/subgate/subgate/internal/flood"
)

// init lowers RLIMIT_NOFILE in the re-executed binary when the test asks
// for it (before main runs, as `prlimit --nofile` would).
func init() {
	n, err := strconv.ParseUint(os.Getenv("SUBGATE_TEST_NOFILE"), 10, 64)
	if err != nil || os.Getenv("SUBGATE_TEST_MAIN") != "1" {
		return
	}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &syscall.Rlimit{Cur: n, Max: n}); err != nil {
		panic(err)
	}
}

// TestServeAtFDLimit floods `subgate serve`, as configured by default,
// under RLIMIT_NOFILE 128 with 200 simultaneous handshakes: each gets 101
// or 503 in time (the gateway's MaxConns or the listener's descriptor
// budget), and the server takes new ones once they close.
func TestServeAtFDLimit(t *testing.T) {
	_, addr := startServe(t, []string{"SUBGATE_TEST_NOFILE=128"})
	rs := flood.Handshakes(addr, 200, 10*time.Second)
	defer flood.Close(rs)
	n := flood.Count(rs)
	if n[101]+n[503] != 200 || n[101] == 0 || n[503] == 0 {
		t.Fatalf("statuses %v (-1: failed): want only 101 and 503, some of each", n)
	}
	flood.Close(rs)
	if err := flood.Recovered(addr, 10*time.Second); err != nil {
		t.Fatalf("after the flood: %v", err)
	}
}
