package chat

import (
	"bytes"
	"encoding"
	"errors"
	"math"
	"reflect"
	"runtime"
	"strings"
	"testing"

	"github.com/subgate/subgate/internal/golden"
	"github.com/subgate/subgate/internal/wire"
)

// binaryType is what every params, result and push type is.
type binaryType interface {
	encoding.BinaryAppender
	encoding.BinaryUnmarshaler
}

// Both T and *T must be appenders, so callers may pass either.
var (
	_ encoding.BinaryAppender = Message{}
	_ binaryType              = (*Message)(nil)
	_ encoding.BinaryAppender = HistoryEntry{}
	_ binaryType              = (*HistoryEntry)(nil)
	_ encoding.BinaryAppender = MethodInfo{}
	_ binaryType              = (*MethodInfo)(nil)
)

// unhex turns "94 00 01" into bytes.
var unhex = golden.MustHex

// newOfSame returns a pointer to a new zero value of v's type.
func newOfSame(v any) binaryType {
	return reflect.New(reflect.TypeOf(v).Elem()).Interface().(binaryType)
}

const ts = 1764000000123

// epoch is the stream epoch of the examples.
const epoch = "9c4e1f0a7b2d8e35"

// specPayloads are the payloads of the examples of protocols/binary-raw.md
// §8 and §9 (the frames without their envelope).
var specPayloads = []struct {
	name string
	v    binaryType
	hex  string
}{
	{"ping params", &PingParams{}, ""},
	{"ping result", &PingResult{Status: "ok", Timestamp: 1764000000}, "02 6f 6b 80 84 a4 92 0d"},
	{"broadcast params", &BroadcastParams{Message: "hello"}, "05 68 65 6c 6c 6f"},
	{"broadcast result", &BroadcastResult{Status: "ok", Delivered: 3}, "02 6f 6b 03"},
	{"join params", &JoinParams{Room: "lobby"}, "05 6c 6f 62 62 79"},
	{"join result", &JoinResult{Room: "lobby", Members: []string{"alice", "bob"}, Offset: 41, Epoch: epoch}, "05 6c 6f 62 62 79 02 05 61 6c 69 63 65 03 62 6f 62 29 10 39 63 34 65 31 66 30 61 37 62 32 64 38 65 33 35"},
	{"leave params", &LeaveParams{Room: "lobby"}, "05 6c 6f 62 62 79"},
	{"leave result", &LeaveResult{Room: "lobby"}, "05 6c 6f 62 62 79"},
	{"send params", &SendParams{Room: "lobby", Message: "hi all"}, "05 6c 6f 62 62 79 06 68 69 20 61 6c 6c"},
	{"send result", &SendResult{Room: "lobby", Offset: 42, Epoch: epoch}, "05 6c 6f 62 62 79 2a 10 39 63 34 65 31 66 30 61 37 62 32 64 38 65 33 35"},
	{"direct params", &DirectParams{To: "bob", Message: "psst"}, "03 62 6f 62 04 70 73 73 74"},
	{"direct result", &DirectResult{Delivered: 2}, "02"},
	{"members params", &MembersParams{Room: "lobby"}, "05 6c 6f 62 62 79"},
	{"members result", &MembersResult{Room: "lobby", Members: []string{"alice", "bob"}}, "05 6c 6f 62 62 79 02 05 61 6c 69 63 65 03 62 6f 62"},
	{"history params", &HistoryParams{Room: "lobby", Since: 40, Limit: 2, Epoch: epoch}, "05 6c 6f 62 62 79 28 02 10 39 63 34 65 31 66 30 61 37 62 32 64 38 65 33 35"},
	{"history params defaults", &HistoryParams{Room: "lobby"}, "05 6c 6f 62 62 79 00 00 00"},
	{"history result", &HistoryResult{Room: "lobby", Messages: []HistoryEntry{
		{Offset: 41, From: "alice", Message: "first", TS: ts}, {Offset: 42, From: "bob", Message: "second", TS: ts + 1}}, Epoch: epoch, Recovered: true},
		"05 6c 6f 62 62 79 02 29 05 61 6c 69 63 65 05 66 69 72 73 74 f6 a1 bf e9 d6 66 2a 03 62 6f 62 06 73 65 63 6f 6e 64 f8 a1 bf e9 d6 66 10 39 63 34 65 31 66 30 61 37 62 32 64 38 65 33 35 01"},
	{"discover params", &DiscoverParams{}, ""},
	{"discover result", &DiscoverResult{Methods: []MethodInfo{
		{Name: MethodPing, ID: 0x10, Params: "{}", Result: "{status:string, timestamp:int}"},
		{Name: PushPresence, ID: 0x21, Push: true, Params: "{room:string, client_id:string, event:string}"}}},
		"02 09 63 68 61 74 2e 70 69 6e 67 10 00 02 7b 7d 1e 7b 73 74 61 74 75 73 3a 73 74 72 69 6e 67 2c 20 74 69 6d 65 73 74 61 6d 70 3a 69 6e 74 7d " +
			"0d 63 68 61 74 2e 70 72 65 73 65 6e 63 65 21 01 2d 7b 72 6f 6f 6d 3a 73 74 72 69 6e 67 2c 20 63 6c 69 65 6e 74 5f 69 64 3a 73 74 72 69 6e 67 2c 20 65 76 65 6e 74 3a 73 74 72 69 6e 67 7d 00"},
	{"message from broadcast", &Message{From: "alice", Message: "hello", TS: ts}, "00 05 61 6c 69 63 65 05 68 65 6c 6c 6f f6 a1 bf e9 d6 66"},
	{"message from send", &Message{Room: "lobby", From: "alice", Message: "hi all", Offset: 42, Epoch: epoch, TS: ts},
		"0d 05 61 6c 69 63 65 06 68 69 20 61 6c 6c f6 a1 bf e9 d6 66 05 6c 6f 62 62 79 2a 10 39 63 34 65 31 66 30 61 37 62 32 64 38 65 33 35"},
	{"message from direct", &Message{From: "alice", To: "bob", Message: "psst", TS: ts}, "02 05 61 6c 69 63 65 04 70 73 73 74 f6 a1 bf e9 d6 66 03 62 6f 62"},
	{"presence join", &Presence{Room: "lobby", ClientID: "bob", Event: EventJoin}, "05 6c 6f 62 62 79 03 62 6f 62 01"},
	{"presence leave", &Presence{Room: "lobby", ClientID: "bob", Event: EventLeave}, "05 6c 6f 62 62 79 03 62 6f 62 02"},
	{"notice", &Notice{Kind: NoticeDraining, Message: "server shutting down"},
		"08 64 72 61 69 6e 69 6e 67 14 73 65 72 76 65 72 20 73 68 75 74 74 69 6e 67 20 64 6f 77 6e"},
}

// edgeValues stress the primitives: empty and non-ASCII strings, extreme
// numbers, every flag combination.
var edgeValues = []binaryType{
	&PingResult{},
	&PingResult{Status: "ok", Timestamp: math.MinInt64},
	&PingResult{Status: "ok", Timestamp: math.MaxInt64},
	&PingResult{Status: "ok", Timestamp: -1},
	&BroadcastParams{Message: "héllo wörld ✓ 🎉 \x00"},
	&BroadcastResult{Delivered: math.MaxUint64},
	&JoinResult{Room: "r", Offset: 1 << 63, Epoch: "e"},
	&JoinResult{Room: "r", Members: []string{"", strings.Repeat("m", 300)}},
	&MembersResult{},
	&HistoryParams{Room: "r", Since: math.MaxUint64, Limit: 1000, Epoch: strings.Repeat("z", MaxEpochLen+1)},
	&HistoryResult{Room: "r"},
	&HistoryResult{Room: "r", Epoch: "-_", Recovered: true},
	&HistoryResult{Messages: []HistoryEntry{{}}},
	&HistoryEntry{Offset: 7, From: "a", Message: "b", TS: -5},
	&DiscoverResult{},
	&DiscoverResult{Methods: []MethodInfo{{}}},
	&MethodInfo{Name: "x", ID: math.MaxUint64, Push: true, Params: "p"},
	&Message{},
	&Message{Room: "r"},
	&Message{To: "t"},
	&Message{Offset: 1, Epoch: "e"},
	&Message{Room: "r", To: "t", Offset: math.MaxUint64, Epoch: "é", TS: math.MinInt64},
	&Notice{},
}

// allValues is every value the tests round-trip.
func allValues() []binaryType {
	vs := make([]binaryType, 0, len(specPayloads)+len(edgeValues))
	for _, s := range specPayloads {
		vs = append(vs, s.v)
	}
	return append(vs, edgeValues...)
}

func encode(t testing.TB, v binaryType) []byte {
	t.Helper()
	b, err := v.AppendBinary(nil)
	if err != nil {
		t.Fatalf("%T.AppendBinary: %v", v, err)
	}
	return b
}

func TestSpecPayloads(t *testing.T) {
	for _, tc := range specPayloads {
		want := unhex(t, tc.hex)
		if got := encode(t, tc.v); !bytes.Equal(got, want) {
			t.Errorf("%s: AppendBinary = % x, want % x", tc.name, got, want)
		}
		got := newOfSame(tc.v)
		if err := got.UnmarshalBinary(want); err != nil {
			t.Errorf("%s: UnmarshalBinary: %v", tc.name, err)
		} else if !reflect.DeepEqual(got, tc.v) {
			t.Errorf("%s: UnmarshalBinary = %+v, want %+v", tc.name, got, tc.v)
		}
	}
}

func TestRoundTrip(t *testing.T) {
	for _, v := range allValues() {
		b := encode(t, v)
		got := newOfSame(v)
		if err := got.UnmarshalBinary(b); err != nil {
			t.Errorf("%T %+v: UnmarshalBinary(% x): %v", v, v, b, err)
			continue
		}
		if !reflect.DeepEqual(got, v) {
			t.Errorf("%T: round trip = %+v, want %+v", v, got, v)
		}
		// Appending after existing bytes must not disturb them.
		prefixed, err := v.AppendBinary([]byte("pre"))
		if err != nil || string(prefixed) != "pre"+string(b) {
			t.Errorf("%T: AppendBinary after a prefix = %q, %v", v, prefixed, err)
		}
	}
}

// Every entry of the method table has params and results that speak binary.
func TestEntriesImplementBinary(t *testing.T) {
	for _, e := range Entries {
		for _, v := range []any{e.NewParams(), newOrNil(e.NewResult)} {
			if v == nil {
				continue
			}
			if _, ok := v.(binaryType); !ok {
				t.Errorf("%s: %T does not implement BinaryAppender and BinaryUnmarshaler", e.Name, v)
			}
			// Values, not only pointers, must be appenders.
			if _, ok := reflect.ValueOf(v).Elem().Interface().(encoding.BinaryAppender); !ok {
				t.Errorf("%s: %T value is not a BinaryAppender", e.Name, v)
			}
		}
	}
}

func newOrNil(f func() any) any {
	if f == nil {
		return nil
	}
	return f()
}

func TestTruncation(t *testing.T) {
	for _, v := range allValues() {
		b := encode(t, v)
		for i := range len(b) {
			got := newOfSame(v)
			err := got.UnmarshalBinary(b[:i])
			if err == nil {
				t.Errorf("%T: UnmarshalBinary(% x) (truncated at %d) succeeded: %+v", v, b[:i], i, got)
				continue
			}
			var we *wire.Error
			if !errors.As(err, &we) {
				t.Errorf("%T: error %v is not a *wire.Error", v, err)
			}
		}
	}
}

func TestTrailingByte(t *testing.T) {
	for _, v := range allValues() {
		b := append(encode(t, v), 0)
		err := newOfSame(v).UnmarshalBinary(b)
		if !errors.Is(err, wire.ErrTrailing) {
			t.Errorf("%T: UnmarshalBinary(% x) = %v, want ErrTrailing", v, b, err)
		}
	}
}

// A failed UnmarshalBinary leaves its receiver as it was.
func TestUnmarshalFailureKeepsReceiver(t *testing.T) {
	p := SendParams{Room: "keep", Message: "me"}
	if err := p.UnmarshalBinary(unhex(t, "03 61 62 63 05 78")); err == nil {
		t.Fatal("truncated SendParams decoded")
	}
	if p != (SendParams{Room: "keep", Message: "me"}) {
		t.Errorf("receiver changed to %+v", p)
	}
}

func TestInvalid(t *testing.T) {
	tests := []struct {
		name string
		v    binaryType
		hex  string
		want error
	}{
		{"ping params not empty", &PingParams{}, "00", wire.ErrTrailing},
		{"discover params not empty", &DiscoverParams{}, "01", wire.ErrTrailing},
		{"invalid UTF-8", &JoinParams{}, "02 c3 28", wire.ErrUTF8},
		{"surrogate", &JoinParams{}, "03 ed a0 80", wire.ErrUTF8},
		{"overlong UTF-8", &JoinParams{}, "02 c0 80", wire.ErrUTF8},
		{"invalid UTF-8 in a list", &MembersResult{}, "01 72 01 01 ff", wire.ErrUTF8},
		{"string past the end", &JoinParams{}, "06 6c 6f 62 62 79", wire.ErrLength},
		{"non-minimal varint", &DirectResult{}, "82 00", wire.ErrVarint},
		{"varint over 64 bits", &DirectResult{}, "ff ff ff ff ff ff ff ff ff 02", wire.ErrVarint},
		{"varint of 11 bytes", &DirectResult{}, "80 80 80 80 80 80 80 80 80 80 01", wire.ErrVarint},
		{"count past the end", &MembersResult{}, "01 72 03 00 00", wire.ErrLength},
		{"entries past the end", &HistoryResult{}, "00 02 01 00 00 00", wire.ErrLength},
		{"bool 2", &MethodInfo{}, "01 78 01 02 00 00", wire.ErrBool},
		{"bool ff", &DiscoverResult{}, "01 01 78 01 ff 00 00", wire.ErrBool},
		{"message reserved flag", &Message{}, "10 00 00 00", errFlags},
		{"message reserved flag 7", &Message{}, "80 00 00 00", errFlags},
		{"message room flag, empty room", &Message{}, "01 00 00 00 00", errEmpty},
		{"message to flag, empty to", &Message{}, "02 00 00 00 00", errEmpty},
		{"message offset flag, offset 0", &Message{}, "0c 00 00 00 00 01 65", errEmpty},
		{"message epoch flag, empty epoch", &Message{}, "0c 00 00 00 01 00", errEmpty},
		{"message offset flag without epoch flag", &Message{}, "04 00 00 00 01", errEpoch},
		{"message epoch flag without offset flag", &Message{}, "08 00 00 00 01 65", errEpoch},
		{"message epoch missing", &Message{}, "0c 00 00 00 01", wire.ErrTruncated},
		{"history result recovered 2", &HistoryResult{}, "00 00 00 02", wire.ErrBool},
		{"history result recovered missing", &HistoryResult{}, "00 00 00", wire.ErrTruncated},
		{"history params epoch missing", &HistoryParams{}, "00 00 00", wire.ErrTruncated},
		{"message room flag, room missing", &Message{}, "01 00 00 00", wire.ErrTruncated},
		{"presence event 0", &Presence{}, "00 00 00", errEvent},
		{"presence event 3", &Presence{}, "00 00 03", errEvent},
		{"presence event missing", &Presence{}, "00 00", wire.ErrTruncated},
	}
	for _, tc := range tests {
		err := tc.v.UnmarshalBinary(unhex(t, tc.hex))
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: %T.UnmarshalBinary(%s) = %v, want %v", tc.name, tc.v, tc.hex, err, tc.want)
		}
	}
}

func TestErrorText(t *testing.T) {
	var p SendParams
	err := p.UnmarshalBinary(unhex(t, "01 61 09 78"))
	if want := "message: length exceeds the bytes left at byte 2"; err == nil || err.Error() != want {
		t.Errorf("error = %v, want %q", err, want)
	}
}

func TestPresenceUnknownEvent(t *testing.T) {
	dst := []byte("keep")
	out, err := Presence{Room: "r", ClientID: "c", Event: "wave"}.AppendBinary(dst)
	if !errors.Is(err, errEvent) || string(out) != "keep" {
		t.Errorf("AppendBinary = %q, %v; want %q, errEvent", out, err, "keep")
	}
}

// A room message has an offset and an epoch or neither: one without the
// other has no encoding.
func TestMessageEpochWithoutOffset(t *testing.T) {
	for _, m := range []Message{{Room: "r", Offset: 1}, {Room: "r", Epoch: "e"}} {
		dst := []byte("keep")
		out, err := m.AppendBinary(dst)
		if !errors.Is(err, errEpoch) || string(out) != "keep" {
			t.Errorf("%+v: AppendBinary = %q, %v; want %q, errEpoch", m, out, err, "keep")
		}
	}
}

// Strings that are not UTF-8 are sent with U+FFFD instead, so the peer can
// decode them.
func TestAppendInvalidUTF8(t *testing.T) {
	b := encode(t, &SendParams{Room: "r\xff", Message: "ok"})
	var p SendParams
	if err := p.UnmarshalBinary(b); err != nil {
		t.Fatal(err)
	}
	if p.Room != "r\uFFFD" || p.Message != "ok" {
		t.Errorf("decoded %+v", p)
	}
}

// Declared lengths and counts far beyond the input fail before anything is
// allocated for them.
func TestHugeDeclarationsDoNotAllocate(t *testing.T) {
	huge := wire.AppendUvarint(nil, 1<<40)
	room := unhex(t, "05 6c 6f 62 62 79")
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	tests := []struct {
		v    binaryType
		data []byte
	}{
		{&JoinParams{}, huge},
		{&JoinResult{}, cat(room, huge)},
		{&MembersResult{}, cat(room, huge, []byte{0, 0, 0})},
		{&HistoryResult{}, cat(room, huge)},
		{&DiscoverResult{}, huge},
		{&Message{}, cat([]byte{0}, huge)},
		{&MembersResult{}, cat(room, wire.AppendUvarint(nil, math.MaxUint64))},
		{&HistoryResult{}, cat(room, wire.AppendUvarint(nil, math.MaxUint64))},
	}
	for _, tc := range tests {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		err := tc.v.UnmarshalBinary(tc.data)
		runtime.ReadMemStats(&after)
		if !errors.Is(err, wire.ErrLength) {
			t.Errorf("%T.UnmarshalBinary(% x) = %v, want ErrLength", tc.v, tc.data, err)
		}
		if d := after.TotalAlloc - before.TotalAlloc; d >= 64<<10 {
			t.Errorf("%T.UnmarshalBinary(% x) allocated %d bytes", tc.v, tc.data, d)
		}
	}
}

// fuzzTypes are the types FuzzUnmarshalBinary decodes into, picked by the
// first input byte.
var fuzzTypes = []func() binaryType{
	func() binaryType { return new(PingParams) },
	func() binaryType { return new(PingResult) },
	func() binaryType { return new(SendParams) },
	func() binaryType { return new(JoinResult) },
	func() binaryType { return new(HistoryParams) },
	func() binaryType { return new(HistoryResult) },
	func() binaryType { return new(DiscoverResult) },
	func() binaryType { return new(Message) },
	func() binaryType { return new(Presence) },
	func() binaryType { return new(Notice) },
}

// FuzzUnmarshalBinary checks that decoding never panics and that the
// encoding is canonical: whatever decodes re-encodes to the same bytes.
func FuzzUnmarshalBinary(f *testing.F) {
	for _, v := range allValues() {
		for i, mk := range fuzzTypes {
			if reflect.TypeOf(mk()) == reflect.TypeOf(v) {
				b, _ := v.AppendBinary(nil)
				f.Add(byte(i), b)
			}
		}
	}
	f.Fuzz(func(t *testing.T, which byte, data []byte) {
		v := fuzzTypes[int(which)%len(fuzzTypes)]()
		if v.UnmarshalBinary(data) != nil {
			return
		}
		b, err := v.AppendBinary(nil)
		if err != nil {
			t.Fatalf("%T %+v: AppendBinary: %v", v, v, err)
		}
		if !bytes.Equal(b, data) {
			t.Fatalf("%T: decoded % x, re-encoded % x", v, data, b)
		}
		again := newOfSame(v)
		if err := again.UnmarshalBinary(b); err != nil || !reflect.DeepEqual(again, v) {
			t.Fatalf("%T: second decode = %+v, %v; want %+v", v, again, err, v)
		}
	})
}

func BenchmarkMessage(b *testing.B) {
	m := &Message{Room: "lobby", From: "alice", Message: "hi all", Offset: 42, TS: ts}
	buf := make([]byte, 0, 128)
	b.ReportAllocs()
	b.Run("append", func(b *testing.B) {
		for b.Loop() {
			buf, _ = m.AppendBinary(buf[:0])
		}
	})
	data, _ := m.AppendBinary(nil)
	b.Run("unmarshal", func(b *testing.B) {
		b.ReportAllocs()
		var got Message
		for b.Loop() {
			if err := got.UnmarshalBinary(data); err != nil {
				b.Fatal(err)
			}
		}
	})
}
