package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/subgate/subgate/gateway"
	"github.com/subgate/subgate/internal/testutil"
)

func benchRun(args ...string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	code = runBench(args, &out, &errb)
	return code, out.String(), errb.String()
}

// benchServer is an in-process gateway without a call rate limit.
func benchServer(t *testing.T) string {
	t.Helper()
	_, url := testGateway(t, gateway.Config{RateLimit: math.Inf(1)})
	return url
}

// contractFields are the fields issue 8 promises scripts in every line.
var contractFields = []string{"scenario", "target", "proto", "conns", "subs", "rooms", "inflight", "rate",
	"duration_s", "ops", "ops_per_s", "p50_us", "p90_us", "p99_us", "p999_us", "max_us", "errors", "sent", "expected", "lost"}

// benchJSON runs `subgate bench -json args...`, checks it succeeded with
// one line of JSON holding every contract field, and returns it.
func benchJSON(t *testing.T, args ...string) map[string]any {
	t.Helper()
	code, out, errs := benchRun(append([]string{"-json", "-warmup", "50ms"}, args...)...)
	if code != 0 {
		t.Fatalf("bench %v: exit %d, stderr:\n%s", args, code, errs)
	}
	if strings.Count(out, "\n") != 1 || !strings.HasSuffix(out, "\n") {
		t.Fatalf("stdout is not one line: %q", out)
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(out), &m); err != nil {
		t.Fatalf("stdout %q: %v", out, err)
	}
	for _, f := range contractFields {
		if _, ok := m[f]; !ok {
			t.Errorf("no %q in %s", f, out)
		}
	}
	if _, ok := m["hist"]; ok {
		t.Errorf("the merged line carries a histogram: %s", out)
	}
	if m["errors"] != 0.0 {
		t.Errorf("errors: %s", out)
	}
	if !strings.Contains(errs, "p99.9 us") {
		t.Errorf("no table on stderr: %q", errs)
	}
	return m
}

func TestBenchJSON(t *testing.T) {
	url := benchServer(t)
	m := benchJSON(t, "-url", url, "-scenario", "ping", "-conns", "3", "-proto", "all", "-duration", "200ms")
	bp, ok := m["by_proto"].(map[string]any)
	if !ok || len(bp) != 3 {
		t.Errorf("by_proto = %v, want 3 encodings", m["by_proto"])
	}
	if m["ops"].(float64) == 0 || m["conns"] != 3.0 || m["proto"] != "all" {
		t.Errorf("result %v", m)
	}

	// Without -json: the table on stdout.
	code, out, _ := benchRun("-url", url, "-scenario", "connect", "-conns", "1", "-duration", "100ms", "-warmup", "0s")
	if code != 0 || !strings.HasPrefix(out, "connect against subgate (json-rpc): 1 conns") || !strings.Contains(out, "total") {
		t.Errorf("exit %d, table:\n%s", code, out)
	}
}

// TestBenchProcs runs two child processes (this test binary re-executed as
// subgate) and checks the merged line: an open loop of 400 ops/s for half
// a second is 100 ops in each child and exactly 200 in all; a broadcast's
// deliveries are accounted across the processes, and so is an open loop's
// rate, wherever the senders are; idle holds the
// connections of both.
func TestBenchProcs(t *testing.T) {
	t.Setenv("SUBGATE_TEST_MAIN", "1")
	url := benchServer(t)
	m := benchJSON(t, "-procs", "2", "-url", url, "-scenario", "ping", "-conns", "4", "-rate", "400", "-duration", "500ms")
	if m["ops"] != 200.0 || m["conns"] != 4.0 || m["rate"] != 400.0 {
		t.Errorf("merged ping: %v", m)
	}
	if m["p50_us"].(float64) <= 0 || m["max_us"].(float64) < m["p99_us"].(float64) {
		t.Errorf("merged percentiles: %v", m)
	}
	m = benchJSON(t, "-procs", "2", "-url", url, "-scenario", "broadcast", "-subs", "10", "-senders", "2", "-proto", "all", "-duration", "300ms")
	if m["lost"] != 0.0 || m["ops"] != m["expected"] || m["expected"] != m["sent"].(float64)*10 || m["sent"] == 0.0 {
		t.Errorf("merged broadcast: %v", m)
	}
	// -rate is shared in proportion to the senders each child holds: the
	// one sender is in the first child, and the 3 rooms' senders are 2
	// and 1; either way the run sends exactly rate x duration messages.
	for _, a := range [][]string{{"broadcast", "-subs", "4", "-senders", "1"}, {"room", "-rooms", "3", "-subs", "2"}} {
		m = benchJSON(t, append([]string{"-procs", "2", "-url", url, "-rate", "30", "-duration", "500ms", "-scenario"}, a...)...)
		if m["sent"] != 15.0 || m["rate"] != 30.0 || m["lost"] != 0.0 {
			t.Errorf("merged %s at 30/s for 0.5 s: %v", a[0], m)
		}
	}
	m = benchJSON(t, "-procs", "2", "-url", url, "-scenario", "idle", "-conns", "11", "-hold", "10ms")
	if m["ops"] != 11.0 || m["conns"] != 11.0 {
		t.Errorf("merged idle: %v", m)
	}
}

// TestBenchProcsCluster loads two gateways sharing one hub (a cluster in
// one process) from two child processes: each node accepts its share of
// the connections in every encoding (round-robin, one of each encoding at
// a time: node 0 gets connections 0-2 and 6-8, node 1 gets 3-5 and 9), and
// every broadcast reaches the subscribers of both nodes.
func TestBenchProcsCluster(t *testing.T) {
	t.Setenv("SUBGATE_TEST_MAIN", "1")
	hub := gateway.NewMemoryHub(gateway.HubLimits{})
	_, a := testGateway(t, gateway.Config{RateLimit: math.Inf(1), Hub: hub})
	_, b := testGateway(t, gateway.Config{RateLimit: math.Inf(1), Hub: hub})
	m := benchJSON(t, "-procs", "2", "-url", a+","+b, "-scenario", "broadcast", "-subs", "10", "-senders", "2", "-proto", "all", "-duration", "300ms")
	if m["lost"] != 0.0 || m["ops"] != m["expected"] || m["expected"] != m["sent"].(float64)*10 || m["sent"] == 0.0 {
		t.Errorf("merged broadcast: %v", m)
	}
	for url, want := range map[string][3]int{a: {2, 2, 2}, b: {2, 1, 1}} {
		got := string(testutil.GetOK(t, "http"+strings.TrimPrefix(url, "ws")+"/metrics"))
		for i, p := range []string{"json-rpc", "msgpack", "binary-raw"} {
			line := fmt.Sprintf("subgate_handshakes_accepted_total{protocol=%q} %d\n", p, want[i])
			if !strings.Contains(got, line) {
				t.Errorf("%s: no %q in /metrics", url, line)
			}
		}
	}
}

func TestBenchToken(t *testing.T) {
	t.Setenv("SUBGATE_JWT_SECRET", tokenSecret)
	code, tok, _ := tokenRun("-sub", "loadtester")
	if code != 0 {
		t.Fatal("token failed")
	}
	url := "ws://" + securedServer(t, tokenSecret)
	benchJSON(t, "-url", url, "-scenario", "connect", "-conns", "2", "-duration", "100ms", "-token", strings.TrimSpace(tok))
	// Without it every handshake is refused (401) and counted: exit 1.
	code, out, _ := benchRun("-json", "-url", url, "-scenario", "connect", "-conns", "1", "-duration", "100ms", "-warmup", "0s")
	if code != 1 || !strings.Contains(out, "401") {
		t.Errorf("no token: exit %d, %s", code, out)
	}
}

func TestBenchUsage(t *testing.T) {
	code, out, errs := benchRun("-h")
	if code != 0 || errs != "" {
		t.Errorf("-h: exit %d, stderr %q", code, errs)
	}
	for _, f := range []string{"url", "target", "proto", "scenario", "conns", "subs", "rooms", "senders", "inflight", "rate",
		"duration", "warmup", "hold", "token", "procs", "source-ips", "dial-rate", "json", "allow-remote"} {
		if !strings.Contains(out, "\n  -"+f+" ") && !strings.Contains(out, "\n  -"+f+"\n") {
			t.Errorf("-h does not list -%s", f)
		}
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-nope"}, "flag provided but not defined: -nope"},
		{[]string{"-conns", "x"}, "invalid value"},
		{[]string{"-url", "ws://192.0.2.1:8080", "-duration", "1ms"}, "pass -allow-remote"},
		{[]string{"-url", "ws://127.0.0.1:1", "-target", "centrifugo", "-scenario", "ping"}, "it supports: broadcast, idle, connect"},
		{[]string{"-url", "ws://192.0.2.1:8080", "-procs", "2"}, "pass -allow-remote"},
		{[]string{"extra"}, `unexpected argument "extra"`},
	} {
		code, out, errs := benchRun(tc.args...)
		if code != 2 || out != "" || strings.Count(errs, "\n") != 1 || !strings.Contains(errs, tc.want) {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want 2 and one line saying %q", tc.args, code, out, errs, tc.want)
		}
	}
}

// -marks brackets the measured window on stderr, start before end, for a
// script that samples the server at each.
func TestBenchMarks(t *testing.T) {
	url := benchServer(t)
	code, _, errOut := benchRun("-url", url, "-conns", "2", "-duration", "200ms", "-warmup", "100ms", "-marks", "-json")
	start, end := strings.Index(errOut, "window start\n"), strings.Index(errOut, "window end\n")
	if code != 0 || start < 0 || end < start {
		t.Fatalf("exit %d, stderr:\n%s", code, errOut)
	}
}
