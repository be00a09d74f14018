package natshub_test

import (
	"context"
	"log"
	"net/http"
	"time"

	"github.com/subgate/subgate/gateway"
	"github.com/subgate/subgate/gateway/natshub"
)

// A gateway node whose rooms, presence, history and delivery are shared
// with every node on the same NATS server (started with JetStream: -js).
func ExampleNew() {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	hub, err := natshub.New(ctx, natshub.Options{URL: "nats://127.0.0.1:4222"})
	if err != nil {
		log.Fatal(err) // NATS unreachable, or no JetStream
	}
	defer hub.Close() // after the server has drained: its clients leave their rooms first
	srv, err := gateway.New(gateway.Config{Hub: hub})
	if err != nil {
		log.Fatal(err)
	}
	if err := http.ListenAndServe("127.0.0.1:8080", srv); err != nil {
		log.Print(err)
	}
}
