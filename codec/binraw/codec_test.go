package binraw_test

import (
	"bytes"
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"

	"github.com/subgate/subgate/codec"
	"github.com/subgate/subgate/codec/binraw"
	"github.com/subgate/subgate/internal/golden"
	"github.com/subgate/subgate/protocols/chat"
)

var c = binraw.New(chat.Table)

// unhex turns "94 00 01" into bytes.
var unhex = golden.MustHex

func req(id int64, method string, body string) codec.Message {
	return codec.Message{Kind: codec.KindRequest, ID: codec.NumberID(id), Method: method, Body: []byte(body)}
}

func note(method string, body string) codec.Message {
	return codec.Message{Kind: codec.KindNotification, Method: method, Body: []byte(body)}
}

func result(id int64, body string) codec.Message {
	return codec.Message{Kind: codec.KindResult, ID: codec.NumberID(id), Body: []byte(body)}
}

func errMsg(id codec.ID, code int64, msg, data string) codec.Message {
	return codec.Message{Kind: codec.KindError, ID: id, Error: &codec.Error{Code: code, Message: msg, Data: data}}
}

func invalid(code int64) codec.Message {
	return codec.Message{Kind: codec.KindInvalid, Error: &codec.Error{Code: code}}
}

// sameMessage compares what a decoder promises: kind, id, method, body and
// error (only the code for KindInvalid, whose detail text is free).
func sameMessage(got, want codec.Message) bool {
	if got.Kind != want.Kind || !got.ID.Equal(want.ID) || got.Method != want.Method || !bytes.Equal(got.Body, want.Body) {
		return false
	}
	if (got.Error == nil) != (want.Error == nil) {
		return false
	}
	if want.Kind == codec.KindInvalid {
		return got.Error.Code == want.Error.Code
	}
	return got.Error == nil || *got.Error == *want.Error
}

func TestDecode(t *testing.T) {
	tests := []struct {
		name  string
		hex   string
		want  []codec.Message
		batch bool
	}{
		{"ping request", "00 01 10", []codec.Message{req(1, chat.MethodPing, "")}, false},
		{"request with params", "00 05 14 05 6c 6f 62 62 79 02 68 69", []codec.Message{req(5, chat.MethodSend, "\x05lobby\x02hi")}, false},
		{"request id 0", "00 00 10", []codec.Message{req(0, chat.MethodPing, "")}, false},
		{"request id 127", "00 7f 10", []codec.Message{req(127, chat.MethodPing, "")}, false},
		{"request id 128", "00 80 01 10", []codec.Message{req(128, chat.MethodPing, "")}, false},
		{"request id 2^63-1", "00 ff ff ff ff ff ff ff ff 7f 10", []codec.Message{req(math.MaxInt64, chat.MethodPing, "")}, false},
		{"discover", "00 0a 01", []codec.Message{req(10, chat.MethodDiscover, "")}, false},
		{"method by name", "08 01 09 63 68 61 74 2e 70 69 6e 67", []codec.Message{req(1, chat.MethodPing, "")}, false},
		{"unknown method by name", "08 02 03 66 6f 6f 01 02", []codec.Message{req(2, "foo", "\x01\x02")}, false},
		{"unknown method id", "00 06 7f", []codec.Message{req(6, "#127", "")}, false},
		{"reserved method id 0", "00 06 00", []codec.Message{req(6, "#0", "")}, false},
		{"unknown two-byte method id", "00 06 80 01 aa", []codec.Message{req(6, "#128", "\xaa")}, false},
		{"notification", "01 11 02 68 69", []codec.Message{note(chat.MethodBroadcast, "\x02hi")}, false},
		{"push", "01 21 05 6c 6f 62 62 79 03 62 6f 62 01", []codec.Message{note(chat.PushPresence, "\x05lobby\x03bob\x01")}, false},
		{"notification by name", "09 04 74 65 73 74", []codec.Message{note("test", "")}, false},
		{"result", "02 01 02 6f 6b 80 84 a4 92 0d", []codec.Message{result(1, "\x02ok\x80\x84\xa4\x92\x0d")}, false},
		{"empty result", "02 09", []codec.Message{result(9, "")}, false},
		{"error", "03 0b b1 fd 03 10 4d 65 74 68 6f 64 20 6e 6f 74 20 66 6f 75 6e 64 63 68 61 74 2e 6e 6f 70 65",
			[]codec.Message{errMsg(codec.NumberID(11), -32601, "Method not found", "chat.nope")}, false},
		{"error without data", "03 0c 81 f4 03 00", []codec.Message{errMsg(codec.NumberID(12), -32001, "", "")}, false},
		{"null-id error", "13 af fd 03 0f 49 6e 76 61 6c 69 64 20 52 65 71 75 65 73 74",
			[]codec.Message{errMsg(codec.NullID, -32600, "Invalid Request", "")}, false},
		{"error with positive code", "03 01 02 00", []codec.Message{errMsg(codec.NumberID(1), 1, "", "")}, false},
		{"error with extreme code", "13 ff ff ff ff ff ff ff ff ff 01 00", []codec.Message{errMsg(codec.NullID, math.MinInt64, "", "")}, false},
		{"batch", "04 02 03 00 01 10 05 01 11 02 68 69",
			[]codec.Message{req(1, chat.MethodPing, ""), note(chat.MethodBroadcast, "\x02hi")}, true},
		{"batch of one", "04 01 0a 02 01 02 6f 6b 80 84 a4 92 0d", []codec.Message{result(1, "\x02ok\x80\x84\xa4\x92\x0d")}, true},
		{"batch with a nested batch", "04 02 03 00 01 10 04 04 01 01 10",
			[]codec.Message{req(1, chat.MethodPing, ""), invalid(codec.CodeInvalidRequest)}, true},
		{"batch with an empty element", "04 02 00 03 00 01 10",
			[]codec.Message{invalid(codec.CodeParseError), req(1, chat.MethodPing, "")}, true},
		{"batch with a bad element", "04 03 02 00 80 01 e0 03 00 02 10",
			[]codec.Message{invalid(codec.CodeParseError), invalid(codec.CodeParseError), req(2, chat.MethodPing, "")}, true},
		{"batch with an empty name", "04 01 03 08 01 00", []codec.Message{invalid(codec.CodeInvalidRequest)}, true},
		{"batch of 100", "04 64" + strings.Repeat(" 03 00 01 10", 100), repeat(req(1, chat.MethodPing, ""), 100), true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			prefix := []codec.Message{note("prefix", "")}
			got, batch, err := c.Decode(prefix, unhex(t, tc.hex))
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if batch != tc.batch {
				t.Errorf("batch = %v, want %v", batch, tc.batch)
			}
			if len(got) != len(tc.want)+1 || got[0].Method != "prefix" {
				t.Fatalf("Decode returned %d messages %+v, want the prefix and %d", len(got), got, len(tc.want))
			}
			for i, w := range tc.want {
				if !sameMessage(got[i+1], w) {
					t.Errorf("message %d = %+v (error %+v), want %+v (error %+v)", i, got[i+1], got[i+1].Error, w, w.Error)
				}
			}
		})
	}
}

func repeat(m codec.Message, n int) []codec.Message {
	ms := make([]codec.Message, n)
	for i := range ms {
		ms[i] = m
	}
	return ms
}

func TestDecodeErrors(t *testing.T) {
	tests := []struct {
		name string
		hex  string
		code int64
	}{
		{"empty frame", "", codec.CodeParseError},
		{"reserved kind 5", "05 01 10", codec.CodeParseError},
		{"reserved kind 6", "06", codec.CodeParseError},
		{"reserved kind 7", "07 01 10", codec.CodeParseError},
		{"reserved bit 5", "20 01 10", codec.CodeParseError},
		{"reserved bit 6", "40 01 10", codec.CodeParseError},
		{"reserved bit 7", "80 01 10", codec.CodeParseError},
		{"null-id flag on a request", "10 01 10", codec.CodeParseError},
		{"null-id flag on a notification", "11 10", codec.CodeParseError},
		{"flag on a batch", "0c 01 03 00 01 10", codec.CodeParseError},
		{"request without id", "00", codec.CodeParseError},
		{"request without method", "00 01", codec.CodeParseError},
		{"truncated id", "00 80", codec.CodeParseError},
		{"non-minimal id", "00 81 00 10", codec.CodeParseError},
		{"non-minimal zero id", "00 80 00 10", codec.CodeParseError},
		{"id 2^63", "00 80 80 80 80 80 80 80 80 80 01 10", codec.CodeParseError},
		{"id 2^64-1", "00 ff ff ff ff ff ff ff ff ff 01 10", codec.CodeParseError},
		{"id over 64 bits", "00 ff ff ff ff ff ff ff ff ff 02 10", codec.CodeParseError},
		{"id of 11 bytes", "00 ff ff ff ff ff ff ff ff ff 81 01 10", codec.CodeParseError},
		{"truncated method id", "00 01 80", codec.CodeParseError},
		{"non-minimal method id", "00 01 90 00", codec.CodeParseError},
		{"notification without method", "01", codec.CodeParseError},
		{"name past the end", "08 01 0a 63 68 61 74 2e 70 69 6e 67", codec.CodeParseError},
		{"huge name length", "08 01 ff ff ff ff ff ff ff ff 7f", codec.CodeParseError},
		{"name not UTF-8", "08 01 02 c3 28", codec.CodeParseError},
		{"empty name", "08 01 00", codec.CodeInvalidRequest},
		{"empty name in a notification", "09 00 01", codec.CodeInvalidRequest},
		{"empty batch", "04 00", codec.CodeInvalidRequest},
		{"batch of 101", "04 65" + strings.Repeat(" 03 00 01 10", 101), codec.CodeInvalidRequest},
		{"batch count 2^40", "04 80 80 80 80 80 20", codec.CodeInvalidRequest},
		{"batch without count", "04", codec.CodeParseError},
		{"batch count non-minimal", "04 81 00 03 00 01 10", codec.CodeParseError},
		{"batch count past the end", "04 03 03 00 01 10", codec.CodeParseError},
		{"batch element length truncated", "04 02 03 00 01 10 80", codec.CodeParseError},
		{"batch element past the end", "04 01 04 00 01 10", codec.CodeParseError},
		{"batch element huge length", "04 01 ff ff ff ff 0f 00", codec.CodeParseError},
		{"batch trailing bytes", "04 01 03 00 01 10 ff", codec.CodeParseError},
		{"batch one element missing", "04 02 03 00 01 10", codec.CodeParseError},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dst := []codec.Message{note("prefix", "")}
			got, batch, err := c.Decode(dst, unhex(t, tc.hex))
			var e *codec.Error
			if !errors.As(err, &e) {
				t.Fatalf("Decode = %+v, %v; want an *codec.Error", got, err)
			}
			if e.Code != tc.code {
				t.Errorf("code %d (%v), want %d", e.Code, e, tc.code)
			}
			if len(got) != 1 || batch {
				t.Errorf("Decode returned %d messages, batch %v; want dst unchanged, no batch", len(got), batch)
			}
		})
	}
}

// TestDecodeInvalidReplies lists malformed messages whose kind bits say
// result or error: each decodes to a KindInvalidReply message (in a batch
// too), never to an error the server would answer, so that no peer can
// loop with the server by answering its errors.
func TestDecodeInvalidReplies(t *testing.T) {
	none, id1 := codec.ID{}, codec.NumberID(1)
	tests := []struct {
		name string
		hex  string
		id   codec.ID // the id read
	}{
		{"name flag on a result", "0a 01", none},
		{"null-id flag on a result", "12 01", none},
		{"name flag on an error", "0b 01 00 00", none},
		{"both flags on an error", "1b 00 00", none},
		{"reserved bit on a result", "22 01", none},
		{"reserved bits on an error", "e3 01 00 00", none},
		{"reserved bit on a null-id error", "93 00 00", none},
		{"result without id", "02", none},
		{"result id truncated", "02 80", none},
		{"result id non-minimal", "02 81 00", none},
		{"result id 2^63", "02 80 80 80 80 80 80 80 80 80 01", none},
		{"error id 2^63", "03 80 80 80 80 80 80 80 80 80 01 00 00", none},
		{"error without id", "03", none},
		{"error without code", "03 01", id1},
		{"error without message", "03 01 01", id1},
		{"error message past the end", "03 01 01 05 61", id1},
		{"error huge message length", "13 01 ff ff ff ff 0f", codec.NullID},
		{"error message not UTF-8", "03 01 01 01 ff", id1},
		{"error data not UTF-8", "03 01 01 00 61 ff", id1},
		{"error code over 64 bits", "13 ff ff ff ff ff ff ff ff ff 02 00", codec.NullID},
		{"null-id error without code", "13", codec.NullID},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			frame := unhex(t, tc.hex)
			check := func(m codec.Message) {
				t.Helper()
				if m.Kind != codec.KindInvalidReply || m.Error == nil || m.Error.Code != codec.CodeParseError || m.Error.Data == "" {
					t.Fatalf("got %v %+v, want an invalid reply with a -32700 detail", m.Kind, m.Error)
				}
				if m.ID.Kind != tc.id.Kind || m.ID.Num != tc.id.Num {
					t.Errorf("id %v, want %v", m.ID, tc.id)
				}
			}
			msgs, batch, err := c.Decode(nil, frame)
			if err != nil || len(msgs) != 1 || batch {
				t.Fatalf("Decode = %d messages, batch %v, %v; want one message", len(msgs), batch, err)
			}
			check(msgs[0])
			in, err := c.AppendBatch(nil, [][]byte{{0x00, 0x01, 0x10}, frame})
			if err != nil {
				t.Fatal(err)
			}
			msgs, batch, err = c.Decode(nil, in)
			if err != nil || len(msgs) != 2 || !batch || msgs[0].Kind != codec.KindRequest {
				t.Fatalf("in a batch: %+v, batch %v, %v", msgs, batch, err)
			}
			check(msgs[1])
		})
	}
}

func TestAppend(t *testing.T) {
	tests := []struct {
		name string
		m    codec.Message
		body any
		hex  string
	}{
		{"ping request", codec.Message{Kind: codec.KindRequest, ID: codec.NumberID(1), Method: chat.MethodPing}, nil, "00 01 10"},
		{"ping request with params", codec.Message{Kind: codec.KindRequest, ID: codec.NumberID(1), Method: chat.MethodPing}, &chat.PingParams{}, "00 01 10"},
		{"ping request, params by value", codec.Message{Kind: codec.KindRequest, ID: codec.NumberID(1), Method: chat.MethodPing}, chat.PingParams{}, "00 01 10"},
		{"request id 2^63-1", codec.Message{Kind: codec.KindRequest, ID: codec.NumberID(math.MaxInt64), Method: chat.MethodPing}, nil, "00 ff ff ff ff ff ff ff ff 7f 10"},
		{"request by name", codec.Message{Kind: codec.KindRequest, ID: codec.NumberID(2), Method: "foo"}, binraw.Raw{1, 2}, "08 02 03 66 6f 6f 01 02"},
		{"id with a foreign wire form", codec.Message{Kind: codec.KindRequest, ID: codec.ID{Kind: codec.IDNumber, Num: 7, Raw: []byte("7.0")}, Method: chat.MethodPing}, nil, "00 07 10"},
		{"notification", codec.Message{Kind: codec.KindNotification, Method: chat.MethodBroadcast}, &chat.BroadcastParams{Message: "hi"}, "01 11 02 68 69"},
		{"notification ignores an id", codec.Message{Kind: codec.KindNotification, ID: codec.StringID("x"), Method: chat.PushNotice}, chat.Notice{}, "01 22 00 00"},
		{"notification by name", codec.Message{Kind: codec.KindNotification, Method: "test"}, nil, "09 04 74 65 73 74"},
		{"result", codec.Message{Kind: codec.KindResult, ID: codec.NumberID(1)}, &chat.PingResult{Status: "ok", Timestamp: 1764000000}, "02 01 02 6f 6b 80 84 a4 92 0d"},
		{"empty result", codec.Message{Kind: codec.KindResult, ID: codec.NumberID(300)}, nil, "02 ac 02"},
		{"error", errMsg(codec.NumberID(11), -32601, "Method not found", "chat.nope"), nil,
			"03 0b b1 fd 03 10 4d 65 74 68 6f 64 20 6e 6f 74 20 66 6f 75 6e 64 63 68 61 74 2e 6e 6f 70 65"},
		{"error ignores body", errMsg(codec.NumberID(1), 1, "", ""), &chat.PingResult{Status: "x"}, "03 01 02 00"},
		{"null-id error", errMsg(codec.NullID, -32700, "Parse error", ""), nil, "13 f7 fe 03 0b 50 61 72 73 65 20 65 72 72 6f 72"},
		{"error with IDNone", errMsg(codec.ID{}, -32700, "", ""), nil, "13 f7 fe 03 00"},
		{"error data not UTF-8", errMsg(codec.NullID, 0, "", "a\xffb"), nil, "13 00 00 61 ef bf bd 62"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := c.Append([]byte("pre"), tc.m, tc.body)
			if err != nil {
				t.Fatalf("Append: %v", err)
			}
			if want := append([]byte("pre"), unhex(t, tc.hex)...); !bytes.Equal(got, want) {
				t.Errorf("Append = % x, want % x", got[3:], want[3:])
			}
		})
	}
}

type notBinary struct{ X int }

func TestAppendErrors(t *testing.T) {
	tests := []struct {
		name string
		m    codec.Message
		body any
		want error
	}{
		{"string id", codec.Message{Kind: codec.KindRequest, ID: codec.StringID("a"), Method: chat.MethodPing}, nil, binraw.ErrID},
		{"negative id", codec.Message{Kind: codec.KindRequest, ID: codec.NumberID(-1), Method: chat.MethodPing}, nil, binraw.ErrID},
		{"request without id", codec.Message{Kind: codec.KindRequest, Method: chat.MethodPing}, nil, binraw.ErrID},
		{"request with null id", codec.Message{Kind: codec.KindRequest, ID: codec.NullID, Method: chat.MethodPing}, nil, binraw.ErrID},
		{"result with null id", codec.Message{Kind: codec.KindResult, ID: codec.NullID}, nil, binraw.ErrID},
		{"result with string id", codec.Message{Kind: codec.KindResult, ID: codec.StringID("1")}, nil, binraw.ErrID},
		{"error with string id", errMsg(codec.StringID("1"), 1, "", ""), nil, binraw.ErrID},
		{"error without Error", codec.Message{Kind: codec.KindError, ID: codec.NumberID(1)}, nil, binraw.ErrNoError},
		{"empty method", codec.Message{Kind: codec.KindNotification}, nil, binraw.ErrNoMethod},
		{"invalid kind", codec.Message{Kind: codec.KindInvalid}, nil, binraw.ErrKind},
		{"unknown kind", codec.Message{Kind: 9}, nil, binraw.ErrKind},
		{"body without AppendBinary", codec.Message{Kind: codec.KindResult, ID: codec.NumberID(1)}, &notBinary{}, nil},
		{"body that fails", codec.Message{Kind: codec.KindNotification, Method: chat.PushPresence}, &chat.Presence{Event: "wave"}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := c.Append([]byte("pre"), tc.m, tc.body)
			if err == nil || tc.want != nil && !errors.Is(err, tc.want) {
				t.Errorf("Append = % x, %v; want error %v", got, err, tc.want)
			}
			if string(got) != "pre" {
				t.Errorf("Append on error returned %q, want dst unchanged", got)
			}
		})
	}
}

func TestAppendBatch(t *testing.T) {
	ping := unhex(t, "00 01 10")
	got, err := c.AppendBatch([]byte("pre"), [][]byte{ping, unhex(t, "01 11 02 68 69")})
	if want := "pre" + string(unhex(t, "04 02 03 00 01 10 05 01 11 02 68 69")); err != nil || string(got) != want {
		t.Errorf("AppendBatch = % x, %v; want % x", got, err, want)
	}
	for _, items := range [][][]byte{nil, {}, repeatBytes(ping, 101), {ping, nil}, {ping, unhex(t, "04 01 03 00 01 10")}} {
		got, err := c.AppendBatch([]byte("pre"), items)
		if err == nil || string(got) != "pre" {
			t.Errorf("AppendBatch(%d items) = % x, %v; want an error and dst unchanged", len(items), got, err)
		}
	}
	full, err := c.AppendBatch(nil, repeatBytes(ping, binraw.MaxBatch))
	if err != nil {
		t.Fatal(err)
	}
	msgs, batch, err := c.Decode(nil, full)
	if err != nil || !batch || len(msgs) != binraw.MaxBatch {
		t.Errorf("Decode(AppendBatch(100 pings)) = %d messages, batch %v, %v", len(msgs), batch, err)
	}
}

func repeatBytes(b []byte, n int) [][]byte {
	out := make([][]byte, n)
	for i := range out {
		out[i] = b
	}
	return out
}

// Every id from 0 to 2^63-1 survives a round trip; the wire form is the
// minimal uvarint.
func TestIDRoundTrip(t *testing.T) {
	ids := []int64{0, 1, 127, 128, 255, 300, 16383, 16384, 1<<32 - 1, 1 << 32, 1<<56 - 1, 1 << 56, 1 << 62, math.MaxInt64 - 1, math.MaxInt64}
	for _, id := range ids {
		for _, kind := range []codec.Kind{codec.KindRequest, codec.KindResult, codec.KindError} {
			m := codec.Message{Kind: kind, ID: codec.NumberID(id), Method: chat.MethodPing, Error: &codec.Error{Code: -1, Message: "m"}}
			frame, err := c.Append(nil, m, nil)
			if err != nil {
				t.Fatalf("Append(%v, id %d): %v", kind, id, err)
			}
			msgs, _, err := c.Decode(nil, frame)
			if err != nil || len(msgs) != 1 || !msgs[0].ID.Equal(codec.NumberID(id)) || msgs[0].Kind != kind {
				t.Errorf("Decode(Append(%v, id %d) = % x) = %+v, %v", kind, id, frame, msgs, err)
			}
		}
	}
}

func TestUnmarshal(t *testing.T) {
	var p chat.SendParams
	if err := c.Unmarshal(unhex(t, "05 6c 6f 62 62 79 02 68 69"), &p); err != nil || p != (chat.SendParams{Room: "lobby", Message: "hi"}) {
		t.Errorf("Unmarshal = %+v, %v", p, err)
	}
	var ping chat.PingParams
	if err := c.Unmarshal(nil, &ping); err != nil {
		t.Errorf("Unmarshal(empty, PingParams) = %v", err)
	}
	var raw binraw.Raw
	body := []byte{1, 2, 3}
	if err := c.Unmarshal(body, &raw); err != nil || !bytes.Equal(raw, body) {
		t.Errorf("Unmarshal(Raw) = %v, %v", raw, err)
	}
	body[0] = 9
	if raw[0] != 1 {
		t.Error("Raw aliases the body it was unmarshaled from")
	}

	tests := []struct {
		name string
		hex  string
		v    any
		code int64
	}{
		{"empty body for params with fields", "", &chat.SendParams{}, codec.CodeInvalidParams},
		{"bytes for empty params", "00", &chat.PingParams{}, codec.CodeInvalidParams},
		{"truncated", "05 6c 6f", &chat.JoinParams{}, codec.CodeInvalidParams},
		{"trailing", "01 61 00", &chat.JoinParams{}, codec.CodeInvalidParams},
		{"not UTF-8", "01 ff", &chat.JoinParams{}, codec.CodeInvalidParams},
		{"not a BinaryUnmarshaler", "00", &notBinary{}, codec.CodeInternalError},
		{"nil", "00", nil, codec.CodeInternalError},
	}
	for _, tc := range tests {
		err := c.Unmarshal(unhex(t, tc.hex), tc.v)
		var e *codec.Error
		if !errors.As(err, &e) || e.Code != tc.code {
			t.Errorf("%s: Unmarshal = %v, want code %d", tc.name, err, tc.code)
		}
	}
}

func TestName(t *testing.T) {
	if got := c.Name(); got != "binary-raw" {
		t.Errorf("Name() = %q", got)
	}
}

// A codec without a table still works, with every method by name.
func TestNilTable(t *testing.T) {
	nc := binraw.New(nil)
	frame, err := codec.AppendRequest(nc, nil, codec.NumberID(1), chat.MethodPing, nil)
	if err != nil || !bytes.Equal(frame, unhex(t, "08 01 09 63 68 61 74 2e 70 69 6e 67")) {
		t.Errorf("AppendRequest = % x, %v", frame, err)
	}
	msgs, _, err := nc.Decode(nil, unhex(t, "00 01 10"))
	if err != nil || msgs[0].Method != "#16" {
		t.Errorf("Decode = %+v, %v", msgs, err)
	}
}

// Decoding a known method does not allocate, and Body aliases the frame.
func TestDecodeAliasesAndInterns(t *testing.T) {
	frame := unhex(t, "00 05 14 05 6c 6f 62 62 79 02 68 69")
	msgs := make([]codec.Message, 0, 1)
	allocs := testing.AllocsPerRun(100, func() {
		msgs, _, _ = c.Decode(msgs[:0], frame)
	})
	if allocs != 0 {
		t.Errorf("Decode allocates %v times", allocs)
	}
	if &msgs[0].Body[0] != &frame[3] {
		t.Error("Body does not alias the frame")
	}
	if !reflect.DeepEqual(msgs[0], req(5, chat.MethodSend, "\x05lobby\x02hi")) {
		t.Errorf("Decode = %+v", msgs[0])
	}
}
