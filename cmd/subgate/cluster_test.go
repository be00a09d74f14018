package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"strings"
	"syscall"
	"testing"

	"github.com/subgate/subgate/internal/natstest"
	"github.com/subgate/subgate/internal/testutil"
	"github.com/subgate/subgate/protocols/chat"
)

// TestServeCluster follows the README's cluster section with real
// processes: two `subgate serve` nodes on one nats-server (one configured
// by -nats, one by SUBGATE_NATS_URL), a listener on one and a sender on
// the other in different encodings; a node restarted keeps the room's
// history and offsets.
func TestServeCluster(t *testing.T) {
	ns := natstest.Start(t)
	_, a := startServe(t, nil, "-nats", ns.URL())
	b, bAddr := startServe(t, []string{"SUBGATE_NATS_URL=" + ns.URL()})
	for _, addr := range []string{a, bAddr} {
		if got := testutil.HTTPStatus(t, "http://"+addr+"/readyz"); got != 200 {
			t.Fatalf("%s/readyz: %d", addr, got)
		}
	}

	pr, pw := io.Pipe()

	go func() {
		var errb bytes.Buffer
		code := runCall([]string{"-url", "ws://" + a + "/ws/bob", "-proto", "msgpack", "-listen", "30s", chat.MethodJoin, `{"room":"lobby"}`}, pw, &errb)
		pw.Close()
		_ = code
	}()
	lines := bufio.NewScanner(pr)
	if !lines.Scan() || !strings.Contains(lines.Text(), `"members":["bob"]`) {
		t.Fatalf("bob's join: %q", lines.Text())
	}
	code, out, errs := callRun("-url", "ws://"+bAddr+"/ws/alice", "-proto", "binary-raw",
		chat.MethodJoin, `{"room":"lobby"}`, chat.MethodSend, `{"room":"lobby","message":"hi bob"}`)
	if code != 0 || !strings.Contains(out, `"members":["alice","bob"]`) || !strings.Contains(out, `"offset":1,`) {
		t.Fatalf("alice on the other node: exit %d, %q %q", code, out, errs)
	}
	var sent chat.SendResult
	if err := json.Unmarshal([]byte(strings.Split(strings.TrimSpace(out), "\n")[1]), &sent); err != nil {
		t.Fatal(err)
	}
	// Presence and messages travel different ways between nodes (the
	// presence bucket, the room's subject): alice's leave, when her
	// command exits, may come before or after her message.
	awaitLines(t, lines, `"client_id":"alice","event":"join"`, `"message":"hi bob","offset":1,"epoch":"`+sent.Epoch+`"`, `"client_id":"alice","event":"leave"`)

	// Node B stops and starts again: history and offsets live in NATS.
	if err := b.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := b.Wait(); err != nil {
		t.Fatalf("node B exit: %v", err)
	}
	_, bAddr = startServe(t, []string{"SUBGATE_NATS_URL=" + ns.URL()})
	code, out, errs = callRun("-url", "ws://"+bAddr+"/ws/carol", "-proto", "json-rpc",
		chat.MethodJoin, `{"room":"lobby"}`, chat.MethodSend, `{"room":"lobby","message":"after the restart"}`,
		chat.MethodHistory, `{"room":"lobby"}`)
	if code != 0 || !strings.Contains(out, `"offset":2,"epoch":"`+sent.Epoch+`"`) || !strings.Contains(out, `"message":"hi bob"`) || !strings.Contains(out, `"recovered":true`) {
		t.Fatalf("after node B restarted: exit %d, %q %q", code, out, errs)
	}
	awaitLines(t, lines, `"client_id":"carol","event":"join"`, `"message":"after the restart","offset":2`)
}

// awaitLines reads lines until each of want has been seen in one of them,
// in any order; at most 20 lines.
func awaitLines(t *testing.T, lines *bufio.Scanner, want ...string) {
	t.Helper()
	left := append([]string(nil), want...)
	var got []string
	for i := 0; i < 20 && len(left) > 0 && lines.Scan(); i++ {
		got = append(got, lines.Text())
		for j, w := range left {
			if strings.Contains(lines.Text(), w) {
				left = append(left[:j], left[j+1:]...)
				break
			}
		}
	}
	if len(left) > 0 {
		t.Fatalf("lines %q lack %q", got, left)
	}
}
