package gateway

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/gobwas/ws"

	"github.com/subgate/subgate/codec"
	"github.com/subgate/subgate/protocols"
)

// Conn is one client connection. Its exported methods are safe for
// concurrent use.
type Conn struct {
	info ConnInfo
	srv  *Server
	// nc and br are set by attach, under mu, after the upgrade; the reader
	// and writer goroutines start after that and use them without the lock.
	nc net.Conn
	br *bufio.Reader

	mu      sync.Mutex
	queue   []frame
	spare   []frame
	queued  int
	closing bool // no new input is read; replies to calls still go out
	sealed  bool // the close frame is next: nothing more is queued
	reason  CloseReason
	code    ws.StatusCode // sent in the close frame
	text    string
	drop    bool // drop the queue instead of flushing it first
	wake    chan struct{}
	written chan struct{} // closed when the writer has finished

	lastRead atomic.Int64 // unix nanos of the last frame read

	// Concurrent calls in flight: slots bounds them (the reader blocks on a
	// full slots, which is back-pressure on the client); calls is waited
	// for before the close frame so that their replies are sent. Only the
	// reader goroutine adds to calls.
	slots chan struct{}
	calls sync.WaitGroup
}

type frame struct {
	op ws.OpCode
	b  []byte
}

// ConnInfo is the identity of a connection, carried by every call's context.
type ConnInfo struct {
	ID       uint64 // unique in this process
	ClientID string
	Protocol protocols.Protocol
	Remote   string
}

type connKey struct{}

// ConnInfoFrom returns the identity of the connection a call came from.
func ConnInfoFrom(ctx context.Context) (ConnInfo, bool) {
	c, ok := ctx.Value(connKey{}).(*Conn)
	if !ok {
		return ConnInfo{}, false
	}
	return c.info, true
}

func connFrom(ctx context.Context) *Conn {
	c, _ := ctx.Value(connKey{}).(*Conn)
	return c
}

// Info returns the connection's identity.
func (c *Conn) Info() ConnInfo { return c.info }

// ClientID returns the client id of the connection's URL.
func (c *Conn) ClientID() string { return c.info.ClientID }

// Codec returns the codec of the negotiated subprotocol.
func (c *Conn) Codec() codec.Codec { return c.info.Protocol.Codec }

// Send queues one encoded message. It never blocks: when the queue would
// exceed its byte bound, the connection is closed as a slow consumer and
// Send reports false.
func (c *Conn) Send(msg []byte) bool {
	op := ws.OpText
	if c.info.Protocol.Binary {
		op = ws.OpBinary
	}
	return c.enqueue(frame{op, msg})
}

func (c *Conn) enqueue(f frame) bool {
	c.mu.Lock()
	if c.sealed || c.drop {
		c.mu.Unlock()
		return false
	}
	if c.queued+len(f.b) > c.srv.cfg.SendQueueBytes {
		c.mu.Unlock()
		c.closeWith(CloseSlowConsumer, "slow consumer")
		return false
	}
	c.queue = append(c.queue, f)
	c.queued += len(f.b)
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
	return true
}

// closeWith starts closing: the reader stops reading and is unblocked;
// once it has returned and the calls in flight are answered, the writer
// flushes the queue (unless the reason drops it), sends a close frame and
// half-closes. Only the first call has an effect.
func (c *Conn) closeWith(r CloseReason, text string) {
	c.closeCode(r, r.Code(), text)
}

func (c *Conn) closeCode(r CloseReason, code ws.StatusCode, text string) {
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		return
	}
	c.closing, c.reason, c.code, c.text = true, r, code, text
	c.drop = r == CloseSlowConsumer
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
	// Unblock a reader waiting for input. A reader busy with a call finishes
	// it first; its reply is flushed before the close frame. Before the
	// upgrade there is no socket yet: attach sees closing instead.
	if nc := c.socket(); nc != nil {
		_ = nc.SetReadDeadline(time.Now())
	}
}

// attach gives a registered connection its socket once upgraded.
func (c *Conn) attach(nc net.Conn, br *bufio.Reader) {
	c.mu.Lock()
	c.nc, c.br = nc, br
	c.mu.Unlock()
}

func (c *Conn) socket() net.Conn {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nc
}

// seal lets the writer send the close frame: nothing more will be queued.
func (c *Conn) seal() {
	c.mu.Lock()
	c.sealed = true
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

func (c *Conn) dropping() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.drop
}

func (c *Conn) isClosing() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closing
}

// writeLoop is the writer goroutine: one flush per wake-up, whatever was
// queued meanwhile.
func (c *Conn) writeLoop() {
	defer close(c.written)
	bw := bufio.NewWriterSize(c.nc, 4096)
	ping := time.NewTicker(c.srv.cfg.PingInterval)
	defer ping.Stop()
	for {
		select {
		case <-c.wake:
		case <-ping.C:
			if !c.isClosing() {
				c.enqueue(frame{op: ws.OpPing})
			}
			continue
		}
		c.mu.Lock()
		batch := c.queue
		c.queue, c.spare = c.spare[:0], nil
		c.queued = 0
		sealed, drop, code, text := c.sealed, c.drop, c.code, c.text
		c.mu.Unlock()
		_ = c.nc.SetWriteDeadline(time.Now().Add(c.srv.cfg.WriteTimeout))
		err := writeFrames(bw, batch, drop)
		clear(batch)
		c.mu.Lock()
		c.spare = batch[:0]
		c.mu.Unlock()
		if err == nil && sealed {
			err = writeClose(bw, code, text)
		}
		if err == nil {
			err = bw.Flush()
		}
		if err != nil || sealed {
			if err != nil {
				c.closeWith(CloseIOError, "")
				c.mu.Lock()
				c.drop = true // nothing more can be written: refuse new frames
				c.mu.Unlock()
				_ = c.nc.Close()
			} else if tc, ok := c.nc.(interface{ CloseWrite() error }); ok {
				_ = tc.CloseWrite()
			}
			return
		}
	}
}

func writeFrames(bw *bufio.Writer, batch []frame, drop bool) error {
	if drop {
		return nil
	}
	for _, f := range batch {
		if err := ws.WriteHeader(bw, ws.Header{Fin: true, OpCode: f.op, Length: int64(len(f.b))}); err != nil {
			return err
		}
		if _, err := bw.Write(f.b); err != nil {
			return err
		}
	}
	return nil
}

func writeClose(bw *bufio.Writer, code ws.StatusCode, text string) error {
	if code == 0 {
		return nil // the socket failed: no close frame
	}
	if len(text) > 123 {
		text = text[:123]
	}
	body := ws.NewCloseFrameBody(code, text)
	if err := ws.WriteHeader(bw, ws.Header{Fin: true, OpCode: ws.OpClose, Length: int64(len(body))}); err != nil {
		return err
	}
	_, err := bw.Write(body)
	return err
}

// serve runs the connection until it ends; it is the reader goroutine.
// Calls in flight when it stops reading are answered before the close
// frame, unless nobody is left to read the answers: then their context is
// cancelled.
func (c *Conn) serve(ctx context.Context) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go c.writeLoop()
	r, code, text := c.readSafely(ctx)
	c.closeCode(r, code, text)
	if r == ClosePeer || r == CloseIOError || c.dropping() {
		cancel()
	}
	c.calls.Wait()
	c.seal()
	<-c.written
	if r != ClosePeer && r != CloseIOError {
		c.awaitPeerClose()
	}
	_ = c.nc.Close()
}

// readSafely runs readLoop and turns a panic in it (a bug in a codec,
// say) into close 1011 for this connection instead of a dead reader with a
// live writer.
func (c *Conn) readSafely(ctx context.Context) (r CloseReason, code ws.StatusCode, text string) {
	defer func() {
		if v := recover(); v != nil {
			c.srv.log.Error("connection reader panicked", "client_id", c.info.ClientID, "conn", c.info.ID,
				"protocol", c.info.Protocol.Name, "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
			r, code, text = CloseInternal, CloseInternal.Code(), "internal error"
		}
	}()
	return c.readLoop(ctx)
}

// awaitPeerClose reads and discards what the peer still sends until its
// close frame, EOF or the close timeout, so that our close frame is not
// lost to a reset caused by unread input.
func (c *Conn) awaitPeerClose() {
	_ = c.nc.SetReadDeadline(time.Now().Add(c.srv.cfg.CloseTimeout))
	budget := int64(1 << 16)
	for budget > 0 {
		h, err := ws.ReadHeader(c.br)
		if err != nil || h.OpCode == ws.OpClose || h.Length > budget {
			return
		}
		if _, err := io.CopyN(io.Discard, c.br, h.Length); err != nil {
			return
		}
		budget -= h.Length
	}
}

// readLoop reads and handles messages until the connection must close, and
// says why.
func (c *Conn) readLoop(ctx context.Context) (CloseReason, ws.StatusCode, string) {
	var (
		msg    []byte
		state  = ws.StateServerSide
		op     ws.OpCode
		hdrBuf [ws.MaxHeaderSize - 2]byte
		ctrl   [125]byte
	)
	max := c.srv.cfg.MaxMessageSize
	for {
		// Deadline first, then the check: closeCode sets closing before it
		// moves the deadline to now, so either this sees closing or the
		// read below is unblocked.
		_ = c.nc.SetReadDeadline(time.Now().Add(c.srv.cfg.IdleTimeout))
		if c.isClosing() {
			return CloseNormal, 0, ""
		}
		h, err := ws.ReadHeaderBuffer(c.br, hdrBuf[:])
		if err != nil {
			return c.readError(err)
		}
		if err := ws.CheckHeader(h, state); err != nil {
			return CloseProtocolError, CloseProtocolError.Code(), err.Error()
		}
		if h.OpCode.IsControl() {
			p := ctrl[:h.Length]
			if _, err := io.ReadFull(c.br, p); err != nil {
				return c.readError(err)
			}
			ws.Cipher(p, h.Mask, 0)
			if done, r, code, text := c.control(h.OpCode, p); done {
				return r, code, text
			}
			continue
		}
		if !state.Fragmented() {
			op = h.OpCode
			if (op == ws.OpBinary) != c.info.Protocol.Binary {
				want := "text"
				if c.info.Protocol.Binary {
					want = "binary"
				}
				return CloseUnsupportedData, CloseUnsupportedData.Code(), c.info.Protocol.Name + " takes " + want + " frames"
			}
		}
		if h.Length > max-int64(len(msg)) { // len(msg) <= max: no overflow
			return CloseTooBig, CloseTooBig.Code(), "message too big"
		}
		n := len(msg)
		msg = grow(msg, int(h.Length))
		if _, err := io.ReadFull(c.br, msg[n:]); err != nil {
			return c.readError(err)
		}
		ws.Cipher(msg[n:], h.Mask, 0)
		if !h.Fin {
			state = state.Set(ws.StateFragmented)
			continue
		}
		state = state.Clear(ws.StateFragmented)
		if op == ws.OpText && !utf8.Valid(msg) {
			return CloseInvalidPayload, CloseInvalidPayload.Code(), "invalid UTF-8"
		}
		c.lastRead.Store(time.Now().UnixNano())
		c.srv.handleMessage(ctx, c, msg)
		if cap(msg) > 64<<10 {
			msg = nil // do not keep a large buffer for an idle connection
		}
		msg = msg[:0]
	}
}

func grow(b []byte, n int) []byte {
	if cap(b)-len(b) >= n {
		return b[:len(b)+n]
	}
	nb := make([]byte, len(b)+n, max(2*cap(b), len(b)+n, 512))
	copy(nb, b)
	return nb
}

func (c *Conn) readError(err error) (CloseReason, ws.StatusCode, string) {
	if c.isClosing() {
		return CloseNormal, 0, ""
	}
	var ne net.Error
	switch {
	case errors.Is(err, ws.ErrHeaderLengthMSB), errors.Is(err, ws.ErrHeaderLengthUnexpected):
		return CloseProtocolError, CloseProtocolError.Code(), err.Error()
	case errors.As(err, &ne) && ne.Timeout():
		return CloseIdle, CloseIdle.Code(), "idle timeout"
	}
	return CloseIOError, 0, ""
}

// control handles a ping, pong or close frame.
// validCloseCode reports whether a peer may send code (RFC 6455 §7.4 and
// the IANA registry, which added 1012-1014): 1000-1003, 1007-1014 and the
// private ranges 3000-4999. 1005, 1006 and 1015 are never sent.
func validCloseCode(code ws.StatusCode) bool {
	switch {
	case code >= 1000 && code <= 1003, code >= 1007 && code <= 1014:
		return true
	}
	return code >= 3000 && code <= 4999
}

func (c *Conn) control(op ws.OpCode, p []byte) (bool, CloseReason, ws.StatusCode, string) {
	switch op {
	case ws.OpPing:
		c.enqueue(frame{ws.OpPong, append([]byte(nil), p...)})
	case ws.OpClose:
		if len(p) == 1 {
			return true, CloseProtocolError, CloseProtocolError.Code(), "close payload of 1 byte"
		}
		code, reason := ws.ParseCloseFrameData(p)
		if len(p) == 0 {
			return true, ClosePeer, ws.StatusNormalClosure, ""
		}
		if !validCloseCode(code) {
			return true, CloseProtocolError, CloseProtocolError.Code(), "invalid close code"
		}
		if !utf8.ValidString(reason) {
			return true, CloseInvalidPayload, CloseInvalidPayload.Code(), "close reason is not UTF-8"
		}
		return true, ClosePeer, code, ""
	}
	return false, 0, 0, ""
}
