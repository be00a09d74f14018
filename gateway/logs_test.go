package gateway

import (
	"context"
	"log/slog"
	"regexp"
	"strings"
	"testing"

	"github.com/subgate/subgate/internal/testutil"
	"github.com/subgate/subgate/protocols"
	"github.com/subgate/subgate/protocols/chat"
)

// At the default level a connection logs one line when it opens (with
// the negotiation's outcome) and one when it closes (with its duration and
// the close code as it happened), and its calls log nothing, not even the
// ones a client gets wrong.
func TestConnectionLogLines(t *testing.T) {
	var out testutil.SyncBuffer
	closed := recorder("disconnected")
	log := slog.New(fanout{slog.NewTextHandler(&out, &slog.HandlerOptions{Level: slog.LevelInfo}), closed})
	_, addr := startServer(t, Config{Logger: log})
	c := dial(t, addr, "logged", protocols.MsgPack)
	for range 10 {
		call[chat.PingResult](t, c, chat.MethodPing, &chat.PingParams{})
		callErr(t, c, "no.such.method", nil)
	}
	callErr(t, c, chat.MethodJoin, &chat.JoinParams{Room: ""})
	c.Close()
	closed.next(t)
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("want 2 lines, got %d:\n%s", len(lines), out.String())
	}
	for i, want := range []string{
		`msg=connected client_id=logged conn=\d+ protocol=msgpack negotiated=offer offer=msgpack remote=127\.0\.0\.1:\d+$`,
		`msg=disconnected client_id=logged conn=\d+ protocol=msgpack remote=127\.0\.0\.1:\d+ duration_s=[0-9.]+ reason=peer code=1000 text="" close_sent=true$`,
	} {
		if !regexp.MustCompile(want).MatchString(lines[i]) {
			t.Errorf("line %d:\n%s\nwant it to match\n%s", i, lines[i], want)
		}
	}
}

// fanout sends each record to every handler that wants it.
type fanout []slog.Handler

func (f fanout) Enabled(ctx context.Context, l slog.Level) bool {
	for _, h := range f {
		if h.Enabled(ctx, l) {
			return true
		}
	}
	return false
}

func (f fanout) Handle(ctx context.Context, r slog.Record) error {
	for _, h := range f {
		if h.Enabled(ctx, r.Level) {
			_ = h.Handle(ctx, r.Clone())
		}
	}
	return nil
}

func (f fanout) WithAttrs([]slog.Attr) slog.Handler { return f }
func (f fanout) WithGroup(string) slog.Handler      { return f }
