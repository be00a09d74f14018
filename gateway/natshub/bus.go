package natshub

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/subgate/subgate/codec"
	"github.com/subgate/subgate/gateway"
	"github.com/subgate/subgate/protocols"
	"github.com/subgate/subgate/protocols/chat"
)

// connect dials NATS, makes the stream and the bucket, subscribes to
// broadcasts and direct messages and starts the watcher and the lease.
func (h *Hub) connect(ctx context.Context) error {
	opts := append([]nats.Option{
		nats.Name("subgate " + h.opt.Name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			h.connected.Store(false)
			if !h.closing() {
				h.log.Warn("bus disconnected", "err", err)
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			h.reconnect.Add(1)
			h.graceLeases()
			select { // the watcher's consumer may be gone with the server
			case h.rewatch <- struct{}{}:
			default:
			}
			h.connected.Store(true)
			h.log.Info("bus reconnected", "url", nc.ConnectedUrlRedacted())
		}),
		nats.ClosedHandler(func(*nats.Conn) { h.connected.Store(false) }),
	}, h.opt.NATS...)
	nc, err := nats.Connect(h.opt.URL, opts...)
	if err != nil {
		return fmt.Errorf("natshub: connecting to %s: %w", h.opt.URL, err)
	}
	h.nc = nc
	h.connected.Store(true)
	h.log.Info("connected to the bus", "url", nc.ConnectedUrlRedacted())
	if h.js, err = jetstream.New(nc); err != nil {
		return err
	}
	if err := h.makeStores(ctx); err != nil {
		return err
	}
	if _, err := nc.Subscribe(h.subjAll, h.onBroadcast); err != nil {
		return err
	}
	if _, err := nc.Subscribe(h.subjClient+"*", h.onDirect); err != nil {
		return err
	}
	if _, err := nc.Subscribe(h.subjProbe+"*", h.onProbe); err != nil {
		return err
	}
	// Asked before the node is taken for dead (Hub.alive).
	if _, err := nc.Subscribe(h.subjNode+h.node, func(m *nats.Msg) { m.Respond(nil) }); err != nil {
		return err
	}
	w, err := h.kv.WatchAll(context.Background())
	if err != nil {
		return fmt.Errorf("natshub: watching presence: %w", err)
	}
	h.wg.Add(1)
	go h.watch(w)
	select {
	case <-h.synced:
	case <-ctx.Done():
		return fmt.Errorf("natshub: loading presence: %w", ctx.Err())
	}
	// The node's lease is in the bucket, and in its own view, before New
	// returns: from then on every node's broadcast waits for its answer.
	rev, err := h.kv.Put(ctx, leaseKey(h.node), []byte(h.opt.Name))
	if err != nil {
		return fmt.Errorf("natshub: taking a lease: %w", err)
	}
	if err := h.sync(ctx, rev); err != nil {
		return err
	}
	h.wg.Add(1)
	go h.lease()
	h.log.Info("joined the cluster", "prefix", h.opt.Prefix)
	return nil
}

func (h *Hub) makeStores(ctx context.Context) error {
	var err error
	h.hist, err = h.js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:              h.opt.Prefix + "_history",
		Description:       "subgate room history: one subject per room",
		Subjects:          []string{h.subjHist + ">"},
		MaxMsgsPerSubject: int64(h.lim.HistorySize),
		MaxBytes:          int64(h.lim.HistoryBytes),
		Discard:           jetstream.DiscardOld,
		Storage:           jetstream.FileStorage,
		AllowDirect:       true,
	})
	if err != nil {
		return fmt.Errorf("natshub: history stream: %w", err)
	}
	h.kv, err = h.js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      h.opt.Prefix + "_presence",
		Description: "subgate presence: memberships, connections, node leases",
		History:     1,
		Storage:     jetstream.FileStorage,
	})
	if err != nil {
		return fmt.Errorf("natshub: presence bucket: %w", err)
	}
	return nil
}

// subscribeLocked starts the live subscription of a room.
func (h *Hub) subscribeLocked(room string) {
	if h.subs[room] != nil {
		return
	}
	sub, err := h.nc.Subscribe(h.subjRoom+b64.EncodeToString([]byte(room)), func(m *nats.Msg) { h.onRoom(room, m) })
	if err != nil {
		h.log.Error("subscribing to a room", "room", room, "err", err)
		return
	}
	h.subs[room] = sub
}

// unsubscribeIdleLocked ends a room's subscription when no local
// connection belongs to one of its members.
func (h *Hub) unsubscribeIdleLocked(room string) {
	sub := h.subs[room]
	if sub == nil {
		return
	}
	for id := range h.members[room] {
		if len(h.local[id]) > 0 {
			return
		}
	}
	sub.Unsubscribe()
	delete(h.subs, room)
}

// A push travels between nodes in one canonical form: the msgpack
// encoding's notification, exactly what a msgpack connection receives.
// The sending node's msgpack connections share those bytes, and so do the
// receiving node's (decodePush keeps them in the push); other encodings
// are encoded once per node.
var canonical = func() codec.Codec {
	p, _ := protocols.Lookup(protocols.All, "msgpack")
	return p.Codec
}()

func encodePush(p *gateway.Push) ([]byte, error) { return p.Bytes(canonical) }

func decodePush(b []byte) (*gateway.Push, error) {
	var one [1]codec.Message
	msgs, batch, err := canonical.Decode(one[:0], b)
	if err != nil {
		return nil, err
	}
	if batch || len(msgs) != 1 || msgs[0].Kind != codec.KindNotification {
		return nil, errors.New("natshub: not a notification")
	}
	m := msgs[0]
	var body any
	switch m.Method {
	case chat.PushMessage:
		body = &chat.Message{}
	case chat.PushPresence:
		body = &chat.Presence{}
	default:
		body = new(map[string]any)
	}
	if err := canonical.Unmarshal(m.Body, body); err != nil {
		return nil, err
	}
	return gateway.NewEncodedPush(m.Method, body, canonical, b), nil
}

func (h *Hub) onRoom(room string, m *nats.Msg) {
	p, err := decodePush(m.Data)
	if err != nil {
		h.log.Error("decoding a room push", "room", room, "err", err)
		return
	}
	h.mu.Lock()
	h.toRoomLocked(room, "", p)
	h.mu.Unlock()
}

func (h *Hub) onBroadcast(m *nats.Msg) {
	h.answer(m, func(p *gateway.Push) int {
		n := 0
		for _, set := range h.local {
			n += deliverAll(set, p)
		}
		return n
	})
}

func (h *Hub) onDirect(m *nats.Msg) {
	id, err := b64.DecodeString(strings.TrimPrefix(m.Subject, h.subjClient))
	if err != nil {
		return
	}
	h.answer(m, func(p *gateway.Push) int { return deliverAll(h.local[string(id)], p) })
}

// answer delivers a gathered push to this node's connections and replies
// with their number (0 included, so that the caller stops waiting).
func (h *Hub) answer(m *nats.Msg, deliver func(*gateway.Push) int) {
	p, err := decodePush(m.Data)
	if err != nil {
		h.log.Error("decoding a push", "subject", m.Subject, "err", err)
		return
	}
	h.mu.Lock()
	n := deliver(p)
	h.mu.Unlock()
	if m.Reply != "" {
		m.Respond(strconv.AppendInt(nil, int64(n), 10))
	}
}

// answering counts the nodes expected to answer a request: those whose
// lease was refreshed within the last two refresh periods. A node that
// missed two refreshes is likely dead: a broadcast does not wait for it
// (it is counted if it answers anyway).
func (h *Hub) answering() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, seen := range h.nodes {
		if time.Since(seen) <= 2*h.opt.PresenceTTL/3 {
			n++
		}
	}
	return n
}

// gatherPush publishes a push to every node and sums their counts.
func (h *Hub) gatherPush(ctx context.Context, subject string, p *gateway.Push) (int, error) {
	data, err := encodePush(p)
	if err != nil {
		return 0, err
	}
	return h.gather(ctx, subject, data)
}

// onProbe answers how many connections of a client this node holds.
func (h *Hub) onProbe(m *nats.Msg) {
	id, err := b64.DecodeString(strings.TrimPrefix(m.Subject, h.subjProbe))
	if err != nil {
		return
	}
	h.mu.Lock()
	n := len(h.local[string(id)])
	h.mu.Unlock()
	m.Respond(strconv.AppendInt(nil, int64(n), 10))
}

// gather publishes a push to every node and sums the counts of those that
// answer within GatherTimeout: it stops waiting when every node it knows
// alive has answered.
func (h *Hub) gather(ctx context.Context, subject string, data []byte) (int, error) {
	// Every lease put before the call is then known, and so is every
	// node that should answer.
	if err := h.syncLatest(ctx); err != nil {
		return 0, err
	}
	ctx, cancel := context.WithTimeout(ctx, h.opt.GatherTimeout)
	defer cancel()
	inbox := h.nc.NewInbox()
	sub, err := h.nc.SubscribeSync(inbox)
	if err != nil {
		return 0, err
	}
	defer sub.Unsubscribe()
	if err := h.nc.PublishRequest(subject, inbox, data); err != nil {
		return 0, err
	}
	want := max(h.answering(), 1)
	total := 0
	for got := 0; got < want; got++ {
		m, err := sub.NextMsgWithContext(ctx)
		if err != nil {
			break // a node that does not answer in time is not counted
		}
		n, err := strconv.Atoi(string(m.Data))
		if err == nil && n > 0 {
			total += n
		}
	}
	return total, nil
}
