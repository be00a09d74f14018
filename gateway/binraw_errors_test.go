package gateway

import (
	"bytes"
	"testing"

	"github.com/gobwas/ws"

	"github.com/subgate/subgate/internal/wire"
)

// binrawError is the binary-raw error frame for id (nil: the null-id form).
func binrawError(id *uint64, code int64, msg, data string) []byte {
	b := []byte{0x13}
	if id != nil {
		b = wire.AppendUvarint([]byte{0x03}, *id)
	}
	b = wire.AppendVarint(b, code)
	b = wire.AppendString(b, msg)
	return append(b, data...)
}

// The binary-raw errors protocols/binary-raw.md §4 and §6 spell out for a
// client author, byte for byte: a push id called as a method, an id not in
// the table, an empty method name in a request and in a notification
// (-32600, null id, although the request's id was read) and a notification
// without a method (-32700). A ping after them shows nothing else was sent.
func TestBinaryRawErrorsAsSpecified(t *testing.T) {
	_, addr := startServer(t, Config{})
	c := handshake(t, addr, "/ws/spec", strp("binary-raw"))
	if c.resp.StatusCode != 101 {
		t.Fatalf("handshake: %s", c.resp.Status)
	}
	one := uint64(1)
	for _, tc := range []struct {
		name        string
		frame, want []byte // want nil: not answered
	}{
		{"push id 0x20 called", []byte{0x00, 0x01, 0x20}, binrawError(&one, -32601, "Method not found", "chat.message")},
		{"id 0x7f not in the table", []byte{0x00, 0x01, 0x7f}, binrawError(&one, -32601, "Method not found", "#127")},
		{"empty name in a request", []byte{0x08, 0x01, 0x00}, binrawError(nil, -32600, "Invalid Request", "empty method name")},
		{"empty name in a notification", []byte{0x09, 0x00}, binrawError(nil, -32600, "Invalid Request", "empty method name")},
		{"notification without a method", []byte{0x01}, binrawError(nil, -32700, "Parse error", "truncated method id")},
		{"push id 0x20 as a notification", []byte{0x01, 0x20}, nil},
	} {
		c.send(ws.OpBinary, true, tc.frame)
		if tc.want == nil {
			continue // not answered: the next frame is the ping's reply below
		}
		if f := c.next(); f.Header.OpCode != ws.OpBinary || !bytes.Equal(f.Payload, tc.want) {
			t.Errorf("%s: % x -> %v % x, want % x", tc.name, tc.frame, f.Header.OpCode, f.Payload, tc.want)
		}
	}
	c.send(ws.OpBinary, true, []byte{0x00, 0x02, 0x10})
	if f := c.next(); len(f.Payload) < 2 || f.Payload[0] != 0x02 || f.Payload[1] != 0x02 {
		t.Errorf("ping id 2 -> % x, want a result for id 2", f.Payload)
	}
}
