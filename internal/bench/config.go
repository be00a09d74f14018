package bench

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/subgate/subgate/protocols"
)

// Scenarios and targets.
var (
	Scenarios = []string{"ping", "pipeline", "broadcast", "room", "idle", "connect"}
	Targets   = []string{"subgate", "naive", "seed", "centrifugo"}
)

// targetScenarios lists what each target supports; subgate supports all.
var targetScenarios = map[string][]string{
	"subgate":    Scenarios,
	"naive":      {"ping", "pipeline", "broadcast", "idle", "connect"},
	"seed":       {"ping", "pipeline", "broadcast", "idle", "connect"},
	"centrifugo": {"broadcast", "idle", "connect"},
}

// Fixed bounds of a run, beyond -duration.
const (
	callTimeout = 10 * time.Second // one call, publish or handshake
	rampSlack   = 30 * time.Second // dialing all connections: n/DialRate plus this
	dialWorkers = 64               // concurrent handshakes while ramping up
	// closeWorkers close connections at once at the end of a run: a close
	// waits (up to a second) for the server's close frame, which comes
	// after the pushes still queued to the connection, so 64 at a time
	// took minutes for 19,000 connections of a loaded cluster.
	closeWorkers = 1024
	idBase       = 100000 // client ids are numeric (the seed app requires it)
)

// drainTimeout bounds the wait for deliveries still in flight after the
// senders stop. A variable so that a test expecting losses waits less.
var drainTimeout = 10 * time.Second

// ErrRemote refuses a URL whose host is not loopback.
var ErrRemote = errors.New("bench: the URL is not loopback; pass -allow-remote to load a remote gateway")

// Config describes one run. Zero values of the numeric fields mean the
// defaults of Defaults.
type Config struct {
	// URL is ws://HOST:PORT (the run adds /ws/{id} or
	// /connection/websocket), or several comma-separated: the nodes of a
	// cluster, loaded together (see Config.node).
	URL      string
	Target   string // subgate, naive, seed or centrifugo
	Proto    string // json-rpc, msgpack, binary-raw or all
	Scenario string

	Conns    int // connections (ping, pipeline, idle) or dialers (connect)
	Subs     int // subscribers (broadcast) or members per room (room)
	Rooms    int // rooms (room)
	Senders  int // senders (broadcast: in all; room: per room), taken from the subscribers
	Inflight int // calls outstanding per connection (pipeline)

	Rate     float64       // offered ops/s over all slots; 0: closed loop
	Duration time.Duration // measured time
	Warmup   time.Duration // unmeasured time before it
	Hold     time.Duration // idle: how long connections are held

	Token       string  // JWT sent as ?token=; every connection uses its sub as client id
	SourceIPs   int     // spread dials over 127.0.0.1..127.0.0.N (0: the system's choice)
	DialRate    float64 // new connections per second while ramping up (0: unbounded)
	AllowRemote bool

	// Progress, when set, gets a progress line every second.
	Progress io.Writer
	// Marks, when set, gets the line "window start" when the measured
	// window begins and "window end" when it ends, as they happen: a
	// script reads a server's CPU time at each (the comparison does).
	Marks io.Writer
	// OnHolding is called in idle once every connection is up, before the
	// hold, with the result so far (the JSON line is printed then).
	OnHolding func(*Result)

	// Shard and Shards place this process among -procs children: it runs
	// its share of the connections, global index Shard, Shard+Shards, ...
	Shard, Shards int
	// RunID marks this run's broadcast messages (shared by the children).
	RunID string
	// Sync coordinates the children of -procs; nil for a single process.
	Sync Sync

	bases []string // URL split at commas, each without a trailing slash (set by fill)
}

// Defaults are the values used for zero fields.
var Defaults = Config{
	Target: "subgate", Proto: protocols.JSONRPC, Scenario: "ping",
	Conns: 50, Subs: 100, Rooms: 10, Senders: 1, Inflight: 16,
	Duration: 10 * time.Second, Hold: 30 * time.Second, DialRate: 2000,
}

// Sync is how a child process of -procs waits for its siblings.
type Sync interface {
	// Ready says every connection is up and waits for the go of the parent.
	Ready() error
	// TotalSent reports the messages this process sent and returns the
	// number all processes sent.
	TotalSent(n int64) (int64, error)
}

// protos returns the encodings the run uses, in connection order.
func (c *Config) protos() []string {
	switch {
	case c.Target == "centrifugo":
		return []string{"json"}
	case c.Target != "subgate":
		return []string{protocols.JSONRPC}
	case c.Proto == "all":
		return []string{protocols.JSONRPC, protocols.MsgPack, protocols.BinaryRaw}
	}
	return []string{c.Proto}
}

// fill sets the defaults and checks the configuration.
func (c *Config) fill() error {
	d := Defaults
	c.Target = or(c.Target, d.Target)
	c.Proto = or(c.Proto, d.Proto)
	c.Scenario = or(c.Scenario, d.Scenario)
	c.Conns = or(c.Conns, d.Conns)
	c.Subs = or(c.Subs, d.Subs)
	c.Rooms = or(c.Rooms, d.Rooms)
	c.Senders = or(c.Senders, d.Senders)
	c.Inflight = or(c.Inflight, d.Inflight)
	c.Duration = or(c.Duration, d.Duration)
	c.Hold = or(c.Hold, d.Hold)
	c.Shards = or(c.Shards, 1)
	if c.RunID == "" {
		c.RunID = fmt.Sprintf("%x", time.Now().UnixNano()&0xffffffffff)
	}
	if !slices.Contains(Targets, c.Target) {
		return fmt.Errorf("bench: unknown target %q (known: %s)", c.Target, strings.Join(Targets, ", "))
	}
	if !slices.Contains(Scenarios, c.Scenario) {
		return fmt.Errorf("bench: unknown scenario %q (known: %s)", c.Scenario, strings.Join(Scenarios, ", "))
	}
	if ok := targetScenarios[c.Target]; !slices.Contains(ok, c.Scenario) {
		return fmt.Errorf("bench: target %s does not support scenario %s (it supports: %s)", c.Target, c.Scenario, strings.Join(ok, ", "))
	}
	if _, ok := protocols.Lookup(protocols.All, c.Proto); !ok && c.Proto != "all" {
		return fmt.Errorf("bench: unknown protocol %q (known: %s, all)", c.Proto, protocols.Names(protocols.All))
	}
	if c.Target != "subgate" && c.Target != "centrifugo" && c.Proto != protocols.JSONRPC {
		return fmt.Errorf("bench: target %s speaks json-rpc only", c.Target)
	}
	for _, v := range []struct {
		name string
		n    int
	}{{"conns", c.Conns}, {"subs", c.Subs}, {"rooms", c.Rooms}, {"senders", c.Senders}, {"inflight", c.Inflight}} {
		if v.n < 0 {
			return fmt.Errorf("bench: -%s must be positive", v.name)
		}
	}
	if c.Senders > c.Subs {
		return fmt.Errorf("bench: -senders %d is more than -subs %d (senders are subscribers too)", c.Senders, c.Subs)
	}
	if c.Token != "" && c.Scenario == "room" {
		// Room pushes go to every connection of a member client id.
		return errors.New("bench: with -token every connection is the token's client id, so each would get every room's messages: room needs distinct ids")
	}
	if c.Rate < 0 || c.DialRate < 0 || c.Duration < 0 || c.Warmup < 0 || c.Hold < 0 {
		return errors.New("bench: -rate, -dial-rate, -duration, -warmup and -hold must not be negative")
	}
	if c.SourceIPs < 0 || c.SourceIPs > 254 {
		return errors.New("bench: -source-ips must be 0..254")
	}
	if c.Shard < 0 || c.Shard >= c.Shards {
		return fmt.Errorf("bench: shard %d of %d", c.Shard, c.Shards)
	}
	return c.checkURL()
}

func or[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// checkURL accepts one or more comma-separated ws:// or wss:// URLs with a
// host, loopback unless AllowRemote, and sets c.bases.
func (c *Config) checkURL() error {
	c.bases = nil // a fresh slice: a Config is copied by value
	for one := range strings.SplitSeq(c.URL, ",") {
		base, err := c.checkOneURL(strings.TrimSpace(one))
		if err != nil {
			return err
		}
		c.bases = append(c.bases, base)
	}
	return nil
}

func (c *Config) checkOneURL(s string) (string, error) {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "ws" && u.Scheme != "wss") || u.Host == "" {
		return "", fmt.Errorf("bench: -url %q: want ws://HOST:PORT", s)
	}
	if u.Path != "" && u.Path != "/" {
		return "", fmt.Errorf("bench: -url %q: give the base only (the run adds /ws/{id})", s)
	}
	if !c.AllowRemote && !isLoopback(u.Hostname()) {
		return "", fmt.Errorf("%w (%s)", ErrRemote, u.Host)
	}
	return strings.TrimSuffix(s, "/"), nil
}

// node is the index in c.bases of the node that run-wide connection g
// dials: round-robin over the nodes, one connection of each encoding at a
// time (encodings go round-robin by g too, see run.proto), so that every
// node gets every encoding whatever the number of nodes. Every process of
// -procs computes it from g alike.
func (c *Config) node(g int) int { return g / len(c.protos()) % len(c.bases) }

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// tokenSubject reads the sub claim of a JWT without checking it: the
// gateway wants it to be the client id.
func tokenSubject(tok string) (string, error) {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return "", errors.New("bench: -token is not a JWT")
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return "", fmt.Errorf("bench: -token payload: %v", err)
	}
	var claims struct {
		Sub string `json:"sub"`
	}
	if err := json.Unmarshal(payload, &claims); err != nil || claims.Sub == "" {
		return "", errors.New("bench: -token has no sub claim")
	}
	return claims.Sub, nil
}

// share is how many of n items go to this shard.
func (c *Config) share(n int) int {
	k := n / c.Shards
	if c.Shard < n%c.Shards {
		k++
	}
	return k
}

// global is the run-wide index of this shard's i-th item.
func (c *Config) global(i int) int { return i*c.Shards + c.Shard }

// Check fills cfg's defaults and checks it, as Run does first.
func Check(cfg Config) (Config, error) {
	err := cfg.fill()
	if err == nil && cfg.Token != "" {
		_, err = tokenSubject(cfg.Token)
	}
	return cfg, err
}
