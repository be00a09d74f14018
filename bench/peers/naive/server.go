package main

import (
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
)

// subprotocol is the only one the server speaks.
const subprotocol = "json-rpc"

// server holds the set of open connections that chat.broadcast writes to.
type server struct {
	mu    sync.Mutex
	conns map[*conn]struct{}
}

func newServer() *server {
	return &server{conns: make(map[*conn]struct{})}
}

// routes is the HTTP side: the upgrade goes through net/http and
// ws.UpgradeHTTP, as in gobwas' README, because that is how a hand-written
// server starts (a ServeMux route, then hijack); ws.Upgrade on raw
// connections is gobwas' zero-copy path, which a hand-writer would not
// reach for first.
func (s *server) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /ws/{client_id}", s.serveWS)
	return mux
}

var upgrader = ws.HTTPUpgrader{
	Protocol: func(p string) bool { return p == subprotocol },
}

// serveWS upgrades and starts the connection's one goroutine. A handshake
// that does not offer json-rpc is refused with 400, before the upgrade.
func (s *server) serveWS(w http.ResponseWriter, r *http.Request) {
	if !offers(r.Header.Values("Sec-WebSocket-Protocol"), subprotocol) {
		http.Error(w, "unsupported subprotocol; supported: "+subprotocol, http.StatusBadRequest)
		return
	}
	nc, _, _, err := upgrader.Upgrade(r, w)
	if err != nil {
		return // gobwas has answered the request with the error
	}
	c := &conn{Conn: nc, srv: s}
	s.add(c)
	go c.serve()
}

// offers reports whether the Sec-WebSocket-Protocol header values list p.
func offers(values []string, p string) bool {
	for _, v := range values {
		for _, f := range strings.Split(v, ",") {
			if strings.TrimSpace(f) == p {
				return true
			}
		}
	}
	return false
}

func (s *server) add(c *conn) {
	s.mu.Lock()
	s.conns[c] = struct{}{}
	s.mu.Unlock()
}

func (s *server) remove(c *conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
}

// snapshot copies the set, so that a broadcast writes without holding the
// lock (a slow socket would otherwise stall every connect and disconnect).
func (s *server) snapshot() []*conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	all := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		all = append(all, c)
	}
	return all
}

// broadcast writes one text message to every connection and returns how
// many writes succeeded. There is no queue and no write deadline: a
// subscriber that stops reading stalls the broadcaster once its socket
// buffer is full. Naive by design.
func (s *server) broadcast(msg []byte) int {
	n := 0
	for _, c := range s.snapshot() {
		if c.writeText(msg) == nil {
			n++
		}
	}
	return n
}

// closeAll sends 1001 (going away) to every connection and closes it.
func (s *server) closeAll() {
	frame := ws.MustCompileFrame(ws.NewCloseFrame(ws.NewCloseFrameBody(ws.StatusGoingAway, "server shutting down")))
	for _, c := range s.snapshot() {
		c.Write(frame) // one Write: the whole frame
		c.Conn.Close()
	}
}

// conn is one client connection. Every frame goes out in one locked
// section, since the reader's replies and other connections' broadcasts
// write to it concurrently.
type conn struct {
	net.Conn
	srv *server
	mu  sync.Mutex // serialises writes
}

// Write writes p under the write lock. The control-frame handler of
// wsutil.ReadClientData writes each pong or close reply with one Write, so
// it passes through here whole.
func (c *conn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.Conn.Write(p)
}

// writeText writes one text frame (header and payload: two writes) under
// the write lock.
func (c *conn) writeText(p []byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return wsutil.WriteServerText(c.Conn, p)
}

// serve reads messages until the connection ends. wsutil.ReadClientData
// answers pings with pongs and a close frame with a close frame.
func (c *conn) serve() {
	defer c.Conn.Close()
	defer c.srv.remove(c)
	for {
		msg, _, err := wsutil.ReadClientData(c)
		if err != nil {
			c.fail(err)
			return
		}
		if reply := c.srv.handle(msg); reply != nil {
			if c.writeText(reply) != nil {
				return
			}
		}
	}
}

// fail tells the client why its connection ends when the reason is its
// message (too big, not UTF-8, a protocol error). A closed connection or a
// close frame (already answered) needs nothing.
func (c *conn) fail(err error) {
	var closed wsutil.ClosedError
	if errors.As(err, &closed) || errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) {
		return
	}
	code := ws.StatusProtocolError
	switch {
	case errors.Is(err, wsutil.ErrMessageTooLarge), errors.Is(err, wsutil.ErrFrameTooLarge):
		code = ws.StatusMessageTooBig
	case errors.Is(err, wsutil.ErrInvalidUTF8):
		code = ws.StatusInvalidFramePayloadData
	}
	c.Write(ws.MustCompileFrame(ws.NewCloseFrame(ws.NewCloseFrameBody(code, ""))))
}

// JSON-RPC 2.0 envelopes.
type (
	request struct {
		JSONRPC string          `json:"jsonrpc"`
		ID      json.RawMessage `json:"id"`
		Method  string          `json:"method"`
		Params  json.RawMessage `json:"params"`
	}
	response struct {
		JSONRPC string          `json:"jsonrpc"`
		ID      json.RawMessage `json:"id"`
		Result  any             `json:"result,omitempty"`
		Error   *rpcError       `json:"error,omitempty"`
	}
	rpcError struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	}
	notification struct {
		JSONRPC string `json:"jsonrpc"`
		Method  string `json:"method"`
		Params  any    `json:"params"`
	}
)

// The chat methods' params and results.
type (
	messageParams struct {
		Message string `json:"message"`
	}
	pingResult struct {
		Status    string `json:"status"`
		Timestamp int64  `json:"timestamp"`
	}
	broadcastResult struct {
		Delivered int `json:"delivered"`
	}
)

// JSON-RPC error codes.
const (
	codeParse          = -32700
	codeInvalidRequest = -32600
	codeMethodNotFound = -32601
	codeInvalidParams  = -32602
)

var nullID = json.RawMessage("null")

// handle answers one message; nil means no reply (a notification).
func (s *server) handle(msg []byte) []byte {
	var req request
	if err := json.Unmarshal(msg, &req); err != nil {
		return reply(nullID, nil, &rpcError{codeParse, "parse error"})
	}
	if req.JSONRPC != "2.0" || req.Method == "" {
		return reply(orNull(req.ID), nil, &rpcError{codeInvalidRequest, "invalid request"})
	}
	result, rerr := s.call(req.Method, req.Params)
	if req.ID == nil {
		return nil
	}
	return reply(req.ID, result, rerr)
}

func (s *server) call(method string, params json.RawMessage) (any, *rpcError) {
	switch method {
	case "chat.ping":
		return pingResult{Status: "ok", Timestamp: time.Now().Unix()}, nil
	case "chat.broadcast":
		var p messageParams
		if err := json.Unmarshal(params, &p); err != nil {
			return nil, &rpcError{codeInvalidParams, "invalid params: " + err.Error()}
		}
		push, _ := json.Marshal(notification{JSONRPC: "2.0", Method: "chat.message", Params: p})
		return broadcastResult{Delivered: s.broadcast(push)}, nil
	}
	return nil, &rpcError{codeMethodNotFound, "method not found: " + method}
}

func reply(id json.RawMessage, result any, rerr *rpcError) []byte {
	b, _ := json.Marshal(response{JSONRPC: "2.0", ID: id, Result: result, Error: rerr})
	return b
}

func orNull(id json.RawMessage) json.RawMessage {
	if id == nil {
		return nullID
	}
	return id
}
