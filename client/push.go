package client

import (
	"errors"
	"fmt"

	"github.com/subgate/subgate/codec"
	"github.com/subgate/subgate/protocols/chat"
)

// Push is a notification from the server: chat.message, chat.presence or
// gateway.notice (or a push this package does not know yet).
type Push struct {
	// Method is the push name, e.g. chat.PushMessage.
	Method string
	// Body holds the push payload still in the connection's wire format (a
	// copy: it does not alias the client's read buffer). Decode it with
	// Decode or Value.
	Body []byte

	codec codec.Codec
}

// Decode decodes the payload into v, a pointer to the push's typed payload
// (*chat.Message for chat.message, *chat.Presence, *chat.Notice).
func (p Push) Decode(v any) error {
	if p.codec == nil {
		return errors.New("client: Push has no codec (not received by a Client)")
	}
	if err := p.codec.Unmarshal(p.Body, v); err != nil {
		return fmt.Errorf("client: decode %s push: %v", p.Method, err)
	}
	return nil
}

// Value decodes the payload into the typed value protocols/chat defines for
// the push's method and returns it: a *chat.Message, *chat.Presence or
// *chat.Notice. A method chat does not know is an error.
func (p Push) Value() (any, error) {
	e, ok := chat.Lookup(p.Method)
	if !ok {
		return nil, fmt.Errorf("client: unknown push %q", p.Method)
	}
	v := e.NewParams()
	if err := p.Decode(v); err != nil {
		return nil, err
	}
	return v, nil
}
