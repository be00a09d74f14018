package chat

// Limits that are part of the contract (the server enforces them; clients
// may check them first).
const (
	// MaxIDLen bounds client ids and room names, in bytes.
	MaxIDLen = 64
	// MaxMessageLen bounds a chat message text, in bytes.
	MaxMessageLen = 4096
	// DefaultHistoryLimit is chat.history's limit when none is given, and
	// MaxHistoryLimit the largest accepted. The largest legal reply (100
	// messages of 4096 control characters, which json-rpc writes as
	// \u00XX, 6 bytes each) is about 2.5 MB, so it fits the server's
	// default 4 MiB send queue in every encoding; 1000 would not.
	DefaultHistoryLimit = 100
	MaxHistoryLimit     = 100
	// MaxEpochLen bounds a stream epoch, in bytes. An epoch is 1..32 bytes
	// of [0-9A-Za-z_-], opaque to clients: they only compare it.
	MaxEpochLen = 32
)

// PingParams are chat.ping's params: none.
type PingParams struct{}

// PingResult is chat.ping's result. Timestamp is Unix time in seconds.
type PingResult struct {
	Status    string `json:"status"`
	Timestamp int64  `json:"timestamp"`
}

// BroadcastParams are chat.broadcast's params.
type BroadcastParams struct {
	Message string `json:"message"`
}

// BroadcastResult is chat.broadcast's result: the number of connections the
// chat.message push was queued to, the sender's included.
type BroadcastResult struct {
	Status    string `json:"status"`
	Delivered uint64 `json:"delivered"`
}

// JoinParams are chat.join's params.
type JoinParams struct {
	Room string `json:"room"`
}

// JoinResult is chat.join's result: the members after joining and the
// room's latest position: its last offset (0 for a room without messages)
// and the epoch of its stream ("" for a room with no stream yet). A client
// keeps both to catch up later with chat.history.
type JoinResult struct {
	Room    string   `json:"room"`
	Members []string `json:"members"`
	Offset  uint64   `json:"offset"`
	Epoch   string   `json:"epoch"`
}

// LeaveParams are chat.leave's params.
type LeaveParams struct {
	Room string `json:"room"`
}

// LeaveResult is chat.leave's result.
type LeaveResult struct {
	Room string `json:"room"`
}

// SendParams are chat.send's params.
type SendParams struct {
	Room    string `json:"room"`
	Message string `json:"message"`
}

// SendResult is chat.send's result: the offset the message got in the room
// and the epoch of the room's stream.
type SendResult struct {
	Room   string `json:"room"`
	Offset uint64 `json:"offset"`
	Epoch  string `json:"epoch"`
}

// DirectParams are chat.direct's params.
type DirectParams struct {
	To      string `json:"to"`
	Message string `json:"message"`
}

// DirectResult is chat.direct's result: the number of connections of the
// recipient the push was queued to.
type DirectResult struct {
	Delivered uint64 `json:"delivered"`
}

// MembersParams are chat.members's params.
type MembersParams struct {
	Room string `json:"room"`
}

// MembersResult is chat.members's result.
type MembersResult struct {
	Room    string   `json:"room"`
	Members []string `json:"members"`
}

// HistoryParams are chat.history's params. Since is the last offset the
// client has seen (0: from the oldest kept message); Limit caps the answer
// (0: DefaultHistoryLimit); Epoch is the epoch Since belongs to ("": not
// known, no epoch check).
type HistoryParams struct {
	Room  string `json:"room"`
	Since uint64 `json:"since,omitempty"`
	Limit uint64 `json:"limit,omitempty"`
	Epoch string `json:"epoch,omitempty"`
}

// HistoryResult is chat.history's result, oldest message first, with the
// room's current epoch ("" for a room with no stream yet).
//
// Recovered says whether Messages continue exactly where the client left
// off, so that nothing between Since and them was lost. It is false when
// params.Epoch was given and differs from the room's epoch (the stream was
// recreated: Messages are then the room's history from its oldest kept
// message, and the client rebuilds from them), or when the message after
// Since is no longer kept (evicted) or Since is beyond the room's last
// offset. With since 0 it is true only when the room's first message is
// still kept. The gateway decides it (gateway/chat.go), once, for every
// hub.
type HistoryResult struct {
	Room      string         `json:"room"`
	Messages  []HistoryEntry `json:"messages"`
	Epoch     string         `json:"epoch"`
	Recovered bool           `json:"recovered"`
}

// HistoryEntry is one stored room message. TS is Unix time in milliseconds.
type HistoryEntry struct {
	Offset  uint64 `json:"offset"`
	From    string `json:"from"`
	Message string `json:"message"`
	TS      int64  `json:"ts"`
}

// DiscoverParams are rpc.discover's params: none.
type DiscoverParams struct{}

// DiscoverResult is rpc.discover's result.
type DiscoverResult struct {
	Methods []MethodInfo `json:"methods"`
}

// MethodInfo describes one method or push. Params and Result are short
// shape descriptions such as "{room:string, since?:uint}".
type MethodInfo struct {
	Name   string `json:"name"`
	ID     uint64 `json:"id"`
	Push   bool   `json:"push"`
	Params string `json:"params"`
	Result string `json:"result,omitempty"`
}

// Message is the chat.message push. Which optional fields are set depends
// on its origin: chat.broadcast sets none, chat.send sets Room, Offset and
// Epoch (Epoch is set exactly when Offset is), chat.direct sets To. TS is
// Unix time in milliseconds.
type Message struct {
	Room    string `json:"room,omitempty"`
	From    string `json:"from"`
	To      string `json:"to,omitempty"`
	Message string `json:"message"`
	Offset  uint64 `json:"offset,omitempty"`
	Epoch   string `json:"epoch,omitempty"`
	TS      int64  `json:"ts"`
}

// Presence events.
const (
	EventJoin  = "join"
	EventLeave = "leave"
)

// Presence is the chat.presence push.
type Presence struct {
	Room     string `json:"room"`
	ClientID string `json:"client_id"`
	Event    string `json:"event"`
}

// Notice kinds.
const (
	NoticeDraining     = "draining"
	NoticeLagging      = "lagging"
	NoticeTokenExpired = "token_expired"
)

// Notice is the gateway.notice push: the server tells a client something
// about its connection (draining before shutdown, lagging behind).
type Notice struct {
	Kind    string `json:"kind"`
	Message string `json:"message"`
}
