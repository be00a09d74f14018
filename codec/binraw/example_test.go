package binraw_test

import (
	"fmt"

	"github.com/subgate/subgate/codec"
	"github.com/subgate/subgate/codec/binraw"
	"github.com/subgate/subgate/protocols/chat"
)

// A server answering a chat.ping and sending a push.
func Example() {
	c := binraw.New(chat.Table)

	msgs, _, err := c.Decode(nil, []byte{0x00, 0x01, 0x10})
	if err != nil {
		panic(err)
	}
	m := msgs[0]
	var params chat.PingParams
	if err := c.Unmarshal(m.Body, &params); err != nil {
		panic(err)
	}
	fmt.Println(m.Kind, m.ID, m.Method)

	out, _ := codec.AppendResult(c, nil, m.ID, &chat.PingResult{Status: "ok", Timestamp: 1764000000})
	fmt.Printf("% x\n", out)

	out, _ = codec.AppendNotification(c, out[:0], chat.PushPresence,
		&chat.Presence{Room: "lobby", ClientID: "bob", Event: chat.EventJoin})
	fmt.Printf("% x\n", out)
	// Output:
	// request 1 chat.ping
	// 02 01 02 6f 6b 80 84 a4 92 0d
	// 01 21 05 6c 6f 62 62 79 03 62 6f 62 01
}

// Frames that are not binary-raw are answered with a null-id error.
func Example_parseError() {
	c := binraw.New(chat.Table)
	_, _, err := c.Decode(nil, []byte{0x20, 0x07, 0x10})
	fmt.Println(err)
	out, _ := codec.AppendError(c, nil, codec.NullID, err.(*codec.Error))
	fmt.Printf("% x\n", out[:4])
	// Output:
	// rpc error -32700: Parse error (reserved tag bits set)
	// 13 f7 fe 03
}
