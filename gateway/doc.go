// Package gateway is the subgate server: WebSocket upgrade and subprotocol
// negotiation, the connection lifecycle, the shared RPC core, and the chat
// service on top of a Hub.
//
// # Admission
//
// Before a request is upgraded it passes, in order: the client id syntax
// (400), the Origin policy against cross-site WebSocket hijacking (403),
// the token when Config.JWTSecret is set (401), negotiation (400), then
// the caps on connections per node and per address (503), counted under
// Server.mu with the connections being upgraded. Listener, which
// cmd/subgate serves through, refuses with 503 at accept time beyond the
// process's file-descriptor budget, and keeps a spare descriptor so that
// even at EMFILE a client gets 503 instead of waiting in the backlog. A
// token's expiry is one timer per connection: a gateway.notice, then
// close 4001.
//
// # Connections: goroutines and queues
//
// Each connection has a reader goroutine, a writer goroutine only while
// it has something queued, and one goroutine per call in flight to a
// method declared Concurrent. The reader (the HTTP handler's goroutine,
// after the upgrade) reads frames, checks them against RFC 6455 and the
// limits (size before allocating, frame type, UTF-8), decodes them with the
// negotiated codec and runs the calls one at a time, in order. A call to a
// Concurrent method (not inside a batch) is instead started on its own
// goroutine and the reader goes on; at most Config.MaxConcurrentCalls run
// at once, and beyond that the reader waits for a slot, which pushes back
// on the client through TCP. The writer is started (Conn.wakeWriter,
// under Conn.mu: Conn.writerOn) when a frame is queued and nobody is
// writing; it drains the queue, coalescing everything queued into one
// flush, and exits when the queue is empty, or after the close frame
// (Conn.writerDone, and Conn.written is closed). A timer per connection
// queues the keepalive ping. Whoever writes to the socket sets
// Conn.writing, under Conn.mu, and owns the write side until it clears
// it, with a write buffer taken from a pool for that write: the writer
// for a flush, or the goroutine of a call for its own reply. A reply is
// written directly, saving a hand-off to the writer, when the queue is
// empty, nobody is writing, and (for the reader) no more input is
// already buffered; otherwise it is queued, so that a burst of pipelined
// calls gets its replies in one write. A direct writer starts the writer
// when it finds something queued after its write. An idle connection
// thus holds its reader goroutine, its read buffer and its timer, and no
// writer goroutine or write buffer.
//
// The send queue is bounded in bytes (Config.SendQueueBytes), counting
// every byte accepted and not yet written to the socket: queued, or taken
// by the writer and still in its hands (a writer stuck on a full socket
// keeps its bytes counted). Pushes never block: a push that would exceed
// the bound makes the connection a slow consumer. Its queue is dropped, it
// leaves the hub at once (no more pushes; its client leaves its rooms if it
// was the last connection), the writer gets the close timeout to finish
// what it is writing, then writes a gateway.notice "lagging" and close
// 4000; when it cannot, the socket is cut and the log says the close frame
// was not sent. Replies to the connection's own calls wait for room
// instead, which stops its reading: a client that calls faster than it
// reads is slowed down, not cut. One reply frame (a single reply or a whole
// batch reply) is at most the bound: a reply over it becomes -32008, and
// so do the remaining calls of its batch, which are not run.
//
// Frames are read as their bytes arrive: the buffer grows with what was
// received, never to the length a header announces. Every decoded message
// (each batch element, and replies a client sends) is charged against the
// connection's token bucket (Config.RateLimit, RateBurst); a call over it
// gets -32006, and MaxRateRefusals refusals in a row close with 1008.
//
// Closing is started by Conn.closeWith, safe from any goroutine and
// idempotent: it records the close reason and unblocks the reader. The
// reader stops reading, leaves the hub, waits for the calls in flight
// (their replies are queued as usual; their context is cancelled only when
// nobody is left to read the replies: the peer closed, the socket failed
// or the queue is being dropped), then seals the queue. The writer flushes
// what is queued, writes the close frame once the queue is sealed and
// half-closes. The reader then drains the peer's input briefly so the
// close frame is not lost to a reset, and closes the socket.
//
// Server.Shutdown drains: /readyz answers 503 and upgrades get 503 at
// once, every connection gets gateway.notice "draining", calls read from
// then on get -32007, and each connection closes with 1001 when the calls
// it has in flight are answered (Conn.busy reaches 0). With a deadline,
// no write or closing handshake outlasts nine tenths of it.

// # The RPC core
//
// Methods are declared once with typed params and results (Register); the
// codec of the connection decodes params and encodes results, so a method
// never sees an encoding. Middleware wraps every call; the first one logs.
// A panic in a handler is recovered and answered with -32603.
// Handlers get a context carrying the caller's identity (ConnInfoFrom).
//
// # Hub
//
// Rooms, presence, history and delivery live behind the Hub interface. The
// in-process hub (NewMemoryHub) is the default; nothing else in the package
// assumes a single process. Every Hub method takes a context and returns
// an error, as a hub on a network must: Attach is bounded by the handshake
// timeout and its failure refuses the upgrade with 503; Detach by the
// close timeout, and its failure is logged; a call's hub error other than
// the documented ones (ErrNotMember, ErrNotAttached, *LimitError) answers
// -32603 and is logged, never a wrong result. A push is encoded at most once per codec and
// the same bytes are queued to every recipient that speaks it.
//
// The in-process hub is bounded (HubLimits, from Config): a client id is
// in at most MaxRoomsPerClient rooms and the node has at most MaxRooms;
// each room keeps at most HistorySize messages and HistoryBytesPerRoom
// bytes, and all rooms together at most HistoryBytes (a message costs its
// text, its sender id and 64 bytes of bookkeeping). A room exists while
// it has members or history; one with neither is deleted at once. Rooms
// with history are kept on two lists by last activity, those without
// members (idle) and those with (busy): joining a new room at MaxRooms
// deletes the front idle room, and over HistoryBytes the oldest messages
// of the front idle rooms, then of the front busy rooms, go. A join
// refused by a bound is chat error -32009; a send never fails for one.
// A new room's offsets start after the highest offset of any room
// deleted before it, so offsets never repeat under a room name within a
// process; only a restart loses history, so the in-process hub has one
// random epoch (8 bytes, 16 hex characters) per instance, which every
// Position it returns carries. chat.history decides Recovered from the
// hub's messages and latest Position, once for every hub (chat.go,
// recovered): a client's epoch that differs from the room's gets the room
// from its oldest kept message and false. An index of each client id's rooms makes a disconnect cost
// O(rooms of that client), whatever the number of rooms in the node.
//
// # Metrics and logs
//
// Each Server has its own Prometheus registry (Config.Metrics to share
// one), served at Config.MetricsPath or through MetricsHandler. Every
// series a message or a call touches is resolved ahead: a connection
// holds its protocol's series (protoMetrics), and a method's series are
// made on its first call and published copy-on-write, so counting on the
// hot path is an atomic add, never a label lookup or an allocation. The
// method label is a registered method's name, "unknown" or "invalid",
// never a name a client chose. Gauges that would need a running total on
// the hot path (queued bytes, rooms, history bytes) are read at scrape
// time instead. The reader counts messages in and calls; the writer
// counts messages out; the hub's delivery counts pushes; serveConn
// counts connections and closes.
//
// Logs: one line per connection opened (with the negotiation's outcome)
// and closed (duration, reason, the close code and text as sent), and one
// per refused handshake. Calls are logged only at debug level, and the
// Logging middleware builds nothing unless debug is enabled; internal
// errors (-32603) are logged at error level with a panic's stack.
//
// # Lock order
//
// memoryHub.mu, then Conn.mu. Push.mu, Router.mu (taken only by Handle
// and Use; calls read the router without a lock), metrics.mu (taken when
// a method or an error code gets its first series) and Listener.mu are
// leaves. A scrape takes Server.mu to copy the connections, releases it,
// then takes each Conn.mu in turn. Server.mu is never held with another lock. Conn.space waits on Conn.mu. No lock is held across
// a read or write on a socket; SetDeadline calls under Conn.mu make no
// system call (the runtime's poller keeps deadlines).
package gateway
