package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/subgate/subgate/client"
	"github.com/subgate/subgate/gateway"
	"github.com/subgate/subgate/protocols/chat"
)

const tokenSecret = "a-secret-of-at-least-32-bytes-xyz"

func tokenRun(args ...string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	code = runToken(args, &out, &errb)
	return code, out.String(), errb.String()
}

// securedServer runs an in-process gateway that requires tokens signed
// with secret, and returns its address.
func securedServer(t *testing.T, secret string) string {
	t.Helper()
	srv, err := gateway.New(gateway.Config{JWTSecret: secret, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv)
	t.Cleanup(hs.Close)
	return hs.Listener.Addr().String()
}

// dialToken connects as id with tok; it returns the handshake's status
// (101 when connected, after a ping is answered).
func dialToken(t *testing.T, addr, id, tok string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, "ws://"+addr+"/ws/"+id, client.Options{Header: http.Header{"Authorization": {"Bearer " + tok}}})
	var he *client.HandshakeError
	if errors.As(err, &he) {
		return he.StatusCode
	}
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Call(ctx, chat.MethodPing, &chat.PingParams{}, nil); err != nil {
		t.Fatal(err)
	}
	return http.StatusSwitchingProtocols
}

func TestToken(t *testing.T) {
	addr := securedServer(t, tokenSecret)
	t.Run("round trip with -secret", func(t *testing.T) {
		code, out, errs := tokenRun("-sub", "alice", "-ttl", "1h", "-secret", tokenSecret)
		if code != 0 || errs != "" || strings.Count(out, "\n") != 1 || strings.Count(out, ".") != 2 {
			t.Fatalf("exit %d, stdout %q, stderr %q", code, out, errs)
		}
		if got := dialToken(t, addr, "alice", strings.TrimSpace(out)); got != 101 {
			t.Fatalf("status %d", got)
		}
		if got := dialToken(t, addr, "bob", strings.TrimSpace(out)); got != 401 {
			t.Fatalf("alice's token as bob: status %d, want 401", got)
		}
	})
	t.Run("secret from SUBGATE_JWT_SECRET", func(t *testing.T) {
		t.Setenv("SUBGATE_JWT_SECRET", tokenSecret)
		_, out, _ := tokenRun("-sub", "alice")
		if got := dialToken(t, addr, "alice", strings.TrimSpace(out)); got != 101 {
			t.Fatalf("status %d", got)
		}
	})
	t.Run("wrong secret", func(t *testing.T) {
		_, out, _ := tokenRun("-sub", "alice", "-secret", tokenSecret+"-other")
		if got := dialToken(t, addr, "alice", strings.TrimSpace(out)); got != 401 {
			t.Fatalf("status %d, want 401", got)
		}
	})
	t.Run("expired", func(t *testing.T) {
		_, out, _ := tokenRun("-sub", "alice", "-ttl", "1s", "-secret", tokenSecret)
		tok := strings.TrimSpace(out)
		// Accepted until exp (at most a second away), then refused.
		for deadline := time.Now().Add(5 * time.Second); dialToken(t, addr, "alice", tok) != 401; {
			if time.Now().After(deadline) {
				t.Fatal("a one-second token still accepted after 5s")
			}
			time.Sleep(50 * time.Millisecond)
		}
	})
}

func TestTokenUsage(t *testing.T) {
	t.Setenv("SUBGATE_JWT_SECRET", "")
	for _, tc := range []struct {
		args []string
		err  string
	}{
		{[]string{"-secret", tokenSecret}, "-sub must be a client id"},
		{[]string{"-sub", "a b", "-secret", tokenSecret}, "-sub must be a client id"},
		{[]string{"-sub", "alice"}, "no secret"},
		{[]string{"-sub", "alice", "-secret", "short"}, "the secret must be at least 32 bytes"},
		{[]string{"-sub", "alice", "-secret", tokenSecret, "-ttl", "500ms"}, "-ttl must be at least 1s"},
		{[]string{"-sub", "alice", "-secret", tokenSecret, "extra"}, `unexpected argument "extra"`},
	} {
		code, out, errs := tokenRun(tc.args...)
		if code != 2 || out != "" || !strings.HasPrefix(errs, "subgate token: "+tc.err) || strings.Count(errs, "\n") != 1 {
			t.Errorf("%v: exit %d, stdout %q, stderr %q", tc.args, code, out, errs)
		}
	}
	if code, _, _ := tokenRun("-nope"); code != 2 {
		t.Errorf("unknown flag: exit %d", code)
	}
	var out bytes.Buffer
	if code := run([]string{"help"}, &out, io.Discard); code != 0 || !strings.Contains(out.String(), "subgate token -sub") {
		t.Errorf("usage %q", out.String())
	}
}
