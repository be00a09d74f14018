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
	runBrowser(t, "page.mjs", gateway.Config{})
}

// runBrowser runs a browser/ script in Chromium against a gateway made
// with cfg, and checks that every connection it opened is closed.
func runBrowser(t *testing.T, script string, cfg gateway.Config) {
	t.Helper()
	gate(t)
	node := browserPrereqs(t)
	base, srv := startGatewayConfig(t, cfg)
	runScript(t, "browser", node, script, base)
	waitNoConns(t, srv)
}

// TestBrowserPageNotRecovered checks that the demo page says when its
// catch-up could not recover every message it missed: the gateway keeps 2
// messages per room and 3 are sent while a page is away
// (browser/recovered.mjs).
func TestBrowserPageNotRecovered(t *testing.T) {
	runBrowser(t, "recovered.mjs", gateway.Config{HistorySize: 2})
}

// TestBrowserClientJS exercises /client.js in Chromium through
// page.evaluate in the three encodings (browser/clientjs.mjs).
func TestBrowserClientJS(t *testing.T) {
	runBrowser(t, "clientjs.mjs", gateway.Config{})
}

// TestBrowserREADME runs the README's browser snippet of /client.js, as
// README.md has it, in each encoding (browser/readme.mjs).
func TestBrowserREADME(t *testing.T) {
	runBrowser(t, "readme.mjs", gateway.Config{})
}

// TestBrowserJWT runs the demo page against a gateway with a JWT secret:
// the token field, and the page's explanation of a refused handshake
// (browser/jwt.mjs).
func TestBrowserJWT(t *testing.T) {
	const secret = "browser-test-secret-0123456789abcdef"
	t.Setenv("SUBGATE_JWT_SECRET", secret) // for the script
	runBrowser(t, "jwt.mjs", gateway.Config{JWTSecret: secret})
}
