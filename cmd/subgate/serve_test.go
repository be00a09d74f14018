package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/subgate/subgate/client"
	"github.com/subgate/subgate/gateway"
	"github.com/subgate/subgate/internal/testutil"
	"github.com/subgate/subgate/protocols/chat"
)

// TestMain lets a test run the real binary: the test executable re-executed
// with SUBGATE_TEST_MAIN=1 is `subgate` with the given arguments.
func TestMain(m *testing.M) {
	if os.Getenv("SUBGATE_TEST_MAIN") == "1" {
		main()
	}
	os.Exit(m.Run())
}

var listening = regexp.MustCompile(`msg=listening addr=(\S+)`)

// startServe runs `subgate serve -addr 127.0.0.1:0 args...` as a process
// with env added to its environment, and returns it and its address.
func startServe(t *testing.T, env []string, args ...string) (*exec.Cmd, string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], append([]string{"serve", "-addr", "127.0.0.1:0"}, args...)...)
	cmd.Env = append(append(os.Environ(), "SUBGATE_TEST_MAIN=1"), env...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	lines := bufio.NewScanner(stderr)
	var addr string
	for addr == "" && lines.Scan() {
		if m := listening.FindStringSubmatch(lines.Text()); m != nil {
			addr = m[1]
		}
	}
	if addr == "" {
		t.Fatal("the server never logged its address")
	}
	go func() { // keep the pipe drained
		for lines.Scan() {
		}
	}()
	return cmd, addr
}

// TestServeSignals runs `subgate serve` as a process: it logs the address
// it listens on, answers calls, and on SIGTERM or SIGINT closes every
// client with 1001 and exits 0.
func TestServeSignals(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		t.Run(sig.String(), func(t *testing.T) {
			cmd, addr := startServe(t, nil)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			c, err := client.Dial(ctx, "ws://"+addr+"/ws/sig", client.Options{Protocol: "msgpack"})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			var res chat.PingResult
			if err := c.Call(ctx, chat.MethodPing, &chat.PingParams{}, &res); err != nil || res.Status != "ok" {
				t.Fatalf("ping: %+v, %v", res, err)
			}

			if err := cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			if err := cmd.Wait(); err != nil {
				t.Fatalf("exit: %v, want status 0", err)
			}
			select {
			case <-c.Done():
			case <-ctx.Done():
				t.Fatal("client still connected after the server exited")
			}
			var ce *client.CloseError
			if !errors.As(c.Err(), &ce) || ce.Code != 1001 {
				t.Fatalf("client ended with %v, want close 1001", c.Err())
			}
		})
	}
}

// TestServeDrain: on SIGTERM the process keeps its listener while it
// drains: /readyz answers 503 and a new upgrade gets 503 while a client
// still owes its close frame; once it answers, the process exits 0.
func TestServeDrain(t *testing.T) {
	cmd, addr := startServe(t, nil, "-close-timeout", "30s")
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	_ = nc.SetDeadline(time.Now().Add(20 * time.Second))
	u, _ := url.Parse("ws://" + addr + "/ws/drain")
	br, _, err := ws.Dialer{Protocols: []string{"json-rpc"}}.Upgrade(nc, u)
	if err != nil {
		t.Fatal(err)
	}
	var r io.Reader = nc
	if br != nil {
		r = br
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	for {
		f, err := ws.ReadFrame(r)
		if err != nil {
			t.Fatal(err)
		}
		if f.Header.OpCode == ws.OpClose {
			if code, _ := ws.ParseCloseFrameData(f.Payload); code != ws.StatusGoingAway {
				t.Fatalf("close %d, want 1001", code)
			}
			break
		}
	}
	// The server now waits for our close frame: it is draining.
	resp, err := http.Get("http://" + addr + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("/readyz while draining: %d, want 503", resp.StatusCode)
	}
	req, _ := http.NewRequest("GET", "http://"+addr+"/ws/late", nil)
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", "websocket")
	req.Header.Set("Sec-WebSocket-Version", "13")
	req.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("upgrade while draining: %d, want 503", resp.StatusCode)
	}
	if err := ws.WriteFrame(nc, ws.MaskFrameInPlace(ws.NewCloseFrame(ws.NewCloseFrameBody(ws.StatusGoingAway, "")))); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("exit: %v, want status 0", err)
	}
}

// Every setting is a flag whose default comes from its SUBGATE_* variable;
// a flag given on the command line wins over the environment.
func TestServeFlagsAndEnv(t *testing.T) {
	t.Setenv("SUBGATE_ADDR", "127.0.0.1:9999")
	t.Setenv("SUBGATE_IDLE_TIMEOUT", "7s")
	t.Setenv("SUBGATE_MAX_MESSAGE_SIZE", "4096")
	t.Setenv("SUBGATE_PROTOCOLS", "msgpack, binary-raw")
	t.Setenv("SUBGATE_CLOSE_TIMEOUT", "3s")
	f, err := parseServe([]string{"-idle-timeout", "9s", "-reject-mode", "close"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	c := f.cfg
	if f.addr != "127.0.0.1:9999" || c.IdleTimeout != 9*time.Second || c.MaxMessageSize != 4096 ||
		c.RejectMode != "close" || c.CloseTimeout != 3*time.Second || len(c.Protocols) != 2 || c.Protocols[0].Name != "msgpack" {
		t.Fatalf("parsed %+v, config %+v", f, c)
	}

	for _, env := range [][2]string{
		{"SUBGATE_IDLE_TIMEOUT", "soon"},
		{"SUBGATE_MAX_MESSAGE_SIZE", "big"},
		{"SUBGATE_PROTOCOLS", "xml"},
	} {
		t.Run(env[0], func(t *testing.T) {
			t.Setenv(env[0], env[1])
			if _, err := parseServe(nil, io.Discard); err == nil || !strings.Contains(err.Error(), env[1]) && !strings.Contains(err.Error(), env[0]) {
				t.Fatalf("%s=%s: err %v", env[0], env[1], err)
			}
		})
	}
}

// A setting the gateway refuses is a one-line error and exit status 2.
func TestServeRefusesBadSettings(t *testing.T) {
	for _, args := range [][]string{
		{"-max-message-size", "-1"},
		{"-idle-timeout", "-5s"},
		{"-reject-mode", "maybe"},
		{"-protocols", "msgpack", "-default-protocol", "json-rpc"},
		{"-allowed-origins", "app.example.com"},
		{"-jwt-secret", "short"},
		{"-max-conns", "-1"},
		{"-max-conns-per-ip", "-1"},
	} {
		var stderr strings.Builder
		if code := runServe(args, io.Discard, &stderr); code != 2 || strings.Count(stderr.String(), "\n") != 1 || !strings.HasPrefix(stderr.String(), "subgate: ") {
			t.Errorf("%v: exit %d, stderr %q", args, code, stderr.String())
		}
	}
}

// The admission settings come from flags or SUBGATE_* variables; their
// defaults are the gateway's, and -h never prints the secret.
func TestServeAdmissionFlags(t *testing.T) {
	f, err := parseServe(nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c := f.cfg; c.MaxConns != gateway.DefaultMaxConns() || c.MaxConnsPerIP != gateway.DefaultMaxConnsPerIP || c.JWTSecret != "" || c.AllowedOrigins != nil {
		t.Fatalf("defaults %+v", c)
	}
	t.Setenv("SUBGATE_ALLOWED_ORIGINS", "https://a.example, https://b.example:8443")
	t.Setenv("SUBGATE_JWT_SECRET", "env-secret-env-secret-env-secret-env")
	t.Setenv("SUBGATE_MAX_CONNS", "50")
	var help strings.Builder
	f, err = parseServe([]string{"-max-conns-per-ip", "5"}, &help)
	if err != nil {
		t.Fatal(err)
	}
	c := f.cfg
	if strings.Join(c.AllowedOrigins, " ") != "https://a.example https://b.example:8443" || c.JWTSecret != "env-secret-env-secret-env-secret-env" ||
		c.MaxConns != 50 || c.MaxConnsPerIP != 5 {
		t.Fatalf("config %+v", c)
	}
	if _, err := parseServe([]string{"-h"}, &help); !errors.Is(err, flag.ErrHelp) || strings.Contains(help.String(), "env-secret") || !strings.Contains(help.String(), "(default 50)") {
		t.Fatalf("help (%v):\n%s", err, help.String())
	}
}

// A bad flag, a bad value or a stray argument is one line on stderr and
// exit status 2; -h prints every flag with its variable on stdout.
func TestServeUsage(t *testing.T) {
	for _, args := range [][]string{{"-rate", "abc"}, {"-no-such-flag"}, {"stray"}, {"-log-level", "loud"}, {"-log-format", "xml"}} {
		var stdout, stderr strings.Builder
		if code := runServe(args, &stdout, &stderr); code != 2 || strings.Count(stderr.String(), "\n") != 1 || stdout.Len() != 0 {
			t.Errorf("%v: exit %d, stdout %q, stderr %q", args, code, stdout.String(), stderr.String())
		}
	}
	var stdout, stderr strings.Builder
	if code := runServe([]string{"-h"}, &stdout, &stderr); code != 0 || stderr.Len() != 0 {
		t.Fatalf("-h: exit %d, stderr %q", code, stderr.String())
	}
	for _, name := range []string{"addr", "metrics-addr", "pprof-addr", "max-conns", "jwt-secret", "log-format"} {
		if !strings.Contains(stdout.String(), "  -"+name+" ") || !strings.Contains(stdout.String(), envName(name)) {
			t.Errorf("-h does not list -%s with %s", name, envName(name))
		}
	}
}

// freeAddr returns a loopback address nothing listens on (the port may be
// taken again before it is used; tests that use it fail loudly if so).
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// /metrics is on the gateway's address unless -metrics-addr moves it;
// pprof is off unless -pprof-addr turns it on.
func TestServeMetricsAndPprofAddrs(t *testing.T) {
	_, addr := startServe(t, nil)
	if got := string(testutil.GetOK(t, "http://"+addr+"/metrics")); !strings.Contains(got, "subgate_connections{protocol=\"msgpack\"} 0") {
		t.Fatalf("/metrics on -addr:\n%.400s", got)
	}
	if code := testutil.HTTPStatus(t, "http://"+addr+"/debug/pprof/"); code != http.StatusNotFound {
		t.Fatalf("pprof without -pprof-addr: %d", code)
	}
	maddr, paddr := freeAddr(t), freeAddr(t)
	_, addr = startServe(t, nil, "-metrics-addr", maddr, "-pprof-addr", paddr)
	if code := testutil.HTTPStatus(t, "http://"+addr+"/metrics"); code != http.StatusNotFound {
		t.Fatalf("/metrics still on -addr: %d", code)
	}
	if got := string(testutil.GetOK(t, "http://"+maddr+"/metrics")); !strings.Contains(got, "subgate_handshakes_refused_total") {
		t.Fatalf("/metrics on -metrics-addr:\n%.400s", got)
	}
	if code := testutil.HTTPStatus(t, "http://"+paddr+"/debug/pprof/"); code != http.StatusOK {
		t.Fatalf("pprof on -pprof-addr: %d", code)
	}
}

// -poller and SUBGATE_POLLER set Config.Poller; the default is the
// gateway's; a name the gateway does not know is a one-line error.
func TestServePollerFlag(t *testing.T) {
	f, err := parseServe(nil, io.Discard)
	if err != nil || f.cfg.Poller != gateway.DefaultConfig().Poller || f.cfg.Poller != "auto" {
		t.Fatalf("default poller %q (%v), want %q", f.cfg.Poller, err, gateway.DefaultConfig().Poller)
	}
	t.Setenv("SUBGATE_POLLER", "goroutines")
	if f, err = parseServe(nil, io.Discard); err != nil || f.cfg.Poller != "goroutines" {
		t.Fatalf("SUBGATE_POLLER=goroutines: %q (%v)", f.cfg.Poller, err)
	}
	if f, err = parseServe([]string{"-poller", "epoll"}, io.Discard); err != nil || f.cfg.Poller != "epoll" {
		t.Fatalf("-poller epoll: %q (%v)", f.cfg.Poller, err)
	}
	var stderr strings.Builder
	if code := runServe([]string{"-poller", "kqueue"}, io.Discard, &stderr); code != 2 || !strings.Contains(stderr.String(), `poller "kqueue"`) {
		t.Fatalf("-poller kqueue: exit %d, stderr %q", code, stderr.String())
	}
}
