package natshub

import "time"

// Crash cuts the node off as a dying process would: the NATS connection
// closes without a word, and the lease stays until it expires.
func (h *Hub) Crash() {
	close(h.stop)
	h.nc.Close()
	h.wg.Wait()
}

// Node is the node's id in subjects and keys.
func (h *Hub) Node() string { return h.node }

// AgeLease makes this node's view of another node's lease d older, as if
// that node had been too busy to refresh it, and runs a lease tick.
func (h *Hub) AgeLease(node string, d time.Duration) {
	h.mu.Lock()
	h.nodes[node] = h.nodes[node].Add(-d)
	h.mu.Unlock()
	h.refresh()
}
