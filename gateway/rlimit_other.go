//go:build !unix

package gateway

// fdLimit is unknown outside Unix.
func fdLimit() (uint64, bool) { return 0, false }
