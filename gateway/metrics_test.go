package gateway

import (
	"fmt"
	"math"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/golang-jwt/jwt/v5"
	dto "github.com/prometheus/client_model/go"

	"github.com/subgate/subgate/codec"
	"github.com/subgate/subgate/internal/testutil"
	"github.com/subgate/subgate/protocols"
	"github.com/subgate/subgate/protocols/chat"
)

// metric returns the sum of the series of family name whose labels
// include those given ("k=v" each): 0 when there are none. (A histogram
// counts its observations.) It reads the server's registry, the one
// /metrics serves.
func metric(t *testing.T, srv *Server, name string, labels ...string) float64 {
	t.Helper()
	fams, err := srv.m.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
		sum := 0.0
		for _, m := range f.GetMetric() {
			if !hasLabels(m, labels) {
				continue
			}
			switch {
			case m.Counter != nil:
				sum += m.Counter.GetValue()
			case m.Gauge != nil:
				sum += m.Gauge.GetValue()
			case m.Histogram != nil:
				sum += float64(m.Histogram.GetSampleCount())
			}
		}
		return sum
	}
	t.Fatalf("no metric family %s", name)
	return 0
}

func hasLabels(m *dto.Metric, want []string) bool {
	for _, kv := range want {
		k, v, _ := strings.Cut(kv, "=")
		found := false
		for _, l := range m.GetLabel() {
			if l.GetName() == k && l.GetValue() == v {
				found = true
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// expectMetric checks a series' value.
func expectMetric(t *testing.T, srv *Server, want float64, name string, labels ...string) {
	t.Helper()
	if got := metric(t, srv, name, labels...); got != want {
		t.Errorf("%s%v = %v, want %v", name, labels, got, want)
	}
}

// awaitMetric polls until a series has the value wanted (what a
// connection's end updates is counted after the client has seen it end).
func awaitMetric(t *testing.T, srv *Server, want float64, name string, labels ...string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for metric(t, srv, name, labels...) != want {
		if time.Now().After(deadline) {
			t.Fatalf("%s%v = %v, want %v", name, labels, metric(t, srv, name, labels...), want)
		}
		time.Sleep(5 * time.Millisecond) // polling a condition, bounded by the deadline
	}
}

// Traffic in every encoding shows in every family, with the protocol
// label, and counts exactly what was done.
func TestMetricsCountTraffic(t *testing.T) {
	srv, addr := startServer(t, Config{RateLimit: math.Inf(1)})
	msgs := 0
	for _, proto := range allProtos {
		c := dial(t, addr, "m-"+proto, proto)
		call[chat.PingResult](t, c, chat.MethodPing, &chat.PingParams{})
		call[chat.PingResult](t, c, chat.MethodPing, &chat.PingParams{})
		if code := callErr(t, c, "no.such.method", nil); code != codec.CodeMethodNotFound {
			t.Fatalf("unknown method: %d", code)
		}
		call[chat.JoinResult](t, c, chat.MethodJoin, &chat.JoinParams{Room: "lobby"})
		call[chat.SendResult](t, c, chat.MethodSend, &chat.SendParams{Room: "lobby", Message: "hi from " + proto})
		msgs += len("m-"+proto) + len("hi from "+proto) + entryOverhead
	}
	for _, p := range allProtos {
		proto := "protocol=" + p
		expectMetric(t, srv, 1, "subgate_connections", proto)
		expectMetric(t, srv, 1, "subgate_handshakes_accepted_total", proto)
		expectMetric(t, srv, 2, "subgate_calls_total", "method=chat.ping", proto, "outcome=ok")
		expectMetric(t, srv, 2, "subgate_call_duration_seconds", "method=chat.ping", proto)
		expectMetric(t, srv, 1, "subgate_calls_total", "method=unknown", proto, "outcome=-32601")
		expectMetric(t, srv, 1, "subgate_calls_total", "method=chat.send", proto, "outcome=ok")
		expectMetric(t, srv, 5, "subgate_messages_received_total", proto)
		if metric(t, srv, "subgate_received_bytes_total", proto) == 0 {
			t.Errorf("%s: no bytes received counted", p)
		}
		// Five replies, plus pushes: every member gets each later send.
		if n := metric(t, srv, "subgate_messages_sent_total", proto); n < 5 {
			t.Errorf("%s: %v messages sent, want at least 5", p, n)
		}
		if metric(t, srv, "subgate_sent_bytes_total", proto) == 0 {
			t.Errorf("%s: no bytes sent counted", p)
		}
		if metric(t, srv, "subgate_pushes_sent_total", proto) == 0 {
			t.Errorf("%s: no pushes counted", p)
		}
		expectMetric(t, srv, 0, "subgate_queued_bytes", proto)
	}
	expectMetric(t, srv, 1, "subgate_rooms")
	expectMetric(t, srv, float64(msgs), "subgate_history_bytes")
	expectMetric(t, srv, 0, "subgate_draining")

	// The families are served at /metrics in the text format.
	body := testutil.GetOK(t, "http://"+addr+"/metrics")
	for _, want := range []string{
		`subgate_connections{protocol="binary-raw"} 1`,
		`subgate_calls_total{method="chat.ping",outcome="ok",protocol="msgpack"} 2`,
		`subgate_call_duration_seconds_bucket{method="chat.ping",protocol="json-rpc",le="+Inf"} 2`,
		"go_goroutines", "process_resident_memory_bytes",
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

// Each kind of refused handshake counts under its reason.
func TestMetricsCountRefusals(t *testing.T) {
	secret := strings.Repeat("k", MinJWTSecret)
	srv, addr := startServer(t, Config{JWTSecret: secret, MaxConns: 1})
	upgrade(t, addr, addr, "/ws/a", "Origin: http://evil.example\r\n").expectStatus(http.StatusForbidden, "origin not allowed")
	upgrade(t, addr, addr, "/ws/a", "").expectStatus(http.StatusUnauthorized, refuseNoToken.text)
	tok := "?token=" + token(t, jwt.SigningMethodHS256, secret, jwt.MapClaims{"sub": "a"})
	upgrade(t, addr, addr, "/ws/a"+tok, "Sec-WebSocket-Protocol: nope\r\n").expectStatus(http.StatusBadRequest,
		"no supported subprotocol; supported: "+protocols.Names(protocols.All))
	upgrade(t, addr, addr, "/ws/"+strings.Repeat("x", 65), "").expectStatus(http.StatusBadRequest, refuseBadID.text)
	upgrade(t, addr, addr, "/ws/a"+tok, "").expectStatus(http.StatusSwitchingProtocols, "")
	upgrade(t, addr, addr, "/ws/a"+tok, "").expectStatus(http.StatusServiceUnavailable, refuseMaxConns.text)
	for reason, n := range map[string]float64{"origin": 1, "auth": 1, "no_protocol": 1, "bad_request": 1, "cap": 1, "draining": 0} {
		expectMetric(t, srv, n, "subgate_handshakes_refused_total", "reason="+reason)
	}
	expectMetric(t, srv, 1, "subgate_handshakes_accepted_total", "protocol=json-rpc")
}

// Disconnects count by close reason; slow consumers and rate-limited
// clients also by protocol, with the pushes their dropped queue lost.
func TestMetricsCountDisconnects(t *testing.T) {
	srv, addr := startServer(t, Config{SendQueueBytes: 64 << 10, RateLimit: math.Inf(1)})
	handshake(t, addr, "/ws/slow", strp(protocols.BinaryRaw)) // never reads; closed by the test's cleanup
	floodUntilDropped(t, addr)
	awaitMetric(t, srv, 1, "subgate_closes_total", "reason=slow_consumer")
	expectMetric(t, srv, 1, "subgate_slow_consumer_disconnects_total", "protocol=binary-raw")
	if metric(t, srv, "subgate_pushes_dropped_total", "protocol=binary-raw") == 0 {
		t.Error("no dropped pushes counted for the slow consumer")
	}

	peer := dial(t, addr, "leaver", protocols.JSONRPC)
	peer.Close()
	awaitMetric(t, srv, 1, "subgate_closes_total", "reason=peer")

	limited, addr2 := startServer(t, Config{RateLimit: 1e-6, RateBurst: 1})
	c := handshake(t, addr2, "/ws/eager", strp(protocols.JSONRPC))
	for i := 0; i <= MaxRateRefusals+1; i++ {
		c.send(ws.OpText, true, fmt.Appendf(nil, `{"jsonrpc":"2.0","method":"chat.ping","id":%d}`, i))
	}
	c.expectClose(ws.StatusPolicyViolation)
	awaitMetric(t, limited, 1, "subgate_rate_limit_disconnects_total", "protocol=json-rpc")
	expectMetric(t, limited, 1, "subgate_closes_total", "reason=rate_limited")
	expectMetric(t, limited, 1, "subgate_calls_total", "method=chat.ping", "outcome=ok")
	expectMetric(t, limited, MaxRateRefusals+1, "subgate_calls_total", "method=chat.ping", "outcome=-32006")
}

// Counting a message, a call and its outcome allocates nothing once the
// series exist (the first call of a method or error code makes them).
func TestMetricsHotPathDoesNotAllocate(t *testing.T) {
	srv, _ := startServer(t, Config{})
	pm := srv.m.protos[protocols.MsgPack]
	srv.m.observe(pm, srv.m.method(chat.MethodPing, srv.router.has), codec.CodeInvalidParams, time.Millisecond)
	allocs := testing.AllocsPerRun(1000, func() {
		pm.msgsIn.Inc()
		pm.bytesIn.Add(123)
		mm := srv.m.method(chat.MethodPing, srv.router.has)
		srv.m.observe(pm, mm, 0, time.Millisecond)
		srv.m.observe(pm, mm, codec.CodeInvalidParams, -1)
		srv.m.observe(pm, srv.m.method("no.such.method", srv.router.has), codec.CodeMethodNotFound, time.Microsecond)
		pm.pushesSent.Inc()
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per counted call", allocs)
	}
}
