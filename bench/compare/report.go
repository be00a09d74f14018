package main

import (
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"time"
)

// measure is every run of one step.
type measure struct {
	step step
	runs []*result
}

// median of one figure over the runs.
func (m *measure) median(f func(*result) float64) float64 {
	v := make([]float64, len(m.runs))
	for i, r := range m.runs {
		v[i] = f(r)
	}
	slices.Sort(v)
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

func cpuUS(r *result) float64 { return r.cpuPerOp * 1e6 }
func opsPS(r *result) float64 { return r.OpsPerS }
func p50(r *result) float64   { return r.P50 }
func p99(r *result) float64   { return r.P99 }
func rssKiB(r *result) float64 {
	return r.rssPer / 1024
}

// table finds measures.
type table []*measure

func (t table) find(server, scenario, proto string, conns int) *measure {
	for _, m := range t {
		s := m.step
		if s.server == server && s.scenario == scenario && (proto == "" || s.proto == proto) && s.conns == conns {
			return m
		}
	}
	return nil
}

// ratio of two medians of f, "" when either is missing.
func ratio(a, b *measure, f func(*result) float64) (float64, bool) {
	if a == nil || b == nil {
		return 0, false
	}
	d := b.median(f)
	if d == 0 {
		return 0, false
	}
	return a.median(f) / d, true
}

func fmtRatio(a, b *measure, f func(*result) float64) string {
	if r, ok := ratio(a, b, f); ok {
		return fmt.Sprintf("%.2fx", r)
	}
	return "–"
}

func render(o options, e *env, results []*measure, allocs map[string]float64) string {
	t := table(results)
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	w("## Side by side: subgate and its peers\n\n")
	w("Written by `go run ./bench/compare` on %s. %s\n\n", time.Now().UTC().Format("2006-01-02 15:04 MST"), machine())
	w("Each figure is the median of %d runs of %s, every run on a fresh server process, driven by\n", o.runs, o.duration)
	w("`subgate bench` on the same machine. **Server CPU per operation** is the server process's\n")
	w("utime+stime (`/proc/PID/stat`) over the measured window, divided by the operations in it:\n")
	w("client and server share the cores, so it is the figure to compare; ops/s and latency are\n")
	w("shown for completeness and depend on the client as much. Ratios are subgate's figure over\n")
	w("the peer's (below 1: subgate uses less).\n\n")
	w("Servers:\n\n")
	for _, s := range []string{"subgate", "naive", "seed", "centrifugo"} {
		if v, ok := e.versions[s]; ok {
			w("- **%s**: %s\n", s, v)
		}
	}
	w("\n")
	targets(&b, t, allocs)

	w("### chat.ping, 50 connections, closed loop\n\n")
	naive, seed := t.find("naive", "ping", "", 0), t.find("seed", "ping", "", 0)
	callTable(&b, t, "ping", "vs naive", naive, "vs seed", seed)
	w("\n### Pipelined: 16 calls in flight on each of 50 connections\n\n")
	callTable(&b, t, "pipeline", "vs naive pipelined", t.find("naive", "pipeline", "", 0), "vs naive closed-loop ping", naive)
	w("\n### Broadcast to 1,000 subscribers, 4 senders (ops are deliveries)\n\n")
	w("| server | encodings | deliveries/s | p50 µs | p99 µs | server CPU µs/delivery | vs naive | vs centrifugo |\n|---|---|---:|---:|---:|---:|---:|---:|\n")
	nb, cb := t.find("naive", "broadcast", "", 0), t.find("centrifugo", "broadcast", "", 0)
	for _, m := range t {
		if m.step.scenario == "broadcast" {
			proto := m.step.proto
			if proto == "all" {
				proto = "all three, a third each"
			}
			w("| %s | %s | %.0f | %.0f | %.0f | %.3f | %s | %s |\n", m.step.server, proto, m.median(opsPS), m.median(p50), m.median(p99),
				m.median(cpuUS), fmtRatio(m, nb, cpuUS), fmtRatio(m, cb, cpuUS))
		}
	}
	if m := t.find("subgate", "room", "", 0); m != nil {
		w("\n### Rooms: 10 rooms of 100 members, one sender each, all three encodings (subgate only)\n\n")
		w("| deliveries/s | p50 µs | p99 µs | server CPU µs/delivery |\n|---:|---:|---:|---:|\n")
		w("| %.0f | %.0f | %.0f | %.3f |\n", m.median(opsPS), m.median(p50), m.median(p99), m.median(cpuUS))
	}
	w("\n### Handshakes: 10 dialers connect, upgrade and close\n\n")
	w("| server | handshakes/s | p50 µs | p99 µs | server CPU µs/handshake | vs naive |\n|---|---:|---:|---:|---:|---:|\n")
	nc := t.find("naive", "connect", "", 0)
	for _, m := range t {
		if m.step.scenario == "connect" {
			w("| %s | %.0f | %.0f | %.0f | %.1f | %s |\n", m.step.server, m.median(opsPS), m.median(p50), m.median(p99), m.median(cpuUS), fmtRatio(m, nc, cpuUS))
		}
	}
	w("\n### Memory per idle connection\n\n")
	w("Growth of the server's VmRSS from fresh to N connections held, read %s after the last one\n", o.keepalive)
	w("was up (after every server's first keepalive ping), divided by N.\n\n")
	w("| server |")
	for _, n := range o.idleSizes {
		w(" %d conns: KiB each | vs naive |", n)
	}
	w("\n|---|")
	for range o.idleSizes {
		w("---:|---:|")
	}
	w("\n")
	for _, s := range []string{"subgate", "naive", "seed", "centrifugo"} {
		if t.find(s, "idle", "", o.idleSizes[0]) == nil {
			continue
		}
		w("| %s |", s)
		for _, n := range o.idleSizes {
			m := t.find(s, "idle", "", n)
			if m == nil {
				w(" – | – |")
				continue
			}
			w(" %.1f | %s |", m.median(rssKiB), fmtRatio(m, t.find("naive", "idle", "", n), rssKiB))
		}
		w("\n")
	}
	w("\nCommands (PORT is a free loopback port; each server is started fresh for each run):\n\n```sh\n")
	w("go run ./bench/compare                 # all of this section; -quick is the CI check\n")
	w("subgate serve -addr 127.0.0.1:PORT -rate inf -log-level warn -max-conns 19800 -max-conns-per-ip 19800\n")
	w("naive -addr 127.0.0.1:PORT             # go build ./bench/peers/naive\n")
	w("(cd bench/peers/seed && /usr/bin/python3 -m uvicorn app:app --host 127.0.0.1 --port PORT --log-level warning)\n")
	w("centrifugo --config CONFIG             # bench/peers/centrifugo/config.json with the port\n")
	w("subgate bench -url ws://127.0.0.1:PORT -target SERVER -proto P -scenario S -duration %s -json -marks \\\n", o.duration)
	w("    [-conns 50 | -conns 50 -inflight 16 | -subs 1000 -senders 4 | -rooms 10 -subs 100 | -conns 10]\n")
	w("subgate bench ... -scenario idle -conns N -procs 2 -source-ips 20 -hold %s\n", o.keepalive+5*time.Second)
	w("go test -run '^$' -bench ServerPing -benchmem ./gateway\n```\n\n")
	return b.String()
}

// callTable writes the table of a calls scenario, each server's CPU per
// call compared with two references.
func callTable(b *strings.Builder, t table, scenario, name1 string, ref1 *measure, name2 string, ref2 *measure) {
	fmt.Fprintf(b, "| server | encoding | ops/s | p50 µs | p99 µs | server CPU µs/op | %s | %s |\n|---|---|---:|---:|---:|---:|---:|---:|\n", name1, name2)
	for _, m := range t {
		if m.step.scenario == scenario {
			fmt.Fprintf(b, "| %s | %s | %.0f | %.0f | %.0f | %.2f | %s | %s |\n", m.step.server, m.step.proto, m.median(opsPS), m.median(p50), m.median(p99),
				m.median(cpuUS), fmtRatio(m, ref1, cpuUS), fmtRatio(m, ref2, cpuUS))
		}
	}
}

// targets writes issue 8's targets with what was measured.
func targets(b *strings.Builder, t table, allocs map[string]float64) {
	w := func(format string, args ...any) { fmt.Fprintf(b, format, args...) }
	w("### Targets\n\n| target | measured | met |\n|---|---|---|\n")
	row := func(name string, v float64, ok bool, bound float64) {
		if !ok {
			w("| %s | not measured | – |\n", name)
			return
		}
		met := "yes"
		if v > bound {
			met = "**no**"
		}
		w("| %s | %.2fx | %s |\n", name, v, met)
	}
	naive, seed := t.find("naive", "ping", "", 0), t.find("seed", "ping", "", 0)
	for _, c := range []struct {
		proto string
		bound float64
	}{{"json-rpc", 0.6}, {"binary-raw", 0.5}} {
		v, ok := ratio(t.find("subgate", "ping", c.proto, 0), naive, cpuUS)
		row(fmt.Sprintf("CPU per closed-loop chat.ping, %s, ≤ %.1fx the naive server", c.proto, c.bound), v, ok, c.bound)
	}
	for _, p := range []string{"json-rpc", "msgpack", "binary-raw"} {
		v, ok := ratio(t.find("subgate", "ping", p, 0), seed, cpuUS)
		row(fmt.Sprintf("CPU per closed-loop chat.ping, %s, ≤ 0.3x the seed app", p), v, ok, 0.3)
	}
	for _, p := range []string{"json-rpc", "msgpack", "binary-raw"} {
		v, ok := ratio(t.find("subgate", "pipeline", p, 0), naive, cpuUS)
		row(fmt.Sprintf("CPU per pipelined call (16 in flight), %s, ≤ 0.15x the naive server's closed-loop ping", p), v, ok, 0.15)
	}
	mix := t.find("subgate", "broadcast", "all", 0)
	v, ok := ratio(mix, t.find("naive", "broadcast", "", 0), cpuUS)
	row("CPU per broadcast delivery, 1,000 subscribers in three encodings, ≤ 0.5x the naive server", v, ok, 0.5)
	v, ok = ratio(mix, t.find("centrifugo", "broadcast", "", 0), cpuUS)
	row("CPU per broadcast delivery, 1,000 subscribers in three encodings, below Centrifugo", v, ok, 0.9999)
	for _, c := range []struct {
		proto string
		bound float64
	}{{"binary-raw", 1}, {"msgpack", 2}, {"json-rpc", 3}} {
		n, ok := allocs[c.proto]
		if !ok {
			w("| server allocations per chat.ping, %s, ≤ %.0f | not measured | – |\n", c.proto, c.bound)
			continue
		}
		met := "yes"
		if n > c.bound {
			met = "**no**"
		}
		w("| server allocations per chat.ping, %s, ≤ %.0f (BenchmarkServerPing) | %.0f | %s |\n", c.proto, c.bound, n, met)
	}
	w("\n")
}

var modelName = regexp.MustCompile(`(?m)^model name\s*:\s*(.+)$`)

// machine describes where the figures come from.
func machine() string {
	model := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		if m := modelName.FindSubmatch(b); m != nil {
			model = strings.TrimSpace(string(m[1]))
		}
	}
	kernel, _ := exec.Command("uname", "-r").Output()
	gov, _ := exec.Command("go", "env", "GOVERSION").Output()
	load, _ := os.ReadFile("/proc/loadavg")
	la := strings.Fields(string(load))
	l1 := "?"
	if len(la) > 0 {
		l1 = la[0]
	}
	return fmt.Sprintf("Machine: %d cores (`nproc`), %q, Linux %s, %s; load average %s when the report was written.",
		runtime.NumCPU(), model, strings.TrimSpace(string(kernel)), strings.TrimSpace(string(gov)), l1)
}
