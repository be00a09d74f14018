// Command subgate is the gateway binary: `subgate serve` (the default) runs
// the server, `subgate call` is a command-line client, `subgate token`
// signs a token for a client id, `subgate healthcheck` asks a running
// server's /healthz (the container's HEALTHCHECK), `subgate bench` loads a
// gateway and reports throughput and latency.
package main

import (
	"fmt"
	"io"
	"os"
)

const usage = `usage:
  subgate [serve] [flags]   run the gateway (subgate serve -h for flags)
  subgate call [flags] METHOD [PARAMS_JSON]...   call methods (subgate call -h)
  subgate token -sub CLIENT_ID [-ttl 1h]   print a token signed with $SUBGATE_JWT_SECRET (subgate token -h)
  subgate healthcheck [-addr HOST:PORT]   exit 0 if the server at $SUBGATE_ADDR answers /healthz (subgate healthcheck -h)
  subgate bench [flags]   load a gateway and report throughput and latency (subgate bench -h)
`

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		switch args[0] {
		case "serve":
			return runServe(args[1:], stdout, stderr)
		case "call":
			return runCall(args[1:], stdout, stderr)
		case "token":
			return runToken(args[1:], stdout, stderr)
		case "healthcheck":
			return runHealthcheck(args[1:], stderr)
		case "bench":
			return runBench(args[1:], stdout, stderr)
		case "help", "-h", "-help", "--help":
			fmt.Fprint(stdout, usage)
			return 0
		}
	}
	return runServe(args, stdout, stderr)
}
