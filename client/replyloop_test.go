package client

import (
	"errors"
	"strings"
	"testing"

	"github.com/subgate/subgate/codec"
	"github.com/subgate/subgate/internal/golden"
	"github.com/subgate/subgate/protocols"
	"github.com/subgate/subgate/protocols/chat"
)

// malformedReplies holds, per subprotocol, a malformed error reply with a
// null id and one for id 2 (hex for the binary subprotocols).
var malformedReplies = map[string][2]string{
	protocols.JSONRPC:   {`{"jsonrpc":"2.0","error":"x","id":null}`, `{"jsonrpc":"2.0","error":"x","id":2}`},
	protocols.MsgPack:   {"94 01 c0 a1 78 c0", "94 01 02 a1 78 c0"}, // error is a string
	protocols.BinaryRaw: {"13 01 01 ff", "03 02 01 01 ff"},          // message not UTF-8
}

// TestNoAnswerToReplies sends the client null-id errors, replies for ids it
// never sent and malformed replies: it answers none of them (the next
// thing it writes is its next call), hands the null-id error to
// OnNullIDError, and fails the call whose reply is malformed.
func TestNoAnswerToReplies(t *testing.T) {
	forEach(t, func(t *testing.T, s *fakeServer) {
		nullIDErrors := make(chan *codec.Error, 8)
		c, sc := s.dial(t, Options{OnNullIDError: func(e *codec.Error) { nullIDErrors <- e }})
		bad := malformedReplies[s.proto.Name]
		raw := func(text string) []byte {
			if s.proto.Binary {
				return golden.MustHex(t, text)
			}
			return []byte(text)
		}

		done := goCall(c, testContext(t), chat.MethodPing, &chat.PingParams{}, nil)
		m := sc.read()
		sent := codec.InvalidRequest("unreadable")
		sc.error(codec.NullID, sent)
		sc.write(raw(bad[0]), nil)
		sc.error(codec.NumberID(99), codec.InvalidRequest("never sent"))
		sc.result(codec.NumberID(98), &chat.PingResult{Status: "ok"})
		sc.result(m.ID, &chat.PingResult{Status: "ok"})
		if err := <-done; err != nil {
			t.Fatalf("Call: %v", err)
		}
		// OnNullIDError gets the one well-formed null-id error (on its own
		// goroutine); the malformed one is not an error it is given.
		select {
		case got := <-nullIDErrors:
			if *got != *sent {
				t.Fatalf("OnNullIDError got %+v, want %+v", got, sent)
			}
		case <-testContext(t).Done():
			t.Fatal("OnNullIDError was not called")
		}

		done = goCall(c, testContext(t), chat.MethodPing, &chat.PingParams{}, nil)
		if m = sc.read(); m.Kind != codec.KindRequest || m.ID.Num != 2 {
			t.Fatalf("the client wrote %v id %v, want its next call (request id 2)", m.Kind, m.ID)
		}
		sc.write(raw(bad[1]), nil)
		err := <-done
		var rpcErr *codec.Error
		if !errors.As(err, &rpcErr) || !strings.Contains(err.Error(), "malformed reply") {
			t.Fatalf("Call with a malformed reply: %v, want a malformed-reply error", err)
		}
		if c.Err() != nil {
			t.Fatalf("the connection ended: %v", c.Err())
		}
		if n := len(nullIDErrors); n != 0 {
			t.Fatalf("OnNullIDError got %d more errors, want exactly 1", n)
		}
	})
}
