package protocols

import (
	"strings"

	"github.com/subgate/subgate/codec"
	"github.com/subgate/subgate/codec/binraw"
	"github.com/subgate/subgate/codec/jsonrpc"
	"github.com/subgate/subgate/codec/msgpackrpc"
	"github.com/subgate/subgate/protocols/chat"
)

// Protocol is one subprotocol: its name, its frame type and its codec.
type Protocol struct {
	Name string
	// Binary is true when messages travel in binary frames, false for text
	// frames. A frame of the other type is refused with close 1003.
	Binary bool
	Codec  codec.Codec
}

// The subprotocol names.
const (
	JSONRPC   = "json-rpc"
	MsgPack   = "msgpack"
	BinaryRaw = "binary-raw"
)

// All lists every subprotocol subgate speaks, in the server's order of
// preference (used only to list them; negotiation follows the client).
var All = []Protocol{
	{Name: JSONRPC, Binary: false, Codec: jsonrpc.New(chat.Table)},
	{Name: MsgPack, Binary: true, Codec: msgpackrpc.New(chat.Table)},
	{Name: BinaryRaw, Binary: true, Codec: binraw.New(chat.Table)},
}

// Lookup finds a protocol by name in list.
func Lookup(list []Protocol, name string) (Protocol, bool) {
	for _, p := range list {
		if p.Name == name {
			return p, true
		}
	}
	return Protocol{}, false
}

// Negotiate walks a Sec-WebSocket-Protocol offer ("a, b" or "a,b") in the
// client's order and returns the first protocol in enabled.
func Negotiate(offer string, enabled []Protocol) (Protocol, bool) {
	for offer != "" {
		var name string
		name, offer, _ = strings.Cut(offer, ",")
		if p, ok := Lookup(enabled, strings.TrimSpace(name)); ok {
			return p, true
		}
	}
	return Protocol{}, false
}

// Names lists the names of the protocols in list, comma separated.
func Names(list []Protocol) string {
	names := make([]string, len(list))
	for i, p := range list {
		names[i] = p.Name
	}
	return strings.Join(names, ", ")
}
