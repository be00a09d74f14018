package msgpackrpc

import (
	"bytes"
	"errors"
	"reflect"
	"testing"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/subgate/subgate/codec"
	"github.com/subgate/subgate/internal/golden"
	"github.com/subgate/subgate/protocols/chat"
)

// seeds returns the golden msgpack vectors and testdata/hostile/msgpack
// (golden.Seeds reads both), plus a few frames of our own.
func seeds(f *testing.F) [][]byte {
	s, err := golden.Seeds(2, "msgpack")
	if err != nil {
		f.Fatal(err)
	}
	return append(s,
		pingFrame,
		[]byte("\x94\x00\xce\x00\x00\x00\x05\xa9chat.send\x91\x82\xa4room\xa5lobby\xa7message\xa2hi"),
		[]byte("\x94\x00\x01\xacchat.history\x93\xa5lobby\xc0\x02"),
		[]byte("\x93\x02\xacchat.message\x91\x83\xa4from\xa1a\xa7message\xa1m\xa2ts\x01"),
		[]byte("\x94\x01\x01\xc0\x82\xa6status\xa2ok\xa9timestamp\xce\x69\x24\x81\x00"),
		[]byte("\x94\x01\xc0\x83\xa4code\xd1\x80\xa8\xa7message\xafInvalid Request\xa4data\xa1x\xc0"),
		[]byte("\xdd\xff\xff\xff\xff"),
		[]byte("\x94\x00\x01\xa1m\x91\x81\xa1a\xdf\xff\xff\xff\xff"),
	)
}

// FuzzDecode checks that any frame decodes without panicking, that refusals
// are -32700 or -32600 and can be answered, that a frame typed as a
// response is never refused (it is a reply kind, so the server never
// answers it), that the scanner agrees with the library about well-formed
// input, and that every valid message re-encodes to a frame that decodes
// to the same message.
func FuzzDecode(f *testing.F) {
	for _, s := range seeds(f) {
		f.Add(s)
	}
	c := New(chat.Table)
	f.Fuzz(func(t *testing.T, frame []byte) {
		msgs, batch, err := c.Decode(nil, frame)
		if batch {
			t.Fatal("batch")
		}
		if scan(frame) == nil {
			// Safe to hand to the library now: it must agree that the
			// frame is exactly one value.
			r := bytes.NewReader(frame)
			if err := msgpack.NewDecoder(r).Skip(); err != nil || r.Len() != 0 {
				t.Fatalf("scan accepted % x, library: %v, %d bytes left", frame, err, r.Len())
			}
		}
		if err != nil {
			if isResponse(frame) {
				t.Fatalf("response-typed % x refused with %v", frame, err)
			}
			checkRefusal(t, c, err, msgs)
			return
		}
		if len(msgs) != 1 {
			t.Fatalf("%d messages", len(msgs))
		}
		m := msgs[0]
		checkReplyKind(t, frame, m)
		if m.Kind == codec.KindInvalidReply {
			return
		}
		out := reencode(t, c, m)
		again := decodeOneFuzz(t, c, out)
		sameMessage(t, m, again)
		if out2 := reencode(t, c, again); !bytes.Equal(out, out2) {
			t.Fatalf("encoding not stable:\n% x\n% x", out, out2)
		}
		var v any
		_ = c.Unmarshal(m.Body, &v) // must not panic
	})
}

func checkRefusal(t *testing.T, c codec.Codec, err error, msgs []codec.Message) {
	t.Helper()
	var e *codec.Error
	if !errors.As(err, &e) || (e.Code != codec.CodeParseError && e.Code != codec.CodeInvalidRequest) {
		t.Fatalf("error %v is not a -32700 or -32600 *codec.Error", err)
	}
	if len(msgs) != 0 {
		t.Fatal("messages with an error")
	}
	reply, err := codec.AppendError(c, nil, codec.NullID, e)
	if err != nil {
		t.Fatal(err)
	}
	m := decodeOneFuzz(t, c, reply)
	if m.Kind != codec.KindError || m.ID.Kind != codec.IDNull || *m.Error != *e {
		t.Fatalf("reply decodes to %+v", m)
	}
}

// checkReplyKind checks that m is a reply kind exactly when frame is typed
// as a response, and that an invalid reply says what is wrong.
func checkReplyKind(t *testing.T, frame []byte, m codec.Message) {
	t.Helper()
	reply := m.Kind == codec.KindResult || m.Kind == codec.KindError || m.Kind == codec.KindInvalidReply
	if reply != isResponse(frame) {
		t.Fatalf("% x decodes to kind %v", frame, m.Kind)
	}
	if m.Kind != codec.KindInvalidReply {
		return
	}
	if e := m.Error; e == nil || e.Data == "" || e.Code != codec.CodeParseError && e.Code != codec.CodeInvalidRequest {
		t.Fatalf("invalid reply without a -32700 or -32600 detail: %+v", m)
	}
}

// reencode appends m again, passing its body through as a RawMessage.
func reencode(t *testing.T, c codec.Codec, m codec.Message) []byte {
	t.Helper()
	var body any
	if m.Kind != codec.KindError {
		body = msgpack.RawMessage(m.Body)
	}
	out, err := c.Append(nil, m, body)
	if err != nil {
		t.Fatalf("re-encode %+v: %v", m, err)
	}
	return out
}

func decodeOneFuzz(t *testing.T, c codec.Codec, frame []byte) codec.Message {
	t.Helper()
	msgs, _, err := c.Decode(nil, frame)
	if err != nil || len(msgs) != 1 {
		t.Fatalf("re-decode % x: %v", frame, err)
	}
	return msgs[0]
}

func sameMessage(t *testing.T, a, b codec.Message) {
	t.Helper()
	if a.Kind != b.Kind || a.Method != b.Method || !a.ID.Equal(b.ID) || !bytes.Equal(a.Body, b.Body) {
		t.Fatalf("message changed:\n%+v\n%+v", a, b)
	}
	if (a.Error == nil) != (b.Error == nil) || a.Error != nil && *a.Error != *b.Error {
		t.Fatalf("error changed: %+v vs %+v", a.Error, b.Error)
	}
}

// FuzzUnmarshal decodes any body into typed params and results: no panic,
// and whatever decodes re-encodes to a body that decodes to the same value.
func FuzzUnmarshal(f *testing.F) {
	for _, s := range seeds(f) {
		f.Add(s)
	}
	f.Add([]byte("\x91\x82\xa4room\xa5lobby\xa7message\xa2hi"))
	f.Add([]byte("\x93\xa5lobby\x05\xc0"))
	f.Add([]byte("\x83\xa4room\xa1r\xa7members\x92\xa1a\xa1b\xa6offset\x07"))
	c := New(chat.Table)
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, v := range []any{new(chat.SendParams), new(chat.HistoryParams), new(chat.JoinResult), new(any)} {
			if err := c.Unmarshal(body, v); err != nil {
				var e *codec.Error
				if !errors.As(err, &e) || e.Code != codec.CodeInvalidParams {
					t.Fatalf("error %v is not -32602", err)
				}
				continue
			}
			if _, ok := v.(*any); ok {
				continue
			}
			out, err := codec.AppendResult(c, nil, codec.NumberID(1), v)
			if err != nil {
				t.Fatal(err)
			}
			again := reflect.New(reflect.TypeOf(v).Elem()).Interface()
			if err := c.Unmarshal(decodeOneFuzz(t, c, out).Body, again); err != nil || !reflect.DeepEqual(v, again) {
				t.Fatalf("%T: %+v re-decodes to %+v (%v)", v, v, again, err)
			}
		}
	})
}
