package gateway

// The event-driven reader. With a poller (epoll on Linux, poll_linux.go),
// a connection with nothing to read holds no goroutine and no buffer: the
// kernel reports readiness, a worker reads what has arrived without
// blocking, parses the frames it completes, handles the messages exactly
// as the goroutine reader does, keeps the bytes of an unfinished frame
// and goes back to the pool, or, for a hot connection, waits for its next
// input a while first (awaitInput).

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/gobwas/ws"
)

// Poller names (Config.Poller).
const (
	PollerAuto       = "auto"       // epoll where the platform has it, else goroutines
	PollerEpoll      = "epoll"      // readiness from epoll; an error where there is none
	PollerGoroutines = "goroutines" // a reader goroutine per connection
)

// autoPoller is what PollerAuto stands for; tests set it from
// SUBGATE_TEST_POLLER to run the suite against both readers.
var autoPoller = PollerEpoll

// ErrNoPoller is returned by New for Config.Poller "epoll" on a platform
// without epoll.
var ErrNoPoller = errors.New("gateway: epoll is not available on this platform")

// poller takes over reading connections.
type poller interface {
	// watch reads c from now on and returns true, or returns false when c
	// cannot be watched (its socket has no descriptor): the caller reads
	// it on its own goroutine.
	watch(c *Conn, ctx context.Context) bool
}

// newPoller returns the poller Config.Poller names; nil: goroutines.
func newPoller(name string) (poller, error) {
	auto := name == PollerAuto
	if auto {
		name = autoPoller
	}
	switch name {
	case PollerGoroutines:
		return nil, nil
	case PollerEpoll:
		p, err := sharedEpoll()
		if err != nil {
			if auto {
				return nil, nil // no epoll here: goroutines
			}
			return nil, err
		}
		return p, nil
	}
	return nil, fmt.Errorf("gateway: poller %q: want auto, epoll or goroutines", name)
}

// Read states of a polled connection (pollReader.rs).
const (
	readIdle    = iota // armed in the poller; nobody reads
	readRunning        // a worker owns the read side
	readAgain          // a worker owns it and readiness came meanwhile: it reads again
)

// pollReader is what a polled connection's reader keeps between
// activations. Everything but rs and lastIn belongs to the worker that
// owns the read side (rs != readIdle).
type pollReader struct {
	rs      atomic.Int32
	lastIn  atomic.Int64 // when input last arrived, Unix nanoseconds (the idle timeout)
	hup     atomic.Bool  // the peer half-closed or the socket failed: read to the end
	rc      syscall.RawConn
	fd      int
	ctx     context.Context
	ep      *epoll
	in      []byte   // received bytes of an unfinished frame; nil otherwise
	frag    []byte   // the payload of an unfinished fragmented message; nil otherwise
	state   ws.State // StateServerSide, and StateFragmented inside a fragmented message
	op      ws.OpCode
	handled uint32 // messages handled, ever (wraps)
	gap     int64  // nanoseconds between the last two reads that brought input
	hot     bool   // the worker waits in the runtime's poller (awaitInput); disarmed in ours

	// The raw-socket calls take these functions, made once per connection,
	// and their arguments and results through the fields below (only the
	// worker owning the connection uses them): a closure made per read
	// cost three allocations per message.
	readFn  func(fd uintptr)
	awaitFn func(fd uintptr) bool
	rbuf    []byte
	rn      int
	rerr    error
	asked   bool
	peek    [1]byte
}

// ready is called when readiness is reported, or when the connection
// must notice it is closing: a worker takes the read side if nobody has
// it, or its owner reads again.
func (c *Conn) ready() {
	pr := c.pr
	for {
		switch s := pr.rs.Load(); s {
		case readIdle:
			if pr.rs.CompareAndSwap(readIdle, readRunning) {
				dispatch(c)
				return
			}
		case readRunning:
			if pr.rs.CompareAndSwap(readRunning, readAgain) {
				return
			}
		default:
			return
		}
	}
}

// workers are goroutines that ran a connection's reader and wait for the
// next (workerLinger, then they exit): a busy server reuses their grown
// stacks, an idle one holds none. The workers running at once are as many
// as the connections whose input is being handled: a handler that waits
// (for room in its send queue, for a Concurrent slot) holds its worker,
// never the others'.
var workers = make(chan *Conn)

const workerLinger = time.Second

func dispatch(c *Conn) {
	select {
	case workers <- c:
	default:
		go runWorker(c)
	}
}

func runWorker(c *Conn) {
	t := time.NewTimer(workerLinger)
	defer t.Stop()
	for {
		c.pollLoop()
		t.Reset(workerLinger)
		select {
		case c = <-workers:
		case <-t.C:
			return
		}
	}
}

// pollLoop runs the read side until nothing more has arrived (then it
// lets go) or the connection ends.
func (c *Conn) pollLoop() {
	pr := c.pr
	for {
		done, r, code, text := c.readReady()
		if done {
			c.end(r, code, text)
			return
		}
		if c.awaitInput() {
			continue
		}
		if pr.rs.CompareAndSwap(readRunning, readIdle) {
			return
		}
		pr.rs.Store(readRunning) // readiness came while we read: read again
	}
}

// readBufs are the buffers workers read into; an unfinished frame's
// bytes are copied out before the buffer goes back.
const readChunk = 8 << 10

var readBufs = sync.Pool{New: func() any {
	b := make([]byte, readChunk)
	return &b
}}

// readReady reads what has arrived and handles the frames it completes;
// done says the connection must close, and why. A panic (a bug in a
// codec, say) closes with 1011, as the goroutine reader does.
func (c *Conn) readReady() (done bool, r CloseReason, code ws.StatusCode, text string) {
	pr := c.pr
	var pb *[]byte
	defer func() {
		if v := recover(); v != nil {
			c.srv.log.Error("connection reader panicked", "client_id", c.info.ClientID, "conn", c.info.ID,
				"protocol", c.info.Protocol.Name, "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
			done, r, code, text = true, CloseInternal, CloseInternal.Code(), "internal error"
			pr.in = nil
		}
		if pb != nil {
			readBufs.Put(pb)
		}
	}()
	// data is the unconsumed input, at the start of buf: a pooled buffer,
	// or pr.in itself while it holds a frame too large for one.
	var buf []byte
	if len(pr.in) <= readChunk/2 {
		pb = readBufs.Get().(*[]byte)
		buf = (*pb)[:copy(*pb, pr.in)]
		pr.in = nil
	} else {
		buf, pr.in = pr.in, nil
	}
	// Input left by the upgrade, or the start of a frame, is looked at
	// before reading more.
	drained := false
	for fresh := len(buf) > 0; ; fresh = false {
		if c.isClosing() {
			pr.keep(buf, pb != nil)
			return true, CloseNormal, 0, ""
		}
		if !fresh {
			if cap(buf)-len(buf) < 512 {
				// A frame larger than what the buffer holds: a buffer of
				// the connection's own, grown as its bytes arrive.
				buf = grow(buf, max(len(buf), 2048))[:len(buf)] // a copy: cap(buf) is short
				if pb != nil {
					readBufs.Put(pb)
					pb = nil
				}
			}
			room := cap(buf) - len(buf)
			n, err := pr.read(buf[len(buf):cap(buf)])
			// A read that did not fill the buffer took all there was:
			// bytes arriving later are reported anew (edge-triggered), so
			// no read is spent finding nothing. After a hang-up report,
			// the worker reads on to the EOF.
			drained = n < room && !pr.hup.Load()
			if n <= 0 {
				pr.keep(buf, pb != nil)
				if errors.Is(err, syscall.EAGAIN) {
					return false, 0, 0, ""
				}
				r, code, text = c.readError(orEOF(err))
				return true, r, code, text
			}
			now := time.Now().UnixNano()
			pr.gap = now - pr.lastIn.Swap(now)
			buf = buf[:len(buf)+n]
		}
		handled := pr.handled
		used, done, r, code, text := c.consume(buf)
		buf = buf[:copy(buf, buf[used:])]
		// A read that brought several messages is a client sending in
		// bursts (pipelining): more has likely arrived while they were
		// handled, and reading it now saves a wake-up.
		if done || drained && pr.handled-handled < 2 {
			pr.keep(buf, pb != nil)
			return done, r, code, text
		}
		if pb == nil && len(buf) <= readChunk/2 && cap(buf) > readChunk {
			// The large frame is done: back to a pooled buffer.
			pb = readBufs.Get().(*[]byte)
			buf = (*pb)[:copy(*pb, buf)]
		}
	}
}

// keep stores the unconsumed input for the next activation, copied out of
// a pooled buffer.
func (pr *pollReader) keep(buf []byte, pooled bool) {
	switch {
	case len(buf) == 0:
		pr.in = nil
	case pooled:
		pr.in = bytes.Clone(buf)
	default:
		pr.in = buf
	}
}

func orEOF(err error) error {
	if err == nil {
		return io.EOF
	}
	return err
}

// consume handles the complete frames at the start of data, as readLoop
// does, and returns how many bytes it used. It stops at an unfinished
// frame, or when the connection must close (done).
func (c *Conn) consume(data []byte) (used int, done bool, r CloseReason, code ws.StatusCode, text string) {
	pr := c.pr
	limit := c.srv.cfg.MaxMessageSize
	for {
		if c.isClosing() {
			return used, true, CloseNormal, 0, ""
		}
		h, hn, err := parseHeader(data[used:])
		if err != nil {
			return used, true, CloseProtocolError, CloseProtocolError.Code(), err.Error()
		}
		if hn == 0 {
			return used, false, 0, 0, ""
		}
		if err := ws.CheckHeader(h, pr.state); err != nil {
			return used + hn, true, CloseProtocolError, CloseProtocolError.Code(), err.Error()
		}
		if !h.OpCode.IsControl() {
			if !pr.state.Fragmented() {
				if done, r, code, text := c.checkOp(h.OpCode); done {
					return used + hn, true, r, code, text
				}
			}
			if h.Length > limit-int64(len(pr.frag)) { // len(frag) <= limit: no overflow
				c.unread = h.Length // its payload is still coming: awaitPeerClose skips it
				return used + hn, true, CloseTooBig, CloseTooBig.Code(), "message too big"
			}
		}
		end := used + hn + int(h.Length)
		if end > len(data) {
			return used, false, 0, 0, ""
		}
		p := data[used+hn : end]
		ws.Cipher(p, h.Mask, 0)
		used = end
		if h.OpCode.IsControl() {
			if done, r, code, text := c.control(h.OpCode, p); done {
				return used, true, r, code, text
			}
			continue
		}
		if done, r, code, text := c.dataFrame(h, p, used < len(data)); done {
			return used, true, r, code, text
		}
	}
}

// checkOp refuses a message whose frame type is not the subprotocol's.
func (c *Conn) checkOp(op ws.OpCode) (bool, CloseReason, ws.StatusCode, string) {
	c.pr.op = op
	if (op == ws.OpBinary) != c.info.Protocol.Binary {
		want := "text"
		if c.info.Protocol.Binary {
			want = "binary"
		}
		return true, CloseUnsupportedData, CloseUnsupportedData.Code(), c.info.Protocol.Name + " takes " + want + " frames"
	}
	return false, 0, 0, ""
}

// dataFrame handles a data frame's payload p: a whole message is handled
// at once, where it lies; a fragment is kept until the message's last.
func (c *Conn) dataFrame(h ws.Header, p []byte, more bool) (bool, CloseReason, ws.StatusCode, string) {
	pr := c.pr
	if !h.Fin {
		pr.frag = append(pr.frag, p...)
		pr.state = pr.state.Set(ws.StateFragmented)
		return false, 0, 0, ""
	}
	msg := p
	if pr.frag != nil {
		msg = append(pr.frag, p...)
		pr.frag = nil // no buffer is kept once the message is whole
	}
	pr.state = pr.state.Clear(ws.StateFragmented)
	if pr.op == ws.OpText && !utf8.Valid(msg) {
		return true, CloseInvalidPayload, CloseInvalidPayload.Code(), "invalid UTF-8"
	}
	c.pm.msgsIn.Inc()
	c.pm.bytesIn.Add(float64(len(msg)))
	pr.handled++
	c.busy.Add(1)
	c.moreInput.Store(more)
	c.srv.handleMessage(pr.ctx, c, msg)
	c.idle()
	return false, 0, 0, ""
}

// parseHeader parses the frame header at the start of b as
// ws.ReadHeader does; n is 0 while b does not hold all of it.
func parseHeader(b []byte) (h ws.Header, n int, err error) {
	if len(b) < 2 {
		return h, 0, nil
	}
	h.Fin = b[0]&0x80 != 0
	h.Rsv = (b[0] & 0x70) >> 4
	h.OpCode = ws.OpCode(b[0] & 0x0f)
	h.Masked = b[1]&0x80 != 0
	n = 2
	switch l := b[1] & 0x7f; l {
	case 126:
		n += 2
	case 127:
		n += 8
	default:
		h.Length = int64(l)
	}
	if h.Masked {
		n += 4
	}
	if len(b) < n {
		return h, 0, nil
	}
	switch b[1] & 0x7f {
	case 126:
		h.Length = int64(b[2])<<8 | int64(b[3])
	case 127:
		if b[2]&0x80 != 0 {
			return h, 0, ws.ErrHeaderLengthMSB
		}
		for _, x := range b[2:10] {
			h.Length = h.Length<<8 | int64(x)
		}
	}
	if h.Masked {
		copy(h.Mask[:], b[n-4:n])
	}
	return h, n, nil
}

// checkIdle closes a polled connection that received nothing for
// IdleTimeout, or looks again when it would be due; it runs on the
// timers' goroutine.
func (c *Conn) checkIdle() {
	idle := c.srv.cfg.IdleTimeout
	due := time.Unix(0, c.pr.lastIn.Load()).Add(idle)
	if time.Now().Before(due) {
		c.idleT.schedule(due)
		return
	}
	c.closeCode(CloseIdle, CloseIdle.Code(), "idle timeout")
}

// rawConnOf returns the descriptor access of a socket the poller can
// watch.
func rawConnOf(nc net.Conn) (syscall.RawConn, bool) {
	rc, err := syscallConn(nc)
	return rc, err == nil
}
