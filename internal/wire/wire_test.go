package wire

import (
	"encoding/binary"
	"errors"
	"math"
	"testing"
)

func TestUvarintMatchesEncodingBinary(t *testing.T) {
	for _, v := range []uint64{0, 1, 0x7f, 0x80, 0x3fff, 0x4000, 1<<32 - 1, 1 << 56, math.MaxInt64, 1 << 63, math.MaxUint64} {
		b := AppendUvarint(nil, v)
		if want := binary.AppendUvarint(nil, v); string(b) != string(want) {
			t.Errorf("AppendUvarint(%d) = % x, want % x", v, b, want)
		}
		if len(b) != UvarintLen(v) {
			t.Errorf("UvarintLen(%d) = %d, want %d", v, UvarintLen(v), len(b))
		}
		got, n := Uvarint(append(b, 0xaa))
		if got != v || n != len(b) {
			t.Errorf("Uvarint(% x) = %d, %d", b, got, n)
		}
	}
	for _, v := range []int64{0, -1, 1, -64, 64, math.MinInt64, math.MaxInt64} {
		b := AppendVarint(nil, v)
		if want := binary.AppendVarint(nil, v); string(b) != string(want) {
			t.Errorf("AppendVarint(%d) = % x, want % x", v, b, want)
		}
		if got := Unzigzag(Zigzag(v)); got != v {
			t.Errorf("Unzigzag(Zigzag(%d)) = %d", v, got)
		}
	}
}

func TestUvarintRejects(t *testing.T) {
	tests := []struct {
		in []byte
		n  int
	}{
		{nil, 0},
		{[]byte{0x80}, 0},
		{[]byte{0xff, 0xff}, 0},
		{[]byte{0x80, 0x00}, -1},       // 0 in two bytes
		{[]byte{0x81, 0x80, 0x00}, -1}, // 1 in three bytes
		{[]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02}, -1},       // 2^64
		{[]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f}, -1},       // far above
		{[]byte{0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80}, -1},       // 10 bytes, unfinished
		{[]byte{0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01}, -1}, // 11 bytes
	}
	for _, tc := range tests {
		if v, n := Uvarint(tc.in); n != tc.n {
			t.Errorf("Uvarint(% x) = %d, %d; want n %d", tc.in, v, n, tc.n)
		}
	}
}

func TestReader(t *testing.T) {
	b := AppendString(nil, "héllo")
	b = AppendVarint(b, -3)
	b = AppendBool(b, true)
	b = AppendUvarint(b, 1)
	b = append(b, 0x07)
	r := NewReader(b, "test")
	if s, v, ok, n, c := r.String(), r.Varint(), r.Bool(), r.Count(1), r.Byte(); s != "héllo" || v != -3 || !ok || n != 1 || c != 7 {
		t.Errorf("read %q %d %v %d %d", s, v, ok, n, c)
	}
	if err := r.End(); err != nil {
		t.Errorf("End = %v", err)
	}

	r = NewReader([]byte{0x05, 'a'}, "test")
	if s := r.String(); s != "" {
		t.Errorf("String = %q", s)
	}
	// The failure sticks: later reads return zero values.
	if v := r.Uvarint(); v != 0 {
		t.Errorf("Uvarint after failure = %d", v)
	}
	var e *Error
	if err := r.End(); !errors.As(err, &e) || e.Err != ErrLength || e.Offset != 0 || err.Error() != "test: length exceeds the bytes left at byte 0" {
		t.Errorf("End = %v", err)
	}
}

func TestAppendStringReplacesInvalidUTF8(t *testing.T) {
	b := AppendString(nil, "a\xff\xfeb")
	r := NewReader(b, "test")
	if s := r.String(); s != "a\uFFFDb" || r.End() != nil {
		t.Errorf("got %q, %v", s, r.End())
	}
	if got := string(AppendUTF8(nil, "x\xc3")); got != "x\uFFFD" {
		t.Errorf("AppendUTF8 = %q", got)
	}
}

func FuzzUvarint(f *testing.F) {
	f.Add([]byte{0x80, 0x01})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})
	f.Fuzz(func(t *testing.T, b []byte) {
		v, n := Uvarint(b)
		want, wn := binary.Uvarint(b)
		if n > 0 {
			// A valid varint is what encoding/binary reads, in minimal form.
			if wn != n || want != v || string(AppendUvarint(nil, v)) != string(b[:n]) {
				t.Fatalf("Uvarint(% x) = %d, %d; encoding/binary %d, %d", b, v, n, want, wn)
			}
		} else if wn > 0 && string(binary.AppendUvarint(nil, want)) == string(b[:wn]) {
			t.Fatalf("Uvarint(% x) rejected minimal varint %d", b, want)
		}
	})
}
