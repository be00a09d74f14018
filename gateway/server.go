package gateway

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gobwas/ws"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"

	"github.com/subgate/subgate/codec"
	"github.com/subgate/subgate/gateway/web"
	"github.com/subgate/subgate/protocols"
	"github.com/subgate/subgate/protocols/chat"
)

// Config configures a Server. The zero value works: every field documents
// its default.
type Config struct {
	// Protocols are the enabled subprotocols. Default: protocols.All.
	Protocols []protocols.Protocol
	// DefaultProtocol is used when the client sends no
	// Sec-WebSocket-Protocol header. Default "json-rpc"; "none" refuses
	// such clients with HTTP 400.
	DefaultProtocol string
	// RejectMode says how an offer with no supported name is refused:
	// "status" (default) answers HTTP 400 listing the supported names;
	// "close" accepts the upgrade and closes with 1002 "Unsupported
	// subprotocol", as the FastAPI tutorial does.
	RejectMode string
	// AllowedOrigins are the origins ("https://app.example.com"), besides
	// the request's own Host, whose pages may open a WebSocket: a request
	// with another Origin is refused with 403. "*" allows any. Requests
	// without Origin (not from a browser) always pass. Default: none.
	AllowedOrigins []string
	// JWTSecret, when set, requires an HS256 token whose sub is the client
	// id (401 otherwise), and closes the connection with 4001 when the
	// token expires. At least 32 bytes. Default "": no tokens, and a
	// client id proves nothing.
	JWTSecret string
	// MaxConns bounds the node's connections, those being upgraded
	// included; beyond it the upgrade is refused with 503. Default
	// DefaultMaxConns(): below the file-descriptor limit, at most 10,000.
	MaxConns int
	// MaxConnsPerIP bounds the connections from one address (one /64 for
	// IPv6); beyond it 503. Default DefaultMaxConnsPerIP (1000); set it
	// to MaxConns to turn it off.
	MaxConnsPerIP int
	// MaxMessageSize bounds a message, all fragments together, in bytes.
	// Larger messages close the connection with 1009. Default 1 MiB.
	MaxMessageSize int64
	// SendQueueBytes bounds the bytes each connection has accepted and not
	// yet written to its socket (queued, or in the writer's hands).
	// A push that would exceed it closes the connection as a slow consumer
	// (gateway.notice "lagging", then close 4000); a reply waits for room
	// instead, which stops the connection's reading. It is also the
	// largest reply: a single reply, or a whole batch reply, that would
	// exceed it is refused with -32008. Default 4 MiB.
	SendQueueBytes int
	// RateLimit is each connection's sustained rate of calls per second
	// (every batch element, notification and client reply counts). Over
	// it a call gets -32006; after MaxRateRefusals refusals in a row the
	// connection is closed with 1008. Default 100; math.Inf(1) turns the
	// limit off.
	RateLimit float64
	// RateBurst is how many calls a connection may make at once above the
	// sustained rate. Default 200.
	RateBurst int
	// MaxConcurrentCalls bounds the calls to Concurrent methods that one
	// connection has in flight; beyond it the connection stops reading
	// until one finishes. Default 16.
	MaxConcurrentCalls int
	// HandshakeTimeout bounds an upgrade: with Serve, reading the request
	// and writing the response (and a plain HTTP request's head); with
	// ServeHTTP, writing the response only, the request being read by the
	// http.Server before the gateway sees it: give that server a
	// ReadHeaderTimeout, or a client that sends half a request holds its
	// connection open indefinitely. Default 10s.
	HandshakeTimeout time.Duration
	// IdleTimeout closes a connection that sends nothing (not even a pong)
	// for this long. Default 60s.
	IdleTimeout time.Duration
	// PingInterval is how often the server pings. Default 25s.
	PingInterval time.Duration
	// WriteTimeout bounds one flush to a client. Default 10s.
	WriteTimeout time.Duration
	// CloseTimeout is how long a closing connection waits for the peer's
	// close frame. Default 2s.
	CloseTimeout time.Duration
	// HistorySize is the number of messages each room keeps (in-process
	// hub). Default 1000.
	HistorySize int
	// HistoryBytesPerRoom bounds one room's history in bytes (a message
	// costs its text, its sender id and 64 bytes); the oldest messages go
	// first. Default 1 MiB. See HubLimits for this and the next three.
	HistoryBytesPerRoom int
	// HistoryBytes bounds the history of all rooms of the node together;
	// beyond it the oldest messages of the least recently active rooms go
	// (rooms without members first). Default 64 MiB.
	HistoryBytes int
	// MaxRooms bounds the rooms of the node, with members or history.
	// Joining a new room at the bound deletes the least recently active
	// room without members; if all have members, chat.join gets -32009.
	// Default 10000.
	MaxRooms int
	// MaxRoomsPerClient bounds the rooms one client id is in; beyond it
	// chat.join gets -32009. Default 100.
	MaxRoomsPerClient int
	// Hub overrides the in-process hub.
	Hub Hub
	// Logger receives structured logs. Default slog.Default().
	Logger *slog.Logger
	// Metrics is the registry the gateway's Prometheus metrics go in.
	// Default: a registry of the server's own, with the Go runtime and
	// process collectors.
	Metrics *prometheus.Registry
	// Poller says how connections are read: "epoll" (Linux) has the
	// kernel report which sockets have input and a pool of workers read
	// them, so that an idle connection holds no goroutine and no buffer;
	// "goroutines" reads each connection on a goroutine of its own;
	// "auto" (default) is epoll where the platform has it.
	Poller string
	// MetricsPath is where the server's handler serves the metrics.
	// Default "/metrics"; "off" serves them nowhere (MetricsHandler still
	// returns them, to serve on another address).
	MetricsPath string
}

// DefaultConfig is the configuration the zero Config stands for, without
// the hub and the logger (which withDefaults makes on demand). Flags take
// their defaults from it, so that a flag and the Config cannot disagree.
func DefaultConfig() Config { return Config{}.withSettingDefaults() }

func (c Config) withDefaults() Config {
	c = c.withSettingDefaults()
	if c.Hub == nil {
		c.Hub = NewMemoryHub(c.HubLimits())
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

func (c Config) withSettingDefaults() Config {
	if c.Protocols == nil {
		c.Protocols = protocols.All
	}
	if c.DefaultProtocol == "" {
		c.DefaultProtocol = protocols.JSONRPC
	}
	if c.RejectMode == "" {
		c.RejectMode = "status"
	}
	if c.Poller == "" {
		c.Poller = PollerAuto
	}
	if c.MetricsPath == "" {
		c.MetricsPath = "/metrics"
	}
	setDefault(&c.MaxConns, DefaultMaxConns())
	setDefault(&c.MaxConnsPerIP, DefaultMaxConnsPerIP)
	setDefault(&c.MaxMessageSize, 1<<20)
	setDefault(&c.SendQueueBytes, 4<<20)
	setDefault(&c.RateLimit, 100)
	setDefault(&c.RateBurst, 200)
	setDefault(&c.MaxConcurrentCalls, 16)
	setDefault(&c.HandshakeTimeout, 10*time.Second)
	setDefault(&c.IdleTimeout, 60*time.Second)
	setDefault(&c.PingInterval, 25*time.Second)
	setDefault(&c.WriteTimeout, 10*time.Second)
	setDefault(&c.CloseTimeout, 2*time.Second)
	setDefault(&c.HistorySize, defaultHistorySize)
	setDefault(&c.HistoryBytesPerRoom, defaultHistoryBytesPerRoom)
	setDefault(&c.HistoryBytes, defaultHistoryBytes)
	setDefault(&c.MaxRooms, defaultMaxRooms)
	setDefault(&c.MaxRoomsPerClient, defaultMaxRoomsPerClient)
	return c
}

// checkPositive refuses negative limits and durations (zero means the
// default and has been replaced by it).
func (c Config) checkPositive() error {
	for _, v := range []struct {
		name string
		n    int64
	}{
		{"MaxConns", int64(c.MaxConns)},
		{"MaxConnsPerIP", int64(c.MaxConnsPerIP)},
		{"MaxMessageSize", c.MaxMessageSize},
		{"SendQueueBytes", int64(c.SendQueueBytes)},
		{"RateBurst", int64(c.RateBurst)},
		{"MaxConcurrentCalls", int64(c.MaxConcurrentCalls)},
		{"HistorySize", int64(c.HistorySize)},
		{"HistoryBytesPerRoom", int64(c.HistoryBytesPerRoom)},
		{"HistoryBytes", int64(c.HistoryBytes)},
		{"MaxRooms", int64(c.MaxRooms)},
		{"MaxRoomsPerClient", int64(c.MaxRoomsPerClient)},
		{"HandshakeTimeout", int64(c.HandshakeTimeout)},
		{"IdleTimeout", int64(c.IdleTimeout)},
		{"PingInterval", int64(c.PingInterval)},
		{"WriteTimeout", int64(c.WriteTimeout)},
		{"CloseTimeout", int64(c.CloseTimeout)},
	} {
		if v.n < 0 {
			return fmt.Errorf("gateway: %s must not be negative", v.name)
		}
	}
	return nil
}

func setDefault[T comparable](v *T, def T) {
	var zero T
	if *v == zero {
		*v = def
	}
}

// Server is the gateway: an http.Handler serving /ws/{client_id} and the
// health endpoint.
type Server struct {
	cfg    Config
	log    *slog.Logger
	hub    Hub
	router *Router
	mux    *http.ServeMux
	adm    admission
	m      *metrics

	nextID atomic.Uint64
	mu     sync.Mutex
	conns  map[*Conn]struct{}
	// stopping is set, under mu, when a shutdown starts: register refuses
	// from then on (so Shutdown's snapshot of conns is complete), and calls
	// read without mu get -32007.
	stopping atomic.Bool
	wg       sync.WaitGroup
	// left is closed, and replaced, whenever a connection is removed.
	left chan struct{}
	// served are the listeners Serve accepts from (under mu).
	served []*served
	// poller reads the connections (Config.Poller); nil: a goroutine per
	// connection.
	poller poller
}

// ErrServerClosed is returned for connections attempted after Shutdown.
var ErrServerClosed = errors.New("gateway: server closed")

// New returns a server with the chat service registered.
func New(cfg Config) (*Server, error) {
	cfg = cfg.withDefaults()
	if cfg.DefaultProtocol != "none" {
		if _, ok := protocols.Lookup(cfg.Protocols, cfg.DefaultProtocol); !ok {
			return nil, errors.New("gateway: default protocol " + cfg.DefaultProtocol + " is not enabled")
		}
	}
	if cfg.RejectMode != "status" && cfg.RejectMode != "close" {
		return nil, errors.New(`gateway: reject mode must be "status" or "close"`)
	}
	if err := cfg.checkPositive(); err != nil {
		return nil, err
	}
	if cfg.RateLimit < 0 || math.IsNaN(cfg.RateLimit) {
		return nil, errors.New("gateway: RateLimit must be positive")
	}
	adm, err := newAdmission(cfg)
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, log: cfg.Logger, hub: cfg.Hub, router: NewRouter(), adm: adm, conns: map[*Conn]struct{}{}, left: make(chan struct{})}
	if cfg.MetricsPath != "off" && !strings.HasPrefix(cfg.MetricsPath, "/") {
		return nil, errors.New(`gateway: MetricsPath must start with "/" or be "off"`)
	}
	if s.poller, err = newPoller(cfg.Poller); err != nil {
		return nil, err
	}
	s.m = newMetrics(s, cfg.Metrics)
	s.router.Use(Logging(s.log))
	RegisterChat(s.router, s.hub)
	s.mux = http.NewServeMux()
	s.mux.HandleFunc("GET /ws/{client_id}", s.serveWS)
	s.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok\n") })
	s.mux.HandleFunc("GET /readyz", s.serveReady)
	// The demo page and the JavaScript client module (gateway/web).
	s.mux.Handle("GET /{$}", web.Handler("index.html"))
	for _, name := range []string{"client.js", "app.js", "style.css"} {
		s.mux.Handle("GET /"+name, web.Handler(name))
	}
	if cfg.MetricsPath != "off" {
		s.mux.Handle("GET "+cfg.MetricsPath, s.m.handler())
	}
	return s, nil
}

// MetricsHandler serves the server's metrics in the Prometheus text
// format, wherever the caller mounts it.
func (s *Server) MetricsHandler() http.Handler { return s.m.handler() }

// Listener wraps ln in a Listener bounded by the file-descriptor budget
// whose refusals count in the server's metrics.
func (s *Server) Listener(ln net.Listener) *Listener {
	l := NewListener(ln, 0, s.log)
	l.onRefuse = s.m.refused[refusedCap].Inc
	return l
}

// Router returns the server's router, to add methods or middleware.
func (s *Server) Router() *Router { return s.router }

// Hub returns the server's hub.
func (s *Server) Hub() Hub { return s.hub }

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// serveReady answers /readyz: 200 while the server takes connections, 503
// from the moment a shutdown starts, so that a load balancer stops
// sending clients before they are refused.
func (s *Server) serveReady(w http.ResponseWriter, _ *http.Request) {
	if s.stopping.Load() {
		http.Error(w, "draining", http.StatusServiceUnavailable)
		return
	}
	if err := s.hubReady(); err != nil {
		http.Error(w, "hub unavailable", http.StatusServiceUnavailable)
		return
	}
	io.WriteString(w, "ready\n")
}

func (s *Server) serveWS(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet { // the GET pattern also routes HEAD here
		w.Header().Set("Allow", http.MethodGet)
		s.refuse(w, r, "", refuseNotGet)
		return
	}
	u, rf := s.admitUpgrade(httpWSRequest(r))
	if rf != nil {
		writeRefusal(w, rf)
		return
	}
	up := ws.HTTPUpgrader{Timeout: s.cfg.HandshakeTimeout}
	if u.answer != "" {
		up.Protocol = func(p string) bool { return p == u.answer } // never a bearer.<token> entry: no protocol has that name
	}
	nc, rw, _, err := up.Upgrade(r, w)
	if err != nil {
		s.upgradeFailed(u, err)
		if nc != nil {
			_ = nc.Close() // hijacked to write the refusal: nobody else closes it
		}
		return
	}
	// Frames a client sent right behind its request may already be in
	// net/http's buffer: they are the connection's first input.
	var early []byte
	if n := rw.Reader.Buffered(); n > 0 {
		early, _ = rw.Reader.Peek(n)
	}
	s.upgraded(u, nc, early)
}

// admitted is an upgrade request that passed admission: its connection is
// registered (and attached to the hub unless it is only to be closed).
type admitted struct {
	c      *Conn
	offer  protocols.Offer
	exp    time.Time // the token's expiry; zero: none
	refuse bool      // nothing offered is supported and the reject mode is "close"
	answer string    // the subprotocol named in the 101; "": none
}

// admitUpgrade runs admission in its documented order (client id, origin,
// token, negotiation, caps, hub) and registers the connection. A refusal
// is counted and logged here; the caller writes it.
func (s *Server) admitUpgrade(r *wsRequest) (*admitted, *refusal) {
	if !ValidID(r.id) {
		s.noteRefusal(r.remote, "", refuseBadID)
		return nil, refuseBadID
	}
	offer := protocols.ParseOffer(r.offers...)
	exp, rf := s.admit(r, offer)
	if rf != nil {
		s.noteRefusal(r.remote, r.id, rf)
		return nil, rf
	}
	proto, refuse, ok := s.negotiate(offer)
	if !ok && !refuse {
		rf := &refusal{http.StatusBadRequest, "no_protocol", refusedNoProtocol,
			"no supported subprotocol; supported: " + protocols.Names(s.cfg.Protocols)}
		s.noteRefusal(r.remote, r.id, rf, "offer", strings.Join(offer.Names, ", "))
		return nil, rf
	}
	if refuse {
		proto = s.cfg.Protocols[0] // the connection only ever sends its close frame
	}
	u := &admitted{offer: offer, exp: exp, refuse: refuse}
	if len(offer.Names) > 0 && ok {
		u.answer = proto.Name
	}
	u.c = s.newConn(ConnInfo{ID: s.nextID.Add(1), ClientID: r.id, Protocol: proto, Remote: r.remote})
	// The connection is registered, and reachable through the hub, before
	// the 101 goes out: a client that has its handshake can be sent to at
	// once. Pushes meanwhile wait in its queue.
	if rf := s.register(u.c, !refuse); rf != nil {
		s.noteRefusal(r.remote, r.id, rf)
		return nil, rf
	}
	return u, nil
}

// upgradeFailed forgets an admitted connection whose 101 could not be
// written or whose request was not a valid handshake.
func (s *Server) upgradeFailed(u *admitted, err error) {
	s.m.refused[refusedBadRequest].Inc()
	s.log.Info("refused", "client_id", u.c.info.ClientID, "remote", u.c.info.Remote, "reason", "upgrade", "err", err)
	s.unregister(u.c)
}

// upgraded serves an admitted connection once its 101 is written; early
// is input that arrived with the request (copied here).
func (s *Server) upgraded(u *admitted, nc net.Conn, early []byte) {
	c := u.c
	c.attach(nc, early)
	if u.refuse {
		s.m.refused[refusedNoProtocol].Inc()
		s.log.Info("refused", "client_id", c.info.ClientID, "remote", c.info.Remote, "reason", "no_protocol", "status", 101,
			"close", int(CloseUnsupportedProtocol.Code()), "offer", strings.Join(u.offer.Names, ", "))
		c.closeWith(CloseUnsupportedProtocol, "Unsupported subprotocol")
		c.onEnd = func() { s.unregister(c) }
		c.serve(context.Background())
		return
	}
	s.serveConn(c, u.offer, u.exp)
}

// serveConn runs an upgraded connection and logs its open and its close.
func (s *Server) serveConn(c *Conn, offer protocols.Offer, exp time.Time) {
	start := time.Now()
	pm := c.pm
	pm.accepted.Inc()
	pm.conns.Inc()
	negotiated := "offer"
	if len(offer.Names) == 0 {
		negotiated = "default"
	}
	s.log.Info("connected", "client_id", c.info.ClientID, "conn", c.info.ID, "protocol", c.info.Protocol.Name,
		"negotiated", negotiated, "offer", strings.Join(offer.Names, ", "), "remote", c.info.Remote)
	c.onEnd = func() {
		pm.conns.Dec()
		reason, code, text := c.closeStatus()
		s.m.closed(pm, reason)
		s.log.Info("disconnected", "client_id", c.info.ClientID, "conn", c.info.ID, "protocol", c.info.Protocol.Name,
			"remote", c.info.Remote, "duration_s", float64(time.Since(start).Milliseconds())/1000, "reason", reason.String(),
			"code", int(code), "text", text, "close_sent", c.closeSent())
		s.unregister(c)
	}
	s.expireAt(c, exp)
	c.serve(context.WithValue(context.Background(), connKey{}, c))
}

func (s *Server) newConn(info ConnInfo) *Conn {
	c := &Conn{
		info:    info,
		srv:     s,
		pm:      s.m.protos[info.Protocol.Name],
		written: make(chan struct{}),
		slots:   make(chan struct{}, s.cfg.MaxConcurrentCalls),
	}
	c.space.L = &c.mu
	c.ping = deadline{c: c, kind: timerPing, idx: -1}
	c.idleT = deadline{c: c, kind: timerIdle, idx: -1}
	c.expiry = deadline{c: c, kind: timerExpiry, idx: -1}
	if !math.IsInf(s.cfg.RateLimit, 1) {
		c.limiter = rate.NewLimiter(rate.Limit(s.cfg.RateLimit), s.cfg.RateBurst)
	}
	return c
}

// register adds a connection about to be upgraded, and to the hub if
// live; it refuses while the server drains or beyond the connection caps.
func (s *Server) register(c *Conn, live bool) *refusal {
	s.mu.Lock()
	if s.stopping.Load() {
		s.mu.Unlock()
		return refuseDraining
	}
	if rf := s.countLocked(c); rf != nil {
		s.mu.Unlock()
		return rf
	}
	s.wg.Add(1)
	s.conns[c] = struct{}{}
	s.mu.Unlock()
	if live {
		ctx, cancel := context.WithTimeout(context.Background(), s.cfg.HandshakeTimeout)
		err := s.hub.Attach(ctx, c)
		cancel()
		if err != nil {
			s.log.Error("hub attach failed", "client_id", c.info.ClientID, "err", err)
			s.unregister(c)
			return refuseHub
		}
		c.live = true
	}
	return nil
}

func (s *Server) unregister(c *Conn) {
	c.leaveHub()
	s.mu.Lock()
	delete(s.conns, c)
	s.uncountLocked(c)
	close(s.left)
	s.left = make(chan struct{})
	s.mu.Unlock()
	s.wg.Done()
}

// negotiate picks the protocol for an offer. refuse is true when nothing
// matched and the reject mode is "close".
func (s *Server) negotiate(offer protocols.Offer) (p protocols.Protocol, refuse, ok bool) {
	if len(offer.Names) == 0 {
		if s.cfg.DefaultProtocol == "none" {
			return p, false, false
		}
		p, _ = protocols.Lookup(s.cfg.Protocols, s.cfg.DefaultProtocol)
		return p, false, true
	}
	if p, ok = offer.Select(s.cfg.Protocols); ok {
		return p, false, true
	}
	return p, s.cfg.RejectMode == "close", false
}

// handleMessage decodes one WebSocket message and answers its calls in
// order, except that a single call to a Concurrent method is started in
// its own goroutine and the reader goes on. Every message is charged
// against the rate limit, batch elements one by one.
func (s *Server) handleMessage(ctx context.Context, c *Conn, frame []byte) {
	cd := c.Codec()
	msgs, batch, err := cd.Decode(c.msgs[:0], frame)
	defer c.keepScratch(msgs)
	if err != nil {
		if c.admit() {
			s.m.observe(c.pm, s.m.invalid, errorCode(err), -1)
			s.reply(c, cd, codec.NullID, nil, err)
		}
		return
	}
	if !batch && len(msgs) == 1 && msgs[0].Kind == codec.KindRequest && s.router.IsConcurrent(msgs[0].Method) && !s.stopping.Load() {
		if c.admit() {
			s.callConcurrent(ctx, c, cd, frame)
		} else {
			c.sendReply(s.refusal(c, msgs[0]))
		}
		return
	}
	budget := newReplyBudget(s.cfg.SendQueueBytes)
	var items []reply
	for _, m := range msgs {
		var out reply
		if budget.spent && m.Kind == codec.KindRequest {
			// The batch's replies used up the budget: the rest are
			// refused without running them.
			out = s.tooLarge(c, m, budget)
			s.m.observe(c.pm, s.m.method(m.Method, s.router.has), chat.CodeReplyTooLarge, -1)
		} else if out = s.serveMessage(ctx, c, cd, m); out.b == nil {
			continue
		}
		out = budget.fit(s, c, m, out)
		if !batch {
			c.sendReply(out)
			continue
		}
		items = append(items, out)
	}
	if len(items) > 0 {
		c.sendReply(s.batchReply(cd, items))
	}
}

// batchReply joins a batch's replies into one, and recycles their
// buffers.
func (s *Server) batchReply(cd codec.Codec, items []reply) reply {
	parts := make([][]byte, len(items))
	for i, it := range items {
		parts[i] = it.b
	}
	out := newReply()
	b, err := cd.AppendBatch(out.b, parts)
	for _, it := range items {
		it.recycle()
	}
	if err != nil {
		s.log.Error("encoding batch reply", "err", err)
		return reply{}
	}
	out.b = b
	return out
}

// serveMessage answers one decoded message unless the rate limit refuses
// it.
func (s *Server) serveMessage(ctx context.Context, c *Conn, cd codec.Codec, m codec.Message) reply {
	if !c.admit() {
		return s.refusal(c, m)
	}
	return s.call(ctx, c, cd, m, &c.call)
}

// refusal is the answer to a message over the rate limit: -32006 for a
// call; nothing for anything else (notifications, replies and invalid
// messages are dropped, and count towards the refusals in a row).
func (s *Server) refusal(c *Conn, m codec.Message) reply {
	if m.Kind != codec.KindRequest {
		return reply{}
	}
	s.m.observe(c.pm, s.m.method(m.Method, s.router.has), chat.CodeRateLimited, -1)
	return s.encodeReply(c.Codec(), m.ID, nil, chat.NewError(chat.CodeRateLimited, "slow down"))
}

// replyBudget bounds the bytes of one reply frame (a single reply or a
// whole batch reply) to what the send queue can hold. A reply that would
// exceed it is replaced by -32008, and so are the batch's later calls,
// which are not run: a batch never builds more than one reply past its
// budget.
type replyBudget struct {
	left, total int
	spent       bool
}

// replyErrorRoom is kept free for the error replies and the batch framing
// that may follow a reply that used up the budget.
const replyErrorRoom = 32 << 10

func newReplyBudget(queue int) *replyBudget {
	n := max(queue-replyErrorRoom, queue/2)
	return &replyBudget{left: n, total: n}
}

func (b *replyBudget) fit(s *Server, c *Conn, m codec.Message, out reply) reply {
	if len(out.b) > b.left && !b.spent {
		c.pm.repliesTooLarge.Inc()
		s.log.Debug("reply too large", "client_id", c.info.ClientID, "conn", c.info.ID, "method", m.Method, "bytes", len(out.b), "budget", b.left)
		b.spent = true
		out.recycle()
		out = s.tooLarge(c, m, b)
	}
	b.left -= len(out.b)
	return out
}

func (s *Server) tooLarge(c *Conn, m codec.Message, b *replyBudget) reply {
	return s.encodeReply(c.Codec(), m.ID, nil, chat.NewError(chat.CodeReplyTooLarge,
		"replies to one message are limited to "+strconv.Itoa(b.total)+" bytes: ask for less"))
}

// callConcurrent runs the one call in frame in a goroutine. The message is
// decoded again from a copy of the frame, which the reader reuses.
func (s *Server) callConcurrent(ctx context.Context, c *Conn, cd codec.Codec, frame []byte) {
	own := bytes.Clone(frame)
	msgs, _, err := cd.Decode(nil, own)
	if err != nil || len(msgs) != 1 {
		s.log.Error("decoding a copied frame failed", "err", err)
		return
	}
	c.slots <- struct{}{} // a full set of slots blocks the reader
	c.calls.Add(1)
	c.busy.Add(1)
	go func() {
		defer func() {
			<-c.slots
			c.calls.Done()
			c.idle()
		}()
		if out := s.call(ctx, c, cd, msgs[0], new(Call)); out.b != nil {
			c.sendReply(newReplyBudget(s.cfg.SendQueueBytes).fit(s, c, msgs[0], out))
		}
	}()
}

// call runs one message and returns the encoded reply, or none.
// While the server drains, calls are refused with -32007.
//
// call is where the Call is built: the reader passes its own, reused for
// every message (a handler keeps no *Call after it returns).
func (s *Server) call(ctx context.Context, c *Conn, cd codec.Codec, m codec.Message, call *Call) reply {
	switch m.Kind {
	case codec.KindInvalid:
		s.m.observe(c.pm, s.m.invalid, int64(m.Error.Code), -1)
		return s.encodeReply(cd, codec.NullID, nil, m.Error)
	case codec.KindRequest, codec.KindNotification:
	default:
		return reply{} // replies from a client: the server never calls, so drop them
	}
	start := time.Now()
	mm := s.m.method(m.Method, s.router.has)
	if s.stopping.Load() {
		s.m.observe(c.pm, mm, chat.CodeShuttingDown, -1)
		if m.Kind == codec.KindNotification {
			return reply{}
		}
		return s.encodeReply(cd, m.ID, nil, chat.NewError(chat.CodeShuttingDown, "reconnect elsewhere"))
	}
	*call = Call{Method: m.Method, Params: m.Body, Codec: cd, Notification: m.Kind == codec.KindNotification}
	res, err := s.router.Serve(ctx, call)
	if pe, ok := errors.AsType[*PanicError](err); ok && pe.inMiddleware {
		s.log.Error("middleware panicked", "method", pe.Method, "panic", fmt.Sprint(pe.Value), "stack", string(pe.Stack))
	}
	var out reply
	if m.Kind != codec.KindNotification {
		out = s.encodeReply(cd, m.ID, res, err)
	}
	s.m.observe(c.pm, mm, errorCode(err), time.Since(start))
	return out
}

func (s *Server) reply(c *Conn, cd codec.Codec, id codec.ID, res any, err error) {
	if out := s.encodeReply(cd, id, res, err); out.b != nil {
		c.sendReply(out)
	}
}

// encodeReply encodes a reply into a recycled buffer.
func (s *Server) encodeReply(cd codec.Codec, id codec.ID, res any, err error) reply {
	out := newReply()
	if err == nil {
		b, err2 := codec.AppendResult(cd, out.b, id, res)
		if err2 == nil {
			out.b = b
			return out
		}
		err = err2
		s.log.Error("encoding result", "err", err)
	}
	b, err := codec.AppendError(cd, out.b[:0], id, asRPCError(err))
	if err != nil {
		s.log.Error("encoding error reply", "err", err)
		out.recycle()
		return reply{}
	}
	out.b = b
	return out
}

// Shutdown drains the server: /readyz fails and new upgrades get 503 at
// once; every connection gets a gateway.notice "draining"; calls read
// from then on get -32007; each connection closes with 1001 as soon as its
// calls in flight are answered. With a deadline on ctx, no write or
// closing handshake lasts past it, so a stalled client cannot hold the
// shutdown. Shutdown returns when every connection has ended, or with
// ctx's error when ctx ends first; Close then cuts what is left.
func (s *Server) Shutdown(ctx context.Context) error {
	conns := s.stop()
	deadline, hasDeadline := ctx.Deadline()
	notice := NewPush(chat.PushNotice, &chat.Notice{Kind: chat.NoticeDraining, Message: "server shutting down"})
	// Writes and closing handshakes end by nine tenths of the time left,
	// which leaves the rest for sockets to close and Shutdown to return.
	limit := time.Now().Add(time.Until(deadline) * 9 / 10)
	for _, c := range conns {
		if hasDeadline {
			c.limitDeadlines(limit)
		}
		c.Deliver(notice)
		c.drain()
	}
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	defer s.closeServed(false)
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close cuts every connection at once: calls in flight are cancelled and
// sockets closed without a closing handshake. Use it after a Shutdown
// whose context ended.
func (s *Server) Close() {
	for _, c := range s.stop() {
		c.abort()
	}
	s.closeServed(true)
}

// stop refuses new connections from now on and returns those there are.
func (s *Server) stop() []*Conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopping.Store(true)
	return s.snapshotLocked()
}

// snapshot returns the connections registered now.
func (s *Server) snapshot() []*Conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.snapshotLocked()
}

func (s *Server) snapshotLocked() []*Conn {
	conns := make([]*Conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	return conns
}

// Conns returns the number of live connections.
func (s *Server) Conns() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

// WaitConns blocks until the server has at most n connections (those being
// upgraded included) or ctx ends.
func (s *Server) WaitConns(ctx context.Context, n int) error {
	for {
		s.mu.Lock()
		count, left := len(s.conns), s.left
		s.mu.Unlock()
		if count <= n {
			return nil
		}
		select {
		case <-left:
		case <-ctx.Done():
			return fmt.Errorf("gateway: %d connections still open: %w", count, ctx.Err())
		}
	}
}
