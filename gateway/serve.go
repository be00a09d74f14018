package gateway

// Serve: the gateway owns the listener. A connection whose request is an
// upgrade to /ws/{client_id} is upgraded by gobwas's zero-copy
// ws.Upgrader on the raw connection (no net/http request, response writer
// or hijack: 25 allocations instead of 92 per handshake); any other
// request is handed, with the bytes already read, to a net/http server
// that serves the same mux on the same port.

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/gobwas/ws"
)

// headSize bounds an upgrade request's head read by Serve itself: a longer
// head (a large cookie, say) is handed to net/http, which reads heads up
// to http.DefaultMaxHeaderBytes and upgrades through ServeHTTP, as before.
const headSize = 4096

var headPool = sync.Pool{New: func() any {
	b := make([]byte, headSize)
	return &b
}}

// wsPrefix is how the request line of a request Serve upgrades itself
// begins.
const wsPrefix = "GET /ws/"

// served is a listener Serve accepts from, and the net/http server that
// gets its plain HTTP requests.
type served struct {
	ln net.Listener
	hs *http.Server
	hl *connListener
}

// Serve accepts connections on ln and serves them until Shutdown or Close
// (then it returns ErrServerClosed) or until ln fails. WebSocket upgrades
// to /ws/{client_id} are read and upgraded here, with the admission of
// ServeHTTP; every other request (/healthz, /readyz, /metrics, the demo
// page) goes to net/http on the same port. Shutdown closes ln once the
// connections have drained, so that /readyz keeps answering 503 and
// upgrades keep getting 503 meanwhile.
func (s *Server) Serve(ln net.Listener) error {
	sv := &served{ln: ln, hl: newConnListener(ln.Addr())}
	// As cmd/subgate configured its http.Server: the request's head is
	// bounded by the handshake timeout; keep-alive connections that send
	// no next request end after the idle timeout.
	sv.hs = &http.Server{Handler: s.mux, ReadHeaderTimeout: s.cfg.HandshakeTimeout, IdleTimeout: s.cfg.IdleTimeout,
		ErrorLog: log.New(io.Discard, "", 0)}
	s.mu.Lock()
	if s.stopping.Load() {
		s.mu.Unlock()
		return ErrServerClosed
	}
	s.served = append(s.served, sv)
	s.mu.Unlock()
	go func() { _ = sv.hs.Serve(sv.hl) }()
	var delay time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			if s.stopping.Load() {
				return ErrServerClosed
			}
			if ne, ok := err.(net.Error); ok && ne.Timeout() || errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) {
				// As net/http does: back off and retry.
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				time.Sleep(delay)
				continue
			}
			return err
		}
		delay = 0
		go s.handshake(nc, sv.hl)
	}
}

// closeServed closes the listeners Serve accepts from and their net/http
// servers: hard, or after their requests are answered.
func (s *Server) closeServed(hard bool) {
	s.mu.Lock()
	all := s.served
	s.served = nil
	s.mu.Unlock()
	for _, sv := range all {
		_ = sv.ln.Close()
		if hard {
			_ = sv.hs.Close()
		} else {
			ctx, cancel := context.WithTimeout(context.Background(), s.cfg.CloseTimeout)
			_ = sv.hs.Shutdown(ctx)
			cancel()
		}
	}
}

// handshake reads the head of the first request on nc and upgrades it,
// or hands the connection to net/http.
func (s *Server) handshake(nc net.Conn, hl *connListener) {
	_ = nc.SetDeadline(time.Now().Add(s.cfg.HandshakeTimeout))
	pb := headPool.Get().(*[]byte)
	n, end, err := readHead(nc, *pb)
	switch {
	case end > 0:
		u := s.upgradeRaw(nc, (*pb)[:end])
		early := bytes.Clone((*pb)[end:n])
		headPool.Put(pb) // not held while the connection lives
		if u != nil {
			s.upgraded(u, nc, early)
		}
	case err != nil:
		headPool.Put(pb)
		_ = nc.Close() // the timeout struck, or the client left, before a whole head
	default:
		_ = nc.SetDeadline(time.Time{})
		hl.hand(newReplayConn(nc, bytes.Clone((*pb)[:n])))
		headPool.Put(pb)
	}
}

// readHead reads into buf until it holds a whole request head that Serve
// upgrades itself (end: its length), or until what it holds is not the
// start of one or fills buf (end 0: net/http's).
func readHead(nc net.Conn, buf []byte) (n, end int, err error) {
	for n < len(buf) {
		m, err := nc.Read(buf[n:])
		from := max(0, n-3)
		n += m
		if !bytes.HasPrefix(buf[:n], []byte(wsPrefix)[:min(n, len(wsPrefix))]) {
			return n, 0, nil
		}
		if i := bytes.Index(buf[from:n], []byte("\r\n\r\n")); i >= 0 {
			end = from + i + 4
			if !rawUpgradable(buf[:end]) {
				return n, 0, nil
			}
			return n, end, nil
		}
		if err != nil {
			return n, 0, err
		}
	}
	return n, 0, nil
}

// rawUpgradable reports whether Serve upgrades a head itself: a GET of
// /ws/ and one path segment that is a valid client id (not "." or "..",
// which net/http's mux redirects). Anything else gets net/http's answer
// (404, 301, or ServeHTTP's own refusals), as before.
func rawUpgradable(head []byte) bool {
	line, _, _ := bytes.Cut(head, []byte("\r\n"))
	uri, _, ok := bytes.Cut(line[len(wsPrefix)-len("/ws/"):], []byte(" "))
	if !ok {
		return false
	}
	path, _, _ := bytes.Cut(uri, []byte("?"))
	id := string(path[len("/ws/"):])
	return ValidID(id) && id != "." && id != ".."
}

// upgradeRaw upgrades a connection whose head is in head, and returns it
// admitted; nil when it was refused (and closed).
func (s *Server) upgradeRaw(nc net.Conn, head []byte) *admitted {
	h := &rawHandshake{s: s, remote: nc.RemoteAddr().String()}
	up := ws.Upgrader{
		OnRequest:       h.onRequest,
		OnHost:          h.onHost,
		OnHeader:        h.onHeader,
		ProtocolCustom:  h.onProtocol,
		OnBeforeUpgrade: h.admit,
	}
	_, err := up.Upgrade(struct {
		io.Reader
		io.Writer
	}{bytes.NewReader(head), nc})
	if err != nil {
		switch {
		case h.u != nil: // admitted, and the 101 could not be written
			s.upgradeFailed(h.u, err)
		case !h.refused: // not a valid handshake: answered 400 by ws.Upgrader
			s.m.refused[refusedBadRequest].Inc()
			s.log.Info("refused", "client_id", h.req.id, "remote", h.remote, "reason", "upgrade", "err", err)
		}
		_ = nc.Close()
		return nil
	}
	_ = nc.SetDeadline(time.Time{})
	return h.u
}

// rawHandshake collects, through ws.Upgrader's hooks, what admission reads
// of the request, then admits it before the 101 is written.
type rawHandshake struct {
	s       *Server
	remote  string
	req     wsRequest
	u       *admitted
	refused bool
}

func (h *rawHandshake) onRequest(uri []byte) error {
	path, query, _ := strings.Cut(string(uri), "?")
	h.req.id, h.req.query = strings.TrimPrefix(path, "/ws/"), query
	return nil
}

func (h *rawHandshake) onHost(host []byte) error {
	h.req.host = string(host)
	return nil
}

func (h *rawHandshake) onHeader(key, value []byte) error {
	switch string(key) { // canonical: ws.Upgrader canonicalises keys
	case "Origin":
		h.req.origins = append(h.req.origins, string(value))
	case "Authorization":
		if h.req.auth == "" {
			h.req.auth = string(value)
		}
	}
	return nil
}

// onProtocol collects every Sec-WebSocket-Protocol header; the choice is
// made by admission once all are read.
func (h *rawHandshake) onProtocol(v []byte) (string, bool) {
	h.req.offers = append(h.req.offers, string(v))
	return "", true
}

// admit runs ServeHTTP's admission once the request is known to be a
// valid handshake, and answers a refusal as net/http's http.Error would.
func (h *rawHandshake) admit() (ws.HandshakeHeader, error) {
	h.req.remote = h.remote
	u, rf := h.s.admitUpgrade(&h.req)
	if rf != nil {
		h.refused = true
		return nil, ws.RejectConnectionError(ws.RejectionStatus(rf.status), ws.RejectionReason(rf.text+"\n"),
			ws.RejectionHeader(refusalHeader(rf)))
	}
	h.u = u
	if u.answer == "" {
		return nil, nil
	}
	return ws.HandshakeHeaderString("Sec-WebSocket-Protocol: " + u.answer + "\r\n"), nil
}

// refusalHeader is what http.Error and ServeHTTP's refusals add to the
// status line and Content-Type.
func refusalHeader(rf *refusal) ws.HandshakeHeader {
	h := "X-Content-Type-Options: nosniff\r\n"
	if rf.status == http.StatusUnauthorized {
		h += "WWW-Authenticate: Bearer\r\n"
	}
	return ws.HandshakeHeaderString(h)
}

// replayConn is a connection handed to net/http with the bytes Serve
// already read from it, which it reads first.
type replayConn struct {
	net.Conn
	in prefixReader
}

func newReplayConn(nc net.Conn, pre []byte) *replayConn {
	return &replayConn{Conn: nc, in: prefixReader{pre: pre, r: nc}}
}

func (c *replayConn) Read(b []byte) (int, error) { return c.in.Read(b) }

// CloseWrite lets net/http half-close, as it does a *net.TCPConn.
func (c *replayConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return errors.ErrUnsupported
}

// SyscallConn gives the poller the socket's descriptor once the bytes
// replayed are read (net/http reads them with the request).
func (c *replayConn) SyscallConn() (syscall.RawConn, error) {
	if len(c.in.pre) > 0 {
		return nil, errors.ErrUnsupported
	}
	return syscallConn(c.Conn)
}

// syscallConn returns nc's descriptor access, if it has one.
func syscallConn(nc net.Conn) (syscall.RawConn, error) {
	if sc, ok := nc.(syscall.Conn); ok {
		return sc.SyscallConn()
	}
	return nil, errors.ErrUnsupported
}

// connListener is an in-process net.Listener: Serve hands it the
// connections net/http serves.
type connListener struct {
	addr net.Addr
	ch   chan net.Conn
	once sync.Once
	done chan struct{}
}

func newConnListener(addr net.Addr) *connListener {
	return &connListener{addr: addr, ch: make(chan net.Conn), done: make(chan struct{})}
}

// hand gives nc to net/http, or closes it when the listener is closed.
func (l *connListener) hand(nc net.Conn) {
	select {
	case l.ch <- nc:
	case <-l.done:
		_ = nc.Close()
	}
}

func (l *connListener) Accept() (net.Conn, error) {
	select {
	case nc := <-l.ch:
		return nc, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *connListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *connListener) Addr() net.Addr { return l.addr }
