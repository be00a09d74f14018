package bench

import (
	"context"
	"errors"
	"net"
	"net/url"
	"strconv"

	"github.com/subgate/subgate/client"
	"github.com/subgate/subgate/protocols/chat"
)

// conn is one connection of a run, whatever the target.
type conn interface {
	ping(ctx context.Context) error
	broadcast(ctx context.Context, text string) error
	join(ctx context.Context, room string) error
	send(ctx context.Context, room, text string) error
	// broken says how the connection ended when it ended before close.
	broken() error
	// ended is closed when the connection is over.
	ended() <-chan struct{}
	close() error
}

// dialFunc opens connection g (its run-wide index) in encoding proto;
// onText, when set, gets the text of every chat message pushed to it.
type dialFunc func(ctx context.Context, g int, proto string, onText func(string)) (conn, error)

// dialer returns how the run dials its target.
func (c *Config) dialer() (dialFunc, error) {
	id := func(g int) string { return strconv.Itoa(idBase + g) }
	query := ""
	if c.Token != "" {
		sub, err := tokenSubject(c.Token)
		if err != nil {
			return nil, err
		}
		id = func(int) string { return url.PathEscape(sub) }
		query = "?token=" + url.QueryEscape(c.Token)
	}
	base := func(g int) string { return c.bases[c.node(g)] }
	netDial := c.netDial
	if c.Target == "centrifugo" {
		return func(ctx context.Context, g int, _ string, onText func(string)) (conn, error) {
			return dialCentrifugo(ctx, base(g)+"/connection/websocket", netDial(g), onText)
		}, nil
	}
	return func(ctx context.Context, g int, proto string, onText func(string)) (conn, error) {
		opts := client.Options{Protocol: proto, NetDial: netDial(g)}
		if onText != nil {
			opts.OnPush = func(p client.Push) {
				if p.Method != chat.PushMessage {
					return // presence and notices
				}
				var m chat.Message
				if p.Decode(&m) == nil {
					onText(m.Message)
				}
			}
		}
		cl, err := client.Dial(ctx, base(g)+"/ws/"+id(g)+query, opts)
		if err != nil {
			return nil, err
		}
		return rpcConn{cl}, nil
	}, nil
}

// netDial returns the dial function of connection g: from 127.0.0.(1+g%N)
// with SourceIPs N, else nil (the default dialer).
func (c *Config) netDial(g int) func(ctx context.Context, network, addr string) (net.Conn, error) {
	if c.SourceIPs == 0 {
		return nil
	}
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(1+g%c.SourceIPs))}}
	return d.DialContext
}

// rpcConn drives subgate, naive and seed through package client.
type rpcConn struct{ c *client.Client }

func (r rpcConn) ping(ctx context.Context) error {
	return r.c.Call(ctx, chat.MethodPing, &chat.PingParams{}, nil)
}

func (r rpcConn) broadcast(ctx context.Context, text string) error {
	return r.c.Call(ctx, chat.MethodBroadcast, &chat.BroadcastParams{Message: text}, nil)
}

func (r rpcConn) join(ctx context.Context, room string) error {
	return r.c.Call(ctx, chat.MethodJoin, &chat.JoinParams{Room: room}, nil)
}

func (r rpcConn) send(ctx context.Context, room, text string) error {
	return r.c.Call(ctx, chat.MethodSend, &chat.SendParams{Room: room, Message: text}, nil)
}

func (r rpcConn) broken() error {
	err := r.c.Err()
	if err == nil || errors.Is(err, client.ErrClosed) {
		return nil
	}
	return err
}

func (r rpcConn) close() error { return r.c.Close() }

func (r rpcConn) ended() <-chan struct{} { return r.c.Done() }
