// Package flood opens many WebSocket handshakes at once, for the tests
// that check that a server answers every one of them at its limits.
package flood

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// Result is the outcome of one handshake.
type Result struct {
	Status int      // the response's status; 0 when Err is set
	Conn   net.Conn // the open WebSocket when Status is 101, else nil
	Err    error    // dialing, writing or reading the response failed (a timeout included)
}

// Handshakes dials addr n times at once and asks each connection to be
// upgraded at /ws/flood<i>, waiting at most timeout for each answer.
// WebSockets that were accepted stay open: the caller closes them. Other
// connections are closed once their response is read.
func Handshakes(addr string, n int, timeout time.Duration) []Result {
	out := make([]Result, n)
	var wg sync.WaitGroup
	for i := range out {
		wg.Go(func() { out[i] = handshake(addr, "/ws/flood"+strconv.Itoa(i), timeout) })
	}
	wg.Wait()
	return out
}

func handshake(addr, path string, timeout time.Duration) Result {
	nc, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return Result{Err: err}
	}
	_ = nc.SetDeadline(time.Now().Add(timeout))
	req := "GET " + path + " HTTP/1.1\r\nHost: " + addr + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
	if _, err := io.WriteString(nc, req); err != nil {
		nc.Close()
		return Result{Err: err}
	}
	resp, err := http.ReadResponse(bufio.NewReader(nc), nil)
	if err != nil {
		nc.Close()
		return Result{Err: err}
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		nc.Close()
		return Result{Status: resp.StatusCode}
	}
	_ = nc.SetDeadline(time.Time{})
	return Result{Status: resp.StatusCode, Conn: nc}
}

// Count tallies results by status; errors are counted under -1.
func Count(rs []Result) map[int]int {
	m := map[int]int{}
	for _, r := range rs {
		if r.Err != nil {
			m[-1]++
			continue
		}
		m[r.Status]++
	}
	return m
}

// Close closes the WebSockets that were accepted.
func Close(rs []Result) {
	for _, r := range rs {
		if r.Conn != nil {
			r.Conn.Close()
		}
	}
}

// Recovered tries one handshake after another until one is accepted, for
// at most within; it fails at once on an answer other than 101 or 503 (a
// timeout included).
func Recovered(addr string, within time.Duration) error {
	for deadline := time.Now().Add(within); ; {
		r := handshake(addr, "/ws/recovered", 5*time.Second)
		switch {
		case r.Status == http.StatusSwitchingProtocols:
			return r.Conn.Close()
		case r.Err != nil:
			return r.Err
		case r.Status != http.StatusServiceUnavailable:
			return fmt.Errorf("flood: status %d", r.Status)
		case time.Now().After(deadline):
			return fmt.Errorf("flood: still refused after %v", within)
		}
	}
}
