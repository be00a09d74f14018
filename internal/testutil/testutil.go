// Package testutil holds small helpers shared by the tests of several
// packages.
package testutil

import (
	"time"

	"bytes"
	"github.com/subgate/subgate/client"
	"io"
	"net/http"
	"sync"
	"testing"
)

// SyncBuffer collects what several goroutines write (a server's logs).
type SyncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *SyncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *SyncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Get GETs url and returns the response, its body read and closed, and
// the body.
func Get(t testing.TB, url string) (*http.Response, []byte) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return resp, body
}

// GetOK GETs url and returns its body, failing unless the status is 200.
func GetOK(t testing.TB, url string) []byte {
	t.Helper()
	resp, body := Get(t, url)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: status %d", url, resp.StatusCode)
	}
	return body
}

// HTTPStatus GETs url and returns the response's status code.
func HTTPStatus(t testing.TB, url string) int {
	t.Helper()
	resp, _ := Get(t, url)
	return resp.StatusCode
}

// WaitPush returns the client's next push of method decoded into a new
// T, skipping other pushes; it fails the test after 10 s or when the
// connection ends first.
func WaitPush[T any](t testing.TB, c *client.Client, method string) *T {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case p, ok := <-c.Pushes():
			if !ok {
				t.Fatalf("%s: connection closed while waiting for %s: %v", c.Protocol(), method, c.Err())
			}
			if p.Method != method {
				continue
			}
			v := new(T)
			if err := p.Decode(v); err != nil {
				t.Fatal(err)
			}
			return v
		case <-timeout:
			t.Fatalf("%s: no %s push within 10 s", c.Protocol(), method)
		}
	}
}
