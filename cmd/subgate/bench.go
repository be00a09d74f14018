package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/subgate/subgate/internal/bench"
)

const benchUsage = `usage: subgate bench [flags]

Loads a gateway and reports throughput, latency percentiles (HDR histograms)
and errors. Scenarios: ping (closed loop per connection), pipeline
(-inflight calls outstanding per connection), broadcast (-subs subscribers,
-senders of them broadcasting; ops are deliveries), room (-rooms rooms of
-subs members, -senders per room calling chat.send), idle (hold -conns
connections for -hold), connect (handshakes: connect, upgrade, close).
-rate sets an open loop: latency is measured from each operation's intended
send time. Exit status: 0, 1 when the run counted errors, 2 usage.

flags:
`

// defaultWarmup is the unmeasured start of a run.
const defaultWarmup = time.Second

type benchFlags struct {
	cfg     bench.Config
	procs   int
	jsonOut bool
	marks   bool
	shard   string
}

func parseBench(args []string, stdout io.Writer) (*benchFlags, error) {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(io.Discard) // errors are reported by the caller in one line
	f := &benchFlags{}
	c := &f.cfg
	d := bench.Defaults
	fs.StringVar(&c.URL, "url", "ws://127.0.0.1:8080", "the gateway's base URL ws://HOST:PORT (the harness adds /ws/{id} or /connection/websocket); several comma-separated load a cluster: connections go round-robin over them")
	fs.StringVar(&c.Target, "target", d.Target, "server kind: "+strings.Join(bench.Targets, ", "))
	fs.StringVar(&c.Proto, "proto", d.Proto, "encoding: json-rpc, msgpack, binary-raw or all (a third each); peers other than subgate speak json")
	fs.StringVar(&c.Scenario, "scenario", d.Scenario, strings.Join(bench.Scenarios, ", "))
	fs.IntVar(&c.Conns, "conns", d.Conns, "connections (ping, pipeline, idle) or dialers (connect)")
	fs.IntVar(&c.Subs, "subs", d.Subs, "subscribers (broadcast) or members per room (room)")
	fs.IntVar(&c.Rooms, "rooms", d.Rooms, "rooms (room)")
	fs.IntVar(&c.Senders, "senders", d.Senders, "subscribers that also send (broadcast: in all; room: per room)")
	fs.IntVar(&c.Inflight, "inflight", d.Inflight, "calls outstanding per connection (pipeline)")
	fs.Float64Var(&c.Rate, "rate", 0, "open loop: offered operations per second over all connections (broadcast, room: messages sent; connect: handshakes); 0: closed loop")
	fs.DurationVar(&c.Duration, "duration", d.Duration, "measured time")
	fs.DurationVar(&c.Warmup, "warmup", defaultWarmup, "unmeasured time before it")
	fs.DurationVar(&c.Hold, "hold", d.Hold, "idle: how long the connections are held")
	fs.StringVar(&c.Token, "token", "", "JWT for a gateway with -jwt-secret, sent as ?token=; every connection uses its sub as client id")
	fs.IntVar(&f.procs, "procs", 1, "processes to spread the connections over (results merged)")
	fs.IntVar(&c.SourceIPs, "source-ips", 0, "spread connections over source addresses 127.0.0.1..127.0.0.N (0: the system's choice)")
	fs.Float64Var(&c.DialRate, "dial-rate", d.DialRate, "new connections per second while ramping up (0: unbounded)")
	fs.BoolVar(&f.jsonOut, "json", false, "print one line of JSON on stdout (the table goes to stderr)")
	fs.BoolVar(&c.AllowRemote, "allow-remote", false, "allow a URL that is not loopback")
	fs.BoolVar(&f.marks, "marks", false, `print "window start" and "window end" on stderr as the measured window begins and ends (for scripts that sample the server then)`)
	fs.StringVar(&f.shard, "shard", "", "internal: run as child I/N of -procs")
	fs.StringVar(&c.RunID, "run-id", "", "internal: the run's id, shared by the children of -procs")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stdout, benchUsage)
			fs.SetOutput(stdout)
			fs.PrintDefaults()
		}
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if f.procs < 1 {
		return nil, errors.New("-procs must be at least 1")
	}
	if f.shard != "" {
		i, n, ok := strings.Cut(f.shard, "/")
		var err1, err2 error
		c.Shard, err1 = strconv.Atoi(i)
		c.Shards, err2 = strconv.Atoi(n)
		if !ok || err1 != nil || err2 != nil {
			return nil, fmt.Errorf("-shard %q: want I/N", f.shard)
		}
	}
	return f, nil
}

// runBench implements `subgate bench`.
func runBench(args []string, stdout, stderr io.Writer) int {
	f, err := parseBench(args, stdout)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "subgate bench:", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	out := &benchOutput{stdout: stdout, stderr: stderr, json: f.jsonOut, child: f.shard != ""}
	if f.procs > 1 {
		return runParent(ctx, f, args, out)
	}
	cfg := f.cfg
	if out.child {
		var cancel context.CancelFunc
		ctx, cancel = context.WithCancel(ctx)
		defer cancel()
		cfg.Sync = bench.NewChildSync(os.Stdin, stdout, cancel)
	} else if isTerminal(stderr) {
		cfg.Progress = stderr
	}
	if f.marks {
		cfg.Marks = stderr
	}
	printed := false
	cfg.OnHolding = func(r *bench.Result) { out.print(r); printed = true }
	res, err := bench.Run(ctx, cfg)
	if err != nil {
		fmt.Fprintln(stderr, "subgate bench:", err)
		return 2
	}
	if !printed {
		out.print(res)
	}
	return out.status(res)
}

// runParent re-executes this program once per process, each with its
// share, and prints the merged result.
func runParent(ctx context.Context, f *benchFlags, args []string, out *benchOutput) int {
	if _, err := bench.Check(f.cfg); err != nil {
		fmt.Fprintln(out.stderr, "subgate bench:", err)
		return 2
	}
	exe, err := os.Executable()
	if err != nil {
		fmt.Fprintln(out.stderr, "subgate bench:", err)
		return 1
	}
	out.stderr = &lockedWriter{w: out.stderr} // the children's stderr is copied by goroutines
	runID := strconv.FormatInt(time.Now().UnixNano()&0xffffffffff, 16)
	cmds := make([]*exec.Cmd, f.procs)
	for i := range cmds {
		a := append([]string{"bench"}, args...)
		a = append(a, "-procs=1", fmt.Sprintf("-shard=%d/%d", i, f.procs), "-run-id="+runID, "-json")
		cmds[i] = exec.Command(exe, a...)
		cmds[i].Stderr = out.stderr
	}
	var res *bench.Result
	err = bench.RunChildren(ctx, cmds, func(r *bench.Result) { res = r; out.print(r) })
	if err != nil {
		fmt.Fprintln(out.stderr, "subgate bench:", err)
		return 1
	}
	return out.status(res)
}

// benchOutput prints results: JSON only on stdout with -json (histograms
// included in a child's), the table on stdout otherwise.
type benchOutput struct {
	stdout, stderr io.Writer
	json, child    bool
}

func (o *benchOutput) print(r *bench.Result) {
	if o.child {
		if err := r.EncodeHists(); err != nil {
			fmt.Fprintln(o.stderr, "subgate bench:", err)
		}
	}
	if o.json {
		b, _ := json.Marshal(r)
		fmt.Fprintf(o.stdout, "%s\n", b)
		if !o.child {
			r.WriteTable(o.stderr)
		}
	} else {
		r.WriteTable(o.stdout)
	}
	if r.Scenario == "idle" && !o.child {
		fmt.Fprintf(o.stderr, "holding %d connections\n", r.Ops)
	}
}

func (o *benchOutput) status(r *bench.Result) int {
	if r.Errors > 0 {
		return 1
	}
	return 0
}

// lockedWriter serialises writes from several goroutines.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// isTerminal says whether w is a terminal (the progress line is for
// people only).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
