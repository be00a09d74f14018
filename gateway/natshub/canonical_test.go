package natshub

import (
	"bytes"
	"testing"

	"github.com/subgate/subgate/codec"
	"github.com/subgate/subgate/gateway"
	"github.com/subgate/subgate/protocols"
	"github.com/subgate/subgate/protocols/chat"
)

// A push crosses the bus as the msgpack notification a msgpack client
// gets; the receiving node hands those very bytes to its msgpack
// connections and encodes the other encodings from the decoded value,
// byte for byte what the sending node would have.
func TestCanonicalForm(t *testing.T) {
	pushes := []*gateway.Push{
		gateway.NewPush(chat.PushMessage, &chat.Message{Room: "lobby", From: "alice", Message: "héllo <all>", Offset: 7, Epoch: "e1", TS: 1764000000123}),
		gateway.NewPush(chat.PushMessage, &chat.Message{From: "bob", To: "carol", Message: "psst", TS: -1}),
		gateway.NewPush(chat.PushPresence, &chat.Presence{Room: "r", ClientID: "dave", Event: chat.EventLeave}),
	}
	for _, p := range pushes {
		wire, err := encodePush(p)
		if err != nil {
			t.Fatal(err)
		}
		want, err := codec.AppendNotification(canonical, nil, p.Method, p.Body)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(wire, want) {
			t.Fatalf("%s on the bus: %x, want the msgpack notification %x", p.Method, wire, want)
		}
		got, err := decodePush(wire)
		if err != nil {
			t.Fatal(err)
		}
		if b, _ := got.Bytes(canonical); &b[0] != &wire[0] {
			t.Fatalf("%s: the msgpack bytes were encoded again instead of reused", p.Method)
		}
		for _, proto := range protocols.All {
			a, err := p.Bytes(proto.Codec)
			if err != nil {
				t.Fatal(err)
			}
			b, err := got.Bytes(proto.Codec)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(a, b) {
				t.Fatalf("%s in %s: the receiving node encodes %x, the sender %x", p.Method, proto.Name, b, a)
			}
		}
	}
	for _, bad := range [][]byte{nil, {0xc1}, {0x93, 0x00, 0x01, 0xa1, 'x'}} {
		if _, err := decodePush(bad); err == nil {
			t.Fatalf("decodePush(%x) accepted", bad)
		}
	}
}
