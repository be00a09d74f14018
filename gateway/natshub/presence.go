package natshub

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

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

// Keys of the presence bucket.
func memberKey(room, client string) string {
	return "m." + b64.EncodeToString([]byte(room)) + "." + b64.EncodeToString([]byte(client))
}

func connKey(client, node string) string {
	return "c." + b64.EncodeToString([]byte(client)) + "." + node
}

func leaseKey(node string) string { return "n." + node }

// parseKey splits a bucket key into its kind and its two names.
func parseKey(k string) (kind byte, a, b string, ok bool) {
	parts := strings.Split(k, ".")
	dec := func(s string) (string, bool) {
		v, err := b64.DecodeString(s)
		return string(v), err == nil
	}
	switch {
	case len(parts) == 3 && parts[0] == "m":
		room, ok1 := dec(parts[1])
		client, ok2 := dec(parts[2])
		return 'm', room, client, ok1 && ok2
	case len(parts) == 3 && parts[0] == "c":
		client, ok1 := dec(parts[1])
		return 'c', client, parts[2], ok1
	case len(parts) == 2 && parts[0] == "n":
		return 'n', parts[1], "", true
	}
	return 0, "", "", false
}

// watch applies the bucket's changes to the view. Changes loaded at start
// push nothing; later ones push presence to local members. After NATS
// comes back (Hub.rewatch) the watcher is made again, resuming after the
// last revision applied, so that no change made meanwhile is missed.
func (h *Hub) watch(w jetstream.KeyWatcher) {
	defer h.wg.Done()
	for {
		h.consume(w)
		if h.closing() {
			return // closing the NATS connection ends the watcher
		}
		// Stopping deletes the watcher's consumer with a request that may
		// wait for a server that no longer has it: not on this goroutine.
		go w.Stop()
		if w = h.resume(); w == nil {
			return
		}
	}
}

// consume applies a watcher's changes until it ends, NATS came back or the
// hub stops.
func (h *Hub) consume(w jetstream.KeyWatcher) {
	for {
		select {
		case <-h.stop:
			return
		case <-h.rewatch:
			return
		case e, ok := <-w.Updates():
			if !ok {
				return
			}
			if e == nil {
				h.loaded.Do(func() { close(h.synced) })
				continue
			}
			h.apply(e, h.isLoaded())
		}
	}
}

// resume makes a watcher that delivers every change after the last one
// applied; nil when the hub stops first. It retries every 250 ms while
// NATS is away.
func (h *Hub) resume() jetstream.KeyWatcher {
	for {
		h.mu.Lock()
		from := h.applied + 1
		h.mu.Unlock()
		// The watcher lives as long as its context: not a bounded one.
		w, err := h.kv.WatchAll(context.Background(), jetstream.IncludeHistory(), jetstream.ResumeFromRevision(from))
		if err == nil {
			h.log.Info("watching presence again", "from_revision", from)
			return w
		}
		h.log.Warn("watching presence", "err", err)
		select {
		case <-h.stop:
			return nil
		case <-time.After(250 * time.Millisecond):
		}
	}
}

func (h *Hub) isLoaded() bool {
	select {
	case <-h.synced:
		return true
	default:
		return false
	}
}

func (h *Hub) apply(e jetstream.KeyValueEntry, live bool) {
	kind, a, b, ok := parseKey(e.Key())
	if !ok {
		h.mu.Lock()
		h.advanceLocked(e.Revision())
		h.mu.Unlock()
		return
	}
	put := e.Operation() == jetstream.KeyValuePut
	h.mu.Lock()
	defer h.mu.Unlock()
	defer h.advanceLocked(e.Revision())
	switch kind {
	case 'm':
		if put {
			h.addMemberLocked(a, b, live)
			if len(h.local[b]) > 0 && !h.registered[b] {
				go h.registerQuietly(b)
			}
		} else {
			h.removeMemberLocked(a, b, live)
		}
	case 'c':
		if put {
			addTo(h.conns, a, b)
		} else {
			removeFrom(h.conns, a, b)
		}
	case 'n':
		if put {
			h.nodes[a] = time.Now()
		} else {
			delete(h.nodes, a)
		}
	}
}

func (h *Hub) advanceLocked(rev uint64) {
	if rev > h.applied {
		h.applied = rev
		close(h.advanced)
		h.advanced = make(chan struct{})
	}
}

// registerQuietly registers a local client that another node made a member
// of a room, so that its rooms outlive its connections elsewhere.
func (h *Hub) registerQuietly(id string) {
	ctx, cancel := context.WithTimeout(context.Background(), h.opt.Timeout)
	defer cancel()
	if err := h.register(ctx, id); err != nil {
		h.log.Warn("registering a connection", "client_id", id, "err", err)
	}
}

// lease refreshes this node's lease and reaps the nodes whose lease
// expired, every PresenceTTL/3.
func (h *Hub) lease() {
	defer h.wg.Done()
	tick := time.NewTicker(h.opt.PresenceTTL / 3)
	defer tick.Stop()
	for {
		select {
		case <-h.stop:
			return
		case <-tick.C:
		}
		h.refresh()
	}
}

func (h *Hub) refresh() {
	// A loaded node may take long to get its answer; the lease has until
	// the next refresh.
	ctx, cancel := context.WithTimeout(context.Background(), h.opt.PresenceTTL/3)
	defer cancel()
	if _, err := h.kv.Put(ctx, leaseKey(h.node), []byte(h.opt.Name)); err != nil {
		h.log.Warn("refreshing the node's lease", "err", err)
		return // a node cut off from the bus reaps nobody
	}
	if info, err := h.hist.Info(ctx); err == nil {
		h.mu.Lock()
		h.histBytes = int(info.State.Bytes)
		h.mu.Unlock()
	}
	for _, node := range h.expired() {
		if h.alive(node) {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), h.opt.Timeout)
		if err := h.reap(ctx, node); err != nil {
			h.log.Warn("removing a dead node's clients", "dead", node, "err", err)
		}
		cancel()
	}
	ctx, cancel = context.WithTimeout(context.Background(), h.opt.Timeout)
	defer cancel()
	if err := h.reconcile(ctx); err != nil {
		h.log.Warn("repairing presence", "err", err)
	}
}

// reconcile repairs what a call that failed while NATS was away left
// behind: this node's connection keys of clients it no longer holds go
// (and the clients leave their rooms when no node holds them), and local
// clients in rooms that have no key get one.
func (h *Hub) reconcile(ctx context.Context) error {
	h.mu.Lock()
	var stale, missing []string
	for id, set := range h.conns {
		if _, ok := set[h.node]; ok && len(h.local[id]) == 0 {
			stale = append(stale, id)
		}
	}
	for id := range h.local {
		if len(h.joined[id]) > 0 && !h.registered[id] {
			missing = append(missing, id)
		}
	}
	h.mu.Unlock()
	var errs []error
	for _, id := range stale {
		errs = append(errs, h.release(ctx, id, h.node))
	}
	for _, id := range missing {
		errs = append(errs, h.register(ctx, id))
	}
	return errors.Join(errs...)
}

// graceLeases counts every lease as fresh: after an outage of the bus no
// node could refresh its lease, and none is dead for it.
func (h *Hub) graceLeases() {
	now := time.Now()
	h.mu.Lock()
	for n := range h.nodes {
		h.nodes[n] = now
	}
	h.mu.Unlock()
}

func (h *Hub) expired() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var dead []string
	for n, seen := range h.nodes {
		if n != h.node && time.Since(seen) > h.opt.PresenceTTL {
			dead = append(dead, n)
		}
	}
	// A connection key of a node without a lease (one that died before
	// this node started watching, or that lost its lease) is dead too.
	for _, set := range h.conns {
		for n := range set {
			if _, ok := h.nodes[n]; !ok && n != h.node {
				dead = append(dead, n)
			}
		}
	}
	return dead
}

// alive asks a node whose lease expired whether it is there: a node too
// loaded to refresh its lease in time (its NATS goroutines wait behind
// thousands of busy connections) is not reaped while it answers within
// PresenceTTL/3.
func (h *Hub) alive(node string) bool {
	_, err := h.nc.Request(h.subjNode+node, nil, h.opt.PresenceTTL/3)
	if err != nil {
		return false
	}
	h.mu.Lock()
	if _, ok := h.nodes[node]; ok {
		h.nodes[node] = time.Now()
	}
	h.mu.Unlock()
	h.log.Warn("a node answers but did not refresh its lease in time", "slow", node)
	return true
}

// reap removes a dead node: its connection keys, the memberships of its
// clients that have no connection on another node, and its lease.
func (h *Hub) reap(ctx context.Context, node string) error {
	h.mu.Lock()
	delete(h.nodes, node) // so that probes do not wait for its answer
	var clients []string
	for id, set := range h.conns {
		if _, ok := set[node]; ok {
			clients = append(clients, id)
		}
	}
	h.mu.Unlock()
	h.log.Info("node lease expired: removing its clients", "dead", node, "clients", len(clients))
	var errs []error
	for _, id := range clients {
		errs = append(errs, h.release(ctx, id, node))
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	return h.kv.Delete(ctx, leaseKey(node))
}
