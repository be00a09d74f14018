package gateway

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gobwas/ws"

	"github.com/subgate/subgate/codec"
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
	// MaxMessageSize bounds a message, all fragments together, in bytes.
	// Larger messages close the connection with 1009. Default 1 MiB.
	MaxMessageSize int64
	// SendQueueBytes bounds each connection's send queue. Default 4 MiB.
	SendQueueBytes int
	// MaxConcurrentCalls bounds the calls to Concurrent methods that one
	// connection has in flight; beyond it the connection stops reading
	// until one finishes. Default 16.
	MaxConcurrentCalls int
	// HandshakeTimeout bounds writing the upgrade response. Default 10s.
	// The request itself is read by the http.Server before the gateway
	// sees it: give that server a ReadHeaderTimeout (cmd/subgate sets it
	// to this value), or a client that sends half a request holds its
	// connection open indefinitely.
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
}

func (c Config) withDefaults() Config {
	if c.Protocols == nil {
		c.Protocols = protocols.All
	}
	if c.DefaultProtocol == "" {
		c.DefaultProtocol = protocols.JSONRPC
	}
	if c.RejectMode == "" {
		c.RejectMode = "status"
	}
	setDefault(&c.MaxMessageSize, 1<<20)
	setDefault(&c.SendQueueBytes, 4<<20)
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
	if c.Hub == nil {
		c.Hub = NewMemoryHub(HubLimits{
			HistorySize: c.HistorySize, HistoryBytesPerRoom: c.HistoryBytesPerRoom,
			HistoryBytes: c.HistoryBytes, MaxRooms: c.MaxRooms, MaxRoomsPerClient: c.MaxRoomsPerClient,
		})
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// checkPositive refuses negative limits and durations (zero means the
// default and has been replaced by it).
func (c Config) checkPositive() error {
	for _, v := range []struct {
		name string
		n    int64
	}{
		{"MaxMessageSize", c.MaxMessageSize},
		{"SendQueueBytes", int64(c.SendQueueBytes)},
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

	nextID   atomic.Uint64
	mu       sync.Mutex
	conns    map[*Conn]struct{}
	draining bool
	wg       sync.WaitGroup
	// left is closed, and replaced, whenever a connection is removed.
	left chan struct{}
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
	s := &Server{cfg: cfg, log: cfg.Logger, hub: cfg.Hub, router: NewRouter(), conns: map[*Conn]struct{}{}, left: make(chan struct{})}
	s.router.Use(Logging(s.log))
	RegisterChat(s.router, s.hub)
	s.mux = http.NewServeMux()
	s.mux.HandleFunc("GET /ws/{client_id}", s.serveWS)
	s.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok\n") })
	return s, nil
}

// Router returns the server's router, to add methods or middleware.
func (s *Server) Router() *Router { return s.router }

// Hub returns the server's hub.
func (s *Server) Hub() Hub { return s.hub }

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

func (s *Server) serveWS(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet { // the GET pattern also routes HEAD here
		w.Header().Set("Allow", http.MethodGet)
		http.Error(w, "a WebSocket upgrade is a GET", http.StatusMethodNotAllowed)
		return
	}
	id := r.PathValue("client_id")
	if !ValidID(id) {
		http.Error(w, "client id must be 1-64 characters of [A-Za-z0-9._-]", http.StatusBadRequest)
		return
	}
	proto, refuse, ok := s.negotiate(r.Header.Values("Sec-WebSocket-Protocol"))
	if !ok && !refuse {
		s.log.Info("negotiation failed", "client_id", id, "offer", r.Header.Get("Sec-WebSocket-Protocol"))
		http.Error(w, "no supported subprotocol; supported: "+protocols.Names(s.cfg.Protocols), http.StatusBadRequest)
		return
	}
	c := &Conn{
		info:    ConnInfo{ID: s.nextID.Add(1), ClientID: id, Protocol: proto, Remote: r.RemoteAddr},
		srv:     s,
		wake:    make(chan struct{}, 1),
		written: make(chan struct{}),
		slots:   make(chan struct{}, s.cfg.MaxConcurrentCalls),
	}
	if refuse {
		c.info.Protocol = s.cfg.Protocols[0]
	}
	// The connection is registered, and reachable through the hub, before
	// the 101 goes out: a client that has its handshake can be sent to at
	// once. Pushes meanwhile wait in its queue.
	if !s.register(c, !refuse) {
		http.Error(w, "server shutting down", http.StatusServiceUnavailable)
		return
	}
	defer s.unregister(c, !refuse)
	offered := len(r.Header.Values("Sec-WebSocket-Protocol")) > 0
	up := ws.HTTPUpgrader{Timeout: s.cfg.HandshakeTimeout}
	if offered && ok {
		up.Protocol = func(p string) bool { return p == proto.Name }
	}
	nc, rw, _, err := up.Upgrade(r, w)
	if err != nil {
		s.log.Info("upgrade failed", "client_id", id, "err", err)
		if nc != nil {
			_ = nc.Close() // hijacked to write the refusal: nobody else closes it
		}
		return
	}
	c.attach(nc, rw.Reader)
	if refuse {
		s.log.Info("negotiation failed", "client_id", id, "offer", r.Header.Get("Sec-WebSocket-Protocol"), "reject_mode", "close")
		c.closeWith(CloseUnsupportedProtocol, "Unsupported subprotocol")
		c.serve(r.Context())
		return
	}
	s.log.Info("connected", "client_id", c.info.ClientID, "conn", c.info.ID, "protocol", c.info.Protocol.Name, "remote", c.info.Remote)
	c.serve(context.WithValue(context.Background(), connKey{}, c))
	s.log.Info("disconnected", "client_id", c.info.ClientID, "conn", c.info.ID, "reason", c.reason.String(), "code", int(c.code))
}

// register adds a connection about to be upgraded, and to the hub if
// live; it refuses while the server drains.
func (s *Server) register(c *Conn, live bool) bool {
	s.mu.Lock()
	if s.draining {
		s.mu.Unlock()
		return false
	}
	s.wg.Add(1)
	s.conns[c] = struct{}{}
	s.mu.Unlock()
	if live {
		s.hub.Attach(c)
	}
	return true
}

func (s *Server) unregister(c *Conn, live bool) {
	if live {
		s.hub.Detach(c)
	}
	s.mu.Lock()
	delete(s.conns, c)
	close(s.left)
	s.left = make(chan struct{})
	s.mu.Unlock()
	s.wg.Done()
}

// negotiate picks the protocol for an offer. refuse is true when nothing
// matched and the reject mode is "close".
func (s *Server) negotiate(offer []string) (p protocols.Protocol, refuse, ok bool) {
	if len(offer) == 0 {
		if s.cfg.DefaultProtocol == "none" {
			return p, false, false
		}
		p, _ = protocols.Lookup(s.cfg.Protocols, s.cfg.DefaultProtocol)
		return p, false, true
	}
	if p, ok = protocols.Negotiate(strings.Join(offer, ","), s.cfg.Protocols); ok {
		return p, false, true
	}
	return p, s.cfg.RejectMode == "close", false
}

// handleMessage decodes one WebSocket message and answers its calls in
// order, except that a single call to a Concurrent method is started in
// its own goroutine and the reader goes on.
func (s *Server) handleMessage(ctx context.Context, c *Conn, frame []byte) {
	cd := c.Codec()
	msgs, batch, err := cd.Decode(nil, frame)
	if err != nil {
		s.reply(c, cd, codec.NullID, nil, err)
		return
	}
	if !batch && len(msgs) == 1 && msgs[0].Kind != codec.KindInvalid && s.router.IsConcurrent(msgs[0].Method) {
		s.callConcurrent(ctx, c, cd, frame)
		return
	}
	var items [][]byte
	for _, m := range msgs {
		out := s.call(ctx, c, cd, m)
		if out == nil {
			continue
		}
		if !batch {
			c.Send(out)
			continue
		}
		items = append(items, out)
	}
	if len(items) > 0 {
		out, err := cd.AppendBatch(nil, items)
		if err != nil {
			s.log.Error("encoding batch reply", "err", err)
			return
		}
		c.Send(out)
	}
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
	go func() {
		defer func() {
			<-c.slots
			c.calls.Done()
		}()
		if out := s.call(ctx, c, cd, msgs[0]); out != nil {
			c.Send(out)
		}
	}()
}

// call runs one message and returns the encoded reply, or nil for none.
func (s *Server) call(ctx context.Context, c *Conn, cd codec.Codec, m codec.Message) []byte {
	switch m.Kind {
	case codec.KindInvalid:
		return s.encodeReply(cd, codec.NullID, nil, m.Error)
	case codec.KindRequest, codec.KindNotification:
	default:
		return nil // replies from a client: the server never calls, so ignore them
	}
	call := &Call{Method: m.Method, Params: m.Body, Codec: cd, Notification: m.Kind == codec.KindNotification}
	res, err := s.router.Serve(ctx, call)
	if pe, ok := errors.AsType[*PanicError](err); ok && pe.inMiddleware {
		s.log.Error("middleware panicked", "method", pe.Method, "panic", fmt.Sprint(pe.Value), "stack", string(pe.Stack))
	}
	if m.Kind == codec.KindNotification {
		return nil
	}
	return s.encodeReply(cd, m.ID, res, err)
}

func (s *Server) reply(c *Conn, cd codec.Codec, id codec.ID, res any, err error) {
	if out := s.encodeReply(cd, id, res, err); out != nil {
		c.Send(out)
	}
}

func (s *Server) encodeReply(cd codec.Codec, id codec.ID, res any, err error) []byte {
	var out []byte
	if err == nil {
		if out, err = codec.AppendResult(cd, nil, id, res); err == nil {
			return out
		}
		s.log.Error("encoding result", "err", err)
	}
	out, err = codec.AppendError(cd, nil, id, asRPCError(err))
	if err != nil {
		s.log.Error("encoding error reply", "err", err)
		return nil
	}
	return out
}

// Shutdown stops taking connections, closes every connection with 1001
// after its in-flight call is answered, and waits for them all or ctx.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.draining = true
	conns := make([]*Conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	notice := NewPush(chat.PushNotice, &chat.Notice{Kind: chat.NoticeDraining, Message: "server shutting down"})
	for _, c := range conns {
		c.Deliver(notice)
		c.closeWith(CloseGoingAway, "server shutting down")
	}
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
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
