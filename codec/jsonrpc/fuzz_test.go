package jsonrpc

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/subgate/subgate/codec"
	"github.com/subgate/subgate/internal/golden"
	"github.com/subgate/subgate/protocols/chat"
)

// FuzzDecode checks that any frame decodes without panicking, that an
// object with "result" or "error" and no "method" decodes to a reply kind
// (never answered), and that every other message it yields re-encodes to a
// frame that decodes to the same message.
func FuzzDecode(f *testing.F) {
	seeds, err := golden.Seeds(2, "json-rpc")
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range seeds {
		f.Add(s)
	}
	f.Add([]byte(`[{"jsonrpc":"2.0","method":"chat.send","params":{"room":"r","message":"m"},"id":"x"},1]`))
	c := New(chat.Table)
	f.Fuzz(func(t *testing.T, frame []byte) {
		msgs, _, err := c.Decode(nil, frame)
		if err != nil {
			if _, ok := err.(*codec.Error); !ok {
				t.Fatalf("error %T is not *codec.Error", err)
			}
			return
		}
		if isResponse(frame) && !isReplyKind(msgs[0].Kind) {
			t.Fatalf("Response object %s decodes to kind %v", frame, msgs[0].Kind)
		}
		for _, m := range msgs {
			if m.Kind == codec.KindInvalidReply {
				if m.Error == nil || m.Error.Code != codec.CodeInvalidRequest {
					t.Fatalf("invalid reply %+v without -32600", m)
				}
				continue
			}
			var body any
			if m.Body != nil {
				body = json.RawMessage(m.Body)
			}
			if m.Kind == codec.KindResult && m.Body == nil {
				t.Fatal("result without body")
			}
			out, err := c.Append(nil, m, body)
			if err != nil {
				t.Fatalf("re-encode %+v: %v", m, err)
			}
			again, _, err := c.Decode(nil, out)
			if err != nil || len(again) != 1 {
				t.Fatalf("re-decode %s: %v", out, err)
			}
			sameMessage(t, m, again[0])
		}
	})
}

// isResponse reports whether frame is one JSON object with "result" or
// "error" and no "method", as encoding/json reads its member names.
func isResponse(frame []byte) bool {
	var obj map[string]json.RawMessage
	if json.Unmarshal(frame, &obj) != nil || obj == nil {
		return false
	}
	_, method := obj["method"]
	_, result := obj["result"]
	_, rerr := obj["error"]
	return !method && (result || rerr)
}

func isReplyKind(k codec.Kind) bool {
	return k == codec.KindResult || k == codec.KindError || k == codec.KindInvalidReply
}

func sameMessage(t *testing.T, a, b codec.Message) {
	t.Helper()
	if a.Kind == codec.KindInvalid {
		a.Kind = codec.KindError // an invalid message is answered as an error reply
	}
	if a.Kind != b.Kind || a.Method != b.Method || !a.ID.Equal(b.ID) {
		t.Fatalf("envelope changed: %+v vs %+v", a, b)
	}
	if a.Kind == codec.KindInvalid || a.Kind == codec.KindError {
		if a.Error.Code != b.Error.Code || a.Error.Message != b.Error.Message {
			t.Fatalf("error changed: %+v vs %+v", a.Error, b.Error)
		}
		return
	}
	if !jsonEqual(a.Body, b.Body) {
		t.Fatalf("body changed: %s vs %s", a.Body, b.Body)
	}
}

// jsonEqual reports whether a and b are the same JSON value. Numbers are
// compared as their text (json.Number): a number no float64 holds, such as
// 1E700, is valid JSON and must survive a round trip unchanged.
func jsonEqual(a, b []byte) bool {
	if len(a) == 0 || len(b) == 0 {
		return len(a) == len(b)
	}
	x, errX := decodeNumbers(a)
	y, errY := decodeNumbers(b)
	if errX != nil || errY != nil {
		return false
	}
	xa, _ := json.Marshal(x)
	ya, _ := json.Marshal(y)
	return string(xa) == string(ya)
}

func decodeNumbers(b []byte) (any, error) {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var v any
	err := d.Decode(&v)
	return v, err
}

// FuzzUnmarshal checks typed params decoding never panics.
func FuzzUnmarshal(f *testing.F) {
	f.Add([]byte(`{"room":"r","since":1,"limit":2}`))
	f.Add([]byte(`["r",1,2]`))
	c := New(chat.Table)
	f.Fuzz(func(t *testing.T, body []byte) {
		if !json.Valid(body) {
			return // Decode guarantees bodies are valid JSON
		}
		var h chat.HistoryParams
		_ = c.Unmarshal(body, &h)
		var s chat.SendParams
		_ = c.Unmarshal(body, &s)
	})
}
