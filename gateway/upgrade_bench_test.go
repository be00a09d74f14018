package gateway

import (
	"bytes"
	"errors"
	"io"
	"net"
	"net/http"
	"testing"

	"github.com/gobwas/ws"
)

// upgradeRequest is a handshake offering msgpack, as a client sends it.
const upgradeRequest = "GET /ws/bench HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n" +
	"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n" +
	"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: msgpack\r\n\r\n"

// BenchmarkUpgrade measures one WebSocket handshake over loopback: dial,
// send the request, read the 101, close. The client side is the same raw
// bytes in every case, so differences in allocs/op are the server's:
//
//   - gateway: the real server (net/http, routing, ws.HTTPUpgrader, then
//     the connection's set-up and teardown: hub attach, reader, writer);
//   - http-upgrader: net/http with a handler that only runs ws.HTTPUpgrader;
//   - upgrader: gobwas's zero-copy ws.Upgrader on the raw net.Conn, no
//     net/http at all (what the gateway would use without HTTP routes on
//     the same port).
func BenchmarkUpgrade(b *testing.B) {
	b.Run("gateway", func(b *testing.B) {
		_, addr := startServerB(b)
		benchHandshakes(b, addr)
	})
	b.Run("http-upgrader", func(b *testing.B) {
		ln := listenB(b)
		up := ws.HTTPUpgrader{Protocol: func(p string) bool { return p == "msgpack" }}
		hs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if nc, _, _, err := up.Upgrade(r, w); err == nil {
				nc.Close()
			}
		})}
		go hs.Serve(ln)
		b.Cleanup(func() { hs.Close() })
		benchHandshakes(b, ln.Addr().String())
	})
	b.Run("upgrader", func(b *testing.B) {
		ln := listenB(b)
		up := ws.Upgrader{Protocol: func(p []byte) bool { return string(p) == "msgpack" }}
		go func() {
			for {
				nc, err := ln.Accept()
				if err != nil {
					return
				}
				go func() {
					_, _ = up.Upgrade(nc)
					nc.Close()
				}()
			}
		}()
		benchHandshakes(b, ln.Addr().String())
	})
}

func listenB(b *testing.B) net.Listener {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { ln.Close() })
	return ln
}

func benchHandshakes(b *testing.B, addr string) {
	buf := make([]byte, 512)
	b.ReportAllocs()
	for b.Loop() {
		nc, err := net.Dial("tcp", addr)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := io.WriteString(nc, upgradeRequest); err != nil {
			b.Fatal(err)
		}
		n := 0
		for !bytes.Contains(buf[:n], []byte("\r\n\r\n")) {
			m, err := nc.Read(buf[n:])
			n += m
			if err != nil && !(errors.Is(err, io.EOF) && n > 0) || n == len(buf) {
				b.Fatalf("handshake: %q, %v", buf[:n], err)
			}
		}
		if !bytes.HasPrefix(buf[:n], []byte("HTTP/1.1 101 ")) {
			b.Fatalf("handshake: %q", buf[:n])
		}
		nc.Close()
	}
}
