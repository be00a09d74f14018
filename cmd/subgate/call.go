package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/subgate/subgate/client"
	"github.com/subgate/subgate/codec"
	"github.com/subgate/subgate/protocols"
)

const callUsage = `usage: subgate call [flags] METHOD [PARAMS_JSON] [METHOD [PARAMS_JSON]]...

Calls METHOD on a subgate server and prints its result as one line of JSON.
PARAMS_JSON is an object (by name) or an array (by position); omit it for none.
Several calls run in order on one connection (one client session: a room
joined by the first is still joined for the next); the first error stops.

  subgate call chat.ping
  subgate call -proto msgpack chat.join '{"room":"lobby"}'
  subgate call chat.join '{"room":"lobby"}' chat.send '{"room":"lobby","message":"hi"}'
  subgate call -listen 30s chat.join '{"room":"lobby"}'   # then print pushes for 30s

Exit status: 0 success, 1 error reply (printed to stderr as "error CODE: MESSAGE (DATA)"),
2 usage, connection or timeout error.

flags:
`

// callPushBuffer is the push queue of `subgate call -listen`: pushes that
// arrive before the result wait there, and it absorbs bursts while stdout
// is slow.
const callPushBuffer = 4096

type callFlags struct {
	url, proto      string
	timeout, listen time.Duration
	calls           []callSpec
}

// callSpec is one METHOD [PARAMS_JSON] of the command line.
type callSpec struct {
	method string
	params []byte
}

// runCall implements `subgate call`.
func runCall(args []string, stdout, stderr io.Writer) int {
	f, err := parseCall(args, stderr)
	switch {
	case errors.Is(err, flag.ErrHelp):
		return 0
	case err != nil:
		return 2
	}

	ctx, cancel := context.WithTimeout(context.Background(), f.timeout)
	c, err := client.Dial(ctx, f.url, client.Options{Protocol: f.proto, PushBuffer: callPushBuffer})
	cancel()
	if err != nil {
		callFailure(stderr, err, f.timeout)
		return 2
	}
	defer c.Close()

	for _, call := range f.calls {
		if rc := runOne(c, call, f.timeout, stdout, stderr); rc != 0 {
			return rc
		}
	}
	if f.listen <= 0 {
		return 0
	}
	return listenPushes(c, f.listen, stdout, stderr)
}

// runOne makes one call, with its own timeout, and prints its result.
func runOne(c *client.Client, call callSpec, timeout time.Duration, stdout, stderr io.Writer) int {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	result, err := c.CallJSON(ctx, call.method, call.params)
	if err != nil {
		var rpcErr *codec.Error
		if errors.As(err, &rpcErr) {
			msg := fmt.Sprintf("error %d: %s", rpcErr.Code, rpcErr.Message)
			if rpcErr.Data != "" {
				msg += " (" + rpcErr.Data + ")"
			}
			fmt.Fprintln(stderr, oneLine(msg))
			return 1
		}
		callFailure(stderr, err, timeout)
		return 2
	}
	if _, err := fmt.Fprintf(stdout, "%s\n", result); err != nil {
		return 2
	}
	return 0
}

// listenPushes prints the pushes (those that came before the result too)
// for d, one JSON line each.
func listenPushes(c *client.Client, d time.Duration, stdout, stderr io.Writer) int {
	timer := time.NewTimer(d)
	defer timer.Stop()
	warned := false
	for {
		select {
		case <-timer.C:
			return 0
		case p, ok := <-c.Pushes():
			if !ok {
				// The server ended the connection before the time was up.
				err := c.Err()
				fmt.Fprintf(stderr, "subgate: %s\n", oneLine(strings.TrimPrefix(err.Error(), "client: ")))
				var ce *client.CloseError
				if errors.As(err, &ce) && (ce.Code == 1000 || ce.Code == 1001) {
					return 0
				}
				return 2
			}
			js, err := client.PushJSON(p)
			if err != nil {
				fmt.Fprintf(stderr, "subgate: %s\n", oneLine(err.Error()))
				continue
			}
			if _, err := fmt.Fprintf(stdout, "%s\n", js); err != nil {
				return 2
			}
			if n := c.Dropped(); n > 0 && !warned {
				fmt.Fprintf(stderr, "subgate: output too slow, %d pushes dropped\n", n)
				warned = true
			}
		}
	}
}

func parseCall(args []string, stderr io.Writer) (*callFlags, error) {
	fs := flag.NewFlagSet("call", flag.ContinueOnError)
	fs.SetOutput(io.Discard) // errors are printed below, with the usage
	f := &callFlags{}
	defURL := "ws://127.0.0.1:8080/ws/cli-" + strconv.Itoa(os.Getpid())
	if v := os.Getenv("SUBGATE_URL"); v != "" {
		defURL = v
	}
	defProto := protocols.JSONRPC
	if v := os.Getenv("SUBGATE_PROTO"); v != "" {
		defProto = v
	}
	fs.StringVar(&f.url, "url", defURL, "server URL ws://HOST:PORT/ws/CLIENT_ID (env SUBGATE_URL)")
	fs.StringVar(&f.proto, "proto", defProto, "subprotocol: "+protocols.Names(protocols.All)+" (env SUBGATE_PROTO)")
	fs.DurationVar(&f.timeout, "timeout", 5*time.Second, "time allowed for connecting and the call")
	fs.DurationVar(&f.listen, "listen", 0, "after the result, print pushes for this long")
	usage := func() {
		fmt.Fprint(stderr, callUsage)
		fs.SetOutput(stderr)
		fs.PrintDefaults()
		fs.SetOutput(io.Discard)
	}
	bad := func(format string, a ...any) error {
		fmt.Fprintf(stderr, "subgate call: "+format+"\n", a...)
		usage()
		return errors.New("usage")
	}

	// Flags may come before or after the positional arguments; "--" ends
	// them.
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				usage()
				return nil, err
			}
			return nil, bad("%v", err)
		}
		rest := fs.Args()
		dashdash := len(rest) < len(args) && args[len(args)-len(rest)-1] == "--"
		if len(rest) == 0 || dashdash {
			pos = append(pos, rest...)
			break
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}

	switch {
	case len(pos) == 0:
		return nil, bad("missing METHOD")
	case f.timeout <= 0:
		return nil, bad("-timeout must be positive")
	case f.listen < 0:
		return nil, bad("-listen must not be negative")
	}
	if _, ok := protocols.Lookup(protocols.All, f.proto); !ok {
		return nil, bad("unknown protocol %q: want one of %s", f.proto, protocols.Names(protocols.All))
	}
	if !strings.HasPrefix(f.url, "ws://") && !strings.HasPrefix(f.url, "wss://") {
		return nil, bad("-url %q: want ws://HOST:PORT/ws/CLIENT_ID", f.url)
	}
	// A JSON object or array is the params of the method before it; any
	// other word is a method name.
	for _, a := range pos {
		isParams := strings.HasPrefix(strings.TrimSpace(a), "{") || strings.HasPrefix(strings.TrimSpace(a), "[")
		switch {
		case !isParams:
			f.calls = append(f.calls, callSpec{method: a})
		case len(f.calls) == 0:
			return nil, bad("PARAMS_JSON %s before any METHOD", a)
		case f.calls[len(f.calls)-1].params != nil:
			return nil, bad("two PARAMS_JSON for %s", f.calls[len(f.calls)-1].method)
		default:
			f.calls[len(f.calls)-1].params = []byte(a)
		}
	}
	return f, nil
}

// callFailure prints a connection or local error as one line.
func callFailure(stderr io.Writer, err error, timeout time.Duration) {
	msg := strings.TrimPrefix(err.Error(), "client: ")
	if errors.Is(err, context.DeadlineExceeded) {
		msg = "timed out after " + timeout.String() + ": " + msg
	}
	fmt.Fprintf(stderr, "subgate: %s\n", oneLine(msg))
}

// oneLine keeps an error on one line (an HTTP body may hold newlines).
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}
