package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
)

// centrifugoChannel is the one channel every subscriber of a run joins.
const centrifugoChannel = "bench"

// cfConn is a small client of Centrifugo's JSON protocol (bidirectional,
// over WebSocket): commands {"id":N,"connect"|"subscribe"|"publish":{...}},
// replies {"id":N,...} or {"id":N,"error":{...}}, pushes {"push":{...}}
// and the server's ping {} answered by {}. One frame may carry several
// messages separated by newlines.
type cfConn struct {
	nc     net.Conn
	wmu    sync.Mutex // serialises frame writes (ours and pongs)
	onText func(string)

	mu      sync.Mutex
	nextID  uint32
	pending map[uint32]chan error
	err     error // set when the connection is over
	closing bool
	done    chan struct{}
}

// cfMessage is one reply or push, as much of it as the harness reads.
type cfMessage struct {
	ID    uint32 `json:"id"`
	Error *struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
	Push *struct {
		Pub *struct {
			Data cfData `json:"data"`
		} `json:"pub"`
	} `json:"push"`
}

// cfData is the payload of the harness's publications.
type cfData struct {
	M string `json:"m"`
}

func dialCentrifugo(ctx context.Context, url string, netDial func(context.Context, string, string) (net.Conn, error), onText func(string)) (conn, error) {
	d := ws.Dialer{NetDial: netDial}
	nc, br, _, err := d.Dial(ctx, url)
	if err != nil {
		return nil, fmt.Errorf("bench: dial %s: %w", url, err)
	}
	c := &cfConn{nc: nc, onText: onText, pending: map[uint32]chan error{}, done: make(chan struct{})}
	var src io.Reader = nc
	if br != nil {
		src = io.MultiReader(br, nc)
	}
	go c.readLoop(src)
	if err := c.call(ctx, "connect", struct{}{}); err != nil {
		c.close()
		return nil, err
	}
	if onText != nil {
		if err := c.call(ctx, "subscribe", map[string]string{"channel": centrifugoChannel}); err != nil {
			c.close()
			return nil, err
		}
	}
	return c, nil
}

// call sends one command and waits for its reply.
func (c *cfConn) call(ctx context.Context, method string, body any) error {
	ch := make(chan error, 1)
	c.mu.Lock()
	if c.err != nil {
		err := c.err
		c.mu.Unlock()
		return err
	}
	c.nextID++
	id := c.nextID
	c.pending[id] = ch
	c.mu.Unlock()
	cmd, err := json.Marshal(map[string]any{"id": id, method: body})
	if err != nil {
		return err
	}
	if err := c.write(cmd); err != nil {
		return err
	}
	select {
	case err := <-ch:
		return err
	case <-ctx.Done():
		c.mu.Lock()
		delete(c.pending, id)
		c.mu.Unlock()
		return ctx.Err()
	}
}

func (c *cfConn) write(p []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.nc.SetWriteDeadline(time.Now().Add(callTimeout))
	if err := wsutil.WriteClientText(c.nc, p); err != nil {
		c.nc.Close()
		return fmt.Errorf("bench: centrifugo write: %w", err)
	}
	return nil
}

// readLoop reads frames, answers pings and routes replies and pushes.
func (c *cfConn) readLoop(src io.Reader) {
	rw := struct {
		io.Reader
		io.Writer
	}{src, writerFunc(func(p []byte) (int, error) { // control replies (pong, close)
		c.wmu.Lock()
		defer c.wmu.Unlock()
		return c.nc.Write(p)
	})}
	var err error
	for {
		var frame []byte
		if frame, err = wsutil.ReadServerText(rw); err != nil {
			break
		}
		if err = c.dispatch(frame); err != nil {
			break
		}
	}
	c.finish(err)
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

func (c *cfConn) dispatch(frame []byte) error {
	for line := range bytes.Lines(frame) {
		line = bytes.TrimSpace(line)
		if len(line) == 0 {
			continue
		}
		var m cfMessage
		if err := json.Unmarshal(line, &m); err != nil {
			return fmt.Errorf("bench: centrifugo sent %q: %v", line, err)
		}
		switch {
		case m.Push != nil:
			if m.Push.Pub != nil && c.onText != nil {
				c.onText(m.Push.Pub.Data.M)
			}
		case m.ID != 0:
			var err error
			if m.Error != nil {
				err = fmt.Errorf("bench: centrifugo error %d: %s", m.Error.Code, m.Error.Message)
			}
			c.reply(m.ID, err)
		default: // {}: the server's ping
			if err := c.write([]byte("{}")); err != nil {
				return err
			}
		}
	}
	return nil
}

func (c *cfConn) reply(id uint32, err error) {
	c.mu.Lock()
	ch := c.pending[id]
	delete(c.pending, id)
	c.mu.Unlock()
	if ch != nil {
		ch <- err
	}
}

func (c *cfConn) finish(err error) {
	c.nc.Close()
	c.mu.Lock()
	if c.closing {
		err = nil
	} else if err == nil || errors.Is(err, io.EOF) {
		err = errors.New("bench: centrifugo closed the connection")
	}
	c.err = cmpErr(err, errors.New("bench: connection closed"))
	for id, ch := range c.pending {
		ch <- c.err
		delete(c.pending, id)
	}
	c.mu.Unlock()
	close(c.done)
}

func cmpErr(err, def error) error {
	if err != nil {
		return err
	}
	return def
}

func (c *cfConn) ping(ctx context.Context) error {
	return errors.New("bench: centrifugo has no ping scenario")
}

func (c *cfConn) broadcast(ctx context.Context, text string) error {
	return c.call(ctx, "publish", map[string]any{"channel": centrifugoChannel, "data": cfData{M: text}})
}

func (c *cfConn) join(ctx context.Context, room string) error {
	return errors.New("bench: centrifugo has no room scenario")
}

func (c *cfConn) send(ctx context.Context, room, text string) error {
	return c.join(ctx, room)
}

func (c *cfConn) ended() <-chan struct{} { return c.done }

func (c *cfConn) broken() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closing {
		return nil
	}
	return c.err
}

// close sends a close frame, waits a second at most for the server's, and
// drops the connection.
func (c *cfConn) close() error {
	c.mu.Lock()
	c.closing = true
	c.mu.Unlock()
	c.wmu.Lock()
	c.nc.SetWriteDeadline(time.Now().Add(time.Second))
	err := ws.WriteFrame(c.nc, ws.MaskFrame(ws.NewCloseFrame(ws.NewCloseFrameBody(ws.StatusNormalClosure, ""))))
	c.wmu.Unlock()
	select {
	case <-c.done:
	case <-time.After(time.Second):
	}
	c.nc.Close()
	<-c.done
	return err
}
