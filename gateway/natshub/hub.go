package natshub

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/subgate/subgate/gateway"
	"github.com/subgate/subgate/protocols/chat"
)

// Defaults of Options.
const (
	DefaultPrefix        = "subgate"
	DefaultTimeout       = 2 * time.Second
	DefaultGatherTimeout = time.Second
	DefaultPresenceTTL   = 15 * time.Second
)

// Options configure a Hub. The zero value of each field means its default.
type Options struct {
	// URL is the NATS server (or a comma-separated list). Required.
	URL string
	// Prefix names the subjects (<prefix>.room.*), the stream
	// (<prefix>_history) and the bucket (<prefix>_presence), so that
	// several clusters can share one NATS. Letters, digits, '-' and '_'.
	// Default "subgate".
	Prefix string
	// Limits bound history (HistorySize per room, HistoryBytes in all) and
	// rooms (MaxRooms with members, MaxRoomsPerClient), cluster-wide.
	Limits gateway.HubLimits
	// Timeout bounds a hub call whose context has no deadline. Default 2 s.
	Timeout time.Duration
	// GatherTimeout bounds how long Broadcast and Direct wait for the other
	// nodes' counts. Default 1 s.
	GatherTimeout time.Duration
	// PresenceTTL is how long a node that stopped refreshing its lease is
	// still taken for alive. Default 15 s.
	PresenceTTL time.Duration
	// Name names the node in logs and in the NATS connection. Default: a
	// random id.
	Name   string
	Logger *slog.Logger
	// NATS adds options to the NATS connection (credentials, TLS).
	NATS []nats.Option
}

// Hub is the gateway.Hub spanning every node connected to the same NATS.
type Hub struct {
	opt  Options
	lim  gateway.HubLimits
	log  *slog.Logger
	node string // random, subject-safe

	nc   *nats.Conn
	js   jetstream.JetStream
	hist jetstream.Stream
	kv   jetstream.KeyValue

	subjRoom, subjHist, subjAll, subjClient, subjProbe string

	mu         sync.Mutex
	local      map[string]map[gateway.Peer]struct{} // client id -> this node's connections
	members    map[string]map[string]struct{}       // room -> client ids (cluster view)
	joined     map[string]map[string]struct{}       // client id -> rooms (cluster view)
	conns      map[string]map[string]struct{}       // client id -> nodes holding a connection of it
	registered map[string]bool                      // client ids this node put a connection key for
	nodes      map[string]time.Time                 // node -> when its lease was last seen
	subs       map[string]*nats.Subscription        // room -> live subscription
	last       map[string]lastMsg                   // room -> last stored message, as last seen
	histBytes  int
	applied    uint64        // the bucket revision the view has reached
	advanced   chan struct{} // closed (and replaced) when applied grows

	synced    chan struct{} // closed when the watcher has loaded the bucket
	loaded    sync.Once
	rewatch   chan struct{} // NATS is back: make the watcher again
	connected atomic.Bool
	reconnect atomic.Uint64
	stop      chan struct{}
	wg        sync.WaitGroup
}

type lastMsg struct {
	seq uint64
	pos gateway.Position
}

var _ gateway.Hub = (*Hub)(nil)

// ErrUnavailable is returned while the bus cannot be reached.
var ErrUnavailable = errors.New("natshub: bus unavailable")

var b64 = base64.RawURLEncoding

// New connects to NATS, makes the stream and the bucket if they do not
// exist (or updates their limits), loads the cluster's presence and
// starts the node's lease. ctx bounds the start.
func New(ctx context.Context, opt Options) (*Hub, error) {
	h, err := newHub(opt)
	if err != nil {
		return nil, err
	}
	if err := h.connect(ctx); err != nil {
		h.Close()
		return nil, err
	}
	return h, nil
}

func newHub(opt Options) (*Hub, error) {
	if opt.URL == "" {
		return nil, errors.New("natshub: no NATS URL")
	}
	if opt.Prefix == "" {
		opt.Prefix = DefaultPrefix
	}
	if !validPrefix(opt.Prefix) {
		return nil, fmt.Errorf("natshub: prefix %q: use letters, digits, '-' and '_'", opt.Prefix)
	}
	setDefault(&opt.Timeout, DefaultTimeout)
	setDefault(&opt.GatherTimeout, DefaultGatherTimeout)
	setDefault(&opt.PresenceTTL, DefaultPresenceTTL)
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	node := randomID()
	if opt.Name == "" {
		opt.Name = node
	}
	p := opt.Prefix
	return &Hub{
		opt: opt, lim: opt.Limits.WithDefaults(), node: node,
		log:      opt.Logger.With("node", opt.Name),
		subjRoom: p + ".room.", subjHist: p + ".hist.", subjAll: p + ".all", subjClient: p + ".client.", subjProbe: p + ".probe.",
		local: map[string]map[gateway.Peer]struct{}{}, members: map[string]map[string]struct{}{},
		joined: map[string]map[string]struct{}{}, conns: map[string]map[string]struct{}{},
		registered: map[string]bool{}, nodes: map[string]time.Time{},
		subs: map[string]*nats.Subscription{}, last: map[string]lastMsg{},
		synced: make(chan struct{}), stop: make(chan struct{}), advanced: make(chan struct{}), rewatch: make(chan struct{}, 1),
	}, nil
}

func setDefault(d *time.Duration, def time.Duration) {
	if *d <= 0 {
		*d = def
	}
}

func validPrefix(s string) bool {
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return false
		}
	}
	return s != ""
}

func randomID() string {
	var b [8]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Close stops the lease (the node's clients then leave their rooms on the
// other nodes within the presence bound, unless they were detached
// first) and closes the NATS connection.
func (h *Hub) Close() {
	select {
	case <-h.stop:
		return
	default:
		close(h.stop)
	}
	if h.kv != nil && h.nc.IsConnected() {
		ctx, cancel := context.WithTimeout(context.Background(), h.opt.Timeout)
		h.kv.Delete(ctx, leaseKey(h.node))
		cancel()
	}
	h.wg.Wait()
	if h.nc != nil {
		h.nc.Drain()
	}
}

// Ready reports whether the node can serve: connected to the bus, with
// the cluster's presence loaded.
func (h *Hub) Ready() error {
	select {
	case <-h.synced:
	default:
		return fmt.Errorf("%w: loading presence", ErrUnavailable)
	}
	if !h.connected.Load() {
		return ErrUnavailable
	}
	return nil
}

// bound gives ctx the hub's timeout when it has no deadline.
func (h *Hub) bound(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, h.opt.Timeout)
}

// Stats returns the cluster view's rooms with members and the history
// stream's bytes (as of the last lease tick).
func (h *Hub) Stats() gateway.HubStats {
	h.mu.Lock()
	defer h.mu.Unlock()
	return gateway.HubStats{Rooms: len(h.members), HistoryBytes: h.histBytes}
}

// Attach registers a local connection. A client that is in rooms gets
// this node's connection key, so that its rooms are kept while any node
// holds one of its connections.
func (h *Hub) Attach(ctx context.Context, p gateway.Peer) error {
	if err := h.Ready(); err != nil {
		return err
	}
	id := p.ClientID()
	h.mu.Lock()
	set := h.local[id]
	if set == nil {
		set = map[gateway.Peer]struct{}{}
		h.local[id] = set
	}
	set[p] = struct{}{}
	need := len(h.joined[id]) > 0 && !h.registered[id]
	for room := range h.joined[id] {
		h.subscribeLocked(room)
	}
	h.mu.Unlock()
	if need {
		ctx, cancel := h.bound(ctx)
		defer cancel()
		return h.register(ctx, id)
	}
	return nil
}

// register puts this node's connection key for a client.
func (h *Hub) register(ctx context.Context, id string) error {
	if _, err := h.kv.Put(ctx, connKey(id, h.node), nil); err != nil {
		return fmt.Errorf("natshub: registering %s: %w", id, err)
	}
	h.mu.Lock()
	h.registered[id] = len(h.local[id]) > 0
	addTo(h.conns, id, h.node)
	h.mu.Unlock()
	return nil
}

// Detach removes a local connection. When it was the client's last one on
// this node, its connection key goes; when no node holds one any more, the
// client leaves its rooms.
func (h *Hub) Detach(ctx context.Context, p gateway.Peer) error {
	id := p.ClientID()
	h.mu.Lock()
	set := h.local[id]
	delete(set, p)
	if len(set) > 0 {
		h.mu.Unlock()
		return nil
	}
	delete(h.local, id)
	wasRegistered := h.registered[id]
	delete(h.registered, id)
	for room := range h.joined[id] {
		h.unsubscribeIdleLocked(room)
	}
	h.mu.Unlock()
	ctx, cancel := h.bound(ctx)
	defer cancel()
	if !wasRegistered {
		return h.leaveAllIfGone(ctx, id)
	}
	return h.release(ctx, id, h.node)
}

// release ends a node's hold on a client: the client leaves its rooms if
// no node holds a connection of it, then the node's connection key goes.
// In this order, a failure leaves the key behind, and whoever finds it
// (reconcile on this node, the reaper if the node is dead) tries again.
func (h *Hub) release(ctx context.Context, id, node string) error {
	if err := h.leaveAllIfGone(ctx, id); err != nil {
		return err
	}
	if err := h.kv.Delete(ctx, connKey(id, node)); err != nil {
		return fmt.Errorf("natshub: unregistering %s: %w", id, err)
	}
	h.mu.Lock()
	removeFrom(h.conns, id, node)
	h.mu.Unlock()
	return nil
}

// leaveAllIfGone takes a client out of its rooms when no node holds a
// connection of it. The nodes are asked (the connection keys in the view
// may lag behind a connection made a moment ago on another node).
func (h *Hub) leaveAllIfGone(ctx context.Context, id string) error {
	h.mu.Lock()
	rooms := keys(h.joined[id])
	here := len(h.local[id]) > 0
	h.mu.Unlock()
	if here || len(rooms) == 0 {
		return nil
	}
	n, err := h.gather(ctx, h.subjProbe+b64.EncodeToString([]byte(id)), nil)
	if err != nil || n > 0 {
		return err
	}
	var errs []error
	for _, room := range rooms {
		if err := h.dropMember(ctx, room, id); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Join adds a client to a room. The returned members include every join
// made anywhere before this one.
func (h *Hub) Join(ctx context.Context, room, client string) ([]string, gateway.Position, error) {
	ctx, cancel := h.bound(ctx)
	defer cancel()
	h.mu.Lock()
	if len(h.local[client]) == 0 {
		h.mu.Unlock()
		return nil, gateway.Position{}, gateway.ErrNotAttached
	}
	_, member := h.members[room][client]
	if !member {
		if err := h.roomLimitLocked(room, client); err != nil {
			h.mu.Unlock()
			return nil, gateway.Position{}, err
		}
	}
	need := !h.registered[client]
	h.mu.Unlock()
	if need {
		if err := h.register(ctx, client); err != nil {
			return nil, gateway.Position{}, err
		}
	}
	if !member {
		rev, err := h.kv.Put(ctx, memberKey(room, client), []byte(h.node))
		if err != nil {
			return nil, gateway.Position{}, fmt.Errorf("natshub: joining %s: %w", room, err)
		}
		// The watcher applies the join (and pushes its presence); once the
		// view has reached it, it holds every join made before this one.
		if err := h.sync(ctx, rev); err != nil {
			return nil, gateway.Position{}, err
		}
		// The room's subscription must reach the server before the client
		// can expect the messages sent after its join.
		if err := h.nc.FlushWithContext(ctx); err != nil {
			return nil, gateway.Position{}, fmt.Errorf("natshub: joining %s: %w", room, err)
		}
	}
	pos, _, err := h.lastPosition(ctx, room)
	if err != nil {
		return nil, gateway.Position{}, err
	}
	h.mu.Lock()
	members := keys(h.members[room])
	h.mu.Unlock()
	return members, pos, nil
}

func (h *Hub) roomLimitLocked(room, client string) error {
	if len(h.joined[client]) >= h.lim.MaxRoomsPerClient {
		return &gateway.LimitError{Bound: "rooms per client", Max: h.lim.MaxRoomsPerClient}
	}
	if _, ok := h.members[room]; !ok && len(h.members) >= h.lim.MaxRooms {
		return &gateway.LimitError{Bound: "rooms with members in the cluster", Max: h.lim.MaxRooms}
	}
	return nil
}

// Leave takes a client out of a room.
func (h *Hub) Leave(ctx context.Context, room, client string) error {
	ctx, cancel := h.bound(ctx)
	defer cancel()
	if err := h.checkMember(ctx, room, client); err != nil {
		return err
	}
	return h.dropMember(ctx, room, client)
}

// checkMember returns ErrNotMember unless client is in room, looking
// past the view's lag (a join made through another node) before saying so.
func (h *Hub) checkMember(ctx context.Context, room, client string) error {
	for synced := false; ; synced = true {
		h.mu.Lock()
		_, ok := h.members[room][client]
		h.mu.Unlock()
		if ok {
			return nil
		}
		if synced {
			return gateway.ErrNotMember
		}
		if err := h.syncLatest(ctx); err != nil {
			return err
		}
	}
}

// dropMember deletes a membership and applies it to the view at once (the
// watcher's copy of the change then finds nothing to do).
func (h *Hub) dropMember(ctx context.Context, room, client string) error {
	if err := h.kv.Delete(ctx, memberKey(room, client)); err != nil {
		return fmt.Errorf("natshub: leaving %s: %w", room, err)
	}
	h.mu.Lock()
	h.removeMemberLocked(room, client, true)
	h.mu.Unlock()
	return nil
}

// Members returns a room's members, with every change made anywhere
// before the call.
func (h *Hub) Members(ctx context.Context, room string) ([]string, error) {
	ctx, cancel := h.bound(ctx)
	defer cancel()
	if err := h.syncLatest(ctx); err != nil {
		return nil, err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	return keys(h.members[room]), nil
}

func keys(m map[string]struct{}) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func addTo(m map[string]map[string]struct{}, k, v string) bool {
	set := m[k]
	if set == nil {
		set = map[string]struct{}{}
		m[k] = set
	}
	if _, ok := set[v]; ok {
		return false
	}
	set[v] = struct{}{}
	return true
}

func removeFrom(m map[string]map[string]struct{}, k, v string) bool {
	set := m[k]
	if _, ok := set[v]; !ok {
		return false
	}
	delete(set, v)
	if len(set) == 0 {
		delete(m, k)
	}
	return true
}

// addMemberLocked applies a membership to the view; with push, the room's
// other local members get chat.presence join.
func (h *Hub) addMemberLocked(room, client string, push bool) {
	if !addTo(h.members, room, client) {
		return
	}
	addTo(h.joined, client, room)
	if push {
		h.toRoomLocked(room, client, gateway.NewPush(chat.PushPresence, &chat.Presence{Room: room, ClientID: client, Event: chat.EventJoin}))
	}
	if len(h.local[client]) > 0 {
		h.subscribeLocked(room)
	}
}

func (h *Hub) removeMemberLocked(room, client string, push bool) {
	if !removeFrom(h.members, room, client) {
		return
	}
	removeFrom(h.joined, client, room)
	if push {
		h.toRoomLocked(room, client, gateway.NewPush(chat.PushPresence, &chat.Presence{Room: room, ClientID: client, Event: chat.EventLeave}))
	}
	h.unsubscribeIdleLocked(room)
}

// toRoomLocked pushes to this node's connections of every member of room
// but except.
func (h *Hub) toRoomLocked(room, except string, p *gateway.Push) int {
	n := 0
	for id := range h.members[room] {
		if id != except {
			n += deliverAll(h.local[id], p)
		}
	}
	return n
}

func deliverAll(set map[gateway.Peer]struct{}, p *gateway.Push) int {
	n := 0
	for peer := range set {
		if peer.Deliver(p) {
			n++
		}
	}
	return n
}

// Broadcast pushes to every connection of every node.
func (h *Hub) Broadcast(ctx context.Context, p *gateway.Push) (int, error) {
	return h.gatherPush(ctx, h.subjAll, p)
}

// Direct pushes to every connection of a client id, on every node.
func (h *Hub) Direct(ctx context.Context, client string, p *gateway.Push) (int, error) {
	return h.gatherPush(ctx, h.subjClient+b64.EncodeToString([]byte(client)), p)
}

// sync waits until the view has applied the bucket's revision rev.
func (h *Hub) sync(ctx context.Context, rev uint64) error {
	for {
		h.mu.Lock()
		done, ch := h.applied >= rev, h.advanced
		h.mu.Unlock()
		if done {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("%w: presence not caught up: %w", ErrUnavailable, ctx.Err())
		}
	}
}

// syncLatest waits until the view has applied every change made to the
// bucket before the call.
func (h *Hub) syncLatest(ctx context.Context) error {
	if err := h.Ready(); err != nil {
		return err
	}
	st, err := h.kv.Status(ctx)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	info := st.(*jetstream.KeyValueBucketStatus).StreamInfo()
	return h.sync(ctx, info.State.LastSeq)
}

func (h *Hub) closing() bool {
	select {
	case <-h.stop:
		return true
	default:
		return false
	}
}

var (
	descConnected  = prometheus.NewDesc("subgate_bus_connected", "1 while the node is connected to NATS, else 0.", nil, nil)
	descReconnects = prometheus.NewDesc("subgate_bus_reconnects_total", "Reconnections of the node to NATS.", nil, nil)
)

// Describe and Collect make the hub a prometheus.Collector, which the
// gateway registers with its metrics.
func (h *Hub) Describe(ch chan<- *prometheus.Desc) {
	ch <- descConnected
	ch <- descReconnects
}

func (h *Hub) Collect(ch chan<- prometheus.Metric) {
	up := 0.0
	if h.connected.Load() {
		up = 1
	}
	ch <- prometheus.MustNewConstMetric(descConnected, prometheus.GaugeValue, up)
	ch <- prometheus.MustNewConstMetric(descReconnects, prometheus.CounterValue, float64(h.reconnect.Load()))
}
