package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/subgate/subgate/client"
	"github.com/subgate/subgate/gateway"
	"github.com/subgate/subgate/protocols"
	"github.com/subgate/subgate/protocols/chat"
)

// callTestServer runs an in-process gateway and returns its ws:// base URL.
func callTestServer(t *testing.T) (*gateway.Server, string) {
	t.Helper()
	srv, base := testGateway(t, gateway.Config{})
	return srv, base + "/ws/"
}

// testGateway runs an in-process gateway with cfg (logs discarded) and
// returns its ws://HOST:PORT base URL.
func testGateway(t *testing.T, cfg gateway.Config) (*gateway.Server, string) {
	t.Helper()
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	srv, err := gateway.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv)
	t.Cleanup(hs.Close)
	return srv, "ws" + strings.TrimPrefix(hs.URL, "http")
}

func callRun(args ...string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	code = runCall(args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestCallResultAndErrors(t *testing.T) {
	_, base := callTestServer(t)
	for _, p := range protocols.All {
		t.Run(p.Name, func(t *testing.T) {
			code, out, errs := callRun("-url", base+"cli", "-proto", p.Name, chat.MethodJoin, `{"room":"lobby"}`)
			if code != 0 || errs != "" {
				t.Fatalf("join: exit %d, stderr %q", code, errs)
			}
			var res chat.JoinResult
			if err := json.Unmarshal([]byte(out), &res); err != nil || res.Room != "lobby" || !strings.HasSuffix(out, "}\n") || strings.Count(out, "\n") != 1 {
				t.Errorf("join printed %q (%v)", out, err)
			}

			// Flags after the method work too.
			code, _, errs = callRun(chat.MethodPing, "-proto", p.Name, "-url", base+"cli")
			if code != 0 {
				t.Errorf("ping with trailing flags: exit %d, %s", code, errs)
			}

			code, out, errs = callRun("-url", base+"cli", "-proto", p.Name, "chat.nope")
			if code != 1 || out != "" || errs != "error -32601: Method not found (chat.nope)\n" {
				t.Errorf("unknown method: exit %d, stdout %q, stderr %q", code, out, errs)
			}
		})
	}
}

// TestCallSequence runs several calls on one connection: the room joined by
// the first is still joined for the second, and the first error stops the
// rest.
func TestCallSequence(t *testing.T) {
	_, base := callTestServer(t)
	for _, p := range protocols.All {
		t.Run(p.Name, func(t *testing.T) {
			room := `{"room":"seq-` + p.Name + `"}`
			send := `{"room":"seq-` + p.Name + `","message":"hi"}`
			code, out, errs := callRun("-url", base+"seq", "-proto", p.Name,
				chat.MethodJoin, room, chat.MethodSend, send, chat.MethodPing, chat.MethodHistory, room)
			lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
			if code != 0 || errs != "" || len(lines) != 4 {
				t.Fatalf("exit %d, stdout %q, stderr %q", code, out, errs)
			}
			var sent chat.SendResult
			var hist chat.HistoryResult
			if err := json.Unmarshal([]byte(lines[1]), &sent); err != nil || sent.Offset != 1 {
				t.Errorf("send printed %q (%v)", lines[1], err)
			}
			if err := json.Unmarshal([]byte(lines[3]), &hist); err != nil || len(hist.Messages) != 1 || hist.Messages[0].Message != "hi" || hist.Messages[0].From != "seq" {
				t.Errorf("history printed %q (%v)", lines[3], err)
			}

			code, out, errs = callRun("-url", base+"seq2", "-proto", p.Name, chat.MethodPing, "chat.nope", chat.MethodPing)
			if code != 1 || strings.Count(out, "\n") != 1 || errs != "error -32601: Method not found (chat.nope)\n" {
				t.Errorf("error mid-sequence: exit %d, stdout %q, stderr %q", code, out, errs)
			}
		})
	}
}

func TestCallUsageAndConnectionErrors(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "ws://" + ln.Addr().String() + "/ws/cli"
	ln.Close()

	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{
			name: "no method",
			args: nil,
			code: 2,
			want: "usage: subgate call",
		},
		{
			name: "bad flag",
			args: []string{"-nope", "chat.ping"},
			code: 2,
			want: "usage: subgate call",
		},
		{
			name: "bad protocol",
			args: []string{"-proto", "xml", "chat.ping"},
			code: 2,
			want: `unknown protocol "xml"`,
		},
		{
			name: "two params",
			args: []string{"chat.ping", "{}", "{}"},
			code: 2,
			want: "two PARAMS_JSON for chat.ping",
		},
		{
			name: "params first",
			args: []string{`{"room":"a"}`, "chat.join"},
			code: 2,
			want: "before any METHOD",
		},
		{
			name: "refused",
			args: []string{"-url", closed, "-timeout", "2s", "chat.ping"},
			code: 2,
			want: "connection refused",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errs := callRun(tc.args...)
			if code != tc.code || out != "" || !strings.Contains(errs, tc.want) {
				t.Errorf("exit %d, stdout %q, stderr %q; want exit %d and %q", code, out, errs, tc.code, tc.want)
			}
			if tc.code == 2 && !strings.Contains(errs, "usage") && strings.Count(errs, "\n") != 1 {
				t.Errorf("connection error is not one line: %q", errs)
			}
		})
	}
}

func TestCallListen(t *testing.T) {
	srv, base := callTestServer(t)
	pr, pw := io.Pipe()
	var errb bytes.Buffer
	exit := make(chan int, 1)
	go func() {
		code := runCall([]string{"-url", base + "listener", "-proto", "binary-raw", "-listen", "30s", chat.MethodJoin, `{"room":"lobby"}`}, pw, &errb)
		pw.Close()
		exit <- code
	}()
	lines := bufio.NewScanner(pr)
	if !lines.Scan() || !strings.Contains(lines.Text(), `"room":"lobby"`) {
		t.Fatalf("first line %q, want the join result", lines.Text())
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, base+"sender", client.Options{Protocol: "msgpack"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Call(ctx, chat.MethodJoin, &chat.JoinParams{Room: "lobby"}, nil); err != nil {
		t.Fatal(err)
	}
	if err := c.Call(ctx, chat.MethodSend, &chat.SendParams{Room: "lobby", Message: "hi <all>"}, nil); err != nil {
		t.Fatal(err)
	}
	var got []string
	for lines.Scan() {
		got = append(got, lines.Text())
		if strings.Contains(lines.Text(), `"method":"chat.message"`) {
			break
		}
	}
	// The message push, possibly after sender's presence push.
	last := got[len(got)-1]
	const want = `{"method":"chat.message","params":{"room":"lobby","from":"sender","message":"hi <all>","offset":1,"epoch":"`
	if !strings.HasPrefix(last, want) || !strings.Contains(last, `","ts":`) {
		t.Errorf("push line %q, want prefix %q and an epoch then ts", last, want)
	}

	// The server going away ends the listening early, with status 0. The
	// listener gets the draining notice; sender, still in the room, is
	// closed by the same shutdown, and its presence leave may be pushed to
	// the listener before or after the notice (the server does not order
	// pushes caused by other connections against it).
	if err := srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	var after []string
	for lines.Scan() {
		after = append(after, lines.Text())
	}
	if code := <-exit; code != 0 {
		t.Errorf("exit %d, stderr %q", code, errb.String())
	}
	notices := 0
	for _, l := range after {
		switch {
		case strings.HasPrefix(l, `{"method":"gateway.notice","params":{"kind":"draining"`):
			notices++
		case l == `{"method":"chat.presence","params":{"room":"lobby","client_id":"sender","event":"leave"}}`:
		default:
			t.Errorf("line %q after the shutdown, want only the draining notice and sender's leave", l)
		}
	}
	if notices != 1 {
		t.Errorf("lines after the shutdown %q, want one draining notice", after)
	}
	if !strings.Contains(errb.String(), "1001") {
		t.Errorf("stderr %q does not report the close", errb.String())
	}
}
