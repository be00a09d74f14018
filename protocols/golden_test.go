package protocols

import (
	"bytes"
	"encoding/json"
	"flag"
	"reflect"
	"slices"
	"testing"

	"github.com/sourcegraph/jsonrpc2"
	"github.com/vmihailenco/msgpack/v5"

	"github.com/subgate/subgate/codec"
	"github.com/subgate/subgate/internal/golden"
	"github.com/subgate/subgate/protocols/chat"
)

var update = flag.Bool("update", false, "rewrite testdata/golden from the logical messages")

// vector is one logical message; the golden files hold it in every encoding.
type vector struct {
	name, comment string
	msg           codec.Message // Kind, ID, Method (also set for results: it picks the result type), Error
	body          any           // typed params, result or push payload
	batch         []vector      // a batch of these instead of msg
	skip          []string      // encodings that cannot carry it
}

func req(id int64, method string, params any) codec.Message {
	return codec.Message{Kind: codec.KindRequest, ID: codec.NumberID(id), Method: method}
}

func res(id int64, method string) codec.Message {
	return codec.Message{Kind: codec.KindResult, ID: codec.NumberID(id), Method: method}
}

func push(method string) codec.Message {
	return codec.Message{Kind: codec.KindNotification, Method: method}
}

const ts = 1764000000123 // a fixed Unix time in milliseconds

var members = []string{"alice", "bob"}

// epoch is the stream epoch of the examples (the in-process hub's form:
// 16 hex characters).
const epoch = "9c4e1f0a7b2d8e35"

var vectors = []vector{
	{name: "ping.request", comment: "chat.ping request, id 1", msg: req(1, chat.MethodPing, nil), body: &chat.PingParams{}},
	{name: "ping.result", comment: "chat.ping result for id 1", msg: res(1, chat.MethodPing), body: &chat.PingResult{Status: "ok", Timestamp: 1764000000}},
	{name: "broadcast.request", comment: "chat.broadcast request, id 2", msg: req(2, chat.MethodBroadcast, nil), body: &chat.BroadcastParams{Message: "hello"}},
	{name: "broadcast.result", comment: "chat.broadcast result: queued to 3 connections", msg: res(2, chat.MethodBroadcast), body: &chat.BroadcastResult{Status: "ok", Delivered: 3}},
	{name: "broadcast.notification", comment: "chat.broadcast sent as a notification (no reply)", msg: push(chat.MethodBroadcast), body: &chat.BroadcastParams{Message: "fire and forget"}},
	{name: "join.request", comment: "chat.join request, id 3", msg: req(3, chat.MethodJoin, nil), body: &chat.JoinParams{Room: "lobby"}},
	{name: "join.result", comment: "chat.join result", msg: res(3, chat.MethodJoin), body: &chat.JoinResult{Room: "lobby", Members: members, Offset: 41, Epoch: epoch}},
	{name: "leave.request", comment: "chat.leave request, id 4", msg: req(4, chat.MethodLeave, nil), body: &chat.LeaveParams{Room: "lobby"}},
	{name: "leave.result", comment: "chat.leave result", msg: res(4, chat.MethodLeave), body: &chat.LeaveResult{Room: "lobby"}},
	{name: "send.request", comment: "chat.send request, id 5", msg: req(5, chat.MethodSend, nil), body: &chat.SendParams{Room: "lobby", Message: "hi all"}},
	{name: "send.result", comment: "chat.send result: the message got offset 42", msg: res(5, chat.MethodSend), body: &chat.SendResult{Room: "lobby", Offset: 42, Epoch: epoch}},
	{name: "direct.request", comment: "chat.direct request, id 6", msg: req(6, chat.MethodDirect, nil), body: &chat.DirectParams{To: "bob", Message: "psst"}},
	{name: "direct.result", comment: "chat.direct result: bob has 2 connections", msg: res(6, chat.MethodDirect), body: &chat.DirectResult{Delivered: 2}},
	{name: "members.request", comment: "chat.members request, id 7", msg: req(7, chat.MethodMembers, nil), body: &chat.MembersParams{Room: "lobby"}},
	{name: "members.result", comment: "chat.members result", msg: res(7, chat.MethodMembers), body: &chat.MembersResult{Room: "lobby", Members: members}},
	{name: "history.request", comment: "chat.history request, id 8: messages after offset 40 of epoch 9c4e1f0a7b2d8e35, at most 2", msg: req(8, chat.MethodHistory, nil), body: &chat.HistoryParams{Room: "lobby", Since: 40, Limit: 2, Epoch: epoch}},
	{name: "history.request-defaults", comment: "chat.history request, id 9, without since, limit and epoch", msg: req(9, chat.MethodHistory, nil), body: &chat.HistoryParams{Room: "lobby"}},
	{name: "history.result", comment: "chat.history result: recovered, the messages continue after offset 40", msg: res(8, chat.MethodHistory), body: &chat.HistoryResult{Room: "lobby", Messages: []chat.HistoryEntry{
		{Offset: 41, From: "alice", Message: "first", TS: ts}, {Offset: 42, From: "bob", Message: "second", TS: ts + 1}}, Epoch: epoch, Recovered: true}},
	{name: "history.result-not-recovered", comment: "chat.history result to id 9: not recovered (the epoch changed, or the messages after since were evicted)", msg: res(9, chat.MethodHistory), body: &chat.HistoryResult{Room: "lobby", Messages: []chat.HistoryEntry{
		{Offset: 3, From: "bob", Message: "third", TS: ts + 2}}, Epoch: "r2", Recovered: false}},
	{name: "discover.request", comment: "rpc.discover request, id 10", msg: req(10, chat.MethodDiscover, nil), body: &chat.DiscoverParams{}},
	{name: "discover.result", comment: "rpc.discover result (shortened to two entries)", msg: res(10, chat.MethodDiscover), body: &chat.DiscoverResult{Methods: []chat.MethodInfo{
		{Name: chat.MethodPing, ID: 0x10, Params: "{}", Result: "{status:string, timestamp:int}"},
		{Name: chat.PushPresence, ID: 0x21, Push: true, Params: "{room:string, client_id:string, event:string}"}}}},
	{name: "message.broadcast", comment: "chat.message push from chat.broadcast", msg: push(chat.PushMessage), body: &chat.Message{From: "alice", Message: "hello", TS: ts}},
	{name: "message.room", comment: "chat.message push from chat.send", msg: push(chat.PushMessage), body: &chat.Message{Room: "lobby", From: "alice", Message: "hi all", Offset: 42, Epoch: epoch, TS: ts}},
	{name: "message.direct", comment: "chat.message push from chat.direct", msg: push(chat.PushMessage), body: &chat.Message{From: "alice", To: "bob", Message: "psst", TS: ts}},
	{name: "presence.join", comment: "chat.presence push: bob joined", msg: push(chat.PushPresence), body: &chat.Presence{Room: "lobby", ClientID: "bob", Event: chat.EventJoin}},
	{name: "presence.leave", comment: "chat.presence push: bob left", msg: push(chat.PushPresence), body: &chat.Presence{Room: "lobby", ClientID: "bob", Event: chat.EventLeave}},
	{name: "notice.draining", comment: "gateway.notice push before shutdown", msg: push(chat.PushNotice), body: &chat.Notice{Kind: chat.NoticeDraining, Message: "server shutting down"}},
	{name: "error.method-not-found", comment: "error reply to id 11: unknown method", msg: codec.Message{Kind: codec.KindError, ID: codec.NumberID(11), Error: &codec.Error{Code: codec.CodeMethodNotFound, Message: "Method not found", Data: "chat.nope"}}},
	{name: "error.not-member", comment: "error reply to id 12: chat.send to a room not joined", msg: codec.Message{Kind: codec.KindError, ID: codec.NumberID(12), Error: chat.NewError(chat.CodeNotMember, "")}},
	{name: "error.null-id", comment: "error reply with null id to a frame that is not a valid request", msg: codec.Message{Kind: codec.KindError, ID: codec.NullID, Error: &codec.Error{Code: codec.CodeInvalidRequest, Message: "Invalid Request"}}},
	{name: "batch.request", comment: "a batch: chat.ping request id 1 and a chat.broadcast notification (msgpack has no batches)", skip: []string{MsgPack}, batch: []vector{
		{msg: req(1, chat.MethodPing, nil), body: &chat.PingParams{}},
		{msg: push(chat.MethodBroadcast), body: &chat.BroadcastParams{Message: "hi"}}}},
}

func encode(t *testing.T, c codec.Codec, v vector) []byte {
	t.Helper()
	if v.batch != nil {
		var items [][]byte
		for _, el := range v.batch {
			items = append(items, encode(t, c, el))
		}
		out, err := c.AppendBatch(nil, items)
		if err != nil {
			t.Fatalf("%s: batch: %v", c.Name(), err)
		}
		return out
	}
	m := v.msg
	if m.Kind == codec.KindResult {
		m.Method = ""
	}
	out, err := c.Append(nil, m, v.body)
	if err != nil {
		t.Fatalf("%s %s: %v", v.name, c.Name(), err)
	}
	return out
}

// bodyType returns a new value of the type of v's body, to decode into.
func bodyType(v vector) any {
	if v.body == nil {
		return nil
	}
	return reflect.New(reflect.TypeOf(v.body).Elem()).Interface()
}

func checkDecoded(t *testing.T, c codec.Codec, v vector, got codec.Message) {
	t.Helper()
	want := v.msg
	if got.Kind != want.Kind || !got.ID.Equal(want.ID) || (want.Kind != codec.KindResult && got.Method != want.Method) {
		t.Fatalf("%s %s: envelope %+v, want %+v", v.name, c.Name(), got, want)
	}
	if want.Error != nil && *got.Error != *want.Error {
		t.Fatalf("%s %s: error %+v, want %+v", v.name, c.Name(), got.Error, want.Error)
	}
	if body := bodyType(v); body != nil {
		if err := c.Unmarshal(got.Body, body); err != nil {
			t.Fatalf("%s %s: unmarshal: %v", v.name, c.Name(), err)
		}
		if !reflect.DeepEqual(body, v.body) {
			t.Fatalf("%s %s: body %+v, want %+v", v.name, c.Name(), body, v.body)
		}
	}
}

// TestGolden decodes every golden vector in every encoding, checks it is the
// logical message, and re-encodes it byte for byte.
func TestGolden(t *testing.T) {
	dir := golden.Dir(1)
	if *update {
		for _, v := range vectors {
			gv := golden.Vector{Name: v.name, Comment: v.comment, Wire: map[string][]byte{}}
			for _, p := range All {
				if !skipped(v, p.Name) {
					gv.Wire[p.Name] = encode(t, p.Codec, v)
				}
			}
			if err := golden.Write(dir, gv); err != nil {
				t.Fatal(err)
			}
		}
	}
	files, err := golden.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]golden.Vector{}
	for _, f := range files {
		byName[f.Name] = f
	}
	for _, v := range vectors {
		gv, ok := byName[v.name]
		if !ok {
			t.Errorf("%s: no golden file (run go test ./protocols -update)", v.name)
			continue
		}
		for _, p := range All {
			wire, ok := gv.Wire[p.Name]
			if skipped(v, p.Name) {
				continue
			}
			if !ok {
				t.Errorf("%s: no %s line", v.name, p.Name)
				continue
			}
			msgs, batch, err := p.Codec.Decode(nil, wire)
			if err != nil || batch != (v.batch != nil) {
				t.Fatalf("%s %s: decode: batch %v, %v", v.name, p.Name, batch, err)
			}
			if v.batch == nil {
				checkDecoded(t, p.Codec, v, msgs[0])
			} else {
				for i, el := range v.batch {
					el.name = v.name
					checkDecoded(t, p.Codec, el, msgs[i])
				}
			}
			if again := encode(t, p.Codec, v); !bytes.Equal(again, wire) {
				t.Errorf("%s %s: re-encoded\n got %s\nwant %s", v.name, p.Name, golden.Hex(again), golden.Hex(wire))
			}
		}
	}
}

func skipped(v vector, enc string) bool {
	for _, s := range v.skip {
		if s == enc {
			return true
		}
	}
	return false
}

// TestGoldenThirdParty reads the golden JSON with sourcegraph/jsonrpc2 and
// the golden MessagePack with vmihailenco/msgpack, so the vectors are
// checked against implementations other than ours.
func TestGoldenThirdParty(t *testing.T) {
	files, err := golden.Load(golden.Dir(1))
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden files: %v", err)
	}
	for _, f := range files {
		if js, ok := f.Wire[JSONRPC]; ok && js[0] == '{' {
			var probe struct {
				Method *string `json:"method"`
			}
			_ = json.Unmarshal(js, &probe)
			if probe.Method != nil {
				var r jsonrpc2.Request
				if err := json.Unmarshal(js, &r); err != nil || r.Method != *probe.Method {
					t.Errorf("%s: jsonrpc2 request: %v", f.Name, err)
				}
			} else {
				var r jsonrpc2.Response
				if err := json.Unmarshal(js, &r); err != nil || (r.Result == nil) == (r.Error == nil) {
					t.Errorf("%s: jsonrpc2 response: %+v %v", f.Name, r, err)
				}
			}
		}
		if mp, ok := f.Wire[MsgPack]; ok {
			var arr []any
			if err := msgpack.Unmarshal(mp, &arr); err != nil {
				t.Errorf("%s: msgpack: %v", f.Name, err)
				continue
			}
			typ, _ := arr[0].(int8)
			want := map[int8]int{0: 4, 1: 4, 2: 3}[typ]
			if len(arr) != want {
				t.Errorf("%s: msgpack array %v has %d elements, want %d", f.Name, arr, len(arr), want)
			}
		}
	}
}

func TestNegotiate(t *testing.T) {
	for _, tc := range []struct{ offer, want string }{
		{"msgpack", MsgPack},
		{"foo,msgpack,json-rpc", MsgPack},
		{"a, b, binary-raw , json-rpc", BinaryRaw},
		{"json-rpc, msgpack", JSONRPC},
		{"xml-rpc", ""},
		{"", ""},
		{" , ,", ""},
		{"bearer.msgpack", ""},
		{"bearer.x, binary-raw", BinaryRaw},
	} {
		p, ok := Negotiate(tc.offer, All)
		if ok != (tc.want != "") || p.Name != tc.want {
			t.Errorf("%q: got %q %v, want %q", tc.offer, p.Name, ok, tc.want)
		}
	}
	if p, ok := Negotiate("msgpack, json-rpc", All[:1]); !ok || p.Name != JSONRPC {
		t.Errorf("enabled list not honoured: %q", p.Name)
	}
	// A protocol named like a bearer entry is never selected.
	if p, ok := Negotiate("bearer.x", []Protocol{{Name: "bearer.x"}}); ok {
		t.Errorf("bearer entry selected as %q", p.Name)
	}
}

func TestParseOffer(t *testing.T) {
	for _, tc := range []struct {
		values []string
		names  []string
		token  string
	}{
		{nil, nil, ""},
		{[]string{"json-rpc, bearer.abc.def-_x"}, []string{"json-rpc"}, "abc.def-_x"},
		{[]string{"bearer.t1", "msgpack,bearer.t2"}, []string{"msgpack"}, "t1"},
		{[]string{" , bearer.t ,"}, nil, "t"},
		{[]string{"a,b", "c"}, []string{"a", "b", "c"}, ""},
	} {
		o := ParseOffer(tc.values...)
		if !slices.Equal(o.Names, tc.names) || o.Token != tc.token {
			t.Errorf("%q: got %q %q, want %q %q", tc.values, o.Names, o.Token, tc.names, tc.token)
		}
	}
}
