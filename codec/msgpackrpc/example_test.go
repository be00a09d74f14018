package msgpackrpc_test

import (
	"fmt"

	"github.com/subgate/subgate/codec"
	"github.com/subgate/subgate/codec/msgpackrpc"
	"github.com/subgate/subgate/protocols/chat"
)

func ExampleNew() {
	c := msgpackrpc.New(chat.Table)
	frame := []byte("\x94\x00\x01\xa9chat.ping\x90") // [0, 1, "chat.ping", []]
	msgs, _, err := c.Decode(nil, frame)
	if err != nil {
		panic(err)
	}
	m := msgs[0]
	fmt.Println(m.Kind, m.ID.Num, m.Method)

	out, err := codec.AppendResult(c, nil, m.ID, &chat.PingResult{Status: "ok", Timestamp: 1764000000})
	if err != nil {
		panic(err)
	}
	fmt.Printf("% x\n", out) // [1, 1, nil, {"status": "ok", "timestamp": 1764000000}]

	var send chat.SendParams
	err = c.Unmarshal([]byte("\x92\xa5lobby\xa2hi"), &send) // ["lobby", "hi"]
	fmt.Printf("%+v %v\n", send, err)

	_, _, err = c.Decode(nil, []byte{0xdd, 0xff, 0xff, 0xff, 0xff}) // an array of 2^32-1 items
	fmt.Println(err)
	// Output:
	// request 1 chat.ping
	// 94 01 01 c0 82 a6 73 74 61 74 75 73 a2 6f 6b a9 74 69 6d 65 73 74 61 6d 70 ce 69 24 81 00
	// {Room:lobby Message:hi} <nil>
	// rpc error -32700: Parse error (declared length exceeds the bytes left at offset 0)
}
