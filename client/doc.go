// Package client is the Go client of subgate: it dials a gateway over
// WebSocket, speaks one of its subprotocols (json-rpc, msgpack or
// binary-raw) and offers typed calls and pushes.
//
//	c, err := client.Dial(ctx, "ws://127.0.0.1:8080/ws/alice", client.Options{Protocol: "msgpack"})
//	if err != nil {
//		return err // a refused handshake says why: HTTP status and body
//	}
//	defer c.Close()
//
//	var joined chat.JoinResult
//	err = c.Call(ctx, chat.MethodJoin, &chat.JoinParams{Room: "lobby"}, &joined)
//	var rpcErr *codec.Error
//	if errors.As(err, &rpcErr) && rpcErr.Code == chat.CodeInvalidRoom {
//		// the server said no
//	}
//
//	for p := range c.Pushes() { // closed when the connection ends
//		v, err := p.Value() // *chat.Message, *chat.Presence or *chat.Notice
//		...
//	}
//
// # Calls and pushes
//
// Calls may be made from many goroutines at once. Each gets a numeric id
// (1, 2, 3, ... per connection) and the reply is matched by id, since the
// server's replies and pushes interleave in any order: a push caused by a
// call may come before or after the call's reply.
//
// Pushes go to the Pushes channel, or to Options.OnPush when it is set. The
// channel is bounded (Options.PushBuffer, 256 by default) and the reader
// never waits for it: when it is full the oldest queued push is dropped and
// counted in Dropped. A consumer that must not miss room messages compares
// offsets and catches up with chat.history, as below.
//
// One goroutine per client reads the connection: it answers pings, decodes
// every message with the subprotocol's codec, routes replies and queues
// pushes. With OnPush, a second goroutine calls it, one push at a time; the
// reader waits for each call to return before it reads on, so pushes and
// replies keep their order, but stops waiting when Close is called: Close
// never waits for OnPush (it may be called from it), and OnPush is not
// called again once Close has been called. When the connection ends, for
// whatever reason, every pending call fails with a *CloseError (close code
// and reason; 1006 when the connection broke without a close frame), Pushes
// is closed, Done is closed and Err returns that error.
//
// The client never answers anything the server sends. An error with a null
// id says the server could not read a message of this client; it matches no
// call and goes to Options.OnNullIDError when set. A reply the codec cannot
// read fails the call it names, if any, and is otherwise dropped.
//
// # Reconnecting
//
// A Client is one connection and never reconnects by itself: after Done,
// Call and Notify fail at once with an error wrapping ErrClosed, and the
// application dials a new Client. Anything the server keeps per connection
// (room memberships) must be set up again. Room messages carry offsets and
// their stream's epoch, so nothing is lost silently across a reconnect:
// remember the last offset and epoch seen and ask chat.history for what
// came after them. Its Recovered is false when that could not be done:
// messages after the offset were evicted, or the epoch changed (after a
// server restart, say), and then the answer starts at the room's oldest
// kept message, in offsets that start over.
//
//	// follow prints the messages of room forever, reconnecting as needed.
//	func follow(ctx context.Context, url, room string) error {
//		var last uint64  // offset of the last message shown
//		var epoch string // the epoch last belongs to
//		show := func(off uint64, from, text string) {
//			if off > last {
//				fmt.Printf("%d <%s> %s\n", off, from, text)
//				last = off
//			}
//		}
//		for backoff := time.Second; ; backoff = min(2*backoff, time.Minute) {
//			c, err := client.Dial(ctx, url, client.Options{Protocol: "binary-raw", PushBuffer: 1024})
//			if err == nil {
//				err = session(ctx, c, room, &last, &epoch, show)
//				c.Close()
//				backoff = time.Second
//			}
//			log.Printf("%s: %v; reconnecting in %v", room, err, backoff)
//			select {
//			case <-ctx.Done():
//				return ctx.Err()
//			case <-time.After(backoff):
//			}
//		}
//	}
//
//	// session joins room on a fresh connection, catches up from *last in
//	// *epoch and then follows the pushes until the connection ends.
//	func session(ctx context.Context, c *client.Client, room string, last *uint64, epoch *string, show func(uint64, string, string)) error {
//		if err := c.Call(ctx, chat.MethodJoin, &chat.JoinParams{Room: room}, nil); err != nil {
//			return err
//		}
//		// Pushes sent from now on queue up in c.Pushes() while we catch up.
//		catchUp := func() error {
//			for {
//				var h chat.HistoryResult
//				p := &chat.HistoryParams{Room: room, Since: *last, Limit: chat.MaxHistoryLimit, Epoch: *epoch}
//				if err := c.Call(ctx, chat.MethodHistory, p, &h); err != nil {
//					return err
//				}
//				if !h.Recovered && *epoch != "" {
//					log.Printf("%s: history could not be fully recovered", room)
//				}
//				if h.Epoch != *epoch { // a new stream (or the first answer): its offsets start over
//					*last, *epoch = 0, h.Epoch
//				}
//				for _, m := range h.Messages {
//					show(m.Offset, m.From, m.Message)
//				}
//				if len(h.Messages) < chat.MaxHistoryLimit {
//					return nil
//				}
//			}
//		}
//		if err := catchUp(); err != nil {
//			return err
//		}
//		dropped := c.Dropped()
//		for {
//			var p client.Push
//			select {
//			case <-ctx.Done():
//				return ctx.Err()
//			case <-c.Done():
//				return c.Err() // the *CloseError saying how the connection ended
//			case p = <-c.Pushes():
//			}
//			if p.Method != chat.PushMessage {
//				continue
//			}
//			var m chat.Message
//			if err := p.Decode(&m); err != nil || m.Room != room {
//				continue
//			}
//			if m.Epoch != *epoch || m.Offset > *last+1 || c.Dropped() != dropped { // a gap: fill it
//				dropped = c.Dropped()
//				if err := catchUp(); err != nil {
//					return err
//				}
//			}
//			show(m.Offset, m.From, m.Message) // already shown ones are skipped
//		}
//	}
//
// # JSON bridge
//
// CallJSON and PushJSON turn calls and pushes into JSON whatever the
// subprotocol, for tools such as `subgate call`.
package client
