package natshub

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/subgate/subgate/gateway"
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

	subjRoom, subjHist, subjAll, subjClient, subjProbe, subjNode string

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
		subjRoom: p + ".room.", subjHist: p + ".hist.", subjAll: p + ".all", subjClient: p + ".client.", subjProbe: p + ".probe.", subjNode: p + ".node.",
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
