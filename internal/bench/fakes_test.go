package bench

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
)

// fakeServer accepts WebSockets on 127.0.0.1 and runs handle on each, on a
// goroutine of its own; path checks the request URI.
type fakeServer struct {
	ln    net.Listener
	mu    sync.Mutex
	conns map[*fakeConn]bool
	bad   atomic.Value // string: the first thing a client got wrong
}

type fakeConn struct {
	nc  net.Conn
	wmu sync.Mutex
	sub bool
}

func (c *fakeConn) write(op ws.OpCode, p []byte) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	wsutil.WriteServerMessage(c.nc, op, p)
}

func (s *fakeServer) url() string { return "ws://" + s.ln.Addr().String() }

func (s *fakeServer) wrong(format string, a ...any) {
	s.bad.CompareAndSwap(nil, fmt.Sprintf(format, a...))
}

// check fails the test if a client broke the wire shape.
func (s *fakeServer) check(t *testing.T) {
	t.Helper()
	if b := s.bad.Load(); b != nil {
		t.Errorf("fake server: %s", b)
	}
}

func startFake(t *testing.T, up ws.Upgrader, handle func(*fakeConn)) *fakeServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &fakeServer{ln: ln, conns: map[*fakeConn]bool{}}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		ln.Close()
		s.mu.Lock()
		for c := range s.conns {
			c.nc.Close()
		}
		s.mu.Unlock()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer nc.Close()
				if _, err := up.Upgrade(nc); err != nil {
					return
				}
				c := &fakeConn{nc: nc}
				s.mu.Lock()
				s.conns[c] = true
				s.mu.Unlock()
				handle(c)
				s.mu.Lock()
				delete(s.conns, c)
				s.mu.Unlock()
			})
		}
	})
	return s
}

// each runs f on every open connection.
func (s *fakeServer) each(f func(*fakeConn)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		f(c)
	}
}

// startPeer is a fake of the naive server (seed false) or of the seed app
// (seed true): json-rpc only, chat.ping and chat.broadcast pushed to every
// connection. The seed fake also insists on integer ids, in the path and in
// requests, and on params objects. stall, when set, delays the reply to the
// n-th ping (counted from 1) of the whole server.
func startPeer(t *testing.T, seed bool, stall func(n int64) time.Duration) *fakeServer {
	var s *fakeServer
	var pings atomic.Int64
	up := ws.Upgrader{
		Protocol: func(p []byte) bool { return string(p) == "json-rpc" },
		OnRequest: func(uri []byte) error {
			id, ok := strings.CutPrefix(string(uri), "/ws/")
			if _, err := strconv.Atoi(id); !ok || (seed && err != nil) {
				s.wrong("request URI %q", uri)
				return ws.RejectConnectionError(ws.RejectionStatus(403))
			}
			return nil
		},
	}
	s = startFake(t, up, func(c *fakeConn) {
		for {
			msg, op, err := wsutil.ReadClientData(c.nc)
			if err != nil {
				return
			}
			if op != ws.OpText {
				s.wrong("opcode %v", op)
				return
			}
			var req struct {
				ID     json.RawMessage `json:"id"`
				Method string          `json:"method"`
				Params json.RawMessage `json:"params"`
			}
			if err := json.Unmarshal(msg, &req); err != nil {
				s.wrong("request %q: %v", msg, err)
				return
			}
			if _, err := strconv.ParseInt(string(req.ID), 10, 64); seed && (err != nil || !bytes.HasPrefix(req.Params, []byte("{"))) {
				s.wrong("seed wants an integer id and params an object: %s", msg)
				return
			}
			var result string
			switch req.Method {
			case "chat.ping":
				if d := stall(pings.Add(1)); d > 0 {
					<-time.After(d) // the stall under test, not synchronisation
				}
				result = `{"status":"ok","timestamp":1764000000}`
			case "chat.broadcast":
				var p struct{ Message string }
				json.Unmarshal(req.Params, &p)
				m, _ := json.Marshal(p.Message)
				push := []byte(`{"jsonrpc":"2.0","method":"chat.message","params":{"message":` + string(m) + `}}`)
				n := 0
				s.each(func(o *fakeConn) { o.write(ws.OpText, push); n++ })
				result = `{"delivered":` + strconv.Itoa(n) + `}`
				if seed {
					result = `{"status":"ok","message":"Message broadcasted"}`
				}
			default:
				s.wrong("method %q", req.Method)
				return
			}
			c.write(ws.OpText, []byte(`{"jsonrpc":"2.0","id":`+string(req.ID)+`,"result":`+result+`}`))
		}
	})
	return s
}

func noStall(int64) time.Duration { return 0 }

// startCentrifugo is a fake of Centrifugo's JSON protocol: it sends a ping
// ({}) in the same frame before the connect reply, counts the pongs, and
// pushes each publication, in one frame with the reply for the publisher.
func startCentrifugo(t *testing.T, pongs *atomic.Int64) *fakeServer {
	var s *fakeServer
	up := ws.Upgrader{OnRequest: func(uri []byte) error {
		if string(uri) != "/connection/websocket" {
			s.wrong("request URI %q", uri)
			return ws.RejectConnectionError(ws.RejectionStatus(404))
		}
		return nil
	}}
	s = startFake(t, up, func(c *fakeConn) {
		for {
			msg, _, err := wsutil.ReadClientData(c.nc)
			if err != nil {
				return
			}
			for line := range bytes.Lines(msg) {
				if !s.centrifugoCommand(c, bytes.TrimSpace(line), pongs) {
					return
				}
			}
		}
	})
	return s
}

func (s *fakeServer) centrifugoCommand(c *fakeConn, line []byte, pongs *atomic.Int64) bool {
	if string(line) == "{}" {
		pongs.Add(1)
		return true
	}
	var cmd struct {
		ID        uint32          `json:"id"`
		Connect   json.RawMessage `json:"connect"`
		Subscribe *struct {
			Channel string `json:"channel"`
		} `json:"subscribe"`
		Publish *struct {
			Channel string          `json:"channel"`
			Data    json.RawMessage `json:"data"`
		} `json:"publish"`
	}
	if err := json.Unmarshal(line, &cmd); err != nil || cmd.ID == 0 {
		s.wrong("command %q", line)
		return false
	}
	id := strconv.Itoa(int(cmd.ID))
	switch {
	case cmd.Connect != nil:
		c.write(ws.OpText, []byte(`{}`+"\n"+`{"id":`+id+`,"connect":{"client":"c","version":"6.9.1","ping":25,"pong":true}}`))
	case cmd.Subscribe != nil && cmd.Subscribe.Channel == "bench":
		s.mu.Lock()
		c.sub = true
		s.mu.Unlock()
		c.write(ws.OpText, []byte(`{"id":`+id+`,"subscribe":{}}`))
	case cmd.Publish != nil && cmd.Publish.Channel == "bench":
		push := `{"push":{"channel":"bench","pub":{"data":` + string(cmd.Publish.Data) + `}}}`
		s.each(func(o *fakeConn) {
			switch {
			case o == c && o.sub:
				o.write(ws.OpText, []byte(`{"id":`+id+`,"publish":{}}`+"\n"+push))
			case o == c:
				o.write(ws.OpText, []byte(`{"id":`+id+`,"publish":{}}`))
			case o.sub:
				o.write(ws.OpText, []byte(push))
			}
		})
	default:
		s.wrong("command %q", line)
		c.write(ws.OpText, []byte(`{"id":`+id+`,"error":{"code":102,"message":"unknown channel"}}`))
	}
	return true
}
