package natshub

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/subgate/subgate/codec"
	"github.com/subgate/subgate/gateway"
	"github.com/subgate/subgate/protocols/chat"
)

// Headers of a stored room message.
const (
	hdrOffset = "Subgate-Offset"
	hdrEpoch  = "Subgate-Epoch"
)

// maxSendTries bounds the retries of a send that lost the race for the
// room's next offset to other nodes.
const maxSendTries = 16

func (h *Hub) histSubject(room string) string { return h.subjHist + b64.EncodeToString([]byte(room)) }

// lastPosition reads a room's last stored message from the stream: its
// position and stream sequence. A room with no stored message has the
// zero Position and sequence 0.
func (h *Hub) lastPosition(ctx context.Context, room string) (gateway.Position, uint64, error) {
	raw, err := h.hist.GetLastMsgForSubject(ctx, h.histSubject(room))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return gateway.Position{}, 0, nil
	}
	if err != nil {
		return gateway.Position{}, 0, fmt.Errorf("natshub: reading %s's last message: %w", room, err)
	}
	pos, err := position(raw.Header)
	if err != nil {
		return gateway.Position{}, 0, err
	}
	return pos, raw.Sequence, nil
}

func position(hdr nats.Header) (gateway.Position, error) {
	off, err := strconv.ParseUint(hdr.Get(hdrOffset), 10, 64)
	if err != nil || hdr.Get(hdrEpoch) == "" {
		return gateway.Position{}, fmt.Errorf("natshub: a stored message without offset or epoch")
	}
	return gateway.Position{Offset: off, Epoch: hdr.Get(hdrEpoch)}, nil
}

// Send stores a room message with the room's next offset, then publishes
// it once for every node with members in the room.
func (h *Hub) Send(ctx context.Context, m chat.Message) (gateway.Position, error) {
	ctx, cancel := h.bound(ctx)
	defer cancel()
	if err := h.checkMember(ctx, m.Room, m.From); err != nil {
		return gateway.Position{}, err
	}
	pos, err := h.store(ctx, &m)
	if err != nil {
		return gateway.Position{}, err
	}
	m.Offset, m.Epoch = pos.Offset, pos.Epoch
	data, err := encodePush(gateway.NewPush(chat.PushMessage, &m))
	if err != nil {
		return gateway.Position{}, err
	}
	// Stored is sent: a lost live push is what history is for.
	if err := h.nc.Publish(h.subjRoom+b64.EncodeToString([]byte(m.Room)), data); err != nil {
		h.log.Warn("publishing a room message", "room", m.Room, "err", err)
	}
	return pos, nil
}

// store appends m to the room's history at the offset after the room's
// last message, and returns its position.
func (h *Hub) store(ctx context.Context, m *chat.Message) (gateway.Position, error) {
	e := chat.HistoryEntry{From: m.From, Message: m.Message, TS: m.TS}
	for try := 0; try < maxSendTries; try++ {
		h.mu.Lock()
		last, cached := h.last[m.Room]
		h.mu.Unlock()
		if !cached {
			pos, seq, err := h.lastPosition(ctx, m.Room)
			if err != nil {
				return gateway.Position{}, err
			}
			last = lastMsg{seq, pos}
		}
		next := gateway.Position{Offset: last.pos.Offset + 1, Epoch: last.pos.Epoch}
		if last.seq == 0 {
			next = gateway.Position{Offset: 1, Epoch: randomID()}
		}
		e.Offset = next.Offset
		msg := nats.NewMsg(h.histSubject(m.Room))
		msg.Header.Set(hdrOffset, strconv.FormatUint(next.Offset, 10))
		msg.Header.Set(hdrEpoch, next.Epoch)
		var err error
		if msg.Data, err = canonical.Append(nil, codec.Message{Kind: codec.KindResult, ID: codec.NumberID(0)}, &e); err != nil {
			return gateway.Position{}, err
		}
		ack, err := h.js.PublishMsg(ctx, msg, jetstream.WithExpectLastSequencePerSubject(last.seq))
		h.mu.Lock()
		if err == nil {
			h.last[m.Room] = lastMsg{ack.Sequence, next}
		} else {
			delete(h.last, m.Room)
		}
		h.mu.Unlock()
		if err == nil {
			return next, nil
		}
		if !wrongLastSequence(err) {
			return gateway.Position{}, fmt.Errorf("natshub: storing a message in %s: %w", m.Room, err)
		}
	}
	return gateway.Position{}, fmt.Errorf("natshub: storing a message in %s: %d tries lost to other senders", m.Room, maxSendTries)
}

func wrongLastSequence(err error) bool {
	var api *jetstream.APIError
	return errors.As(err, &api) && (api.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
		api.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant)
}

// History returns up to limit of a room's messages after since, in the
// room's current epoch, and the room's last position. It reads the
// room's stored messages through a short-lived consumer.
func (h *Hub) History(ctx context.Context, room string, since, limit uint64) ([]chat.HistoryEntry, gateway.Position, error) {
	ctx, cancel := h.bound(ctx)
	defer cancel()
	pos, lastSeq, err := h.lastPosition(ctx, room)
	if err != nil || lastSeq == 0 || since >= pos.Offset || limit == 0 {
		return []chat.HistoryEntry{}, pos, err
	}
	cons, err := h.hist.CreateConsumer(ctx, jetstream.ConsumerConfig{
		FilterSubject:     h.histSubject(room),
		DeliverPolicy:     jetstream.DeliverAllPolicy,
		AckPolicy:         jetstream.AckNonePolicy,
		MemoryStorage:     true,
		InactiveThreshold: h.opt.Timeout * 5,
	})
	if err != nil {
		return nil, gateway.Position{}, fmt.Errorf("natshub: reading %s's history: %w", room, err)
	}
	defer h.hist.DeleteConsumer(context.WithoutCancel(ctx), cons.CachedInfo().Name)
	out := []chat.HistoryEntry{}
	for uint64(len(out)) < limit {
		batch, err := cons.FetchNoWait(256)
		if err != nil {
			return nil, gateway.Position{}, fmt.Errorf("natshub: reading %s's history: %w", room, err)
		}
		n, done := 0, false
		for msg := range batch.Messages() {
			n++
			meta, err := msg.Metadata()
			if err != nil {
				continue
			}
			done = meta.Sequence.Stream >= lastSeq
			if e, ok := entry(msg, pos.Epoch); ok && e.Offset > since && uint64(len(out)) < limit {
				out = append(out, e)
			}
		}
		if err := batch.Error(); err != nil {
			return nil, gateway.Position{}, fmt.Errorf("natshub: reading %s's history: %w", room, err)
		}
		if done || n == 0 {
			break
		}
	}
	return out, pos, nil
}

// entry decodes a stored message of the given epoch.
func entry(msg jetstream.Msg, epoch string) (chat.HistoryEntry, bool) {
	p, err := position(msg.Headers())
	if err != nil || p.Epoch != epoch {
		return chat.HistoryEntry{}, false
	}
	var e chat.HistoryEntry
	if err := decodeEntry(msg.Data(), &e); err != nil {
		return chat.HistoryEntry{}, false
	}
	e.Offset = p.Offset
	return e, true
}

// A stored message's data is a msgpack reply whose result is the entry
// (the codec has no bare-value form).
func decodeEntry(b []byte, e *chat.HistoryEntry) error {
	var one [1]codec.Message
	msgs, _, err := canonical.Decode(one[:0], b)
	if err != nil {
		return err
	}
	if len(msgs) != 1 || msgs[0].Kind != codec.KindResult {
		return errors.New("natshub: a stored message is not an entry")
	}
	return canonical.Unmarshal(msgs[0].Body, e)
}
