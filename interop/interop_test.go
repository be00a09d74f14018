package interop

import (
	"context"
	"errors"
	"log/slog"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/subgate/subgate/gateway"
	"github.com/subgate/subgate/internal/testutil"
)

// scriptTimeout bounds one client script run.
const scriptTimeout = 60 * time.Second

const setupHint = "bash interop/setup.sh (from the repository root)"

// gate skips the test unless SUBGATE_INTEROP=1.
func gate(t *testing.T) {
	t.Helper()
	if os.Getenv("SUBGATE_INTEROP") != "1" {
		t.Skip("interop tests run third-party Node and Python clients; enable with: " +
			setupHint + " && SUBGATE_INTEROP=1 go test -v ./interop/")
	}
}

// startGateway serves a gateway on 127.0.0.1:0 and returns its ws:// base
// URL. Its logs are shown if the test fails. Cleanup shuts it down and
// checks that every client connection was closed.
func startGateway(t *testing.T) (string, *gateway.Server) {
	t.Helper()
	return startGatewayConfig(t, gateway.Config{})
}

// startGatewayConfig is startGateway with cfg (its Logger is replaced).
func startGatewayConfig(t *testing.T, cfg gateway.Config) (string, *gateway.Server) {
	t.Helper()
	logs := &testutil.SyncBuffer{}
	cfg.Logger = slog.New(slog.NewTextHandler(logs, nil))
	srv, err := gateway.New(cfg)
	if err != nil {
		t.Fatalf("gateway.New: %v", err)
	}
	hs := httptest.NewServer(srv)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("gateway Shutdown: %v", err)
		}
		hs.Close()
		if t.Failed() {
			t.Logf("gateway logs:\n%s", logs.String())
		}
	})
	return "ws://" + hs.Listener.Addr().String(), srv
}

// runScript runs a client script against base and fails the test with its
// output unless it exits 0 and reports " 0 failed".
func runScript(t *testing.T, dir, name string, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), scriptTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.WaitDelay = 5 * time.Second
	start := time.Now()
	out, err := cmd.CombinedOutput()
	output := string(out)
	switch {
	case ctx.Err() != nil:
		t.Fatalf("%s %s: timed out after %v\n%s", name, strings.Join(args, " "), scriptTimeout, output)
	case err != nil:
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, output)
	case !strings.Contains(output, " 0 failed"):
		t.Fatalf("%s %s: exited 0 but its output lacks \" 0 failed\"\n%s", name, strings.Join(args, " "), output)
	}
	t.Logf("%s %s (%v):\n%s", name, strings.Join(args, " "), time.Since(start).Round(time.Millisecond), output)
}

// waitNoConns checks that the clients closed every connection they opened.
func waitNoConns(t *testing.T, srv *gateway.Server) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.WaitConns(ctx, 0); err != nil {
		t.Errorf("5s after the script exited: %v", err)
	}
}

// nodeWith returns the path of node and fails the test unless each of mods
// is installed in interop/node/node_modules.
func nodeWith(t *testing.T, mods ...string) string {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatalf("node not found on PATH (%v); install Node.js >= 18, e.g.: apt-get install -y nodejs npm", err)
	}
	for _, mod := range mods {
		if _, err := os.Stat(filepath.Join("node", "node_modules", filepath.FromSlash(mod), "package.json")); err != nil {
			t.Fatalf("interop/node/node_modules/%s is missing; install with: %s (or: cd interop/node && npm ci)", mod, setupHint)
		}
	}
	return node
}

func TestNode(t *testing.T) {
	gate(t)
	node := nodeWith(t, "ws", "@msgpack/msgpack")
	base, srv := startGateway(t)
	runScript(t, "node", node, "interop.mjs", base)
	waitNoConns(t, srv)
}

const python = "/usr/bin/python3"

func TestPython(t *testing.T) {
	gate(t)
	if _, err := os.Stat(python); err != nil {
		t.Fatalf("%s not found (%v); install with: apt-get update && apt-get install -y python3 python3-websockets python3-msgpack", python, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, python, "-c", "import websockets, msgpack").CombinedOutput(); err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			t.Fatalf("%s: %v", python, err)
		}
		t.Fatalf("%s cannot import websockets and msgpack:\n%s\ninstall with: %s (or as root: apt-get update && apt-get install -y python3-websockets python3-msgpack)", python, out, setupHint)
	}
	base, srv := startGateway(t)
	runScript(t, "python", python, "interop.py", base)
	waitNoConns(t, srv)
}

// TestReplyLoopPython runs pynvim's msgpack_rpc (Debian's python3-pynvim)
// against the gateway: it answers the gateway's nil-msgid error with a
// string-error response, and that response, like every malformed response
// it then sends, must not be answered (python/replyloop.py).
func TestReplyLoopPython(t *testing.T) {
	gate(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, python, "-c", "import websockets, msgpack, pynvim.msgpack_rpc").CombinedOutput(); err != nil {
		t.Fatalf("%s cannot import websockets, msgpack and pynvim.msgpack_rpc: %v\n%s\ninstall with: %s (or as root: apt-get install -y python3-pynvim)", python, err, out, setupHint)
	}
	base, srv := startGateway(t)
	runScript(t, "python", python, "replyloop.py", base)
	waitNoConns(t, srv)
}

// TestReplyLoopNode runs npm's msgpack5rpc against the gateway: the
// malformed responses it writes are not answered (it would crash on the
// nil-msgid error that answered them) and a call then round-trips
// (node/replyloop.mjs).
func TestReplyLoopNode(t *testing.T) {
	gate(t)
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatalf("node not found on PATH (%v); install Node.js >= 18", err)
	}
	if _, err := os.Stat(filepath.Join("node", "node_modules", "msgpack5rpc", "package.json")); err != nil {
		t.Fatalf("interop/node/node_modules/msgpack5rpc is missing; install with: %s (or: cd interop/node && npm ci)", setupHint)
	}
	base, srv := startGateway(t)
	runScript(t, "node", node, "replyloop.mjs", base)
	waitNoConns(t, srv)
}
