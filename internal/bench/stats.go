package bench

import (
	"cmp"
	"encoding/base64"
	"fmt"
	"math"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	hdr "github.com/HdrHistogram/hdrhistogram-go"
)

// Histogram range: 1 µs to 60 s at 3 significant digits.
const (
	histMin    = 1
	histMax    = 60_000_000
	histDigits = 3
)

func newHist() *hdr.Histogram { return hdr.New(histMin, histMax, histDigits) }

// Stats are the numbers of a run or of one encoding in it. Latencies are
// in microseconds.
type Stats struct {
	Ops      int64   `json:"ops"`
	OpsPerS  float64 `json:"ops_per_s"`
	P50      int64   `json:"p50_us"`
	P90      int64   `json:"p90_us"`
	P99      int64   `json:"p99_us"`
	P999     int64   `json:"p999_us"`
	Max      int64   `json:"max_us"`
	Errors   int64   `json:"errors"`
	Sent     int64   `json:"sent"`
	Expected int64   `json:"expected"`
	Lost     int64   `json:"lost"`
	// Hist is the HDR histogram, base64 of its compressed encoding: only in
	// the output of a -procs child, for the parent to merge.
	Hist string `json:"hist,omitempty"`

	h *hdr.Histogram
}

// Result is the outcome of a run: the one JSON line of `subgate bench -json`.
type Result struct {
	Scenario  string  `json:"scenario"`
	Target    string  `json:"target"`
	Proto     string  `json:"proto"`
	Conns     int     `json:"conns"`
	Subs      int     `json:"subs"`
	Rooms     int     `json:"rooms"`
	Senders   int     `json:"senders"`
	Inflight  int     `json:"inflight"`
	Rate      float64 `json:"rate"`
	DurationS float64 `json:"duration_s"`
	Stats
	ByProto map[string]*Stats `json:"by_proto,omitempty"`
	// FirstError is the text of the first error, when there was one.
	FirstError string `json:"first_error,omitempty"`
}

// finish computes rates and percentiles from the histograms.
func (r *Result) finish() {
	r.DurationS = math.Round(r.DurationS*1000) / 1000
	r.Stats.finish(r.DurationS)
	for _, s := range r.ByProto {
		s.finish(r.DurationS)
	}
}

func (s *Stats) finish(seconds float64) {
	if seconds > 0 {
		s.OpsPerS = float64(int64(float64(s.Ops)/seconds*10)) / 10
	}
	if s.h == nil || s.h.TotalCount() == 0 {
		return
	}
	s.P50 = s.h.ValueAtQuantile(50)
	s.P90 = s.h.ValueAtQuantile(90)
	s.P99 = s.h.ValueAtQuantile(99)
	s.P999 = s.h.ValueAtQuantile(99.9)
	s.Max = s.h.Max()
}

// add adds o's counts and histogram to s.
func (s *Stats) add(o *Stats) {
	s.Ops += o.Ops
	s.Errors += o.Errors
	s.Sent += o.Sent
	s.Expected += o.Expected
	s.Lost += o.Lost
	if o.h != nil {
		if s.h == nil {
			s.h = newHist()
		}
		s.h.Merge(o.h)
	}
}

// EncodeHists puts each histogram into its Hist field (for a child's
// output).
func (r *Result) EncodeHists() error {
	for _, s := range append([]*Stats{&r.Stats}, values(r.ByProto)...) {
		if s.h == nil {
			continue
		}
		b, err := s.h.Encode(hdr.V2CompressedEncodingCookieBase)
		if err != nil {
			return fmt.Errorf("bench: encode histogram: %w", err)
		}
		s.Hist = base64.StdEncoding.EncodeToString(b)
	}
	return nil
}

func (s *Stats) decodeHist() error {
	if s.Hist == "" {
		return nil
	}
	b, err := base64.StdEncoding.DecodeString(s.Hist)
	if err != nil {
		return fmt.Errorf("bench: histogram: %w", err)
	}
	if s.h, err = hdr.Decode(b); err != nil {
		return fmt.Errorf("bench: histogram: %w", err)
	}
	s.Hist = ""
	return nil
}

func values(m map[string]*Stats) []*Stats {
	out := make([]*Stats, 0, len(m))
	for _, s := range m {
		out = append(out, s)
	}
	return out
}

// Merge combines the results of -procs children: counts add up, the
// histograms are merged and the percentiles computed again from them.
func Merge(parts []*Result) (*Result, error) {
	if len(parts) == 0 {
		return nil, fmt.Errorf("bench: no results to merge")
	}
	out := *parts[0]
	out.Stats = Stats{}
	out.Conns, out.Rate, out.DurationS = 0, 0, 0
	if parts[0].ByProto != nil {
		out.ByProto = map[string]*Stats{}
	}
	for _, p := range parts {
		if err := p.Stats.decodeHist(); err != nil {
			return nil, err
		}
		out.Stats.add(&p.Stats)
		out.Conns += p.Conns
		out.Rate += p.Rate
		out.DurationS = max(out.DurationS, p.DurationS)
		out.FirstError = cmp.Or(out.FirstError, p.FirstError)
		for name, s := range p.ByProto {
			if err := s.decodeHist(); err != nil {
				return nil, err
			}
			if out.ByProto[name] == nil {
				out.ByProto[name] = &Stats{}
			}
			out.ByProto[name].add(s)
		}
	}
	out.finish()
	return &out, nil
}

// recorder collects latencies and counts while a run goes on: per
// encoding, in shards with a mutex each, so that goroutines seldom wait.
type recorder struct {
	protos []string
	shards [][]*shard // [proto][shard]
	ops    atomic.Int64
	errs   atomic.Int64
	conns  atomic.Int64 // connections open now
}

type shard struct {
	mu   sync.Mutex
	h    *hdr.Histogram
	ops  int64
	errs int64
}

func newRecorder(protos []string) *recorder {
	r := &recorder{protos: protos}
	n := max(runtime.GOMAXPROCS(0), 2)
	for range protos {
		row := make([]*shard, n)
		for i := range row {
			row[i] = &shard{h: newHist()}
		}
		r.shards = append(r.shards, row)
	}
	return r
}

func (r *recorder) shard(p, key int) *shard {
	row := r.shards[p]
	return row[key%len(row)]
}

// record counts one operation of encoding p that took d.
func (r *recorder) record(p, key int, d time.Duration) {
	us := max(d.Microseconds(), histMin)
	s := r.shard(p, key)
	s.mu.Lock()
	s.h.RecordValue(min(us, histMax))
	s.ops++
	s.mu.Unlock()
	r.ops.Add(1)
}

// fail counts one error of encoding p.
func (r *recorder) fail(p, key int) { r.failN(p, key, 1) }

func (r *recorder) failN(p, key int, n int64) {
	if n == 0 {
		return
	}
	s := r.shard(p, key)
	s.mu.Lock()
	s.errs += n
	s.mu.Unlock()
	r.errs.Add(n)
}

// snapshot merges the shards: one Stats per encoding and the total.
func (r *recorder) snapshot() (total *Stats, byProto map[string]*Stats) {
	total = &Stats{h: newHist()}
	byProto = map[string]*Stats{}
	for p, row := range r.shards {
		s := &Stats{h: newHist()}
		for _, sh := range row {
			sh.mu.Lock()
			s.h.Merge(sh.h)
			s.Ops += sh.ops
			s.Errors += sh.errs
			sh.mu.Unlock()
		}
		byProto[r.protos[p]] = s
		total.add(s)
	}
	return total, byProto
}
