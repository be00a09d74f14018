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
// Server.mu with the connections being upgraded, and the hub's Attach
// (503). Server.admitUpgrade runs them for both ways in:
//
//   - Server.Serve owns the listener (cmd/subgate serves through it). A
//     goroutine per accepted socket reads the request head into a pooled
//     4 KiB buffer, within Config.HandshakeTimeout. A whole head that is a
//     GET of /ws/{valid id} is upgraded by gobwas's zero-copy ws.Upgrader:
//     its hooks collect Host, Origin, Authorization and every
//     Sec-WebSocket-Protocol header, and OnBeforeUpgrade, once the head is
//     known to be a valid handshake, runs admission and answers a refusal
//     with the status, body and headers http.Error would have written.
//     Anything else (another path or method, a head over 4 KiB) is handed,
//     with the bytes already read, to a net/http server on an in-process
//     listener (connListener), which serves the same mux: /healthz,
//     /readyz, /metrics, the demo page, and upgrades through ServeHTTP.
//   - Server.ServeHTTP (the gateway embedded in another mux, and the
//     tests) upgrades with ws.HTTPUpgrader after the same admission.
//
// A request that is not a valid handshake at all is refused 400 by the
// upgrader, logged with reason "upgrade". Listener refuses with 503 at
// accept time beyond the process's file-descriptor budget, and keeps a
// spare descriptor so that even at EMFILE a client gets 503 instead of
// waiting in the backlog. Both ways end in Server.upgraded, then
// serveConn.
//
// # Connections: who owns what
//
// A connection (Conn) is registered (Server.conns, and the hub) before its
// 101 is written, so pushes may be queued before it reads anything. From
// the 101 on, three roles touch it:
//
//   - The reader owns the read side: it parses frames, checks them
//     against RFC 6455 and the limits (size before allocating, frame type,
//     UTF-8), decodes them with the negotiated codec and runs the calls one
//     at a time, in order. Who the reader is depends on Config.Poller
//     (below). The reader's fields (msgs, call, unread, limiter, refused,
//     pr's buffers) are touched by nobody else.
//   - The writer owns the write side while Conn.writing is set (under
//     Conn.mu): the writer goroutine (started by Conn.wakeWriter when a
//     frame is queued and nobody writes; it exits when the queue is empty,
//     or after the close frame, closing Conn.written), or the goroutine of
//     a call writing its own reply directly (sendReply, when the queue is
//     empty, nobody writes and no more input is already received). A write
//     buffer comes from a pool for each write.
//   - A call to a Concurrent method (not inside a batch) runs on a
//     goroutine of its own; at most Config.MaxConcurrentCalls at once, and
//     beyond that the reader waits for a slot, which pushes back on the
//     client through TCP.
//
// Anything else (a hub's delivery, the timers, Shutdown) only queues
// frames or starts closing, under Conn.mu, and never blocks.
//
// # The reader: the poller or a goroutine
//
// With the poller (Config.Poller "epoll", the default on Linux; poll.go,
// poll_linux.go), an idle connection holds no goroutine and no buffer.
// One epoll instance for the process holds every connection's
// descriptor, edge-triggered (the descriptor stays in the runtime's poller
// too, for writes and for hot connections, below); one goroutine collects
// its reports, parked in the runtime's poller on the instance's own
// descriptor while there are none. A frame's path:
//
//  1. The kernel reports the descriptor readable; the poller goroutine
//     calls Conn.ready, which moves pollReader.rs from readIdle to
//     readRunning (or, if a worker already has the connection, to
//     readAgain) and hands the connection to a worker: a parked one, or a
//     new goroutine. Workers park for a second after each connection and
//     then exit; as many run as connections are being handled at once, so
//     a handler that waits (for room in its queue, for a Concurrent slot)
//     holds only its own connection's worker.
//  2. The worker (Conn.readReady) reads what the socket holds without
//     waiting (a raw read through SyscallConn) into a pooled 8 KiB buffer,
//     with the bytes of an unfinished frame kept from last time in front.
//     A read that does not fill the buffer took everything there was (bytes
//     arriving later are reported anew), so the worker does not read again
//     to find nothing, unless the report was a hang-up.
//  3. Conn.consume parses each complete frame where it lies: the header
//     (checked, and the announced size refused with 1009 before anything
//     is buffered for it), unmasked in place, a control frame answered, a
//     message handled as the goroutine reader does (rate limit, size,
//     UTF-8, order, Concurrent calls). A fragment's payload is copied into
//     pollReader.frag until the message's last fragment.
//  4. When the socket has nothing more (EAGAIN), the bytes of an
//     unfinished frame are copied out of the pooled buffer (pollReader.in,
//     which grows only as bytes arrive, to one frame of at most
//     MaxMessageSize), the buffer goes back, and pollLoop sets rs back
//     to readIdle; if a report came meanwhile (readAgain) it reads again
//     instead. Nothing is re-armed: the next arrival is the next report.
//     Unless the connection is hot (step 5).
//  5. A connection whose last two reads brought input less than hotGap
//     (5 ms) apart is hot (a client calling in a loop, or pipelining):
//     instead of letting go, its worker disarms the descriptor in our
//     instance (EPOLL_CTL_MOD without EPOLLIN), asks the socket whether
//     input is there (a MSG_PEEK) and otherwise waits for it in the
//     runtime's poller, as a goroutine reader does, holding no buffer,
//     then reads again (Conn.awaitInput, poll_linux.go). Each message
//     then costs one readiness report instead of two (ours, with
//     epoll_wait and a hand-off to a worker, and the runtime's, which
//     watches the descriptor for writes anyway). The wait is bounded by
//     the socket's read deadline, hotLinger (50 ms) after the last input;
//     once it passes with nothing read, the worker clears the deadline,
//     re-arms the descriptor (which reports at once what arrived
//     meanwhile: readAgain) and lets go as in step 4. rs stays
//     readRunning throughout: the worker owns the read side.
//  6. A reply is written directly by the worker or queued for the writer
//     (above); a push to an idle connection starts only its writer.
//
// Closing an idle polled connection (Conn.closeCode, from any goroutine)
// calls Conn.ready too: a worker takes it, sees it closing and finishes
// it. A hot connection's worker is woken by the read deadline in the past
// that closeCode sets after marking the connection closing (the worker
// sets its own deadline before it looks at closing, so the past one
// wins). The worker's reads ignore deadlines (raw reads through Control). With Config.Poller "goroutines" (other platforms, or a socket
// without a descriptor), Conn.serve's goroutine is the reader: readLoop
// reads through a bufio.Reader of its own, as before the poller.
//
// Either reader finishes the connection in Conn.end, on its goroutine: it
// leaves the hub, waits for the calls in flight (their replies are
// queued as usual; their context is cancelled only when nobody is left to
// read the replies: the peer closed, the socket failed or the queue is
// being dropped), then seals the queue. The writer flushes what is
// queued, writes the close frame once the queue is sealed and
// half-closes. The reader then drains the peer's input briefly so the
// close frame is not lost to a reset, removes the descriptor from the
// poller and closes the socket; onEnd logs and unregisters.
//
// # Timers
//
// The keepalive ping (every PingInterval), the token's expiry (a
// gateway.notice, then close 4001) and, with the poller, the idle timeout
// (checked against the time input last arrived) are deadlines kept in the
// Conn and ordered in one heap for the process (timers.go), served by one
// goroutine: no runtime timer and no goroutine per connection. Write
// deadlines, the goroutine reader's idle deadline, a hot polled
// connection's wait (one deadline per hotLinger, not per message) and the
// closing handshake's use the runtime poller's deadlines on the socket.
//
// # Queues and back-pressure
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
// idempotent: it records the close reason and unblocks the reader (a read
// deadline in the past, or Conn.ready for a polled connection).
//
// Server.Shutdown drains: /readyz answers 503 and upgrades get 503 at
// once, every connection gets gateway.notice "draining", calls read from
// then on get -32007, and each connection closes with 1001 when the calls
// it has in flight are answered (Conn.busy reaches 0). With a deadline,
// no write or closing handshake outlasts nine tenths of it. Then the
// listeners Serve accepts from are closed, and Serve returns
// ErrServerClosed.

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
// in-process hub (NewMemoryHub) is the default; package natshub is the hub
// of a cluster of nodes joined through NATS, and gateway/hubtest is the
// contract both pass. A room's stream position is an offset and an epoch
// (Position); chat.history's recovered flag is decided once, in the chat
// service, from what the hub returns. A hub that can be unavailable says
// so through Ready() error (/readyz answers 503 meanwhile) and may bring
// its own metrics as a prometheus.Collector. Every Hub method takes a context and returns
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
// a method or an error code gets its first series), Listener.mu,
// epoll.mu (the descriptor table) and deadlines.mu (the timer heap; its
// callbacks run without it) are leaves. A scrape takes Server.mu to copy
// the connections, releases it, then takes each Conn.mu in turn.
// Server.mu is never held with another lock. Conn.space waits on Conn.mu.
// pollReader.rs is an atomic state, not a lock: whoever moves it out of
// readIdle owns the read side until it moves it back. No lock is held
// across a read or write on a socket; SetDeadline calls under Conn.mu make
// no system call (the runtime's poller keeps deadlines).
package gateway
