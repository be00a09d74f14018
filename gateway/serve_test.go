package gateway

import (
	"bufio"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/golang-jwt/jwt/v5"

	"github.com/subgate/subgate/internal/testutil"
)

// startServed runs a gateway through Server.Serve on its own loopback
// listener (the zero-copy upgrade), logging to log, and checks that Serve
// returns ErrServerClosed after the shutdown at the test's end.
func startServed(t *testing.T, cfg Config, log slog.Handler) (*Server, string) {
	t.Helper()
	cfg.Logger = slog.New(log)
	srv, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		select {
		case err := <-served:
			if !errors.Is(err, ErrServerClosed) {
				t.Errorf("Serve returned %v, want ErrServerClosed", err)
			}
		case <-ctx.Done():
			t.Error("Serve did not return after Shutdown")
		}
	})
	return srv, ln.Addr().String()
}

// answer is what a client sees of a handshake's answer.
type answer struct {
	status                  int
	body, protocol, wwwAuth string
	contentType, nosniff    string
}

func answerOf(c *rawConn) answer {
	a := answer{status: c.resp.StatusCode, protocol: c.resp.Header.Get("Sec-WebSocket-Protocol"),
		wwwAuth: c.resp.Header.Get("WWW-Authenticate")}
	if a.status != http.StatusSwitchingProtocols {
		b, err := io.ReadAll(c.resp.Body)
		if err != nil {
			c.t.Fatal(err)
		}
		a.body = string(b)
		a.contentType, a.nosniff = c.resp.Header.Get("Content-Type"), c.resp.Header.Get("X-Content-Type-Options")
	}
	return a
}

// TestServeAdmissionAsServeHTTP sends the same upgrade requests to a
// gateway behind net/http (ServeHTTP) and to one serving its own listener
// (Serve, ws.Upgrader): every answer (status, body, headers), refusal log
// line and refusal metric is the same, and each is the documented one.
func TestServeAdmissionAsServeHTTP(t *testing.T) {
	cfg := Config{JWTSecret: testSecret, AllowedOrigins: []string{"https://app.example.com"}}
	httpLog, rawLog := recorder("refused"), recorder("refused")
	cfg.Logger = slog.New(httpLog)
	viaHTTP, httpAddr := startServer(t, cfg)
	viaRaw, rawAddr := startServed(t, cfg, rawLog)
	good := token(t, jwt.SigningMethodHS256, testSecret, jwt.MapClaims{"sub": "alice", "exp": time.Now().Add(time.Hour).Unix()})
	bob := token(t, jwt.SigningMethodHS256, testSecret, jwt.MapClaims{"sub": "bob"})
	auth := "Authorization: Bearer " + good + "\r\n"
	cases := []struct {
		name, path, headers string
		status              int
		reason              string // the refusal log's reason; "": admitted
	}{
		{"no token", "/ws/alice", "", http.StatusUnauthorized, "no_token"},
		{"bad token", "/ws/alice", "Authorization: Bearer x.y.z\r\n", http.StatusUnauthorized, "token_invalid"},
		{"other subject", "/ws/alice", "Authorization: Bearer " + bob + "\r\n", http.StatusUnauthorized, "token_subject"},
		{"query token", "/ws/alice?token=" + good, "", http.StatusSwitchingProtocols, ""},
		{"bearer subprotocol", "/ws/alice", "Sec-WebSocket-Protocol: msgpack, bearer." + good + "\r\n", http.StatusSwitchingProtocols, ""},
		{"foreign origin", "/ws/alice", auth + "Origin: https://evil.example.com\r\n", http.StatusForbidden, "origin"},
		{"two origins", "/ws/alice", auth + "Origin: https://app.example.com\r\nOrigin: https://app.example.com\r\n", http.StatusForbidden, "origin"},
		{"allowed origin", "/ws/alice", auth + "Origin: https://app.example.com\r\n", http.StatusSwitchingProtocols, ""},
		{"unsupported offer", "/ws/alice", auth + "Sec-WebSocket-Protocol: mqtt\r\n", http.StatusBadRequest, "no_protocol"},
		{"offer over two headers", "/ws/alice", auth + "Sec-WebSocket-Protocol: mqtt\r\nSec-WebSocket-Protocol: binary-raw\r\n", http.StatusSwitchingProtocols, ""},
		{"bad client id", "/ws/a!b", auth, http.StatusBadRequest, "client_id"},
		{"origin checked before the token", "/ws/alice", "Origin: https://evil.example.com\r\n", http.StatusForbidden, "origin"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			want := answerOf(upgrade(t, httpAddr, httpAddr, tc.path, tc.headers))
			got := answerOf(upgrade(t, rawAddr, rawAddr, tc.path, tc.headers))
			if got != want || got.status != tc.status {
				t.Fatalf("Serve answered %+v, ServeHTTP %+v (want status %d)", got, want, tc.status)
			}
			if tc.reason == "" {
				return
			}
			w, g := httpLog.next(t), rawLog.next(t)
			dropRemote := func(s string) string { return s[strings.Index(s, "reason="):] }
			if dropRemote(g) != dropRemote(w) || !strings.Contains(g, "reason="+tc.reason+" ") {
				t.Fatalf("Serve logged %q, ServeHTTP %q (want reason %s)", g, w, tc.reason)
			}
		})
	}
	want := testutil.GetOK(t, "http://"+httpAddr+"/metrics")
	got := testutil.GetOK(t, "http://"+rawAddr+"/metrics")
	for _, line := range strings.Split(string(want), "\n") {
		if strings.HasPrefix(line, "subgate_handshakes_refused_total") && !strings.Contains(string(got), line+"\n") {
			t.Errorf("Serve's metrics lack %q", line)
		}
	}
	_, _ = viaHTTP, viaRaw
}

// TestServePlainHTTP: the other endpoints answer on Serve's port through
// net/http, keep-alive included, and a head too long for Serve's own
// buffer is still upgraded (through net/http).
func TestServePlainHTTP(t *testing.T) {
	_, addr := startServed(t, Config{}, slog.NewTextHandler(io.Discard, nil))
	for _, path := range []string{"/healthz", "/readyz", "/metrics", "/", "/client.js"} {
		testutil.GetOK(t, "http://"+addr+path)
	}
	if resp, _ := testutil.Get(t, "http://"+addr+"/nowhere"); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("/nowhere: %d, want 404", resp.StatusCode)
	}
	big := upgrade(t, addr, addr, "/ws/alice", "X-Padding: "+strings.Repeat("p", headSize)+"\r\n")
	big.expectStatus(http.StatusSwitchingProtocols, "")
	if v := big.callJSON(`{"jsonrpc":"2.0","id":1,"method":"chat.ping"}`); v["result"] == nil {
		t.Fatalf("ping over a long-headed upgrade: %v", v)
	}
}

// TestServeEarlyFrames: frames a client sends in the same write as its
// upgrade request are read, after the 101, as the connection's first
// input.
func TestServeEarlyFrames(t *testing.T) {
	_, addr := startServed(t, Config{}, slog.NewTextHandler(io.Discard, nil))
	var frames strings.Builder
	for i := range 3 {
		p := []byte(`{"jsonrpc":"2.0","id":` + string(rune('1'+i)) + `,"method":"chat.ping"}`)
		h := ws.Header{Fin: true, OpCode: ws.OpText, Length: int64(len(p)), Masked: true, Mask: [4]byte{1, 2, 3, 4}}
		ws.Cipher(p, h.Mask, 0)
		_ = ws.WriteHeader(&frames, h)
		frames.Write(p)
	}
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	_ = nc.SetDeadline(time.Now().Add(5 * time.Second))
	req := "GET /ws/alice HTTP/1.1\r\nHost: " + addr + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
	if _, err := io.WriteString(nc, req+frames.String()); err != nil {
		t.Fatal(err)
	}
	early := &rawConn{t: t, nc: nc}
	early.br = bufio.NewReader(nc)
	resp, err := http.ReadResponse(early.br, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade: %v %v", resp, err)
	}
	for i := range 3 {
		f := early.next()
		if !strings.Contains(string(f.Payload), `"id":`+string(rune('1'+i))) {
			t.Fatalf("reply %d: %s", i, f.Payload)
		}
	}
}
