package gateway

import (
	"container/list"
	"fmt"

	"github.com/subgate/subgate/protocols/chat"
)

// LimitError is returned when a hub bound refuses an operation; the chat
// methods answer it with -32009 and its Detail.
type LimitError struct {
	Bound string // "rooms per client" or "rooms per node (all have members)"
	Max   int
}

func (e *LimitError) Error() string { return "gateway: limit reached: " + e.Detail() }

// Detail says which bound was hit, for the error's data.
func (e *LimitError) Detail() string { return fmt.Sprintf("%s: at most %d", e.Bound, e.Max) }

// Hub bound defaults (HubLimits and Config share them). With them the
// hub holds at most 64 MiB of history plus the bookkeeping of 10,000 rooms
// (a few MiB); 100 rooms is more than a chat client needs and bounds one
// disconnect to 100 leaves; 1 MiB per room still keeps over 2 pages of
// chat.history (100 messages) of the longest messages.
const (
	defaultHistorySize         = 1000
	defaultHistoryBytesPerRoom = 1 << 20
	defaultHistoryBytes        = 64 << 20
	defaultMaxRooms            = 10000
	defaultMaxRoomsPerClient   = 100
)

// HubLimits bounds what the in-process hub keeps, so that no client can
// make it hold memory nobody pays for. A message's cost against the byte
// bounds is its text, its sender id and 64 bytes of bookkeeping. The zero
// value of each field means its default.
type HubLimits struct {
	// HistorySize is the number of messages each room keeps. Default 1000.
	HistorySize int
	// HistoryBytesPerRoom bounds one room's history in bytes; the oldest
	// messages go first. Default 1 MiB (about 250 messages of 4 KiB).
	HistoryBytesPerRoom int
	// HistoryBytes bounds the history of all rooms together. Beyond it the
	// oldest messages of the least recently active rooms go, rooms without
	// members first; a send never fails because of it. Default 64 MiB.
	HistoryBytes int
	// MaxRooms bounds the rooms that exist (with members or with
	// history). Joining a new room at the bound deletes the least recently
	// active room without members, history and all; if every room has
	// members the join fails. Default 10000.
	MaxRooms int
	// MaxRoomsPerClient bounds the rooms one client id is in. Default 100.
	MaxRoomsPerClient int
}

// HubLimits returns the hub bounds the Config sets.
func (c Config) HubLimits() HubLimits {
	return HubLimits{
		HistorySize: c.HistorySize, HistoryBytesPerRoom: c.HistoryBytesPerRoom,
		HistoryBytes: c.HistoryBytes, MaxRooms: c.MaxRooms, MaxRoomsPerClient: c.MaxRoomsPerClient,
	}
}

// hubReady asks a hub that can be unavailable (one on a network, with a
// Ready() error method) whether it serves.
func (s *Server) hubReady() error {
	if r, ok := s.hub.(interface{ Ready() error }); ok {
		return r.Ready()
	}
	return nil
}

// WithDefaults returns l with every zero field set to its default (for
// the in-process hub and for hubs implemented outside this package).
func (l HubLimits) WithDefaults() HubLimits {
	for _, v := range []struct {
		p   *int
		def int
	}{
		{&l.HistorySize, defaultHistorySize},
		{&l.HistoryBytesPerRoom, defaultHistoryBytesPerRoom},
		{&l.HistoryBytes, defaultHistoryBytes},
		{&l.MaxRooms, defaultMaxRooms},
		{&l.MaxRoomsPerClient, defaultMaxRoomsPerClient},
	} {
		if *v.p <= 0 {
			*v.p = v.def
		}
	}
	return l
}

// room is one room of the in-process hub. memoryHub.mu guards every field.
type room struct {
	name    string
	members map[string]struct{}
	// The history is a queue, oldest first: popping the oldest message
	// frees it at once, so what the hub counts is what the heap holds.
	oldest, newest *histNode
	count          int    // messages in the history
	bytes          int    // their cost (entryCost), summed
	offset         uint64 // last offset given out
	// list is the hub list the room is on (idle, busy or nil) and elem
	// its element there.
	list *list.List
	elem *list.Element
}

type histNode struct {
	e    chat.HistoryEntry
	next *histNode
}

// entryOverhead is what a stored message costs beyond its text and sender:
// its node (56 bytes on 64-bit platforms) rounded up to its allocation
// size class. Counting it keeps a flood of one-byte messages inside the
// byte budgets too.
const entryOverhead = 64

// entryCost is the bytes a stored message is charged against the history
// budgets.
func entryCost(e *chat.HistoryEntry) int { return len(e.From) + len(e.Message) + entryOverhead }

// push appends e as the newest message and returns its cost.
func (r *room) push(e chat.HistoryEntry) int {
	n := &histNode{e: e}
	if r.newest == nil {
		r.oldest = n
	} else {
		r.newest.next = n
	}
	r.newest = n
	r.count++
	cost := entryCost(&e)
	r.bytes += cost
	return cost
}

// pop drops the oldest message and returns its cost; the history must not
// be empty.
func (r *room) pop() int {
	n := r.oldest
	r.oldest = n.next
	if r.oldest == nil {
		r.newest = nil
	}
	r.count--
	cost := entryCost(&n.e)
	r.bytes -= cost
	return cost
}

// entries returns up to limit messages with an offset above since, oldest
// first.
func (r *room) entries(since, limit uint64) []chat.HistoryEntry {
	out := []chat.HistoryEntry{}
	for n := r.oldest; n != nil && uint64(len(out)) < limit; n = n.next {
		if n.e.Offset > since {
			out = append(out, n.e)
		}
	}
	return out
}

// roomAt returns the room of a list element, nil for none.
func roomAt(e *list.Element) *room {
	if e == nil {
		return nil
	}
	return e.Value.(*room)
}

// moveTo puts r at the back of l (nil: on no list), the place of the most
// recently active room.
func (r *room) moveTo(l *list.List) {
	switch {
	case r.list == l && l != nil:
		l.MoveToBack(r.elem)
		return
	case r.list != nil:
		r.list.Remove(r.elem)
	}
	r.list, r.elem = l, nil
	if l != nil {
		r.elem = l.PushBack(r)
	}
}
