package gateway

import (
	"context"
	"errors"
	"fmt"
	"time"
	"unicode/utf8"

	"github.com/subgate/subgate/codec"
	"github.com/subgate/subgate/protocols/chat"
)

// chatService implements the chat methods on a Hub.
type chatService struct {
	hub Hub
	now func() time.Time
}

// RegisterChat declares every chat method and rpc.discover on r.
func RegisterChat(r *Router, hub Hub) {
	s := &chatService{hub: hub, now: time.Now}
	Register(r, chat.MethodDiscover, s.discover)
	Register(r, chat.MethodPing, s.ping)
	Register(r, chat.MethodBroadcast, s.broadcast)
	Register(r, chat.MethodJoin, s.join)
	Register(r, chat.MethodLeave, s.leave)
	Register(r, chat.MethodSend, s.send)
	Register(r, chat.MethodDirect, s.direct)
	Register(r, chat.MethodMembers, s.members)
	Register(r, chat.MethodHistory, s.history)
}

func caller(ctx context.Context) string {
	info, _ := ConnInfoFrom(ctx)
	return info.ClientID
}

func (s *chatService) ping(ctx context.Context, _ *chat.PingParams) (*chat.PingResult, error) {
	return &chat.PingResult{Status: "ok", Timestamp: s.now().Unix()}, nil
}

func (s *chatService) broadcast(ctx context.Context, p *chat.BroadcastParams) (*chat.BroadcastResult, error) {
	if err := checkText(p.Message); err != nil {
		return nil, err
	}
	m := &chat.Message{From: caller(ctx), Message: p.Message, TS: s.now().UnixMilli()}
	n, err := s.hub.Broadcast(ctx, NewPush(chat.PushMessage, m))
	if err != nil {
		return nil, hubError(err, "")
	}
	return &chat.BroadcastResult{Status: "ok", Delivered: uint64(n)}, nil
}

func (s *chatService) join(ctx context.Context, p *chat.JoinParams) (*chat.JoinResult, error) {
	if err := checkRoom(p.Room); err != nil {
		return nil, err
	}
	members, pos, err := s.hub.Join(ctx, p.Room, caller(ctx))
	if err != nil {
		return nil, hubError(err, p.Room)
	}
	return &chat.JoinResult{Room: p.Room, Members: members, Offset: pos.Offset, Epoch: pos.Epoch}, nil
}

func (s *chatService) leave(ctx context.Context, p *chat.LeaveParams) (*chat.LeaveResult, error) {
	if err := checkRoom(p.Room); err != nil {
		return nil, err
	}
	if err := s.hub.Leave(ctx, p.Room, caller(ctx)); err != nil {
		return nil, hubError(err, p.Room)
	}
	return &chat.LeaveResult{Room: p.Room}, nil
}

func (s *chatService) send(ctx context.Context, p *chat.SendParams) (*chat.SendResult, error) {
	if err := checkRoom(p.Room); err != nil {
		return nil, err
	}
	if err := checkText(p.Message); err != nil {
		return nil, err
	}
	pos, err := s.hub.Send(ctx, chat.Message{Room: p.Room, From: caller(ctx), Message: p.Message, TS: s.now().UnixMilli()})
	if err != nil {
		return nil, hubError(err, p.Room)
	}
	return &chat.SendResult{Room: p.Room, Offset: pos.Offset, Epoch: pos.Epoch}, nil
}

func (s *chatService) direct(ctx context.Context, p *chat.DirectParams) (*chat.DirectResult, error) {
	if !ValidID(p.To) {
		return nil, codec.InvalidParams("to: a client id is 1-64 characters of [A-Za-z0-9._-]")
	}
	if err := checkText(p.Message); err != nil {
		return nil, err
	}
	m := &chat.Message{From: caller(ctx), To: p.To, Message: p.Message, TS: s.now().UnixMilli()}
	n, err := s.hub.Direct(ctx, p.To, NewPush(chat.PushMessage, m))
	if err != nil {
		return nil, hubError(err, "")
	}
	if n == 0 {
		return nil, chat.NewError(chat.CodeUnknownClient, p.To)
	}
	return &chat.DirectResult{Delivered: uint64(n)}, nil
}

func (s *chatService) members(ctx context.Context, p *chat.MembersParams) (*chat.MembersResult, error) {
	if err := checkRoom(p.Room); err != nil {
		return nil, err
	}
	members, err := s.hub.Members(ctx, p.Room)
	if err != nil {
		return nil, hubError(err, p.Room)
	}
	return &chat.MembersResult{Room: p.Room, Members: members}, nil
}

func (s *chatService) history(ctx context.Context, p *chat.HistoryParams) (*chat.HistoryResult, error) {
	if err := checkRoom(p.Room); err != nil {
		return nil, err
	}
	limit := p.Limit
	if limit == 0 {
		limit = chat.DefaultHistoryLimit
	}
	if limit > chat.MaxHistoryLimit {
		return nil, codec.InvalidParams(historyLimitDetail)
	}
	if p.Epoch != "" && !ValidEpoch(p.Epoch) {
		return nil, codec.InvalidParams(epochDetail)
	}
	msgs, pos, err := s.hub.History(ctx, p.Room, p.Since, limit)
	if err != nil {
		return nil, hubError(err, p.Room)
	}
	ok := recovered(p.Since, msgs, pos)
	if p.Epoch != "" && p.Epoch != pos.Epoch {
		// The client's offsets belong to a history that is gone: it
		// rebuilds from the oldest kept message.
		if msgs, pos, err = s.hub.History(ctx, p.Room, 0, limit); err != nil {
			return nil, hubError(err, p.Room)
		}
		ok = false
	}
	return &chat.HistoryResult{Room: p.Room, Messages: msgs, Epoch: pos.Epoch, Recovered: ok}, nil
}

// recovered reports whether msgs, the kept messages after since, continue
// exactly where the client left off in a stream whose last offset is
// latest.Offset: nothing between since and them was evicted, and since is
// not beyond the stream's end. (Offsets of a room are consecutive, so the
// first message after since must be since+1.)
func recovered(since uint64, msgs []chat.HistoryEntry, latest Position) bool {
	if since > latest.Offset {
		return false
	}
	if len(msgs) == 0 {
		return since == latest.Offset
	}
	return msgs[0].Offset == since+1
}

func (s *chatService) discover(ctx context.Context, _ *chat.DiscoverParams) (*chat.DiscoverResult, error) {
	return &chat.DiscoverResult{Methods: chat.Describe()}, nil
}

// historyLimitDetail is the -32602 detail of a chat.history limit over
// chat.MaxHistoryLimit.
var historyLimitDetail = fmt.Sprintf("limit: at most %d", chat.MaxHistoryLimit)

// epochDetail is the -32602 detail of an invalid chat.history epoch.
var epochDetail = fmt.Sprintf("epoch: 1-%d characters of [A-Za-z0-9_-]", chat.MaxEpochLen)

// hubError turns a hub error into the chat error a client gets. Any other
// error (a hub that could not answer) is an internal error, logged with
// the call.
func hubError(err error, room string) error {
	if errors.Is(err, ErrNotMember) {
		return chat.NewError(chat.CodeNotMember, room)
	}
	if le, ok := errors.AsType[*LimitError](err); ok {
		return chat.NewError(chat.CodeLimitReached, le.Detail())
	}
	return err
}

func checkRoom(room string) error {
	if !ValidID(room) {
		return chat.NewError(chat.CodeInvalidRoom, "a room name is 1-64 characters of [A-Za-z0-9._-]")
	}
	return nil
}

func checkText(s string) error {
	switch {
	case s == "":
		return chat.NewError(chat.CodeEmptyMessage, "")
	case len(s) > chat.MaxMessageLen:
		return chat.NewError(chat.CodeMessageTooLong, "at most 4096 bytes")
	case !utf8.ValidString(s):
		return codec.InvalidParams("message: invalid UTF-8")
	}
	return nil
}

// ValidEpoch reports whether s is a valid stream epoch: 1..chat.MaxEpochLen
// characters of [A-Za-z0-9_-].
func ValidEpoch(s string) bool {
	if len(s) == 0 || len(s) > chat.MaxEpochLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c == '.' || !idByte(c) {
			return false
		}
	}
	return true
}

// ValidID reports whether s is a valid client id or room name: 1-64
// characters of [A-Za-z0-9._-].
func ValidID(s string) bool {
	if len(s) == 0 || len(s) > chat.MaxIDLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !idByte(s[i]) {
			return false
		}
	}
	return true
}

// idByte reports whether c may appear in a client id or room name.
func idByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-'
}
