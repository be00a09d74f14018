package gateway

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/subgate/subgate/protocols"
	"github.com/subgate/subgate/protocols/chat"
)

// Hostile input at the wire level, beyond TestCloseCodes. Each case
// asserts an exact outcome: the close code (RFC 6455 §7.4.1) or HTTP
// status, that the server then closes the TCP connection, and that a fresh
// connection is still answered.

// sendHeader writes a masked frame whose header is h, with h.Length as
// announced, followed by payload (which may be shorter than announced).
func (c *rawConn) sendHeader(h ws.Header, payload []byte) {
	c.t.Helper()
	h.Masked, h.Mask = true, ws.NewMask()
	p := append([]byte(nil), payload...)
	ws.Cipher(p, h.Mask, 0)
	if err := ws.WriteHeader(c.nc, h); err != nil {
		c.t.Fatal(err)
	}
	if _, err := c.nc.Write(p); err != nil {
		c.t.Fatal(err)
	}
}

// expectEOF reads and discards until the server closes the connection,
// failing unless that happens within 5 s.
func expectEOF(t *testing.T, nc net.Conn, r io.Reader) {
	t.Helper()
	_ = nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err := io.Copy(io.Discard, r)
	if err != nil && !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("waiting for the server to close the connection: %v", err)
	}
}

// finish answers the server's close frame (already read) and checks that
// the server then closes the TCP connection. When the client started the
// closing handshake the server may have closed already: the answer is
// best effort.
func (c *rawConn) finish(code ws.StatusCode) {
	c.t.Helper()
	_ = ws.WriteFrame(c.nc, ws.MaskFrameInPlace(ws.NewCloseFrame(ws.NewCloseFrameBody(code, ""))))
	expectEOF(c.t, c.nc, c.br)
}

// expectHealthy checks that a fresh connection is upgraded and answered.
func expectHealthy(t *testing.T, addr string) {
	t.Helper()
	c := handshake(t, addr, "/ws/probe", strp(protocols.JSONRPC))
	if c.resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("fresh connection: status %d", c.resp.StatusCode)
	}
	c.t = t
	v := c.callJSON(`{"jsonrpc":"2.0","method":"chat.ping","id":"health"}`)
	if res, _ := v["result"].(map[string]any); v["id"] != "health" || res["status"] != "ok" {
		t.Fatalf("fresh connection: ping answered %v", v)
	}
	c.send(ws.OpClose, true, ws.NewCloseFrameBody(ws.StatusNormalClosure, ""))
	c.expectClose(ws.StatusNormalClosure)
}

type hostileCase struct {
	name  string
	proto string
	send  func(c *rawConn)
	code  ws.StatusCode
}

// runHostile runs each case on its own connection: the server must close
// it with exactly tc.code, then close the socket and forget the
// connection, and stay healthy.
func runHostile(t *testing.T, cfg Config, cases []hostileCase) {
	// After most violations the server does not read the rest of the
	// offending frame, so it cannot find the client's close frame in what
	// follows: it drains until CloseTimeout. A short one keeps the suite
	// fast; the client's deadline still bounds every case.
	setDefault(&cfg.CloseTimeout, 250*time.Millisecond)
	srv, addr := startServer(t, cfg)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := handshake(t, addr, "/ws/hostile", strp(tc.proto))
			c.t = t
			_ = c.nc.SetDeadline(time.Now().Add(5 * time.Second))
			tc.send(c)
			c.expectClose(tc.code)
			c.finish(tc.code)
			expectHealthy(t, addr)
			expectNoConns(t, srv)
		})
	}
}

// expectNoConns checks that the server has forgotten every connection
// within 5 s.
func expectNoConns(t *testing.T, srv *Server) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.WaitConns(ctx, 0); err != nil {
		t.Fatal(err)
	}
}

func TestHostileReservedBits(t *testing.T) {
	rsv := func(op ws.OpCode, bits byte) func(c *rawConn) {
		return func(c *rawConn) {
			c.sendHeader(ws.Header{Fin: true, Rsv: bits, OpCode: op, Length: 2}, []byte("{}"))
		}
	}
	runHostile(t, Config{}, []hostileCase{
		{"RSV1 on text", protocols.JSONRPC, rsv(ws.OpText, ws.Rsv(true, false, false)), ws.StatusProtocolError},
		{"RSV2 on text", protocols.JSONRPC, rsv(ws.OpText, ws.Rsv(false, true, false)), ws.StatusProtocolError},
		{"RSV3 on text", protocols.JSONRPC, rsv(ws.OpText, ws.Rsv(false, false, true)), ws.StatusProtocolError},
		{"RSV1 on binary", protocols.MsgPack, rsv(ws.OpBinary, ws.Rsv(true, false, false)), ws.StatusProtocolError},
		{"RSV1 on ping", protocols.JSONRPC, rsv(ws.OpPing, ws.Rsv(true, false, false)), ws.StatusProtocolError},
		{"RSV1 on a continuation", protocols.JSONRPC, func(c *rawConn) {
			c.send(ws.OpText, false, []byte("{"))
			c.sendHeader(ws.Header{Fin: true, Rsv: ws.Rsv(true, false, false), OpCode: ws.OpContinuation, Length: 1}, []byte("}"))
		}, ws.StatusProtocolError},
	})
}

func TestHostileControlFrames(t *testing.T) {
	oversized := func(op ws.OpCode) func(c *rawConn) {
		return func(c *rawConn) { c.send(op, true, make([]byte, 126)) }
	}
	runHostile(t, Config{}, []hostileCase{
		{"ping of 126 bytes", protocols.JSONRPC, oversized(ws.OpPing), ws.StatusProtocolError},
		{"pong of 126 bytes", protocols.JSONRPC, oversized(ws.OpPong), ws.StatusProtocolError},
		{"close of 126 bytes", protocols.JSONRPC, oversized(ws.OpClose), ws.StatusProtocolError},
		{"ping announcing 64 KiB", protocols.MsgPack, func(c *rawConn) {
			c.sendHeader(ws.Header{Fin: true, OpCode: ws.OpPing, Length: 1 << 16}, nil)
		}, ws.StatusProtocolError},
		{"ping of 125 bytes is answered", protocols.JSONRPC, func(c *rawConn) {
			p := []byte(strings.Repeat("p", 125))
			c.send(ws.OpPing, true, p)
			if f := c.next(); f.Header.OpCode != ws.OpPong || string(f.Payload) != string(p) {
				c.t.Fatalf("got %v %q, want a pong with the ping's 125 bytes", f.Header.OpCode, f.Payload)
			}
			c.send(ws.OpClose, true, nil)
		}, ws.StatusNormalClosure},
	})
}

func TestHostileDataFrameInsideFragmentedMessage(t *testing.T) {
	runHostile(t, Config{}, []hostileCase{
		{"text after text", protocols.JSONRPC, func(c *rawConn) {
			c.send(ws.OpText, false, []byte(`{"jsonrpc":`))
			c.send(ws.OpText, true, []byte(`{}`))
		}, ws.StatusProtocolError},
		// Checked as a protocol error before the frame type is: 1002, not 1003.
		{"binary after text", protocols.JSONRPC, func(c *rawConn) {
			c.send(ws.OpText, false, []byte(`{"jsonrpc":`))
			c.send(ws.OpBinary, true, []byte{1})
		}, ws.StatusProtocolError},
		{"binary after binary", protocols.MsgPack, func(c *rawConn) {
			c.send(ws.OpBinary, false, []byte{0x81})
			c.send(ws.OpBinary, true, []byte{0x81})
		}, ws.StatusProtocolError},
		{"text after a ping between fragments", protocols.JSONRPC, func(c *rawConn) {
			c.send(ws.OpText, false, []byte(`{"jsonrpc":`))
			c.send(ws.OpPing, true, []byte("x"))
			if f := c.next(); f.Header.OpCode != ws.OpPong {
				c.t.Fatalf("got %v, want a pong", f.Header.OpCode)
			}
			c.send(ws.OpText, true, []byte(`{}`))
		}, ws.StatusProtocolError},
	})
}

func TestHostileHugeLength(t *testing.T) {
	const budget = 8 << 20 // bytes the whole case may allocate, in the process
	announce := func(n int64) func(c *rawConn) {
		return func(c *rawConn) { c.sendHeader(ws.Header{Fin: true, OpCode: ws.OpText, Length: n}, nil) }
	}
	srv, addr := startServer(t, Config{})
	for _, tc := range []hostileCase{
		{"1<<40", protocols.JSONRPC, announce(1 << 40), ws.StatusMessageTooBig},
		{"1<<62", protocols.JSONRPC, announce(1 << 62), ws.StatusMessageTooBig},
		{"MaxInt64", protocols.JSONRPC, announce(math.MaxInt64), ws.StatusMessageTooBig},
		{"1<<40 binary", protocols.BinaryRaw, func(c *rawConn) {
			c.sendHeader(ws.Header{Fin: true, OpCode: ws.OpBinary, Length: 1 << 40}, nil)
		}, ws.StatusMessageTooBig},
		// A continuation whose length plus what was already received
		// overflows int64 must not pass the size check.
		{"MaxInt64 after a fragment", protocols.JSONRPC, func(c *rawConn) {
			c.send(ws.OpText, false, []byte(`{"jsonrpc":`))
			c.sendHeader(ws.Header{Fin: true, OpCode: ws.OpContinuation, Length: math.MaxInt64}, nil)
		}, ws.StatusMessageTooBig},
		{"MaxInt64-1 after a fragment", protocols.MsgPack, func(c *rawConn) {
			c.send(ws.OpBinary, false, []byte{0x81, 0xa1})
			c.sendHeader(ws.Header{Fin: true, OpCode: ws.OpContinuation, Length: math.MaxInt64 - 1}, nil)
		}, ws.StatusMessageTooBig},
		// RFC 6455 §5.2: the most significant bit of a 64-bit length must be 0.
		{"64-bit length with the MSB set", protocols.JSONRPC, func(c *rawConn) {
			mask := ws.NewMask()
			hdr := append([]byte{0x81, 0x80 | 127, 0x80, 0, 0, 0, 0, 0, 0, 1}, mask[:]...)
			if _, err := c.nc.Write(hdr); err != nil {
				c.t.Fatal(err)
			}
		}, ws.StatusProtocolError},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := handshake(t, addr, "/ws/huge", strp(tc.proto))
			c.t = t
			_ = c.nc.SetDeadline(time.Now().Add(5 * time.Second))
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			tc.send(c)
			c.expectClose(tc.code)
			runtime.ReadMemStats(&after)
			if d := after.TotalAlloc - before.TotalAlloc; d > budget {
				t.Fatalf("the process allocated %d bytes for an announced length", d)
			}
			c.finish(tc.code)
			expectHealthy(t, addr)
			expectNoConns(t, srv)
		})
	}
}

func TestHostileManySmallFragments(t *testing.T) {
	const max = 1024
	// pingOf returns a chat.ping request of exactly n bytes.
	pingOf := func(n int) []byte {
		req := `{"jsonrpc":"2.0","method":"chat.ping","id":9}`
		return []byte(req + strings.Repeat(" ", n-len(req)))
	}
	fragments := func(msg []byte, size int) func(c *rawConn) {
		return func(c *rawConn) {
			for i := 0; i < len(msg); i += size {
				end := min(i+size, len(msg))
				op := ws.OpContinuation
				if i == 0 {
					op = ws.OpText
				}
				c.send(op, end == len(msg), msg[i:end])
			}
		}
	}
	runHostile(t, Config{MaxMessageSize: max}, []hostileCase{
		{"exactly the limit in 64 fragments is answered", protocols.JSONRPC, func(c *rawConn) {
			fragments(pingOf(max), 16)(c)
			if f := c.next(); !strings.Contains(string(f.Payload), `"id":9`) || !strings.Contains(string(f.Payload), `"result"`) {
				c.t.Fatalf("reply %q", f.Payload)
			}
			c.send(ws.OpClose, true, nil)
		}, ws.StatusNormalClosure},
		{"one byte over in 1-byte fragments", protocols.JSONRPC, fragments(pingOf(max+1), 1), ws.StatusMessageTooBig},
		{"one byte over in 16-byte fragments", protocols.JSONRPC, fragments(pingOf(max+1), 16), ws.StatusMessageTooBig},
		{"empty fragments then over", protocols.JSONRPC, func(c *rawConn) {
			c.send(ws.OpText, false, nil)
			for range 100 {
				c.send(ws.OpContinuation, false, nil)
			}
			c.send(ws.OpContinuation, true, make([]byte, max+1))
		}, ws.StatusMessageTooBig},
	})
}

func TestHostileControlBetweenFragments(t *testing.T) {
	runHostile(t, Config{}, []hostileCase{
		{"pings between fragments are answered and the message still is", protocols.JSONRPC, func(c *rawConn) {
			c.send(ws.OpText, false, []byte(`{"jsonrpc":"2.0",`))
			c.send(ws.OpPing, true, []byte("first"))
			c.send(ws.OpContinuation, false, []byte(`"method":"chat.ping",`))
			c.send(ws.OpPong, true, []byte("unsolicited")) // ignored
			c.send(ws.OpPing, true, nil)
			c.send(ws.OpPing, true, []byte("third"))
			c.send(ws.OpContinuation, true, []byte(`"id":7}`))
			for _, want := range []string{"first", "", "third"} {
				if f := c.next(); f.Header.OpCode != ws.OpPong || string(f.Payload) != want {
					c.t.Fatalf("got %v %q, want pong %q", f.Header.OpCode, f.Payload, want)
				}
			}
			f := c.next()
			if !strings.Contains(string(f.Payload), `"id":7`) || !strings.Contains(string(f.Payload), `"status":"ok"`) {
				c.t.Fatalf("reply %q", f.Payload)
			}
			c.send(ws.OpClose, true, ws.NewCloseFrameBody(ws.StatusNormalClosure, ""))
		}, ws.StatusNormalClosure},
		{"close between fragments is echoed", protocols.MsgPack, func(c *rawConn) {
			c.send(ws.OpBinary, false, []byte{0x81})
			c.send(ws.OpClose, true, ws.NewCloseFrameBody(ws.StatusGoingAway, "leaving"))
		}, ws.StatusGoingAway},
	})
}

func TestHostileCloseCodes(t *testing.T) {
	var cases []hostileCase
	closeWith := func(code int, reason string) func(c *rawConn) {
		return func(c *rawConn) {
			c.send(ws.OpClose, true, append([]byte{byte(code >> 8), byte(code)}, reason...))
		}
	}
	// RFC 6455 §7.4: 0-999 unused, 1004 reserved, 1005/1006/1015 never
	// sent in a frame, 1016-2999 unassigned, 5000 and up undefined. 1012-1014
	// were registered with IANA after the RFC and are valid.
	for _, code := range []int{0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535} {
		cases = append(cases, hostileCase{fmt.Sprint("invalid ", code), protocols.JSONRPC, closeWith(code, ""), ws.StatusProtocolError})
	}
	for _, code := range []int{1000, 1001, 1003, 1007, 1011, 1012, 1013, 1014, 3000, 4999} {
		cases = append(cases, hostileCase{fmt.Sprint("valid ", code, " is echoed"), protocols.JSONRPC, closeWith(code, "bye ✓"), ws.StatusCode(code)})
	}
	cases = append(cases,
		hostileCase{"empty close is answered 1000", protocols.BinaryRaw, func(c *rawConn) { c.send(ws.OpClose, true, nil) }, ws.StatusNormalClosure},
		hostileCase{"1000 with a 123-byte reason is echoed", protocols.JSONRPC, closeWith(1000, strings.Repeat("r", 123)), ws.StatusNormalClosure},
	)
	runHostile(t, Config{}, cases)
}

// rawRequest sends a hand-written HTTP request and reads the response.
func rawRequest(t *testing.T, addr, req string) (*http.Response, net.Conn, *bufio.Reader) {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	_ = nc.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(nc, req); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(nc)
	hr, err := http.ReadRequest(bufio.NewReader(strings.NewReader(req)))
	if err != nil {
		t.Fatalf("the test's own request does not parse: %v", err)
	}
	resp, err := http.ReadResponse(br, hr)
	if err != nil {
		t.Fatal(err)
	}
	return resp, nc, br
}

func TestHostileHandshake(t *testing.T) {
	srv, addr := startServer(t, Config{})
	const (
		key     = "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
		version = "Sec-WebSocket-Version: 13\r\n"
	)
	request := func(method, path, headers string) string {
		return method + " " + path + " HTTP/1.1\r\nHost: " + addr + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" + headers + "\r\n"
	}
	for _, tc := range []struct {
		name   string
		req    string
		status int
		header string // a response header that must be present, as "Name: value"
		// closed: the server closes the connection after the response
		// (rejections by the upgrader, on a hijacked connection).
		closed bool
	}{
		{"id of 65 characters", request("GET", "/ws/"+strings.Repeat("a", 65), key+version), 400, "", false},
		{"id with a space", request("GET", "/ws/a%20b", key+version), 400, "", false},
		{"id with an escaped slash", request("GET", "/ws/a%2Fb", key+version), 400, "", false},
		{"id with a colon", request("GET", "/ws/a:b", key+version), 400, "", false},
		{"id with non-ASCII", request("GET", "/ws/%C3%A9", key+version), 400, "", false},
		{"id with a NUL", request("GET", "/ws/a%00b", key+version), 400, "", false},
		{"empty id", request("GET", "/ws/", key+version), 404, "", false},
		{"no id", request("GET", "/ws", key+version), 404, "", false},
		{"id of two segments", request("GET", "/ws/a/b", key+version), 404, "", false},
		{"POST", request("POST", "/ws/alice", key+version), 405, "Allow: GET, HEAD", false},
		{"PUT", request("PUT", "/ws/alice", key+version), 405, "Allow: GET, HEAD", false},
		{"HEAD", request("HEAD", "/ws/alice", key+version), 405, "Allow: GET", false},
		{"no Sec-WebSocket-Key", request("GET", "/ws/alice", version), 400, "", true},
		{"short Sec-WebSocket-Key", request("GET", "/ws/alice", "Sec-WebSocket-Key: c2hvcnQ=\r\n"+version), 400, "", true},
		{"no Sec-WebSocket-Version", request("GET", "/ws/alice", key), 400, "", true},
		{"Sec-WebSocket-Version 8", request("GET", "/ws/alice", key+"Sec-WebSocket-Version: 8\r\n"), 426, "Sec-WebSocket-Version: 13", true},
		{"no Upgrade", strings.Replace(request("GET", "/ws/alice", key+version), "Upgrade: websocket\r\n", "", 1), 400, "", true},
		{"Connection: keep-alive", strings.Replace(request("GET", "/ws/alice", key+version), "Connection: Upgrade", "Connection: keep-alive", 1), 400, "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, nc, br := rawRequest(t, addr, tc.req)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.status)
			}
			if name, value, ok := strings.Cut(tc.header, ": "); ok && resp.Header.Get(name) != value {
				t.Fatalf("%s: %q, want %q", name, resp.Header.Get(name), value)
			}
			if tc.closed {
				expectEOF(t, nc, br)
			}
			expectHealthy(t, addr)
			expectNoConns(t, srv)
		})
	}
}

// startServerAsServed runs a gateway behind an http.Server configured as
// cmd/subgate configures it: the request's headers are bounded by
// Config.HandshakeTimeout (the gateway, a handler, only runs once they are
// read).
func startServerAsServed(t *testing.T, cfg Config) string {
	t.Helper()
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	srv, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewUnstartedServer(srv)
	hs.Config.ReadHeaderTimeout = cfg.HandshakeTimeout
	hs.Start()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		hs.Close()
	})
	return hs.Listener.Addr().String()
}

func TestHostileSlowloris(t *testing.T) {
	const timeout = 200 * time.Millisecond
	addr := startServerAsServed(t, Config{HandshakeTimeout: timeout})
	// net/http parses what it has of an unfinished request line when the
	// timeout strikes, and refuses it with 400; once the line is complete
	// it closes without a word.
	const refused = "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n400 Bad Request"
	for _, tc := range []struct{ name, partial, answer string }{
		{"half a request line", "GET /ws/ali", refused},
		{"request line, no headers", "GET /ws/alice HTTP/1.1\r\n", ""},
		{"headers without the blank line", "GET /ws/alice HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
			"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			nc, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer nc.Close()
			start := time.Now()
			if _, err := io.WriteString(nc, tc.partial); err != nil {
				t.Fatal(err)
			}
			_ = nc.SetReadDeadline(time.Now().Add(5 * time.Second))
			got, err := io.ReadAll(nc)
			if err != nil && !errors.Is(err, syscall.ECONNRESET) {
				t.Fatalf("after %q: %v; want the server to close the connection", got, err)
			}
			if string(got) != tc.answer {
				t.Fatalf("answered %q, want %q", got, tc.answer)
			}
			if el := time.Since(start); el < timeout*3/4 {
				t.Fatalf("closed after %v, before the handshake timeout %v", el, timeout)
			}
			expectHealthy(t, addr)
		})
	}
}

func TestHostileIdle(t *testing.T) {
	const idle = 300 * time.Millisecond
	t.Run("silent client", func(t *testing.T) {
		// README: 1001 "server shutting down ... or idle timeout".
		_, addr := startServer(t, Config{IdleTimeout: idle, PingInterval: time.Hour})
		c := handshake(t, addr, "/ws/idle", strp(protocols.JSONRPC))
		start := time.Now()
		if reason := c.expectClose(ws.StatusGoingAway); reason != "idle timeout" {
			t.Fatalf("reason %q", reason)
		}
		if el := time.Since(start); el < idle*3/4 {
			t.Fatalf("closed after %v, before the idle timeout %v", el, idle)
		}
		c.finish(ws.StatusGoingAway)
		expectHealthy(t, addr)
	})
	t.Run("stalled frames", func(t *testing.T) {
		// A frame that stops arriving is bounded by the idle timeout too.
		runHostile(t, Config{IdleTimeout: idle, PingInterval: time.Hour}, []hostileCase{
			{"stalled in the header", protocols.JSONRPC, func(c *rawConn) {
				if _, err := c.nc.Write([]byte{0x81}); err != nil {
					c.t.Fatal(err)
				}
			}, ws.StatusGoingAway},
			{"stalled in the payload", protocols.JSONRPC, func(c *rawConn) {
				c.sendHeader(ws.Header{Fin: true, OpCode: ws.OpText, Length: 100}, []byte(`{"jsonrpc"`))
			}, ws.StatusGoingAway},
			{"stalled between fragments", protocols.MsgPack, func(c *rawConn) {
				c.send(ws.OpBinary, false, []byte{0x81})
			}, ws.StatusGoingAway},
		})
	})
	t.Run("pongs keep a connection alive", func(t *testing.T) {
		_, addr := startServer(t, Config{IdleTimeout: idle, PingInterval: idle / 3})
		c := handshake(t, addr, "/ws/alive", strp(protocols.JSONRPC))
		start := time.Now()
		for pings := 0; pings < 10; {
			f, err := ws.ReadFrame(c.br)
			if err != nil {
				t.Fatalf("after %d pings: %v", pings, err)
			}
			if f.Header.OpCode != ws.OpPing {
				t.Fatalf("after %d pings: got %v %q", pings, f.Header.OpCode, f.Payload)
			}
			pings++
			c.send(ws.OpPong, true, f.Payload)
		}
		if el := time.Since(start); el < 2*idle {
			t.Fatalf("10 pings within %v: want them to span twice the idle timeout", el)
		}
		if v := c.callJSON(`{"jsonrpc":"2.0","method":"chat.ping","id":1}`); v["result"] == nil {
			t.Fatalf("ping: %v", v)
		}
	})
}

// disconnects is a slog handler that reports each "disconnected" record as
// "client_id reason".
type disconnects chan string

func (d disconnects) Enabled(context.Context, slog.Level) bool { return true }
func (d disconnects) WithAttrs([]slog.Attr) slog.Handler       { return d }
func (d disconnects) WithGroup(string) slog.Handler            { return d }
func (d disconnects) Handle(_ context.Context, r slog.Record) error {
	id, reason, ok := disconnectOf(r)
	if !ok {
		return nil
	}
	select {
	case d <- id + " " + reason:
	default:
	}
	return nil
}

// disconnectOf reads the client id and reason of a "disconnected" record.
func disconnectOf(r slog.Record) (id, reason string, ok bool) {
	if r.Message != "disconnected" {
		return "", "", false
	}
	r.Attrs(func(a slog.Attr) bool {
		switch a.Key {
		case "client_id":
			id = a.Value.String()
		case "reason":
			reason = a.Value.String()
		}
		return true
	})
	return id, reason, true
}

// wait blocks until the connection of client id is logged as
// disconnected, and checks the reason; it fails after 10 s.
func (d disconnects) wait(t *testing.T, id, reason string) {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case seen := <-d:
			if got, r, _ := strings.Cut(seen, " "); got == id {
				if r != reason {
					t.Fatalf("%s disconnected as %q, want %q", id, r, reason)
				}
				return
			}
		case <-timeout:
			t.Fatalf("%s was not disconnected within 10s", id)
		}
	}
}

// floodUntilDropped broadcasts from a draining client until the one that
// does not read is dropped (only the sender is delivered to). Each call
// must be answered: call fails after 5 s, far below the write timeouts
// used, so a broadcaster held up by the slow consumer fails the test.
func floodUntilDropped(t *testing.T, addr string) {
	t.Helper()
	fast := dial(t, addr, "fast", protocols.MsgPack)
	msg := strings.Repeat("x", chat.MaxMessageLen)
	for i := 0; ; i++ {
		if i == 100000 {
			t.Fatal("the slow consumer was never dropped")
		}
		if r := call[chat.BroadcastResult](t, fast, chat.MethodBroadcast, &chat.BroadcastParams{Message: msg}); r.Delivered == 1 {
			break
		}
	}
	// The broadcaster goes on being answered.
	call[chat.PingResult](t, fast, chat.MethodPing, &chat.PingParams{})
}

// readToClose reads what a slow consumer was sent, up to a close frame
// (its code and reason are returned) or the end of the connection (code 0).
func readToClose(t *testing.T, c *rawConn) (ws.StatusCode, string) {
	t.Helper()
	_ = c.nc.SetDeadline(time.Now().Add(10 * time.Second))
	for frames := 0; frames < 100000; frames++ {
		f, err := ws.ReadFrame(c.br)
		switch {
		case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, syscall.ECONNRESET):
			return 0, ""
		case err != nil:
			t.Fatalf("after %d frames: %v", frames, err)
		case f.Header.OpCode == ws.OpClose:
			return ws.ParseCloseFrameData(f.Payload)
		}
	}
	t.Fatal("neither a close frame nor the end of the connection")
	return 0, ""
}

// lagReason is the close reason of a slow consumer.
const lagReason = "slow consumer: reconnect and catch up with chat.history"

// expectDropped reads what a dropped slow consumer was sent: close 4000
// and the end of the connection, or the end alone when the server's
// writer was stuck in a write and cut it off.
func expectDropped(t *testing.T, c *rawConn) {
	t.Helper()
	code, reason := readToClose(t, c)
	if code == 0 {
		return
	}
	if code != StatusLagging || reason != lagReason {
		t.Fatalf("close %d %q, want 4000 %q or none", code, reason, lagReason)
	}
	expectEOF(t, c.nc, c.br)
}

// A slow consumer that reads again within the close timeout gets what was
// already being written, the lagging notice, then close 4000: what was
// queued is dropped.
func TestHostileSlowConsumerGets4000(t *testing.T) {
	_, addr := startServer(t, Config{SendQueueBytes: 64 << 10, WriteTimeout: time.Minute, CloseTimeout: time.Minute, RateLimit: math.Inf(1)})
	slow := handshake(t, addr, "/ws/slow", strp(protocols.JSONRPC))
	floodUntilDropped(t, addr)
	var last []byte
	_ = slow.nc.SetDeadline(time.Now().Add(10 * time.Second))
	for {
		f, err := ws.ReadFrame(slow.br)
		if err != nil {
			t.Fatalf("reading: %v", err)
		}
		if f.Header.OpCode == ws.OpClose {
			if code, reason := ws.ParseCloseFrameData(f.Payload); code != StatusLagging || reason != lagReason {
				t.Fatalf("close %d %q, want 4000 %q", code, reason, lagReason)
			}
			break
		}
		last = f.Payload
	}
	if !strings.Contains(string(last), `"kind":"lagging"`) {
		t.Fatalf("last frame before the close %.200q, want the lagging notice", last)
	}
	slow.finish(StatusLagging)
	expectHealthy(t, addr)
}

// A slow consumer that never reads is not waited for: its connection ends
// (logged as slow_consumer) within the write or close timeout, whichever
// applies. It has then been sent close 1008 if the writer was not stuck
// in a write, and is cut off without a close frame if it was.
func TestHostileSlowConsumerNeverReads(t *testing.T) {
	gone := make(disconnects, 16)
	_, addr := startServer(t, Config{SendQueueBytes: 64 << 10, WriteTimeout: 500 * time.Millisecond, CloseTimeout: 250 * time.Millisecond, Logger: slog.New(gone), RateLimit: math.Inf(1)})
	slow := handshake(t, addr, "/ws/slow", strp(protocols.JSONRPC))
	floodUntilDropped(t, addr)
	gone.wait(t, "slow", "slow_consumer")
	expectDropped(t, slow)
	expectHealthy(t, addr)
}

// A client that floods pings and does not read the pongs is a slow
// consumer of its own pongs: it is dropped, and the server goes on.
func TestHostilePingFloodWithoutReading(t *testing.T) {
	gone := make(disconnects, 16)
	_, addr := startServer(t, Config{SendQueueBytes: 64 << 10, WriteTimeout: time.Second, CloseTimeout: 250 * time.Millisecond, Logger: slog.New(gone)})
	c := handshake(t, addr, "/ws/flood", strp(protocols.JSONRPC))
	_ = c.nc.SetDeadline(time.Now().Add(10 * time.Second))
	ping := ws.MaskFrameInPlace(ws.NewPingFrame([]byte(strings.Repeat("p", 125))))
	wrote := make(chan int)
	go func() {
		n := 0
		// Until the server stops reading and drops the connection, or
		// far more pongs than the queue holds.
		for ; n < 20000 && ws.WriteFrame(c.nc, ping) == nil; n++ {
		}
		wrote <- n
	}()
	gone.wait(t, "flood", "slow_consumer")
	if n := <-wrote; n < (64<<10)/125 {
		t.Fatalf("dropped after %d pings, fewer than the queue holds", n)
	}
	expectDropped(t, c)
	expectHealthy(t, addr)
}

// A client that sends a whole frame over the size limit gets the 1009
// close frame, and its write of the frame completes: the server reads and
// drops the rest of the frame before it closes the socket. (Closing with
// the frame unread reset the connection: the client's write failed, and a
// library that reports that first, as Node's ws does, showed 1006.)
func TestHostileTooBigFrameGets1009(t *testing.T) {
	_, addr := startServer(t, Config{MaxMessageSize: 1 << 20})
	// Larger than the socket buffers can take at once, within the four
	// times the limit that the server reads and drops.
	frame := maskedFrame(ws.OpText, true, bytes.Repeat([]byte("x"), 4<<20-1024))
	for i := range 5 {
		c := handshake(t, addr, fmt.Sprintf("/ws/big%d", i), strp(protocols.JSONRPC))
		wrote := make(chan error, 1)
		go func() { _, err := c.nc.Write(frame); wrote <- err }()
		code, _ := readToClose(t, c)
		if code != ws.StatusMessageTooBig {
			t.Fatalf("connection %d: close code %d, want 1009", i, code)
		}
		if err := <-wrote; err != nil {
			t.Fatalf("connection %d: the client's write of the frame failed: %v", i, err)
		}
	}
}
