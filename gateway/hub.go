package gateway

import (
	"container/list"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"sort"
	"strings"
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
	if !c.Send(b) {
		c.pm.pushesDropped.Inc()
		return false
	}
	c.pm.pushesSent.Inc()
	return true
}

// Position is a place in a room's stream: the offset of its last message
// and the stream's epoch ("" for a room whose stream has no message yet).
//
// An epoch names one life of a room's history: offsets are comparable only
// within an epoch. A hub changes it whenever it may have lost history that
// a client could still ask for (the in-process hub at every start, the
// NATS hub when a room's stream is recreated), so that chat.history can
// tell a client it cannot recover instead of leaving a silent gap. An
// epoch is 1..chat.MaxEpochLen bytes of [0-9A-Za-z_-].
type Position struct {
	Offset uint64
	Epoch  string
}

// Hub keeps rooms, presence and history and delivers pushes. Every method
// is safe for concurrent use. The in-process implementation is
// NewMemoryHub; a hub spanning nodes implements the same interface.
//
// Every method takes a context, which bounds what a hub on a network may
// wait for, and returns an error: a hub that cannot answer says so
// instead of answering wrongly. The in-process hub never waits and fails
// only with the errors documented on each method.
type Hub interface {
	// Attach and Detach register a live connection. Detaching the last
	// connection of a client id makes it leave all its rooms. An Attach
	// error refuses the connection (503); a Detach error is logged (the
	// connection is gone either way).
	Attach(ctx context.Context, p Peer) error
	Detach(ctx context.Context, p Peer) error
	// Join adds the client to a room (idempotent) and pushes chat.presence
	// "join" to the other members if it was not there yet. It returns the
	// members and the room's latest position. A bound of the hub may
	// refuse it with a *LimitError; a client with no live connection gets
	// ErrNotAttached.
	Join(ctx context.Context, room, client string) (members []string, pos Position, err error)
	// Leave removes the client; ErrNotMember when it was not there.
	Leave(ctx context.Context, room, client string) error
	Members(ctx context.Context, room string) ([]string, error)
	// Send stores a room message and pushes it to every member; the message
	// gets the next offset, which Send fills in (with the epoch, m.Offset
	// and m.Epoch of the push it delivers) and returns as a Position.
	// ErrNotMember when the sender is not in the room.
	Send(ctx context.Context, m chat.Message) (Position, error)
	// History returns at most limit of the room's kept messages after
	// since, oldest first, and the room's latest position (its last
	// offset, whether that message is still kept or not). It does not
	// decide whether the client recovered: chat.history does, from these.
	History(ctx context.Context, room string, since, limit uint64) ([]chat.HistoryEntry, Position, error)
	// Broadcast pushes to every connection; Direct to every connection of a
	// client id. Both return the number of connections the push was queued
	// to: on one node, its own; across nodes, the sum of those every node
	// reported (a node that does not answer in time is not counted).
	Broadcast(ctx context.Context, p *Push) (int, error)
	Direct(ctx context.Context, client string, p *Push) (int, error)
}

// HubStats are a hub's sizes, for metrics. A hub that has them implements
// Stats() HubStats.
type HubStats struct {
	Rooms        int // rooms with members or history
	HistoryBytes int // the cost of every room's history together
}

// ErrNotMember is returned for room operations by a client not in the room.
var ErrNotMember = errors.New("gateway: not a member of the room")

// ErrNotAttached is returned when a client id with no live connection
// joins a room: nothing would ever make it leave again. (A call still in
// flight when its connection is dropped gets it.)
var ErrNotAttached = errors.New("gateway: client has no live connection")

// memoryHub is the in-process hub. One mutex guards everything; pushes are
// queued (Deliver never blocks) while it is held.
//
// Every room is either busy (members and history), idle (history but no
// members), or has members and no history; a room with neither is deleted
// at once. The busy and idle lists order rooms by last activity (join,
// send, last leave), so eviction takes the least recently active room in
// O(1). joined indexes each client id's rooms: a disconnect visits only
// those, never every room of the node.
type memoryHub struct {
	mu      sync.Mutex
	lim     HubLimits
	clients map[string]map[Peer]struct{}
	rooms   map[string]*room
	joined  map[string]map[string]*room // client id -> the rooms it is in
	idle    *list.List                  // of *room
	busy    *list.List
	// historyBytes is the cost of every room's history together.
	historyBytes int
	// floor is the highest offset of any deleted room: a room created
	// later starts above it, so offsets never repeat under a room name.
	floor uint64
	// epoch is every room's epoch: within one hub offsets never repeat
	// (the floor), so only a new hub (a restart) loses history.
	epoch string
}

// NewMemoryHub returns the in-process hub with the given bounds (zero
// fields take their defaults).
func NewMemoryHub(lim HubLimits) Hub {
	return &memoryHub{
		lim:     lim.WithDefaults(),
		clients: map[string]map[Peer]struct{}{},
		rooms:   map[string]*room{},
		joined:  map[string]map[string]*room{},
		idle:    list.New(),
		busy:    list.New(),
		epoch:   newEpoch(),
	}
}

// newEpoch returns 8 random bytes as 16 hex characters: two hubs (a node
// and its restart) practically never share one.
func newEpoch() string {
	var b [8]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	return hex.EncodeToString(b[:])
}

// posLocked is r's latest position.
func (h *memoryHub) posLocked(r *room) Position { return Position{Offset: r.offset, Epoch: h.epoch} }

// Stats returns the hub's sizes.
func (h *memoryHub) Stats() HubStats {
	h.mu.Lock()
	defer h.mu.Unlock()
	return HubStats{Rooms: len(h.rooms), HistoryBytes: h.historyBytes}
}

func (h *memoryHub) Attach(_ context.Context, p Peer) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	set := h.clients[p.ClientID()]
	if set == nil {
		set = map[Peer]struct{}{}
		h.clients[p.ClientID()] = set
	}
	set[p] = struct{}{}
	return nil
}

// Detach costs O(rooms of the client): it walks the client's index.
func (h *memoryHub) Detach(_ context.Context, p Peer) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	id := p.ClientID()
	set := h.clients[id]
	delete(set, p)
	if len(set) > 0 {
		return nil
	}
	delete(h.clients, id)
	for _, r := range h.joined[id] {
		h.leaveLocked(r, id)
	}
	delete(h.joined, id)
	return nil
}

func (h *memoryHub) Join(_ context.Context, name, client string) ([]string, Position, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.clients[client]) == 0 {
		return nil, Position{}, ErrNotAttached
	}
	r := h.rooms[name]
	if r != nil {
		if _, ok := r.members[client]; ok {
			h.settleLocked(r)
			return sortedKeys(r.members), h.posLocked(r), nil
		}
	}
	if len(h.joined[client]) >= h.lim.MaxRoomsPerClient {
		return nil, Position{}, &LimitError{"rooms per client", h.lim.MaxRoomsPerClient}
	}
	if r == nil {
		var err error
		if r, err = h.createLocked(name); err != nil {
			return nil, Position{}, err
		}
	}
	h.toRoomLocked(r, client, NewPush(chat.PushPresence, &chat.Presence{Room: name, ClientID: client, Event: chat.EventJoin}))
	r.members[client] = struct{}{}
	rooms := h.joined[client]
	if rooms == nil {
		rooms = map[string]*room{}
		h.joined[client] = rooms
	}
	rooms[name] = r
	h.settleLocked(r)
	return sortedKeys(r.members), h.posLocked(r), nil
}

// createLocked makes a room; at MaxRooms it first deletes the least
// recently active room without members.
func (h *memoryHub) createLocked(name string) (*room, error) {
	if len(h.rooms) >= h.lim.MaxRooms {
		victim := roomAt(h.idle.Front())
		if victim == nil {
			return nil, &LimitError{"rooms per node (all have members)", h.lim.MaxRooms}
		}
		h.deleteLocked(victim)
	}
	r := &room{name: name, members: map[string]struct{}{}, offset: h.floor}
	h.rooms[name] = r
	return r, nil
}

func (h *memoryHub) deleteLocked(r *room) {
	r.moveTo(nil)
	h.historyBytes -= r.bytes
	h.floor = max(h.floor, r.offset)
	delete(h.rooms, r.name)
}

// settleLocked records activity in r: it moves r to the back of the list
// its state belongs on, or deletes it when it has neither members nor
// history.
func (h *memoryHub) settleLocked(r *room) {
	switch {
	case r.count > 0 && len(r.members) > 0:
		r.moveTo(h.busy)
	case r.count > 0:
		r.moveTo(h.idle)
	case len(r.members) == 0:
		h.deleteLocked(r)
	default:
		r.moveTo(nil)
	}
}

func (h *memoryHub) Leave(_ context.Context, name, client string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	r := h.rooms[name]
	if r == nil {
		return ErrNotMember
	}
	if _, ok := r.members[client]; !ok {
		return ErrNotMember
	}
	h.leaveLocked(r, client)
	return nil
}

// leaveLocked removes a member. A room left empty keeps its history and
// offsets, so that clients that come back can catch up, until eviction.
func (h *memoryHub) leaveLocked(r *room, client string) {
	delete(r.members, client)
	delete(h.joined[client], r.name)
	h.toRoomLocked(r, "", NewPush(chat.PushPresence, &chat.Presence{Room: r.name, ClientID: client, Event: chat.EventLeave}))
	h.settleLocked(r)
}

func (h *memoryHub) Members(_ context.Context, name string) ([]string, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if r := h.rooms[name]; r != nil {
		return sortedKeys(r.members), nil
	}
	return []string{}, nil
}

func (h *memoryHub) Send(_ context.Context, m chat.Message) (Position, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	r := h.rooms[m.Room]
	if r == nil {
		return Position{}, ErrNotMember
	}
	if _, ok := r.members[m.From]; !ok {
		return Position{}, ErrNotMember
	}
	r.offset++
	m.Offset, m.Epoch = r.offset, h.epoch
	// The stored text is a copy of its own, so its cost is what it holds.
	e := chat.HistoryEntry{Offset: m.Offset, From: m.From, Message: strings.Clone(m.Message), TS: m.TS}
	cost := entryCost(&e)
	h.trimRoomLocked(r, cost)
	h.trimNodeLocked(cost)
	h.historyBytes += r.push(e)
	h.settleLocked(r)
	h.toRoomLocked(r, "", NewPush(chat.PushMessage, &m))
	return h.posLocked(r), nil
}

// trimRoomLocked drops r's oldest messages until one more of cost fits its
// count and byte bounds. A message larger than the room's byte bound is
// still kept, alone.
func (h *memoryHub) trimRoomLocked(r *room, cost int) {
	for r.count > 0 && (r.count >= h.lim.HistorySize || r.bytes+cost > h.lim.HistoryBytesPerRoom) {
		h.historyBytes -= r.pop()
	}
	if r.count == 0 {
		h.settleLocked(r) // off the busy list: trimNodeLocked must not pick it
	}
}

// trimNodeLocked drops the oldest messages of the least recently active
// rooms, idle ones first, until one more message of cost fits the node's
// budget. A room left with neither members nor history is deleted.
func (h *memoryHub) trimNodeLocked(cost int) {
	for h.historyBytes+cost > h.lim.HistoryBytes {
		victim := roomAt(h.idle.Front())
		if victim == nil {
			victim = roomAt(h.busy.Front())
		}
		if victim == nil {
			return
		}
		h.historyBytes -= victim.pop()
		if victim.count == 0 {
			h.settleLocked(victim)
		}
	}
}

// History of a room that does not exist (never had a message, or was
// deleted) is empty at the floor: offsets of a deleted room are at most
// the floor, and a room made later starts above it.
func (h *memoryHub) History(_ context.Context, name string, since, limit uint64) ([]chat.HistoryEntry, Position, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	r := h.rooms[name]
	if r == nil {
		return []chat.HistoryEntry{}, Position{Offset: h.floor, Epoch: h.epoch}, nil
	}
	return r.entries(since, limit), h.posLocked(r), nil
}

func (h *memoryHub) Broadcast(_ context.Context, p *Push) (int, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, set := range h.clients {
		n += deliverAll(set, p)
	}
	return n, nil
}

func (h *memoryHub) Direct(_ context.Context, client string, p *Push) (int, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return deliverAll(h.clients[client], p), nil
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
