package gateway

import (
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// The file-descriptor budget. Every accepted connection is a descriptor;
// the process also needs some for itself (standard streams, the listener,
// the poller, logs, the spare). Connections beyond the budget are refused
// at accept time, so that accept(2) itself never hits the limit: at
// EMFILE, net/http sleeps and retries while clients wait in the backlog.
const (
	fdReserve      = 64 // descriptors kept out of the budget (at most a quarter of the limit)
	maxRefusing    = 16 // refusals lingering at once, part of the reserve
	refuseLinger   = time.Second
	shedLinger     = 100 * time.Millisecond
	maxConnsCap    = 10000 // DefaultMaxConns never exceeds this (memory, not descriptors, is then the bound)
	refusalMessage = "server at its connection limit\n"
)

// refusalResponse is written, whole, to connections refused at accept
// time: the request has not been read, so the answer cannot depend on it.
var refusalResponse = []byte("HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\n" +
	"Content-Length: " + strconv.Itoa(len(refusalMessage)) + "\r\nConnection: close\r\n\r\n" + refusalMessage)

// FDBudget is how many accepted connections the process can hold open: its
// soft RLIMIT_NOFILE minus a reserve for its own descriptors. It is 0 when
// the limit is unknown or unlimited.
func FDBudget() int {
	n, ok := fdLimit()
	if !ok || n > 1<<30 {
		return 0
	}
	return int(n) - min(fdReserve, int(n)/4)
}

// DefaultMaxConns is Config.MaxConns's default: nine tenths of FDBudget,
// so that WebSockets are refused by the gateway (503 with a reason) before
// the listener refuses connections for lack of descriptors, and the last
// tenth serves handshakes being refused and plain HTTP requests. It is at
// most 10,000 (and 10,000 when the limit is unknown): beyond that memory
// is the bound, and -max-conns raises it on a machine sized for more.
func DefaultMaxConns() int {
	b := FDBudget()
	if b <= 0 {
		return maxConnsCap
	}
	return max(1, min(b*9/10, maxConnsCap))
}

// Listener wraps a net.Listener so that a connection is answered, never
// left waiting, when descriptors run out: beyond a budget of open accepted
// connections it is answered 503 at once, and should accept(2) still fail
// with EMFILE or ENFILE (descriptors used elsewhere in the process), a
// spare descriptor is given up to accept the pending connection, answer it
// 503 and close it.
type Listener struct {
	net.Listener
	max      int64
	log      *slog.Logger
	onRefuse func() // counts a refusal; nil: not counted
	open     atomic.Int64
	refusing atomic.Int64

	mu    sync.Mutex
	spare *os.File // an open /dev/null, given up at EMFILE
}

// NewListener wraps ln. max bounds the accepted connections open at once
// (0: FDBudget(), or no bound when that is unknown).
func NewListener(ln net.Listener, max int, log *slog.Logger) *Listener {
	if max == 0 {
		max = FDBudget()
	}
	if max <= 0 {
		max = 1<<31 - 1
	}
	l := &Listener{Listener: ln, max: int64(max), log: log}
	l.spare = openSpare()
	return l
}

func openSpare() *os.File {
	f, err := os.Open(os.DevNull)
	if err != nil {
		return nil
	}
	return f
}

// Accept returns the next connection under the budget; those beyond it are
// answered 503 and closed.
func (l *Listener) Accept() (net.Conn, error) {
	for {
		nc, err := l.Listener.Accept()
		if err != nil {
			if fdExhausted(err) && l.shed() {
				continue
			}
			return nil, err
		}
		if l.open.Add(1) > l.max {
			l.open.Add(-1)
			l.refuse(nc, "fd_budget")
			continue
		}
		return &countedConn{Conn: nc, l: l}, nil
	}
}

// Close closes the listener and releases the spare descriptor.
func (l *Listener) Close() error {
	l.mu.Lock()
	if l.spare != nil {
		_ = l.spare.Close()
		l.spare = nil
	}
	l.mu.Unlock()
	return l.Listener.Close()
}

// Open is the number of accepted connections not yet closed.
func (l *Listener) Open() int { return int(l.open.Load()) }

func fdExhausted(err error) bool {
	return errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE)
}

// shed gives up the spare descriptor to accept one pending connection and
// answer it 503, then takes the spare back. It reports false when there
// was no spare (it tries to take one for next time) or the accept failed:
// the caller then returns the error, and net/http backs off.
func (l *Listener) shed() bool {
	l.mu.Lock()
	spare := l.spare
	l.spare = nil
	if spare == nil {
		l.spare = openSpare()
		l.mu.Unlock()
		return false
	}
	_ = spare.Close()
	nc, err := l.Listener.Accept()
	l.mu.Unlock()
	if err == nil {
		// The answer is written without the lock: no lock is held across
		// socket I/O. The spare comes back once nc's descriptor is free.
		l.refused(nc, "fd_limit")
		answer503(nc, shedLinger)
	}
	l.mu.Lock()
	if l.spare == nil {
		l.spare = openSpare()
	}
	l.mu.Unlock()
	return err == nil
}

// refuse answers nc 503 on its own goroutine, or at once without waiting
// for the client to close when too many refusals are lingering.
func (l *Listener) refuse(nc net.Conn, reason string) {
	l.refused(nc, reason)
	if l.refusing.Add(1) > maxRefusing {
		l.refusing.Add(-1)
		answer503(nc, 0)
		return
	}
	go func() {
		defer l.refusing.Add(-1)
		answer503(nc, refuseLinger)
	}()
}

// answer503 writes the refusal, half-closes, and reads what the client
// sent until it closes or linger passes: closing a socket with unread
// input resets it, and a reset can destroy the response before the client
// reads it.
func answer503(nc net.Conn, linger time.Duration) {
	defer nc.Close()
	_ = nc.SetDeadline(time.Now().Add(max(linger, 10*time.Millisecond)))
	if _, err := nc.Write(refusalResponse); err != nil || linger == 0 {
		return
	}
	if cw, ok := nc.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
	}
	_, _ = io.CopyN(io.Discard, nc, 64<<10)
}

// countedConn gives its budget slot back when closed, once.
type countedConn struct {
	net.Conn
	l    *Listener
	once sync.Once
}

func (c *countedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.l.open.Add(-1) })
	return err
}

// CloseWrite half-closes, as *net.TCPConn does (the gateway half-closes
// after its close frame).
func (c *countedConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return errors.ErrUnsupported
}

// SyscallConn gives the poller the socket's descriptor.
func (c *countedConn) SyscallConn() (syscall.RawConn, error) { return syscallConn(c.Conn) }

func (l *Listener) refused(nc net.Conn, reason string) {
	if l.onRefuse != nil {
		l.onRefuse()
	}
	l.log.Info("refused", "remote", nc.RemoteAddr().String(), "reason", reason, "status", 503)
}
