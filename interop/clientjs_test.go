package interop

import (
	"bytes"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/subgate/subgate/internal/testutil"
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

// servedClientJS fetches /client.js from the gateway at httpBase (it must
// be the embedded gateway/web/client.js, served as JavaScript: browsers
// refuse a module script of another type), writes it to a temporary file
// and returns its path.
func servedClientJS(t *testing.T, httpBase string) string {
	t.Helper()
	disk, err := os.ReadFile(filepath.Join("..", "gateway", "web", "client.js"))
	if err != nil {
		t.Fatal(err)
	}
	resp, body := testutil.Get(t, httpBase+"/client.js")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /client.js: status %d", resp.StatusCode)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.Contains(ct, "javascript") {
		t.Errorf("GET /client.js: Content-Type %q, want text/javascript", ct)
	}
	if !bytes.Equal(body, disk) {
		t.Errorf("GET /client.js: %d bytes served differ from gateway/web/client.js (%d bytes)", len(body), len(disk))
	}
	path := filepath.Join(t.TempDir(), "client.js")
	if err := os.WriteFile(path, body, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}
