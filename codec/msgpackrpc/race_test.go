//go:build race

package msgpackrpc

const raceEnabled = true
