package gateway

import (
	"bufio"
	"bytes"
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
	"golang.org/x/time/rate"

	"github.com/subgate/subgate/codec"
	"github.com/subgate/subgate/protocols"
	"github.com/subgate/subgate/protocols/chat"
)

// Conn is one client connection. Its exported methods are safe for
// concurrent use.
type Conn struct {
	info ConnInfo
	srv  *Server
	pm   *protoMetrics // the series of the connection's protocol
	// nc and br are set by attach, under mu, after the upgrade; the reader
	// and writer goroutines start after that and use them without the lock.
	nc net.Conn
	br *bufio.Reader
	// early is input received before the reader started (with the upgrade
	// request, or left by the poller for the closing handshake).
	early []byte
	// serving is set by serve (under mu): from then on a reply may be
	// written directly by its call's goroutine (sendReply).
	serving bool

	mu sync.Mutex
	// queue holds frames the writer has not taken yet. pending counts the
	// bytes of every frame accepted and not yet written to the socket:
	// queued, or taken by the writer and still in its hands. It is the
	// quantity bounded by Config.SendQueueBytes.
	queue   []frame
	spare   []frame
	pending int
	space   sync.Cond // signalled when pending shrinks or the queue is dropped
	closing bool      // no new input is read; replies to calls still go out
	sealed  bool      // the close frame is next: nothing more is queued
	reason  CloseReason
	code    ws.StatusCode // sent in the close frame
	text    string
	drop    bool      // drop the queue instead of flushing it first
	writeBy time.Time // the writer's current deadline
	limitBy time.Time // no write deadline later than this (shutdown); zero: none
	sent    bool      // the close frame was written to the socket
	// writerOn: a writer goroutine runs; writerDone: the writer has written
	// the close frame, or the socket failed; no writer runs again.
	writerOn, writerDone bool
	writing              bool          // someone owns the socket's write side (its write buffer comes from a pool)
	written              chan struct{} // closed when the writer has finished

	// moreInput is set by the reader while the message it handles was
	// followed by more input already received: replies then go through
	// the queue, so that the writer sends a burst's replies in one write.
	moreInput atomic.Bool

	// Concurrent calls in flight: slots bounds them (the reader blocks on a
	// full slots, which is back-pressure on the client); calls is waited
	// for before the close frame so that their replies are sent. Only the
	// reader goroutine adds to calls.
	slots chan struct{}
	calls sync.WaitGroup

	// busy counts messages being handled (by the reader) and concurrent
	// calls in flight; a draining connection closes when it reaches 0.
	busy     atomic.Int32
	draining atomic.Bool

	// live is set when the connection was attached to the hub; left makes
	// it leave the hub exactly once, as soon as it stops reading.
	live bool
	left sync.Once

	// Rate limit (reader goroutine only): limiter is nil when unlimited;
	// refused counts consecutive calls refused with -32006.
	limiter *rate.Limiter
	refused int

	cancel context.CancelFunc // cancels the calls' context; set by serve

	// Reader goroutine only, reused for every message: the decoded
	// messages and the Call handed to the router; unread is the payload
	// of a refused frame still to come.
	msgs   []codec.Message
	call   Call
	unread int64

	// The shared timers (timers.go): the keepalive ping, the idle timeout
	// when the poller reads (the goroutine reader uses a read deadline)
	// and the token's expiry.
	ping, idleT, expiry deadline
	// onEnd runs once the connection has ended (socket closed): serveConn's
	// log line and metrics, and unregistering.
	onEnd func()

	// Set when the poller reads the connection (poll.go); the fields below
	// are the reader's, whoever holds the connection's read side (rs).
	pr *pollReader
}

type frame struct {
	op ws.OpCode
	b  []byte
	pb *[]byte // the recycled buffer b came from, if any
}

// reply is an encoded reply in a buffer from replyPool. Replies are
// recycled once written: a call's reply costs no allocation. (Pushes are
// shared by every recipient and are not recycled.)
type reply struct {
	b  []byte
	pb *[]byte
}

// maxRecycled is the largest reply buffer kept for reuse.
const maxRecycled = 16 << 10

var replyPool = sync.Pool{New: func() any {
	b := make([]byte, 0, 512)
	return &b
}}

func newReply() reply {
	pb := replyPool.Get().(*[]byte)
	return reply{b: (*pb)[:0], pb: pb}
}

// recycle returns the reply's buffer to the pool; the reply is not used
// after.
func (r reply) recycle() {
	if r.pb != nil && cap(r.b) <= maxRecycled {
		*r.pb = r.b[:0]
		replyPool.Put(r.pb)
	}
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

// Info returns the connection's identity.
func (c *Conn) Info() ConnInfo { return c.info }

// ClientID returns the client id of the connection's URL.
func (c *Conn) ClientID() string { return c.info.ClientID }

// Codec returns the codec of the negotiated subprotocol.
func (c *Conn) Codec() codec.Codec { return c.info.Protocol.Codec }

// Send queues one encoded push-like message. It never blocks: when the
// bytes not yet written would exceed the bound, the connection is closed
// as a slow consumer and Send reports false.
func (c *Conn) Send(msg []byte) bool { return c.enqueue(frame{op: c.dataOp(), b: msg}) }

func (c *Conn) dataOp() ws.OpCode {
	if c.info.Protocol.Binary {
		return ws.OpBinary
	}
	return ws.OpText
}

func (c *Conn) enqueue(f frame) bool {
	c.mu.Lock()
	if c.sealed || c.drop {
		c.mu.Unlock()
		return false
	}
	if c.pending+len(f.b) > c.srv.cfg.SendQueueBytes {
		c.mu.Unlock()
		c.closeWith(CloseSlowConsumer, "slow consumer: reconnect and catch up with chat.history")
		return false
	}
	c.pushLocked(f)
	c.mu.Unlock()
	c.wakeWriter()
	return true
}

// Lock should be held.
func (c *Conn) pushLocked(f frame) {
	c.queue = append(c.queue, f)
	c.pending += len(f.b)
}

// wakeWriter starts the writer goroutine when there is something for it
// to write and nobody is writing. The writer exits when the queue is
// empty, so an idle connection has no writer goroutine.
func (c *Conn) wakeWriter() {
	c.mu.Lock()
	start := c.serving && !c.writerOn && !c.writerDone && !c.writing && (len(c.queue) > 0 || c.sealed)
	if start {
		c.writerOn = true
	}
	c.mu.Unlock()
	if start {
		go c.writeLoop()
	}
}

// sendReply queues a reply to the connection's own call. Unlike a push it
// waits for room in the queue: a client that calls faster than it reads
// its replies is slowed down (the reader stops reading) instead of being
// cut off. The wait ends when the writer makes room, or when the
// connection can no longer send (dropped, sealed, or the socket failed,
// which the write deadline bounds). A reply larger than the whole bound is
// the caller's to refuse (replyLimit); one that finds the queue empty is
// always taken.
func (c *Conn) sendReply(r reply) bool {
	c.mu.Lock()
	for !c.sealed && !c.drop && c.pending > 0 && c.pending+len(r.b) > c.srv.cfg.SendQueueBytes {
		c.space.Wait()
	}
	if c.sealed || c.drop {
		c.mu.Unlock()
		return false
	}
	if !c.writing && len(c.queue) == 0 && c.serving && !c.moreInput.Load() {
		c.writeDirect(r) // unlocks
		return true
	}
	c.pushLocked(frame{c.dataOp(), r.b, r.pb})
	c.mu.Unlock()
	c.wakeWriter()
	return true
}

// writers are the buffers of writes to sockets. A flush takes one and
// gives it back, so that a connection with nothing to write holds no write
// buffer (4 KiB each otherwise).
var writers = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 4096) }}

func getWriter(nc net.Conn) *bufio.Writer {
	bw := writers.Get().(*bufio.Writer)
	bw.Reset(nc)
	return bw
}

func putWriter(bw *bufio.Writer) {
	bw.Reset(nil)
	writers.Put(bw)
}

// writeDirect writes a reply on the caller's goroutine when nothing is
// queued and the writer is idle, which saves waking the writer for every
// call (a goroutine hand-off per reply). It takes the write side as the
// writer does, so the reply's bytes count in pending, the write deadline
// bounds it, and a push queued meanwhile waits for it; then it wakes the
// writer if anything was queued. Lock should be held; it is released.
func (c *Conn) writeDirect(r reply) {
	f := frame{c.dataOp(), r.b, r.pb}
	c.writing = true
	c.pending += len(f.b)
	c.armWriteLocked(c.srv.cfg.WriteTimeout)
	c.mu.Unlock()
	bw := getWriter(c.nc)
	err := c.writeFrames(bw, []frame{f}, false)
	if err == nil {
		err = bw.Flush()
	}
	putWriter(bw)
	r.recycle()
	c.mu.Lock()
	c.pending -= len(f.b)
	c.writing = false
	c.space.Broadcast()
	wake := len(c.queue) > 0 || c.sealed || c.drop
	c.mu.Unlock()
	if err != nil {
		c.failWrite()
	}
	if wake || err != nil {
		c.wakeWriter()
	}
}

// failWrite ends a connection whose socket failed a write: nothing more
// can be written, so new frames are refused and the socket is closed.
func (c *Conn) failWrite() {
	c.closeWith(CloseIOError, "")
	c.mu.Lock()
	c.dropLocked()
	c.mu.Unlock()
	_ = c.nc.Close()
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
	polled := c.pr != nil
	if r == CloseSlowConsumer {
		c.dropLocked()
		// Whatever the writer is stuck in gets only the close timeout to
		// finish; then the lagging notice and the close frame follow, or
		// the socket is cut.
		c.armWriteLocked(c.srv.cfg.CloseTimeout)
	}
	c.mu.Unlock()
	c.wakeWriter()
	// Unblock a reader waiting for input. A reader busy with a call finishes
	// it first; its reply is flushed before the close frame. Before the
	// upgrade there is no socket yet: attach sees closing instead.
	if nc := c.socket(); nc != nil {
		_ = nc.SetReadDeadline(time.Now())
	}
	if polled {
		c.ready() // an idle polled connection has no reader to unblock: start one
	}
}

// dropLocked discards the queue and refuses new frames: nothing queued
// will be written. Lock should be held.
func (c *Conn) dropLocked() {
	c.drop = true
	for _, f := range c.queue {
		c.pending -= len(f.b)
		if !f.op.IsControl() {
			c.pm.pushesDropped.Inc()
		}
	}
	clear(c.queue)
	c.queue = c.queue[:0]
	c.space.Broadcast()
}

// armWriteLocked moves the write deadline to d from now, or to limitBy if
// that is sooner. Before the upgrade there is no socket: the writer arms
// its own deadline. Lock should be held (no syscall: the runtime poller
// keeps deadlines).
//
// A deadline still at least seven eighths of d away is kept: it bounds
// this write too, within an eighth, and re-arming it on every write costs
// a timer update each time.
func (c *Conn) armWriteLocked(d time.Duration) {
	now := time.Now()
	by := now.Add(d)
	if !c.limitBy.IsZero() && c.limitBy.Before(by) {
		by = c.limitBy
	}
	if !c.writeBy.After(by) && c.writeBy.Sub(now) >= d-d/8 && c.limitBy.IsZero() {
		return
	}
	c.writeBy = by
	if c.nc != nil {
		_ = c.nc.SetWriteDeadline(c.writeBy)
	}
}

// limitDeadlines caps every later write and the closing handshake at t:
// a stalled client cannot hold a shutdown past its deadline.
func (c *Conn) limitDeadlines(t time.Time) {
	c.mu.Lock()
	c.limitBy = t
	if c.writeBy.IsZero() || t.Before(c.writeBy) {
		c.writeBy = t
		if c.nc != nil {
			_ = c.nc.SetWriteDeadline(t)
		}
	}
	c.mu.Unlock()
}

// leaveHub detaches the connection from the hub, once: no more pushes
// reach it and, if it was its client's last connection, the client leaves
// its rooms.
func (c *Conn) leaveHub() {
	c.left.Do(func() {
		if !c.live {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), c.srv.cfg.CloseTimeout)
		defer cancel()
		if err := c.srv.hub.Detach(ctx, c); err != nil {
			c.srv.log.Error("hub detach failed", "client_id", c.info.ClientID, "conn", c.info.ID, "err", err)
		}
	})
}

// attach gives a registered connection its socket once upgraded; early
// is input that arrived with the upgrade request, read before anything
// else (copied: the caller's buffer is not kept).
func (c *Conn) attach(nc net.Conn, early []byte) {
	c.mu.Lock()
	c.nc = nc
	if len(early) > 0 {
		c.early = bytes.Clone(early)
	}
	c.mu.Unlock()
}

// attachReader gives the connection the buffered reader its goroutine
// reader (and the closing handshake) reads from: the early input, then the
// socket.
func (c *Conn) attachReader() {
	var src io.Reader = c.nc
	if len(c.early) > 0 {
		src = &prefixReader{pre: c.early, r: c.nc}
		c.early = nil
	}
	c.br = bufio.NewReader(src)
}

// prefixReader reads pre, then r.
type prefixReader struct {
	pre []byte
	r   io.Reader
}

func (p *prefixReader) Read(b []byte) (int, error) {
	if len(p.pre) == 0 {
		return p.r.Read(b)
	}
	n := copy(b, p.pre)
	p.pre = p.pre[n:]
	return n, nil
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
	c.space.Broadcast()
	c.mu.Unlock()
	c.wakeWriter()
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
// queued meanwhile. The bytes it takes stay counted in pending until they
// are written, so a writer stuck on a full socket still counts against the
// bound and the next push finds the connection over it.
func (c *Conn) writeLoop() {
	for {
		w, ok := c.take()
		if !ok {
			return // nothing queued, or a reply is being written directly (its writer wakes us)
		}
		bw := getWriter(c.nc)
		err := c.flush(bw, w)
		putWriter(bw)
		for _, f := range w.batch {
			if f.pb != nil {
				reply{f.b, f.pb}.recycle()
			}
		}
		c.mu.Lock()
		c.pending -= w.bytes
		clear(w.batch)
		c.spare = w.batch[:0]
		c.sent = err == nil && w.sealed && w.code != 0
		c.writing = false
		done := err != nil || w.sealed
		if done {
			c.writerOn, c.writerDone = false, true
		}
		c.space.Broadcast()
		c.mu.Unlock()
		if done {
			if err != nil {
				c.failWrite()
			} else if tc, ok := c.nc.(interface{ CloseWrite() error }); ok {
				_ = tc.CloseWrite()
			}
			close(c.written)
			return
		}
	}
}

// keepalive queues a ping, every PingInterval until the connection
// closes; it runs on the timers' goroutine.
func (c *Conn) keepalive() {
	if !c.isClosing() {
		c.enqueue(frame{op: ws.OpPing})
		c.ping.schedule(time.Now().Add(c.srv.cfg.PingInterval))
	}
}

// expire ends a connection whose token expired: a notice, then close
// 4001. It runs on the timers' goroutine.
func (c *Conn) expire() {
	c.Deliver(NewPush(chat.PushNotice, &chat.Notice{Kind: chat.NoticeTokenExpired, Message: tokenExpiredText}))
	c.closeWith(CloseTokenExpired, tokenExpiredText)
}

// work is what the writer took from the connection for one flush.
type work struct {
	batch  []frame
	bytes  int
	sealed bool
	drop   bool
	reason CloseReason
	code   ws.StatusCode
	text   string
}

// take hands the queue to the writer and arms its write deadline; ok is
// false, and the writer ends, when there is nothing to write or a reply is
// being written directly.
func (c *Conn) take() (w work, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.writing || (len(c.queue) == 0 && !c.sealed) {
		c.writerOn = false
		return w, false
	}
	c.writing = true
	w = work{batch: c.queue, sealed: c.sealed, drop: c.drop, reason: c.reason, code: c.code, text: c.text}
	for _, f := range w.batch {
		w.bytes += len(f.b)
	}
	c.queue, c.spare = c.spare[:0], nil
	timeout := c.srv.cfg.WriteTimeout
	if c.drop {
		timeout = c.srv.cfg.CloseTimeout
	}
	c.armWriteLocked(timeout)
	return w, true
}

// flush writes what the writer took and, once sealed, the close frame
// (after a lagging notice for a slow consumer).
func (c *Conn) flush(bw *bufio.Writer, w work) error {
	err := c.writeFrames(bw, w.batch, w.drop)
	if err == nil && w.sealed && w.reason == CloseSlowConsumer {
		err = c.writeLagging(bw)
	}
	if err == nil && w.sealed {
		err = writeClose(bw, w.code, w.text)
	}
	if err == nil {
		err = bw.Flush()
	}
	return err
}

// writeLagging writes the best-effort gateway.notice {kind:"lagging"}
// that precedes a slow consumer's close frame.
func (c *Conn) writeLagging(bw *bufio.Writer) error {
	notice := NewPush(chat.PushNotice, &chat.Notice{Kind: chat.NoticeLagging,
		Message: "too far behind: reconnect and catch up with chat.history {since}"})
	b, err := notice.Bytes(c.Codec())
	if err != nil {
		return nil // nothing to say; the close frame still goes
	}
	return c.writeFrames(bw, []frame{{op: c.dataOp(), b: b}}, false)
}

// writeFrames buffers a batch of frames and counts the data messages
// among them as sent (they reach the socket at the flush that follows, or
// the connection fails).
func (c *Conn) writeFrames(bw *bufio.Writer, batch []frame, drop bool) error {
	if drop {
		return nil
	}
	msgs, bytes := 0, 0
	defer func() {
		c.pm.msgsOut.Add(float64(msgs))
		c.pm.bytesOut.Add(float64(bytes))
	}()
	for _, f := range batch {
		writeHeader(bw, f.op, len(f.b))
		if _, err := bw.Write(f.b); err != nil {
			return err
		}
		if !f.op.IsControl() {
			msgs++
			bytes += len(f.b)
		}
	}
	return nil
}

// writeHeader buffers the header of an unmasked final frame (RFC 6455
// §5.2). ws.WriteHeader would do, but it allocates its scratch buffer on
// every call; a bufio.Writer keeps the first error, which the payload's
// Write returns.
func writeHeader(bw *bufio.Writer, op ws.OpCode, n int) {
	_ = bw.WriteByte(0x80 | byte(op))
	switch {
	case n < 126:
		_ = bw.WriteByte(byte(n))
	case n <= 0xffff:
		_ = bw.WriteByte(126)
		_ = bw.WriteByte(byte(n >> 8))
		_ = bw.WriteByte(byte(n))
	default:
		_ = bw.WriteByte(127)
		for shift := 56; shift >= 0; shift -= 8 {
			_ = bw.WriteByte(byte(uint64(n) >> shift))
		}
	}
}

func writeClose(bw *bufio.Writer, code ws.StatusCode, text string) error {
	if code == 0 {
		return nil // the socket failed: no close frame
	}
	if len(text) > 123 {
		text = text[:123]
	}
	body := ws.NewCloseFrameBody(code, text)
	writeHeader(bw, ws.OpClose, len(body))
	_, err := bw.Write(body)
	return err
}

// serve runs the connection: it reads on the caller's goroutine until the
// connection ends, or hands reading to the poller and returns at once.
// Either way end finishes the connection.
func (c *Conn) serve(ctx context.Context) {
	ctx, cancel := context.WithCancel(ctx)
	c.mu.Lock()
	c.cancel = cancel
	c.serving = true
	c.mu.Unlock()
	c.ping.schedule(time.Now().Add(c.srv.cfg.PingInterval))
	c.wakeWriter() // what was queued before the upgrade
	if c.srv.poller != nil && c.srv.poller.watch(c, ctx) {
		return
	}
	c.attachReader()
	r, code, text := c.readSafely(ctx)
	c.end(r, code, text)
}

// end finishes a connection once it stops reading, on the reader's
// goroutine. The connection leaves the hub at once. Calls in flight are
// answered before the close frame, unless nobody is left to read the
// answers: then their context is cancelled.
func (c *Conn) end(r CloseReason, code ws.StatusCode, text string) {
	c.closeCode(r, code, text)
	c.leaveHub()
	if r == ClosePeer || r == CloseIOError || c.dropping() {
		c.cancel()
	}
	c.calls.Wait()
	c.seal()
	<-c.written
	if c.pr != nil {
		c.early, c.pr.in = c.pr.in, nil // read by the closing handshake
	}
	if r != ClosePeer && r != CloseIOError {
		c.awaitPeerClose()
	}
	if c.pr != nil {
		c.pr.forget(c)
	}
	_ = c.nc.Close()
	c.cancel()
	c.ping.stop()
	c.idleT.stop()
	c.expiry.stop()
	if c.onEnd != nil {
		c.onEnd()
	}
}

// abort ends a connection that outlived a shutdown's deadline: its calls
// are cancelled and its socket closed.
func (c *Conn) abort() {
	c.closeWith(CloseIOError, "")
	c.mu.Lock()
	c.dropLocked()
	cancel, nc := c.cancel, c.nc
	c.mu.Unlock()
	if cancel != nil {
		cancel()
	}
	if nc != nil {
		_ = nc.Close()
	}
}

// keepScratch keeps the reader's message slice for the next message,
// unless a large batch grew it, and drops what pointed into the frame so
// that a large frame's buffer can be freed.
func (c *Conn) keepScratch(msgs []codec.Message) {
	clear(msgs)
	c.msgs = msgs[:0]
	if cap(msgs) > 4 {
		c.msgs = nil
	}
	c.call = Call{}
}

// closeStatus is why the connection closed, the close code sent (the
// client's own, echoed, when it closed first; 0 when no close frame could
// be sent) and its text.
func (c *Conn) closeStatus() (CloseReason, ws.StatusCode, string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.reason, c.code, c.text
}

// closeSent reports whether the close frame reached the socket.
func (c *Conn) closeSent() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sent
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
	by := time.Now().Add(c.srv.cfg.CloseTimeout)
	c.mu.Lock()
	if !c.limitBy.IsZero() && c.limitBy.Before(by) {
		by = c.limitBy
	}
	c.mu.Unlock()
	_ = c.nc.SetReadDeadline(by)
	if c.br == nil {
		c.attachReader()
	}
	// The rest of a frame refused as too big is read and dropped first
	// (up to four times the size limit), or the client, still sending
	// it, would get a reset instead of the 1009.
	if c.unread > 0 {
		if c.unread > 4*c.srv.cfg.MaxMessageSize {
			return
		}
		if _, err := io.CopyN(io.Discard, c.br, c.unread); err != nil {
			return
		}
	}
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
	idle := c.srv.cfg.IdleTimeout
	var readBy time.Time
	for {
		// Deadline first, then the check: closeCode sets closing before it
		// moves the deadline to now, so either this sees closing or the
		// read below is unblocked. The idle deadline moves only when it
		// has come an eighth of the timeout closer: one timer update per
		// message would cost more than the rest of a small call's read.
		if now := time.Now(); readBy.Sub(now) < idle-idle/8 {
			readBy = now.Add(idle)
			_ = c.nc.SetReadDeadline(readBy)
		}
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
			c.unread = h.Length // its payload is still coming: awaitPeerClose skips it
			return CloseTooBig, CloseTooBig.Code(), "message too big"
		}
		n := len(msg)
		if msg, err = readPayload(c.br, msg, h.Length); err != nil {
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
		c.pm.msgsIn.Inc()
		c.pm.bytesIn.Add(float64(len(msg)))
		c.busy.Add(1)
		c.moreInput.Store(c.br.Buffered() > 0)
		c.srv.handleMessage(ctx, c, msg)
		c.idle()
		if cap(msg) > 64<<10 {
			msg = nil // do not keep a large buffer for an idle connection
		}
		msg = msg[:0]
	}
}

// readPayload appends n bytes of payload to msg. The buffer grows with the
// bytes that arrive, never to the announced length up front: each read
// asks for at most as much as is already there (at least 2 KiB), so a
// header announcing a megabyte and sending one byte costs 2 KiB, not a
// megabyte.
func readPayload(r io.Reader, msg []byte, n int64) ([]byte, error) {
	for n > 0 {
		chunk := int(min(n, int64(max(cap(msg)-len(msg), len(msg), 2048))))
		at := len(msg)
		msg = grow(msg, chunk)
		if _, err := io.ReadFull(r, msg[at:]); err != nil {
			return msg[:at], err
		}
		n -= int64(chunk)
	}
	return msg, nil
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
		c.enqueue(frame{op: ws.OpPong, b: append([]byte(nil), p...)})
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

// idle ends one unit of work counted in busy; a draining connection with
// nothing left in flight closes with 1001.
func (c *Conn) idle() {
	if c.busy.Add(-1) == 0 && c.draining.Load() {
		c.closeWith(CloseGoingAway, "server shutting down")
	}
}

// drain starts a graceful close: calls read from now on are refused with
// -32007, and the connection closes with 1001 once the calls in flight
// are answered (at once when there are none).
func (c *Conn) drain() {
	c.draining.Store(true)
	if c.busy.Load() == 0 {
		c.closeWith(CloseGoingAway, "server shutting down")
	}
}

// MaxRateRefusals is how many calls in a row a connection may have refused
// with -32006 before it is closed with 1008: a client that keeps calling
// after that many refusals is not backing off.
const MaxRateRefusals = 50

// admit charges one message against the connection's rate limit. After
// MaxRateRefusals refusals in a row the connection is closed.
// Reader goroutine only.
func (c *Conn) admit() bool {
	if c.limiter == nil || c.limiter.Allow() {
		c.refused = 0
		return true
	}
	c.refused++
	if c.refused > MaxRateRefusals {
		c.closeWith(CloseRateLimited, "rate limit exceeded")
	}
	return false
}
