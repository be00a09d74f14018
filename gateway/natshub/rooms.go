package natshub

import (
	"context"
	"errors"
	"fmt"
	"sort"

	"github.com/subgate/subgate/gateway"
	"github.com/subgate/subgate/protocols/chat"
)

// Attach registers a local connection. A client that is in rooms gets
// this node's connection key, so that its rooms are kept while any node
// holds one of its connections.
func (h *Hub) Attach(ctx context.Context, p gateway.Peer) error {
	if err := h.Ready(); err != nil {
		return err
	}
	id := p.ClientID()
	h.mu.Lock()
	set := h.local[id]
	if set == nil {
		set = map[gateway.Peer]struct{}{}
		h.local[id] = set
	}
	set[p] = struct{}{}
	need := len(h.joined[id]) > 0 && !h.registered[id]
	for room := range h.joined[id] {
		h.subscribeLocked(room)
	}
	h.mu.Unlock()
	if need {
		ctx, cancel := h.bound(ctx)
		defer cancel()
		return h.register(ctx, id)
	}
	return nil
}

// register puts this node's connection key for a client.
func (h *Hub) register(ctx context.Context, id string) error {
	if _, err := h.kv.Put(ctx, connKey(id, h.node), nil); err != nil {
		return fmt.Errorf("natshub: registering %s: %w", id, err)
	}
	h.mu.Lock()
	h.registered[id] = len(h.local[id]) > 0
	addTo(h.conns, id, h.node)
	h.mu.Unlock()
	return nil
}

// Detach removes a local connection. When it was the client's last one on
// this node, its connection key goes; when no node holds one any more, the
// client leaves its rooms.
func (h *Hub) Detach(ctx context.Context, p gateway.Peer) error {
	id := p.ClientID()
	h.mu.Lock()
	set := h.local[id]
	delete(set, p)
	if len(set) > 0 {
		h.mu.Unlock()
		return nil
	}
	delete(h.local, id)
	wasRegistered := h.registered[id]
	delete(h.registered, id)
	for room := range h.joined[id] {
		h.unsubscribeIdleLocked(room)
	}
	h.mu.Unlock()
	ctx, cancel := h.bound(ctx)
	defer cancel()
	if !wasRegistered {
		return h.leaveAllIfGone(ctx, id)
	}
	return h.release(ctx, id, h.node)
}

// release ends a node's hold on a client: the client leaves its rooms if
// no node holds a connection of it, then the node's connection key goes.
// In this order, a failure leaves the key behind, and whoever finds it
// (reconcile on this node, the reaper if the node is dead) tries again.
func (h *Hub) release(ctx context.Context, id, node string) error {
	if err := h.leaveAllIfGone(ctx, id); err != nil {
		return err
	}
	if err := h.kv.Delete(ctx, connKey(id, node)); err != nil {
		return fmt.Errorf("natshub: unregistering %s: %w", id, err)
	}
	h.mu.Lock()
	removeFrom(h.conns, id, node)
	h.mu.Unlock()
	return nil
}

// leaveAllIfGone takes a client out of its rooms when no node holds a
// connection of it. The nodes are asked (the connection keys in the view
// may lag behind a connection made a moment ago on another node).
func (h *Hub) leaveAllIfGone(ctx context.Context, id string) error {
	h.mu.Lock()
	rooms := keys(h.joined[id])
	here := len(h.local[id]) > 0
	h.mu.Unlock()
	if here || len(rooms) == 0 {
		return nil
	}
	n, err := h.gather(ctx, h.subjProbe+b64.EncodeToString([]byte(id)), nil)
	if err != nil || n > 0 {
		return err
	}
	var errs []error
	for _, room := range rooms {
		if err := h.dropMember(ctx, room, id); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Join adds a client to a room. The returned members include every join
// made anywhere before this one.
func (h *Hub) Join(ctx context.Context, room, client string) ([]string, gateway.Position, error) {
	ctx, cancel := h.bound(ctx)
	defer cancel()
	// The bounds count every join made anywhere before this one.
	if err := h.syncLatest(ctx); err != nil {
		return nil, gateway.Position{}, err
	}
	h.mu.Lock()
	if len(h.local[client]) == 0 {
		h.mu.Unlock()
		return nil, gateway.Position{}, gateway.ErrNotAttached
	}
	_, member := h.members[room][client]
	if !member {
		if err := h.roomLimitLocked(room, client); err != nil {
			h.mu.Unlock()
			return nil, gateway.Position{}, err
		}
	}
	need := !h.registered[client]
	h.mu.Unlock()
	if need {
		if err := h.register(ctx, client); err != nil {
			return nil, gateway.Position{}, err
		}
	}
	if !member {
		rev, err := h.kv.Put(ctx, memberKey(room, client), []byte(h.node))
		if err != nil {
			return nil, gateway.Position{}, fmt.Errorf("natshub: joining %s: %w", room, err)
		}
		// The watcher applies the join (and pushes its presence); once the
		// view has reached it, it holds every join made before this one.
		if err := h.sync(ctx, rev); err != nil {
			return nil, gateway.Position{}, err
		}
		// The room's subscription must reach the server before the client
		// can expect the messages sent after its join.
		if err := h.nc.FlushWithContext(ctx); err != nil {
			return nil, gateway.Position{}, fmt.Errorf("natshub: joining %s: %w", room, err)
		}
	}
	pos, _, err := h.lastPosition(ctx, room)
	if err != nil {
		return nil, gateway.Position{}, err
	}
	h.mu.Lock()
	members := keys(h.members[room])
	h.mu.Unlock()
	return members, pos, nil
}

func (h *Hub) roomLimitLocked(room, client string) error {
	if len(h.joined[client]) >= h.lim.MaxRoomsPerClient {
		return &gateway.LimitError{Bound: "rooms per client", Max: h.lim.MaxRoomsPerClient}
	}
	if _, ok := h.members[room]; !ok && len(h.members) >= h.lim.MaxRooms {
		return &gateway.LimitError{Bound: "rooms with members in the cluster", Max: h.lim.MaxRooms}
	}
	return nil
}

// Leave takes a client out of a room.
func (h *Hub) Leave(ctx context.Context, room, client string) error {
	ctx, cancel := h.bound(ctx)
	defer cancel()
	if err := h.checkMember(ctx, room, client); err != nil {
		return err
	}
	return h.dropMember(ctx, room, client)
}

// checkMember returns ErrNotMember unless client is in room, looking
// past the view's lag (a join made through another node) before saying so.
func (h *Hub) checkMember(ctx context.Context, room, client string) error {
	for synced := false; ; synced = true {
		h.mu.Lock()
		_, ok := h.members[room][client]
		h.mu.Unlock()
		if ok {
			return nil
		}
		if synced {
			return gateway.ErrNotMember
		}
		if err := h.syncLatest(ctx); err != nil {
			return err
		}
	}
}

// dropMember deletes a membership and applies it to the view at once (the
// watcher's copy of the change then finds nothing to do).
func (h *Hub) dropMember(ctx context.Context, room, client string) error {
	if err := h.kv.Delete(ctx, memberKey(room, client)); err != nil {
		return fmt.Errorf("natshub: leaving %s: %w", room, err)
	}
	h.mu.Lock()
	h.removeMemberLocked(room, client, true)
	h.mu.Unlock()
	return nil
}

// Members returns a room's members, with every change made anywhere
// before the call.
func (h *Hub) Members(ctx context.Context, room string) ([]string, error) {
	ctx, cancel := h.bound(ctx)
	defer cancel()
	if err := h.syncLatest(ctx); err != nil {
		return nil, err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	return keys(h.members[room]), nil
}

func keys(m map[string]struct{}) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func addTo(m map[string]map[string]struct{}, k, v string) bool {
	set := m[k]
	if set == nil {
		set = map[string]struct{}{}
		m[k] = set
	}
	if _, ok := set[v]; ok {
		return false
	}
	set[v] = struct{}{}
	return true
}

func removeFrom(m map[string]map[string]struct{}, k, v string) bool {
	set := m[k]
	if _, ok := set[v]; !ok {
		return false
	}
	delete(set, v)
	if len(set) == 0 {
		delete(m, k)
	}
	return true
}

// addMemberLocked applies a membership to the view; with push, the room's
// other local members get chat.presence join.
func (h *Hub) addMemberLocked(room, client string, push bool) {
	if !addTo(h.members, room, client) {
		return
	}
	addTo(h.joined, client, room)
	if push {
		h.toRoomLocked(room, client, gateway.NewPush(chat.PushPresence, &chat.Presence{Room: room, ClientID: client, Event: chat.EventJoin}))
	}
	if len(h.local[client]) > 0 {
		h.subscribeLocked(room)
	}
}

func (h *Hub) removeMemberLocked(room, client string, push bool) {
	if !removeFrom(h.members, room, client) {
		return
	}
	removeFrom(h.joined, client, room)
	if push {
		h.toRoomLocked(room, client, gateway.NewPush(chat.PushPresence, &chat.Presence{Room: room, ClientID: client, Event: chat.EventLeave}))
	}
	h.unsubscribeIdleLocked(room)
}

// toRoomLocked pushes to this node's connections of every member of room
// but except.
func (h *Hub) toRoomLocked(room, except string, p *gateway.Push) int {
	n := 0
	for id := range h.members[room] {
		if id != except {
			n += deliverAll(h.local[id], p)
		}
	}
	return n
}

func deliverAll(set map[gateway.Peer]struct{}, p *gateway.Push) int {
	n := 0
	for peer := range set {
		if peer.Deliver(p) {
			n++
		}
	}
	return n
}

// Broadcast pushes to every connection of every node.
func (h *Hub) Broadcast(ctx context.Context, p *gateway.Push) (int, error) {
	return h.gatherPush(ctx, h.subjAll, p)
}

// Direct pushes to every connection of a client id, on every node.
func (h *Hub) Direct(ctx context.Context, client string, p *gateway.Push) (int, error) {
	return h.gatherPush(ctx, h.subjClient+b64.EncodeToString([]byte(client)), p)
}
