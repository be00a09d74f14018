package gateway

// The connections' timers: keepalive pings, the idle timeout (when the
// poller reads) and token expiry are deadlines in one heap, served by one
// goroutine for the process, instead of a runtime timer (and, when it
// fires, a goroutine) per connection and purpose.

import (
	"container/heap"
	"sync"
	"time"
)

type timerKind uint8

const (
	timerPing   timerKind = iota // queue a keepalive ping (Conn.keepalive)
	timerIdle                    // check the idle timeout (Conn.checkIdle)
	timerExpiry                  // the token expired (Conn.expire)
)

// deadline is one of a connection's timers, kept in the Conn itself so
// that scheduling allocates nothing. Its fields are guarded by
// deadlines.mu.
type deadline struct {
	c    *Conn
	kind timerKind
	when int64 // Unix nanoseconds
	idx  int   // index in the heap; -1: not scheduled
}

// deadlineHeap orders deadlines by when.
type deadlineHeap []*deadline

func (h deadlineHeap) Len() int           { return len(h) }
func (h deadlineHeap) Less(i, j int) bool { return h[i].when < h[j].when }
func (h deadlineHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].idx, h[j].idx = i, j
}
func (h *deadlineHeap) Push(x any) {
	d := x.(*deadline)
	d.idx = len(*h)
	*h = append(*h, d)
}
func (h *deadlineHeap) Pop() any {
	old := *h
	d := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	d.idx = -1
	return d
}

// deadlines is the process's timer heap. Its goroutine starts with the
// first deadline and sleeps until the earliest one; mu is a leaf lock
// (callbacks run without it).
var deadlines = struct {
	mu      sync.Mutex
	h       deadlineHeap
	wake    chan struct{}
	started bool
}{wake: make(chan struct{}, 1)}

// schedule sets d to fire at when, replacing any earlier setting.
func (d *deadline) schedule(when time.Time) {
	ds := &deadlines
	ds.mu.Lock()
	d.when = when.UnixNano()
	if d.idx >= 0 {
		heap.Fix(&ds.h, d.idx)
	} else {
		heap.Push(&ds.h, d)
	}
	first := ds.h[0] == d
	if !ds.started {
		ds.started = true
		go runDeadlines()
	}
	ds.mu.Unlock()
	if first {
		select {
		case ds.wake <- struct{}{}:
		default:
		}
	}
}

// stop unschedules d; it does not fire after stop returns unless it is
// firing already.
func (d *deadline) stop() {
	ds := &deadlines
	ds.mu.Lock()
	if d.idx >= 0 {
		heap.Remove(&ds.h, d.idx)
	}
	ds.mu.Unlock()
}

// runDeadlines fires the deadlines as they come, forever.
func runDeadlines() {
	ds := &deadlines
	t := time.NewTimer(time.Hour)
	for {
		ds.mu.Lock()
		now := time.Now().UnixNano()
		var due *deadline
		wait := time.Hour
		if len(ds.h) > 0 {
			if ds.h[0].when <= now {
				due = heap.Pop(&ds.h).(*deadline)
			} else {
				wait = time.Duration(ds.h[0].when - now)
			}
		}
		ds.mu.Unlock()
		if due != nil {
			due.fire()
			continue
		}
		t.Reset(wait)
		select {
		case <-t.C:
		case <-ds.wake:
			t.Stop()
		}
	}
}

// fire runs on the deadlines' goroutine: it must not block.
func (d *deadline) fire() {
	switch d.kind {
	case timerPing:
		d.c.keepalive()
	case timerIdle:
		d.c.checkIdle()
	case timerExpiry:
		d.c.expire()
	}
}
