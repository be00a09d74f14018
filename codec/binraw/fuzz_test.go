package binraw_test

import (
	"testing"

	"github.com/subgate/subgate/codec"
	"github.com/subgate/subgate/codec/binraw"
	"github.com/subgate/subgate/internal/golden"
)

// FuzzDecode checks that Decode never panics, that a message whose kind
// bits say result or error decodes to a reply kind (never a refusal the
// server would answer), and that whatever else decodes re-encodes (bodies
// passed through as binraw.Raw, batches through AppendBatch) into a frame
// that decodes to the same messages.
func FuzzDecode(f *testing.F) {
	seeds, err := golden.Seeds(2, "binary-raw")
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range seeds {
		f.Add(s)
	}
	for _, s := range specFrames {
		f.Add(unhex(f, s.hex))
	}
	for _, s := range []string{
		"", "00 01 10", "08 01 09 63 68 61 74 2e 70 69 6e 67", "00 06 7f", "00 06 80 01",
		"01 11 02 68 69", "09 04 74 65 73 74", "02 01 02 6f 6b", "13 af fd 03 00", "03 01 01 00 61",
		"04 02 03 00 01 10 05 01 11 02 68 69", "04 03 00 04 04 01 01 10 02 80 80",
		"00 ff ff ff ff ff ff ff ff 7f 10", "00 80 80 80 80 80 80 80 80 80 01 10",
	} {
		f.Add(unhex(f, s))
	}
	f.Fuzz(func(t *testing.T, frame []byte) {
		msgs, batch, err := c.Decode(nil, frame)
		if isReply(frame) && (err != nil || !isReplyKind(msgs[0].Kind)) {
			t.Fatalf("reply-tagged % x decodes to %+v, %v", frame, msgs, err)
		}
		if err != nil {
			if _, ok := err.(*codec.Error); !ok {
				t.Fatalf("Decode error %T %v is not a *codec.Error", err, err)
			}
			if len(msgs) != 0 || batch {
				t.Fatalf("Decode failed with %d messages, batch %v", len(msgs), batch)
			}
			return
		}
		if !batch && len(msgs) != 1 {
			t.Fatalf("Decode returned %d messages outside a batch", len(msgs))
		}
		var valid [][]byte
		var want []codec.Message
		for _, m := range msgs {
			if m.Kind == codec.KindInvalid {
				if !batch || m.Error == nil {
					t.Fatalf("invalid message %+v", m)
				}
				continue
			}
			if m.Kind == codec.KindInvalidReply {
				if m.Error == nil || m.Error.Code != codec.CodeParseError {
					t.Fatalf("invalid reply %+v without a parse error", m)
				}
				continue
			}
			enc, err := c.Append(nil, m, binraw.Raw(m.Body))
			if err != nil {
				t.Fatalf("Append(%+v): %v", m, err)
			}
			valid = append(valid, enc)
			want = append(want, m)
		}
		if len(valid) == 0 {
			return
		}
		again := valid[0]
		if batch {
			if again, err = c.AppendBatch(nil, valid); err != nil {
				t.Fatalf("AppendBatch: %v", err)
			}
		}
		got, gotBatch, err := c.Decode(nil, again)
		if err != nil || gotBatch != batch || len(got) != len(want) {
			t.Fatalf("Decode(% x) = %d messages, batch %v, %v; want %d, batch %v", again, len(got), gotBatch, err, len(want), batch)
		}
		for i := range want {
			if !sameMessage(got[i], want[i]) {
				t.Fatalf("message %d: re-decoded %+v (error %+v), want %+v (error %+v)", i, got[i], got[i].Error, want[i], want[i].Error)
			}
		}
	})
}

// isReply reports whether frame is one message whose kind bits say result
// or error.
func isReply(frame []byte) bool {
	return len(frame) > 0 && (frame[0]&7 == 2 || frame[0]&7 == 3)
}

func isReplyKind(k codec.Kind) bool {
	return k == codec.KindResult || k == codec.KindError || k == codec.KindInvalidReply
}
