package interop

import (
	"context"
	"os/exec"
	"regexp"
	"testing"
)

// The README's example clients, run as a newcomer would run them, must
// print what the README says they print.
func TestExamples(t *testing.T) {
	gate(t)
	for _, tc := range []struct {
		name, dir, bin, script string
		want                   []string
	}{
		{"node", "node", "node", "example.mjs", []string{
			`(?m)^ping \{"status":"ok","timestamp":\d+\}$`,
			`(?m)^join \{"room":"lobby","members":\["node-example"\],"offset":0\}$`,
			`(?m)^push chat.message \{"room":"lobby","from":"node-example","message":"hello from node","offset":1,"ts":\d+\}$`,
			`(?m)^send \{"room":"lobby","offset":1\}$`,
			`(?m)^error -32001 Not a member of the room$`,
		}},
		{"python", "python", python, "example.py", []string{
			`(?m)^ping \{'status': 'ok', 'timestamp': \d+\}$`,
			`(?m)^join \{'room': 'lobby', 'members': \['python-example'\], 'offset': 0\}$`,
			`(?m)^push chat.message \{'room': 'lobby', 'from': 'python-example', 'message': 'hello from python', 'offset': 1, 'ts': \d+\}$`,
			`(?m)^send \{'room': 'lobby', 'offset': 1\}$`,
			`(?m)^error -32001 Not a member of the room$`,
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			base, _ := startGateway(t)
			ctx, cancel := context.WithTimeout(context.Background(), scriptTimeout)
			defer cancel()
			cmd := exec.CommandContext(ctx, tc.bin, tc.script, base)
			cmd.Dir = tc.dir
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("%s %s: %v\n%s", tc.bin, tc.script, err, out)
			}
			for _, re := range tc.want {
				if !regexp.MustCompile(re).Match(out) {
					t.Errorf("output lacks %s:\n%s", re, out)
				}
			}
		})
	}
}
