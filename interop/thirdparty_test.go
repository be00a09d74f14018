package interop

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// epochRE matches a stream epoch, which the server chooses at random
// (protocols/json-rpc.md, "Rooms, history and offsets").
const epochRE = `[A-Za-z0-9_-]{1,32}`

// jsonWant is what the JSON-printing examples print for client id and the
// message it sends; prefix (a regexp) comes before the method a result
// line names.
func jsonWant(id, text, prefix string) []string {
	return []string{
		`(?m)^` + prefix + `ping \{"status":"ok","timestamp":\d+\}$`,
		`(?m)^` + prefix + `join \{"room":"lobby","members":\["` + id + `"\],"offset":0,"epoch":"` + epochRE + `"\}$`,
		`(?m)^` + prefix + `send \{"room":"lobby","offset":1,"epoch":"` + epochRE + `"\}$`,
		`(?m)^push chat.message \{.*"message":"` + text + `".*"offset":1.*\}$`,
		`(?m)^push chat.message \{.*"epoch":"` + epochRE + `".*"message":"` + text + `".*\}$|^push chat.message \{.*"message":"` + text + `".*"epoch":"` + epochRE + `".*\}$`,
		`(?m)^error -32001 Not a member of the room$`,
	}
}

// TestThirdParty runs the README's clients built on third-party libraries:
// npm rpc-websockets (json-rpc, through a CommonClient whose WebSocket
// factory offers json-rpc) and npm msgpack5rpc (msgpack, over
// ws.createWebSocketStream), and github.com/sourcegraph/jsonrpc2 (json-rpc,
// over its gorilla/websocket object stream). Each calls chat.ping,
// chat.join and chat.send, receives the chat.message push and an error
// reply, and closes its connection.
func TestThirdParty(t *testing.T) {
	gate(t)
	for _, mod := range []string{"rpc-websockets", "msgpack5rpc", "ws"} {
		if _, err := os.Stat(filepath.Join("node", "node_modules", mod, "package.json")); err != nil {
			t.Fatalf("interop/node/node_modules/%s is missing; install with: %s (or: cd interop/node && npm ci)", mod, setupHint)
		}
	}
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("go not found on PATH: %v", err)
	}
	for _, ex := range []example{
		{name: "rpc-websockets", dir: "node", bin: "node", args: []string{"rpcwebsockets.mjs"},
			want: jsonWant("rpcws-example", "hello from rpc-websockets", "")},
		{name: "msgpack5rpc", dir: "node", bin: "node", args: []string{"msgpack5rpc.mjs"},
			want: jsonWant("msgpack5rpc-example", "hello from msgpack5rpc", "")},
		{name: "sourcegraph-jsonrpc2", dir: ".", bin: gobin, args: []string{"run", "./go/jsonrpc2"},
			want: jsonWant("jsonrpc2-example", "hello from jsonrpc2", `chat\.`)},
	} {
		t.Run(ex.name, func(t *testing.T) { runExample(t, ex) })
	}
}

// TestGoClientExample runs the README's Go client (package client) in each
// encoding.
func TestGoClientExample(t *testing.T) {
	gate(t)
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("go not found on PATH: %v", err)
	}
	for _, proto := range []string{"json-rpc", "msgpack", "binary-raw"} {
		t.Run(proto, func(t *testing.T) {
			runExample(t, example{dir: ".", bin: gobin, args: []string{"run", "./go/client"}, extra: []string{proto}, want: []string{
				`(?m)^ping \{Status:ok Timestamp:\d+\}$`,
				`(?m)^join \{Room:lobby Members:\[go-example\] Offset:0 Epoch:` + epochRE + `\}$`,
				`(?m)^send \{Room:lobby Offset:1 Epoch:` + epochRE + `\}$`,
				`(?m)^push chat.message \{Room:lobby From:go-example To: Message:hello from go Offset:1 Epoch:` + epochRE + ` TS:\d+\}$`,
				`(?m)^error -32001 Not a member of the room$`,
			}})
		})
	}
}
