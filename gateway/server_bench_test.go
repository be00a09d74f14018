package gateway

import (
	"bufio"
	"encoding/binary"
	"io"
	"net"
	"testing"
	"time"

	"github.com/subgate/subgate/codec"
	"github.com/subgate/subgate/protocols"
	"github.com/subgate/subgate/protocols/chat"
)

// BenchmarkServerPing measures the server's whole path for one chat.ping
// (frame read, decode, dispatch, encode, queue, frame write) with a client
// that allocates nothing: the request frame is encoded and masked once,
// and replies are read into a fixed buffer. allocs/op are the server's
// own.
func BenchmarkServerPing(b *testing.B) {
	for _, p := range protocols.All {
		b.Run(p.Name, func(b *testing.B) {
			_, addr := startServerB(b)
			rc := rawDialB(b, addr, p.Name)
			req := requestFrame(b, p, chat.MethodPing, &chat.PingParams{})
			buf := make([]byte, 4096)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := rc.nc.Write(req); err != nil {
					b.Fatal(err)
				}
				if err := rc.readFrame(buf); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkServerPipeline is BenchmarkServerPing with 16 calls in each
// write: the server reads them as they come and coalesces the replies.
func BenchmarkServerPipeline(b *testing.B) {
	const inflight = 16
	for _, p := range protocols.All {
		b.Run(p.Name, func(b *testing.B) {
			_, addr := startServerB(b)
			rc := rawDialB(b, addr, p.Name)
			one := requestFrame(b, p, chat.MethodPing, &chat.PingParams{})
			var req []byte
			for range inflight {
				req = append(req, one...)
			}
			buf := make([]byte, 4096)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := rc.nc.Write(req); err != nil {
					b.Fatal(err)
				}
				for range inflight {
					if err := rc.readFrame(buf); err != nil {
						b.Fatal(err)
					}
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*inflight), "ns/call")
		})
	}
}

// benchConn is a raw client connection that reads frames without
// allocating.
type benchConn struct {
	nc net.Conn
	br *bufio.Reader
}

func rawDialB(b *testing.B, addr, proto string) *benchConn {
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { nc.Close() })
	req := "GET /ws/bench HTTP/1.1\r\nHost: " + addr + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: " + proto + "\r\n\r\n"
	if _, err := io.WriteString(nc, req); err != nil {
		b.Fatal(err)
	}
	br := bufio.NewReaderSize(nc, 64<<10)
	_ = nc.SetReadDeadline(time.Now().Add(5 * time.Second))
	for { // skip the 101 response's header
		line, err := br.ReadSlice('\n')
		if err != nil {
			b.Fatal(err)
		}
		if len(line) <= 2 {
			break
		}
	}
	_ = nc.SetReadDeadline(time.Time{})
	return &benchConn{nc: nc, br: br}
}

// requestFrame is one client frame carrying a request.
func requestFrame(b *testing.B, p protocols.Protocol, method string, params any) []byte {
	payload, err := codec.AppendRequest(p.Codec, nil, codec.NumberID(1), method, params)
	if err != nil {
		b.Fatal(err)
	}
	return maskedFrame(dataOp(p.Name), true, payload)
}

// readFrame reads one unmasked server frame of a short payload into buf.
func (c *benchConn) readFrame(buf []byte) error {
	hdr := buf[:2]
	if _, err := io.ReadFull(c.br, hdr); err != nil {
		return err
	}
	n := int(hdr[1] & 0x7f)
	switch n {
	case 126:
		if _, err := io.ReadFull(c.br, buf[:2]); err != nil {
			return err
		}
		n = int(binary.BigEndian.Uint16(buf[:2]))
	case 127:
		return io.ErrShortBuffer
	}
	if n > len(buf) {
		return io.ErrShortBuffer
	}
	_, err := io.ReadFull(c.br, buf[:n])
	return err
}
