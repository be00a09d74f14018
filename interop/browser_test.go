package interop

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/subgate/subgate/gateway"
)

// chromium is Debian's Chromium, which playwright-core drives (a browser
// build of Playwright's own cannot be downloaded here).
const chromium = "/usr/bin/chromium"

// browserPrereqs fails the test, with the command that installs it, when
// Node, Chromium or interop/browser/node_modules is missing; it returns
// node's path.
func browserPrereqs(t *testing.T) string {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatalf("node not found on PATH (%v); install Node.js >= 20", err)
	}
	if _, err := os.Stat(chromium); err != nil {
		t.Fatalf("%s not found (%v); install with: %s (or as root: apt-get update && apt-get install -y --no-install-recommends chromium)", chromium, err, setupHint)
	}
	if _, err := os.Stat(filepath.Join("browser", "node_modules", "playwright-core", "package.json")); err != nil {
		t.Fatalf("interop/browser/node_modules/playwright-core is missing; install with: %s (or: cd interop/browser && npm ci)", setupHint)
	}
	t.Setenv("SUBGATE_BROWSER_ENCODINGS", "") // all three encodings, whatever the environment says
	return node
}

// TestBrowserPage drives the demo page at / in Chromium: three pages, one
// per encoding, in one room, through the page's own controls
// (browser/page.mjs). It saves the screenshot to SUBGATE_SCREENSHOT
// (default interop/browser/screenshot.png).
func TestBrowserPage(t *testing.T) {
	gate(t)
	node := browserPrereqs(t)
	base, srv := startGateway(t)
	runScript(t, "browser", node, "page.mjs", base)
	waitNoConns(t, srv)
}

// TestBrowserPageNotRecovered checks that the demo page says when its
// catch-up could not recover every message it missed: the gateway keeps 2
// messages per room and 3 are sent while a page is away
// (browser/recovered.mjs).
func TestBrowserPageNotRecovered(t *testing.T) {
	gate(t)
	node := browserPrereqs(t)
	base, srv := startGatewayConfig(t, gateway.Config{HistorySize: 2})
	runScript(t, "browser", node, "recovered.mjs", base)
	waitNoConns(t, srv)
}

// TestBrowserClientJS exercises /client.js in Chromium through
// page.evaluate in the three encodings (browser/clientjs.mjs).
func TestBrowserClientJS(t *testing.T) {
	gate(t)
	node := browserPrereqs(t)
	base, srv := startGateway(t)
	runScript(t, "browser", node, "clientjs.mjs", base)
	waitNoConns(t, srv)
}

// TestBrowserREADME runs the README's browser snippet of /client.js, as
// README.md has it, in each encoding (browser/readme.mjs).
func TestBrowserREADME(t *testing.T) {
	gate(t)
	node := browserPrereqs(t)
	base, srv := startGateway(t)
	runScript(t, "browser", node, "readme.mjs", base)
	waitNoConns(t, srv)
}

// TestBrowserJWT runs the demo page against a gateway with a JWT secret:
// the token field, and the page's explanation of a refused handshake
// (browser/jwt.mjs).
func TestBrowserJWT(t *testing.T) {
	gate(t)
	node := browserPrereqs(t)
	const secret = "browser-test-secret-0123456789abcdef"
	base, srv := startGatewayConfig(t, gateway.Config{JWTSecret: secret})
	t.Setenv("SUBGATE_JWT_SECRET", secret)
	runScript(t, "browser", node, "jwt.mjs", base)
	waitNoConns(t, srv)
}
