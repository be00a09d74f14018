package gateway

import (
	"cmp"
	"context"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/subgate/subgate/client"
	"github.com/subgate/subgate/protocols/chat"
)

const testSecret = "0123456789abcdef0123456789abcdef" // 32 bytes

// upgrade sends an upgrade request for path with Host host and the extra
// header lines in headers ("Name: value\r\n" each).
func upgrade(t *testing.T, addr, host, path, headers string) *rawConn {
	t.Helper()
	req := "GET " + path + " HTTP/1.1\r\nHost: " + host + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n" + headers + "\r\n"
	resp, nc, br := rawRequest(t, addr, req)
	return &rawConn{t: t, nc: nc, br: br, resp: resp}
}

// expectStatus checks a response's status and, for a refusal, its one-line
// body.
func (c *rawConn) expectStatus(status int, body string) {
	c.t.Helper()
	if c.resp.StatusCode != status {
		c.t.Fatalf("status %d, want %d", c.resp.StatusCode, status)
	}
	if status == http.StatusSwitchingProtocols {
		return
	}
	got, err := io.ReadAll(c.resp.Body)
	if err != nil || string(got) != body+"\n" {
		c.t.Fatalf("body %q (%v), want %q", got, err, body+"\n")
	}
}

// records is a slog handler that sends the attributes of each record whose
// message is msg, as "key=value" joined by spaces (the time left out).
type records struct {
	msg string
	ch  chan string
}

func recorder(msg string) records { return records{msg, make(chan string, 64)} }

func (d records) Enabled(context.Context, slog.Level) bool { return true }
func (d records) WithAttrs([]slog.Attr) slog.Handler       { return d }
func (d records) WithGroup(string) slog.Handler            { return d }
func (d records) Handle(_ context.Context, r slog.Record) error {
	if r.Message != d.msg {
		return nil
	}
	var b strings.Builder
	r.Attrs(func(a slog.Attr) bool {
		b.WriteString(" " + a.String())
		return true
	})
	select {
	case d.ch <- strings.TrimSpace(b.String()):
	default:
	}
	return nil
}

// next returns the next record, failing after 5 s.
func (d records) next(t *testing.T) string {
	t.Helper()
	select {
	case s := <-d.ch:
		return s
	case <-time.After(5 * time.Second):
		t.Fatalf("no %q record within 5s", d.msg)
		return ""
	}
}

func TestOriginPolicy(t *testing.T) {
	for _, tc := range []struct {
		name    string
		allowed []string
		host    string // "" for the server's address
		origin  string // "" for none; "{addr}" is replaced by the server's address
		status  int
	}{
		{"no Origin passes", nil, "", "", 101},
		{"same host passes", nil, "", "http://{addr}", 101},
		{"same host over https passes", nil, "", "https://{addr}", 101},
		{"same host in another case passes", nil, "Chat.Example:8080", "http://chat.example:8080", 101},
		{"default port omitted in Origin", nil, "chat.example:443", "https://chat.example", 101},
		{"evil origin is refused", nil, "", "http://evil.example", 403},
		{"same host, other port is refused", nil, "", "http://127.0.0.1:1", 403},
		{"null origin is refused", nil, "", "null", 403},
		{"two Origin headers are refused", nil, "", "http://{addr}\r\nOrigin: http://{addr}", 403},
		{"allowed origin passes", []string{"https://app.example.com"}, "", "https://app.example.com", 101},
		{"allowed origin, case and default port", []string{"https://app.example.com"}, "", "HTTPS://App.Example.com:443", 101},
		{"allowed origin, other scheme is refused", []string{"https://app.example.com"}, "", "http://app.example.com", 403},
		{"allowed list does not allow others", []string{"https://app.example.com"}, "", "https://evil.example", 403},
		{"* allows any", []string{"*"}, "", "http://evil.example", 101},
	} {
		t.Run(tc.name, func(t *testing.T) {
			log := recorder("refused")
			_, addr := startServer(t, Config{AllowedOrigins: tc.allowed, Logger: slog.New(log)})
			host := cmp.Or(tc.host, addr)
			var headers string
			if tc.origin != "" {
				headers = "Origin: " + strings.ReplaceAll(tc.origin, "{addr}", addr) + "\r\n"
			}
			c := upgrade(t, addr, host, "/ws/alice", headers)
			c.expectStatus(tc.status, "origin not allowed")
			if tc.status == 403 {
				if got := log.next(t); !strings.HasPrefix(got, "client_id=alice remote=127.0.0.1:") || !strings.HasSuffix(got, " reason=origin status=403") {
					t.Fatalf("logged %q", got)
				}
			}
		})
	}
}

func TestAdmissionSettingsRefused(t *testing.T) {
	for _, cfg := range []Config{
		{AllowedOrigins: []string{"app.example.com"}},
		{AllowedOrigins: []string{"https://app.example.com/path"}},
		{JWTSecret: "short"},
		{MaxConns: -1},
		{MaxConnsPerIP: -1},
	} {
		if _, err := New(cfg); err == nil || !strings.HasPrefix(err.Error(), "gateway: ") {
			t.Errorf("%+v: err %v", cfg, err)
		}
	}
}

// token signs claims with secret using method.
func token(t *testing.T, method jwt.SigningMethod, secret string, claims jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(method, claims).SignedString([]byte(secret))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestJWT(t *testing.T) {
	_, addr := startServer(t, Config{JWTSecret: testSecret})
	now := time.Now()
	good := token(t, jwt.SigningMethodHS256, testSecret, jwt.MapClaims{"sub": "alice", "exp": now.Add(time.Hour).Unix()})
	noneAlg, err := jwt.NewWithClaims(jwt.SigningMethodNone, jwt.MapClaims{"sub": "alice"}).SignedString(jwt.UnsafeAllowNoneSignatureType)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, path, headers string
		status              int
		body                string
	}{
		{"Authorization header", "/ws/alice", "Authorization: Bearer " + good + "\r\n", 101, ""},
		{"query parameter", "/ws/alice?token=" + good, "", 101, ""},
		{"subprotocol entry", "/ws/alice", "Sec-WebSocket-Protocol: msgpack, bearer." + good + "\r\n", 101, ""},
		{"sub is not the client id", "/ws/bob", "Authorization: Bearer " + good + "\r\n", 401, "token subject is not the client id"},
		{"expired", "/ws/alice", "Authorization: Bearer " + token(t, jwt.SigningMethodHS256, testSecret, jwt.MapClaims{"sub": "alice", "exp": now.Add(-time.Minute).Unix()}) + "\r\n", 401, "token expired"},
		{"nbf in the future", "/ws/alice", "Authorization: Bearer " + token(t, jwt.SigningMethodHS256, testSecret, jwt.MapClaims{"sub": "alice", "nbf": now.Add(time.Hour).Unix()}) + "\r\n", 401, "token not valid yet"},
		{"wrong alg HS512", "/ws/alice", "Authorization: Bearer " + token(t, jwt.SigningMethodHS512, testSecret, jwt.MapClaims{"sub": "alice"}) + "\r\n", 401, "token signature invalid"},
		{"alg none", "/ws/alice", "Authorization: Bearer " + noneAlg + "\r\n", 401, "token signature invalid"},
		{"wrong secret", "/ws/alice", "Authorization: Bearer " + token(t, jwt.SigningMethodHS256, testSecret+"x", jwt.MapClaims{"sub": "alice"}) + "\r\n", 401, "token signature invalid"},
		{"malformed", "/ws/alice?token=abc", "", 401, "invalid token"},
		{"missing", "/ws/alice", "", 401, refuseNoToken.text},
		{"Basic authorization is no token", "/ws/alice", "Authorization: Basic YWxpY2U6eA==\r\n", 401, refuseNoToken.text},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := upgrade(t, addr, addr, tc.path, tc.headers)
			c.expectStatus(tc.status, tc.body)
			if tc.status == 401 && c.resp.Header.Get("WWW-Authenticate") != "Bearer" {
				t.Fatalf("WWW-Authenticate %q", c.resp.Header.Get("WWW-Authenticate"))
			}
		})
	}

	t.Run("subprotocol entry is never echoed", func(t *testing.T) {
		c := handshake(t, addr, "/ws/alice", strp("json-rpc, bearer."+good))
		if got := c.resp.Header.Values("Sec-WebSocket-Protocol"); c.resp.StatusCode != 101 || len(got) != 1 || got[0] != "json-rpc" {
			t.Fatalf("status %d, protocol %q", c.resp.StatusCode, got)
		}
	})
	t.Run("an offer of only a bearer entry gets the default protocol", func(t *testing.T) {
		c := handshake(t, addr, "/ws/alice", strp("bearer."+good))
		if got := c.resp.Header.Values("Sec-WebSocket-Protocol"); c.resp.StatusCode != 101 || len(got) != 0 {
			t.Fatalf("status %d, protocol %q", c.resp.StatusCode, got)
		}
		if v := c.callJSON(`{"jsonrpc":"2.0","method":"chat.ping","id":1}`); v["result"] == nil {
			t.Fatalf("default protocol did not answer: %v", v)
		}
	})
	t.Run("the Go client with a header", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		c, err := client.Dial(ctx, "ws://"+addr+"/ws/alice", client.Options{Protocol: "binary-raw", Header: http.Header{"Authorization": {"Bearer " + good}}})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		call[chat.PingResult](t, c, chat.MethodPing, &chat.PingParams{})
	})

	t.Run("without a secret tokens are ignored", func(t *testing.T) {
		_, open := startServer(t, Config{})
		c := upgrade(t, open, open, "/ws/bob?token=garbage", "Authorization: Bearer garbage\r\nSec-WebSocket-Protocol: bearer.garbage\r\n")
		c.expectStatus(101, "")
	})
}

func TestTokenExpiresDuringSession(t *testing.T) {
	srv, addr := startServer(t, Config{JWTSecret: testSecret})
	// exp has a precision of one second: two seconds ahead expires after
	// one to two seconds.
	tok := token(t, jwt.SigningMethodHS256, testSecret, jwt.MapClaims{"sub": "alice", "exp": time.Now().Add(2 * time.Second).Unix()})
	c := handshake(t, addr, "/ws/alice?token="+tok, strp("json-rpc"))
	if c.resp.StatusCode != 101 {
		t.Fatalf("status %d", c.resp.StatusCode)
	}
	c.callJSON(`{"jsonrpc":"2.0","method":"chat.ping","id":1}`)
	f := c.next()
	if want := `{"jsonrpc":"2.0","method":"gateway.notice","params":{"kind":"token_expired","message":"token expired: reconnect with a new token"}}`; string(f.Payload) != want {
		t.Fatalf("got %s, want %s", f.Payload, want)
	}
	if reason := c.expectClose(StatusTokenExpired); reason != "token expired: reconnect with a new token" {
		t.Fatalf("close reason %q", reason)
	}
	c.finish(StatusTokenExpired)
	expectNoConns(t, srv)
}

func TestMaxConns(t *testing.T) {
	log := recorder("refused")
	srv, addr := startServer(t, Config{MaxConns: 2, Logger: slog.New(log)})
	a := handshake(t, addr, "/ws/a", nil)
	handshake(t, addr, "/ws/b", nil)
	c := handshake(t, addr, "/ws/c", nil)
	c.expectStatus(503, "server at its connection limit")
	if got := log.next(t); !strings.HasPrefix(got, "client_id=c remote=127.0.0.1:") || !strings.HasSuffix(got, " reason=max_conns status=503") {
		t.Fatalf("logged %q", got)
	}
	a.nc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.WaitConns(ctx, 1); err != nil {
		t.Fatal(err)
	}
	handshake(t, addr, "/ws/c", nil).expectStatus(101, "")
}

func TestMaxConnsPerIP(t *testing.T) {
	srv, addr := startServer(t, Config{MaxConnsPerIP: 2})
	a := handshake(t, addr, "/ws/a", nil)
	handshake(t, addr, "/ws/a", nil)
	handshake(t, addr, "/ws/b", nil).expectStatus(503, "too many connections from your address")
	a.nc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.WaitConns(ctx, 1); err != nil {
		t.Fatal(err)
	}
	handshake(t, addr, "/ws/b", nil).expectStatus(101, "")
	srv.mu.Lock()
	defer srv.mu.Unlock()
	if got := srv.adm.perIP["127.0.0.1"]; got != 2 {
		t.Fatalf("127.0.0.1 counted %d times, want 2", got)
	}
}

func TestIPKey(t *testing.T) {
	for remote, want := range map[string]string{
		"127.0.0.1:5000":                 "127.0.0.1",
		"[::ffff:10.0.0.1]:5000":         "10.0.0.1",
		"[2001:db8:1:2:3:4:5:6]:5000":    "2001:db8:1:2::/64",
		"[2001:db8:1:2:ffff::1]:1":       "2001:db8:1:2::/64",
		"[fe80::1%eth0]:5000":            "fe80::/64",
		"not an address":                 "not an address",
		"[2001:db8:1:3::1]:5000":         "2001:db8:1:3::/64",
		"example.com:80":                 "example.com",
		"[::1]:80":                       "::/64",
		"192.168.1.1:65535":              "192.168.1.1",
		"[2001:db8:1:2:3:4:5:6%x]:80":    "2001:db8:1:2::/64",
		"[2001:0db8:0001:0002::9]:12345": "2001:db8:1:2::/64",
	} {
		if got := ipKey(remote); got != want {
			t.Errorf("ipKey(%q) = %q, want %q", remote, got, want)
		}
	}
}
