// Package interop runs third-party clients against an in-process subgate
// gateway: a Node client (node/interop.mjs, with the npm packages ws and
// @msgpack/msgpack) and a Python client (python/interop.py, with Debian's
// python3-websockets and python3-msgpack, and its own binary-raw codec
// python/binraw.py). Both are written from the specifications a third-party
// user has (README.md, protocols/*.md and testdata/golden) and import
// nothing from this module; each speaks the three subprotocols (json-rpc,
// msgpack and binary-raw) and checks the chat methods, server pushes, error
// codes, cross-encoding delivery (json-rpc, msgpack and binary-raw clients
// in one room) and subprotocol negotiation, including the HTTP 400 for an
// offer with no supported name.
//
// The Python binary-raw codec is written from protocols/binary-raw.md alone,
// to show the specification is enough. Besides its checks against the
// gateway (every frame kind, batches, the parse and params errors, the
// spec's example frames answered byte for byte), interop.py checks it
// offline against every hex example in protocols/binary-raw.md (and that
// it checks every one there is) and every binary-raw line of
// testdata/golden, which it reads from this checkout.
//
// TestReplyLoopPython and TestReplyLoopNode run real MessagePack-RPC
// libraries, Debian's python3-pynvim (pynvim.msgpack_rpc, through a small
// WebSocket adapter in python/replyloop.py) and npm's msgpack5rpc
// (node/replyloop.mjs), against the gateway with malformed responses
// injected: pynvim answers a nil-msgid error with a string-error response,
// msgpack5rpc crashes on a nil-msgid error, and a gateway that answered
// responses looped with the first and crashed the second. Each checks that
// the library receives only the frames it should, ending with a normal
// call's result.
//
// The gateway's own JavaScript module, /client.js, is tested here too:
// node/clientjs.mjs runs it in Node on the bytes the gateway serves (every
// golden vector, a MessagePack cross-check against @msgpack/msgpack, every
// method against a live gateway; TestClientJS), node/clientjs-example.mjs
// is the README's Node example (TestClientJSExample), and browser/ drives
// Debian's Chromium with playwright-core: the demo page in three pages,
// one per encoding (TestBrowserPage), /client.js through page.evaluate
// (TestBrowserClientJS), the README's browser snippet (TestBrowserREADME)
// and the token field against a gateway with a JWT secret
// (TestBrowserJWT).
//
// The tests need Node.js, npm packages and Debian packages that a plain
// `go test ./...` does not, so they are skipped unless SUBGATE_INTEROP=1.
// Install the prerequisites, then run them:
//
//	bash interop/setup.sh   # npm ci in interop/node and interop/browser; apt-get install chromium python3-websockets python3-msgpack python3-pynvim
//	SUBGATE_INTEROP=1 go test -race -count=1 -v ./interop/
//
// With SUBGATE_INTEROP=1 a missing prerequisite (node, interop/node/node_modules,
// /usr/bin/python3 or its websockets, msgpack and pynvim modules) fails the test with the
// command that installs it, rather than skipping: a run that asked for the
// interop tests must not pass without running them.
//
// Each script can also be run by hand against any server:
//
//	go run ./cmd/subgate -addr 127.0.0.1:8080 &
//	node interop/node/interop.mjs ws://127.0.0.1:8080
//	/usr/bin/python3 interop/python/interop.py ws://127.0.0.1:8080
//
// Each prints one line per check and last "N passed, M failed", and exits
// non-zero if a check failed. Every wait in them has a timeout.
//
// The README's "Clients" section shows complete programs, each a file here:
// node/example.mjs (ws, json-rpc), python/example.py (msgpack) and
// python/example_jsonrpc.py (json-rpc) run by TestExamples;
// node/rpcwebsockets.mjs (npm rpc-websockets through a CommonClient whose
// WebSocket factory offers json-rpc), node/msgpack5rpc.mjs (npm msgpack5rpc
// over ws.createWebSocketStream) and go/jsonrpc2 (github.com/sourcegraph/jsonrpc2
// over its gorilla/websocket object stream) run by TestThirdParty; go/client
// (package client) run by TestGoClientExample in each encoding. Each must
// print what the README says, and TestREADMEShowsTheExamples (which needs
// no gateway and always runs) fails when the README's copy of a file
// differs from the file.
package interop
