package gateway

import (
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Refusal kinds: the reason label of subgate_handshakes_refused_total.
// The log's reason field is finer (max_conns, token_expired, ...).
const (
	refusedOrigin      = "origin"      // 403: Origin not allowed
	refusedAuth        = "auth"        // 401: token missing or invalid
	refusedCap         = "cap"         // 503: a connection cap or the fd budget
	refusedDraining    = "draining"    // 503: the server is shutting down
	refusedNoProtocol  = "no_protocol" // 400, or 101 then 1002: nothing offered is enabled
	refusedBadRequest  = "bad_request" // 400/405: bad client id, not GET, bad upgrade headers
	refusedUnavailable = "unavailable" // 503: the hub could not register the connection
)

var refusalKinds = []string{refusedOrigin, refusedAuth, refusedCap, refusedDraining, refusedNoProtocol, refusedBadRequest, refusedUnavailable}

// Method labels for calls that name no registered method: the label set
// must not be the client's to grow.
const (
	methodUnknown = "unknown" // a method that is not registered (-32601)
	methodInvalid = "invalid" // no method at all: a message that did not decode
)

// callBuckets are the call-latency histogram's bounds in seconds: a chat
// call takes tens of microseconds, a slow handler may take seconds.
var callBuckets = []float64{50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3, 5e-3, 10e-3, 25e-3, 50e-3, 100e-3, 250e-3, 500e-3, 1, 2.5}

// metrics are a server's Prometheus collectors. Every series a message or
// a call touches is resolved once (per protocol at New, per method on its
// first call) and kept, so that counting is an atomic add with no label
// lookup and no allocation. Connections hold their protocol's *protoMetrics.
type metrics struct {
	reg      *prometheus.Registry
	protos   map[string]*protoMetrics // by protocol name; fixed after New
	refused  map[string]prometheus.Counter
	closes   [len(closeInfo)]prometheus.Counter
	calls    *prometheus.CounterVec
	duration *prometheus.HistogramVec

	mu      sync.Mutex // serialises adding methods (copy, change, publish)
	methods atomic.Pointer[map[string]*methodMetrics]
	unknown *methodMetrics
	invalid *methodMetrics
}

// protoMetrics are the series of one protocol.
type protoMetrics struct {
	idx                        int // index into methodMetrics.byProto
	name                       string
	conns                      prometheus.Gauge
	accepted                   prometheus.Counter
	msgsIn, bytesIn            prometheus.Counter
	msgsOut, bytesOut          prometheus.Counter
	pushesSent, pushesDropped  prometheus.Counter
	slowConsumers, rateLimited prometheus.Counter
	repliesTooLarge            prometheus.Counter
}

// methodMetrics are one method label's series, per protocol.
type methodMetrics struct {
	name    string
	byProto []methodProto
}

type methodProto struct {
	ok       prometheus.Counter
	duration prometheus.Observer
	// errs holds the counter of each error code seen, copy-on-write: a
	// new code is rare, and the hot path only loads.
	errs atomic.Pointer[map[int64]prometheus.Counter]
}

func newMetrics(s *Server, reg *prometheus.Registry) *metrics {
	if reg == nil {
		reg = prometheus.NewRegistry()
		reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	m := &metrics{reg: reg, protos: map[string]*protoMetrics{}, refused: map[string]prometheus.Counter{}}
	f := promFactory{reg}
	byProto := func(name, help string) *prometheus.CounterVec { return f.counters(name, help, "protocol") }
	conns := f.gauges("subgate_connections", "Open WebSocket connections.", "protocol")
	accepted := byProto("subgate_handshakes_accepted_total", "Upgrades accepted.")
	msgsIn := byProto("subgate_messages_received_total", "WebSocket data messages received (all fragments of one message count once).")
	bytesIn := byProto("subgate_received_bytes_total", "Payload bytes of the data messages received.")
	msgsOut := byProto("subgate_messages_sent_total", "WebSocket data messages written to sockets (replies, pushes, notices).")
	bytesOut := byProto("subgate_sent_bytes_total", "Payload bytes of the data messages written to sockets.")
	pushes := byProto("subgate_pushes_sent_total", "Pushes queued to a connection.")
	dropped := byProto("subgate_pushes_dropped_total", "Pushes not delivered: refused by a full or closing queue, or discarded with a slow consumer's queue.")
	slow := byProto("subgate_slow_consumer_disconnects_total", "Connections closed with 4000 because their send queue overflowed.")
	limited := byProto("subgate_rate_limit_disconnects_total", "Connections closed with 1008 after too many calls refused by the rate limit.")
	tooLarge := byProto("subgate_replies_too_large_total", "Replies replaced by -32008 because they exceeded the reply budget.")
	for i, p := range s.cfg.Protocols {
		m.protos[p.Name] = &protoMetrics{
			idx: i, name: p.Name,
			conns:    conns.WithLabelValues(p.Name),
			accepted: accepted.WithLabelValues(p.Name),
			msgsIn:   msgsIn.WithLabelValues(p.Name), bytesIn: bytesIn.WithLabelValues(p.Name),
			msgsOut: msgsOut.WithLabelValues(p.Name), bytesOut: bytesOut.WithLabelValues(p.Name),
			pushesSent: pushes.WithLabelValues(p.Name), pushesDropped: dropped.WithLabelValues(p.Name),
			slowConsumers: slow.WithLabelValues(p.Name), rateLimited: limited.WithLabelValues(p.Name),
			repliesTooLarge: tooLarge.WithLabelValues(p.Name),
		}
	}
	refused := f.counters("subgate_handshakes_refused_total", "Upgrade requests refused, by reason: origin (403), auth (401), cap and draining (503), no_protocol (400 or close 1002), bad_request (400, 405).", "reason")
	for _, k := range refusalKinds {
		m.refused[k] = refused.WithLabelValues(k)
	}
	closes := f.counters("subgate_closes_total", "Connections ended, by close reason (peer: the client closed; io_error: no close frame).", "reason")
	for r := range closeInfo {
		m.closes[r] = closes.WithLabelValues(CloseReason(r).String())
	}
	m.calls = f.counters("subgate_calls_total", "Calls and notifications handled, by method (unknown: not registered; invalid: did not decode), protocol and outcome (ok, or the JSON-RPC error code).", "method", "protocol", "outcome")
	m.duration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "subgate_call_duration_seconds", Help: "Time from a decoded call to its encoded reply, by method and protocol.", Buckets: callBuckets,
	}, []string{"method", "protocol"})
	reg.MustRegister(m.duration)
	empty := map[string]*methodMetrics{}
	m.methods.Store(&empty)
	m.unknown = m.newMethod(methodUnknown)
	m.invalid = m.newMethod(methodInvalid)
	reg.MustRegister(&queuedCollector{s: s, desc: prometheus.NewDesc("subgate_queued_bytes",
		"Bytes accepted for sending and not yet written to sockets, by protocol (read at scrape time).", []string{"protocol"}, nil)})
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "subgate_draining",
		Help: "1 while the server drains (/readyz answers 503), else 0."}, func() float64 {
		if s.stopping.Load() {
			return 1
		}
		return 0
	}))
	if st, ok := s.hub.(interface{ Stats() HubStats }); ok {
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "subgate_rooms",
			Help: "Rooms of the node, with members or history."}, func() float64 { return float64(st.Stats().Rooms) }))
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "subgate_history_bytes",
			Help: "Bytes of room history kept by the node (a message costs its text, sender and 64)."}, func() float64 { return float64(st.Stats().HistoryBytes) }))
	}
	// A hub on a network brings its own metrics (the bus's state).
	if c, ok := s.hub.(prometheus.Collector); ok {
		reg.MustRegister(c)
	}
	return m
}

// promFactory makes and registers vectors.
type promFactory struct{ reg prometheus.Registerer }

func (f promFactory) counters(name, help string, labels ...string) *prometheus.CounterVec {
	v := prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels)
	f.reg.MustRegister(v)
	return v
}

func (f promFactory) gauges(name, help string, labels ...string) *prometheus.GaugeVec {
	v := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: name, Help: help}, labels)
	f.reg.MustRegister(v)
	return v
}

func (m *metrics) newMethod(name string) *methodMetrics {
	mm := &methodMetrics{name: name, byProto: make([]methodProto, len(m.protos))}
	for _, p := range m.protos {
		mp := &mm.byProto[p.idx]
		mp.ok = m.calls.WithLabelValues(name, p.name, "ok")
		mp.duration = m.duration.WithLabelValues(name, p.name)
		empty := map[int64]prometheus.Counter{}
		mp.errs.Store(&empty)
	}
	return mm
}

// method returns the series of a method label. A registered method's are
// made on its first call; any other name counts as "unknown".
func (m *metrics) method(name string, registered func(string) bool) *methodMetrics {
	if mm, ok := (*m.methods.Load())[name]; ok {
		return mm
	}
	if !registered(name) {
		return m.unknown
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	old := *m.methods.Load()
	if mm, ok := old[name]; ok {
		return mm
	}
	next := make(map[string]*methodMetrics, len(old)+1)
	for k, v := range old {
		next[k] = v
	}
	mm := m.newMethod(name)
	next[name] = mm
	m.methods.Store(&next)
	return mm
}

// observe counts one call's outcome (0: ok) and, when d >= 0, its latency.
func (m *metrics) observe(pm *protoMetrics, mm *methodMetrics, code int64, d time.Duration) {
	mp := &mm.byProto[pm.idx]
	if d >= 0 {
		mp.duration.Observe(d.Seconds())
	}
	if code == 0 {
		mp.ok.Inc()
		return
	}
	if c, ok := (*mp.errs.Load())[code]; ok {
		c.Inc()
		return
	}
	m.mu.Lock()
	old := *mp.errs.Load()
	c, ok := old[code]
	if !ok {
		c = m.calls.WithLabelValues(mm.name, pm.name, strconv.FormatInt(code, 10))
		next := make(map[int64]prometheus.Counter, len(old)+1)
		for k, v := range old {
			next[k] = v
		}
		next[code] = c
		mp.errs.Store(&next)
	}
	m.mu.Unlock()
	c.Inc()
}

// errorCode is the code a handler error reaches the client with; 0 for nil.
func errorCode(err error) int64 {
	if err == nil {
		return 0
	}
	return int64(asRPCError(err).Code)
}

// closed counts a connection's end.
func (m *metrics) closed(pm *protoMetrics, r CloseReason) {
	m.closes[r].Inc()
	switch r {
	case CloseSlowConsumer:
		pm.slowConsumers.Inc()
	case CloseRateLimited:
		pm.rateLimited.Inc()
	}
}

// Handler serves the registry in the Prometheus text format.
func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// queuedCollector sums, at scrape time, the bytes each connection has not
// yet written: nothing on the hot path keeps a running total.
type queuedCollector struct {
	s    *Server
	desc *prometheus.Desc
}

func (q *queuedCollector) Describe(ch chan<- *prometheus.Desc) { ch <- q.desc }

func (q *queuedCollector) Collect(ch chan<- prometheus.Metric) {
	sums := make(map[string]int, len(q.s.m.protos))
	for name := range q.s.m.protos {
		sums[name] = 0
	}
	for _, c := range q.s.snapshot() {
		c.mu.Lock()
		sums[c.info.Protocol.Name] += c.pending
		c.mu.Unlock()
	}
	for name, n := range sums {
		ch <- prometheus.MustNewConstMetric(q.desc, prometheus.GaugeValue, float64(n), name)
	}
}
