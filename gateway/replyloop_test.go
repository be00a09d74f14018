package gateway

import (
	"net/http"
	"testing"

	"github.com/gobwas/ws"

	"github.com/subgate/subgate/codec"
	"github.com/subgate/subgate/internal/golden"
	"github.com/subgate/subgate/protocols"
)

// TestNoReplyToResponses sends responses, malformed and well-formed, single
// and batched, then a chat.ping request with id 7. The server answers the
// messages of a connection in order, so the first frame it sends back must
// be the ping's reply: had it answered any response (the nil-msgid -32600
// that pynvim answered in turn, looping forever), that answer would come
// first.
func TestNoReplyToResponses(t *testing.T) {
	for _, tc := range []struct {
		proto     string
		responses []string // hex for binary encodings, text for json-rpc
		ping      string
	}{
		{protocols.MsgPack, []string{
			"94 01 01 a1 78 c0",                // error is a string (Neovim, pynvim)
			"94 01 c0 a1 78 c0",                // the same with a nil msgid
			"94 01 00 d9 05 4b 65 79 45 72 c0", // pynvim's answer to an error
			"93 01 01 c0",                      // wrong arity
			"91 01",                            // type only
			"94 01 a1 31 c0 01",                // string msgid
			"94 01 01 c0 c0 00",                // trailing byte (fails the scan)
			"94 01 c0 82 a4 63 6f 64 65 d1 80 a8 a7 6d 65 73 73 61 67 65 a1 78 c0", // a valid nil-msgid error
			"94 01 05 c0 01", // a valid result for an id never sent
		}, "94 00 07 a9 63 68 61 74 2e 70 69 6e 67 90"},
		{protocols.BinaryRaw, []string{
			"12 01",                // null-id flag on a result
			"03 01 01 01 ff",       // error message not UTF-8
			"e3 01 00 00",          // reserved bits on an error
			"02",                   // result without id
			"13 af fd 03 00",       // a valid null-id error
			"02 05",                // a valid result for an id never sent
			"04 02 02 12 01 01 02", // a batch of two responses, one malformed
		}, "00 07 10"},
		{protocols.JSONRPC, []string{
			`{"jsonrpc":"2.0","error":"x","id":1}`,
			`{"jsonrpc":"2.0","error":{"code":-32600,"message":"Invalid Request"},"id":null}`,
			`{"jsonrpc":"2.0","error":{"code":-32600},"id":null}`,
			`{"result":1,"error":null,"id":1}`,
			`{"jsonrpc":"2.0","result":1,"error":{"code":1,"message":"x"},"id":1}`,
			`[{"jsonrpc":"2.0","result":1,"id":1},{"jsonrpc":"2.0","error":"x","id":null}]`,
		}, `{"jsonrpc":"2.0","method":"chat.ping","id":7}`},
	} {
		t.Run(tc.proto, func(t *testing.T) {
			_, addr := startServer(t, Config{})
			c := handshake(t, addr, "/ws/replier", strp(tc.proto))
			if c.resp.StatusCode != http.StatusSwitchingProtocols {
				t.Fatalf("status %d", c.resp.StatusCode)
			}
			p, _ := protocols.Lookup(protocols.All, tc.proto)
			op, wire := ws.OpText, func(s string) []byte { return []byte(s) }
			if p.Binary {
				op, wire = ws.OpBinary, func(s string) []byte { return golden.MustHex(t, s) }
			}
			for _, r := range tc.responses {
				c.send(op, true, wire(r))
			}
			c.send(op, true, wire(tc.ping))
			f := c.next()
			msgs, batch, err := p.Codec.Decode(nil, f.Payload)
			if err != nil || batch || len(msgs) != 1 || msgs[0].Kind != codec.KindResult || !msgs[0].ID.Equal(codec.NumberID(7)) {
				t.Fatalf("first frame %q (%+v, %v): want the ping's result, id 7", f.Payload, msgs, err)
			}
			c.send(ws.OpClose, true, ws.NewCloseFrameBody(ws.StatusNormalClosure, ""))
			c.expectClose(ws.StatusNormalClosure)
		})
	}
}
