// Package bench is the load generator behind `subgate bench`: it dials many
// WebSocket connections to a gateway (subgate, or a peer to compare it
// with), drives one scenario for a fixed time and reports throughput, HDR
// latency percentiles and every error.
//
// # Goroutines
//
// Connections are dialed by a small pool of goroutines, paced by a token
// bucket (Config.DialRate) so that thousands of handshakes do not overflow
// the server's accept backlog. Config.URL may name several gateways (the
// nodes of a cluster): connection g dials node g/E mod N (E encodings in
// use, N nodes), so that the nodes share the connections and each gets
// every encoding; children of -procs compute it from g alike. Each
// load-generating slot then runs on a goroutine of its own: one per connection for ping, Config.Inflight per
// connection for pipeline (the client is safe for concurrent calls, so that
// many calls are outstanding on the connection), one per sender for
// broadcast and room, one per dialer for connect. Subgate, naive and seed
// targets use package client (its codecs and framing, not a copy); pushes
// arrive through client.Options.OnPush on the client's own goroutine.
// Centrifugo is driven by a small client of its JSON protocol
// (centrifugo.go). Every loop ends by the deadline of the run; a call or a
// dial has a fixed timeout, and the drain after a broadcast is bounded.
//
// # Latency
//
// With Config.Rate 0 the loop is closed: a slot sends, waits for the reply
// and sends again, and the latency is taken from the actual send. With a
// rate the loop is open: operations are tickets on a fixed schedule,
// ticket n due at start + n/Rate, shared by all slots of the process; a
// slot takes the next ticket, waits until it is due (not at all when it is
// late) and measures the latency from the ticket's due time. A stall of the
// server therefore shows in every operation it delayed, not only in the
// one that was stuck (no coordinated omission). The first Config.Warmup of
// the run is not measured.
//
// Latencies go to HDR histograms (1 µs to 60 s, 3 significant digits),
// sharded per encoding so that recording rarely contends; percentiles come
// from the merged histogram. Child processes (-procs) print their
// histograms encoded in their JSON, and the parent merges the histograms,
// never the percentiles.
//
// # Deliveries
//
// In broadcast and room every message text carries the run's id, the
// sender, a sequence number, whether it was sent in the warmup and its send
// time (the due time in an open loop): "sgb RUN SENDER SEQ M|W UNIXNANO".
// Each subscriber counts the measured messages of this run it receives and
// records send-to-delivery latency. A subscriber expects every measured
// message that got a successful reply (broadcast: all of them; room: those
// of its room); after the senders stop, the run waits (bounded) until every
// subscriber has what it expects. Lost = expected - received, and lost
// deliveries count as errors. In broadcast and room, ops are deliveries.
package bench
