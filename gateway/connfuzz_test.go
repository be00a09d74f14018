package gateway

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/subgate/subgate/internal/golden"
	"github.com/subgate/subgate/protocols"
)

// The whole-connection fuzz target: after a real handshake, the input's
// bytes go raw into a live server's socket. Whatever they are, the server
// must end the connection promptly, close it (if with a close frame) with
// a documented code, forget it, log no internal error and go on answering.

// fuzzDeadline bounds one input: the server must have closed the
// connection by then.
const fuzzDeadline = 5 * time.Second

// documentedCodes are the close codes the server sends of its own accord
// (README and specs); any other code must echo the client's close frame.
var documentedCodes = map[ws.StatusCode]bool{
	1000: true, 1001: true, 1002: true, 1003: true, 1007: true, 1008: true,
	1009: true, 1011: true, StatusLagging: true,
}

func FuzzConnection(f *testing.F) {
	log := &serverLog{}
	// Short timeouts keep an input that leaves a frame unfinished cheap;
	// a small history keeps rooms created by inputs small.
	srv, addr := startServerTB(f, Config{IdleTimeout: time.Second, CloseTimeout: 100 * time.Millisecond,
		WriteTimeout: time.Second, HistorySize: 4, Logger: slog.New(log)})
	for _, seed := range connSeeds(f) {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) == 0 {
			return
		}
		proto := allProtos[int(data[0])%len(allProtos)]
		codes := runConnection(t, addr, proto, data[1:])
		echoable := clientCloseCodes(data[1:])
		for _, code := range codes {
			if !documentedCodes[code] && !echoable[code] {
				t.Fatalf("%s: close code %d is neither documented nor the client's", proto, code)
			}
		}
		expectHealthy(t, addr)
		expectNoConns(t, srv)
		log.check(t)
	})
}

// startServerTB is startServer for any test, benchmark or fuzz target: a
// fuzz target starts one server per fuzzing process, shut down when the
// target ends.
func startServerTB(tb testing.TB, cfg Config) (*Server, string) {
	tb.Helper()
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	srv, err := New(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	hs := httptest.NewServer(srv)
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		hs.Close()
	})
	return srv, hs.Listener.Addr().String()
}

// runConnection upgrades a connection, writes input raw and half-closes,
// while it reads what the server sends until the server ends the
// connection. It returns the code of the server's close frame, if any.
func runConnection(t *testing.T, addr, proto string, input []byte) []ws.StatusCode {
	t.Helper()
	c := handshake(t, addr, "/ws/fuzz", strp(proto))
	if c.resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("%s: handshake status %d", proto, c.resp.StatusCode)
	}
	_ = c.nc.SetDeadline(time.Now().Add(fuzzDeadline))
	written := make(chan struct{})
	go func() {
		defer close(written)
		_, _ = c.nc.Write(input) // fails once the server has closed: fine
		_ = c.nc.(*net.TCPConn).CloseWrite()
	}()
	codes, err := readUntilEnd(c.br)
	<-written
	if err != nil {
		t.Fatalf("%s: %v", proto, err)
	}
	return codes
}

// readUntilEnd reads the server's frames until it ends the connection
// (EOF or reset) and returns its close code, if it sent a close frame. A
// frame after the close frame, unreadable output or the read deadline is
// an error.
func readUntilEnd(r *bufio.Reader) ([]ws.StatusCode, error) {
	var codes []ws.StatusCode
	for frames := 0; frames < 1<<20; frames++ {
		f, err := ws.ReadFrame(r)
		switch {
		case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, syscall.ECONNRESET):
			return codes, nil
		case errors.Is(err, os.ErrDeadlineExceeded):
			return codes, errors.New("the server did not end the connection before the deadline")
		case err != nil:
			return codes, fmt.Errorf("reading the server's frame %d: %w", frames, err)
		case len(codes) > 0:
			return codes, fmt.Errorf("%v frame after the close frame", f.Header.OpCode)
		case f.Header.OpCode == ws.OpClose:
			code, _ := ws.ParseCloseFrameData(f.Payload)
			codes = append(codes, code)
		}
	}
	return codes, errors.New("more than 1<<20 frames")
}

// clientCloseCodes returns the valid codes of the close frames that input
// holds, read as the server reads it: the server echoes the first one it
// reaches.
func clientCloseCodes(input []byte) map[ws.StatusCode]bool {
	codes := map[ws.StatusCode]bool{}
	r := bytes.NewReader(input)
	for {
		h, err := ws.ReadHeader(r)
		if err != nil || h.Length > int64(r.Len()) {
			return codes
		}
		p := make([]byte, h.Length)
		_, _ = io.ReadFull(r, p)
		if h.OpCode == ws.OpClose && len(p) >= 2 {
			if h.Masked {
				ws.Cipher(p, h.Mask, 0)
			}
			if code, _ := ws.ParseCloseFrameData(p); validCloseCode(code) {
				codes[code] = true
			}
		}
	}
}

// fuzzMask masks the seeds' frames, so that the corpus is the same on
// every run.
var fuzzMask = [4]byte{0x37, 0xfa, 0x21, 0x3d}

// maskedFrame is one frame as a client sends it.
func maskedFrame(op ws.OpCode, fin bool, payload []byte) []byte {
	f := ws.MaskFrameInPlaceWith(ws.NewFrame(op, fin, bytes.Clone(payload)), fuzzMask)
	return ws.MustCompileFrame(f)
}

// maskedHeader is a frame header as a client sends it, without the
// payload.
func maskedHeader(h ws.Header) []byte {
	var b bytes.Buffer
	h.Masked, h.Mask = true, fuzzMask
	_ = ws.WriteHeader(&b, h)
	return b.Bytes()
}

// dataOp is the frame type a protocol's messages travel in.
func dataOp(proto string) ws.OpCode {
	if proto == protocols.JSONRPC {
		return ws.OpText
	}
	return ws.OpBinary
}

// connSeeds returns the seed inputs: for each protocol (the first byte),
// every golden vector and hostile payload as a frame, all the golden
// requests in one connection, a fragmented call with a ping in between,
// control frames and frame-level violations.
func connSeeds(f *testing.F) [][]byte {
	vectors, err := golden.Load(golden.Dir(1))
	if err != nil {
		f.Fatal(err)
	}
	var seeds [][]byte
	for i, proto := range allProtos {
		prefix := []byte{byte(i)}
		payloads, err := golden.Seeds(1, proto)
		if err != nil {
			f.Fatal(err)
		}
		var calls []byte
		for _, p := range payloads {
			seeds = append(seeds, append(prefix, maskedFrame(dataOp(proto), true, p)...))
		}
		for _, v := range vectors {
			if strings.HasSuffix(v.Name, ".request") || strings.HasPrefix(v.Name, "batch.") {
				calls = append(calls, maskedFrame(dataOp(proto), true, v.Wire[proto])...)
			}
		}
		seeds = append(seeds, append(prefix, calls...))
		for _, s := range frameSeeds(proto, vectorWire(f, vectors, "ping.request", proto)) {
			seeds = append(seeds, append(prefix, s...))
		}
	}
	return seeds
}

func vectorWire(f *testing.F, vectors []golden.Vector, name, proto string) []byte {
	for _, v := range vectors {
		if v.Name == name {
			return v.Wire[proto]
		}
	}
	f.Fatalf("no golden vector %s", name)
	return nil
}

// frameSeeds are frame-level cases around a chat.ping request in proto.
func frameSeeds(proto string, ping []byte) [][]byte {
	op, wrong := dataOp(proto), ws.OpText
	if op == ws.OpText {
		wrong = ws.OpBinary
	}
	half := len(ping) / 2
	cat := func(frames ...[]byte) []byte { return bytes.Join(frames, nil) }
	closeFrame := func(code ws.StatusCode) []byte {
		return maskedFrame(ws.OpClose, true, ws.NewCloseFrameBody(code, "bye"))
	}
	return [][]byte{
		cat(maskedFrame(op, false, ping[:half]), maskedFrame(ws.OpPing, true, []byte("between")),
			maskedFrame(ws.OpContinuation, true, ping[half:]), closeFrame(ws.StatusNormalClosure)),
		cat(maskedFrame(ws.OpPing, true, []byte("ping")), maskedFrame(ws.OpPong, true, nil), maskedFrame(op, true, ping)),
		cat(maskedFrame(op, true, ping), closeFrame(4999)),
		cat(maskedFrame(op, true, ping), closeFrame(999)),
		maskedFrame(ws.OpClose, true, []byte{3}),
		maskedFrame(ws.OpClose, true, nil),
		ws.MustCompileFrame(ws.NewFrame(op, true, ping)), // unmasked
		maskedFrame(ws.OpCode(3), true, ping),
		maskedFrame(wrong, true, ping),
		maskedFrame(ws.OpContinuation, true, ping),
		maskedFrame(ws.OpText, true, []byte{'"', 0xff, '"'}),
		maskedFrame(ws.OpPing, false, nil),
		cat(maskedFrame(op, false, ping[:half]), maskedFrame(op, true, ping[half:])),
		maskedHeader(ws.Header{Fin: true, Rsv: ws.Rsv(true, false, false), OpCode: op, Length: int64(len(ping))}),
		maskedHeader(ws.Header{Fin: true, OpCode: op, Length: 1 << 40}),
		maskedHeader(ws.Header{Fin: true, OpCode: op, Length: 100}), // a frame that never arrives
		{0x81, 0x80 | 127, 0x80, 0, 0, 0, 0, 0, 0, 1},               // 64-bit length with the MSB set
		{0x81},
	}
}

// serverLog is a slog handler for tests that run many connections: it
// hands the reason of each "disconnected" record to whoever waits for
// that client id, and keeps error-level records (a recovered panic, an
// encoding failure), which such a test must not cause.
type serverLog struct {
	mu      sync.Mutex
	reasons map[string]chan string
	errors  []string
}

func (l *serverLog) Enabled(_ context.Context, level slog.Level) bool { return level >= slog.LevelInfo }
func (l *serverLog) WithAttrs([]slog.Attr) slog.Handler               { return l }
func (l *serverLog) WithGroup(string) slog.Handler                    { return l }

func (l *serverLog) Handle(_ context.Context, r slog.Record) error {
	if r.Level >= slog.LevelError {
		l.mu.Lock()
		if len(l.errors) < 20 {
			l.errors = append(l.errors, recordText(r))
		}
		l.mu.Unlock()
	}
	id, reason, ok := disconnectOf(r)
	if !ok {
		return nil
	}
	select {
	case l.reasonOf(id) <- reason:
	default: // a client id connected more than once: the first reason is kept
	}
	return nil
}

func recordText(r slog.Record) string {
	var b strings.Builder
	b.WriteString(r.Message)
	r.Attrs(func(a slog.Attr) bool {
		if a.Key != "stack" {
			fmt.Fprintf(&b, " %s=%v", a.Key, a.Value)
		}
		return true
	})
	return b.String()
}

// reasonOf returns the channel the disconnect reason of client id is sent
// on.
func (l *serverLog) reasonOf(id string) chan string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.reasons == nil {
		l.reasons = map[string]chan string{}
	}
	ch, ok := l.reasons[id]
	if !ok {
		ch = make(chan string, 1)
		l.reasons[id] = ch
	}
	return ch
}

// waitReason returns why the connection of client id ended, once the
// server has logged it, or an error after timeout.
func (l *serverLog) waitReason(id string, timeout time.Duration) (string, error) {
	select {
	case r := <-l.reasonOf(id):
		return r, nil
	case <-time.After(timeout):
		return "", fmt.Errorf("%s: no disconnect logged within %v", id, timeout)
	}
}

// reasonNow returns why the connection of client id ended, if the server
// has logged it: a diagnostic for a client that failed.
func (l *serverLog) reasonNow(id string) string {
	select {
	case r := <-l.reasonOf(id):
		return "disconnected as " + r
	default:
		return "connection not ended"
	}
}

// check fails t if the server logged an error.
func (l *serverLog) check(t testing.TB) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.errors) > 0 {
		t.Fatalf("the server logged errors:\n%s", strings.Join(l.errors, "\n"))
	}
}
