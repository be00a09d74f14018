package gateway

// Admission: what a request must pass before it is upgraded. An Origin
// header must name this server or an allowed origin (cross-site WebSocket
// hijacking), a token must prove the client id when tokens are on, and the
// node and the client's address must be under their connection caps. Each
// refusal is an HTTP status with a one-line body, logged at info with the
// client id, the remote address and a reason.

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/subgate/subgate/protocols"
)

// DefaultMaxConnsPerIP is Config.MaxConnsPerIP's default: a tenth of the
// default node cap, enough for a NAT of many users, and it keeps one
// address from taking the whole node.
const DefaultMaxConnsPerIP = 1000

// MinJWTSecret is the shortest HS256 secret accepted: RFC 7518 §3.2 wants
// a key at least as long as the hash output (256 bits).
const MinJWTSecret = 32

// tokenExpiredText is the notice and the close reason of a connection whose
// token expired.
const tokenExpiredText = "token expired: reconnect with a new token"

// admission holds the settings of the checks, prepared once.
type admission struct {
	origins   map[string]bool // normalised allowed origins
	anyOrigin bool
	key       []byte // the JWT secret; nil when tokens are off
	// perIP counts registered connections per address (per /64 for IPv6,
	// where one host holds a whole prefix). Guarded by Server.mu.
	perIP map[string]int
}

func newAdmission(c Config) (admission, error) {
	a := admission{origins: map[string]bool{}, perIP: map[string]int{}}
	for _, o := range c.AllowedOrigins {
		if o = strings.TrimSpace(o); o == "*" {
			a.anyOrigin = true
			continue
		}
		n, ok := normalOrigin(o)
		if !ok {
			return a, fmt.Errorf("gateway: allowed origin %q: want scheme://host[:port] or *", o)
		}
		a.origins[n] = true
	}
	if c.JWTSecret != "" {
		if len(c.JWTSecret) < MinJWTSecret {
			return a, fmt.Errorf("gateway: JWTSecret must be at least %d bytes (RFC 7518 §3.2)", MinJWTSecret)
		}
		a.key = []byte(c.JWTSecret)
	}
	return a, nil
}

// refusal is a request refused before the upgrade.
type refusal struct {
	status int
	reason string // the log's reason field
	kind   string // the metric's reason label (refusalKinds)
	text   string // the one-line response body
}

var (
	refuseNotGet    = &refusal{http.StatusMethodNotAllowed, "not_get", refusedBadRequest, "a WebSocket upgrade is a GET"}
	refuseBadID     = &refusal{http.StatusBadRequest, "client_id", refusedBadRequest, "client id must be 1-64 characters of [A-Za-z0-9._-]"}
	refuseDraining  = &refusal{http.StatusServiceUnavailable, "draining", refusedDraining, "server shutting down"}
	refuseHub       = &refusal{http.StatusServiceUnavailable, "hub", refusedUnavailable, "service unavailable: try again"}
	refuseMaxConns  = &refusal{http.StatusServiceUnavailable, "max_conns", refusedCap, "server at its connection limit"}
	refusePerIP     = &refusal{http.StatusServiceUnavailable, "max_conns_per_ip", refusedCap, "too many connections from your address"}
	refuseOrigin    = &refusal{http.StatusForbidden, "origin", refusedOrigin, "origin not allowed"}
	refuseNoToken   = &refusal{http.StatusUnauthorized, "no_token", refusedAuth, "a token is required (Authorization: Bearer, ?token= or a bearer.<token> subprotocol)"}
	refuseBadToken  = &refusal{http.StatusUnauthorized, "token_invalid", refusedAuth, "invalid token"}
	refuseTokenErrs = []struct {
		err error
		rf  *refusal
	}{
		{jwt.ErrTokenExpired, &refusal{http.StatusUnauthorized, "token_expired", refusedAuth, "token expired"}},
		{jwt.ErrTokenNotValidYet, &refusal{http.StatusUnauthorized, "token_not_valid_yet", refusedAuth, "token not valid yet"}},
		{jwt.ErrTokenInvalidSubject, &refusal{http.StatusUnauthorized, "token_subject", refusedAuth, "token subject is not the client id"}},
		{jwt.ErrTokenSignatureInvalid, &refusal{http.StatusUnauthorized, "token_signature", refusedAuth, "token signature invalid"}},
	}
)

// refuse answers a refused request, counts it and logs it (with attrs).
func (s *Server) refuse(w http.ResponseWriter, r *http.Request, id string, rf *refusal, attrs ...any) {
	s.noteRefusal(r.RemoteAddr, id, rf, attrs...)
	writeRefusal(w, rf)
}

// writeRefusal answers rf through net/http.
func writeRefusal(w http.ResponseWriter, rf *refusal) {
	if rf.status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", "Bearer")
	}
	http.Error(w, rf.text, rf.status)
}

// noteRefusal counts and logs a refused upgrade, whichever path refused
// it.
func (s *Server) noteRefusal(remote, id string, rf *refusal, attrs ...any) {
	s.m.refused[rf.kind].Inc()
	s.log.Info("refused", append([]any{"client_id", id, "remote", remote, "reason", rf.reason, "status", rf.status}, attrs...)...)
}

// wsRequest is what admission reads of an upgrade request: the same
// fields whether net/http parsed the request (Server.ServeHTTP) or the
// zero-copy upgrader's hooks collected them (Server.Serve).
type wsRequest struct {
	id, host, remote string
	origins          []string // every Origin header's value
	auth             string   // the first Authorization header's value
	query            string   // the request URI's raw query
	offers           []string // every Sec-WebSocket-Protocol header's value
}

func httpWSRequest(r *http.Request) *wsRequest {
	return &wsRequest{id: r.PathValue("client_id"), host: r.Host, remote: r.RemoteAddr,
		origins: r.Header.Values("Origin"), auth: r.Header.Get("Authorization"), query: r.URL.RawQuery,
		offers: r.Header.Values("Sec-WebSocket-Protocol")}
}

// admit checks a request's origin and token; it returns the token's expiry
// (zero when there is none).
func (s *Server) admit(r *wsRequest, offer protocols.Offer) (time.Time, *refusal) {
	if !s.originAllowed(r) {
		return time.Time{}, refuseOrigin
	}
	return s.authenticate(r, offer.Token)
}

// originAllowed lets through requests without Origin (not from a browser),
// from a page served by this host (whatever the scheme: TLS may end at a
// proxy), or from an allowed origin.
func (s *Server) originAllowed(r *wsRequest) bool {
	vs := r.origins
	if len(vs) == 0 || s.adm.anyOrigin {
		return true
	}
	if len(vs) > 1 {
		return false
	}
	u, err := url.Parse(vs[0])
	if err != nil || u.Host == "" {
		return false
	}
	port := defaultPort(u.Scheme)
	if strings.EqualFold(dropPort(u.Host, port), dropPort(r.host, port)) {
		return true
	}
	n, ok := normalOrigin(vs[0])
	return ok && s.adm.origins[n]
}

// normalOrigin lower-cases an origin and drops its scheme's default port.
func normalOrigin(o string) (string, bool) {
	u, err := url.Parse(strings.ToLower(o))
	if err != nil || u.Scheme == "" || u.Host == "" || u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
		return "", false
	}
	return u.Scheme + "://" + dropPort(u.Host, defaultPort(u.Scheme)), true
}

func defaultPort(scheme string) string {
	switch strings.ToLower(scheme) {
	case "http", "ws":
		return "80"
	case "https", "wss":
		return "443"
	}
	return ""
}

func dropPort(host, port string) string {
	if port != "" {
		return strings.TrimSuffix(host, ":"+port)
	}
	return host
}

// authenticate checks the request's token when tokens are on: HS256 only,
// exp and nbf as jwt/v5 validates them (no leeway), sub equal to the
// client id. A token without exp does not expire.
func (s *Server) authenticate(r *wsRequest, offered string) (time.Time, *refusal) {
	if s.adm.key == nil {
		return time.Time{}, nil
	}
	tok := requestToken(r, offered)
	if tok == "" {
		return time.Time{}, refuseNoToken
	}
	var claims jwt.RegisteredClaims
	_, err := jwt.ParseWithClaims(tok, &claims, func(*jwt.Token) (any, error) { return s.adm.key, nil },
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}), jwt.WithSubject(r.id))
	if err != nil {
		return time.Time{}, tokenRefusal(err)
	}
	if claims.ExpiresAt == nil {
		return time.Time{}, nil
	}
	return claims.ExpiresAt.Time, nil
}

func tokenRefusal(err error) *refusal {
	for _, e := range refuseTokenErrs {
		if errors.Is(err, e.err) {
			return e.rf
		}
	}
	return refuseBadToken
}

// requestToken finds the token: Authorization: Bearer first, then the
// token query parameter, then the bearer.<token> subprotocol entry.
func requestToken(r *wsRequest, offered string) string {
	if scheme, tok, ok := strings.Cut(r.auth, " "); ok && strings.EqualFold(scheme, "Bearer") {
		return strings.TrimSpace(tok)
	}
	if q, _ := url.ParseQuery(r.query); q.Get("token") != "" {
		return q.Get("token")
	}
	return offered
}

// expireAt closes c with 4001 when its token expires, after a
// token_expired notice (Conn.expire); a zero exp never expires. The timer
// stops when the connection ends.
func (s *Server) expireAt(c *Conn, exp time.Time) {
	if !exp.IsZero() {
		c.expiry.schedule(exp)
	}
}

// countLocked admits c under the node's and its address's caps and counts
// it. s.mu is held.
func (s *Server) countLocked(c *Conn) *refusal {
	if len(s.conns) >= s.cfg.MaxConns {
		return refuseMaxConns
	}
	ip := ipKey(c.info.Remote)
	if s.adm.perIP[ip] >= s.cfg.MaxConnsPerIP {
		return refusePerIP
	}
	s.adm.perIP[ip]++
	return nil
}

// uncountLocked forgets c in the per-address count. s.mu is held.
func (s *Server) uncountLocked(c *Conn) {
	ip := ipKey(c.info.Remote)
	if s.adm.perIP[ip] <= 1 {
		delete(s.adm.perIP, ip)
		return
	}
	s.adm.perIP[ip]--
}

// ipKey is the address a remote is counted under: its IP, or its /64 for
// IPv6.
func ipKey(remote string) string {
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		return remote
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return host
	}
	if a = a.Unmap(); a.Is4() {
		return a.String()
	}
	p, err := a.WithZone("").Prefix(64)
	if err != nil {
		return host
	}
	return p.String()
}
