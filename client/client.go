package client

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"

	"github.com/subgate/subgate/codec"
	"github.com/subgate/subgate/protocols"
)

// DefaultPushBuffer is the size of the Pushes channel when Options.PushBuffer
// is 0.
const DefaultPushBuffer = 256

// DefaultMaxMessageSize bounds a message read from the server when
// Options.MaxMessageSize is 0.
const DefaultMaxMessageSize = 16 << 20

// closeWait bounds how long Close waits for the server to answer the close
// frame before it drops the TCP connection.
const closeWait = time.Second

// pongWait bounds writing the answer to a server's ping. A pong that
// cannot be written for this long means a stuck socket (the gateway's
// write timeout is 10 s too); with a second, as closeWait, a client in a
// starved process dropped healthy connections (3 of 95,000 in the cluster
// scale run, BENCHMARKS.md).
const pongWait = 10 * time.Second

// maxErrorBody bounds how much of a refused handshake's body is kept.
const maxErrorBody = 4 << 10

// Options configure Dial. The zero value is usable.
type Options struct {
	// Protocol is the subprotocol to speak: "json-rpc" (the default),
	// "msgpack" or "binary-raw". Only this one is offered; Dial fails when
	// the server does not select it.
	Protocol string
	// Header holds extra HTTP headers for the handshake request
	// (authentication, for example). Optional.
	Header http.Header
	// OnPush, when set, receives every server push instead of the Pushes
	// channel. It runs on a goroutine of its own, one call at a time and in
	// arrival order, and the read goroutine waits for each call to return
	// before it reads on, so pushes and replies keep the order the server
	// sent them in. OnPush must therefore not block for long (replies are
	// not read meanwhile) and must not wait for a Call on the same client to
	// finish (start it in a goroutine).
	//
	// OnPush may call Close, and may wait for a Close called elsewhere: Close
	// never waits for OnPush. Once Close has been called OnPush is not called
	// again; a call already under way then (the one calling Close, say) may
	// still be running when Close returns and Done is closed. When the
	// connection ends without Close, every OnPush call has returned before
	// Done is closed.
	OnPush func(Push)
	// PushBuffer is the capacity of the Pushes channel when OnPush is nil
	// (0: DefaultPushBuffer). When the channel is full the read goroutine
	// never blocks: it drops the oldest queued push to make room for the new
	// one and counts it in Dropped.
	PushBuffer int
	// MaxMessageSize bounds one message from the server, fragments included
	// (0: DefaultMaxMessageSize). A larger message fails the connection with
	// close code 1009.
	MaxMessageSize int64
	// OnNullIDError, when set, receives each error the server sent with a
	// null id: it could not read a message of this client. Such an error
	// answers no call (a call whose request the server could not read waits
	// until its context ends) and the client never answers it, as it never
	// answers any reply. It runs on a goroutine of its own, one call at a
	// time; errors that arrive while a call runs are dropped. It may call
	// Close. Nil: these errors are dropped.
	OnNullIDError func(*codec.Error)
	// NetDial, when set, opens the TCP connection instead of a plain
	// net.Dialer: a load generator uses it to pick the source address
	// (net.Dialer.LocalAddr) so that more connections fit than one
	// address has ephemeral ports. Nil: the default dialer.
	NetDial func(ctx context.Context, network, addr string) (net.Conn, error)
}

// ErrClosed is returned by Call and Notify on a client whose connection has
// ended (after Close, or after the server or the network closed it). The
// returned error also wraps the connection's *CloseError.
var ErrClosed = errors.New("client: connection closed")

// CloseError says how a connection ended: the close code and reason the
// server sent, or the code the client closed with. Code 1006 (abnormal
// closure) means no close frame was exchanged: Reason then holds the
// network error.
type CloseError struct {
	Code   int
	Reason string
	// Err is the underlying error when the connection did not end with a
	// close frame from the server (a network error, a protocol violation by
	// the server, or ErrClosed after Close).
	Err error
}

func (e *CloseError) Error() string {
	var b strings.Builder
	b.WriteString("client: connection closed with code ")
	b.WriteString(strconv.Itoa(e.Code))
	if name := closeCodeNames[e.Code]; name != "" {
		b.WriteString(" (" + name + ")")
	}
	if e.Reason != "" {
		b.WriteString(": ")
		b.WriteString(e.Reason)
	}
	return b.String()
}

func (e *CloseError) Unwrap() error { return e.Err }

var closeCodeNames = map[int]string{
	1000: "normal closure",
	1001: "going away",
	1002: "protocol error",
	1003: "unsupported data",
	1005: "no status",
	1006: "abnormal closure",
	1007: "invalid payload data",
	1008: "policy violation",
	1009: "message too big",
	1011: "internal error",
	1012: "service restart",
	1013: "try again later",
	4000: "lagging", // subgate: reconnect and catch up with chat.history
	4001: "token expired",
}

// HandshakeError is returned by Dial when the server answers the WebSocket
// upgrade with an HTTP status other than 101. The server lists the
// subprotocols it supports in the body when it refuses the one offered.
type HandshakeError struct {
	StatusCode int
	Status     string // "400 Bad Request"
	Body       string // at most 4 KiB of the response body
}

func (e *HandshakeError) Error() string {
	s := "server refused the WebSocket upgrade: HTTP " + cmp.Or(e.Status, strconv.Itoa(e.StatusCode))
	if body := strings.TrimSpace(e.Body); body != "" {
		s += ": " + body
	}
	return s
}

// Unwrap returns the gobwas/ws status error.
func (e *HandshakeError) Unwrap() error { return ws.StatusError(e.StatusCode) }

// Client is one WebSocket connection to a subgate server. Its methods are
// safe for concurrent use. A Client never reconnects: once Done is closed
// every Call fails with ErrClosed, and the caller dials again (see the
// package example).
type Client struct {
	conn  net.Conn
	proto protocols.Protocol
	op    ws.OpCode // frame type of the protocol

	// wsem serialises frame writes (a channel, not a mutex, so that a writer
	// can give up waiting when its context ends). Its holder owns bw and
	// closeSent.
	wsem      chan struct{}
	bw        *bufio.Writer
	closeSent bool

	nextID atomic.Int64

	mu      sync.Mutex
	pending map[int64]chan reply
	err     *CloseError // set (under mu) when the connection is over
	cause   *CloseError // first local reason to fail the connection

	closing atomic.Bool   // Close was called
	quit    chan struct{} // closed by the first Close, after closing is set
	done    chan struct{}

	// With OnPush, the read goroutine hands each push over on handoff (closed
	// when it finishes) to the dispatch goroutine, which calls OnPush and
	// answers on returned; both give up waiting for the other on quit.
	onPush   func(Push)
	handoff  chan Push
	returned chan struct{}
	onNull   func(*codec.Error)
	inOnNull atomic.Bool // an OnNullIDError call is running

	pushes  chan Push
	dropped atomic.Uint64
}

type reply struct {
	body []byte
	err  error
}

// Dial connects to a subgate server at url (ws://HOST:PORT/ws/CLIENT_ID or
// wss://...) and starts the client's read goroutine. ctx bounds the
// connection and the handshake only, not the life of the Client.
//
// A non-101 answer to the handshake gives a *HandshakeError carrying the
// HTTP status and the body; a 101 that does not select opts.Protocol is
// also an error.
func Dial(ctx context.Context, url string, opts Options) (*Client, error) {
	name := cmp.Or(opts.Protocol, protocols.JSONRPC)
	proto, ok := protocols.Lookup(protocols.All, name)
	if !ok {
		return nil, fmt.Errorf("client: unknown protocol %q (known: %s)", name, protocols.Names(protocols.All))
	}

	var (
		raw     net.Conn // the connection, for OnStatusError's read deadline
		refusal *HandshakeError
	)
	d := ws.Dialer{
		Protocols: []string{name},
		NetDial:   opts.NetDial,
		WrapConn:  func(c net.Conn) net.Conn { raw = c; return c },
		OnStatusError: func(status int, reason []byte, resp io.Reader) {
			refusal = readRefusal(raw, status, reason, resp)
		},
	}
	if opts.Header != nil {
		d.Header = ws.HandshakeHeaderHTTP(opts.Header)
	}
	conn, br, hs, err := d.Dial(ctx, url)
	if err != nil {
		var se ws.StatusError
		if errors.As(err, &se) && refusal != nil {
			err = refusal
		}
		return nil, fmt.Errorf("client: dial %s: %w", url, err)
	}
	if hs.Protocol != name {
		conn.Close()
		return nil, fmt.Errorf("client: dial %s: server did not select subprotocol %q", url, name)
	}

	c := &Client{
		conn:    conn,
		proto:   proto,
		op:      ws.OpText,
		wsem:    make(chan struct{}, 1),
		bw:      bufio.NewWriterSize(conn, 4096),
		pending: make(map[int64]chan reply),
		quit:    make(chan struct{}),
		done:    make(chan struct{}),
		onPush:  opts.OnPush,
		onNull:  opts.OnNullIDError,
	}
	if proto.Binary {
		c.op = ws.OpBinary
	}
	if c.onPush == nil {
		c.pushes = make(chan Push, cmp.Or(opts.PushBuffer, DefaultPushBuffer))
	} else {
		c.pushes = make(chan Push) // never sent to; closed at the end
		c.handoff = make(chan Push)
		c.returned = make(chan struct{})
		go c.dispatchLoop()
	}
	if br == nil {
		br = bufio.NewReaderSize(conn, 4096)
	}
	go c.readLoop(br, cmp.Or(opts.MaxMessageSize, DefaultMaxMessageSize))
	return c, nil
}

// readRefusal reads the status line, headers and (at most maxErrorBody of)
// the body of a refused handshake.
func readRefusal(conn net.Conn, status int, reason []byte, resp io.Reader) *HandshakeError {
	e := &HandshakeError{StatusCode: status, Status: strings.TrimSpace(strconv.Itoa(status) + " " + string(reason))}
	if conn != nil {
		// A body without Content-Length would be read until EOF: bound it.
		conn.SetReadDeadline(time.Now().Add(2 * time.Second))
	}
	r, err := http.ReadResponse(bufio.NewReader(resp), nil)
	if err != nil {
		return e
	}
	defer r.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(r.Body, maxErrorBody))
	e.Body = string(body)
	return e
}

// Protocol returns the subprotocol the connection speaks.
func (c *Client) Protocol() string { return c.proto.Name }

// Codec returns the codec of the connection's subprotocol.
func (c *Client) Codec() codec.Codec { return c.proto.Codec }

// Done is closed when the connection has ended and the read goroutine has
// stopped; every pending call has failed by then. An OnPush call may still
// be running if Close was called (see Options.OnPush), never otherwise.
func (c *Client) Done() <-chan struct{} { return c.done }

// Err returns nil while the connection is open, then the *CloseError saying
// how it ended.
func (c *Client) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err == nil {
		return nil
	}
	return c.err
}

// Pushes returns the channel the server's pushes are queued to, in arrival
// order. It is closed when the connection ends. When Options.OnPush is set
// nothing is ever sent on it (it is still closed at the end).
func (c *Client) Pushes() <-chan Push { return c.pushes }

// Dropped returns how many pushes were dropped because the Pushes channel
// was full.
func (c *Client) Dropped() uint64 { return c.dropped.Load() }

// Call calls method with params and waits for the reply. params is encoded
// by the subprotocol's codec (a pointer to a protocols/chat params struct;
// nil sends none). result is nil (the result is discarded) or a pointer to
// the method's typed result.
//
// An error reply from the server is returned as a *codec.Error. When ctx
// ends first, Call returns ctx.Err() and forgets the call (a late reply is
// dropped). On a closed client Call returns an error wrapping ErrClosed
// without sending anything; if the connection ends while the call waits,
// the error is the connection's *CloseError.
func (c *Client) Call(ctx context.Context, method string, params, result any) error {
	id := c.nextID.Add(1)
	ch := make(chan reply, 1)
	c.mu.Lock()
	if c.err != nil {
		err := c.err
		c.mu.Unlock()
		return closedError(err)
	}
	c.pending[id] = ch
	c.mu.Unlock()

	frame, err := codec.AppendRequest(c.proto.Codec, nil, codec.NumberID(id), method, params)
	if err != nil {
		c.forget(id)
		return fmt.Errorf("client: encode %s params for %s: %w", method, c.proto.Name, err)
	}
	if err := c.write(ctx, c.op, frame); err != nil {
		c.forget(id)
		return err
	}

	select {
	case r := <-ch:
		if r.err != nil {
			return r.err
		}
		if result == nil {
			return nil
		}
		if err := c.proto.Codec.Unmarshal(r.body, result); err != nil {
			// Not %w: an undecodable result is not an error reply of the
			// server, so it must not look like a *codec.Error to errors.As.
			return fmt.Errorf("client: decode %s result: %v", method, err)
		}
		return nil
	case <-ctx.Done():
		c.forget(id)
		return ctx.Err()
	}
}

// Notify sends method with params as a notification: the server runs it but
// never replies, not even with an error.
func (c *Client) Notify(ctx context.Context, method string, params any) error {
	if err := c.Err(); err != nil {
		return closedError(err.(*CloseError))
	}
	frame, err := codec.AppendNotification(c.proto.Codec, nil, method, params)
	if err != nil {
		return fmt.Errorf("client: encode %s params for %s: %w", method, c.proto.Name, err)
	}
	return c.write(ctx, c.op, frame)
}

func closedError(e *CloseError) error {
	if errors.Is(e, ErrClosed) {
		return e
	}
	return fmt.Errorf("%w: %w", ErrClosed, e)
}

func (c *Client) forget(id int64) {
	c.mu.Lock()
	delete(c.pending, id)
	c.mu.Unlock()
}

// Close sends a close frame with code 1000, waits briefly (at most a
// second) for the server to answer it, and closes the connection. Pending
// calls fail, and Done is closed when Close returns. Close is idempotent:
// every call returns once Done is closed; only the first returns an error,
// when the close frame could not be written.
//
// Close behaves the same wherever it is called from, OnPush included (on a
// gateway.notice, say): it never waits for OnPush, and once it has been
// called OnPush is not called again. An OnPush call already under way may
// outlast it.
func (c *Client) Close() error {
	if !c.closing.CompareAndSwap(false, true) {
		<-c.done
		return nil
	}
	close(c.quit) // the read goroutine stops waiting for OnPush
	ctx, cancel := context.WithTimeout(context.Background(), closeWait)
	defer cancel()
	err := c.writeClose(ctx, ws.StatusNormalClosure, "")
	if err == nil {
		select {
		case <-c.done:
		case <-ctx.Done():
		}
	} else if c.Err() != nil {
		err = nil // the connection was over already
	}
	c.conn.Close()
	<-c.done
	return err
}

var errCloseSent = errors.New("client: close frame already sent")

// acquire takes the write semaphore, or gives up when ctx ends or the
// connection is over.
func (c *Client) acquire(ctx context.Context) error {
	select {
	case c.wsem <- struct{}{}:
		return nil
	default:
	}
	select {
	case c.wsem <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-c.done:
		return closedError(c.Err().(*CloseError))
	}
}

func (c *Client) release() { <-c.wsem }

// write sends one data frame. If ctx ends while the frame is being written,
// the connection is failed: a half-written frame cannot be taken back.
func (c *Client) write(ctx context.Context, op ws.OpCode, p []byte) error {
	if err := c.acquire(ctx); err != nil {
		return err
	}
	defer c.release()
	if c.closeSent {
		return closedError(&CloseError{Code: int(ws.StatusNormalClosure), Reason: "closed by client", Err: ErrClosed})
	}
	if err := ctx.Err(); err != nil {
		return err // nothing written: the connection is intact
	}
	if err := c.flushFrame(ctx, op, p); err != nil {
		c.fail(&CloseError{Code: int(ws.StatusAbnormalClosure), Reason: "write: " + err.Error(), Err: err})
		if ctxErr := ctx.Err(); ctxErr != nil {
			return ctxErr
		}
		c.mu.Lock()
		ended := c.err
		c.mu.Unlock()
		if ended != nil {
			return closedError(ended)
		}
		return fmt.Errorf("client: write: %w", err)
	}
	return nil
}

// flushFrame writes a frame and flushes it, with ctx interrupting the write
// through the connection's write deadline. The caller holds wsem.
func (c *Client) flushFrame(ctx context.Context, op ws.OpCode, p []byte) error {
	if ctx.Done() != nil {
		fired := make(chan struct{})
		stop := context.AfterFunc(ctx, func() {
			c.conn.SetWriteDeadline(time.Unix(1, 0))
			close(fired)
		})
		defer func() {
			if !stop() {
				<-fired
				c.conn.SetWriteDeadline(time.Time{})
			}
		}()
	}
	if err := wsutil.WriteClientMessage(c.bw, op, p); err != nil {
		return err
	}
	return c.bw.Flush()
}

// writeClose sends a close frame unless one was sent already.
func (c *Client) writeClose(ctx context.Context, code ws.StatusCode, reason string) error {
	if err := c.acquire(ctx); err != nil {
		return err
	}
	defer c.release()
	if c.closeSent {
		return errCloseSent
	}
	c.closeSent = true
	var body []byte
	if code != ws.StatusNoStatusRcvd {
		body = ws.NewCloseFrameBody(code, reason)
	}
	return c.flushFrame(ctx, ws.OpClose, body)
}

// fail records why the client gives up on the connection and closes it; the
// read goroutine then finishes with that reason.
func (c *Client) fail(e *CloseError) {
	c.mu.Lock()
	if c.cause == nil {
		c.cause = e
	}
	c.mu.Unlock()
	c.conn.Close()
}

// failProtocol closes the connection with a close frame of code because the
// server broke the protocol.
func (c *Client) failProtocol(code ws.StatusCode, reason string, err error) *CloseError {
	e := &CloseError{Code: int(code), Reason: reason, Err: err}
	ctx, cancel := context.WithTimeout(context.Background(), closeWait)
	c.writeClose(ctx, code, reason)
	cancel()
	return e
}

// finish ends the connection: it fails the pending calls with the close
// error and closes Pushes and Done. Only the read goroutine calls it.
func (c *Client) finish(e *CloseError) {
	c.conn.Close()
	c.mu.Lock()
	if c.cause != nil {
		e = c.cause
	}
	if c.closing.Load() {
		reason := "closed by client"
		if e.Err == nil && e.Reason != "" {
			reason = e.Reason
		}
		e = &CloseError{Code: int(ws.StatusNormalClosure), Reason: reason, Err: ErrClosed}
	}
	c.err = e
	pending := c.pending
	c.pending = nil
	c.mu.Unlock()
	for _, ch := range pending {
		ch <- reply{err: e}
	}
	close(c.pushes)
	if c.handoff != nil {
		close(c.handoff)
	}
	close(c.done)
}

// readLoop is the client's one reader: it answers control frames, decodes
// data frames with the codec and routes replies and pushes.
func (c *Client) readLoop(src io.Reader, maxSize int64) {
	rd := &wsutil.Reader{
		Source:         src,
		State:          ws.StateClientSide,
		CheckUTF8:      !c.proto.Binary,
		MaxMessageSize: maxSize,
	}
	rd.OnIntermediate = c.control
	var (
		frame []byte
		msgs  []codec.Message
	)
	for {
		hdr, err := rd.NextFrame()
		if err != nil {
			c.finish(c.readError(err))
			return
		}
		if hdr.OpCode.IsControl() {
			if err := c.control(hdr, rd); err != nil {
				c.finish(c.readError(err))
				return
			}
			continue
		}
		if hdr.OpCode != c.op {
			c.finish(c.failProtocol(ws.StatusUnsupportedData,
				fmt.Sprintf("%s frame on a %s connection", opName(hdr.OpCode), c.proto.Name), nil))
			return
		}
		frame, err = readAll(frame[:0], rd)
		if err != nil {
			c.finish(c.readError(err))
			return
		}
		var derr error
		msgs, _, derr = c.proto.Codec.Decode(msgs[:0], frame)
		if derr != nil {
			c.finish(c.failProtocol(ws.StatusProtocolError, "undecodable message from server", derr))
			return
		}
		for i := range msgs {
			c.dispatch(&msgs[i])
		}
		clear(msgs)
		if cap(frame) > 64<<10 {
			frame = nil // do not keep a large buffer for the life of the connection
		}
	}
}

func opName(op ws.OpCode) string {
	switch op {
	case ws.OpText:
		return "text"
	case ws.OpBinary:
		return "binary"
	}
	return "opcode " + strconv.Itoa(int(op))
}

// readError turns an error of the read side into the connection's close
// error, telling the server about protocol violations.
func (c *Client) readError(err error) *CloseError {
	var ce *CloseError
	var pe ws.ProtocolError
	switch {
	case errors.As(err, &ce):
		return ce
	case errors.Is(err, wsutil.ErrInvalidUTF8):
		return c.failProtocol(ws.StatusInvalidFramePayloadData, "invalid UTF-8 in a text message", err)
	case errors.Is(err, wsutil.ErrMessageTooLarge), errors.Is(err, wsutil.ErrFrameTooLarge):
		return c.failProtocol(ws.StatusMessageTooBig, "message too big", err)
	case errors.As(err, &pe), errors.Is(err, ws.ErrHeaderLengthMSB), errors.Is(err, ws.ErrHeaderLengthUnexpected):
		return c.failProtocol(ws.StatusProtocolError, err.Error(), err)
	}
	reason := err.Error()
	if errors.Is(err, io.EOF) {
		reason = "connection closed without a close frame"
	}
	return &CloseError{Code: int(ws.StatusAbnormalClosure), Reason: reason, Err: err}
}

// control handles a control frame: pings are answered, pongs ignored, and a
// close frame is answered (unless the client sent one first) and ends the
// connection with a *CloseError.
func (c *Client) control(hdr ws.Header, r io.Reader) error {
	var buf [125]byte // control frames carry at most 125 bytes (checked by the reader)
	p := buf[:hdr.Length]
	if _, err := io.ReadFull(r, p); err != nil {
		return err
	}
	wait := closeWait
	if hdr.OpCode == ws.OpPing {
		wait = pongWait
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	switch hdr.OpCode {
	case ws.OpPing:
		if err := c.acquire(ctx); err != nil {
			return nil // a blocked writer will fail the connection anyway
		}
		defer c.release()
		if c.closeSent {
			return nil
		}
		if err := c.flushFrame(ctx, ws.OpPong, p); err != nil {
			return err
		}
	case ws.OpClose:
		code, reason := ws.StatusNoStatusRcvd, ""
		if len(p) > 0 {
			code, reason = ws.ParseCloseFrameData(p)
			if err := ws.CheckCloseFrameData(code, reason); err != nil {
				return c.failProtocol(ws.StatusProtocolError, "invalid close frame: "+err.Error(), err)
			}
		}
		// Echo the code (an empty close frame answers an empty one). After
		// the client's own close frame nothing more is sent.
		c.writeClose(ctx, code, "")
		return &CloseError{Code: int(code), Reason: reason}
	}
	return nil
}

// dispatch routes one decoded message. It copies what outlives the frame.
// Nothing it receives is ever answered: the server's replies, valid or
// not, are matched to calls or dropped, so no error can bounce between
// client and server.
func (c *Client) dispatch(m *codec.Message) {
	switch m.Kind {
	case codec.KindResult, codec.KindError, codec.KindInvalidReply:
		if m.ID.Kind != codec.IDNumber {
			if m.Kind == codec.KindError && m.ID.Kind == codec.IDNull && c.onNull != nil {
				c.nullIDError(*m.Error)
			}
			return // a null-id error cannot be matched to a call
		}
		c.mu.Lock()
		ch := c.pending[m.ID.Num]
		delete(c.pending, m.ID.Num)
		c.mu.Unlock()
		if ch == nil {
			return // a call that gave up, or an id never sent
		}
		switch m.Kind {
		case codec.KindResult:
			ch <- reply{body: bytes.Clone(m.Body)}
		case codec.KindError:
			ch <- reply{err: new(*m.Error)}
		default:
			ch <- reply{err: fmt.Errorf("client: malformed reply from the server: %w", new(*m.Error))}
		}
	case codec.KindNotification:
		c.push(Push{Method: m.Method, Body: bytes.Clone(m.Body), codec: c.proto.Codec})
	}
	// Requests (the server sends none) and invalid batch elements are
	// ignored.
}

// nullIDError hands a null-id error to OnNullIDError on a goroutine of its
// own, so that it may call Close (which waits for the read goroutine); at
// most one runs at a time, so a server cannot make the client start
// goroutines without bound.
func (c *Client) nullIDError(e codec.Error) {
	if !c.inOnNull.CompareAndSwap(false, true) {
		return
	}
	go func() {
		defer c.inOnNull.Store(false)
		c.onNull(&e)
	}()
}

// push delivers a push to OnPush or to the channel, dropping the oldest
// queued push when the channel is full. Only the read goroutine sends on the
// channel, so the loop ends.
func (c *Client) push(p Push) {
	if c.onPush != nil {
		c.handOver(p)
		return
	}
	for {
		select {
		case c.pushes <- p:
			return
		default:
		}
		select {
		case <-c.pushes:
			c.dropped.Add(1)
		default:
		}
	}
}

// handOver gives p to the dispatch goroutine and waits for OnPush to return,
// which keeps pushes ordered with the replies read after them and pushes
// back on the server like a slow reader. Close ends the wait (OnPush may be
// the one calling it) and makes handOver drop the pushes that follow.
func (c *Client) handOver(p Push) {
	select {
	case <-c.quit:
		return
	default:
	}
	select {
	case c.handoff <- p:
	case <-c.quit:
		return
	}
	select {
	case <-c.returned:
	case <-c.quit:
	}
}

// dispatchLoop runs OnPush for each push handed over, until the read
// goroutine finishes. A push handed over as Close is called is dropped:
// checking closing here is what stops OnPush from being called after Close.
func (c *Client) dispatchLoop() {
	for p := range c.handoff {
		if !c.closing.Load() {
			c.onPush(p)
		}
		select {
		case c.returned <- struct{}{}:
		case <-c.quit:
		}
	}
}

// readAll appends the rest of the current message to dst.
func readAll(dst []byte, r io.Reader) ([]byte, error) {
	for {
		if len(dst) == cap(dst) {
			dst = append(dst, 0)[:len(dst)]
		}
		n, err := r.Read(dst[len(dst):cap(dst)])
		dst = dst[:len(dst)+n]
		if err == io.EOF {
			return dst, nil
		}
		if err != nil {
			return dst, err
		}
	}
}
