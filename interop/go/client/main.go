// A complete subgate client in Go with package client, in any of the three
// encodings. Run a gateway, then:
//
//	go run ./interop/go/client ws://127.0.0.1:8080 binary-raw   # or json-rpc, msgpack
package main

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/subgate/subgate/client"
	"github.com/subgate/subgate/codec"
	"github.com/subgate/subgate/protocols/chat"
)

func main() {
	base, proto := os.Args[1], os.Args[2]
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, base+"/ws/go-example", client.Options{Protocol: proto})
	if err != nil {
		log.Fatal(err) // a refused handshake says why: HTTP status and body
	}
	defer c.Close()

	var pong chat.PingResult
	if err := c.Call(ctx, chat.MethodPing, &chat.PingParams{}, &pong); err != nil {
		log.Fatal(err)
	}
	fmt.Printf("ping %+v\n", pong)
	var joined chat.JoinResult
	if err := c.Call(ctx, chat.MethodJoin, &chat.JoinParams{Room: "lobby"}, &joined); err != nil {
		log.Fatal(err)
	}
	fmt.Printf("join %+v\n", joined)
	var sent chat.SendResult
	if err := c.Call(ctx, chat.MethodSend, &chat.SendParams{Room: "lobby", Message: "hello from go"}, &sent); err != nil {
		log.Fatal(err)
	}
	fmt.Printf("send %+v\n", sent)
	var msg chat.Message // pushes decode to the same types in every encoding
	for msg.Message == "" {
		select {
		case p := <-c.Pushes():
			if p.Method == chat.PushMessage {
				_ = p.Decode(&msg)
			}
		case <-ctx.Done():
			log.Fatal(ctx.Err())
		}
	}
	fmt.Printf("push %s %+v\n", chat.PushMessage, msg)
	err = c.Call(ctx, chat.MethodSend, &chat.SendParams{Room: "elsewhere", Message: "hi"}, &sent)
	var rpcErr *codec.Error
	if errors.As(err, &rpcErr) {
		fmt.Println("error", rpcErr.Code, rpcErr.Message)
	}
}
