// Command compare runs subgate and its peers side by side on loopback,
// drives each with the same `subgate bench` scenarios, measures every
// server from outside, and writes the results into BENCHMARKS.md.
//
//	go run ./bench/compare            # full: every scenario, 3 runs each (about 30 minutes)
//	go run ./bench/compare -quick     # CI: every scenario once, briefly; fails on any error
//
// Servers: subgate (this tree, `subgate serve`), naive (bench/peers/naive),
// seed (the FastAPI tutorial app, bench/peers/seed) and Centrifugo v6
// (bench/peers/centrifugo). Each run starts a fresh server process, waits
// until it accepts connections, runs the harness, and stops it.
//
// The primary figure is the server's CPU time per operation: utime+stime
// from /proc/PID/stat, read when the harness prints "window start" and
// "window end" (-marks), divided by the operations of that window. Client
// and server share the machine's cores, so throughput says as much about
// the client as about the server; CPU per operation does not. Memory per
// idle connection is the growth of VmRSS from the fresh server to N held
// connections, read after every server's first keepalive ping has gone out
// (their ping intervals are at most 25 s), divided by N.
//
// Each figure is the median of -runs runs. The full mode rewrites the part
// of BENCHMARKS.md between the markers "<!-- compare:begin -->" and
// "<!-- compare:end -->" (added after the introduction when missing).
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

type options struct {
	quick      bool
	runs       int
	duration   time.Duration
	out        string
	servers    []string
	scenarios  []string
	idleSizes  []int
	keepalive  time.Duration
	benchAlloc bool
}

func main() {
	o := options{}
	var servers, sizes string
	flag.BoolVar(&o.quick, "quick", false, "run every scenario once, briefly, and only check that each completes with no error (CI)")
	flag.IntVar(&o.runs, "runs", 3, "runs of each measurement; the median is reported")
	flag.DurationVar(&o.duration, "duration", 10*time.Second, "measured time of each run")
	flag.StringVar(&o.out, "out", "BENCHMARKS.md", "file whose compare section is rewritten (full mode)")
	flag.StringVar(&servers, "servers", "subgate,naive,seed,centrifugo", "servers to run")
	scenarios := flag.String("scenarios", "ping,pipeline,broadcast,room,connect,idle", "scenarios to run (a subset writes no report: for profiling and trials)")
	flag.StringVar(&sizes, "idle", "5000,19000", "connection counts of the idle memory runs")
	flag.DurationVar(&o.keepalive, "keepalive-wait", 27*time.Second, "how long idle connections are held before memory is read (after every server's first keepalive)")
	flag.BoolVar(&o.benchAlloc, "allocs", true, "also run BenchmarkServerPing for the server's allocations per call")
	flag.Parse()
	o.servers = strings.Split(servers, ",")
	o.scenarios = strings.Split(*scenarios, ",")
	for _, s := range strings.Split(sizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n <= 0 {
			fatalf("-idle: %q is not a positive count", s)
		}
		o.idleSizes = append(o.idleSizes, n)
	}
	if o.quick {
		o.runs, o.duration, o.idleSizes, o.keepalive = 1, time.Second, []int{200}, 0
	}
	if err := run(o); err != nil {
		fatalf("%v", err)
	}
}

func fatalf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "compare: "+format+"\n", args...)
	os.Exit(1)
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "== "+format+"\n", args...)
}

func run(o options) error {
	tmp, err := os.MkdirTemp("", "subgate-compare-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	env, err := setUp(tmp, o.servers)
	if err != nil {
		return err
	}
	var results []*measure
	failed := 0
	for _, sc := range plan(o) {
		if !slices.Contains(o.servers, sc.server) || !slices.Contains(o.scenarios, sc.scenario) {
			continue
		}
		m := &measure{step: sc}
		for i := range o.runs {
			r, err := env.once(o, sc)
			if err != nil { // a server or harness that failed to start or report: once more
				logf("%s run %d failed, once more: %v", sc, i+1, err)
				r, err = env.once(o, sc)
			}
			if err != nil {
				return fmt.Errorf("%s: %w", sc, err)
			}
			logf("%s run %d: %s", sc, i+1, r)
			if r.Errors > 0 || r.Lost > 0 {
				failed++
				logf("FAIL %s: %d errors, %d lost (first: %s)", sc, r.Errors, r.Lost, r.FirstError)
			}
			m.runs = append(m.runs, r)
		}
		results = append(results, m)
	}
	if failed > 0 {
		return fmt.Errorf("%d runs had errors", failed)
	}
	if o.quick {
		logf("quick: every scenario completed with no error")
		return nil
	}
	if len(o.scenarios) < 6 || len(o.servers) < 4 {
		logf("a subset of the servers or scenarios: %s left as it is", o.out)
		return nil
	}
	var allocs map[string]float64
	if o.benchAlloc {
		if allocs, err = serverAllocs(); err != nil {
			return err
		}
	}
	report := render(o, env, results, allocs)
	return rewrite(o.out, report)
}

// step is one scenario against one server.
type step struct {
	server, scenario, proto string
	args                    []string // extra harness flags
	conns                   int      // idle: connections held
}

func (s step) String() string {
	t := s.server + " " + s.scenario + " " + s.proto
	if s.conns > 0 {
		t += fmt.Sprintf(" %d conns", s.conns)
	}
	return t
}

// plan is every measurement, in order. The parameters are the issue's:
// 50 connections for calls, 16 in flight for the pipeline, 1,000
// subscribers for broadcast, 10 dialers for handshakes.
func plan(o options) []step {
	calls := []string{"-conns", "50"}
	pipe := []string{"-conns", "50", "-inflight", "16"}
	bcast := []string{"-subs", "1000", "-senders", "4"}
	room := []string{"-rooms", "10", "-subs", "100", "-senders", "1"}
	conn := []string{"-conns", "10"}
	if o.quick {
		bcast = []string{"-subs", "60", "-senders", "2"}
		room = []string{"-rooms", "3", "-subs", "10"}
	}
	var out []step
	for _, p := range []string{"json-rpc", "msgpack", "binary-raw"} {
		out = append(out, step{server: "subgate", scenario: "ping", proto: p, args: calls})
	}
	out = append(out, step{server: "naive", scenario: "ping", proto: "json-rpc", args: calls},
		step{server: "seed", scenario: "ping", proto: "json-rpc", args: calls})
	for _, p := range []string{"json-rpc", "msgpack", "binary-raw"} {
		out = append(out, step{server: "subgate", scenario: "pipeline", proto: p, args: pipe})
	}
	out = append(out, step{server: "naive", scenario: "pipeline", proto: "json-rpc", args: pipe},
		step{server: "subgate", scenario: "broadcast", proto: "all", args: bcast},
		step{server: "subgate", scenario: "broadcast", proto: "json-rpc", args: bcast},
		step{server: "naive", scenario: "broadcast", proto: "json-rpc", args: bcast},
		step{server: "seed", scenario: "broadcast", proto: "json-rpc", args: bcast},
		step{server: "centrifugo", scenario: "broadcast", proto: "json", args: bcast},
		step{server: "subgate", scenario: "room", proto: "all", args: room})
	for _, srv := range []string{"subgate", "naive", "seed", "centrifugo"} {
		out = append(out, step{server: srv, scenario: "connect", proto: defaultProto(srv), args: conn})
	}
	for _, n := range o.idleSizes {
		for _, srv := range []string{"subgate", "naive", "seed", "centrifugo"} {
			out = append(out, step{server: srv, scenario: "idle", proto: defaultProto(srv), conns: n})
		}
	}
	return out
}

func defaultProto(server string) string {
	if server == "centrifugo" {
		return "json"
	}
	return "json-rpc"
}

// env is what the servers and the harness need: built binaries and
// versions.
type env struct {
	dir, subgate, naive, centrifugo string
	clkTck                          float64
	versions                        map[string]string
}

func setUp(dir string, servers []string) (*env, error) {
	e := &env{dir: dir, versions: map[string]string{}}
	e.subgate = filepath.Join(dir, "subgate")
	e.naive = filepath.Join(dir, "naive")
	for _, b := range [][2]string{{e.subgate, "./cmd/subgate"}, {e.naive, "./bench/peers/naive"}} {
		logf("go build %s", b[1])
		if out, err := exec.Command("go", "build", "-o", b[0], b[1]).CombinedOutput(); err != nil {
			return nil, fmt.Errorf("go build %s: %v\n%s", b[1], err, out)
		}
	}
	rev, _ := exec.Command("git", "rev-parse", "--short", "HEAD").Output()
	e.versions["subgate"] = "commit " + strings.TrimSpace(string(rev))
	e.versions["naive"] = "bench/peers/naive (gobwas/ws, goroutine per connection, encoding/json)"
	if slices.Contains(servers, "centrifugo") {
		logf("installing Centrifugo (bench/peers/centrifugo/install.sh; minutes the first time)")
		out, err := exec.Command("sh", "bench/peers/centrifugo/install.sh").Output()
		if err != nil {
			return nil, fmt.Errorf("centrifugo install: %v", err)
		}
		e.centrifugo = strings.TrimSpace(string(out))
		e.versions["centrifugo"] = "Centrifugo v6.9.1 (go install), config bench/peers/centrifugo/config.json"
	}
	if slices.Contains(servers, "seed") {
		if err := seedDeps(); err != nil {
			return nil, err
		}
		v, _ := exec.Command("/usr/bin/python3", "-c", "import fastapi, uvicorn, websockets; print('FastAPI', fastapi.__version__, '/ uvicorn', uvicorn.__version__, '/ websockets', websockets.__version__)").Output()
		e.versions["seed"] = strings.TrimSpace(string(v)) + ", Debian's python3 packages"
	}
	tck, err := exec.Command("getconf", "CLK_TCK").Output()
	if err != nil {
		return nil, fmt.Errorf("getconf CLK_TCK: %v", err)
	}
	if e.clkTck, err = strconv.ParseFloat(strings.TrimSpace(string(tck)), 64); err != nil {
		return nil, err
	}
	return e, nil
}

// seedDeps installs Debian's FastAPI, uvicorn and websockets when
// /usr/bin/python3 cannot import them (as root; the seed needs nothing else).
func seedDeps() error {
	if exec.Command("/usr/bin/python3", "-c", "import fastapi, uvicorn, websockets").Run() == nil {
		return nil
	}
	if os.Geteuid() != 0 {
		return errors.New("the seed needs /usr/bin/python3 with python3-fastapi python3-uvicorn python3-websockets (apt-get install, as root)")
	}
	logf("apt-get install python3-fastapi python3-uvicorn python3-websockets")
	for _, args := range [][]string{{"update", "-q"}, {"install", "-y", "-q", "--no-install-recommends", "python3-fastapi", "python3-uvicorn", "python3-websockets"}} {
		cmd := exec.Command("apt-get", args...)
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("apt-get %s: %v\n%s", args[0], err, out)
		}
	}
	return nil
}

// server is a started server process.
type server struct {
	cmd  *exec.Cmd
	addr string
	log  bytes.Buffer
}

func (e *env) start(name string) (*server, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	s := &server{addr: "127.0.0.1:" + strconv.Itoa(port)}
	switch name {
	case "subgate":
		// -rate inf: the default 100 calls/s per connection is a safety
		// bound for untrusted clients, not a throughput setting; the caps
		// are raised for the 19,000-connection idle run.
		s.cmd = exec.Command(e.subgate, "serve", "-addr", s.addr, "-rate", "inf", "-log-level", "warn",
			"-max-conns", "19800", "-max-conns-per-ip", "19800")
	case "naive":
		s.cmd = exec.Command(e.naive, "-addr", s.addr)
	case "seed":
		// Python keeps the soft open-files limit it is given (Go raises
		// its own, but gives children the original): raise it to the
		// hard limit, as Go servers do, for the idle runs.
		s.cmd = exec.Command("sh", "-c", `ulimit -n "$(ulimit -Hn)" && exec /usr/bin/python3 -m uvicorn app:app --host 127.0.0.1 --port "$0" --log-level warning`,
			strconv.Itoa(port))
		s.cmd.Dir = "bench/peers/seed"
	case "centrifugo":
		cfg := filepath.Join(e.dir, "centrifugo.json")
		conf := fmt.Sprintf(`{"log":{"level":"error"},"http_server":{"address":"127.0.0.1","port":%d},"client":{"insecure":true,"queue_max_size":4194304}}`, port)
		if err := os.WriteFile(cfg, []byte(conf), 0o644); err != nil {
			return nil, err
		}
		s.cmd = exec.Command(e.centrifugo, "--config", cfg)
		s.cmd.Dir = e.dir
	default:
		return nil, fmt.Errorf("unknown server %q", name)
	}
	s.cmd.Stdout, s.cmd.Stderr = &s.log, &s.log
	if err := s.cmd.Start(); err != nil {
		return nil, err
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", s.addr, time.Second)
		if err == nil {
			c.Close()
			return s, nil
		}
		if time.Now().After(deadline) {
			s.stop()
			return nil, fmt.Errorf("%s did not listen on %s within 30s:\n%s", name, s.addr, s.log.String())
		}
		time.Sleep(50 * time.Millisecond) // polling the port, bounded by the deadline
	}
}

// stop ends the server: SIGTERM, then SIGKILL after 15 s.
func (s *server) stop() {
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = s.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		_ = s.cmd.Process.Kill()
		<-done
	}
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// result is one run: the harness's JSON line plus what was read from the
// server.
type result struct {
	Ops        float64 `json:"ops"`
	OpsPerS    float64 `json:"ops_per_s"`
	P50        float64 `json:"p50_us"`
	P99        float64 `json:"p99_us"`
	Errors     float64 `json:"errors"`
	Lost       float64 `json:"lost"`
	Conns      float64 `json:"conns"`
	FirstError string  `json:"first_error"`

	cpuPerOp float64 // server CPU seconds per op in the measured window
	rssPer   float64 // idle: bytes of RSS per held connection
}

func (r *result) String() string {
	if r.rssPer > 0 {
		return fmt.Sprintf("%.0f conns, %.1f KiB RSS per connection", r.Conns, r.rssPer/1024)
	}
	return fmt.Sprintf("%.0f ops/s, p50 %.0f us, p99 %.0f us, server CPU %.2f us/op", r.OpsPerS, r.P50, r.P99, r.cpuPerOp*1e6)
}

// once runs one measurement on a fresh server.
func (e *env) once(o options, sc step) (*result, error) {
	srv, err := e.start(sc.server)
	if err != nil {
		return nil, err
	}
	defer srv.stop()
	target := sc.server
	args := []string{"bench", "-url", "ws://" + srv.addr, "-target", target, "-scenario", sc.scenario, "-json", "-marks"}
	if target != "centrifugo" {
		args = append(args, "-proto", sc.proto)
	}
	args = append(args, sc.args...)
	if sc.scenario == "idle" {
		return e.idle(o, sc, srv, args)
	}
	args = append(args, "-duration", o.duration.String())
	cmd := exec.Command(e.subgate, args...)
	var before, after float64
	res, err := runHarness(cmd, o.duration+2*time.Minute, func(mark string) {
		t, err := cpuSeconds(srv.cmd.Process.Pid, e.clkTck)
		if err != nil {
			return
		}
		if mark == "window start" {
			before = t
		} else {
			after = t
		}
	}, nil)
	if err != nil {
		return nil, fmt.Errorf("%w\nserver log:\n%s", err, tail(srv.log.String()))
	}
	if after == 0 || res.Ops == 0 {
		return nil, fmt.Errorf("no measured window (ops %v)", res.Ops)
	}
	res.cpuPerOp = (after - before) / res.Ops
	return res, nil
}

// idle holds sc.conns connections, waits for the keepalive, and reads the
// server's memory growth.
func (e *env) idle(o options, sc step, srv *server, args []string) (*result, error) {
	base, err := rss(srv.cmd.Process.Pid)
	if err != nil {
		return nil, err
	}
	procs := max(1, (sc.conns+9499)/9500) // each harness process stays under the fd limit
	args = append(args, "-conns", strconv.Itoa(sc.conns), "-procs", strconv.Itoa(procs),
		"-source-ips", "20", "-hold", (o.keepalive + 5*time.Second).String())
	cmd := exec.Command(e.subgate, args...)
	var held float64
	res, err := runHarness(cmd, o.keepalive+3*time.Minute, nil, func() {
		time.Sleep(o.keepalive) // the harness holds the connections meanwhile
		held, _ = rss(srv.cmd.Process.Pid)
	})
	if err != nil {
		return nil, fmt.Errorf("%w\nserver log:\n%s", err, tail(srv.log.String()))
	}
	if held == 0 || res.Conns == 0 {
		return nil, errors.New("no memory reading")
	}
	res.rssPer = (held - base) / res.Conns
	return res, nil
}

// runHarness runs `subgate bench`, calls onMark for each -marks line as it
// is printed and onLine once the JSON line is out (while idle connections
// are held), and returns the parsed line.
func runHarness(cmd *exec.Cmd, limit time.Duration, onMark func(string), onLine func()) (*result, error) {
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	go func() {
		<-ctx.Done()
		_ = cmd.Process.Kill() // bounded: a stuck harness is killed at the limit
	}()
	var errText strings.Builder
	marksDone := make(chan struct{})
	go func() {
		defer close(marksDone)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			if onMark != nil && strings.HasPrefix(line, "window ") {
				onMark(line)
				continue
			}
			if errText.Len() < 4096 {
				errText.WriteString(line + "\n")
			}
		}
	}()
	var res *result
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		line := sc.Bytes()
		if len(line) == 0 || line[0] != '{' || res != nil {
			continue
		}
		res = &result{}
		if err := json.Unmarshal(line, res); err != nil {
			return nil, fmt.Errorf("harness line %q: %v", line, err)
		}
		if onLine != nil {
			onLine()
		}
	}
	<-marksDone
	werr := cmd.Wait()
	if res == nil {
		return nil, fmt.Errorf("harness printed no result (%v):\n%s", werr, errText.String())
	}
	var ee *exec.ExitError
	if werr != nil && !(errors.As(werr, &ee) && ee.ExitCode() == 1) { // 1: the run counted errors, reported
		return nil, fmt.Errorf("harness: %v:\n%s", werr, errText.String())
	}
	return res, nil
}

// cpuSeconds is a process's utime+stime.
func cpuSeconds(pid int, clkTck float64) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) may hold spaces: count fields after its ')'.
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: short", pid)
	}
	ut, err1 := strconv.ParseFloat(f[11], 64)
	st, err2 := strconv.ParseFloat(f[12], 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc/%d/stat: %v %v", pid, err1, err2)
	}
	return (ut + st) / clkTck, nil
}

var vmRSS = regexp.MustCompile(`(?m)^VmRSS:\s+(\d+) kB`)

// rss is a process's resident memory in bytes.
func rss(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	m := vmRSS.FindSubmatch(b)
	if m == nil {
		return 0, fmt.Errorf("/proc/%d/status: no VmRSS", pid)
	}
	kb, err := strconv.ParseFloat(string(m[1]), 64)
	return kb * 1024, err
}

func tail(s string) string {
	if len(s) > 2000 {
		return s[len(s)-2000:]
	}
	return s
}

var allocLine = regexp.MustCompile(`BenchmarkServerPing/(\S+)-\d+\s.*\s(\d+) allocs/op`)

// serverAllocs runs BenchmarkServerPing (a client that allocates nothing)
// and returns the server's allocations per chat.ping by encoding.
func serverAllocs() (map[string]float64, error) {
	logf("go test -run '^$' -bench ServerPing -benchmem ./gateway")
	out, err := exec.Command("go", "test", "-run", "^$", "-bench", "ServerPing", "-benchmem", "-count", "1", "./gateway").CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("BenchmarkServerPing: %v\n%s", err, out)
	}
	m := map[string]float64{}
	for _, l := range allocLine.FindAllSubmatch(out, -1) {
		n, _ := strconv.ParseFloat(string(l[2]), 64)
		m[string(l[1])] = n
	}
	return m, nil
}

// rewrite replaces the compare section of path with report.
func rewrite(path, report string) error {
	const begin, end = "<!-- compare:begin -->", "<!-- compare:end -->"
	old, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	s := string(old)
	section := begin + "\n" + report + end + "\n"
	i, j := strings.Index(s, begin), strings.Index(s, end)
	switch {
	case i >= 0 && j > i:
		s = s[:i] + section + s[j+len(end)+1:]
	default:
		at := strings.Index(s, "\n## ")
		if at < 0 {
			at = len(s)
		}
		s = s[:at] + "\n" + section + s[at:]
	}
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		return err
	}
	logf("wrote %s", path)
	return nil
}
