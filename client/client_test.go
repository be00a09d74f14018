package client

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"

	"github.com/subgate/subgate/codec"
	"github.com/subgate/subgate/protocols"
	"github.com/subgate/subgate/protocols/chat"
)

// fakeServer is a tiny WebSocket server speaking one subprotocol; each test
// scripts the server side of its connection through a serverConn.
type fakeServer struct {
	ln    net.Listener
	proto protocols.Protocol
	conns chan *serverConn
}

func newFakeServer(t *testing.T, proto protocols.Protocol) *fakeServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &fakeServer{ln: ln, proto: proto, conns: make(chan *serverConn, 4)}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			u := ws.Upgrader{Protocol: func(p []byte) bool { return string(p) == proto.Name }}
			if _, err := u.Upgrade(conn); err != nil {
				conn.Close()
				continue
			}
			s.conns <- &serverConn{t: t, conn: conn, proto: proto}
		}
	}()
	return s
}

func (s *fakeServer) url(id string) string { return "ws://" + s.ln.Addr().String() + "/ws/" + id }

// dial connects a client and returns both ends.
func (s *fakeServer) dial(t *testing.T, opts Options) (*Client, *serverConn) {
	t.Helper()
	opts.Protocol = s.proto.Name
	c, err := Dial(testContext(t), s.url("tester"), opts)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	sc := <-s.conns
	t.Cleanup(func() { sc.conn.Close() })
	return c, sc
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// serverConn is the server end of one connection.
type serverConn struct {
	t     *testing.T
	conn  net.Conn
	proto protocols.Protocol
}

func (s *serverConn) op() ws.OpCode {
	if s.proto.Binary {
		return ws.OpBinary
	}
	return ws.OpText
}

// read reads the next client message (answering control frames).
func (s *serverConn) read() codec.Message {
	s.t.Helper()
	frame, op, err := wsutil.ReadClientData(s.conn)
	if err != nil {
		s.t.Fatalf("server read: %v", err)
	}
	if op != s.op() {
		s.t.Fatalf("server got a %v frame on %s", op, s.proto.Name)
	}
	msgs, _, err := s.proto.Codec.Decode(nil, frame)
	if err != nil || len(msgs) != 1 {
		s.t.Fatalf("server decode: %v (%d messages)", err, len(msgs))
	}
	return msgs[0] // aliases frame, which is not reused
}

func (s *serverConn) params(m codec.Message, v any) {
	s.t.Helper()
	if err := s.proto.Codec.Unmarshal(m.Body, v); err != nil {
		s.t.Fatalf("server: params of %s: %v", m.Method, err)
	}
}

func (s *serverConn) write(frame []byte, err error) {
	s.t.Helper()
	if err != nil {
		s.t.Fatalf("server encode: %v", err)
	}
	if err := wsutil.WriteServerMessage(s.conn, s.op(), frame); err != nil {
		s.t.Fatalf("server write: %v", err)
	}
}

func (s *serverConn) result(id codec.ID, v any) {
	s.t.Helper()
	s.write(codec.AppendResult(s.proto.Codec, nil, id, v))
}

func (s *serverConn) error(id codec.ID, e *codec.Error) {
	s.t.Helper()
	s.write(codec.AppendError(s.proto.Codec, nil, id, e))
}

func (s *serverConn) push(method string, v any) {
	s.t.Helper()
	s.write(codec.AppendNotification(s.proto.Codec, nil, method, v))
}

func (s *serverConn) close(code ws.StatusCode, reason string) {
	s.t.Helper()
	f := ws.NewCloseFrame(ws.NewCloseFrameBody(code, reason))
	if err := ws.WriteFrame(s.conn, f); err != nil {
		s.t.Fatalf("server close: %v", err)
	}
}

// readClose reads raw frames until a close frame and returns its code.
func (s *serverConn) readClose() (ws.StatusCode, string) {
	s.t.Helper()
	for {
		f, err := ws.ReadFrame(s.conn)
		if err != nil {
			s.t.Fatalf("server read close: %v", err)
		}
		if f.Header.OpCode != ws.OpClose {
			continue
		}
		f = ws.UnmaskFrameInPlace(f)
		return ws.ParseCloseFrameData(f.Payload)
	}
}

// forEach runs a test for each subprotocol.
func forEach(t *testing.T, f func(t *testing.T, s *fakeServer)) {
	for _, p := range protocols.All {
		t.Run(p.Name, func(t *testing.T) {
			t.Parallel()
			f(t, newFakeServer(t, p))
		})
	}
}

// goCall runs Call in a goroutine; the error arrives on the channel.
func goCall(c *Client, ctx context.Context, method string, params, result any) <-chan error {
	ch := make(chan error, 1)
	go func() { ch <- c.Call(ctx, method, params, result) }()
	return ch
}

func TestCallResult(t *testing.T) {
	forEach(t, func(t *testing.T, s *fakeServer) {
		c, sc := s.dial(t, Options{})
		if c.Protocol() != s.proto.Name {
			t.Errorf("Protocol() = %q, want %q", c.Protocol(), s.proto.Name)
		}
		var res chat.SendResult
		done := goCall(c, testContext(t), chat.MethodSend, &chat.SendParams{Room: "lobby", Message: "hi all"}, &res)

		m := sc.read()
		if m.Kind != codec.KindRequest || m.Method != chat.MethodSend || m.ID.Kind != codec.IDNumber || m.ID.Num != 1 {
			t.Fatalf("server got %v %q id %v, want request chat.send id 1", m.Kind, m.Method, m.ID)
		}
		var p chat.SendParams
		sc.params(m, &p)
		if p != (chat.SendParams{Room: "lobby", Message: "hi all"}) {
			t.Errorf("params = %+v", p)
		}
		sc.result(m.ID, &chat.SendResult{Room: "lobby", Offset: 42, Epoch: "e1"})
		if err := <-done; err != nil {
			t.Fatalf("Call: %v", err)
		}
		if res != (chat.SendResult{Room: "lobby", Offset: 42, Epoch: "e1"}) {
			t.Errorf("result = %+v", res)
		}

		// A nil result discards it; ids go on counting.
		done = goCall(c, testContext(t), chat.MethodPing, &chat.PingParams{}, nil)
		m = sc.read()
		if m.ID.Num != 2 {
			t.Errorf("second call has id %v, want 2", m.ID)
		}
		sc.result(m.ID, &chat.PingResult{Status: "ok", Timestamp: 1764000000})
		if err := <-done; err != nil {
			t.Fatalf("Call with nil result: %v", err)
		}
	})
}

func TestErrorReply(t *testing.T) {
	forEach(t, func(t *testing.T, s *fakeServer) {
		c, sc := s.dial(t, Options{})
		done := goCall(c, testContext(t), chat.MethodSend, &chat.SendParams{Room: "lobby", Message: "x"}, &chat.SendResult{})
		m := sc.read()
		sc.error(m.ID, chat.NewError(chat.CodeNotMember, "lobby"))
		err := <-done
		var rpcErr *codec.Error
		if !errors.As(err, &rpcErr) {
			t.Fatalf("Call error %v (%T), want a *codec.Error", err, err)
		}
		want := codec.Error{Code: chat.CodeNotMember, Message: "Not a member of the room", Data: "lobby"}
		if *rpcErr != want {
			t.Errorf("error = %+v, want %+v", *rpcErr, want)
		}
	})
}

func TestPushChannel(t *testing.T) {
	forEach(t, func(t *testing.T, s *fakeServer) {
		c, sc := s.dial(t, Options{})
		done := goCall(c, testContext(t), chat.MethodSend, &chat.SendParams{Room: "lobby", Message: "hi all"}, nil)
		m := sc.read()
		msg := &chat.Message{Room: "lobby", From: "alice", Message: "hi all", Offset: 42, Epoch: "e1", TS: 1764000000123}
		sc.push(chat.PushMessage, msg) // before the reply, as the server may do
		sc.push(chat.PushPresence, &chat.Presence{Room: "lobby", ClientID: "bob", Event: chat.EventJoin})
		sc.result(m.ID, &chat.SendResult{Room: "lobby", Offset: 42, Epoch: "e1"})
		if err := <-done; err != nil {
			t.Fatal(err)
		}

		p := <-c.Pushes()
		if p.Method != chat.PushMessage {
			t.Fatalf("first push is %q", p.Method)
		}
		v, err := p.Value()
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(v, msg) {
			t.Errorf("Value() = %#v, want %#v", v, msg)
		}
		js, err := PushJSON(p)
		if err != nil {
			t.Fatal(err)
		}
		const wantJSON = `{"method":"chat.message","params":{"room":"lobby","from":"alice","message":"hi all","offset":42,"epoch":"e1","ts":1764000000123}}`
		if string(js) != wantJSON {
			t.Errorf("PushJSON = %s\nwant       %s", js, wantJSON)
		}

		p = <-c.Pushes()
		var pres chat.Presence
		if err := p.Decode(&pres); err != nil || pres.ClientID != "bob" || pres.Event != chat.EventJoin {
			t.Errorf("presence push: %+v, %v", pres, err)
		}
		if c.Dropped() != 0 {
			t.Errorf("Dropped() = %d", c.Dropped())
		}
	})
}

func TestOnPush(t *testing.T) {
	forEach(t, func(t *testing.T, s *fakeServer) {
		var (
			mu  sync.Mutex
			got []string
		)
		c, sc := s.dial(t, Options{OnPush: func(p Push) {
			var n chat.Notice
			if err := p.Decode(&n); err != nil {
				t.Errorf("decode notice: %v", err)
			}
			mu.Lock()
			got = append(got, p.Method+":"+n.Kind)
			mu.Unlock()
		}})
		done := goCall(c, testContext(t), chat.MethodPing, &chat.PingParams{}, nil)
		m := sc.read()
		sc.push(chat.PushNotice, &chat.Notice{Kind: chat.NoticeLagging, Message: "slow down"})
		sc.push(chat.PushNotice, &chat.Notice{Kind: chat.NoticeDraining, Message: "bye"})
		sc.result(m.ID, &chat.PingResult{Status: "ok"})
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		// The read goroutine waited for OnPush to return on both pushes
		// before it read the reply.
		mu.Lock()
		want := []string{"gateway.notice:lagging", "gateway.notice:draining"}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("OnPush got %v, want %v", got, want)
		}
		mu.Unlock()

		sc.close(ws.StatusGoingAway, "")
		<-c.Done()
		if _, ok := <-c.Pushes(); ok {
			t.Error("Pushes delivered a value although OnPush is set")
		}
	})
}

func TestPushBufferDropsOldest(t *testing.T) {
	forEach(t, func(t *testing.T, s *fakeServer) {
		c, sc := s.dial(t, Options{PushBuffer: 2})
		done := goCall(c, testContext(t), chat.MethodPing, &chat.PingParams{}, nil)
		m := sc.read()
		for i := range 5 {
			sc.push(chat.PushMessage, &chat.Message{From: "alice", Message: fmt.Sprint(i), TS: 1})
		}
		sc.result(m.ID, &chat.PingResult{Status: "ok"})
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if n := c.Dropped(); n != 3 {
			t.Errorf("Dropped() = %d, want 3", n)
		}
		for _, want := range []string{"3", "4"} {
			var msg chat.Message
			if err := (<-c.Pushes()).Decode(&msg); err != nil || msg.Message != want {
				t.Errorf("queued push %q (%v), want %q", msg.Message, err, want)
			}
		}
	})
}

func TestOutOfOrderReplies(t *testing.T) {
	forEach(t, func(t *testing.T, s *fakeServer) {
		c, sc := s.dial(t, Options{})
		const n = 5
		results := make([]chat.SendResult, n)
		dones := make([]<-chan error, n)
		for i := range n {
			dones[i] = goCall(c, testContext(t), chat.MethodSend, &chat.SendParams{Room: fmt.Sprint("room", i), Message: "m"}, &results[i])
		}
		reqs := make([]codec.Message, n)
		for i := range n {
			reqs[i] = sc.read()
		}
		// Answer in reverse arrival order, with a push in between; each
		// result names the room of its own request.
		for i := n - 1; i >= 0; i-- {
			var p chat.SendParams
			sc.params(reqs[i], &p)
			sc.result(reqs[i].ID, &chat.SendResult{Room: p.Room, Offset: uint64(reqs[i].ID.Num)})
			sc.push(chat.PushMessage, &chat.Message{From: "x", Message: "y"})
		}
		for i := range n {
			if err := <-dones[i]; err != nil {
				t.Fatalf("call %d: %v", i, err)
			}
			if want := fmt.Sprint("room", i); results[i].Room != want {
				t.Errorf("call %d got the result for %q", i, results[i].Room)
			}
		}
	})
}

func TestBatchReply(t *testing.T) {
	forEach(t, func(t *testing.T, s *fakeServer) {
		if _, err := s.proto.Codec.AppendBatch(nil, nil); errors.Is(err, codec.ErrNoBatch) {
			t.Skip("no batches in " + s.proto.Name)
		}
		c, sc := s.dial(t, Options{})
		var r1, r2 chat.SendResult
		d1 := goCall(c, testContext(t), chat.MethodSend, &chat.SendParams{Room: "a", Message: "m"}, &r1)
		m1 := sc.read()
		d2 := goCall(c, testContext(t), chat.MethodSend, &chat.SendParams{Room: "b", Message: "m"}, &r2)
		m2 := sc.read()
		e2, err := codec.AppendResult(s.proto.Codec, nil, m2.ID, &chat.SendResult{Room: "b", Offset: 2})
		if err != nil {
			t.Fatal(err)
		}
		e1, err := codec.AppendResult(s.proto.Codec, nil, m1.ID, &chat.SendResult{Room: "a", Offset: 1})
		if err != nil {
			t.Fatal(err)
		}
		sc.write(s.proto.Codec.AppendBatch(nil, [][]byte{e2, e1}))
		if err := <-d1; err != nil || r1.Room != "a" {
			t.Errorf("call 1: %+v, %v", r1, err)
		}
		if err := <-d2; err != nil || r2.Room != "b" {
			t.Errorf("call 2: %+v, %v", r2, err)
		}
	})
}

func TestContextCancel(t *testing.T) {
	forEach(t, func(t *testing.T, s *fakeServer) {
		c, sc := s.dial(t, Options{})
		ctx, cancel := context.WithCancel(testContext(t))
		done := goCall(c, ctx, chat.MethodPing, &chat.PingParams{}, &chat.PingResult{})
		stale := sc.read()
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled Call returned %v", err)
		}

		// The late reply to the forgotten call is dropped; the connection
		// goes on working.
		var res chat.PingResult
		done = goCall(c, testContext(t), chat.MethodPing, &chat.PingParams{}, &res)
		m := sc.read()
		sc.result(stale.ID, &chat.PingResult{Status: "stale"})
		sc.result(m.ID, &chat.PingResult{Status: "ok", Timestamp: 7})
		if err := <-done; err != nil || res.Status != "ok" || res.Timestamp != 7 {
			t.Fatalf("call after cancel: %+v, %v", res, err)
		}
		c.mu.Lock()
		n := len(c.pending)
		c.mu.Unlock()
		if n != 0 {
			t.Errorf("%d pending calls left", n)
		}

		// A context that is already over sends nothing.
		if err := c.Call(ctx, chat.MethodPing, nil, nil); !errors.Is(err, context.Canceled) {
			t.Errorf("Call with a cancelled context: %v", err)
		}
		if err := c.Notify(ctx, chat.MethodPing, nil); !errors.Is(err, context.Canceled) {
			t.Errorf("Notify with a cancelled context: %v", err)
		}
		done = goCall(c, testContext(t), chat.MethodPing, nil, nil)
		m = sc.read()
		if m.ID.Num != 4 { // 3 went to the call that was never sent
			t.Errorf("next call has id %v, want 4", m.ID)
		}
		sc.result(m.ID, &chat.PingResult{Status: "ok"})
		if err := <-done; err != nil {
			t.Fatalf("call after a cancelled one: %v", err)
		}
	})
}

func TestServerClose(t *testing.T) {
	forEach(t, func(t *testing.T, s *fakeServer) {
		c, sc := s.dial(t, Options{})
		done := goCall(c, testContext(t), chat.MethodPing, &chat.PingParams{}, nil)
		sc.read()
		sc.close(ws.StatusGoingAway, "server shutting down")

		err := <-done
		var ce *CloseError
		if !errors.As(err, &ce) || ce.Code != 1001 || ce.Reason != "server shutting down" {
			t.Fatalf("pending Call failed with %v, want a *CloseError 1001", err)
		}
		if !strings.Contains(err.Error(), "1001") || !strings.Contains(err.Error(), "server shutting down") {
			t.Errorf("error text %q lacks the code or reason", err)
		}
		// The client echoes the close code.
		if code, _ := sc.readClose(); code != ws.StatusGoingAway {
			t.Errorf("client answered close with %d", code)
		}
		<-c.Done()
		if !errors.As(c.Err(), &ce) || ce.Code != 1001 {
			t.Errorf("Err() = %v", c.Err())
		}
		if _, ok := <-c.Pushes(); ok {
			t.Error("Pushes not closed")
		}
		err = c.Call(testContext(t), chat.MethodPing, nil, nil)
		if !errors.Is(err, ErrClosed) || !errors.As(err, &ce) || ce.Code != 1001 {
			t.Errorf("Call after close: %v", err)
		}
		if err := c.Notify(testContext(t), chat.MethodPing, nil); !errors.Is(err, ErrClosed) {
			t.Errorf("Notify after close: %v", err)
		}
	})
}

func TestAbnormalClosure(t *testing.T) {
	forEach(t, func(t *testing.T, s *fakeServer) {
		c, sc := s.dial(t, Options{})
		done := goCall(c, testContext(t), chat.MethodPing, &chat.PingParams{}, nil)
		sc.read()
		sc.conn.Close()
		var ce *CloseError
		if err := <-done; !errors.As(err, &ce) || ce.Code != 1006 {
			t.Fatalf("Call failed with %v, want a *CloseError 1006", err)
		}
	})
}

func TestClientClose(t *testing.T) {
	forEach(t, func(t *testing.T, s *fakeServer) {
		c, sc := s.dial(t, Options{})
		closed := make(chan error, 1)
		go func() { closed <- c.Close() }()
		// ReadClientData answers the close frame and reports its code.
		_, _, err := wsutil.ReadClientData(sc.conn)
		var wce wsutil.ClosedError
		if !errors.As(err, &wce) || wce.Code != ws.StatusNormalClosure {
			t.Fatalf("server read %v, want close 1000", err)
		}
		if err := <-closed; err != nil {
			t.Errorf("Close: %v", err)
		}
		select {
		case <-c.Done():
		default:
			t.Error("Done not closed after Close returned")
		}
		err = c.Call(testContext(t), chat.MethodPing, nil, nil)
		var ce *CloseError
		if !errors.Is(err, ErrClosed) || !errors.As(err, &ce) || ce.Code != 1000 {
			t.Errorf("Call after Close: %v", err)
		}
		if err := c.Close(); err != nil {
			t.Errorf("second Close: %v", err)
		}
	})
}

func TestPingAndFragments(t *testing.T) {
	forEach(t, func(t *testing.T, s *fakeServer) {
		c, sc := s.dial(t, Options{})
		// A ping between messages is answered with the same payload.
		if err := ws.WriteFrame(sc.conn, ws.NewPingFrame([]byte("abc"))); err != nil {
			t.Fatal(err)
		}
		f, err := ws.ReadFrame(sc.conn)
		if err != nil {
			t.Fatal(err)
		}
		masked := f.Header.Masked
		f = ws.UnmaskFrameInPlace(f)
		if f.Header.OpCode != ws.OpPong || string(f.Payload) != "abc" || !masked {
			t.Fatalf("got %v %q (masked %v), want a masked pong abc", f.Header.OpCode, f.Payload, masked)
		}

		// A reply in three fragments with a ping among them.
		var res chat.JoinResult
		done := goCall(c, testContext(t), chat.MethodJoin, &chat.JoinParams{Room: "lobby"}, &res)
		m := sc.read()
		want := chat.JoinResult{Room: "lobby", Members: []string{"alice", "bob"}, Offset: 41}
		frame, err := codec.AppendResult(s.proto.Codec, nil, m.ID, &want)
		if err != nil {
			t.Fatal(err)
		}
		a, b := len(frame)/3, 2*len(frame)/3
		frames := []ws.Frame{
			ws.NewFrame(sc.op(), false, frame[:a]),
			ws.NewPingFrame([]byte("mid")),
			ws.NewFrame(ws.OpContinuation, false, frame[a:b]),
			ws.NewFrame(ws.OpContinuation, true, frame[b:]),
		}
		for _, f := range frames {
			if err := ws.WriteFrame(sc.conn, f); err != nil {
				t.Fatal(err)
			}
		}
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(res, want) {
			t.Errorf("result %+v, want %+v", res, want)
		}
		f, err = ws.ReadFrame(sc.conn)
		if err != nil {
			t.Fatal(err)
		}
		if f = ws.UnmaskFrameInPlace(f); f.Header.OpCode != ws.OpPong || string(f.Payload) != "mid" {
			t.Errorf("got %v %q, want pong mid", f.Header.OpCode, f.Payload)
		}
	})
}

// slowPongConn holds each pong for delay before writing it, as a client
// in a starved process is late to write it.
type slowPongConn struct {
	net.Conn
	delay time.Duration
}

func (c slowPongConn) Write(p []byte) (int, error) {
	if len(p) > 0 && p[0] == 0x80|byte(ws.OpPong) {
		<-time.After(c.delay) // the late writer under test, not synchronisation
	}
	return c.Conn.Write(p)
}

// TestSlowPongKeepsConnection: a pong written 1.5 s after its ping (more
// than closeWait) is still written, and the connection still serves calls.
func TestSlowPongKeepsConnection(t *testing.T) {
	forEach(t, func(t *testing.T, s *fakeServer) {
		dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
			nc, err := (&net.Dialer{}).DialContext(ctx, network, addr)
			return slowPongConn{nc, 1500 * time.Millisecond}, err
		}
		c, sc := s.dial(t, Options{NetDial: dial})
		if err := ws.WriteFrame(sc.conn, ws.NewPingFrame([]byte("abc"))); err != nil {
			t.Fatal(err)
		}
		f, err := ws.ReadFrame(sc.conn)
		if err != nil {
			t.Fatal(err)
		}
		if f = ws.UnmaskFrameInPlace(f); f.Header.OpCode != ws.OpPong || string(f.Payload) != "abc" {
			t.Fatalf("got %v %q, want pong abc", f.Header.OpCode, f.Payload)
		}
		done := goCall(c, testContext(t), chat.MethodPing, &chat.PingParams{}, nil)
		sc.result(sc.read().ID, &chat.PingResult{Status: "ok"})
		if err := <-done; err != nil || c.Err() != nil {
			t.Fatalf("call after the slow pong: %v (connection: %v)", err, c.Err())
		}
	})
}

func TestWrongFrameType(t *testing.T) {
	forEach(t, func(t *testing.T, s *fakeServer) {
		c, sc := s.dial(t, Options{})
		done := goCall(c, testContext(t), chat.MethodPing, &chat.PingParams{}, nil)
		m := sc.read()
		frame, err := codec.AppendResult(s.proto.Codec, nil, m.ID, &chat.PingResult{Status: "ok"})
		if err != nil {
			t.Fatal(err)
		}
		wrong := ws.OpBinary
		if s.proto.Binary {
			wrong = ws.OpText
		}
		if err := wsutil.WriteServerMessage(sc.conn, wrong, frame); err != nil {
			t.Fatal(err)
		}
		var ce *CloseError
		if err := <-done; !errors.As(err, &ce) || ce.Code != 1003 {
			t.Fatalf("Call failed with %v, want a *CloseError 1003", err)
		}
		if code, _ := sc.readClose(); code != ws.StatusUnsupportedData {
			t.Errorf("client closed with %d, want 1003", code)
		}
	})
}

func TestNotify(t *testing.T) {
	forEach(t, func(t *testing.T, s *fakeServer) {
		c, sc := s.dial(t, Options{})
		if err := c.Notify(testContext(t), chat.MethodBroadcast, &chat.BroadcastParams{Message: "fire and forget"}); err != nil {
			t.Fatal(err)
		}
		m := sc.read()
		var p chat.BroadcastParams
		sc.params(m, &p)
		if m.Kind != codec.KindNotification || m.Method != chat.MethodBroadcast || p.Message != "fire and forget" {
			t.Errorf("server got %v %q %+v", m.Kind, m.Method, p)
		}
	})
}

func TestCallJSON(t *testing.T) {
	forEach(t, func(t *testing.T, s *fakeServer) {
		c, sc := s.dial(t, Options{})
		type out struct {
			js  json.RawMessage
			err error
		}
		callJSON := func(method, params string) <-chan out {
			ch := make(chan out, 1)
			go func() {
				js, err := c.CallJSON(testContext(t), method, []byte(params))
				ch <- out{js, err}
			}()
			return ch
		}

		// A chat method: typed both ways.
		done := callJSON(chat.MethodHistory, `{"room":"lobby","since":40}`)
		m := sc.read()
		var p chat.HistoryParams
		sc.params(m, &p)
		if p != (chat.HistoryParams{Room: "lobby", Since: 40}) {
			t.Errorf("server got params %+v", p)
		}
		sc.result(m.ID, &chat.HistoryResult{Room: "lobby", Messages: []chat.HistoryEntry{{Offset: 41, From: "a<b>", Message: "m", TS: 5}}, Epoch: "e1", Recovered: true})
		r := <-done
		const want = `{"room":"lobby","messages":[{"offset":41,"from":"a<b>","message":"m","ts":5}],"epoch":"e1","recovered":true}`
		if r.err != nil || string(r.js) != want {
			t.Errorf("CallJSON = %s, %v; want %s", r.js, r.err, want)
		}

		// By position, and without params.
		done = callJSON(chat.MethodSend, `["lobby","hi"]`)
		m = sc.read()
		var sp chat.SendParams
		sc.params(m, &sp)
		if sp != (chat.SendParams{Room: "lobby", Message: "hi"}) {
			t.Errorf("positional params gave %+v", sp)
		}
		sc.result(m.ID, &chat.SendResult{Room: "lobby", Offset: 1})
		if r := <-done; r.err != nil {
			t.Error(r.err)
		}
		done = callJSON(chat.MethodPing, "")
		m = sc.read()
		sc.result(m.ID, &chat.PingResult{Status: "ok", Timestamp: 9})
		if r := <-done; r.err != nil || string(r.js) != `{"status":"ok","timestamp":9}` {
			t.Errorf("ping: %s, %v", r.js, r.err)
		}

		// Bad params never reach the server.
		for _, bad := range []string{`{"ROOM":"x"}`, `{"room":1}`, `{"room":`, `{"room":"x","extra":1}`} {
			if _, err := c.CallJSON(testContext(t), chat.MethodJoin, []byte(bad)); err == nil {
				t.Errorf("params %s accepted", bad)
			} else if errors.As(err, new(*codec.Error)) {
				t.Errorf("local params error %v looks like a server error", err)
			}
		}

		// An unknown method, and the server's answer to it.
		params := `{"a":1,"b":["x",2.5]}`
		if s.proto.Name == protocols.BinaryRaw {
			if _, err := c.CallJSON(testContext(t), "chat.nope", []byte(params)); err == nil || !strings.Contains(err.Error(), "cannot encode params") {
				t.Errorf("binary-raw unknown method with params: %v", err)
			}
			params = ""
		}
		done = callJSON("chat.nope", params)
		m = sc.read()
		if m.Method != "chat.nope" {
			t.Errorf("server got method %q", m.Method)
		}
		switch s.proto.Name {
		case protocols.JSONRPC:
			if string(m.Body) != params {
				t.Errorf("server got params %s, want %s", m.Body, params)
			}
		case protocols.MsgPack:
			var got map[string]any
			sc.params(m, &got)
			js, _ := json.Marshal(got)
			if string(js) != params {
				t.Errorf("server got params %s, want %s", js, params)
			}
		}
		sc.error(m.ID, &codec.Error{Code: codec.CodeMethodNotFound, Message: "Method not found", Data: "chat.nope"})
		var rpcErr *codec.Error
		if r := <-done; !errors.As(r.err, &rpcErr) || rpcErr.Code != codec.CodeMethodNotFound {
			t.Errorf("unknown method: %s, %v", r.js, r.err)
		}
	})
}

func TestDialRefused(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	const body = "unsupported subprotocol; supported: json-rpc, msgpack, binary-raw"
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		req, err := http.ReadRequest(bufio.NewReader(conn))
		if err != nil {
			return
		}
		if got := req.Header.Get("Sec-WebSocket-Protocol"); got != "binary-raw" {
			fmt.Fprintf(conn, "HTTP/1.1 500 Internal Server Error\r\nContent-Length: %d\r\n\r\n%s", len(got), got)
			return
		}
		if got := req.Header.Get("X-Token"); got != "secret" {
			fmt.Fprintf(conn, "HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n")
			return
		}
		fmt.Fprintf(conn, "HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
		io.Copy(io.Discard, conn)
	}()
	url := "ws://" + ln.Addr().String() + "/ws/alice"
	_, err = Dial(testContext(t), url, Options{Protocol: "binary-raw", Header: http.Header{"X-Token": {"secret"}}})
	var he *HandshakeError
	if !errors.As(err, &he) || he.StatusCode != 400 || he.Body != body {
		t.Fatalf("Dial error %v, want a *HandshakeError 400 with the body", err)
	}
	for _, want := range []string{"400 Bad Request", body} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	var se ws.StatusError
	if !errors.As(err, &se) || se != 400 {
		t.Errorf("error does not wrap ws.StatusError(400)")
	}
}

func TestDialProtocolNotSelected(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		if _, err := (ws.Upgrader{}).Upgrade(conn); err != nil { // selects no protocol
			return
		}
		io.Copy(io.Discard, conn)
	}()
	_, err = Dial(testContext(t), "ws://"+ln.Addr().String()+"/ws/alice", Options{Protocol: "msgpack"})
	if err == nil || !strings.Contains(err.Error(), `did not select subprotocol "msgpack"`) {
		t.Fatalf("Dial: %v", err)
	}
}

func TestDialErrors(t *testing.T) {
	if _, err := Dial(testContext(t), "ws://127.0.0.1:1/ws/a", Options{Protocol: "xml-rpc"}); err == nil || !strings.Contains(err.Error(), "json-rpc, msgpack, binary-raw") {
		t.Errorf("unknown protocol: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	if _, err := Dial(testContext(t), "ws://"+addr+"/ws/a", Options{}); err == nil || !strings.Contains(err.Error(), addr) {
		t.Errorf("refused connection: %v", err)
	}
}

func TestPushJSONUnknown(t *testing.T) {
	for _, p := range protocols.All {
		frame, err := codec.AppendNotification(p.Codec, nil, "chat.future", map[string]any{"x": "y"})
		if p.Name == protocols.BinaryRaw {
			// binary-raw cannot encode untyped params; build the push by
			// hand: tag 09 (notification by name), the name, no payload.
			frame, err = append([]byte{0x09, byte(len("chat.future"))}, "chat.future"...), nil
		}
		if err != nil {
			t.Fatalf("%s: %v", p.Name, err)
		}
		msgs, _, err := p.Codec.Decode(nil, frame)
		if err != nil {
			t.Fatalf("%s: decode: %v", p.Name, err)
		}
		push := Push{Method: msgs[0].Method, Body: msgs[0].Body, codec: p.Codec}
		js, err := PushJSON(push)
		switch p.Name {
		case protocols.BinaryRaw:
			if err == nil {
				t.Errorf("binary-raw: unknown push printed as %s", js)
			}
		default:
			if err != nil || !strings.HasPrefix(string(js), `{"method":"chat.future","params":`) || !strings.Contains(string(js), `"x":"y"`) {
				t.Errorf("%s: PushJSON = %s, %v", p.Name, js, err)
			}
		}
	}
}

func TestWriteBlockedByServer(t *testing.T) {
	forEach(t, func(t *testing.T, s *fakeServer) {
		c, sc := s.dial(t, Options{})
		// The server reads nothing: a request larger than the (shrunk)
		// socket buffers blocks in write until the context ends. A frame cut
		// short cannot be repaired, so the connection is failed.
		if err := sc.conn.(*net.TCPConn).SetReadBuffer(4096); err != nil {
			t.Fatal(err)
		}
		if err := c.conn.(*net.TCPConn).SetWriteBuffer(4096); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(testContext(t), time.Second)
		defer cancel()
		big := &chat.BroadcastParams{Message: strings.Repeat("x", 2<<20)}
		if err := c.Call(ctx, chat.MethodBroadcast, big, nil); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Call returned %v, want context.DeadlineExceeded", err)
		}
		select {
		case <-c.Done():
		case <-testContext(t).Done():
			t.Fatal("the connection survived a write cut short")
		}
		var ce *CloseError
		if !errors.As(c.Err(), &ce) || ce.Code != 1006 || !strings.Contains(ce.Reason, "write") {
			t.Errorf("Err() = %v, want a 1006 write failure", c.Err())
		}
	})
}

// Close from OnPush behaves as anywhere else: it waits for the server's
// answer and returns with Done closed.
func TestCloseFromOnPush(t *testing.T) {
	forEach(t, func(t *testing.T, s *fakeServer) {
		var self atomic.Pointer[Client]
		closed := make(chan error, 1)
		c, sc := s.dial(t, Options{OnPush: func(p Push) {
			if p.Method == chat.PushNotice {
				err := self.Load().Close()
				select {
				case <-self.Load().Done():
				default:
					err = errors.New("returned before Done was closed")
				}
				closed <- err
			}
		}})
		self.Store(c)
		sc.push(chat.PushNotice, &chat.Notice{Kind: chat.NoticeDraining, Message: "bye"})
		// ReadClientData answers the close frame and reports its code.
		_, _, err := wsutil.ReadClientData(sc.conn)
		var wce wsutil.ClosedError
		if !errors.As(err, &wce) || wce.Code != ws.StatusNormalClosure {
			t.Errorf("server read %v, want close 1000", err)
		}
		if err := <-closed; err != nil {
			t.Errorf("Close from OnPush: %v", err)
		}
		var ce *CloseError
		if !errors.As(c.Err(), &ce) || ce.Code != 1000 || !errors.Is(c.Err(), ErrClosed) {
			t.Errorf("Err() = %v", c.Err())
		}
	})
}

// Close called from another goroutine while OnPush runs does not wait for
// OnPush: it returns with Done closed while OnPush is still blocked. OnPush
// is not called for a push read after Close, and it may call Close itself,
// which then returns nil at once.
func TestCloseWhileOnPushRuns(t *testing.T) {
	forEach(t, func(t *testing.T, s *fakeServer) {
		var (
			self  atomic.Pointer[Client]
			calls atomic.Int32
		)
		entered, release := make(chan struct{}), make(chan struct{})
		var freeOnce sync.Once
		free := func() { freeOnce.Do(func() { close(release) }) }
		defer free() // also when Close hangs and the test fails
		inner := make(chan error, 1)
		c, sc := s.dial(t, Options{OnPush: func(Push) {
			if calls.Add(1) > 1 {
				return
			}
			close(entered)
			<-release
			inner <- self.Load().Close()
		}})
		self.Store(c)
		sc.push(chat.PushNotice, &chat.Notice{Kind: chat.NoticeDraining, Message: "bye"})
		// The client reads this one only once OnPush has returned or Close
		// has been called: OnPush must not get it.
		sc.push(chat.PushNotice, &chat.Notice{Kind: chat.NoticeLagging, Message: "late"})
		<-entered

		type outcome struct {
			err  error
			done bool // Done was closed when Close returned
		}
		outer := make(chan outcome, 1)
		go func() {
			err := c.Close()
			select {
			case <-c.Done():
				outer <- outcome{err, true}
			default:
				outer <- outcome{err, false}
			}
		}()
		// ReadClientData answers the close frame and reports its code.
		_, _, err := wsutil.ReadClientData(sc.conn)
		var wce wsutil.ClosedError
		if !errors.As(err, &wce) || wce.Code != ws.StatusNormalClosure {
			t.Errorf("server read %v, want close 1000", err)
		}
		select {
		case o := <-outer:
			if o.err != nil || !o.done {
				t.Errorf("Close returned %v with Done closed %v; want nil and true", o.err, o.done)
			}
		case <-testContext(t).Done():
			t.Fatal("Close did not return while OnPush was blocked")
		}
		free()
		if err := <-inner; err != nil {
			t.Errorf("Close from OnPush after another Close: %v", err)
		}
		if n := calls.Load(); n != 1 {
			t.Errorf("OnPush called %d times, want 1", n)
		}
		var ce *CloseError
		if !errors.As(c.Err(), &ce) || ce.Code != 1000 || !errors.Is(c.Err(), ErrClosed) {
			t.Errorf("Err() = %v, want 1000 closed by client", c.Err())
		}
	})
}

// TestNetDial checks that Options.NetDial opens the connection: the source
// address it picks is the one the server sees.
func TestNetDial(t *testing.T) {
	p, _ := protocols.Lookup(protocols.All, protocols.JSONRPC)
	s := newFakeServer(t, p)
	used := 0
	src := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}
	c, sc := s.dial(t, Options{NetDial: func(ctx context.Context, network, addr string) (net.Conn, error) {
		used++
		d := net.Dialer{LocalAddr: src}
		return d.DialContext(ctx, network, addr)
	}})
	if used != 1 {
		t.Fatalf("NetDial called %d times, want 1", used)
	}
	if got := sc.conn.RemoteAddr().(*net.TCPAddr).IP; !got.Equal(src.IP) {
		t.Errorf("server saw the client at %v, want %v", got, src.IP)
	}
	done := goCall(c, testContext(t), chat.MethodPing, &chat.PingParams{}, nil)
	sc.result(sc.read().ID, &chat.PingResult{Status: "ok"})
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
