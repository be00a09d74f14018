//go:build !linux

package gateway

import (
	"context"
	"errors"
)

// epoll stands for the poller on platforms without one: Config.Poller
// "auto" reads with goroutines there, "epoll" is refused.
type epoll struct{}

func sharedEpoll() (*epoll, error) { return nil, ErrNoPoller }

func (p *epoll) watch(*Conn, context.Context) bool { return false }

func (pr *pollReader) forget(*Conn) {}

func (pr *pollReader) read([]byte) (int, error) { return 0, errors.ErrUnsupported }

func (c *Conn) awaitInput() bool { return false }
