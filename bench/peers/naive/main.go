// Command naive is the deliberately naive WebSocket JSON-RPC server that
// subgate is benchmarked against: what you would write by hand in an
// afternoon with github.com/gobwas/ws, and close to what the transport can
// do. It is a peer for `subgate bench -target naive`, not part of the
// product.
//
// It answers /ws/{client_id} with the json-rpc subprotocol and two methods:
//
//	chat.ping                   -> {"status":"ok","timestamp":UNIX}
//	chat.broadcast {"message"}  -> {"delivered":N}, after pushing
//	    {"jsonrpc":"2.0","method":"chat.message","params":{"message":M}}
//	    to every connection, the sender's included
//
// Anything else is error -32601. It logs nothing per message.
//
//	go run ./bench/peers/naive -addr 127.0.0.1:8090
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"

	"github.com/gobwas/ws/wsutil"
)

// maxMessageSize bounds one client message, so that a peer cannot make the
// server buffer more than it sent (gobwas' helpers have no limit by default).
const maxMessageSize = 1 << 20

func main() {
	addr := flag.String("addr", "127.0.0.1:8090", "address to listen on")
	flag.Parse()
	if err := run(*addr); err != nil {
		fmt.Fprintln(os.Stderr, "naive:", err)
		os.Exit(1)
	}
}

// run serves until SIGINT or SIGTERM, then closes every connection with
// 1001 (going away).
func run(addr string) error {
	wsutil.SetMaxMessageSize(maxMessageSize)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "listening %s\n", ln.Addr())
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	s := newServer()
	srv := &http.Server{Handler: s.routes()}
	go func() {
		<-ctx.Done()
		srv.Close()
		s.closeAll()
	}()
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
