//go:build !race

package msgpackrpc

const raceEnabled = false
