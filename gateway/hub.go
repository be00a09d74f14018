package gateway

import (
	"errors"
	"sort"
	"sync"

	"github.com/subgate/subgate/codec"
	"github.com/subgate/subgate/protocols/chat"
)

// Push is a server notification on its way to many connections. It is
// encoded at most once per codec; every recipient of that codec gets the
// same bytes.
type Push struct {
	Method string
	Body   any

	mu  sync.Mutex
	enc []encoded
}

type encoded struct {
	c codec.Codec
	b []byte
}

// NewPush returns a push of method with params body.
func NewPush(method string, body any) *Push { return &Push{Method: method, Body: body} }

// Bytes returns the push encoded with c. The bytes are shared: never modify them.
func (p *Push) Bytes(c codec.Codec) ([]byte, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, e := range p.enc {
		if e.c == c {
			return e.b, nil
		}
	}
	b, err := codec.AppendNotification(c, nil, p.Method, p.Body)
	if err != nil {
		return nil, err
	}
	p.enc = append(p.enc, encoded{c, b})
	return b, nil
}

// Peer is a connection as the hub sees it.
type Peer interface {
	ClientID() string
	// Deliver queues the push without blocking and reports whether it was queued.
	Deliver(p *Push) bool
}

// Deliver queues a push on the connection.
func (c *Conn) Deliver(p *Push) bool {
	b, err := p.Bytes(c.Codec())
	if err != nil {
		c.srv.log.Error("encoding push", "method", p.Method, "protocol", c.info.Protocol.Name, "err", err)
		return false
	}
	return c.Send(b)
}

// Hub keeps rooms, presence and history and delivers pushes. Every method
// is safe for concurrent use. The in-process implementation is
// NewMemoryHub; a hub spanning nodes implements the same interface.
type Hub interface {
	// Attach and Detach register a live connection. Detaching the last
	// connection of a client id makes it leave all its rooms.
	Attach(p Peer)
	Detach(p Peer)
	// Join adds the client to a room (idempotent) and pushes chat.presence
	// "join" to the other members if it was not there yet.
	Join(room, client string) (members []string, offset uint64, err error)
	// Leave removes the client; ErrNotMember when it was not there.
	Leave(room, client string) error
	Members(room string) []string
	// Send stores a room message and pushes it to every member; the message
	// gets the next offset, which Send fills in and returns.
	Send(m chat.Message) (offset uint64, err error)
	History(room string, since, limit uint64) []chat.HistoryEntry
	// Broadcast pushes to every connection; Direct to every connection of a
	// client id. Both return the number of connections it was queued to.
	Broadcast(p *Push) int
	Direct(client string, p *Push) int
}

// ErrNotMember is returned for room operations by a client not in the room.
var ErrNotMember = errors.New("gateway: not a member of the room")

type room struct {
	members map[string]struct{}
	history []chat.HistoryEntry // ring of at most historySize, oldest at head
	head    int
	offset  uint64 // last offset given out
}

type memoryHub struct {
	mu          sync.Mutex
	clients     map[string]map[Peer]struct{}
	rooms       map[string]*room
	historySize int
}

// NewMemoryHub returns the in-process hub. Each room keeps its last
// historySize messages (default 1000 when ≤ 0).
func NewMemoryHub(historySize int) Hub {
	if historySize <= 0 {
		historySize = 1000
	}
	return &memoryHub{clients: map[string]map[Peer]struct{}{}, rooms: map[string]*room{}, historySize: historySize}
}

func (h *memoryHub) Attach(p Peer) {
	h.mu.Lock()
	defer h.mu.Unlock()
	set := h.clients[p.ClientID()]
	if set == nil {
		set = map[Peer]struct{}{}
		h.clients[p.ClientID()] = set
	}
	set[p] = struct{}{}
}

func (h *memoryHub) Detach(p Peer) {
	h.mu.Lock()
	defer h.mu.Unlock()
	id := p.ClientID()
	set := h.clients[id]
	delete(set, p)
	if len(set) > 0 {
		return
	}
	delete(h.clients, id)
	for name, r := range h.rooms {
		if _, ok := r.members[id]; ok {
			h.leaveLocked(name, r, id)
		}
	}
}

func (h *memoryHub) Join(name, client string) ([]string, uint64, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	r := h.rooms[name]
	if r == nil {
		r = &room{members: map[string]struct{}{}}
		h.rooms[name] = r
	}
	if _, ok := r.members[client]; !ok {
		h.toRoomLocked(r, client, NewPush(chat.PushPresence, &chat.Presence{Room: name, ClientID: client, Event: chat.EventJoin}))
		r.members[client] = struct{}{}
	}
	return sortedKeys(r.members), r.offset, nil
}

func (h *memoryHub) Leave(name, client string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	r := h.rooms[name]
	if r == nil {
		return ErrNotMember
	}
	if _, ok := r.members[client]; !ok {
		return ErrNotMember
	}
	h.leaveLocked(name, r, client)
	return nil
}

func (h *memoryHub) leaveLocked(name string, r *room, client string) {
	delete(r.members, client)
	h.toRoomLocked(r, "", NewPush(chat.PushPresence, &chat.Presence{Room: name, ClientID: client, Event: chat.EventLeave}))
	// An empty room keeps its history and offsets, so that clients that come
	// back can catch up.
}

func (h *memoryHub) Members(name string) []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	if r := h.rooms[name]; r != nil {
		return sortedKeys(r.members)
	}
	return []string{}
}

func (h *memoryHub) Send(m chat.Message) (uint64, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	r := h.rooms[m.Room]
	if r == nil {
		return 0, ErrNotMember
	}
	if _, ok := r.members[m.From]; !ok {
		return 0, ErrNotMember
	}
	r.offset++
	m.Offset = r.offset
	e := chat.HistoryEntry{Offset: m.Offset, From: m.From, Message: m.Message, TS: m.TS}
	if len(r.history) < h.historySize {
		r.history = append(r.history, e)
	} else {
		r.history[r.head] = e
		r.head = (r.head + 1) % h.historySize
	}
	h.toRoomLocked(r, "", NewPush(chat.PushMessage, &m))
	return m.Offset, nil
}

func (h *memoryHub) History(name string, since, limit uint64) []chat.HistoryEntry {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := []chat.HistoryEntry{}
	r := h.rooms[name]
	if r == nil {
		return out
	}
	n := len(r.history)
	for i := range n {
		e := r.history[(r.head+i)%n]
		if e.Offset > since {
			out = append(out, e)
			if uint64(len(out)) == limit {
				break
			}
		}
	}
	return out
}

func (h *memoryHub) Broadcast(p *Push) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, set := range h.clients {
		n += deliverAll(set, p)
	}
	return n
}

func (h *memoryHub) Direct(client string, p *Push) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return deliverAll(h.clients[client], p)
}

// toRoomLocked pushes to every connection of every member but except.
func (h *memoryHub) toRoomLocked(r *room, except string, p *Push) {
	for id := range r.members {
		if id != except {
			deliverAll(h.clients[id], p)
		}
	}
}

func deliverAll(set map[Peer]struct{}, p *Push) int {
	n := 0
	for peer := range set {
		if peer.Deliver(p) {
			n++
		}
	}
	return n
}

func sortedKeys(m map[string]struct{}) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
