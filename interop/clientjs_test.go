package interop

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestClientJS runs node/clientjs.mjs, the tests of the browser client module
// (golden vectors through its codecs, its MessagePack against
// @msgpack/msgpack, then every chat method in every encoding against the
// gateway), on the exact bytes the gateway serves at /client.js.
func TestClientJS(t *testing.T) {
	gate(t)
	node := nodeWith(t, "ws", "@msgpack/msgpack")
	base, srv := startGateway(t)
	module := servedClientJS(t, "http"+strings.TrimPrefix(base, "ws"))
	runScript(t, "node", node, "clientjs.mjs", base, module)
	waitNoConns(t, srv)
}

// servedClientJS fetches /client.js from the gateway at httpBase, writes it
// to a temporary file and returns its path. Until the gateway has that
// route (404), it uses gateway/web/client.js, the file the route embeds.
func servedClientJS(t *testing.T, httpBase string) string {
	t.Helper()
	disk, err := os.ReadFile(filepath.Join("..", "gateway", "web", "client.js"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, httpBase+"/client.js", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET /client.js: %v", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET /client.js: %v", err)
	}
	switch {
	case resp.StatusCode == http.StatusNotFound:
		t.Logf("GET /client.js: 404 (no route yet); testing gateway/web/client.js from disk")
		body = disk
	case resp.StatusCode != http.StatusOK:
		t.Fatalf("GET /client.js: status %d, want 200", resp.StatusCode)
	case !strings.Contains(resp.Header.Get("Content-Type"), "javascript"):
		// Browsers refuse a module script served with another type.
		t.Errorf("GET /client.js: Content-Type %q, want text/javascript", resp.Header.Get("Content-Type"))
	case !bytes.Equal(body, disk):
		t.Errorf("GET /client.js: %d bytes served differ from gateway/web/client.js (%d bytes)", len(body), len(disk))
	}
	path := filepath.Join(t.TempDir(), "client.js")
	if err := os.WriteFile(path, body, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}
