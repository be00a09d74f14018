package protocols

import (
	"errors"
	"testing"

	"github.com/subgate/subgate/codec"
	"github.com/subgate/subgate/protocols/chat"
)

// Error data about bad params names the wire field and the wire's types in
// every encoding, never a Go type (chat.JoinParams, "Go struct field").
func TestParamsErrorNamesWireField(t *testing.T) {
	tests := []struct {
		proto, name string
		body        []byte
		v           any
		want        string
	}{
		{JSONRPC, "number for a string", []byte(`{"room":1}`), &chat.JoinParams{}, "room: want a string, got a number"},
		{JSONRPC, "list for a string", []byte(`{"room":[]}`), &chat.JoinParams{}, "room: want a string, got an array"},
		{JSONRPC, "negative since", []byte(`{"room":"r","since":-1}`), &chat.HistoryParams{}, "since: want a non-negative integer, got -1"},
		{JSONRPC, "positional", []byte(`[true]`), &chat.JoinParams{}, "param 0 (room): want a string, got a bool"},
		{MsgPack, "int for a string", []byte{0x91, 0x81, 0xa4, 'r', 'o', 'o', 'm', 0x01}, &chat.JoinParams{}, "room: want a string, got a msgpack int"},
		{MsgPack, "negative since", []byte{0x92, 0xa1, 'r', 0xff}, &chat.HistoryParams{}, "since: integer out of range: want a non-negative integer"},
		{BinaryRaw, "invalid UTF-8", []byte{0x01, 0xff}, &chat.JoinParams{}, "room: invalid UTF-8 at byte 0"},
		{BinaryRaw, "truncated message", []byte{0x01, 'a', 0x09, 'x'}, &chat.SendParams{}, "message: length exceeds the bytes left at byte 2"},
		{BinaryRaw, "trailing bytes", []byte{0x01, 'a', 0x00}, &chat.JoinParams{}, "chat.join params: trailing bytes at byte 2"},
		{BinaryRaw, "bytes for ping", []byte{0x00}, &chat.PingParams{}, "chat.ping params: trailing bytes at byte 0"},
	}
	for _, tc := range tests {
		p, ok := Lookup(All, tc.proto)
		if !ok {
			t.Fatalf("no protocol %s", tc.proto)
		}
		err := p.Codec.Unmarshal(tc.body, tc.v)
		var ce *codec.Error
		if !errors.As(err, &ce) || ce.Code != codec.CodeInvalidParams || ce.Data != tc.want {
			t.Errorf("%s %s: Unmarshal = %v, want -32602 with data %q", tc.proto, tc.name, err, tc.want)
		}
	}
}
