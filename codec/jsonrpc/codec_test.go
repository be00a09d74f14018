package jsonrpc

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/subgate/subgate/codec"
	"github.com/subgate/subgate/protocols/chat"
)

func decodeOne(t *testing.T, frame string) (codec.Message, error) {
	t.Helper()
	msgs, batch, err := New(chat.Table).Decode(nil, []byte(frame))
	if err != nil {
		return codec.Message{}, err
	}
	if batch || len(msgs) != 1 {
		t.Fatalf("%s: want one message, got %d (batch %v)", frame, len(msgs), batch)
	}
	return msgs[0], nil
}

func code(err error) int64 {
	var e *codec.Error
	if errors.As(err, &e) {
		return e.Code
	}
	return 0
}

func TestDecodeFrameErrors(t *testing.T) {
	for _, tc := range []struct {
		frame string
		code  int64
	}{
		{`{"jsonrpc":"2.0","method":"foobar,"params":"bar","baz]`, codec.CodeParseError},
		{`{"jsonrpc":"2.0","method":"chat.ping"`, codec.CodeParseError},
		{``, codec.CodeParseError},
		{`[`, codec.CodeParseError},
		{`[]`, codec.CodeInvalidRequest},
		{`1`, codec.CodeInvalidRequest},
		{`"chat.ping"`, codec.CodeInvalidRequest},
		{`null`, codec.CodeInvalidRequest},
	} {
		_, _, err := New(nil).Decode(nil, []byte(tc.frame))
		if code(err) != tc.code {
			t.Errorf("%q: got %v, want code %d", tc.frame, err, tc.code)
		}
	}
}

func TestDecodeInvalidMessages(t *testing.T) {
	for _, frame := range []string{
		`{"jsonrpc":"2.0","method":1,"params":"bar"}`,
		`{"jsonrpc":"2.0","method":"chat.ping","params":"bar","id":1}`,
		`{"JSONRPC":"2.0","method":"chat.ping","id":1}`,
		`{"jsonrpc":"1.0","method":"chat.ping","id":1}`,
		`{"method":"chat.ping","id":1}`,
		`{"jsonrpc":"2.0","method":"chat.ping","id":{}}`,
		`{"jsonrpc":"2.0","method":"chat.ping","id":true}`,
		`{"jsonrpc":"2.0","method":"a","method":"b","id":1}`,
		`{"jsonrpc":"2.0","method":"chat.ping","result":1,"id":1}`,
		`{"jsonrpc":"2.0","\u006dethod":"chat.ping","id":1}`,
		`{"jsonrpc":"2.0"}`,
	} {
		m, err := decodeOne(t, frame)
		if err != nil || m.Kind != codec.KindInvalid || m.Error.Code != codec.CodeInvalidRequest || m.ID.Kind != codec.IDNull {
			t.Errorf("%s: got %+v, %v; want an invalid message with null id", frame, m, err)
		}
	}
}

// TestDecodeInvalidReplies lists malformed Response objects (result or
// error, no method): each is a KindInvalidReply message, in a batch too,
// never KindInvalid, since a Response is never answered.
func TestDecodeInvalidReplies(t *testing.T) {
	for _, tc := range []struct {
		frame, id string
	}{
		{`{"jsonrpc":"2.0","result":1}`, ""},
		{`{"jsonrpc":"2.0","result":1,"error":{"code":1,"message":"x"},"id":1}`, "1"},
		{`{"jsonrpc":"2.0","error":{"code":"x","message":"x"},"id":1}`, "1"},
		{`{"jsonrpc":"2.0","error":"not a map","id":"a"}`, `"a"`},
		{`{"jsonrpc":"2.0","error":{"code":-32600,"message":"Invalid Request"},"id":null,"id":null}`, "null"},
		{`{"jsonrpc":"2.0","error":{"code":1},"id":null}`, "null"},
		{`{"jsonrpc":"2.0","error":null,"id":1}`, "1"},
		{`{"jsonrpc":"2.0","result":1,"id":{}}`, ""},
		{`{"jsonrpc":"2.0","result":1,"id":[1]}`, ""},
		{`{"result":1,"error":null,"id":1}`, "1"}, // JSON-RPC 1.0
		{`{"jsonrpc":"1.0","result":1,"id":1}`, "1"},
		{`{"jsonrpc":"2.0","result":1,"\u0069d":1}`, "1"},
		{`{"jsonrpc":"2.0","\u0072esult":1,"id":2}`, "2"},
		{`{"jsonrpc":"2.0","x\n":1,"error":{"code":1,"message":"x"},"id":3}`, "3"},
	} {
		for _, frame := range []string{tc.frame, `[{"jsonrpc":"2.0","method":"chat.ping","id":0},` + tc.frame + `]`} {
			msgs, _, err := New(nil).Decode(nil, []byte(frame))
			if err != nil || len(msgs) == 0 {
				t.Fatalf("%s: %v", frame, err)
			}
			m := msgs[len(msgs)-1]
			if m.Kind != codec.KindInvalidReply || m.Error.Code != codec.CodeInvalidRequest || m.Error.Data == "" || m.ID.String() != tc.id {
				t.Errorf("%s: got %v id %q %+v; want an invalid reply with id %q", frame, m.Kind, m.ID.String(), m.Error, tc.id)
			}
		}
	}
}

func TestDecodeCallsAndReplies(t *testing.T) {
	for _, tc := range []struct {
		frame  string
		kind   codec.Kind
		method string
		id     string
		body   string
	}{
		{`{"jsonrpc":"2.0","method":"chat.ping","id":1}`, codec.KindRequest, "chat.ping", "1", ""},
		{` { "id" : "a\"b" , "method" : "chat.send", "params" : {"room":"r"}, "jsonrpc":"2.0" } `, codec.KindRequest, "chat.send", `"a\"b"`, `{"room":"r"}`},
		{`{"jsonrpc":"2.0","method":"chat.ping","id":null}`, codec.KindRequest, "chat.ping", "null", ""},
		{`{"jsonrpc":"2.0","method":"x","id":123456789012345678901234567890}`, codec.KindRequest, "x", "123456789012345678901234567890", ""},
		{`{"jsonrpc":"2.0","method":"x","id":1.50}`, codec.KindRequest, "x", "1.50", ""},
		{`{"jsonrpc":"2.0","method":"chat.broadcast","params":["hi"]}`, codec.KindNotification, "chat.broadcast", "", `["hi"]`},
		{`{"jsonrpc":"2.0","method":"x","params":{},"extra":1}`, codec.KindNotification, "x", "", `{}`},
		{`{"jsonrpc":"2.0","result":{"a":[1,{"b":"]"}]},"id":7}`, codec.KindResult, "", "7", `{"a":[1,{"b":"]"}]}`},
	} {
		m, err := decodeOne(t, tc.frame)
		if err != nil {
			t.Fatalf("%s: %v", tc.frame, err)
		}
		if m.Kind != tc.kind || m.Method != tc.method || m.ID.String() != tc.id || string(m.Body) != tc.body {
			t.Errorf("%s: got kind %v method %q id %q body %q", tc.frame, m.Kind, m.Method, m.ID.String(), m.Body)
		}
	}
}

func TestDecodeErrorReply(t *testing.T) {
	m, err := decodeOne(t, `{"jsonrpc":"2.0","error":{"code":-32601,"message":"Method not found","data":{"x":1}},"id":"q"}`)
	if err != nil || m.Kind != codec.KindError || m.Error.Code != -32601 || m.Error.Message != "Method not found" || m.Error.Data != `{"x":1}` || m.ID.Str != "q" {
		t.Fatalf("got %+v %+v, %v", m, m.Error, err)
	}
}

func TestBatch(t *testing.T) {
	c := New(chat.Table)
	msgs, batch, err := c.Decode(nil, []byte(`[{"jsonrpc":"2.0","method":"chat.ping","id":1},1,{"jsonrpc":"2.0","method":"n"}]`))
	if err != nil || !batch || len(msgs) != 3 {
		t.Fatalf("got %d msgs batch %v err %v", len(msgs), batch, err)
	}
	if msgs[0].Kind != codec.KindRequest || msgs[1].Kind != codec.KindInvalid || msgs[2].Kind != codec.KindNotification {
		t.Fatalf("kinds: %v %v %v", msgs[0].Kind, msgs[1].Kind, msgs[2].Kind)
	}
	var items [][]byte
	r, _ := codec.AppendResult(c, nil, msgs[0].ID, &chat.PingResult{Status: "ok", Timestamp: 5})
	e, _ := codec.AppendError(c, nil, msgs[1].ID, msgs[1].Error)
	items = append(items, r, e)
	out, _ := c.AppendBatch(nil, items)
	want := `[{"jsonrpc":"2.0","result":{"status":"ok","timestamp":5},"id":1},{"jsonrpc":"2.0","error":{"code":-32600,"message":"Invalid Request","data":"batch element is not an object"},"id":null}]`
	if string(out) != want {
		t.Fatalf("got  %s\nwant %s", out, want)
	}
	big := "[" + repeat(`{"jsonrpc":"2.0","method":"n"},`, MaxBatch) + "1]"
	if _, _, err := c.Decode(nil, []byte(big)); code(err) != codec.CodeInvalidRequest {
		t.Fatalf("oversized batch: %v", err)
	}
}

func repeat(s string, n int) string {
	out := ""
	for range n {
		out += s
	}
	return out
}

func TestAppendEchoesID(t *testing.T) {
	c := New(chat.Table)
	for _, id := range []string{`1`, `-0`, `1e3`, `"x\u0041"`, `null`, `123456789012345678901234567890`} {
		m, err := decodeOne(t, `{"jsonrpc":"2.0","method":"chat.ping","id":`+id+`}`)
		if err != nil {
			t.Fatal(err)
		}
		out, err := codec.AppendResult(c, nil, m.ID, nil)
		if err != nil || string(out) != `{"jsonrpc":"2.0","result":null,"id":`+id+`}` {
			t.Errorf("id %s: got %s, %v", id, out, err)
		}
	}
}

func TestAppendStrings(t *testing.T) {
	c := New(nil)
	out, _ := codec.AppendNotification(c, nil, "a\"\\\n\x01<é\u2028\xff", nil)
	var v struct{ Method string }
	if err := json.Unmarshal(out, &v); err != nil || v.Method != "a\"\\\n\x01<é\u2028\ufffd" {
		t.Fatalf("%s -> %q %v", out, v.Method, err)
	}
	if string(out) != `{"jsonrpc":"2.0","method":"a\"\\\n\u0001<é\u2028\ufffd"}` {
		t.Fatalf("got %s", out)
	}
}

func TestUnmarshalParams(t *testing.T) {
	c := New(chat.Table)
	var h chat.HistoryParams
	if err := c.Unmarshal([]byte(`{"room":"r","since":5}`), &h); err != nil || h != (chat.HistoryParams{Room: "r", Since: 5}) {
		t.Fatalf("named: %+v %v", h, err)
	}
	h = chat.HistoryParams{}
	if err := c.Unmarshal([]byte(`["r", 5, 10]`), &h); err != nil || h != (chat.HistoryParams{Room: "r", Since: 5, Limit: 10}) {
		t.Fatalf("positional: %+v %v", h, err)
	}
	for _, bad := range []string{`{"ROOM":"r"}`, `{"room":1}`, `["r",1,2,3]`, `["r","x"]`, `{"rooom":"r"}`, `"r"`} {
		var h chat.HistoryParams
		if err := c.Unmarshal([]byte(bad), &h); code(err) != codec.CodeInvalidParams {
			t.Errorf("%s: got %v, want -32602", bad, err)
		}
	}
	var p chat.PingParams
	if err := c.Unmarshal(nil, &p); err != nil {
		t.Fatal(err)
	}
}

func TestNotificationBatchOnly(t *testing.T) {
	msgs, batch, err := New(nil).Decode(nil, []byte(`[{"jsonrpc":"2.0","method":"a"},{"jsonrpc":"2.0","method":"b"}]`))
	if err != nil || !batch || len(msgs) != 2 || msgs[0].Kind != codec.KindNotification || msgs[1].Method != "b" {
		t.Fatalf("%+v %v", msgs, err)
	}
}
