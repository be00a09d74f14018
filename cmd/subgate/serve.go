package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/subgate/subgate/gateway"
	"github.com/subgate/subgate/protocols"
)

// serveFlags binds every setting to a flag whose default comes from its
// SUBGATE_* environment variable.
type serveFlags struct {
	addr, protos, origins, logLevel, logFormat string
	metricsAddr, pprofAddr                     string
	nats                                       string
	shutdownTimeout                            time.Duration
	cfg                                        gateway.Config
}

const serveUsage = `usage: subgate serve [flags]

Runs the gateway: WebSockets at /ws/{client_id}, /healthz, /readyz and
/metrics. Every flag can also be set by the SUBGATE_* variable named after
it (-max-conns: SUBGATE_MAX_CONNS); a flag on the command line wins.

flags:
`

func envName(flagName string) string {
	if flagName == "nats" {
		return "SUBGATE_NATS_URL" // the name NATS deployments use for it
	}
	return "SUBGATE_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

func parseServe(args []string, stdout io.Writer) (*serveFlags, error) {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	// Errors are reported by the caller in one line; -h prints the flags.
	fs.SetOutput(io.Discard)
	f := &serveFlags{}
	c := &f.cfg
	d := gateway.DefaultConfig() // every setting's default, in one place
	var maxMsg int
	fs.StringVar(&f.addr, "addr", defaultAddr, "listen address")
	fs.StringVar(&f.protos, "protocols", protocols.Names(d.Protocols), "enabled subprotocols, comma separated")
	fs.StringVar(&c.DefaultProtocol, "default-protocol", d.DefaultProtocol, `protocol for clients that offer none ("none" refuses them with 400)`)
	fs.StringVar(&c.RejectMode, "reject-mode", d.RejectMode, `refusal when nothing offered is supported: "status" (HTTP 400) or "close" (101, then close 1002)`)
	fs.StringVar(&f.origins, "allowed-origins", "", `origins besides the request's Host whose pages may connect, comma separated ("https://app.example.com"; "*" allows any); others get 403`)
	fs.StringVar(&c.JWTSecret, "jwt-secret", "", "HS256 secret: when set, a token whose sub is the client id is required (401 otherwise); prefer the environment variable")
	fs.IntVar(&c.MaxConns, "max-conns", d.MaxConns, "connections per node, handshakes included (503 beyond); the default is below the file-descriptor limit")
	fs.IntVar(&c.MaxConnsPerIP, "max-conns-per-ip", d.MaxConnsPerIP, "connections per client address, per /64 for IPv6 (503 beyond); set it to -max-conns to turn it off")
	fs.IntVar(&maxMsg, "max-message-size", int(d.MaxMessageSize), "largest message in bytes (close 1009 beyond)")
	fs.IntVar(&c.SendQueueBytes, "send-queue-bytes", d.SendQueueBytes, "per-connection bound on bytes not yet written, and the largest reply (slow consumers are closed with 4000; larger replies get -32008)")
	fs.Float64Var(&c.RateLimit, "rate", d.RateLimit, "calls per second per connection (-32006 beyond; inf: no limit)")
	fs.IntVar(&c.RateBurst, "burst", d.RateBurst, "calls a connection may make at once above -rate")
	fs.IntVar(&c.MaxConcurrentCalls, "max-concurrent-calls", d.MaxConcurrentCalls, "calls to concurrent methods one connection may have in flight")
	fs.IntVar(&c.HistorySize, "history-size", d.HistorySize, "messages kept per room")
	fs.IntVar(&c.HistoryBytesPerRoom, "history-bytes-per-room", d.HistoryBytesPerRoom, "bytes of history kept per room (a message costs its text, sender and 64); oldest go first")
	fs.IntVar(&c.HistoryBytes, "history-bytes", d.HistoryBytes, "bytes of history kept by the node, all rooms together; the least recently active rooms lose their oldest messages first")
	fs.IntVar(&c.MaxRooms, "max-rooms", d.MaxRooms, "rooms of the node; a new room at the bound evicts the least recently active room without members (-32009 if all have members)")
	fs.IntVar(&c.MaxRoomsPerClient, "max-rooms-per-client", d.MaxRoomsPerClient, "rooms one client id may be in (-32009 beyond)")
	fs.DurationVar(&c.HandshakeTimeout, "handshake-timeout", d.HandshakeTimeout, "upgrade request timeout")
	fs.DurationVar(&c.IdleTimeout, "idle-timeout", d.IdleTimeout, "close connections silent for this long")
	fs.DurationVar(&c.PingInterval, "ping-interval", d.PingInterval, "keepalive ping interval")
	fs.DurationVar(&c.WriteTimeout, "write-timeout", d.WriteTimeout, "timeout of one write to a client")
	fs.DurationVar(&c.CloseTimeout, "close-timeout", d.CloseTimeout, "how long a closing connection waits for the client's close frame")
	fs.StringVar(&c.Poller, "poller", d.Poller, `how connections are read: "epoll" (Linux: idle connections hold no goroutine or buffer), "goroutines" (one per connection) or "auto" (epoll where available)`)
	fs.DurationVar(&f.shutdownTimeout, "shutdown-timeout", 10*time.Second, "how long SIGTERM waits for connections to close")
	fs.StringVar(&f.logLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&f.logFormat, "log-format", "text", "text or json")
	fs.StringVar(&f.metricsAddr, "metrics-addr", "", "serve /metrics on this address instead of -addr (\"\": on -addr)")
	fs.StringVar(&f.nats, "nats", "", "NATS server URL(s), comma separated: nodes on the same NATS share rooms, presence, history (JetStream) and delivery (\"\": the in-process hub, one node)")
	fs.StringVar(&f.pprofAddr, "pprof-addr", "", "serve Go's /debug/pprof/ on this address (\"\": off; keep it on loopback)")
	// Every flag's default comes from its SUBGATE_* variable when set; the
	// command line wins over both.
	var bad []string
	fs.VisitAll(func(fl *flag.Flag) {
		env := envName(fl.Name)
		fl.Usage += " (env " + env + ")"
		if v, ok := os.LookupEnv(env); ok {
			if err := fl.Value.Set(v); err != nil {
				bad = append(bad, env+"="+v+": "+err.Error())
			}
			if fl.Name != "jwt-secret" && fl.Name != "nats" { // -h must not print a secret (a URL may hold credentials)
				fl.DefValue = v
			}
		}
	})
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stdout, serveUsage)
			fs.SetOutput(stdout)
			fs.PrintDefaults()
		}
		return nil, err
	}
	if len(bad) > 0 {
		return nil, errors.New(strings.Join(bad, "; "))
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	c.MaxMessageSize = int64(maxMsg)
	if f.metricsAddr != "" {
		c.MetricsPath = "off" // served on its own address instead
	}
	for _, o := range strings.Split(f.origins, ",") {
		if o = strings.TrimSpace(o); o != "" {
			c.AllowedOrigins = append(c.AllowedOrigins, o)
		}
	}
	for _, name := range strings.Split(f.protos, ",") {
		p, ok := protocols.Lookup(protocols.All, strings.TrimSpace(name))
		if !ok {
			return nil, fmt.Errorf("unknown protocol %q (known: %s)", name, protocols.Names(protocols.All))
		}
		c.Protocols = append(c.Protocols, p)
	}
	return f, nil
}

func newLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("log level: %w", err)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("log format %q: want text or json", format)
}

func runServe(args []string, stdout, stderr io.Writer) int {
	f, err := parseServe(args, stdout)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "subgate:", err)
		return 2
	}
	log, err := newLogger(stderr, f.logLevel, f.logFormat)
	if err != nil {
		fmt.Fprintln(stderr, "subgate:", err)
		return 2
	}
	f.cfg.Logger = log
	closeHub, err := openHub(f, log)
	if err != nil {
		fmt.Fprintln(stderr, "subgate:", err)
		return 1
	}
	defer closeHub()
	srv, err := gateway.New(f.cfg)
	if err != nil {
		fmt.Fprintln(stderr, "subgate:", err)
		return 2
	}
	ln, err := net.Listen("tcp", f.addr)
	if err != nil {
		fmt.Fprintln(stderr, "subgate:", err)
		return 1
	}
	side, err := sideServers(f, srv)
	if err != nil {
		ln.Close()
		fmt.Fprintln(stderr, "subgate:", err)
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	errc := make(chan error, 1)
	// The gateway owns the listener: it upgrades WebSockets itself and
	// hands other requests to net/http on the same port. The listener
	// answers 503 at accept time beyond the file-descriptor budget, and at
	// EMFILE, instead of leaving clients in the backlog.
	go func() { errc <- srv.Serve(srv.Listener(ln)) }()
	log.Info("listening", "addr", ln.Addr().String(), "protocols", protocols.Names(f.cfg.Protocols))
	for _, s := range side {
		log.Info("listening", "addr", s.ln.Addr().String(), "serves", s.serves)
		go func() { errc <- s.serve() }()
	}
	if b := gateway.FDBudget(); b > 0 && f.cfg.MaxConns > b {
		log.Warn("-max-conns is above the file-descriptor budget: connections beyond the budget are refused at accept time", "max_conns", f.cfg.MaxConns, "fd_budget", b)
	}
	select {
	case err := <-errc:
		fmt.Fprintln(stderr, "subgate:", err)
		return 1
	case <-ctx.Done():
	}
	log.Info("shutting down", "connections", srv.Conns())
	sctx, cancel := context.WithTimeout(context.Background(), f.shutdownTimeout)
	defer cancel()
	// The gateway drains while the listener stays open, so that /readyz
	// answers 503 and new upgrades get 503 instead of a refused
	// connection; then it closes the listener.
	err = srv.Shutdown(sctx)
	for _, s := range side {
		_ = s.Shutdown(sctx)
	}
	if err != nil {
		log.Warn("shutdown timed out", "connections", srv.Conns())
		srv.Close()
		return 1
	}
	log.Info("stopped")
	return 0
}

// sideServer is an HTTP server on an address of its own: /metrics with
// -metrics-addr, /debug/pprof/ with -pprof-addr, or both on one address.
type sideServer struct {
	*http.Server
	ln     net.Listener
	serves string // for the log
}

func (s sideServer) serve() error {
	if err := s.Serve(s.ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// sideServers listens on -metrics-addr and -pprof-addr.
func sideServers(f *serveFlags, srv *gateway.Server) ([]sideServer, error) {
	muxes := map[string]*http.ServeMux{}
	mux := func(addr string) *http.ServeMux {
		if muxes[addr] == nil {
			muxes[addr] = http.NewServeMux()
		}
		return muxes[addr]
	}
	if f.metricsAddr != "" {
		mux(f.metricsAddr).Handle("GET /metrics", srv.MetricsHandler())
	}
	if f.pprofAddr != "" {
		m := mux(f.pprofAddr)
		m.HandleFunc("/debug/pprof/", pprof.Index)
		m.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		m.HandleFunc("/debug/pprof/profile", pprof.Profile)
		m.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		m.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	var out []sideServer
	for addr, m := range muxes {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			for _, s := range out {
				s.ln.Close()
			}
			return nil, err
		}
		out = append(out, sideServer{&http.Server{Handler: m, ReadHeaderTimeout: 10 * time.Second}, ln, sideServes(f, addr)})
	}
	return out, nil
}

func sideServes(f *serveFlags, addr string) string {
	var what []string
	if addr == f.metricsAddr {
		what = append(what, "/metrics")
	}
	if addr == f.pprofAddr {
		what = append(what, "/debug/pprof/")
	}
	return strings.Join(what, ", ")
}
