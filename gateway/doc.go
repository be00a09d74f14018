// Package gateway is the subgate server: WebSocket upgrade and subprotocol
// negotiation, the connection lifecycle, the shared RPC core, and the chat
// service on top of a Hub.
//
// # Connections: goroutines and queues
//
// Each connection has exactly two goroutines. The reader (the HTTP
// handler's goroutine, after the upgrade) reads frames, checks them against
// RFC 6455 and the limits (size before allocating, frame type, UTF-8),
// decodes them with the negotiated codec and runs the calls one at a time,
// in order. The writer owns the socket's write side: it drains the
// connection's send queue, coalescing everything queued into one flush, and
// sends keepalive pings.
//
// The send queue is bounded in bytes (Config.SendQueueBytes). Enqueueing
// never blocks: a message that would overflow the queue closes the
// connection with 1008 "slow consumer" (the queued data is dropped), so a
// slow client never stalls a sender, a room or the hub.
//
// Closing is owned by one function, Conn.closeWith, safe from any goroutine
// and idempotent: it records the close reason, wakes the writer (which
// flushes what is queued, writes the close frame and half-closes) and
// unblocks the reader. The reader then drains the peer's input briefly so
// the close frame is not lost to a reset, and closes the socket.
//
// # The RPC core
//
// Methods are declared once with typed params and results (Register); the
// codec of the connection decodes params and encodes results, so a method
// never sees an encoding. Middleware wraps every call; the first one logs.
// Handlers get a context carrying the caller's identity (ConnInfoFrom).
//
// # Hub
//
// Rooms, presence, history and delivery live behind the Hub interface. The
// in-process hub (NewMemoryHub) is the default; nothing else in the package
// assumes a single process. A push is encoded at most once per codec and
// the same bytes are queued to every recipient that speaks it.
//
// # Lock order
//
// memoryHub.mu, then Conn.mu. Push.mu is a leaf.
package gateway
