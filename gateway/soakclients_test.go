package gateway

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/gobwas/ws"

	"github.com/subgate/subgate/client"
	"github.com/subgate/subgate/codec"
	"github.com/subgate/subgate/protocols"
	"github.com/subgate/subgate/protocols/chat"
)

// The soak test's clients: well-behaved members, which record what they
// did and received for the final checks, and misbehaving ones, which
// check the server's answer to what they do.

// member is a well-behaved client: one connection for the whole run, one
// call at a time, pushes read at once.
type member struct {
	s    *soak
	id   string
	c    *client.Client
	rng  *rand.Rand
	pace time.Duration
	seq  int

	// Owned by the member's goroutine.
	stints  map[string][]*stint // memberships by room, in order
	sends   []*sendRecord       // answered, in order
	directs []directRecord      // answered, in order

	// Filled by the client's read goroutine.
	mu            sync.Mutex
	got           map[string][]chat.Message // room messages by room, in arrival order
	gotBroadcasts []string
	gotDirects    []chat.Message
}

// stint is one membership of a room. Its start is the room's offset at
// the join; the leave's ticks order its end against sends.
type stint struct {
	joinOffset uint64 // the room's offset in chat.join's result
	leaveStart uint64 // 0 while a member
	leaveDone  uint64
}

type directRecord struct{ to, text string }

func (s *soak) dialMember(i int) *member {
	m := &member{s: s, id: fmt.Sprint("m-", i), rng: s.rng(uint64(i)), stints: map[string][]*stint{}, got: map[string][]chat.Message{}}
	m.pace = 800*time.Millisecond + time.Duration(m.rng.IntN(400))*time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), soakCallTimeout)
	defer cancel()
	c, err := client.Dial(ctx, "ws://"+s.addr+"/ws/"+m.id, client.Options{Protocol: allProtos[i%len(allProtos)], OnPush: m.onPush})
	if err != nil {
		s.t.Fatal(err)
	}
	s.t.Cleanup(func() { c.Close() })
	m.c = c
	return m
}

func (m *member) onPush(p client.Push) {
	if p.Method != chat.PushMessage {
		return // presence and notices are not checked
	}
	var msg chat.Message
	if err := p.Decode(&msg); err != nil {
		m.s.t.Errorf("%s: %v", m.id, err)
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	switch {
	case msg.Room != "":
		m.got[msg.Room] = append(m.got[msg.Room], msg)
	case msg.To != "":
		m.gotDirects = append(m.gotDirects, msg)
	default:
		m.gotBroadcasts = append(m.gotBroadcasts, msg.Message)
	}
	m.s.count(opDelivered)
}

// loop makes one call per pace until the run ends; the first failure
// fails the test and stops the member.
func (m *member) loop() {
	tick := time.NewTicker(m.pace)
	defer tick.Stop()
	for n := 0; n < 1<<16 && m.s.ctx.Err() == nil; n++ {
		if err := m.step(); err != nil {
			m.s.t.Errorf("%s: %v (server: %s)", m.id, err, m.s.log.reasonNow(m.id))
			return
		}
		select {
		case <-tick.C:
		case <-m.s.ctx.Done():
			return
		}
	}
}

func (m *member) step() error {
	in := m.memberOf()
	switch r := m.rng.IntN(100); {
	case len(in) == 0 || r < 8 && len(in) < soakMaxRooms:
		out := slices.DeleteFunc(slices.Clone(m.s.rooms), func(room string) bool { return slices.Contains(in, room) })
		return m.join(out[m.rng.IntN(len(out))])
	case r < 14:
		return m.leave(in[m.rng.IntN(len(in))])
	case r < 60:
		return m.send(in[m.rng.IntN(len(in))])
	case r < 62:
		return m.broadcast()
	case r < 72:
		return m.direct()
	case r < 86:
		return m.history(m.s.rooms[m.rng.IntN(len(m.s.rooms))])
	default:
		return m.members(m.s.rooms[m.rng.IntN(len(m.s.rooms))])
	}
}

// memberOf lists the rooms the member is in.
func (m *member) memberOf() []string {
	var in []string
	for room, st := range m.stints {
		if st[len(st)-1].leaveStart == 0 {
			in = append(in, room)
		}
	}
	slices.Sort(in) // map order would make the run's choices random
	return in
}

// text returns a message text unique in the run, of varied length.
func (m *member) text(kind string) string {
	m.seq++
	return fmt.Sprintf("%s/%s/%d/%s", kind, m.id, m.seq, strings.Repeat("t", m.rng.IntN(64)))
}

func (m *member) join(room string) error {
	var res chat.JoinResult
	if err := soakCall(m.c, chat.MethodJoin, &chat.JoinParams{Room: room}, &res); err != nil {
		return err
	}
	if res.Room != room || !slices.Contains(res.Members, m.id) {
		return fmt.Errorf("join %s: result %+v", room, res)
	}
	m.stints[room] = append(m.stints[room], &stint{joinOffset: res.Offset})
	m.s.count(opJoin)
	return nil
}

func (m *member) leave(room string) error {
	st := m.stints[room][len(m.stints[room])-1]
	st.leaveStart = m.s.tick()
	if err := soakCall(m.c, chat.MethodLeave, &chat.LeaveParams{Room: room}, nil); err != nil {
		return err
	}
	st.leaveDone = m.s.tick()
	m.s.count(opLeave)
	return nil
}

func (m *member) send(room string) error {
	r, err := m.s.send(m.c, m.id, room, m.text("s"))
	if err != nil {
		return err
	}
	m.sends = append(m.sends, r)
	return nil
}

func (m *member) broadcast() error {
	text := m.text("b")
	var res chat.BroadcastResult
	if err := soakCall(m.c, chat.MethodBroadcast, &chat.BroadcastParams{Message: text}, &res); err != nil {
		return err
	}
	if res.Delivered < uint64(len(m.s.members)) {
		return fmt.Errorf("broadcast delivered to %d connections, fewer than the %d members", res.Delivered, len(m.s.members))
	}
	m.s.mu.Lock()
	m.s.broadcasts = append(m.s.broadcasts, text)
	m.s.mu.Unlock()
	m.s.count(opBroadcast)
	return nil
}

func (m *member) direct() error {
	to := m.s.members[m.rng.IntN(len(m.s.members))].id
	text := m.text("d")
	var res chat.DirectResult
	if err := soakCall(m.c, chat.MethodDirect, &chat.DirectParams{To: to, Message: text}, &res); err != nil {
		return err
	}
	if res.Delivered != 1 {
		return fmt.Errorf("direct to %s delivered to %d connections, want 1", to, res.Delivered)
	}
	m.directs = append(m.directs, directRecord{to, text})
	m.s.count(opDirect)
	return nil
}

// history asks for a random page and checks its shape.
func (m *member) history(room string) error {
	since, limit := uint64(m.rng.IntN(200)), uint64(1+m.rng.IntN(soakPageLimit))
	var res chat.HistoryResult
	if err := soakCall(m.c, chat.MethodHistory, &chat.HistoryParams{Room: room, Since: since, Limit: limit}, &res); err != nil {
		return err
	}
	if res.Room != room || uint64(len(res.Messages)) > limit {
		return fmt.Errorf("history of %s with limit %d: %s with %d messages", room, limit, res.Room, len(res.Messages))
	}
	last := since
	for _, e := range res.Messages {
		if e.Offset <= last {
			return fmt.Errorf("history of %s since %d: offset %d after %d", room, since, e.Offset, last)
		}
		last = e.Offset
	}
	m.s.count(opHistory)
	return nil
}

// members checks that the member list is sorted and has the member in
// it exactly when it is in the room.
func (m *member) members(room string) error {
	var res chat.MembersResult
	if err := soakCall(m.c, chat.MethodMembers, &chat.MembersParams{Room: room}, &res); err != nil {
		return err
	}
	if in := slices.Contains(m.memberOf(), room); !slices.IsSorted(res.Members) || slices.Contains(res.Members, m.id) != in {
		return fmt.Errorf("members of %s: %v (member: %v)", room, res.Members, in)
	}
	m.s.count(opMembers)
	return nil
}

// misbehave runs episodes of one misbehaviour until the run ends; the
// first unexpected answer from the server fails the test.
func (s *soak) misbehave(op soakOp, proto string, rng *rand.Rand) {
	episode := map[soakOp]func(id, proto string, rng *rand.Rand) error{
		opStall: s.stall, opReset: s.reset, opGarbage: s.garbage, opChurn: s.churn,
	}[op]
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for n := 0; n < 1<<12 && s.ctx.Err() == nil; n++ {
		id := fmt.Sprintf("%s-%s-%d", opNames[op], proto, n)
		if err := episode(id, proto, rng); err != nil {
			s.t.Errorf("%s: %v", id, err)
			return
		}
		s.count(op)
		select {
		case <-tick.C:
		case <-s.ctx.Done():
			return
		}
	}
}

// rawDial upgrades a connection for a client that writes frames itself.
func (s *soak) rawDial(id, proto string) (net.Conn, *bufio.Reader, error) {
	return s.rawDialWith(id, proto, ws.Dialer{})
}

// rawDialWith is rawDial with a dialer, to shape the socket.
func (s *soak) rawDialWith(id, proto string, d ws.Dialer) (net.Conn, *bufio.Reader, error) {
	ctx, cancel := context.WithTimeout(context.Background(), soakCallTimeout)
	defer cancel()
	d.Protocols = []string{proto}
	nc, br, hs, err := d.Dial(ctx, "ws://"+s.addr+"/ws/"+id)
	if err != nil {
		return nil, nil, err
	}
	if hs.Protocol != proto {
		nc.Close()
		return nil, nil, fmt.Errorf("server chose %q", hs.Protocol)
	}
	if br == nil {
		br = bufio.NewReader(nc)
	}
	_ = nc.SetDeadline(time.Now().Add(30 * time.Second))
	return nc, br, nil
}

func request(proto string, id int64, method string, params any) []byte {
	p, _ := protocols.Lookup(protocols.All, proto)
	b, err := codec.AppendRequest(p.Codec, nil, codec.NumberID(id), method, params)
	if err != nil {
		panic(err) // the test's own params
	}
	return maskedFrame(dataOp(proto), true, b)
}

// stallDialer gives a staller a small receive buffer, fixed before the
// connection is made (so that the window stays small): the server's
// writer is stuck after a few KB, and the send queue overflows after a
// handful of replies instead of after the megabytes an auto-tuned
// loopback socket takes in.
var stallDialer = ws.Dialer{NetDial: func(ctx context.Context, network, addr string) (net.Conn, error) {
	d := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		var err error
		if cerr := rc.Control(func(fd uintptr) {
			err = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 8<<10)
		}); cerr != nil {
			return cerr
		}
		return err
	}}
	return d.DialContext(ctx, network, addr)
}}

// stall reads nothing while the server has more for it than its send
// bound and the socket buffers hold. Even episodes stall on pushes: a
// feeder sends the staller 4000-byte direct messages until the server has
// cut it as a slow consumer (-32002 once it is gone), which it must do
// with the slow-consumer code if it can still send a close frame. Odd
// episodes stall on replies: they pipeline chat.history calls, which the
// server never cuts a client for; it stops reading from the staller, and
// the write timeout ends the connection (io_error, no close frame).
func (s *soak) stall(id, proto string, rng *rand.Rand) error {
	nc, br, err := s.rawDialWith(id, proto, stallDialer)
	if err != nil {
		return err
	}
	defer nc.Close()
	want := CloseIOError
	if rng.IntN(2) == 0 {
		want = CloseSlowConsumer
		if err := s.feed(id, proto); err != nil {
			return err
		}
	} else {
		var reqs []byte
		for i := range 100 {
			reqs = append(reqs, request(proto, int64(i), chat.MethodHistory, &chat.HistoryParams{Room: soakStallRoom, Limit: soakPageLimit})...)
		}
		if _, err := nc.Write(reqs); err != nil {
			return err
		}
	}
	if err := s.expectReason(id, want); err != nil {
		return err
	}
	_ = nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	codes, err := readUntilEnd(br)
	if err == nil && len(codes) > 0 && (want == CloseIOError || codes[0] != CloseSlowConsumer.Code()) {
		err = fmt.Errorf("closed with %d after %s", codes[0], want)
	}
	return err
}

// feed sends direct messages to a staller until the server no longer
// knows it.
func (s *soak) feed(to, proto string) error {
	ctx, cancel := context.WithTimeout(context.Background(), soakCallTimeout)
	defer cancel()
	feeder, err := client.Dial(ctx, "ws://"+s.addr+"/ws/feeder-"+to, client.Options{Protocol: proto})
	if err != nil {
		return err
	}
	defer feeder.Close()
	text := strings.Repeat("f", soakFillSize)
	for range 10000 {
		var res chat.DirectResult
		err := soakCall(feeder, chat.MethodDirect, &chat.DirectParams{To: to, Message: text}, &res)
		if e, ok := errors.AsType[*codec.Error](err); ok && e.Code == chat.CodeUnknownClient {
			return nil
		}
		if err != nil {
			return err
		}
	}
	return errors.New("10,000 direct messages and the staller was not cut")
}

// expectReason waits for the server to log the end of id's connection and
// checks why it ended.
func (s *soak) expectReason(id string, want CloseReason) error {
	reason, err := s.log.waitReason(id, 15*time.Second)
	if err == nil && reason != want.String() {
		err = fmt.Errorf("disconnected as %q, want %q", reason, want)
	}
	return err
}

// reset joins a room, then resets the connection in the middle of a
// frame: the server must see the failed socket and forget the client
// (the final chat.members checks that it left the room).
func (s *soak) reset(id, proto string, rng *rand.Rand) error {
	nc, br, err := s.rawDial(id, proto)
	if err != nil {
		return err
	}
	defer nc.Close()
	if _, err := nc.Write(request(proto, 1, chat.MethodJoin, &chat.JoinParams{Room: s.rooms[rng.IntN(len(s.rooms))]})); err != nil {
		return err
	}
	if err := readReply(br, proto, 1); err != nil {
		return err
	}
	half := request(proto, 2, chat.MethodPing, &chat.PingParams{})
	if _, err := nc.Write(half[:len(half)/2]); err != nil {
		return err
	}
	_ = nc.(*net.TCPConn).SetLinger(0)
	nc.Close()
	return s.expectReason(id, CloseIOError)
}

// readReply reads frames until the reply with id, skipping pushes.
func readReply(br *bufio.Reader, proto string, id int64) error {
	p, _ := protocols.Lookup(protocols.All, proto)
	for frames := 0; frames < 1<<16; frames++ {
		f, err := ws.ReadFrame(br)
		if err != nil {
			return err
		}
		if f.Header.OpCode != dataOp(proto) {
			continue
		}
		msgs, _, err := p.Codec.Decode(nil, f.Payload)
		if err != nil {
			return err
		}
		for _, m := range msgs {
			if m.ID.Kind == codec.IDNumber && m.ID.Num == id {
				if m.Kind != codec.KindResult {
					return fmt.Errorf("reply %d: %v %v", id, m.Kind, m.Error)
				}
				return nil
			}
		}
	}
	return errors.New("no reply")
}

// garbageCase is bad input and the close code it must get (0: the input
// is random, any documented code or none).
type garbageCase struct {
	name   string
	frames func(proto string, rng *rand.Rand) []byte
	code   ws.StatusCode
}

var garbageCases = []garbageCase{
	{"unmasked frame", func(proto string, _ *rand.Rand) []byte {
		return ws.MustCompileFrame(ws.NewFrame(dataOp(proto), true, []byte("x")))
	}, CloseProtocolError.Code()},
	{"reserved opcode", func(string, *rand.Rand) []byte { return maskedFrame(ws.OpCode(3), true, nil) }, CloseProtocolError.Code()},
	{"continuation first", func(string, *rand.Rand) []byte { return maskedFrame(ws.OpContinuation, true, []byte("x")) }, CloseProtocolError.Code()},
	{"invalid close code", func(string, *rand.Rand) []byte { return maskedFrame(ws.OpClose, true, []byte{0x03, 0xe7}) }, CloseProtocolError.Code()},
	{"wrong frame type", func(proto string, _ *rand.Rand) []byte {
		if dataOp(proto) == ws.OpText {
			return maskedFrame(ws.OpBinary, true, []byte("x"))
		}
		return maskedFrame(ws.OpText, true, []byte("x"))
	}, CloseUnsupportedData.Code()},
	{"1 TiB announced", func(proto string, _ *rand.Rand) []byte {
		return maskedHeader(ws.Header{Fin: true, OpCode: dataOp(proto), Length: 1 << 40})
	}, CloseTooBig.Code()},
	{"random bytes", randomGarbage, 0},
}

// randomGarbage returns 1-64 random bytes that hold no complete masked
// data frame: a call hidden in them (a chat.broadcast in binary-raw, say)
// would add to what the members receive.
func randomGarbage(_ string, rng *rand.Rand) []byte {
	b := make([]byte, 64)
	for range 1000 {
		b = b[:1+rng.IntN(64)]
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		if !holdsDataFrame(b) {
			return b
		}
	}
	return []byte{0x8f, 0x80} // a reserved opcode: practically never reached
}

// holdsDataFrame reports whether the frames b starts with include a
// complete masked data frame.
func holdsDataFrame(b []byte) bool {
	r := bytes.NewReader(b)
	for {
		h, err := ws.ReadHeader(r)
		if err != nil || h.Length > int64(r.Len()) {
			return false
		}
		if !h.OpCode.IsControl() && h.Masked {
			return true
		}
		_, _ = r.Seek(h.Length, io.SeekCurrent)
	}
}

// garbage sends one bad input and checks the close code it gets; random
// input is followed by a half-close, so that a frame it leaves unfinished
// ends at once.
func (s *soak) garbage(id, proto string, rng *rand.Rand) error {
	nc, br, err := s.rawDial(id, proto)
	if err != nil {
		return err
	}
	defer nc.Close()
	tc := garbageCases[rng.IntN(len(garbageCases))]
	input := tc.frames(proto, rng)
	if _, err := nc.Write(input); err != nil {
		return err
	}
	if tc.code == 0 {
		_ = nc.(*net.TCPConn).CloseWrite()
	}
	_ = nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	codes, err := readUntilEnd(br)
	switch {
	case err != nil:
		return fmt.Errorf("%s: %w", tc.name, err)
	case tc.code != 0 && (len(codes) == 0 || codes[0] != tc.code):
		return fmt.Errorf("%s: closed with %v, want %d", tc.name, codes, tc.code)
	case len(codes) > 0 && !documentedCodes[codes[0]] && !clientCloseCodes(input)[codes[0]]:
		return fmt.Errorf("%s % x: closed with %d", tc.name, input, codes[0])
	}
	return nil
}

// churn connects and disconnects: politely after a join and a send
// (recorded like the members' sends), politely after a ping, or by
// dropping the socket without a close frame.
func (s *soak) churn(id, proto string, rng *rand.Rand) error {
	if rng.IntN(3) == 0 {
		nc, _, err := s.rawDial(id, proto)
		if err != nil {
			return err
		}
		return nc.Close()
	}
	ctx, cancel := context.WithTimeout(context.Background(), soakCallTimeout)
	defer cancel()
	c, err := client.Dial(ctx, "ws://"+s.addr+"/ws/"+id, client.Options{Protocol: proto})
	if err != nil {
		return err
	}
	defer c.Close()
	if rng.IntN(2) == 0 {
		return soakCall(c, chat.MethodPing, &chat.PingParams{}, nil)
	}
	room := s.rooms[rng.IntN(len(s.rooms))]
	if err := soakCall(c, chat.MethodJoin, &chat.JoinParams{Room: room}, nil); err != nil {
		return err
	}
	_, err = s.send(c, id, room, "c/"+id)
	return err
}
