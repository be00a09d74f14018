package gateway

import (
	"bytes"
	"io"
	"net/http"
	"testing"

	"github.com/subgate/subgate/gateway/web"
)

// TestAssets checks that the gateway serves the demo page and client.js
// at their routes: the embedded bytes with a JavaScript (module-capable)
// or HTML/CSS type, no-cache with an ETag that a conditional GET turns
// into a 304, nosniff, and HEAD with the length but no body.
func TestAssets(t *testing.T) {
	_, addr := startServer(t, Config{})
	for _, tc := range []struct{ path, name, ctype string }{
		{"/", "index.html", "text/html; charset=utf-8"},
		{"/client.js", "client.js", "text/javascript; charset=utf-8"},
		{"/app.js", "app.js", "text/javascript; charset=utf-8"},
		{"/style.css", "style.css", "text/css; charset=utf-8"},
	} {
		want, ok := web.Lookup(tc.name)
		if !ok || len(want.Body) == 0 {
			t.Fatalf("%s is not embedded", tc.name)
		}
		url := "http://" + addr + tc.path
		resp, body := fetch(t, http.MethodGet, url, "")
		if resp.StatusCode != http.StatusOK || !bytes.Equal(body, want.Body) {
			t.Errorf("GET %s: status %d, %d bytes; want 200 and the %d embedded bytes", tc.path, resp.StatusCode, len(body), len(want.Body))
		}
		for h, v := range map[string]string{
			"Content-Type": tc.ctype, "Cache-Control": "no-cache", "ETag": want.ETag, "X-Content-Type-Options": "nosniff",
		} {
			if got := resp.Header.Get(h); got != v {
				t.Errorf("GET %s: %s %q, want %q", tc.path, h, got, v)
			}
		}
		resp, body = fetch(t, http.MethodHead, url, "")
		if resp.StatusCode != http.StatusOK || len(body) != 0 || resp.ContentLength != int64(len(want.Body)) || resp.Header.Get("Content-Type") != tc.ctype {
			t.Errorf("HEAD %s: status %d, %d body bytes, length %d, type %q; want 200, no body, length %d, %q",
				tc.path, resp.StatusCode, len(body), resp.ContentLength, resp.Header.Get("Content-Type"), len(want.Body), tc.ctype)
		}
		if resp, _ = fetch(t, http.MethodGet, url, want.ETag); resp.StatusCode != http.StatusNotModified {
			t.Errorf("GET %s If-None-Match %s: status %d, want 304", tc.path, want.ETag, resp.StatusCode)
		}
	}
	for _, path := range []string{"/index.html", "/nope.js", "/web.go"} {
		if resp, _ := fetch(t, http.MethodGet, "http://"+addr+path, ""); resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s: status %d, want 404", path, resp.StatusCode)
		}
	}
	if resp, _ := fetch(t, http.MethodPost, "http://"+addr+"/", ""); resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST /: status %d, want 405", resp.StatusCode)
	}
}

// fetch does one request and reads the whole body.
func fetch(t *testing.T, method, url, ifNoneMatch string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if ifNoneMatch != "" {
		req.Header.Set("If-None-Match", ifNoneMatch)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading body: %v", method, url, err)
	}
	return resp, body
}
