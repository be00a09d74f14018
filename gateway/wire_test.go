package gateway

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"
)

// startServer runs a gateway on loopback, logging nowhere unless cfg says
// where, and shuts it down with the test.
func startServer(t *testing.T, cfg Config) (*Server, string) {
	t.Helper()
	return startServerTB(t, cfg)
}

// rawConn is a hand-driven client connection for wire-level tests.
type rawConn struct {
	t    *testing.T
	nc   net.Conn
	br   *bufio.Reader
	resp *http.Response
}

// handshake sends an upgrade request; offer nil means no
// Sec-WebSocket-Protocol header.
func handshake(t *testing.T, addr, path string, offer *string) *rawConn {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	_ = nc.SetDeadline(time.Now().Add(10 * time.Second))
	req := "GET " + path + " HTTP/1.1\r\nHost: " + addr + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
	if offer != nil {
		req += "Sec-WebSocket-Protocol: " + *offer + "\r\n"
	}
	if _, err := io.WriteString(nc, req+"\r\n"); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(nc)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	return &rawConn{t: t, nc: nc, br: br, resp: resp}
}

func strp(s string) *string { return &s }

func (c *rawConn) send(op ws.OpCode, fin bool, payload []byte) {
	c.t.Helper()
	f := ws.NewFrame(op, fin, append([]byte(nil), payload...))
	if err := ws.WriteFrame(c.nc, ws.MaskFrameInPlace(f)); err != nil {
		c.t.Fatal(err)
	}
}

// next reads the next frame that is not a ping.
func (c *rawConn) next() ws.Frame {
	c.t.Helper()
	for {
		f, err := ws.ReadFrame(c.br)
		if err != nil {
			c.t.Fatalf("reading frame: %v", err)
		}
		if f.Header.OpCode != ws.OpPing {
			return f
		}
	}
}

// expectClose reads until a close frame and checks its code.
func (c *rawConn) expectClose(code ws.StatusCode) string {
	c.t.Helper()
	for {
		f := c.next()
		if f.Header.OpCode == ws.OpClose {
			got, reason := ws.ParseCloseFrameData(f.Payload)
			if got != code {
				c.t.Fatalf("close code %d (%q), want %d", got, reason, code)
			}
			return reason
		}
	}
}

func (c *rawConn) callJSON(req string) map[string]any {
	c.t.Helper()
	c.send(ws.OpText, true, []byte(req))
	f := c.next()
	var v map[string]any
	if err := json.Unmarshal(f.Payload, &v); err != nil {
		c.t.Fatalf("reply %q: %v", f.Payload, err)
	}
	return v
}

func TestNegotiation(t *testing.T) {
	_, addr := startServer(t, Config{})
	for _, tc := range []struct {
		offer  *string
		status int
		proto  string
	}{
		{strp("msgpack"), 101, "msgpack"},
		{strp("foo,msgpack,json-rpc"), 101, "msgpack"},
		{strp("xml-rpc, binary-raw, json-rpc"), 101, "binary-raw"},
		{strp("json-rpc, msgpack"), 101, "json-rpc"},
		{nil, 101, ""},
		{strp("xml-rpc, secure-binary"), 400, ""},
	} {
		c := handshake(t, addr, "/ws/alice", tc.offer)
		got := c.resp.Header.Get("Sec-WebSocket-Protocol")
		if c.resp.StatusCode != tc.status || got != tc.proto {
			t.Errorf("offer %v: status %d protocol %q, want %d %q", tc.offer, c.resp.StatusCode, got, tc.status, tc.proto)
		}
		if tc.status == 400 {
			body, _ := io.ReadAll(c.resp.Body)
			for _, name := range []string{"json-rpc", "msgpack", "binary-raw"} {
				if !strings.Contains(string(body), name) {
					t.Errorf("400 body %q does not list %s", body, name)
				}
			}
		}
	}
	// No header: json-rpc is spoken.
	c := handshake(t, addr, "/ws/bob", nil)
	if v := c.callJSON(`{"jsonrpc":"2.0","method":"chat.ping","id":1}`); v["result"] == nil {
		t.Fatalf("default protocol did not answer: %v", v)
	}
}

func TestNegotiationRejectModeClose(t *testing.T) {
	_, addr := startServer(t, Config{RejectMode: "close"})
	c := handshake(t, addr, "/ws/alice", strp("xml-rpc"))
	if c.resp.StatusCode != 101 || c.resp.Header.Get("Sec-WebSocket-Protocol") != "" {
		t.Fatalf("status %d protocol %q", c.resp.StatusCode, c.resp.Header.Get("Sec-WebSocket-Protocol"))
	}
	if reason := c.expectClose(ws.StatusProtocolError); reason != "Unsupported subprotocol" {
		t.Fatalf("reason %q", reason)
	}
}

func TestNoDefaultProtocol(t *testing.T) {
	_, addr := startServer(t, Config{DefaultProtocol: "none"})
	if c := handshake(t, addr, "/ws/alice", nil); c.resp.StatusCode != 400 {
		t.Fatalf("status %d", c.resp.StatusCode)
	}
}

func TestClientIDValidation(t *testing.T) {
	_, addr := startServer(t, Config{})
	for _, path := range []string{"/ws/" + strings.Repeat("a", 65), "/ws/a%20b", "/ws/a$b", "/ws/"} {
		c := handshake(t, addr, path, strp("json-rpc"))
		if c.resp.StatusCode != 400 && c.resp.StatusCode != 404 {
			t.Errorf("%s: status %d", path, c.resp.StatusCode)
		}
	}
	if c := handshake(t, addr, "/ws/"+strings.Repeat("a", 64), strp("json-rpc")); c.resp.StatusCode != 101 {
		t.Errorf("64-char id refused: %d", c.resp.StatusCode)
	}
}

func TestCloseCodes(t *testing.T) {
	_, addr := startServer(t, Config{MaxMessageSize: 1024})
	for _, tc := range []struct {
		name  string
		proto string
		send  func(c *rawConn)
		code  ws.StatusCode
	}{
		{"binary frame on json-rpc", "json-rpc", func(c *rawConn) { c.send(ws.OpBinary, true, []byte{1}) }, ws.StatusUnsupportedData},
		{"text frame on msgpack", "msgpack", func(c *rawConn) { c.send(ws.OpText, true, []byte("x")) }, ws.StatusUnsupportedData},
		{"text frame on binary-raw", "binary-raw", func(c *rawConn) { c.send(ws.OpText, true, []byte("x")) }, ws.StatusUnsupportedData},
		{"invalid UTF-8", "json-rpc", func(c *rawConn) { c.send(ws.OpText, true, []byte{'"', 0xff, '"'}) }, ws.StatusInvalidFramePayloadData},
		{"UTF-8 split across fragments is fine, then too big", "json-rpc", func(c *rawConn) {
			c.send(ws.OpText, false, []byte{'"', 0xc3})
			c.send(ws.OpContinuation, true, []byte{0xa9, '"'})
			c.next() // the -32600 reply proves the message was accepted
			c.send(ws.OpText, true, make([]byte, 1025))
		}, ws.StatusMessageTooBig},
		{"too big across fragments", "msgpack", func(c *rawConn) {
			c.send(ws.OpBinary, false, make([]byte, 600))
			c.send(ws.OpContinuation, true, make([]byte, 600))
		}, ws.StatusMessageTooBig},
		{"unmasked frame", "json-rpc", func(c *rawConn) {
			_ = ws.WriteFrame(c.nc, ws.NewTextFrame([]byte("{}")))
		}, ws.StatusProtocolError},
		{"continuation without start", "json-rpc", func(c *rawConn) { c.send(ws.OpContinuation, true, []byte("x")) }, ws.StatusProtocolError},
		{"reserved opcode", "json-rpc", func(c *rawConn) { c.send(ws.OpCode(3), true, nil) }, ws.StatusProtocolError},
		{"fragmented ping", "json-rpc", func(c *rawConn) { c.send(ws.OpPing, false, nil) }, ws.StatusProtocolError},
		{"close with 1-byte payload", "json-rpc", func(c *rawConn) { c.send(ws.OpClose, true, []byte{3}) }, ws.StatusProtocolError},
		{"close with invalid code", "json-rpc", func(c *rawConn) { c.send(ws.OpClose, true, []byte{0x03, 0xe7}) }, ws.StatusProtocolError},
		{"close with invalid UTF-8 reason", "json-rpc", func(c *rawConn) { c.send(ws.OpClose, true, []byte{0x03, 0xe8, 0xff}) }, ws.StatusInvalidFramePayloadData},
		{"clean close echoes the code", "json-rpc", func(c *rawConn) { c.send(ws.OpClose, true, ws.NewCloseFrameBody(4000, "bye")) }, 4000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := handshake(t, addr, "/ws/alice", strp(tc.proto))
			c.t = t
			tc.send(c)
			c.expectClose(tc.code)
		})
	}
}

func TestPingPong(t *testing.T) {
	_, addr := startServer(t, Config{})
	c := handshake(t, addr, "/ws/alice", strp("json-rpc"))
	c.send(ws.OpPing, true, []byte("hello"))
	f := c.next()
	if f.Header.OpCode != ws.OpPong || string(f.Payload) != "hello" {
		t.Fatalf("got %v %q", f.Header.OpCode, f.Payload)
	}
}

func TestSeedFlow(t *testing.T) {
	_, addr := startServer(t, Config{})
	a := handshake(t, addr, "/ws/1", strp("json-rpc"))
	b := handshake(t, addr, "/ws/2", strp("json-rpc"))
	b.callJSON(`{"jsonrpc":"2.0","method":"chat.ping","id":0}`) // b is registered once it answered
	v := a.callJSON(`{"jsonrpc":"2.0","method":"chat.ping","params":{},"id":1}`)
	res := v["result"].(map[string]any)
	if res["status"] != "ok" || res["timestamp"].(float64) < 1e9 {
		t.Fatalf("ping: %v", v)
	}
	a.send(ws.OpText, true, []byte(`{"jsonrpc":"2.0","method":"chat.broadcast","params":{"message":"hi"},"id":2}`))
	var sawReply, sawPush bool
	for !sawReply || !sawPush {
		var m map[string]any
		_ = json.Unmarshal(a.next().Payload, &m)
		switch {
		case m["id"] == 2.0:
			sawReply = m["result"].(map[string]any)["delivered"] == 2.0
		case m["method"] == "chat.message":
			sawPush = true
		}
	}
	var m map[string]any
	_ = json.Unmarshal(b.next().Payload, &m)
	p := m["params"].(map[string]any)
	if m["method"] != "chat.message" || p["from"] != "1" || p["message"] != "hi" {
		t.Fatalf("b got %v", m)
	}
}

func TestShutdownSendsNoticeAnd1001(t *testing.T) {
	srv, addr := startServer(t, Config{})
	c := handshake(t, addr, "/ws/alice", strp("json-rpc"))
	c.callJSON(`{"jsonrpc":"2.0","method":"chat.ping","id":1}`)
	done := make(chan error, 1)
	go func() { done <- srv.Shutdown(context.Background()) }()
	f := c.next()
	if !strings.Contains(string(f.Payload), `"gateway.notice"`) {
		t.Fatalf("first frame %q", f.Payload)
	}
	c.expectClose(ws.StatusGoingAway)
	c.send(ws.OpClose, true, ws.NewCloseFrameBody(ws.StatusGoingAway, ""))
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if n := srv.Conns(); n != 0 {
		t.Fatalf("%d connections left", n)
	}
	if c2 := handshake(t, addr, "/ws/late", strp("json-rpc")); c2.resp.StatusCode != 503 {
		t.Fatalf("after shutdown: %d", c2.resp.StatusCode)
	}
}

func TestJSONRPCErrors(t *testing.T) {
	_, addr := startServer(t, Config{})
	c := handshake(t, addr, "/ws/alice", strp("json-rpc"))
	for _, tc := range []struct {
		req  string
		code float64
	}{
		{`{"jsonrpc":"2.0","method":"nope","id":1}`, -32601},
		{`{"jsonrpc":"2.0","method":"chat.send","params":{"room":1},"id":2}`, -32602},
		{`{"jsonrpc":"2.0","method":"chat.send","params":{"room":"r","message":"x"},"id":3}`, -32001},
		{`{"jsonrpc":"2.0","method":"chat.join","params":{"room":"bad room"},"id":4}`, -32003},
		{`{"jsonrpc":"2.0","method":"chat.direct","params":{"to":"nobody","message":"x"},"id":5}`, -32002},
		{`{"jsonrpc":"2.0","method":"chat.broadcast","params":{"message":""},"id":6}`, -32005},
		{`{"jsonrpc":"2.0","method":"chat.broadcast","params":{"message":"` + strings.Repeat("x", 4097) + `"},"id":7}`, -32004},
		{`{"jsonrpc":"2.0","method":"chat.history","params":{"room":"r","limit":1001},"id":8}`, -32602},
		{`{"jsonrpc":"2.0","method"`, -32700},
		{`[]`, -32600},
	} {
		v := c.callJSON(tc.req)
		e, _ := v["error"].(map[string]any)
		if e == nil || e["code"] != tc.code {
			t.Errorf("%s: got %v, want code %v", tc.req, v, tc.code)
		}
	}
	// A batch of notifications gets no reply: the ping after it is answered first.
	c.send(ws.OpText, true, []byte(`[{"jsonrpc":"2.0","method":"chat.ping"},{"jsonrpc":"2.0","method":"chat.ping"}]`))
	if v := c.callJSON(`{"jsonrpc":"2.0","method":"chat.ping","id":"after"}`); v["id"] != "after" {
		t.Fatalf("got %v", v)
	}
	c.send(ws.OpText, true, []byte(`[{"jsonrpc":"2.0","method":"chat.ping","id":1},{"jsonrpc":"2.0","method":"chat.ping"},2]`))
	var batch []map[string]any
	if err := json.Unmarshal(c.next().Payload, &batch); err != nil || len(batch) != 2 || batch[0]["id"] != 1.0 || batch[1]["id"] != nil {
		t.Fatalf("batch reply %v %v", batch, err)
	}
	_ = fmt.Sprint
}

func TestWaitConns(t *testing.T) {
	srv, addr := startServer(t, Config{})
	a := handshake(t, addr, "/ws/a", strp("json-rpc"))
	b := handshake(t, addr, "/ws/b", strp("json-rpc"))
	a.callJSON(`{"jsonrpc":"2.0","method":"chat.ping","id":1}`)
	b.callJSON(`{"jsonrpc":"2.0","method":"chat.ping","id":1}`)
	if n := srv.Conns(); n != 2 {
		t.Fatalf("%d connections, want 2", n)
	}
	done, cancel := context.WithCancel(context.Background())
	cancel()
	if err := srv.WaitConns(done, 1); err == nil || !strings.Contains(err.Error(), "2 connections still open") {
		t.Fatalf("WaitConns with 2 open and a cancelled context: %v", err)
	}
	a.send(ws.OpClose, true, ws.NewCloseFrameBody(ws.StatusNormalClosure, ""))
	ctx, stop := context.WithTimeout(context.Background(), 5*time.Second)
	defer stop()
	if err := srv.WaitConns(ctx, 1); err != nil {
		t.Fatal(err)
	}
	b.nc.Close()
	if err := srv.WaitConns(ctx, 0); err != nil {
		t.Fatal(err)
	}
}
