// github.com/sourcegraph/jsonrpc2 as a subgate json-rpc client, over its
// websocket object stream (which needs github.com/gorilla/websocket). The
// gorilla Dialer offers the subprotocol; pushes reach the Handler as
// notifications (req.Notif), which are never replied to. Run a gateway, then:
//
//	go run ./interop/go/jsonrpc2 ws://127.0.0.1:8080
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/gorilla/websocket"
	"github.com/sourcegraph/jsonrpc2"
	jsonrpc2ws "github.com/sourcegraph/jsonrpc2/websocket"
)

// pushes hands each push's method and params to a channel.
type pushes chan *jsonrpc2.Request

func (ch pushes) Handle(_ context.Context, _ *jsonrpc2.Conn, req *jsonrpc2.Request) {
	if req.Notif {
		ch <- req
	}
}

func main() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	dialer := websocket.Dialer{Subprotocols: []string{"json-rpc"}}
	ws, _, err := dialer.DialContext(ctx, os.Args[1]+"/ws/jsonrpc2-example", nil)
	if err != nil {
		log.Fatal(err)
	}
	in := make(pushes, 16)
	conn := jsonrpc2.NewConn(ctx, jsonrpc2ws.NewObjectStream(ws), jsonrpc2.AsyncHandler(in))
	defer conn.Close()

	var res json.RawMessage
	for _, c := range []struct {
		method string
		params any
	}{
		{"chat.ping", struct{}{}},
		{"chat.join", map[string]string{"room": "lobby"}},
		{"chat.send", map[string]string{"room": "lobby", "message": "hello from jsonrpc2"}},
	} {
		if err := conn.Call(ctx, c.method, c.params, &res); err != nil {
			log.Fatal(err)
		}
		fmt.Println(c.method, string(res))
	}
	select {
	case req := <-in:
		fmt.Println("push", req.Method, string(*req.Params))
	case <-ctx.Done():
		log.Fatal(ctx.Err())
	}
	err = conn.Call(ctx, "chat.send", map[string]string{"room": "elsewhere", "message": "hi"}, &res)
	var rpcErr *jsonrpc2.Error
	if errors.As(err, &rpcErr) {
		fmt.Println("error", rpcErr.Code, rpcErr.Message)
	}
	_ = ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(1000, ""), time.Now().Add(time.Second))
}
