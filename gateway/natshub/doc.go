// Package natshub is the gateway.Hub that joins gateway nodes through NATS:
// rooms, presence, broadcast and direct messages reach every node, and
// room history lives in JetStream, so that it outlives any node.
//
// # What lives where
//
//   - History: one JetStream stream (<prefix>_history) with a subject per
//     room, <prefix>.hist.<room>. Each message carries its room offset and
//     the room's epoch in headers. A send reads the room's last message
//     (cached per node) and appends with Nats-Expected-Last-Subject-Sequence,
//     retrying on a conflict, so a room's offsets are consecutive and unique
//     cluster-wide. A room with no stored message (new, or every message
//     evicted, or the stream recreated) starts a new random epoch at
//     offset 1. Limits: the stream keeps HistorySize messages per room and
//     HistoryBytes in all (the oldest go first); HistoryBytesPerRoom is not
//     enforced (JetStream has no per-subject byte bound).
//   - Presence: one key-value bucket (<prefix>_presence) that every node
//     watches whole, so that its view of the cluster (who is in which room,
//     which node holds a connection of which room member, which nodes are
//     alive) is local memory. Keys: m.<room>.<client> for a membership,
//     c.<client>.<node> while a node holds a connection of a client that is
//     in rooms, n.<node> for a node's lease, refreshed every PresenceTTL/3.
//     Names are base64url in keys and subjects (ids may contain dots).
//   - Live delivery: a room message is published once, after it is stored,
//     on <prefix>.room.<room> as MessagePack of the chat types (the
//     canonical form); a node subscribes to a room's subject while one of
//     its local connections belongs to a member, and encodes each push
//     once per codec in use. Broadcast (<prefix>.all) and direct messages
//     (<prefix>.client.<client>) are requests that every live node answers
//     with the number of connections it queued the push to; the caller
//     sums the answers it gets within GatherTimeout.
//   - "Does any node still hold a connection of this client?" is asked, not
//     read from the view (<prefix>.probe.<client>, answered by every live
//     node), so that a connection made a moment ago elsewhere counts.
//   - Presence pushes come from the bucket's changes: each node pushes
//     chat.presence join/leave to its local members of the room when its
//     view changes, so a crashed node's members get their leaves too.
//
// # A node that dies
//
// Its lease stops being refreshed. Every node checks the leases it has
// seen every PresenceTTL/3; one not refreshed for PresenceTTL is asked
// directly (<prefix>.node.<id>, PresenceTTL/3 to answer: a node too loaded
// to refresh in time is not dead), and if it does not answer the node that
// notices releases the dead node's clients (each leaves its
// rooms unless a live node answers that it holds one of its connections,
// then its connection key goes) and deletes the lease.
// Deleting is idempotent and every node pushes leaves from its own view
// (a member already gone is not pushed twice), so several nodes reaping at
// once is harmless. The bound: a crashed node's clients leave their rooms
// within PresenceTTL + PresenceTTL/3 (20 s by default).
//
// # NATS away
//
// While the connection to NATS is down the hub is not Ready (/readyz 503,
// upgrades 503) and calls that need the bus fail after Options.Timeout.
// On reconnect the presence watcher is made again from the last revision
// the view applied (its consumer may be gone with the server), every
// lease counts as fresh (no node could refresh during the outage), and
// the next lease tick repairs what failed meanwhile (reconcile): a
// connection key of this node whose client is gone is released, a local
// client in rooms without a key gets one. Releasing a client leaves its
// rooms first and deletes the key last, so a failure keeps the key and the
// next tick (or the reaper) tries again. This assumes NATS keeps its
// JetStream store across restarts (file storage on a persistent volume).
//
// # Goroutines and locks
//
// Hub.mu guards the view, the local connections and the subscriptions; it
// is never held across a network wait (publishing and subscribing only
// queue to the NATS connection). nats.go runs each subscription's handler
// on its own goroutine, in order; the bucket watcher and the lease ticker
// are one goroutine each. Deliveries (gateway.Peer.Deliver, which never
// blocks) happen under Hub.mu, as in the in-process hub.
package natshub
