package binraw_test

import (
	"bytes"
	"reflect"
	"testing"

	"github.com/subgate/subgate/codec"
	"github.com/subgate/subgate/protocols/chat"
)

const ts = 1764000000123

var members = []string{"alice", "bob"}

// epoch is the stream epoch of the examples.
const epoch = "9c4e1f0a7b2d8e35"

// specFrames are the complete frames shown in protocols/binary-raw.md, with
// the message and typed body each one stands for.
var specFrames = []struct {
	name       string
	hex        string
	m          codec.Message
	body       any  // pointer to the typed params, result or push; nil: none
	decodeOnly bool // the reference encoder writes another form
}{
	{"ping request", "00 01 10", req(1, chat.MethodPing, ""), &chat.PingParams{}, false},
	{"ping request by name", "08 01 09 63 68 61 74 2e 70 69 6e 67", req(1, chat.MethodPing, ""), &chat.PingParams{}, true},
	{"ping result", "02 01 02 6f 6b 80 84 a4 92 0d", result(1, ""), &chat.PingResult{Status: "ok", Timestamp: 1764000000}, false},
	{"broadcast notification", "01 11 0f 66 69 72 65 20 61 6e 64 20 66 6f 72 67 65 74", note(chat.MethodBroadcast, ""), &chat.BroadcastParams{Message: "fire and forget"}, false},
	{"error", "03 0b b1 fd 03 10 4d 65 74 68 6f 64 20 6e 6f 74 20 66 6f 75 6e 64 63 68 61 74 2e 6e 6f 70 65",
		errMsg(codec.NumberID(11), codec.CodeMethodNotFound, "Method not found", "chat.nope"), nil, false},
	{"null-id error", "13 f7 fe 03 0b 50 61 72 73 65 20 65 72 72 6f 72 72 65 73 65 72 76 65 64 20 74 61 67 20 62 69 74 73 20 73 65 74",
		errMsg(codec.NullID, codec.CodeParseError, "Parse error", "reserved tag bits set"), nil, false},
	{"discover request", "00 0a 01", req(10, chat.MethodDiscover, ""), &chat.DiscoverParams{}, false},
	{"discover result", "02 0a 02 09 63 68 61 74 2e 70 69 6e 67 10 00 02 7b 7d 1e 7b 73 74 61 74 75 73 3a 73 74 72 69 6e 67 2c 20 74 69 6d 65 73 74 61 6d 70 3a 69 6e 74 7d " +
		"0d 63 68 61 74 2e 70 72 65 73 65 6e 63 65 21 01 2d 7b 72 6f 6f 6d 3a 73 74 72 69 6e 67 2c 20 63 6c 69 65 6e 74 5f 69 64 3a 73 74 72 69 6e 67 2c 20 65 76 65 6e 74 3a 73 74 72 69 6e 67 7d 00",
		result(10, ""), &chat.DiscoverResult{Methods: []chat.MethodInfo{
			{Name: chat.MethodPing, ID: 0x10, Params: "{}", Result: "{status:string, timestamp:int}"},
			{Name: chat.PushPresence, ID: 0x21, Push: true, Params: "{room:string, client_id:string, event:string}"}}}, false},
	{"broadcast request", "00 02 11 05 68 65 6c 6c 6f", req(2, chat.MethodBroadcast, ""), &chat.BroadcastParams{Message: "hello"}, false},
	{"broadcast result", "02 02 02 6f 6b 03", result(2, ""), &chat.BroadcastResult{Status: "ok", Delivered: 3}, false},
	{"join request", "00 03 12 05 6c 6f 62 62 79", req(3, chat.MethodJoin, ""), &chat.JoinParams{Room: "lobby"}, false},
	{"join result", "02 03 05 6c 6f 62 62 79 02 05 61 6c 69 63 65 03 62 6f 62 29 10 39 63 34 65 31 66 30 61 37 62 32 64 38 65 33 35", result(3, ""), &chat.JoinResult{Room: "lobby", Members: members, Offset: 41, Epoch: epoch}, false},
	{"leave request", "00 04 13 05 6c 6f 62 62 79", req(4, chat.MethodLeave, ""), &chat.LeaveParams{Room: "lobby"}, false},
	{"leave result", "02 04 05 6c 6f 62 62 79", result(4, ""), &chat.LeaveResult{Room: "lobby"}, false},
	{"send request", "00 05 14 05 6c 6f 62 62 79 06 68 69 20 61 6c 6c", req(5, chat.MethodSend, ""), &chat.SendParams{Room: "lobby", Message: "hi all"}, false},
	{"send result", "02 05 05 6c 6f 62 62 79 2a 10 39 63 34 65 31 66 30 61 37 62 32 64 38 65 33 35", result(5, ""), &chat.SendResult{Room: "lobby", Offset: 42, Epoch: epoch}, false},
	{"direct request", "00 06 15 03 62 6f 62 04 70 73 73 74", req(6, chat.MethodDirect, ""), &chat.DirectParams{To: "bob", Message: "psst"}, false},
	{"direct result", "02 06 02", result(6, ""), &chat.DirectResult{Delivered: 2}, false},
	{"members request", "00 07 16 05 6c 6f 62 62 79", req(7, chat.MethodMembers, ""), &chat.MembersParams{Room: "lobby"}, false},
	{"members result", "02 07 05 6c 6f 62 62 79 02 05 61 6c 69 63 65 03 62 6f 62", result(7, ""), &chat.MembersResult{Room: "lobby", Members: members}, false},
	{"history request", "00 08 17 05 6c 6f 62 62 79 28 02 10 39 63 34 65 31 66 30 61 37 62 32 64 38 65 33 35", req(8, chat.MethodHistory, ""), &chat.HistoryParams{Room: "lobby", Since: 40, Limit: 2, Epoch: epoch}, false},
	{"history request with defaults", "00 09 17 05 6c 6f 62 62 79 00 00 00", req(9, chat.MethodHistory, ""), &chat.HistoryParams{Room: "lobby"}, false},
	{"history result", "02 08 05 6c 6f 62 62 79 02 29 05 61 6c 69 63 65 05 66 69 72 73 74 f6 a1 bf e9 d6 66 2a 03 62 6f 62 06 73 65 63 6f 6e 64 f8 a1 bf e9 d6 66 10 39 63 34 65 31 66 30 61 37 62 32 64 38 65 33 35 01",
		result(8, ""), &chat.HistoryResult{Room: "lobby", Messages: []chat.HistoryEntry{
			{Offset: 41, From: "alice", Message: "first", TS: ts}, {Offset: 42, From: "bob", Message: "second", TS: ts + 1}}, Epoch: epoch, Recovered: true}, false},
	{"message from broadcast", "01 20 00 05 61 6c 69 63 65 05 68 65 6c 6c 6f f6 a1 bf e9 d6 66", note(chat.PushMessage, ""),
		&chat.Message{From: "alice", Message: "hello", TS: ts}, false},
	{"message from send", "01 20 0d 05 61 6c 69 63 65 06 68 69 20 61 6c 6c f6 a1 bf e9 d6 66 05 6c 6f 62 62 79 2a 10 39 63 34 65 31 66 30 61 37 62 32 64 38 65 33 35", note(chat.PushMessage, ""),
		&chat.Message{Room: "lobby", From: "alice", Message: "hi all", Offset: 42, Epoch: epoch, TS: ts}, false},
	{"message from direct", "01 20 02 05 61 6c 69 63 65 04 70 73 73 74 f6 a1 bf e9 d6 66 03 62 6f 62", note(chat.PushMessage, ""),
		&chat.Message{From: "alice", To: "bob", Message: "psst", TS: ts}, false},
	{"presence join", "01 21 05 6c 6f 62 62 79 03 62 6f 62 01", note(chat.PushPresence, ""), &chat.Presence{Room: "lobby", ClientID: "bob", Event: chat.EventJoin}, false},
	{"presence leave", "01 21 05 6c 6f 62 62 79 03 62 6f 62 02", note(chat.PushPresence, ""), &chat.Presence{Room: "lobby", ClientID: "bob", Event: chat.EventLeave}, false},
	{"notice", "01 22 08 64 72 61 69 6e 69 6e 67 14 73 65 72 76 65 72 20 73 68 75 74 74 69 6e 67 20 64 6f 77 6e", note(chat.PushNotice, ""),
		&chat.Notice{Kind: chat.NoticeDraining, Message: "server shutting down"}, false},
	{"unknown method", "00 06 7f", req(6, "#127", ""), nil, true},
	{"method not found", "03 06 b1 fd 03 10 4d 65 74 68 6f 64 20 6e 6f 74 20 66 6f 75 6e 64 23 31 32 37",
		errMsg(codec.NumberID(6), codec.CodeMethodNotFound, "Method not found", "#127"), nil, false},
}

// TestSpecFrames checks every frame of protocols/binary-raw.md both ways:
// it decodes to its message and body, and encoding them gives the frame.
func TestSpecFrames(t *testing.T) {
	for _, tc := range specFrames {
		t.Run(tc.name, func(t *testing.T) {
			frame := unhex(t, tc.hex)
			msgs, batch, err := c.Decode(nil, frame)
			if err != nil || batch || len(msgs) != 1 {
				t.Fatalf("Decode = %+v, %v, %v", msgs, batch, err)
			}
			got := msgs[0]
			want := tc.m
			want.Body = got.Body // compared through the typed body
			if !sameMessage(got, want) {
				t.Errorf("Decode = %+v, want %+v", got, want)
			}
			if tc.body != nil {
				v := reflect.New(reflect.TypeOf(tc.body).Elem()).Interface()
				if err := c.Unmarshal(got.Body, v); err != nil || !reflect.DeepEqual(v, tc.body) {
					t.Errorf("Unmarshal = %+v, %v; want %+v", v, err, tc.body)
				}
			}
			if tc.decodeOnly {
				return
			}
			enc, err := c.Append(nil, tc.m, tc.body)
			if err != nil || !bytes.Equal(enc, frame) {
				t.Errorf("Append = % x, %v; want % x", enc, err, frame)
			}
		})
	}
}

func TestSpecBatches(t *testing.T) {
	ping, _ := codec.AppendRequest(c, nil, codec.NumberID(1), chat.MethodPing, nil)
	bcast, _ := codec.AppendNotification(c, nil, chat.MethodBroadcast, &chat.BroadcastParams{Message: "hi"})
	pong, _ := codec.AppendResult(c, nil, codec.NumberID(1), &chat.PingResult{Status: "ok", Timestamp: 1764000000})
	for _, tc := range []struct {
		items [][]byte
		hex   string
	}{
		{[][]byte{ping, bcast}, "04 02 03 00 01 10 05 01 11 02 68 69"},
		{[][]byte{pong}, "04 01 0a 02 01 02 6f 6b 80 84 a4 92 0d"},
	} {
		got, err := c.AppendBatch(nil, tc.items)
		if want := unhex(t, tc.hex); err != nil || !bytes.Equal(got, want) {
			t.Errorf("AppendBatch = % x, %v; want % x", got, err, want)
		}
	}
	// The reserved-bit frame of the worked example is a parse error.
	if _, _, err := c.Decode(nil, unhex(t, "20 07 10")); err == nil || err.(*codec.Error).Code != codec.CodeParseError {
		t.Errorf("Decode(20 07 10) = %v, want a parse error", err)
	}
}
