package main

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// healthRun runs `subgate healthcheck args...` in process.
func healthRun(args ...string) (code int, stderr string) {
	var errb bytes.Buffer
	code = runHealthcheck(args, &errb)
	return code, errb.String()
}

// healthAddr is the HOST:PORT of an in-process gateway.
func healthAddr(t *testing.T) string {
	t.Helper()
	_, base := callTestServer(t)
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	return u.Host
}

// deadAddr is a loopback address where nothing listens any more.
func deadAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// wantUnhealthy requires exit status 1 and one stderr line holding want.
func wantUnhealthy(t *testing.T, code int, stderr, want string) {
	t.Helper()
	if code != 1 || !strings.HasPrefix(stderr, "subgate healthcheck: ") || strings.Count(stderr, "\n") != 1 || !strings.Contains(stderr, want) {
		t.Fatalf("exit %d, stderr %q; want 1 and one line with %q", code, stderr, want)
	}
}

// A gateway answering /healthz is healthy: exit 0, nothing on stderr; so
// is one reached through a wildcard or empty host (the loopback address).
func TestHealthcheckHealthy(t *testing.T) {
	addr := healthAddr(t)
	_, port, _ := net.SplitHostPort(addr)
	for _, a := range []string{addr, "0.0.0.0:" + port, ":" + port} {
		if code, errs := healthRun("-addr", a); code != 0 || errs != "" {
			t.Errorf("-addr %s: exit %d, stderr %q", a, code, errs)
		}
	}
}

// The address comes from SUBGATE_ADDR, like serve's; -addr wins over it.
func TestHealthcheckFollowsSubgateAddr(t *testing.T) {
	addr, dead := healthAddr(t), deadAddr(t)
	t.Setenv("SUBGATE_ADDR", addr)
	if code, errs := healthRun(); code != 0 || errs != "" {
		t.Fatalf("SUBGATE_ADDR=%s: exit %d, stderr %q", addr, code, errs)
	}
	code, errs := healthRun("-addr", dead)
	wantUnhealthy(t, code, errs, "connection refused")

	t.Setenv("SUBGATE_ADDR", dead)
	code, errs = healthRun()
	wantUnhealthy(t, code, errs, dead)
	if code, errs := healthRun("-addr", addr); code != 0 {
		t.Fatalf("-addr %s over SUBGATE_ADDR: exit %d, stderr %q", addr, code, errs)
	}
}

// Without SUBGATE_ADDR the address is serve's default.
func TestHealthcheckDefaultAddr(t *testing.T) {
	t.Setenv("SUBGATE_ADDR", "")
	os.Unsetenv("SUBGATE_ADDR")
	addr, timeout, err := parseHealthcheck(nil, io.Discard)
	if err != nil || addr != defaultAddr || timeout != 2*time.Second {
		t.Fatalf("addr %q, timeout %v, err %v", addr, timeout, err)
	}
	f, err := parseServe(nil, io.Discard)
	if err != nil || f.addr != defaultAddr {
		t.Fatalf("serve's addr %q (%v), want %q", f.addr, err, defaultAddr)
	}
}

func TestHealthURL(t *testing.T) {
	for addr, want := range map[string]string{
		":8080":            "http://127.0.0.1:8080/healthz",
		"0.0.0.0:8080":     "http://127.0.0.1:8080/healthz",
		"[::]:8080":        "http://[::1]:8080/healthz",
		"127.0.0.1:9":      "http://127.0.0.1:9/healthz",
		"[::1]:9":          "http://[::1]:9/healthz",
		"gateway.lan:8443": "http://gateway.lan:8443/healthz",
	} {
		if got, err := healthURL(addr); got != want || err != nil {
			t.Errorf("healthURL(%q) = %q, %v; want %q", addr, got, err, want)
		}
	}
}

// Anything but 200 from /healthz is unhealthy, with the reason.
func TestHealthcheckUnhealthy(t *testing.T) {
	t.Run("nothing listening", func(t *testing.T) {
		code, errs := healthRun("-addr", deadAddr(t))
		wantUnhealthy(t, code, errs, "connection refused")
	})
	t.Run("503", func(t *testing.T) {
		hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			http.Error(w, "down\nfor maintenance", http.StatusServiceUnavailable)
		}))
		defer hs.Close()
		code, errs := healthRun("-addr", strings.TrimPrefix(hs.URL, "http://"))
		wantUnhealthy(t, code, errs, "503 Service Unavailable")
	})
	t.Run("redirect", func(t *testing.T) {
		hs := httptest.NewServer(http.RedirectHandler("http://127.0.0.1:1/healthz", http.StatusFound))
		defer hs.Close()
		code, errs := healthRun("-addr", strings.TrimPrefix(hs.URL, "http://"))
		wantUnhealthy(t, code, errs, "302 Found")
	})
	t.Run("no answer", func(t *testing.T) {
		// The kernel completes the connection; nobody reads the request.
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		code, errs := healthRun("-addr", ln.Addr().String(), "-timeout", "200ms")
		wantUnhealthy(t, code, errs, "Timeout")
	})
	for _, args := range [][]string{{"-addr", "8080"}, {"-timeout", "0s"}, {"-bogus"}, {"extra"}} {
		code, errs := healthRun(args...)
		wantUnhealthy(t, code, errs, "")
	}
}

// The binary's `healthcheck` against a `subgate serve` process, both
// configured only by SUBGATE_ADDR: 0 while it serves, 1 once SIGTERM has
// stopped it.
func TestHealthcheckServeProcess(t *testing.T) {
	cmd, addr := startServe(t, nil)
	health := func() (int, string) {
		hc := exec.Command(os.Args[0], "healthcheck")
		hc.Env = append(os.Environ(), "SUBGATE_TEST_MAIN=1", "SUBGATE_ADDR="+addr)
		var errb bytes.Buffer
		hc.Stderr = &errb
		_ = hc.Run()
		return hc.ProcessState.ExitCode(), errb.String()
	}
	if code, errs := health(); code != 0 || errs != "" {
		t.Fatalf("serving: exit %d, stderr %q", code, errs)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("serve exit: %v", err)
	}
	code, errs := health()
	wantUnhealthy(t, code, errs, "connection refused")
}
