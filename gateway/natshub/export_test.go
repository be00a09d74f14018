package natshub

// Crash cuts the node off as a dying process would: the NATS connection
// closes without a word, and the lease stays until it expires.
func (h *Hub) Crash() {
	close(h.stop)
	h.nc.Close()
	h.wg.Wait()
}
