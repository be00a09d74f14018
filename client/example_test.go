package client_test

import (
	"context"
	"fmt"
	"log"
	"time"

	"github.com/subgate/subgate/client"
	"github.com/subgate/subgate/protocols/chat"
)

// The reconnect example of the package documentation, compiled.

// follow prints the messages of room forever, reconnecting as needed.
func follow(ctx context.Context, url, room string) error {
	var last uint64  // offset of the last message shown
	var epoch string // the epoch last belongs to
	show := func(off uint64, from, text string) {
		if off > last {
			fmt.Printf("%d <%s> %s\n", off, from, text)
			last = off
		}
	}
	for backoff := time.Second; ; backoff = min(2*backoff, time.Minute) {
		c, err := client.Dial(ctx, url, client.Options{Protocol: "binary-raw", PushBuffer: 1024})
		if err == nil {
			err = session(ctx, c, room, &last, &epoch, show)
			c.Close()
			backoff = time.Second
		}
		log.Printf("%s: %v; reconnecting in %v", room, err, backoff)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(backoff):
		}
	}
}

// session joins room on a fresh connection, catches up from *last in
// *epoch and then follows the pushes until the connection ends.
func session(ctx context.Context, c *client.Client, room string, last *uint64, epoch *string, show func(uint64, string, string)) error {
	if err := c.Call(ctx, chat.MethodJoin, &chat.JoinParams{Room: room}, nil); err != nil {
		return err
	}
	// Pushes sent from now on queue up in c.Pushes() while we catch up.
	catchUp := func() error {
		for {
			var h chat.HistoryResult
			p := &chat.HistoryParams{Room: room, Since: *last, Limit: chat.MaxHistoryLimit, Epoch: *epoch}
			if err := c.Call(ctx, chat.MethodHistory, p, &h); err != nil {
				return err
			}
			if !h.Recovered && *epoch != "" {
				log.Printf("%s: history could not be fully recovered", room)
			}
			if h.Epoch != *epoch { // a new stream (or the first answer): its offsets start over
				*last, *epoch = 0, h.Epoch
			}
			for _, m := range h.Messages {
				show(m.Offset, m.From, m.Message)
			}
			if len(h.Messages) < chat.MaxHistoryLimit {
				return nil
			}
		}
	}
	if err := catchUp(); err != nil {
		return err
	}
	dropped := c.Dropped()
	for {
		var p client.Push
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-c.Done():
			return c.Err() // the *CloseError saying how the connection ended
		case p = <-c.Pushes():
		}
		if p.Method != chat.PushMessage {
			continue
		}
		var m chat.Message
		if err := p.Decode(&m); err != nil || m.Room != room {
			continue
		}
		if m.Epoch != *epoch || m.Offset > *last+1 || c.Dropped() != dropped { // a gap: fill it
			dropped = c.Dropped()
			if err := catchUp(); err != nil {
				return err
			}
		}
		show(m.Offset, m.From, m.Message) // already shown ones are skipped
	}
}

// This example follows a room across reconnects, catching up with
// chat.history from the last offset and epoch seen (see the package
// documentation).
func Example_reconnect() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := follow(ctx, "ws://127.0.0.1:8080/ws/follower", "lobby"); err != nil {
		log.Print(err)
	}
}
