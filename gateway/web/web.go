// Package web holds the gateway's browser assets: the demo chat page
// (index.html, app.js, style.css) and the JavaScript client module
// (client.js), embedded in the binary so that the page is served by the
// gateway itself, from the same origin as its WebSocket, and fetches
// nothing from anywhere else.
package web

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"net/http"
	"path"
	"time"
)

//go:embed index.html app.js style.css client.js
var files embed.FS

// types are the Content-Types of the embedded files, by extension. They
// are spelled out rather than taken from mime.TypeByExtension, which reads
// the host's mime tables: a module script must be served as JavaScript
// everywhere, or the browser refuses it.
var types = map[string]string{
	".html": "text/html; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
	".css":  "text/css; charset=utf-8",
}

// Asset is one embedded file, ready to serve.
type Asset struct {
	Name string // the file name, e.g. "client.js"
	Type string // its Content-Type
	Body []byte
	ETag string // a strong validator: a quoted prefix of the SHA-256 of Body
}

// Names lists the embedded files.
var Names = []string{"index.html", "app.js", "style.css", "client.js"}

// Lookup returns the embedded file name.
func Lookup(name string) (Asset, bool) {
	b, err := files.ReadFile(name)
	if err != nil {
		return Asset{}, false
	}
	sum := sha256.Sum256(b)
	return Asset{Name: name, Type: types[path.Ext(name)], Body: b, ETag: `"` + hex.EncodeToString(sum[:12]) + `"`}, true
}

// Handler serves the embedded file name (GET and HEAD). Responses carry
// Cache-Control: no-cache with an ETag, so that a browser revalidates on
// every load (a 304 when nothing changed) and never runs a page against a
// client.js of another gateway version; and nosniff, so that the types
// are taken as given. It panics if name is not embedded: that is a
// programming error found by the first test.
func Handler(name string) http.Handler {
	a, ok := Lookup(name)
	if !ok {
		panic("web: no embedded file " + name)
	}
	return a
}

// ServeHTTP answers with the file; http.ServeContent does the
// conditional (If-None-Match: 304) and HEAD handling.
func (a Asset) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Type", a.Type)
	h.Set("Cache-Control", "no-cache")
	h.Set("ETag", a.ETag)
	h.Set("X-Content-Type-Options", "nosniff")
	http.ServeContent(w, r, a.Name, time.Time{}, bytes.NewReader(a.Body))
}
