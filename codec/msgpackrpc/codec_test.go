package msgpackrpc

import (
	"bytes"
	"errors"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/subgate/subgate/codec"
	"github.com/subgate/subgate/internal/golden"
	"github.com/subgate/subgate/protocols/chat"
)

// unhex turns "94 00 01" into bytes.
var unhex = golden.MustHex

// libEncode encodes v with the msgpack library, the way a third-party peer
// would (compact ints, json tags).
func libEncode(t testing.TB, v any) []byte {
	t.Helper()
	var buf bytes.Buffer
	enc := msgpack.NewEncoder(&buf)
	enc.SetCustomStructTag("json")
	enc.UseCompactInts(true)
	if err := enc.Encode(v); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func decodeOne(t *testing.T, c codec.Codec, frame []byte) codec.Message {
	t.Helper()
	msgs, batch, err := c.Decode(nil, frame)
	if err != nil || batch || len(msgs) != 1 {
		t.Fatalf("decode % x: %d messages, batch %v, %v", frame, len(msgs), batch, err)
	}
	return msgs[0]
}

func TestName(t *testing.T) {
	if got := New(chat.Table).Name(); got != "msgpack" {
		t.Fatalf("Name() = %q", got)
	}
}

// TestRoundTrip encodes every kind of message, decodes it back and checks
// the envelope and the typed body.
func TestRoundTrip(t *testing.T) {
	c := New(chat.Table)
	for _, tc := range []struct {
		name string
		msg  codec.Message
		body any // encoded body; decoded into a new value of its type
		want string
	}{
		{"ping request", codec.Message{Kind: codec.KindRequest, ID: codec.NumberID(1), Method: chat.MethodPing}, nil,
			"94 00 01 a9 63 68 61 74 2e 70 69 6e 67 90"},
		{"ping request with empty params struct", codec.Message{Kind: codec.KindRequest, ID: codec.NumberID(1), Method: chat.MethodPing}, &chat.PingParams{},
			"94 00 01 a9 63 68 61 74 2e 70 69 6e 67 90"},
		{"send request", codec.Message{Kind: codec.KindRequest, ID: codec.NumberID(5), Method: chat.MethodSend},
			&chat.SendParams{Room: "lobby", Message: "hi all"}, ""},
		{"history request, negative id", codec.Message{Kind: codec.KindRequest, ID: codec.NumberID(-40000), Method: chat.MethodHistory},
			&chat.HistoryParams{Room: "lobby", Limit: 2}, ""},
		{"request, largest id", codec.Message{Kind: codec.KindRequest, ID: codec.NumberID(math.MaxInt64), Method: "x.y"},
			&chat.JoinParams{Room: "r"}, ""},
		{"broadcast notification", codec.Message{Kind: codec.KindNotification, Method: chat.MethodBroadcast},
			&chat.BroadcastParams{Message: "fire and forget"}, ""},
		{"chat.message push", codec.Message{Kind: codec.KindNotification, Method: chat.PushMessage},
			&chat.Message{Room: "lobby", From: "alice", Message: "hi", Offset: 42, TS: 1764000000123}, ""},
		{"ping result", codec.Message{Kind: codec.KindResult, ID: codec.NumberID(1)},
			&chat.PingResult{Status: "ok", Timestamp: 1764000000},
			"94 01 01 c0 82 a6 73 74 61 74 75 73 a2 6f 6b a9 74 69 6d 65 73 74 61 6d 70 ce 69 24 81 00"},
		{"join result", codec.Message{Kind: codec.KindResult, ID: codec.NumberID(3)},
			&chat.JoinResult{Room: "lobby", Members: []string{"alice", "bob"}, Offset: 41}, ""},
		{"history result", codec.Message{Kind: codec.KindResult, ID: codec.NumberID(8)},
			&chat.HistoryResult{Room: "lobby", Messages: []chat.HistoryEntry{{Offset: 41, From: "a", Message: "m", TS: -1}}}, ""},
		{"nil result", codec.Message{Kind: codec.KindResult, ID: codec.NumberID(9)}, nil, "94 01 09 c0 c0"},
		{"error with data", codec.Message{Kind: codec.KindError, ID: codec.NumberID(11),
			Error: &codec.Error{Code: codec.CodeMethodNotFound, Message: "Method not found", Data: "chat.nope"}}, nil, ""},
		{"error without data", codec.Message{Kind: codec.KindError, ID: codec.NumberID(12), Error: chat.NewError(chat.CodeNotMember, "")}, nil,
			"94 01 0c 82 a4 63 6f 64 65 d1 82 ff a7 6d 65 73 73 61 67 65 b8 4e 6f 74 20 61 20 6d 65 6d 62 65 72 20 6f 66 20 74 68 65 20 72 6f 6f 6d c0"},
		{"error with null id", codec.Message{Kind: codec.KindError, ID: codec.NullID,
			Error: &codec.Error{Code: codec.CodeInvalidRequest, Message: "Invalid Request"}}, nil,
			"94 01 c0 82 a4 63 6f 64 65 d1 80 a8 a7 6d 65 73 73 61 67 65 af 49 6e 76 61 6c 69 64 20 52 65 71 75 65 73 74 c0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := c.Append(nil, tc.msg, tc.body)
			if err != nil {
				t.Fatal(err)
			}
			if tc.want != "" && !bytes.Equal(out, unhex(t, tc.want)) {
				t.Fatalf("encoded\n got % x\nwant %s", out, tc.want)
			}
			m := decodeOne(t, c, out)
			if m.Kind != tc.msg.Kind || m.Method != tc.msg.Method || !m.ID.Equal(tc.msg.ID) {
				t.Fatalf("envelope %+v, want %+v", m, tc.msg)
			}
			if tc.msg.Error != nil && *m.Error != *tc.msg.Error {
				t.Fatalf("error %+v, want %+v", m.Error, tc.msg.Error)
			}
			if tc.body == nil {
				return
			}
			got := reflect.New(reflect.TypeOf(tc.body).Elem()).Interface()
			if err := c.Unmarshal(m.Body, got); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.body) {
				t.Fatalf("body %+v, want %+v", got, tc.body)
			}
		})
	}
}

// TestIDEcho checks that a msgid comes back in the form it was sent, and
// that its value is read whatever the form.
func TestIDEcho(t *testing.T) {
	c := New(chat.Table)
	for _, tc := range []struct {
		raw string
		num int64
	}{
		{"05", 5}, {"cc 05", 5}, {"cd 00 05", 5}, {"ce 00 00 00 05", 5}, {"cf 00 00 00 00 00 00 00 05", 5},
		{"d0 05", 5}, {"d1 00 05", 5}, {"d2 00 00 00 05", 5}, {"d3 00 00 00 00 00 00 00 05", 5},
		{"ff", -1}, {"d0 80", -128}, {"ce ff ff ff ff", math.MaxUint32},
		{"cf 7f ff ff ff ff ff ff ff", math.MaxInt64}, {"d3 80 00 00 00 00 00 00 00", math.MinInt64},
	} {
		raw := unhex(t, tc.raw)
		frame := append(append([]byte{0x94, 0x00}, raw...), "\xa9chat.ping\x90"...)
		m := decodeOne(t, c, frame)
		if m.ID.Kind != codec.IDNumber || m.ID.Num != tc.num || !bytes.Equal(m.ID.Raw, raw) {
			t.Fatalf("%s: id %+v, want %d", tc.raw, m.ID, tc.num)
		}
		if m.Method != chat.MethodPing || !bytes.Equal(m.Body, []byte{0x90}) {
			t.Fatalf("%s: %+v", tc.raw, m)
		}
		out, err := codec.AppendResult(c, nil, m.ID.Clone(), nil)
		want := append(append([]byte{0x94, 0x01}, raw...), 0xc0, 0xc0)
		if err != nil || !bytes.Equal(out, want) {
			t.Fatalf("%s: reply % x, want % x (%v)", tc.raw, out, want, err)
		}
		// Without its wire form, an id is written in its smallest form.
		out, _ = codec.AppendResult(c, nil, codec.NumberID(tc.num), nil)
		if m2 := decodeOne(t, c, out); m2.ID.Num != tc.num || len(m2.ID.Raw) > len(raw) {
			t.Fatalf("%s: compact id % x", tc.raw, m2.ID.Raw)
		}
	}
	// Raw that is not a msgpack integer (an id from another codec) is
	// ignored in favour of Num.
	out, _ := codec.AppendResult(c, nil, codec.ID{Kind: codec.IDNumber, Num: 7, Raw: []byte("7")}, nil)
	if want := []byte{0x94, 0x01, 0x07, 0xc0, 0xc0}; !bytes.Equal(out, want) {
		t.Fatalf("foreign raw id: % x", out)
	}
	// Appending to a decoded Raw must not write into the frame.
	frame := unhex(t, "94 00 01 a9 63 68 61 74 2e 70 69 6e 67 90")
	m := decodeOne(t, c, frame)
	_ = append(m.ID.Raw, 0xff)
	_ = append(m.Body, 0xff)
	if frame[3] != 0xa9 {
		t.Fatal("Raw aliases the frame with spare capacity")
	}
}

func TestParams(t *testing.T) {
	c := New(chat.Table)
	for _, tc := range []struct {
		name string
		body []byte
		into any // pointer to the value before decoding
		want any // nil: want a -32602 error
	}{
		{"send named", libEncode(t, []any{map[string]any{"room": "lobby", "message": "hi"}}),
			&chat.SendParams{}, &chat.SendParams{Room: "lobby", Message: "hi"}},
		{"send named, keys reordered", libEncode(t, []any{map[string]any{"message": "hi", "room": "lobby"}}),
			&chat.SendParams{}, &chat.SendParams{Room: "lobby", Message: "hi"}},
		{"send positional", libEncode(t, []any{"lobby", "hi"}),
			&chat.SendParams{}, &chat.SendParams{Room: "lobby", Message: "hi"}},
		{"send positional, str8 and bin", unhex(t, "92 d9 05 6c 6f 62 62 79 c4 02 68 69"),
			&chat.SendParams{}, &chat.SendParams{Room: "lobby", Message: "hi"}},
		{"history named with options", libEncode(t, []any{map[string]any{"room": "lobby", "since": 40, "limit": 2}}),
			&chat.HistoryParams{}, &chat.HistoryParams{Room: "lobby", Since: 40, Limit: 2}},
		{"history named without options", libEncode(t, []any{map[string]any{"room": "lobby"}}),
			&chat.HistoryParams{}, &chat.HistoryParams{Room: "lobby"}},
		{"history positional, all", libEncode(t, []any{"lobby", 40, 2}),
			&chat.HistoryParams{}, &chat.HistoryParams{Room: "lobby", Since: 40, Limit: 2}},
		{"history positional, nil for absent", libEncode(t, []any{"lobby", nil, 2}),
			&chat.HistoryParams{}, &chat.HistoryParams{Room: "lobby", Limit: 2}},
		{"history positional, trailing left out", libEncode(t, []any{"lobby"}),
			&chat.HistoryParams{}, &chat.HistoryParams{Room: "lobby"}},
		{"history positional, uint64 max", unhex(t, "92 a1 72 cf ff ff ff ff ff ff ff ff"),
			&chat.HistoryParams{}, &chat.HistoryParams{Room: "r", Since: math.MaxUint64}},
		{"empty params leave v alone", []byte{0x90}, &chat.SendParams{Room: "x"}, &chat.SendParams{Room: "x"}},
		{"empty body leaves v alone", nil, &chat.SendParams{Room: "x"}, &chat.SendParams{Room: "x"}},
		{"params into a map", libEncode(t, []any{map[string]any{"a": 1}}),
			&map[string]int{}, &map[string]int{"a": 1}},
		{"params into any", libEncode(t, []any{map[string]any{"a": -1}}),
			new(any), func() *any { var v any = []any{map[string]any{"a": int64(-1)}}; return &v }()},
		{"params into a slice", libEncode(t, []any{"a", "b"}), new([]string), &[]string{"a", "b"}},

		{"unknown named key", libEncode(t, []any{map[string]any{"room": "lobby", "message": "hi", "extra": 1}}), &chat.SendParams{}, nil},
		{"key of another case", libEncode(t, []any{map[string]any{"Room": "lobby"}}), &chat.SendParams{}, nil},
		{"map key not a string", unhex(t, "91 81 01 a1 78"), &chat.SendParams{}, nil},
		{"wrong type named", libEncode(t, []any{map[string]any{"room": 1}}), &chat.SendParams{}, nil},
		{"wrong type positional", libEncode(t, []any{"lobby", 1}), &chat.SendParams{}, nil},
		{"too many positional", libEncode(t, []any{"lobby", "hi", "more"}), &chat.SendParams{}, nil},
		{"negative into uint", libEncode(t, []any{"lobby", -1}), &chat.HistoryParams{}, nil},
		{"float into uint", libEncode(t, []any{"lobby", 1.5}), &chat.HistoryParams{}, nil},
		{"int8 overflow", unhex(t, "cd 01 00"), new(int8), nil},
		{"not a pointer", []byte{0x90}, chat.SendParams{}, nil},
		{"nil pointer", []byte{0x90}, (*chat.SendParams)(nil), nil},
		{"truncated", unhex(t, "92 a5 6c 6f"), &chat.SendParams{}, nil},
		{"trailing bytes", unhex(t, "90 90"), &chat.SendParams{}, nil},
		{"ext", unhex(t, "91 d4 01 00"), new(any), nil},
		{"huge array", unhex(t, "dd ff ff ff ff"), new(any), nil},
		{"too deep", append(bytes.Repeat([]byte{0x91}, MaxDepth+1), 0xc0), new(any), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := c.Unmarshal(tc.body, tc.into)
			if tc.want == nil {
				var e *codec.Error
				if !errors.As(err, &e) || e.Code != codec.CodeInvalidParams {
					t.Fatalf("got %v (%+v), want -32602", err, tc.into)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(tc.into, tc.want) {
				t.Fatalf("got %#v, want %#v", tc.into, tc.want)
			}
		})
	}
}

// TestResultUnknownKeys: results (not params) skip keys they do not know,
// so clients keep working when the server adds result fields.
func TestResultUnknownKeys(t *testing.T) {
	c := New(chat.Table)
	body := libEncode(t, map[string]any{"room": "lobby", "offset": 3, "new": []any{1, map[string]any{"x": nil}}, "members": []string{"a"}})
	var r chat.JoinResult
	if err := c.Unmarshal(body, &r); err != nil {
		t.Fatal(err)
	}
	if want := (chat.JoinResult{Room: "lobby", Members: []string{"a"}, Offset: 3}); !reflect.DeepEqual(r, want) {
		t.Fatalf("got %+v", r)
	}
	// A nil result leaves a zero value.
	r = chat.JoinResult{Room: "x"}
	if err := c.Unmarshal([]byte{0xc0}, &r); err != nil || r.Room != "" {
		t.Fatalf("nil result: %+v %v", r, err)
	}
}

// TestRawMessage: msgpack.RawMessage passes bodies through both ways.
func TestRawMessage(t *testing.T) {
	c := New(chat.Table)
	params := libEncode(t, []any{"lobby", "hi"})
	out, err := codec.AppendRequest(c, nil, codec.NumberID(1), chat.MethodSend, msgpack.RawMessage(params))
	if err != nil {
		t.Fatal(err)
	}
	m := decodeOne(t, c, out)
	if !bytes.Equal(m.Body, params) {
		t.Fatalf("body % x", m.Body)
	}
	var raw msgpack.RawMessage
	if err := c.Unmarshal(m.Body, &raw); err != nil || !bytes.Equal(raw, params) {
		t.Fatalf("raw % x %v", raw, err)
	}
	for _, bad := range [][]byte{{0x01}, {0x91}, {0xc1}} {
		if _, err := codec.AppendRequest(c, nil, codec.NumberID(1), "m", msgpack.RawMessage(bad)); err == nil {
			t.Errorf("raw params % x accepted", bad)
		}
	}
	if _, err := codec.AppendResult(c, nil, codec.NumberID(1), msgpack.RawMessage{0x92, 0x01}); err == nil {
		t.Error("truncated raw result accepted")
	}
}

func TestAppendParamsShapes(t *testing.T) {
	c := New(chat.Table)
	for _, tc := range []struct {
		name   string
		params any
		want   string // the params element
	}{
		{"nil", nil, "90"},
		{"nil pointer", (*chat.SendParams)(nil), "90"},
		{"empty struct", chat.PingParams{}, "90"},
		{"struct", chat.JoinParams{Room: "r"}, "91 81 a4 72 6f 6f 6d a1 72"},
		{"omitempty", &chat.HistoryParams{Room: "r"}, "91 81 a4 72 6f 6f 6d a1 72"},
		{"positional slice", []any{"r", 1}, "92 a1 72 01"},
		{"positional array", [2]string{"r", "m"}, "92 a1 72 a1 6d"},
		{"nil slice", []any(nil), "90"},
		{"bytes are one value", []byte("ab"), "91 c4 02 61 62"},
		{"scalar is one value", 7, "91 07"},
		{"map, keys sorted", map[string]any{"b": 2, "a": 1}, "91 82 a1 61 01 a1 62 02"},
	} {
		out, err := codec.AppendNotification(c, nil, "m", tc.params)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if want := append([]byte{0x93, 0x02, 0xa1, 'm'}, unhex(t, tc.want)...); !bytes.Equal(out, want) {
			t.Errorf("%s: got % x, want % x", tc.name, out, want)
		}
	}
}

func TestAppendErrors(t *testing.T) {
	c := New(chat.Table)
	prefix := []byte("keep")
	for _, tc := range []struct {
		name string
		msg  codec.Message
		body any
	}{
		{"string id request", codec.Message{Kind: codec.KindRequest, ID: codec.StringID("a"), Method: "m"}, nil},
		{"string id error", codec.Message{Kind: codec.KindError, ID: codec.StringID("a"), Error: &codec.Error{}}, nil},
		{"null id request", codec.Message{Kind: codec.KindRequest, ID: codec.NullID, Method: "m"}, nil},
		{"no id result", codec.Message{Kind: codec.KindResult}, nil},
		{"error without Error", codec.Message{Kind: codec.KindError, ID: codec.NumberID(1)}, nil},
		{"invalid kind", codec.Message{Kind: codec.KindInvalid}, nil},
		{"unencodable params", codec.Message{Kind: codec.KindNotification, Method: "m"}, make(chan int)},
		{"unencodable result", codec.Message{Kind: codec.KindResult, ID: codec.NumberID(1)}, func() {}},
	} {
		out, err := c.Append(prefix, tc.msg, tc.body)
		if err == nil {
			t.Errorf("%s: no error, got % x", tc.name, out)
		}
		if string(out) != "keep" {
			t.Errorf("%s: dst changed to %q", tc.name, out)
		}
	}
	if out, err := c.AppendBatch(prefix, [][]byte{{0x90}}); !errors.Is(err, codec.ErrNoBatch) || string(out) != "keep" {
		t.Errorf("AppendBatch: %q %v", out, err)
	}
	// An error reply with no id at all is sent with a nil msgid.
	out, err := c.Append(nil, codec.Message{Kind: codec.KindError, Error: &codec.Error{Code: 1, Message: "m"}}, nil)
	if err != nil || decodeOne(t, c, out).ID.Kind != codec.IDNull {
		t.Errorf("IDNone error reply: % x %v", out, err)
	}
}

// TestDecodeErrors lists frames that are refused, with the code of the
// refusal: -32700 for bytes that are not (acceptable) MessagePack, -32600
// for MessagePack that is not a message. Each is answered with
// [1, nil, {code, message, data}, nil].
func TestDecodeErrors(t *testing.T) {
	c := New(chat.Table)
	const ping = "a9 63 68 61 74 2e 70 69 6e 67" // "chat.ping"
	for _, tc := range []struct {
		name, frame string
		code        int64
	}{
		{"empty frame", "", codec.CodeParseError},
		{"truncated", "94 00 01 " + ping[:8], codec.CodeParseError},
		{"truncated header", "cd 01", codec.CodeParseError},
		{"0xc1", "94 00 01 " + ping + " c1", codec.CodeParseError},
		{"fixext", "94 00 01 " + ping + " 91 d4 01 00", codec.CodeParseError},
		{"ext8", "c7 01 05 00", codec.CodeParseError},
		{"timestamp ext", "d6 ff 00 00 00 00", codec.CodeParseError},
		{"trailing bytes", "94 00 01 " + ping + " 90 00", codec.CodeParseError},
		{"two messages", "94 00 01 " + ping + " 90 94 00 01 " + ping + " 90", codec.CodeParseError},
		{"array32 huge", "dd ff ff ff ff", codec.CodeParseError},
		{"array16 over the bytes left", "dc 00 03 05 02", codec.CodeParseError},
		{"map32 huge", "df ff ff ff ff", codec.CodeParseError},
		{"map over the bytes left", "83 01 02 03 04 05", codec.CodeParseError},
		{"str32 huge", "db ff ff ff ff", codec.CodeParseError},
		{"bin32 huge", "c6 ff ff ff ff", codec.CodeParseError},
		{"str8 over the bytes left", "d9 05 61 62", codec.CodeParseError},
		{"huge params", "94 00 01 " + ping + " dd ff ff ff ff", codec.CodeParseError},
		{"huge nested map", "94 00 01 " + ping + " 91 81 a1 61 df ff ff ff ff", codec.CodeParseError},
		{"too deep", strings.Repeat("91 ", MaxDepth+1) + "c0", codec.CodeParseError},
		{"too deep, maps", strings.Repeat("81 a1 61 ", MaxDepth+1) + "c0", codec.CodeParseError},

		{"nil", "c0", codec.CodeInvalidRequest},
		{"integer", "01", codec.CodeInvalidRequest},
		{"map", "81 a4 74 79 70 65 00", codec.CodeInvalidRequest},
		{"empty array", "90", codec.CodeInvalidRequest},
		{"deepest allowed nesting", strings.Repeat("91 ", MaxDepth) + "c0", codec.CodeInvalidRequest},
		{"type only", "91 00", codec.CodeInvalidRequest},
		{"request of 3", "93 00 01 " + ping, codec.CodeInvalidRequest},
		{"request of 5", "95 00 01 " + ping + " 90 c0", codec.CodeInvalidRequest},
		{"notification of 4", "94 02 " + ping + " 90 c0", codec.CodeInvalidRequest},
		{"unknown type", "94 03 01 " + ping + " 90", codec.CodeInvalidRequest},
		{"negative type", "94 ff 01 " + ping + " 90", codec.CodeInvalidRequest},
		{"huge type", "94 cf ff ff ff ff ff ff ff ff 01 " + ping + " 90", codec.CodeInvalidRequest},
		{"type is a string", "94 a1 30 01 " + ping + " 90", codec.CodeInvalidRequest},
		{"msgid nil in request", "94 00 c0 " + ping + " 90", codec.CodeInvalidRequest},
		{"msgid string", "94 00 a1 31 " + ping + " 90", codec.CodeInvalidRequest},
		{"msgid float", "94 00 cb 3f f0 00 00 00 00 00 00 " + ping + " 90", codec.CodeInvalidRequest},
		{"msgid beyond int64", "94 00 cf 80 00 00 00 00 00 00 00 " + ping + " 90", codec.CodeInvalidRequest},
		{"msgid array", "94 00 91 01 " + ping + " 90", codec.CodeInvalidRequest},
		{"method integer", "94 00 01 01 90", codec.CodeInvalidRequest},
		{"method bin", "94 00 01 c4 01 78 90", codec.CodeInvalidRequest},
		{"method nil", "93 02 c0 90", codec.CodeInvalidRequest},
		{"params map", "94 00 01 " + ping + " 80", codec.CodeInvalidRequest},
		{"params nil", "94 00 01 " + ping + " c0", codec.CodeInvalidRequest},
		{"params string", "93 02 " + ping + " a0", codec.CodeInvalidRequest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			msgs, batch, err := c.Decode(nil, unhex(t, tc.frame))
			var e *codec.Error
			if !errors.As(err, &e) || e.Code != tc.code || len(msgs) != 0 || batch {
				t.Fatalf("got %v (%d messages), want code %d", err, len(msgs), tc.code)
			}
			if e.Data == "" {
				t.Fatal("no detail in data")
			}
			checkRefusal(t, c, err, msgs) // answerable with a null msgid
		})
	}
}

// TestDecodeAccepts lists frames that other MessagePack-RPC peers may send.
// TestDecodeInvalidReplies lists malformed frames typed as responses: each
// decodes to a message, never to an error the server would answer, so that
// a peer that answers errors (pynvim does) cannot loop with the server.
func TestDecodeInvalidReplies(t *testing.T) {
	c := New(chat.Table)
	const (
		msg   = "a7 6d 65 73 73 61 67 65 a1 78" // "message": "x"
		code1 = "a4 63 6f 64 65 01"             // "code": 1
	)
	for _, tc := range []struct {
		name, frame string
		code        int64
		id          string // the msgid read, "" for none
	}{
		{"error is a string (Neovim)", "94 01 01 a1 78 c0", codec.CodeInvalidRequest, "1"},
		{"error is an array (Neovim)", "94 01 01 92 01 a1 78 c0", codec.CodeInvalidRequest, "1"},
		{"pynvim's reply to an error", "94 01 00 d9 05 4b 65 79 45 72 c0", codec.CodeInvalidRequest, "0"},
		{"type only", "91 01", codec.CodeInvalidRequest, ""},
		{"response of 2", "92 01 07", codec.CodeInvalidRequest, "7"},
		{"response of 3", "93 01 01 c0", codec.CodeInvalidRequest, "1"},
		{"response of 5", "95 01 01 c0 c0 c0", codec.CodeInvalidRequest, "1"},
		{"type as uint8", "94 cc 01 01 a1 78 c0", codec.CodeInvalidRequest, "1"},
		{"array16 header", "dc 00 04 01 01 a1 78 c0", codec.CodeInvalidRequest, "1"},
		{"result with nil msgid", "94 01 c0 c0 01", codec.CodeInvalidRequest, "null"},
		{"string error with nil msgid", "94 01 c0 a1 78 c0", codec.CodeInvalidRequest, "null"},
		{"msgid string", "94 01 a1 31 c0 01", codec.CodeInvalidRequest, ""},
		{"msgid float", "94 01 cb 3f f0 00 00 00 00 00 00 c0 01", codec.CodeInvalidRequest, ""},
		{"msgid beyond int64", "94 01 cf 80 00 00 00 00 00 00 00 c0 01", codec.CodeInvalidRequest, ""},
		{"error is an integer", "94 01 01 05 c0", codec.CodeInvalidRequest, "1"},
		{"error without code", "94 01 01 81 " + msg + " c0", codec.CodeInvalidRequest, "1"},
		{"error without message", "94 01 01 81 " + code1 + " c0", codec.CodeInvalidRequest, "1"},
		{"error code string", "94 01 01 82 a4 63 6f 64 65 a1 31 " + msg + " c0", codec.CodeInvalidRequest, "1"},
		{"error code float", "94 01 01 82 a4 63 6f 64 65 ca 00 00 00 00 " + msg + " c0", codec.CodeInvalidRequest, "1"},
		{"error message int", "94 01 01 82 " + code1 + " a7 6d 65 73 73 61 67 65 01 c0", codec.CodeInvalidRequest, "1"},
		{"error data int", "94 01 01 83 " + code1 + " " + msg + " a4 64 61 74 61 01 c0", codec.CodeInvalidRequest, "1"},
		{"error and result", "94 01 01 82 " + code1 + " " + msg + " 01", codec.CodeInvalidRequest, "1"},
		{"truncated", "94 01 01 c0", codec.CodeParseError, "1"},
		{"trailing bytes", "94 01 01 c0 c0 00", codec.CodeParseError, "1"},
		{"two responses in one frame", "94 01 01 c0 c0 94 01 02 c0 c0", codec.CodeParseError, "1"},
		{"count beyond the frame", "dd ff ff ff ff 01 01", codec.CodeParseError, "1"},
		{"0xc1 in the result", "94 01 01 c0 c1", codec.CodeParseError, "1"},
		{"extension in the error", "94 01 01 d4 01 00 c0", codec.CodeParseError, "1"},
		{"msgid truncated", "94 01 cd 01", codec.CodeParseError, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			msgs, batch, err := c.Decode(nil, unhex(t, tc.frame))
			if err != nil || len(msgs) != 1 || batch {
				t.Fatalf("Decode = %d messages, %v; want one message", len(msgs), err)
			}
			m := msgs[0]
			if m.Kind != codec.KindInvalidReply || m.Error == nil || m.Error.Code != tc.code || m.Error.Data == "" {
				t.Fatalf("got %v %+v, want an invalid reply with code %d and a detail", m.Kind, m.Error, tc.code)
			}
			got := m.ID.String() // "" for none, "null"
			if m.ID.Kind == codec.IDNumber {
				got = strconv.FormatInt(m.ID.Num, 10)
			}
			if got != tc.id {
				t.Errorf("msgid %q, want %q", got, tc.id)
			}
		})
	}
}

func TestDecodeAccepts(t *testing.T) {
	c := New(chat.Table)
	for _, tc := range []struct {
		name, frame string
		kind        codec.Kind
	}{
		{"method as str8", "94 00 01 d9 09 63 68 61 74 2e 70 69 6e 67 90", codec.KindRequest},
		{"type as uint8", "94 cc 00 01 a1 6d 90", codec.KindRequest},
		{"error with nil data and extra keys", "94 01 01 84 a4 63 6f 64 65 01 a7 6d 65 73 73 61 67 65 a1 78 a4 64 61 74 61 c0 01 91 c0 c0", codec.KindError},
		{"error with a non-string key", "94 01 01 83 01 02 a4 63 6f 64 65 01 a7 6d 65 73 73 61 67 65 a1 78 c0", codec.KindError},
		{"result that is an array", "94 01 01 c0 92 01 02", codec.KindResult},
		{"notification", "93 02 a1 6d 91 80", codec.KindNotification},
	} {
		m := decodeOne(t, c, unhex(t, tc.frame))
		if m.Kind != tc.kind {
			t.Errorf("%s: kind %v, want %v", tc.name, m.Kind, tc.kind)
		}
	}
	m := decodeOne(t, c, unhex(t, "94 00 01 d9 09 63 68 61 74 2e 70 69 6e 67 90"))
	if m.Method != chat.MethodPing {
		t.Errorf("method %q", m.Method)
	}
	m = decodeOne(t, New(nil), unhex(t, "93 02 a3 61 2e 62 90"))
	if m.Method != "a.b" {
		t.Errorf("unknown method with nil table: %q", m.Method)
	}
}

// TestHostileBounded decodes the inputs that kill a naive decoder and checks
// that each is refused with little memory.
func TestHostileBounded(t *testing.T) {
	c := New(chat.Table)
	deep := bytes.Repeat([]byte{0x91}, 5<<20)
	deepMaps := bytes.Repeat([]byte{0x81, 0xa1, 0x61}, 1<<20)
	for _, tc := range []struct {
		name  string
		frame []byte
	}{
		{"array32", unhex(t, "dd ff ff ff ff")},
		{"map32", unhex(t, "df ff ff ff ff")},
		{"str32", unhex(t, "db ff ff ff ff")},
		{"bin32", unhex(t, "c6 ff ff ff ff")},
		{"array32 in params", unhex(t, "94 00 01 a9 63 68 61 74 2e 70 69 6e 67 dd ff ff ff ff")},
		{"5 MB of 0x91", deep},
		{"nested maps", deepMaps},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var before, after runtimeStats
			before.read()
			_, _, err := c.Decode(nil, tc.frame)
			after.read()
			if err == nil {
				t.Fatal("accepted")
			}
			if grew := after.total - before.total; grew > 64<<10 {
				t.Fatalf("Decode allocated %d bytes", grew)
			}
			before.read()
			var v any
			err = c.Unmarshal(tc.frame, &v)
			after.read()
			if err == nil {
				t.Fatal("Unmarshal accepted")
			}
			if grew := after.total - before.total; grew > 64<<10 {
				t.Fatalf("Unmarshal allocated %d bytes", grew)
			}
		})
	}
}

// TestDecodeAllocs: decoding a request allocates nothing; encoding the reply
// allocates nothing either (its encoder is pooled; the race detector makes
// sync.Pool drop items, so that part is skipped under -race).
func TestDecodeAllocs(t *testing.T) {
	c := New(chat.Table)
	msgs := make([]codec.Message, 0, 1)
	if n := testing.AllocsPerRun(100, func() { msgs, _, _ = c.Decode(msgs[:0], pingFrame) }); n != 0 {
		t.Errorf("Decode: %v allocs", n)
	}
	if raceEnabled {
		t.Skip("sync.Pool drops items under the race detector")
	}
	res := &chat.PingResult{Status: "ok", Timestamp: 1764000000}
	buf := make([]byte, 0, 256)
	if n := testing.AllocsPerRun(100, func() {
		msgs, _, _ = c.Decode(msgs[:0], pingFrame)
		buf, _ = codec.AppendResult(c, buf[:0], msgs[0].ID, res)
	}); n != 0 {
		t.Errorf("Decode+AppendResult: %v allocs", n)
	}
}

// normalize turns the library's int8...uint64 into int64 (uint64 above
// MaxInt64 stays) and float32 into float64, recursively.
func normalize(v any) any {
	switch x := v.(type) {
	case int8, int16, int32, int64, uint8, uint16, uint32:
		return reflect.ValueOf(x).Convert(reflect.TypeOf(int64(0))).Interface()
	case uint64:
		if x <= math.MaxInt64 {
			return int64(x)
		}
		return x
	case []any:
		for i := range x {
			x[i] = normalize(x[i])
		}
	case map[string]any:
		for k := range x {
			x[k] = normalize(x[k])
		}
	}
	return v
}

// TestCrossLibrary reads what we encode with the msgpack library, and
// decodes what the library encodes.
func TestCrossLibrary(t *testing.T) {
	c := New(chat.Table)
	for _, tc := range []struct {
		msg  codec.Message
		body any
		want []any
	}{
		{codec.Message{Kind: codec.KindRequest, ID: codec.NumberID(1), Method: chat.MethodPing}, nil,
			[]any{int64(0), int64(1), "chat.ping", []any{}}},
		{codec.Message{Kind: codec.KindRequest, ID: codec.NumberID(300), Method: chat.MethodSend}, &chat.SendParams{Room: "r", Message: "m"},
			[]any{int64(0), int64(300), "chat.send", []any{map[string]any{"room": "r", "message": "m"}}}},
		{codec.Message{Kind: codec.KindNotification, Method: chat.PushMessage}, &chat.Message{From: "a", Message: "m", TS: -5},
			[]any{int64(2), "chat.message", []any{map[string]any{"from": "a", "message": "m", "ts": int64(-5)}}}},
		{codec.Message{Kind: codec.KindResult, ID: codec.NumberID(-7)}, &chat.SendResult{Room: "r", Offset: 1 << 40},
			[]any{int64(1), int64(-7), nil, map[string]any{"room": "r", "offset": int64(1 << 40), "epoch": ""}}},
		{codec.Message{Kind: codec.KindResult, ID: codec.NumberID(2)}, nil, []any{int64(1), int64(2), nil, nil}},
		{codec.Message{Kind: codec.KindError, ID: codec.NullID, Error: &codec.Error{Code: -32700, Message: "Parse error", Data: "d"}}, nil,
			[]any{int64(1), nil, map[string]any{"code": int64(-32700), "message": "Parse error", "data": "d"}, nil}},
	} {
		out, err := c.Append(nil, tc.msg, tc.body)
		if err != nil {
			t.Fatal(err)
		}
		var got []any
		if err := msgpack.Unmarshal(out, &got); err != nil {
			t.Fatalf("library cannot read % x: %v", out, err)
		}
		if normalize(got); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("library reads %#v, want %#v", got, tc.want)
		}
	}
	// The other way: frames the library builds.
	frame := libEncode(t, []any{0, uint32(7), "chat.send", []any{map[string]any{"room": "r", "message": "m"}}})
	m := decodeOne(t, c, frame)
	var p chat.SendParams
	if err := c.Unmarshal(m.Body, &p); err != nil || p != (chat.SendParams{Room: "r", Message: "m"}) || m.ID.Num != 7 {
		t.Fatalf("%+v %+v %v", m, p, err)
	}
	frame = libEncode(t, []any{1, 7, nil, &chat.JoinResult{Room: "r", Members: []string{"a"}, Offset: 2}})
	var r chat.JoinResult
	if err := c.Unmarshal(decodeOne(t, c, frame).Body, &r); err != nil || r.Offset != 2 || r.Members[0] != "a" {
		t.Fatalf("%+v %v", r, err)
	}
}

// TestCanonical checks that the hand-written envelope helpers produce what
// the library produces with compact ints: the smallest forms.
func TestCanonical(t *testing.T) {
	ints := []int64{0, 1, 31, 32, 127, 128, 255, 256, 65535, 65536, math.MaxUint32, math.MaxUint32 + 1, math.MaxInt64,
		-1, -31, -32, -33, -127, -128, -129, -32768, -32769, math.MinInt32, math.MinInt32 - 1, math.MinInt64}
	for _, n := range ints {
		if got, want := appendInt(nil, n), libEncode(t, n); !bytes.Equal(got, want) {
			t.Errorf("int %d: % x, library % x", n, got, want)
		}
		if v, ok := intValue(appendInt(nil, n)); !ok || v != n {
			t.Errorf("int %d reads back as %d", n, v)
		}
	}
	for _, n := range []int{0, 1, 31, 32, 255, 256, 65535, 65536} {
		s := strings.Repeat("x", n)
		if got, want := appendStr(nil, s), libEncode(t, s); !bytes.Equal(got, want) {
			t.Errorf("str of %d: % x, library % x", n, got[:min(len(got), 6)], want[:min(len(want), 6)])
		}
	}
}

// TestChatTypesAreMaps guards against the library encoding a chat type by
// an encoding.BinaryMarshaler (the binary-raw layout) instead of as a map,
// and round-trips a zero value of every params and result type.
func TestChatTypesAreMaps(t *testing.T) {
	c := New(chat.Table)
	for _, e := range chat.Entries {
		for _, mk := range []func() any{e.NewParams, e.NewResult} {
			if mk == nil {
				continue
			}
			v := mk()
			out, err := codec.AppendResult(c, nil, codec.NumberID(1), v)
			if err != nil {
				t.Fatal(err)
			}
			body := decodeOne(t, c, out).Body
			if typ, _, _, _ := head(body, 0); typ != tMap {
				t.Errorf("%s: %T encodes as % x, not a map", e.Name, v, body)
			}
			got := mk()
			if err := c.Unmarshal(body, got); err != nil || !reflect.DeepEqual(got, v) {
				t.Errorf("%s: %T round trip: %+v %v", e.Name, v, got, err)
			}
		}
	}
}

func TestScanDepth(t *testing.T) {
	nest := func(n int) []byte { return append(bytes.Repeat([]byte{0x91}, n), 0x90) }
	if err := scan(nest(MaxDepth - 1)); err != nil {
		t.Errorf("depth %d refused: %v", MaxDepth, err)
	}
	if err := scan(nest(MaxDepth)); err == nil {
		t.Errorf("depth %d accepted", MaxDepth+1)
	}
	// Siblings do not add depth.
	wide := append([]byte{0xdc, 0x01, 0x00}, bytes.Repeat(nest(MaxDepth-2), 256)...)
	if err := scan(wide); err != nil {
		t.Errorf("wide frame refused: %v", err)
	}
	if end := skip(wide, 0); end != len(wide) {
		t.Errorf("skip ends at %d of %d", end, len(wide))
	}
}

type runtimeStats struct{ total uint64 }

func (s *runtimeStats) read() {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	s.total = m.TotalAlloc
}

// TestHostileFiles decodes every testdata/hostile/msgpack file: each must be
// refused, with -32600 when its comment says so and -32700 otherwise, and
// as an invalid reply, not an error, when its comment says "never
// answered".
func TestHostileFiles(t *testing.T) {
	paths, err := filepath.Glob("../../testdata/hostile/msgpack/*.hex")
	if err != nil || len(paths) == 0 {
		t.Fatalf("no hostile files: %v", err)
	}
	c := New(chat.Table)
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		var hexText strings.Builder
		want, reply := int64(codec.CodeParseError), false
		for _, line := range strings.Split(string(data), "\n") {
			if strings.HasPrefix(strings.TrimSpace(line), "#") {
				if strings.Contains(line, "(-32600)") {
					want = codec.CodeInvalidRequest
				}
				reply = reply || strings.Contains(line, "never answered")
				continue
			}
			hexText.WriteString(line)
		}
		msgs, _, err := c.Decode(nil, unhex(t, hexText.String()))
		if reply {
			if err != nil || len(msgs) != 1 || msgs[0].Kind != codec.KindInvalidReply || msgs[0].Error.Code != want {
				t.Errorf("%s: got %v %+v, want an invalid reply with code %d", filepath.Base(p), err, msgs, want)
			}
			continue
		}
		var e *codec.Error
		if !errors.As(err, &e) || e.Code != want {
			t.Errorf("%s: got %v, want code %d", filepath.Base(p), err, want)
		}
	}
}

// plainMessage has chat.Message's fields and tags but not its
// EncodeMsgpack, so the library encodes it by reflection.
type plainMessage chat.Message

// TestMessageEncodeMsgpack holds chat.Message's hand-written map to the
// reflection path's bytes, for every combination of optional fields.
func TestMessageEncodeMsgpack(t *testing.T) {
	for mask := range 8 {
		for _, ts := range []int64{0, 1, -1, 1764000000123} {
			m := chat.Message{From: "alice", Message: "hi", TS: ts}
			if mask&1 != 0 {
				m.Room = "lobby"
			}
			if mask&2 != 0 {
				m.To = "bob"
			}
			if mask&4 != 0 {
				m.Offset = 70000
			}
			got, want := libEncode(t, &m), libEncode(t, plainMessage(m))
			if !bytes.Equal(got, want) {
				t.Errorf("%+v:\n got % x\nwant % x", m, got, want)
			}
		}
	}
}
