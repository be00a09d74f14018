package interop

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/subgate/subgate/internal/testutil"
)

// example is a client program the README shows in full, run as a newcomer
// would run it; it must print what the README says it prints.
type example struct {
	name, dir, bin string
	args           []string // before the gateway's base URL; after it: extra
	extra          []string
	want           []string // regexps its output must match
}

// The README's example clients, run as a newcomer would run them, must
// print what the README says they print.
func TestExamples(t *testing.T) {
	gate(t)
	for _, ex := range []example{
		{name: "node", dir: "node", bin: "node", args: []string{"example.mjs"}, want: []string{
			`(?m)^ping \{"status":"ok","timestamp":\d+\}$`,
			`(?m)^join \{"room":"lobby","members":\["node-example"\],"offset":0,"epoch":"` + epochRE + `"\}$`,
			`(?m)^push chat.message \{"room":"lobby","from":"node-example","message":"hello from node","offset":1,"epoch":"` + epochRE + `","ts":\d+\}$`,
			`(?m)^send \{"room":"lobby","offset":1,"epoch":"` + epochRE + `"\}$`,
			`(?m)^error -32001 Not a member of the room$`,
		}},
		{name: "python-msgpack", dir: "python", bin: python, args: []string{"example.py"}, want: pythonWant("python-example")},
		{name: "python-json-rpc", dir: "python", bin: python, args: []string{"example_jsonrpc.py"}, want: pythonWant("python-jsonrpc")},
	} {
		t.Run(ex.name, func(t *testing.T) { runExample(t, ex) })
	}
}

// pythonWant is what the Python examples print for client id.
func pythonWant(id string) []string {
	return []string{
		`(?m)^ping \{'status': 'ok', 'timestamp': \d+\}$`,
		`(?m)^join \{'room': 'lobby', 'members': \['` + id + `'\], 'offset': 0, 'epoch': '` + epochRE + `'\}$`,
		`(?m)^push chat.message \{'room': 'lobby', 'from': '` + id + `', 'message': 'hello from python', 'offset': 1, 'epoch': '` + epochRE + `', 'ts': \d+\}$`,
		`(?m)^send \{'room': 'lobby', 'offset': 1, 'epoch': '` + epochRE + `'\}$`,
		`(?m)^error -32001 Not a member of the room$`,
	}
}

// runExample runs ex against a gateway of its own and checks its output
// and that it closed its connection.
func runExample(t *testing.T, ex example) {
	t.Helper()
	base, srv := startGateway(t)
	ctx, cancel := context.WithTimeout(context.Background(), scriptTimeout)
	defer cancel()
	args := append(append(append([]string{}, ex.args...), base), ex.extra...)
	cmd := exec.CommandContext(ctx, ex.bin, args...)
	cmd.Dir = ex.dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", ex.bin, strings.Join(args, " "), err, out)
	}
	for _, re := range ex.want {
		if !regexp.MustCompile(re).Match(out) {
			t.Errorf("output lacks %s:\n%s", re, out)
		}
	}
	waitNoConns(t, srv)
}

// readmeFiles are the programs README.md shows in full. Each must appear
// there verbatim as a fenced block, so that what the README shows is what
// the tests run.
var readmeFiles = []struct{ path, lang string }{
	{"go/client/main.go", "go"},
	{"go/jsonrpc2/main.go", "go"},
	{"python/example_jsonrpc.py", "python"},
	{"python/example.py", "python"},
	{"node/example.mjs", "js"},
	{"node/rpcwebsockets.mjs", "js"},
	{"node/msgpack5rpc.mjs", "js"},
	{"node/clientjs-example.mjs", "js"},
}

// TestREADMEShowsTheExamples needs no gateway: it runs in every go test.
func TestREADMEShowsTheExamples(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join("..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range readmeFiles {
		src, err := os.ReadFile(filepath.FromSlash(f.path))
		if err != nil {
			t.Fatal(err)
		}
		if block := "```" + f.lang + "\n" + string(src) + "```\n"; !strings.Contains(string(readme), block) {
			t.Errorf("README.md lacks interop/%s verbatim in a ```%s block: paste the file's current text there", f.path, f.lang)
		}
	}
}

// The README's Node example of /client.js, run as the README says: the
// module fetched from the gateway next to the example, in every encoding.
func TestClientJSExample(t *testing.T) {
	gate(t)
	nodeModules, err := filepath.Abs(filepath.Join("node", "node_modules"))
	if err != nil {
		t.Fatal(err)
	}
	for _, proto := range []string{"json-rpc", "msgpack", "binary-raw"} {
		t.Run(proto, func(t *testing.T) {
			base, srv := startGateway(t)
			dir := t.TempDir()
			module := testutil.GetOK(t, strings.Replace(base, "ws://", "http://", 1)+"/client.js")
			src, err := os.ReadFile(filepath.Join("node", "clientjs-example.mjs"))
			if err != nil {
				t.Fatal(err)
			}
			for name, b := range map[string][]byte{"client.js": module, "example.mjs": src} {
				if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			if err := os.Symlink(nodeModules, filepath.Join(dir, "node_modules")); err != nil { // npm i ws
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), scriptTimeout)
			defer cancel()
			cmd := exec.CommandContext(ctx, "node", "example.mjs", base, proto)
			cmd.Dir = dir
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("node example.mjs: %v\n%s", err, out)
			}
			for _, re := range []string{
				`(?m)^ping ok$`,
				`(?m)^join \{"room":"lobby","members":\["node-` + proto + `"\],"offset":0,"epoch":"` + epochRE + `"\}$`,
				`(?m)^push chat.message node-` + proto + ` hi 1$`,
				`(?m)^send \{"room":"lobby","offset":1,"epoch":"` + epochRE + `"\}$`,
				`(?m)^error -32001 Not a member of the room: elsewhere$`,
				`(?m)^closed 1000`,
			} {
				if !regexp.MustCompile(re).Match(out) {
					t.Errorf("output lacks %s:\n%s", re, out)
				}
			}
			waitNoConns(t, srv)
		})
	}
}
