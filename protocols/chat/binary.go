package chat

import (
	"errors"

	"github.com/subgate/subgate/internal/wire"
)

// The binary-raw payload layouts of protocols/binary-raw.md §8 and §9.
//
// AppendBinary has a value receiver so that both T and *T are
// encoding.BinaryAppender; UnmarshalBinary has a pointer receiver and
// changes its receiver only when the whole payload is valid. Decoding is
// strict (no truncation, no trailing bytes, valid UTF-8, canonical flags),
// which makes every valid payload's encoding unique.

// Sizes of the smallest encoding of a list element, which bound the counts a
// decoder accepts before allocating.
const (
	minString       = 1                   // the empty string: its length byte
	minHistoryEntry = 1 + 2*minString + 1 // offset, from, message, ts
	minMethodInfo   = 3*minString + 1 + 1 // name, params, result; id; push
)

// Flags of the chat.message push.
const (
	msgRoom   = 1 << 0
	msgTo     = 1 << 1
	msgOffset = 1 << 2
	msgEpoch  = 1 << 3 // set exactly when msgOffset is
	msgFlags  = msgRoom | msgTo | msgOffset | msgEpoch
)

// Presence event bytes.
const (
	eventJoin  = 1
	eventLeave = 2
)

var (
	errEvent = errors.New(`presence event is neither "join" nor "leave"`)
	errFlags = errors.New("reserved flag bits set")
	errEmpty = errors.New("flagged field is empty")
	errEpoch = errors.New("epoch flag without offset flag, or offset flag without epoch flag")
)

// AppendBinary appends nothing: chat.ping has no params.
func (PingParams) AppendBinary(dst []byte) ([]byte, error) { return dst, nil }

// UnmarshalBinary accepts only the empty payload.
func (p *PingParams) UnmarshalBinary(data []byte) error {
	r := wire.NewReader(data, "chat.ping params")
	return r.End()
}

// AppendBinary appends status and timestamp.
func (p PingResult) AppendBinary(dst []byte) ([]byte, error) {
	dst = wire.AppendString(dst, p.Status)
	return wire.AppendVarint(dst, p.Timestamp), nil
}

// UnmarshalBinary decodes status and timestamp.
func (p *PingResult) UnmarshalBinary(data []byte) error {
	r := wire.NewReader(data, "chat.ping result")
	v := PingResult{Status: r.Field("status").String(), Timestamp: r.Field("timestamp").Varint()}
	return set(p, v, &r)
}

// AppendBinary appends message.
func (p BroadcastParams) AppendBinary(dst []byte) ([]byte, error) {
	return wire.AppendString(dst, p.Message), nil
}

// UnmarshalBinary decodes message.
func (p *BroadcastParams) UnmarshalBinary(data []byte) error {
	r := wire.NewReader(data, "chat.broadcast params")
	v := BroadcastParams{Message: r.Field("message").String()}
	return set(p, v, &r)
}

// AppendBinary appends status and delivered.
func (p BroadcastResult) AppendBinary(dst []byte) ([]byte, error) {
	dst = wire.AppendString(dst, p.Status)
	return wire.AppendUvarint(dst, p.Delivered), nil
}

// UnmarshalBinary decodes status and delivered.
func (p *BroadcastResult) UnmarshalBinary(data []byte) error {
	r := wire.NewReader(data, "chat.broadcast result")
	v := BroadcastResult{Status: r.Field("status").String(), Delivered: r.Field("delivered").Uvarint()}
	return set(p, v, &r)
}

// AppendBinary appends room.
func (p JoinParams) AppendBinary(dst []byte) ([]byte, error) {
	return wire.AppendString(dst, p.Room), nil
}

// UnmarshalBinary decodes room.
func (p *JoinParams) UnmarshalBinary(data []byte) error {
	r := wire.NewReader(data, "chat.join params")
	v := JoinParams{Room: r.Field("room").String()}
	return set(p, v, &r)
}

// AppendBinary appends room, members, offset and epoch.
func (p JoinResult) AppendBinary(dst []byte) ([]byte, error) {
	dst = wire.AppendString(dst, p.Room)
	dst = appendStrings(dst, p.Members)
	dst = wire.AppendUvarint(dst, p.Offset)
	return wire.AppendString(dst, p.Epoch), nil
}

// UnmarshalBinary decodes room, members, offset and epoch.
func (p *JoinResult) UnmarshalBinary(data []byte) error {
	r := wire.NewReader(data, "chat.join result")
	v := JoinResult{Room: r.Field("room").String(), Members: readStrings(r.Field("members")), Offset: r.Field("offset").Uvarint()}
	v.Epoch = r.Field("epoch").String()
	return set(p, v, &r)
}

// AppendBinary appends room.
func (p LeaveParams) AppendBinary(dst []byte) ([]byte, error) {
	return wire.AppendString(dst, p.Room), nil
}

// UnmarshalBinary decodes room.
func (p *LeaveParams) UnmarshalBinary(data []byte) error {
	r := wire.NewReader(data, "chat.leave params")
	v := LeaveParams{Room: r.Field("room").String()}
	return set(p, v, &r)
}

// AppendBinary appends room.
func (p LeaveResult) AppendBinary(dst []byte) ([]byte, error) {
	return wire.AppendString(dst, p.Room), nil
}

// UnmarshalBinary decodes room.
func (p *LeaveResult) UnmarshalBinary(data []byte) error {
	r := wire.NewReader(data, "chat.leave result")
	v := LeaveResult{Room: r.Field("room").String()}
	return set(p, v, &r)
}

// AppendBinary appends room and message.
func (p SendParams) AppendBinary(dst []byte) ([]byte, error) {
	dst = wire.AppendString(dst, p.Room)
	return wire.AppendString(dst, p.Message), nil
}

// UnmarshalBinary decodes room and message.
func (p *SendParams) UnmarshalBinary(data []byte) error {
	r := wire.NewReader(data, "chat.send params")
	v := SendParams{Room: r.Field("room").String(), Message: r.Field("message").String()}
	return set(p, v, &r)
}

// AppendBinary appends room, offset and epoch.
func (p SendResult) AppendBinary(dst []byte) ([]byte, error) {
	dst = wire.AppendString(dst, p.Room)
	dst = wire.AppendUvarint(dst, p.Offset)
	return wire.AppendString(dst, p.Epoch), nil
}

// UnmarshalBinary decodes room, offset and epoch.
func (p *SendResult) UnmarshalBinary(data []byte) error {
	r := wire.NewReader(data, "chat.send result")
	v := SendResult{Room: r.Field("room").String(), Offset: r.Field("offset").Uvarint(), Epoch: r.Field("epoch").String()}
	return set(p, v, &r)
}

// AppendBinary appends to and message.
func (p DirectParams) AppendBinary(dst []byte) ([]byte, error) {
	dst = wire.AppendString(dst, p.To)
	return wire.AppendString(dst, p.Message), nil
}

// UnmarshalBinary decodes to and message.
func (p *DirectParams) UnmarshalBinary(data []byte) error {
	r := wire.NewReader(data, "chat.direct params")
	v := DirectParams{To: r.Field("to").String(), Message: r.Field("message").String()}
	return set(p, v, &r)
}

// AppendBinary appends delivered.
func (p DirectResult) AppendBinary(dst []byte) ([]byte, error) {
	return wire.AppendUvarint(dst, p.Delivered), nil
}

// UnmarshalBinary decodes delivered.
func (p *DirectResult) UnmarshalBinary(data []byte) error {
	r := wire.NewReader(data, "chat.direct result")
	v := DirectResult{Delivered: r.Field("delivered").Uvarint()}
	return set(p, v, &r)
}

// AppendBinary appends room.
func (p MembersParams) AppendBinary(dst []byte) ([]byte, error) {
	return wire.AppendString(dst, p.Room), nil
}

// UnmarshalBinary decodes room.
func (p *MembersParams) UnmarshalBinary(data []byte) error {
	r := wire.NewReader(data, "chat.members params")
	v := MembersParams{Room: r.Field("room").String()}
	return set(p, v, &r)
}

// AppendBinary appends room and members.
func (p MembersResult) AppendBinary(dst []byte) ([]byte, error) {
	dst = wire.AppendString(dst, p.Room)
	return appendStrings(dst, p.Members), nil
}

// UnmarshalBinary decodes room and members.
func (p *MembersResult) UnmarshalBinary(data []byte) error {
	r := wire.NewReader(data, "chat.members result")
	v := MembersResult{Room: r.Field("room").String(), Members: readStrings(r.Field("members"))}
	return set(p, v, &r)
}

// AppendBinary appends room, since, limit and epoch; zero (the empty
// string for epoch) is how an absent since, limit or epoch is written.
func (p HistoryParams) AppendBinary(dst []byte) ([]byte, error) {
	dst = wire.AppendString(dst, p.Room)
	dst = wire.AppendUvarint(dst, p.Since)
	dst = wire.AppendUvarint(dst, p.Limit)
	return wire.AppendString(dst, p.Epoch), nil
}

// UnmarshalBinary decodes room, since, limit and epoch.
func (p *HistoryParams) UnmarshalBinary(data []byte) error {
	r := wire.NewReader(data, "chat.history params")
	v := HistoryParams{Room: r.Field("room").String(), Since: r.Field("since").Uvarint(), Limit: r.Field("limit").Uvarint()}
	v.Epoch = r.Field("epoch").String()
	return set(p, v, &r)
}

// AppendBinary appends room, the list of entries, epoch and recovered.
func (p HistoryResult) AppendBinary(dst []byte) ([]byte, error) {
	dst = wire.AppendString(dst, p.Room)
	dst = wire.AppendUvarint(dst, uint64(len(p.Messages)))
	for i := range p.Messages {
		dst = p.Messages[i].appendBinary(dst)
	}
	dst = wire.AppendString(dst, p.Epoch)
	return wire.AppendBool(dst, p.Recovered), nil
}

// UnmarshalBinary decodes room, the list of entries, epoch and recovered.
func (p *HistoryResult) UnmarshalBinary(data []byte) error {
	r := wire.NewReader(data, "chat.history result")
	v := HistoryResult{Room: r.Field("room").String()}
	if n := r.Field("messages").Count(minHistoryEntry); n > 0 {
		v.Messages = make([]HistoryEntry, n)
		for i := range v.Messages {
			v.Messages[i].read(&r)
		}
	}
	v.Epoch = r.Field("epoch").String()
	v.Recovered = r.Field("recovered").Bool()
	return set(p, v, &r)
}

// AppendBinary appends offset, from, message and ts.
func (e HistoryEntry) AppendBinary(dst []byte) ([]byte, error) { return e.appendBinary(dst), nil }

// UnmarshalBinary decodes offset, from, message and ts.
func (e *HistoryEntry) UnmarshalBinary(data []byte) error {
	r := wire.NewReader(data, "chat.history entry")
	var v HistoryEntry
	v.read(&r)
	return set(e, v, &r)
}

func (e *HistoryEntry) appendBinary(dst []byte) []byte {
	dst = wire.AppendUvarint(dst, e.Offset)
	dst = wire.AppendString(dst, e.From)
	dst = wire.AppendString(dst, e.Message)
	return wire.AppendVarint(dst, e.TS)
}

func (e *HistoryEntry) read(r *wire.Reader) {
	e.Offset = r.Field("offset").Uvarint()
	e.From = r.Field("from").String()
	e.Message = r.Field("message").String()
	e.TS = r.Field("ts").Varint()
}

// AppendBinary appends nothing: rpc.discover has no params.
func (DiscoverParams) AppendBinary(dst []byte) ([]byte, error) { return dst, nil }

// UnmarshalBinary accepts only the empty payload.
func (p *DiscoverParams) UnmarshalBinary(data []byte) error {
	r := wire.NewReader(data, "rpc.discover params")
	return r.End()
}

// AppendBinary appends the list of methods.
func (p DiscoverResult) AppendBinary(dst []byte) ([]byte, error) {
	dst = wire.AppendUvarint(dst, uint64(len(p.Methods)))
	for i := range p.Methods {
		dst = p.Methods[i].appendBinary(dst)
	}
	return dst, nil
}

// UnmarshalBinary decodes the list of methods.
func (p *DiscoverResult) UnmarshalBinary(data []byte) error {
	r := wire.NewReader(data, "rpc.discover result")
	var v DiscoverResult
	if n := r.Field("methods").Count(minMethodInfo); n > 0 {
		v.Methods = make([]MethodInfo, n)
		for i := range v.Methods {
			v.Methods[i].read(&r)
		}
	}
	return set(p, v, &r)
}

// AppendBinary appends name, id, push, params and result.
func (m MethodInfo) AppendBinary(dst []byte) ([]byte, error) { return m.appendBinary(dst), nil }

// UnmarshalBinary decodes name, id, push, params and result.
func (m *MethodInfo) UnmarshalBinary(data []byte) error {
	r := wire.NewReader(data, "rpc.discover method")
	var v MethodInfo
	v.read(&r)
	return set(m, v, &r)
}

func (m *MethodInfo) appendBinary(dst []byte) []byte {
	dst = wire.AppendString(dst, m.Name)
	dst = wire.AppendUvarint(dst, m.ID)
	dst = wire.AppendBool(dst, m.Push)
	dst = wire.AppendString(dst, m.Params)
	return wire.AppendString(dst, m.Result)
}

func (m *MethodInfo) read(r *wire.Reader) {
	m.Name = r.Field("name").String()
	m.ID = r.Field("id").Uvarint()
	m.Push = r.Field("push").Bool()
	m.Params = r.Field("params").String()
	m.Result = r.Field("result").String()
}

// AppendBinary appends the flags byte, from, message and ts, then room, to,
// offset and epoch when they are set. A message with an offset and no
// epoch, or an epoch and no offset, has no encoding.
func (m Message) AppendBinary(dst []byte) ([]byte, error) {
	if (m.Offset != 0) != (m.Epoch != "") {
		return dst, errEpoch
	}
	var flags byte
	if m.Room != "" {
		flags |= msgRoom
	}
	if m.To != "" {
		flags |= msgTo
	}
	if m.Offset != 0 {
		flags |= msgOffset | msgEpoch
	}
	dst = append(dst, flags)
	dst = wire.AppendString(dst, m.From)
	dst = wire.AppendString(dst, m.Message)
	dst = wire.AppendVarint(dst, m.TS)
	if flags&msgRoom != 0 {
		dst = wire.AppendString(dst, m.Room)
	}
	if flags&msgTo != 0 {
		dst = wire.AppendString(dst, m.To)
	}
	if flags&msgOffset != 0 {
		dst = wire.AppendUvarint(dst, m.Offset)
		dst = wire.AppendString(dst, m.Epoch)
	}
	return dst, nil
}

// UnmarshalBinary decodes a chat.message push. A flag set for an empty
// value is invalid, as are the reserved flag bits and an epoch flag that
// differs from the offset flag.
func (m *Message) UnmarshalBinary(data []byte) error {
	r := wire.NewReader(data, "chat.message")
	flags := r.Field("flags").Byte()
	if flags&^msgFlags != 0 {
		r.Fail(errFlags)
	} else if (flags&msgOffset == 0) != (flags&msgEpoch == 0) {
		r.Fail(errEpoch)
	}
	v := Message{From: r.Field("from").String(), Message: r.Field("message").String(), TS: r.Field("ts").Varint()}
	if flags&msgRoom != 0 {
		v.Room = nonEmpty(&r, r.Field("room").String())
	}
	if flags&msgTo != 0 {
		v.To = nonEmpty(&r, r.Field("to").String())
	}
	if flags&msgOffset != 0 {
		if v.Offset = r.Field("offset").Uvarint(); v.Offset == 0 {
			r.Fail(errEmpty)
		}
		v.Epoch = nonEmpty(&r, r.Field("epoch").String())
	}
	return set(m, v, &r)
}

// AppendBinary appends room, client_id and the event byte. An event other
// than EventJoin or EventLeave has no encoding.
func (p Presence) AppendBinary(dst []byte) ([]byte, error) {
	var ev byte
	switch p.Event {
	case EventJoin:
		ev = eventJoin
	case EventLeave:
		ev = eventLeave
	default:
		return dst, errEvent
	}
	dst = wire.AppendString(dst, p.Room)
	dst = wire.AppendString(dst, p.ClientID)
	return append(dst, ev), nil
}

// UnmarshalBinary decodes room, client_id and the event byte.
func (p *Presence) UnmarshalBinary(data []byte) error {
	r := wire.NewReader(data, "chat.presence")
	v := Presence{Room: r.Field("room").String(), ClientID: r.Field("client_id").String()}
	switch r.Field("event").Byte() {
	case eventJoin:
		v.Event = EventJoin
	case eventLeave:
		v.Event = EventLeave
	default:
		r.Fail(errEvent)
	}
	return set(p, v, &r)
}

// AppendBinary appends kind and message.
func (n Notice) AppendBinary(dst []byte) ([]byte, error) {
	dst = wire.AppendString(dst, n.Kind)
	return wire.AppendString(dst, n.Message), nil
}

// UnmarshalBinary decodes kind and message.
func (n *Notice) UnmarshalBinary(data []byte) error {
	r := wire.NewReader(data, "gateway.notice")
	v := Notice{Kind: r.Field("kind").String(), Message: r.Field("message").String()}
	return set(n, v, &r)
}

// set stores v in *p when r consumed its payload exactly.
func set[T any](p *T, v T, r *wire.Reader) error {
	if err := r.End(); err != nil {
		return err
	}
	*p = v
	return nil
}

func nonEmpty(r *wire.Reader, s string) string {
	if s == "" {
		r.Fail(errEmpty)
	}
	return s
}

func appendStrings(dst []byte, ss []string) []byte {
	dst = wire.AppendUvarint(dst, uint64(len(ss)))
	for _, s := range ss {
		dst = wire.AppendString(dst, s)
	}
	return dst
}

func readStrings(r *wire.Reader) []string {
	n := r.Count(minString)
	if n == 0 {
		return nil
	}
	ss := make([]string, n)
	for i := range ss {
		ss[i] = r.String()
	}
	return ss
}
