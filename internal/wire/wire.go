// Package wire holds the primitives of the binary-raw encoding (see
// protocols/binary-raw.md §2): minimal LEB128 uvarints, zigzag varints,
// length-prefixed UTF-8 strings, bools and counted lists.
//
// Encoders append to a caller-owned slice. Decoding goes through a [Reader],
// a cursor with a sticky error: read every field, then ask [Reader.End] once,
// so payload decoders stay straight-line code.
//
//	r := wire.NewReader(data, "chat.send params")
//	room, msg := r.Field("room").String(), r.Field("message").String()
//	if err := r.End(); err != nil {
//		return err
//	}
//
// Every length and count is checked against the bytes left before anything
// is allocated, so hostile input costs at most a constant factor of its own
// size.
package wire

import (
	"errors"
	"math/bits"
	"strconv"
	"strings"
	"unicode/utf8"
)

// MaxVarintLen is the longest valid varint, in bytes.
const MaxVarintLen = 10

// Reasons a Reader fails; an *Error wraps one of them.
var (
	ErrTruncated = errors.New("truncated")
	ErrVarint    = errors.New("malformed varint")
	ErrLength    = errors.New("length exceeds the bytes left")
	ErrUTF8      = errors.New("invalid UTF-8")
	ErrBool      = errors.New("bool is neither 0 nor 1")
	ErrTrailing  = errors.New("trailing bytes")
	ErrInvalid   = errors.New("invalid value")
)

// AppendUvarint appends v as a minimal LEB128 uvarint.
func AppendUvarint(dst []byte, v uint64) []byte {
	if v < 0x80 {
		return append(dst, byte(v))
	}
	var b [MaxVarintLen]byte
	n := 0
	for ; v >= 0x80; n++ {
		b[n] = byte(v) | 0x80
		v >>= 7
	}
	b[n] = byte(v)
	return append(dst, b[:n+1]...)
}

// AppendVarint appends v zigzag-encoded, as encoding/binary.AppendVarint.
func AppendVarint(dst []byte, v int64) []byte {
	return AppendUvarint(dst, Zigzag(v))
}

// Zigzag maps a signed integer to an unsigned one, small magnitudes to
// small values: 0, -1, 1, -2 ... become 0, 1, 2, 3 ...
func Zigzag(v int64) uint64 { return uint64(v<<1) ^ uint64(v>>63) }

// Unzigzag inverts Zigzag.
func Unzigzag(u uint64) int64 { return int64(u>>1) ^ -int64(u&1) }

// UvarintLen is the number of bytes AppendUvarint writes for v.
func UvarintLen(v uint64) int { return (bits.Len64(v|1) + 6) / 7 }

// AppendString appends s as a uvarint byte length and its bytes. Each run
// of invalid UTF-8 is replaced by U+FFFD, so that what is sent is always
// decodable (text may reach the server through an encoding that does not
// check it).
func AppendString(dst []byte, s string) []byte {
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	dst = AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

// AppendUTF8 appends s without a length (a field that runs to the end of
// its message), replacing each run of invalid UTF-8 by U+FFFD.
func AppendUTF8(dst []byte, s string) []byte {
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	return append(dst, s...)
}

// AppendBool appends b as one byte, 0 or 1.
func AppendBool(dst []byte, b bool) []byte {
	if b {
		return append(dst, 1)
	}
	return append(dst, 0)
}

// Uvarint decodes a minimal uvarint from the start of b. It returns the
// value and the number of bytes read; n == 0 means b ended inside the
// varint and n < 0 that it is malformed (over 64 bits, longer than 10 bytes
// or not minimal).
func Uvarint(b []byte) (v uint64, n int) {
	if len(b) > 0 && b[0] < 0x80 {
		return uint64(b[0]), 1
	}
	return uvarintSlow(b)
}

func uvarintSlow(b []byte) (uint64, int) {
	var x uint64
	for i, c := range b {
		if i == MaxVarintLen {
			return 0, -1
		}
		if c < 0x80 {
			if c == 0 && i > 0 || i == MaxVarintLen-1 && c > 1 {
				return 0, -1
			}
			return x | uint64(c)<<(7*i), i + 1
		}
		x |= uint64(c&0x7f) << (7 * i)
	}
	if len(b) >= MaxVarintLen {
		return 0, -1
	}
	return 0, 0
}

// Error says where and why decoding a payload failed. Its text names the
// wire field (or, for the payload as a whole, what the payload is), never a
// Go type: it reaches clients as an error's data.
type Error struct {
	// Type names what was being decoded as the wire knows it, e.g.
	// "chat.send params".
	Type string
	// Field is the wire name of the field that failed, e.g. "room"; empty
	// when the failure is about the whole payload (trailing bytes).
	Field string
	// Offset is the byte offset in the payload where the failing field starts.
	Offset int
	// Err is one of the Err* reasons of this package, or a caller's own.
	Err error
}

func (e *Error) Error() string {
	what := e.Type
	if e.Field != "" {
		what = e.Field
	}
	return what + ": " + e.Err.Error() + " at byte " + strconv.Itoa(e.Offset)
}

func (e *Error) Unwrap() error { return e.Err }

// Reader decodes primitives from a payload. After the first failure every
// read returns a zero value and the failure sticks; check it with End or Err.
type Reader struct {
	buf    []byte
	off    int
	typ    string
	field  string
	err    error
	eoff   int
	efield string
}

// NewReader returns a Reader over b. typ names the decoded payload in
// errors, as the wire knows it ("chat.send params", not a Go type).
func NewReader(b []byte, typ string) Reader { return Reader{buf: b, typ: typ} }

// Len is the number of bytes left.
func (r *Reader) Len() int { return len(r.buf) - r.off }

// Fail records err at the current offset unless a failure is already
// recorded. Use it for checks the primitives cannot make (enums, flags).
func (r *Reader) Fail(err error) { r.failAt(err, r.off) }

func (r *Reader) failAt(err error, off int) {
	if r.err == nil {
		r.err, r.eoff, r.efield = err, off, r.field
	}
}

// Field names the wire field the next reads decode, for errors: a failure
// then says "room: invalid UTF-8 at byte 0". It returns r, so that a
// decoder reads r.Field("room").String().
func (r *Reader) Field(name string) *Reader {
	r.field = name
	return r
}

// Err returns the recorded failure as an *Error, or nil.
func (r *Reader) Err() error {
	if r.err == nil {
		return nil
	}
	return &Error{Type: r.typ, Field: r.efield, Offset: r.eoff, Err: r.err}
}

// End returns the recorded failure, or an ErrTrailing failure when bytes
// are left, or nil when the payload was consumed exactly.
func (r *Reader) End() error {
	if r.err == nil && r.off != len(r.buf) {
		r.field = "" // about the payload, not its last field
		r.Fail(ErrTrailing)
	}
	return r.Err()
}

// Byte reads one byte.
func (r *Reader) Byte() byte {
	if r.err != nil {
		return 0
	}
	if r.off >= len(r.buf) {
		r.Fail(ErrTruncated)
		return 0
	}
	c := r.buf[r.off]
	r.off++
	return c
}

// Bool reads a byte that must be 0 or 1.
func (r *Reader) Bool() bool {
	off := r.off
	switch r.Byte() {
	case 0:
		return false
	case 1:
		return true
	}
	r.failAt(ErrBool, off)
	return false
}

// Uvarint reads a uvarint.
func (r *Reader) Uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := Uvarint(r.buf[r.off:])
	switch {
	case n > 0:
		r.off += n
		return v
	case n == 0:
		r.Fail(ErrTruncated)
	default:
		r.Fail(ErrVarint)
	}
	return 0
}

// Varint reads a zigzag varint.
func (r *Reader) Varint() int64 { return Unzigzag(r.Uvarint()) }

// Bytes reads a length-prefixed byte string. The result aliases the input.
func (r *Reader) Bytes() []byte {
	off := r.off
	n := r.Uvarint()
	if r.err != nil {
		return nil
	}
	if n > uint64(r.Len()) {
		r.failAt(ErrLength, off)
		return nil
	}
	b := r.buf[r.off : r.off+int(n) : r.off+int(n)]
	r.off += int(n)
	return b
}

// String reads a length-prefixed UTF-8 string, copying it.
func (r *Reader) String() string {
	off := r.off
	b := r.Bytes()
	if len(b) == 0 {
		return ""
	}
	if !utf8.Valid(b) {
		r.failAt(ErrUTF8, off)
		return ""
	}
	return string(b)
}

// Count reads a list's element count. minSize is the smallest encoding of
// one element in bytes: a count that could not fit in the bytes left fails
// with ErrLength, so the caller may allocate count elements.
func (r *Reader) Count(minSize int) int {
	off := r.off
	n := r.Uvarint()
	if r.err != nil {
		return 0
	}
	if n > uint64(r.Len()/minSize) {
		r.failAt(ErrLength, off)
		return 0
	}
	return int(n)
}
