package gateway

import (
	"bufio"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/subgate/subgate/internal/flood"
)

// TestMain makes the test binary, re-executed with SUBGATE_TEST_FDLIMIT
// set, a gateway server running under a low RLIMIT_NOFILE.
func TestMain(m *testing.M) {
	if spec := os.Getenv("SUBGATE_TEST_FDLIMIT"); spec != "" {
		os.Exit(fdLimitServer(spec))
	}
	os.Exit(m.Run())
}

// fdLimitServer lowers RLIMIT_NOFILE, serves a gateway behind a Listener,
// prints its address and runs until its standard input closes. spec is
// "nofile budget max_conns" (0: the defaults).
func fdLimitServer(spec string) int {
	var nofile uint64
	var budget, maxConns int
	if _, err := fmt.Sscan(spec, &nofile, &budget, &maxConns); err != nil {
		fmt.Fprintln(os.Stderr, "spec:", err)
		return 2
	}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &syscall.Rlimit{Cur: nofile, Max: nofile}); err != nil {
		fmt.Fprintln(os.Stderr, "setrlimit:", err)
		return 2
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	srv, err := New(Config{MaxConns: maxConns, MaxConnsPerIP: maxConns, Logger: log})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	hs := &http.Server{Handler: srv, ReadHeaderTimeout: 10 * time.Second}
	go hs.Serve(NewListener(ln, budget, log))
	fmt.Println(ln.Addr())
	_, _ = io.Copy(io.Discard, os.Stdin)
	return 0
}

// startFDLimited runs fdLimitServer in a subprocess and returns its
// address.
func startFDLimited(t *testing.T, spec string) string {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "SUBGATE_TEST_FDLIMIT="+spec)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stdin.Close()
		if err := cmd.Wait(); err != nil {
			t.Errorf("server process: %v", err)
		}
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("server process printed %q: %v", line, err)
	}
	return line[:len(line)-1]
}

// TestFDLimitRefusesInsteadOfHanging floods a server whose process may
// open 256 descriptors with 400 simultaneous handshakes: each gets 101 or
// 503 in time, never a timeout or a reset, and once the WebSockets close
// the server takes new ones again. "budget" refuses at accept time beyond
// the descriptor budget (the defaults, as `subgate serve`); "emfile" has a
// budget and caps above the limit, so accept(2) fails with EMFILE and the
// spare descriptor answers.
func TestFDLimitRefusesInsteadOfHanging(t *testing.T) {
	for _, tc := range []struct{ name, spec string }{
		{"budget", "256 0 0"},
		{"emfile", "256 100000 100000"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr := startFDLimited(t, tc.spec)
			rs := flood.Handshakes(addr, 400, 10*time.Second)
			defer flood.Close(rs)
			n := flood.Count(rs)
			for _, r := range rs {
				if r.Err != nil {
					t.Fatalf("counts %v; a handshake failed: %v", n, r.Err)
				}
			}
			if n[101]+n[503] != 400 || n[101] == 0 || n[503] == 0 {
				t.Fatalf("statuses %v: want only 101 and 503, some of each", n)
			}
			t.Logf("statuses %v", n)
			flood.Close(rs)
			if err := flood.Recovered(addr, 10*time.Second); err != nil {
				t.Fatalf("after the flood: %v", err)
			}
		})
	}
}
