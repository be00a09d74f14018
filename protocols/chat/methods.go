package chat

import "github.com/subgate/subgate/codec"

// Method and push names.
const (
	MethodDiscover  = "rpc.discover"
	MethodPing      = "chat.ping"
	MethodBroadcast = "chat.broadcast"
	MethodJoin      = "chat.join"
	MethodLeave     = "chat.leave"
	MethodSend      = "chat.send"
	MethodDirect    = "chat.direct"
	MethodMembers   = "chat.members"
	MethodHistory   = "chat.history"

	PushMessage  = "chat.message"
	PushPresence = "chat.presence"
	PushNotice   = "gateway.notice"
)

// Entry describes one method or push: its name, binary-raw id, and the Go
// types of its params and result (result is nil for pushes).
type Entry struct {
	Name string
	ID   uint64
	Push bool
	// NewParams returns a pointer to a zero params value.
	NewParams func() any
	// NewResult returns a pointer to a zero result value (nil for pushes).
	NewResult func() any
}

// Entries lists every method and push in binary-raw id order. The ids are
// part of the binary-raw specification: never renumber, only add.
var Entries = []Entry{
	{MethodDiscover, 0x01, false, newOf[DiscoverParams], newOf[DiscoverResult]},
	{MethodPing, 0x10, false, newOf[PingParams], newOf[PingResult]},
	{MethodBroadcast, 0x11, false, newOf[BroadcastParams], newOf[BroadcastResult]},
	{MethodJoin, 0x12, false, newOf[JoinParams], newOf[JoinResult]},
	{MethodLeave, 0x13, false, newOf[LeaveParams], newOf[LeaveResult]},
	{MethodSend, 0x14, false, newOf[SendParams], newOf[SendResult]},
	{MethodDirect, 0x15, false, newOf[DirectParams], newOf[DirectResult]},
	{MethodMembers, 0x16, false, newOf[MembersParams], newOf[MembersResult]},
	{MethodHistory, 0x17, false, newOf[HistoryParams], newOf[HistoryResult]},
	{PushMessage, 0x20, true, newOf[Message], nil},
	{PushPresence, 0x21, true, newOf[Presence], nil},
	{PushNotice, 0x22, true, newOf[Notice], nil},
}

func newOf[T any]() any { return new(T) }

// Lookup returns the entry for a method or push name.
func Lookup(name string) (Entry, bool) {
	for _, e := range Entries {
		if e.Name == name {
			return e, true
		}
	}
	return Entry{}, false
}

// Table is the method table every codec is built with.
var Table = func() *codec.MethodTable {
	ms := make([]codec.Method, len(Entries))
	for i, e := range Entries {
		ms[i] = codec.Method{Name: e.Name, ID: e.ID}
	}
	return codec.NewMethodTable(ms...)
}()
