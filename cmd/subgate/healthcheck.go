package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"time"
)

// defaultAddr is where `subgate serve` listens and `subgate healthcheck`
// calls when neither -addr nor SUBGATE_ADDR says otherwise; one constant so
// that the container's health check follows the server's default.
const defaultAddr = ":8080"

// healthBodyLimit bounds what the health check reads of the answer: it
// only needs the status, and reads a little of the body so that a
// well-behaved server is not cut off mid-reply.
const healthBodyLimit = 4 << 10

const healthcheckUsage = `usage: subgate healthcheck [-addr HOST:PORT] [-timeout 2s]

GETs http://HOST:PORT/healthz and exits 0 on 200 OK, 1 otherwise with the
reason on stderr (the container's HEALTHCHECK). The address is the one
'subgate serve' listens on (-addr, env SUBGATE_ADDR, default ` + defaultAddr + `);
an empty host, 0.0.0.0 or :: is called on the loopback address.

flags:
`

// runHealthcheck implements `subgate healthcheck`. Every failure, a usage
// error included, exits 1: Docker reserves exit status 2 of a health check.
func runHealthcheck(args []string, stderr io.Writer) int {
	addr, timeout, err := parseHealthcheck(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err == nil {
		err = checkHealth(addr, timeout)
	}
	if err != nil {
		fmt.Fprintln(stderr, "subgate healthcheck:", oneLine(err.Error()))
		return 1
	}
	return 0
}

// parseHealthcheck reads -addr (default SUBGATE_ADDR, then defaultAddr)
// and -timeout.
func parseHealthcheck(args []string, stderr io.Writer) (addr string, timeout time.Duration, err error) {
	fs := flag.NewFlagSet("healthcheck", flag.ContinueOnError)
	fs.SetOutput(io.Discard) // a parse error is printed once, by the caller
	fs.Usage = func() {}
	def := defaultAddr
	if v := os.Getenv(envName("addr")); v != "" {
		def = v
	}
	fs.StringVar(&addr, "addr", def, "the server's listen address (env "+envName("addr")+")")
	fs.DurationVar(&timeout, "timeout", 2*time.Second, "time allowed for connecting and the answer")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stderr, healthcheckUsage)
			fs.SetOutput(stderr)
			fs.PrintDefaults()
		}
		return "", 0, err
	}
	switch {
	case fs.NArg() > 0:
		return "", 0, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	case timeout <= 0:
		return "", 0, errors.New("-timeout must be positive")
	}
	return addr, timeout, nil
}

// healthURL is the /healthz URL of a server listening on addr: a wildcard
// or empty host is reached on the loopback address of its family.
func healthURL(addr string) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", err // "address 8080: missing port in address"
	}
	switch host {
	case "", "0.0.0.0":
		host = "127.0.0.1"
	case "::":
		host = "::1"
	}
	return "http://" + net.JoinHostPort(host, port) + "/healthz", nil
}

// checkHealth GETs addr's /healthz within timeout: nil on 200 OK. It uses
// no proxy and follows no redirect: only the server itself answers.
func checkHealth(addr string, timeout time.Duration) error {
	u, err := healthURL(addr)
	if err != nil {
		return err
	}
	hc := &http.Client{
		Timeout:       timeout,
		Transport:     &http.Transport{DisableKeepAlives: true},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	resp, err := hc.Get(u)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, healthBodyLimit))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", u, resp.Status)
	}
	return nil
}
