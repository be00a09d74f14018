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

// Keys of the presence bucket.
func memberKey(room, client string) string {
	return "m." + b64.EncodeToString([]byte(room)) + "." + b64.EncodeToString([]byte(client))
}
func connKey(client, node string) string {
	return "c." + b64.EncodeToString([]byte(client)) + "." + node
}
func leaseKey(node string) string { return "n." + node }

// parseKey splits a bucket key into its kind and its two names.
func parseKey(k string) (kind byte, a, b string, ok bool) {
	parts := strings.Split(k, ".")
	dec := func(s string) (string, bool) {
		v, err := b64.DecodeString(s)
		return string(v), err == nil
	}
	switch {
	case len(parts) == 3 && parts[0] == "m":
		room, ok1 := dec(parts[1])
		client, ok2 := dec(parts[2])
		return 'm', room, client, ok1 && ok2
	case len(parts) == 3 && parts[0] == "c":
		client, ok1 := dec(parts[1])
		return 'c', client, parts[2], ok1
	case len(parts) == 2 && parts[0] == "n":
		return 'n', parts[1], "", true
	}
	return 0, "", "", false
}

// watch applies the bucket's changes to the view. Changes loaded at start
// push nothing; later ones push presence to local members. After NATS
// comes back (Hub.rewatch) the watcher is made again, resuming after the
// last revision applied, so that no change made meanwhile is missed.
func (h *Hub) watch(w jetstream.KeyWatcher) {
	defer h.wg.Done()
	for {
		h.consume(w)
		if h.closing() {
			return // closing the NATS connection ends the watcher
		}
		// Stopping deletes the watcher's consumer with a request that may
		// wait for a server that no longer has it: not on this goroutine.
		go w.Stop()
		if w = h.resume(); w == nil {
			return
		}
	}
}

// consume applies a watcher's changes until it ends, NATS came back or the
// hub stops.
func (h *Hub) consume(w jetstream.KeyWatcher) {
	for {
		select {
		case <-h.stop:
			return
		case <-h.rewatch:
			return
		case e, ok := <-w.Updates():
			if !ok {
				return
			}
			if e == nil {
				h.loaded.Do(func() { close(h.synced) })
				continue
			}
			h.apply(e, h.isLoaded())
		}
	}
}

// resume makes a watcher that delivers every change after the last one
// applied; nil when the hub stops first. It retries every 250 ms while
// NATS is away.
func (h *Hub) resume() jetstream.KeyWatcher {
	for {
		h.mu.Lock()
		from := h.applied + 1
		h.mu.Unlock()
		// The watcher lives as long as its context: not a bounded one.
		w, err := h.kv.WatchAll(context.Background(), jetstream.IncludeHistory(), jetstream.ResumeFromRevision(from))
		if err == nil {
			h.log.Info("watching presence again", "from_revision", from)
			return w
		}
		h.log.Warn("watching presence", "err", err)
		select {
		case <-h.stop:
			return nil
		case <-time.After(250 * time.Millisecond):
		}
	}
}

func (h *Hub) isLoaded() bool {
	select {
	case <-h.synced:
		return true
	default:
		return false
	}
}

func (h *Hub) apply(e jetstream.KeyValueEntry, live bool) {
	kind, a, b, ok := parseKey(e.Key())
	if !ok {
		h.mu.Lock()
		h.advanceLocked(e.Revision())
		h.mu.Unlock()
		return
	}
	put := e.Operation() == jetstream.KeyValuePut
	h.mu.Lock()
	defer h.mu.Unlock()
	defer h.advanceLocked(e.Revision())
	switch kind {
	case 'm':
		if put {
			h.addMemberLocked(a, b, live)
			if len(h.local[b]) > 0 && !h.registered[b] {
				go h.registerQuietly(b)
			}
		} else {
			h.removeMemberLocked(a, b, live)
		}
	case 'c':
		if put {
			addTo(h.conns, a, b)
		} else {
			removeFrom(h.conns, a, b)
		}
	case 'n':
		if put {
			h.nodes[a] = time.Now()
		} else {
			delete(h.nodes, a)
		}
	}
}

func (h *Hub) advanceLocked(rev uint64) {
	if rev > h.applied {
		h.applied = rev
		close(h.advanced)
		h.advanced = make(chan struct{})
	}
}

// registerQuietly registers a local client that another node made a member
// of a room, so that its rooms outlive its connections elsewhere.
func (h *Hub) registerQuietly(id string) {
	ctx, cancel := context.WithTimeout(context.Background(), h.opt.Timeout)
	defer cancel()
	if err := h.register(ctx, id); err != nil {
		h.log.Warn("registering a connection", "client_id", id, "err", err)
	}
}

// lease refreshes this node's lease and reaps the nodes whose lease
// expired, every PresenceTTL/3.
func (h *Hub) lease() {
	defer h.wg.Done()
	tick := time.NewTicker(h.opt.PresenceTTL / 3)
	defer tick.Stop()
	for {
		select {
		case <-h.stop:
			return
		case <-tick.C:
		}
		h.refresh()
	}
}

func (h *Hub) refresh() {
	ctx, cancel := context.WithTimeout(context.Background(), h.opt.Timeout)
	defer cancel()
	if _, err := h.kv.Put(ctx, leaseKey(h.node), []byte(h.opt.Name)); err != nil {
		h.log.Warn("refreshing the node's lease", "err", err)
		return // a node cut off from the bus reaps nobody
	}
	if info, err := h.hist.Info(ctx); err == nil {
		h.mu.Lock()
		h.histBytes = int(info.State.Bytes)
		h.mu.Unlock()
	}
	for _, node := range h.expired() {
		ctx, cancel := context.WithTimeout(context.Background(), h.opt.Timeout)
		if err := h.reap(ctx, node); err != nil {
			h.log.Warn("removing a dead node's clients", "dead", node, "err", err)
		}
		cancel()
	}
	ctx, cancel = context.WithTimeout(context.Background(), h.opt.Timeout)
	defer cancel()
	if err := h.reconcile(ctx); err != nil {
		h.log.Warn("repairing presence", "err", err)
	}
}

// reconcile repairs what a call that failed while NATS was away left
// behind: this node's connection keys of clients it no longer holds go
// (and the clients leave their rooms when no node holds them), and local
// clients in rooms that have no key get one.
func (h *Hub) reconcile(ctx context.Context) error {
	h.mu.Lock()
	var stale, missing []string
	for id, set := range h.conns {
		if _, ok := set[h.node]; ok && len(h.local[id]) == 0 {
			stale = append(stale, id)
		}
	}
	for id := range h.local {
		if len(h.joined[id]) > 0 && !h.registered[id] {
			missing = append(missing, id)
		}
	}
	h.mu.Unlock()
	var errs []error
	for _, id := range stale {
		errs = append(errs, h.release(ctx, id, h.node))
	}
	for _, id := range missing {
		errs = append(errs, h.register(ctx, id))
	}
	return errors.Join(errs...)
}

// graceLeases counts every lease as fresh: after an outage of the bus no
// node could refresh its lease, and none is dead for it.
func (h *Hub) graceLeases() {
	now := time.Now()
	h.mu.Lock()
	for n := range h.nodes {
		h.nodes[n] = now
	}
	h.mu.Unlock()
}

func (h *Hub) expired() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var dead []string
	for n, seen := range h.nodes {
		if n != h.node && time.Since(seen) > h.opt.PresenceTTL {
			dead = append(dead, n)
		}
	}
	// A connection key of a node without a lease (one that died before
	// this node started watching, or that lost its lease) is dead too.
	for _, set := range h.conns {
		for n := range set {
			if _, ok := h.nodes[n]; !ok && n != h.node {
				dead = append(dead, n)
			}
		}
	}
	return dead
}

// reap removes a dead node: its connection keys, the memberships of its
// clients that have no connection on another node, and its lease.
func (h *Hub) reap(ctx context.Context, node string) error {
	h.mu.Lock()
	delete(h.nodes, node) // so that probes do not wait for its answer
	var clients []string
	for id, set := range h.conns {
		if _, ok := set[node]; ok {
			clients = append(clients, id)
		}
	}
	h.mu.Unlock()
	h.log.Info("node lease expired: removing its clients", "dead", node, "clients", len(clients))
	var errs []error
	for _, id := range clients {
		errs = append(errs, h.release(ctx, id, node))
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	return h.kv.Delete(ctx, leaseKey(node))
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
