package main

import (
	"context"
	"log/slog"
	"time"

	"github.com/subgate/subgate/gateway/natshub"
)

// natsStartTimeout bounds connecting to NATS and loading the cluster's
// presence at start: a node that cannot join its cluster exits.
const natsStartTimeout = 15 * time.Second

// openHub makes the NATS hub when -nats is set, with the -history-* and
// -max-rooms* bounds, and returns what closes it (after the gateway has
// drained, so that its clients leave their rooms first).
func openHub(f *serveFlags, log *slog.Logger) (func(), error) {
	if f.nats == "" {
		return func() {}, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), natsStartTimeout)
	defer cancel()
	h, err := natshub.New(ctx, natshub.Options{URL: f.nats, Limits: f.cfg.HubLimits(), Logger: log})
	if err != nil {
		return nil, err
	}
	f.cfg.Hub = h
	return h.Close, nil
}
