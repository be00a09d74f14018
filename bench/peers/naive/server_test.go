package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"

	"github.com/subgate/subgate/client"
	"github.com/subgate/subgate/codec"
	"github.com/subgate/subgate/protocols/chat"
)

// testTimeout bounds every wait of these tests.
const testTimeout = 5 * time.Second

// startNaive serves on a loopback port and returns ws://HOST:PORT.
func startNaive(t *testing.T) string {
	t.Helper()
	wsutil.SetMaxMessageSize(maxMessageSize)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := newServer()
	srv := &http.Server{Handler: s.routes()}
	go srv.Serve(ln)
	t.Cleanup(func() {
		srv.Close()
		s.closeAll()
	})
	return "ws://" + ln.Addr().String()
}

func dialNaive(t *testing.T, base string, id int) *client.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	c, err := client.Dial(ctx, fmt.Sprintf("%s/ws/%d", base, id), client.Options{Protocol: "json-rpc"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	// The server adds a connection to its broadcast set after the upgrade,
	// and a reply comes from the read loop that starts after that: once a
	// ping is answered, broadcasts reach this connection.
	if err := call(t, c, chat.MethodPing, chat.PingParams{}, nil); err != nil {
		t.Fatal(err)
	}
	return c
}

func call(t *testing.T, c *client.Client, method string, params, result any) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	return c.Call(ctx, method, params, result)
}

// waitMessage waits for the next chat.message push and returns its text.
func waitMessage(t *testing.T, c *client.Client) string {
	t.Helper()
	select {
	case p, ok := <-c.Pushes():
		if !ok {
			t.Fatalf("connection ended: %v", c.Err())
		}
		if p.Method != chat.PushMessage {
			t.Fatalf("push %q, want %q", p.Method, chat.PushMessage)
		}
		var m chat.Message
		if err := p.Decode(&m); err != nil {
			t.Fatal(err)
		}
		return m.Message
	case <-time.After(testTimeout):
		t.Fatal("no chat.message push within", testTimeout)
	}
	return ""
}

func TestPingAnswersStatusAndTimestamp(t *testing.T) {
	c := dialNaive(t, startNaive(t), 1)
	before := time.Now().Unix()
	var r chat.PingResult
	if err := call(t, c, chat.MethodPing, struct{}{}, &r); err != nil {
		t.Fatal(err)
	}
	if r.Status != "ok" || r.Timestamp < before || r.Timestamp > time.Now().Unix() {
		t.Fatalf("ping result %+v, want status ok and a timestamp from %d on", r, before)
	}
}

func TestBroadcastReachesEveryConnectionSenderIncluded(t *testing.T) {
	base := startNaive(t)
	conns := []*client.Client{dialNaive(t, base, 1), dialNaive(t, base, 2), dialNaive(t, base, 3)}
	var r chat.BroadcastResult
	if err := call(t, conns[0], chat.MethodBroadcast, chat.BroadcastParams{Message: "hello"}, &r); err != nil {
		t.Fatal(err)
	}
	if r.Delivered != uint64(len(conns)) {
		t.Fatalf("delivered %d, want %d", r.Delivered, len(conns))
	}
	for i, c := range conns {
		if got := waitMessage(t, c); got != "hello" {
			t.Fatalf("connection %d got message %q, want %q", i, got, "hello")
		}
	}
}

// Broadcasts from every connection at once interleave with the replies on
// each socket: every frame must still arrive whole (the client fails the
// connection on a garbled one) and every push must arrive.
func TestConcurrentBroadcastsKeepFramesWhole(t *testing.T) {
	const nConns, perConn = 4, 50
	base := startNaive(t)
	conns := make([]*client.Client, nConns)
	for i := range conns {
		conns[i] = dialNaive(t, base, i)
	}
	var wg sync.WaitGroup
	errs := make(chan error, nConns*perConn)
	for _, c := range conns {
		wg.Go(func() {
			for range perConn {
				errs <- call(t, c, chat.MethodBroadcast, chat.BroadcastParams{Message: "m"}, nil)
			}
		})
	}
	for _, c := range conns {
		for range nConns * perConn {
			if got := waitMessage(t, c); got != "m" {
				t.Fatalf("message %q, want %q", got, "m")
			}
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
}

func TestUnknownMethodIsMethodNotFound(t *testing.T) {
	c := dialNaive(t, startNaive(t), 1)
	err := call(t, c, chat.MethodJoin, chat.JoinParams{Room: "r"}, nil)
	var rpcErr *codec.Error
	if !errors.As(err, &rpcErr) || rpcErr.Code != codec.CodeMethodNotFound {
		t.Fatalf("error %v, want code %d", err, codec.CodeMethodNotFound)
	}
}

func TestOtherSubprotocolRefusedWith400(t *testing.T) {
	base := startNaive(t)
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	_, err := client.Dial(ctx, base+"/ws/1", client.Options{Protocol: "msgpack"})
	var he *client.HandshakeError
	if !errors.As(err, &he) || he.StatusCode != http.StatusBadRequest {
		t.Fatalf("dial error %v, want a 400 refusal", err)
	}
}

// rawDial opens a json-rpc connection without the client package, to send
// control frames by hand.
func rawDial(t *testing.T, base string) net.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	conn, br, hs, err := ws.Dialer{Protocols: []string{subprotocol}}.Dial(ctx, base+"/ws/1")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	if hs.Protocol != subprotocol || br != nil {
		t.Fatalf("handshake selected %q with %v buffered, want %q and nothing", hs.Protocol, br, subprotocol)
	}
	conn.SetDeadline(time.Now().Add(testTimeout))
	return conn
}

func readFrame(t *testing.T, conn net.Conn) ws.Frame {
	t.Helper()
	f, err := ws.ReadFrame(conn)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func TestKeepalivePingAnsweredWithPong(t *testing.T) {
	conn := rawDial(t, startNaive(t))
	if err := wsutil.WriteClientMessage(conn, ws.OpPing, []byte("ka")); err != nil {
		t.Fatal(err)
	}
	f := readFrame(t, conn)
	if f.Header.OpCode != ws.OpPong || string(f.Payload) != "ka" {
		t.Fatalf("got opcode %v payload %q, want a pong with %q", f.Header.OpCode, f.Payload, "ka")
	}
}

func TestCloseHandshakeAnswered(t *testing.T) {
	conn := rawDial(t, startNaive(t))
	body := ws.NewCloseFrameBody(ws.StatusNormalClosure, "bye")
	if err := wsutil.WriteClientMessage(conn, ws.OpClose, body); err != nil {
		t.Fatal(err)
	}
	f := readFrame(t, conn)
	if f.Header.OpCode != ws.OpClose {
		t.Fatalf("got opcode %v, want a close frame", f.Header.OpCode)
	}
	if code, _ := ws.ParseCloseFrameData(f.Payload); code != ws.StatusNormalClosure {
		t.Fatalf("close code %d, want %d", code, ws.StatusNormalClosure)
	}
	if _, err := conn.Read(make([]byte, 1)); !errors.Is(err, io.EOF) {
		t.Fatalf("after the close frame: %v, want EOF (the server closes the TCP connection)", err)
	}
}
