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

// BearerPrefix marks a Sec-WebSocket-Protocol entry that carries a token
// ("bearer.<token>") instead of naming a protocol: browsers cannot set an
// Authorization header on a WebSocket, but they can offer subprotocols.
// Such an entry is not a protocol offer and is never selected.
const BearerPrefix = "bearer."

// IsBearer reports whether an offered name is a bearer.<token> entry.
func IsBearer(name string) bool { return strings.HasPrefix(name, BearerPrefix) }

// Offer is a parsed Sec-WebSocket-Protocol offer: the protocol names in
// the client's order, and the token of its first bearer.<token> entry.
type Offer struct {
	Names []string
	Token string
}

// ParseOffer parses the values of the Sec-WebSocket-Protocol headers of a
// request ("a, b" or "a,b", in one header or several). Empty entries are
// skipped; bearer.<token> entries go to Token, not Names.
func ParseOffer(values ...string) Offer {
	var o Offer
	for _, v := range values {
		for v != "" {
			var name string
			name, v, _ = strings.Cut(v, ",")
			switch name = strings.TrimSpace(name); {
			case name == "":
			case IsBearer(name):
				if o.Token == "" {
					o.Token = name[len(BearerPrefix):]
				}
			default:
				o.Names = append(o.Names, name)
			}
		}
	}
	return o
}

// Select returns the first offered protocol that is in enabled.
func (o Offer) Select(enabled []Protocol) (Protocol, bool) {
	for _, name := range o.Names {
		if p, ok := Lookup(enabled, name); ok {
			return p, true
		}
	}
	return Protocol{}, false
}

// Negotiate walks a Sec-WebSocket-Protocol offer ("a, b" or "a,b") in the
// client's order and returns the first protocol in enabled. Bearer entries
// are not protocols and never match.
func Negotiate(offer string, enabled []Protocol) (Protocol, bool) {
	return ParseOffer(offer).Select(enabled)
}

// Names lists the names of the protocols in list, comma separated.
func Names(list []Protocol) string {
	names := make([]string, len(list))
	for i, p := range list {
		names[i] = p.Name
	}
	return strings.Join(names, ", ")
}
