package binraw

import (
	"encoding"
	"errors"
	"fmt"
	"math"
	"strconv"
	"unicode/utf8"

	"github.com/subgate/subgate/codec"
	"github.com/subgate/subgate/internal/wire"
)

// MaxBatch is the largest number of messages in a batch.
const MaxBatch = 100

// The tag byte (protocols/binary-raw.md §3).
const (
	kindMask   = 0x07 // bits 0-2: the kind
	flagName   = 0x08 // request, notification: method by name
	flagNullID = 0x10 // error: id absent, null
	reserved   = 0xe0 // bits 5-7: must be zero

	kindRequest      = 0
	kindNotification = 1
	kindResult       = 2
	kindError        = 3
	kindBatch        = 4
)

// Errors of Append and AppendBatch.
var (
	ErrID        = errors.New("binraw: id not representable (binary-raw ids are integers 0..2^63-1)")
	ErrKind      = errors.New("binraw: message kind has no encoding")
	ErrNoError   = errors.New("binraw: error message without an Error")
	ErrNoMethod  = errors.New("binraw: empty method name")
	ErrBatchSize = errors.New("binraw: a batch holds 1 to 100 messages")
	ErrBatchItem = errors.New("binraw: batch item is empty or a batch")
)

// Raw is a payload that is already in binary-raw form. Append copies it
// verbatim and Unmarshal copies a body into it, so a proxy can pass
// payloads through without knowing their layout.
type Raw []byte

// AppendBinary appends r unchanged.
func (r Raw) AppendBinary(dst []byte) ([]byte, error) { return append(dst, r...), nil }

// UnmarshalBinary stores a copy of data in r.
func (r *Raw) UnmarshalBinary(data []byte) error {
	*r = append((*r)[:0], data...)
	return nil
}

type binrawCodec struct {
	t *codec.MethodTable
	// oneByte holds the names of the table's methods whose ids are below
	// 0x80, which a one-byte varint carries; "" where no method is.
	oneByte [0x80]string
	// byName is a direct-mapped cache of the table in front of its map,
	// which costs a string hash per lookup: Append looks up every push.
	byName [64]codec.Method
}

var _ codec.Codec = (*binrawCodec)(nil)

// New returns the binary-raw codec for the methods of t.
func New(t *codec.MethodTable) codec.Codec {
	c := &binrawCodec{t: t}
	if t != nil {
		for _, m := range t.Methods() {
			if m.ID < uint64(len(c.oneByte)) {
				c.oneByte[m.ID] = m.Name
			}
			if slot := &c.byName[nameSlot(m.Name)]; slot.Name == "" {
				*slot = m
			}
		}
	}
	return c
}

// nameSlot picks a method name's place in binrawCodec.byName. Names that
// collide with an earlier one are found through the table's map.
func nameSlot(name string) int {
	if name == "" {
		return 0
	}
	h := uint(len(name)) + uint(name[len(name)-1]) + uint(name[len(name)/2])*3
	return int(h % 64)
}

// method finds a method by name in the table.
func (c *binrawCodec) method(name string) (codec.Method, bool) {
	if m := c.byName[nameSlot(name)]; m.Name == name && name != "" {
		return m, true
	}
	return c.t.ByName(name)
}

func (c *binrawCodec) Name() string { return "binary-raw" }

// Decode parses one frame: a message, or a batch of them.
func (c *binrawCodec) Decode(dst []codec.Message, frame []byte) ([]codec.Message, bool, error) {
	if len(frame) > 0 && frame[0]&kindMask == kindBatch {
		return c.decodeBatch(dst, frame)
	}
	dst = append(dst, codec.Message{})
	if err := c.decodeMessage(&dst[len(dst)-1], frame); err != nil {
		return truncate(dst, len(dst)-1), false, err
	}
	return dst, false, nil
}

func (c *binrawCodec) decodeBatch(dst []codec.Message, frame []byte) ([]codec.Message, bool, error) {
	if frame[0] != kindBatch {
		return dst, false, codec.ParseError("flags or reserved bits set in a batch tag")
	}
	count, n := wire.Uvarint(frame[1:])
	switch {
	case n <= 0:
		return dst, false, varintError("batch count", n)
	case count == 0:
		return dst, false, codec.InvalidRequest("empty batch")
	case count > MaxBatch:
		return dst, false, codec.InvalidRequest("batch of more than 100 messages")
	}
	p := 1 + n
	if count > uint64(len(frame)-p) {
		return dst, false, codec.ParseError("batch count exceeds the bytes left")
	}
	start := len(dst)
	for range count {
		l, n := wire.Uvarint(frame[p:])
		if n <= 0 {
			return truncate(dst, start), false, varintError("batch element length", n)
		}
		p += n
		if l > uint64(len(frame)-p) {
			return truncate(dst, start), false, codec.ParseError("batch element runs past the end of the frame")
		}
		dst = append(dst, codec.Message{})
		if err := c.decodeMessage(&dst[len(dst)-1], frame[p:p+int(l)]); err != nil {
			dst[len(dst)-1] = codec.Message{Kind: codec.KindInvalid, Error: err}
		}
		p += int(l)
	}
	if p != len(frame) {
		return truncate(dst, start), false, codec.ParseError("trailing bytes after the last batch element")
	}
	return dst, true, nil
}

// truncate drops dst[n:], clearing it so that the backing array does not
// keep the frame alive.
func truncate(dst []codec.Message, n int) []codec.Message {
	clear(dst[n:])
	return dst[:n]
}

// decodeMessage decodes one message that is not a batch (a batch here is a
// nested one: invalid) into m, which must be the zero Message. A message
// whose kind bits say result or error is never an error, whatever its
// other bits and bytes: a malformed one decodes as KindInvalidReply, which
// is never answered (see codec.KindInvalidReply).
func (c *binrawCodec) decodeMessage(m *codec.Message, b []byte) *codec.Error {
	if len(b) == 0 {
		return codec.ParseError("empty message")
	}
	tag := b[0]
	kind, flags := tag&kindMask, tag&(flagName|flagNullID)
	if kind == kindResult || kind == kindError {
		if err := decodeReply(m, b); err != nil {
			m.Kind, m.Body, m.Error = codec.KindInvalidReply, nil, err
		}
		return nil
	}
	if tag&reserved != 0 {
		return codec.ParseError("reserved tag bits set")
	}
	switch kind {
	case kindRequest, kindNotification:
		if flags&flagNullID != 0 {
			return codec.ParseError("null-id flag set on a request or notification")
		}
		return c.decodeCall(m, b, kind == kindRequest, flags&flagName != 0)
	case kindBatch:
		if flags != 0 {
			return codec.ParseError("flags set on a batch tag")
		}
		return codec.InvalidRequest("nested batch")
	}
	return codec.ParseError("reserved message kind")
}

func (c *binrawCodec) decodeCall(m *codec.Message, b []byte, request, byName bool) *codec.Error {
	p := 1
	m.Kind = codec.KindNotification
	if request {
		n, err := readID(&m.ID, b[p:])
		if err != nil {
			return err
		}
		m.Kind = codec.KindRequest
		p += n
	}
	var n int
	var err *codec.Error
	if byName {
		m.Method, n, err = c.methodByName(b[p:])
	} else {
		m.Method, n, err = c.methodByID(b[p:])
	}
	if err != nil {
		return err
	}
	m.Body = b[p+n:]
	return nil
}

// methodByID reads a method id. An id that is not in the table becomes the
// name "#<id>", which no method has, so the core answers Method not found.
func (c *binrawCodec) methodByID(b []byte) (string, int, *codec.Error) {
	id, n := wire.Uvarint(b)
	if n <= 0 {
		return "", 0, varintError("method id", n)
	}
	if id < uint64(len(c.oneByte)) {
		if name := c.oneByte[id]; name != "" {
			return name, n, nil
		}
	} else if m, ok := c.t.ByID(id); ok {
		return m.Name, n, nil
	}
	return "#" + strconv.FormatUint(id, 10), n, nil
}

func (c *binrawCodec) methodByName(b []byte) (string, int, *codec.Error) {
	l, n := wire.Uvarint(b)
	switch {
	case n <= 0:
		return "", 0, varintError("method name length", n)
	case l > uint64(len(b)-n):
		return "", 0, codec.ParseError("method name runs past the end")
	case l == 0:
		return "", 0, codec.InvalidRequest("empty method name")
	}
	name := b[n : n+int(l)]
	if !utf8.Valid(name) {
		return "", 0, codec.ParseError("method name is not UTF-8")
	}
	return c.t.Intern(name), n + int(l), nil
}

// decodeReply decodes a result or an error. On failure m keeps the id when
// it was read.
func decodeReply(m *codec.Message, b []byte) *codec.Error {
	tag := b[0]
	switch {
	case tag&reserved != 0:
		return codec.ParseError("reserved tag bits set")
	case tag&kindMask == kindError:
		if tag&flagName != 0 {
			return codec.ParseError("method-name flag set on an error")
		}
		return decodeError(m, b, tag&flagNullID != 0)
	}
	if tag != kindResult {
		return codec.ParseError("flags set on a result")
	}
	n, err := readID(&m.ID, b[1:])
	if err != nil {
		return err
	}
	m.Kind, m.Body = codec.KindResult, b[1+n:]
	return nil
}

func decodeError(m *codec.Message, b []byte, nullID bool) *codec.Error {
	m.Kind = codec.KindError
	p := 1
	if nullID {
		m.ID = codec.NullID
	} else {
		n, err := readID(&m.ID, b[p:])
		if err != nil {
			return err
		}
		p += n
	}
	r := wire.NewReader(b[p:], "error")
	code := r.Varint()
	msg := r.String()
	if err := r.Err(); err != nil {
		return codec.ParseError(err.Error())
	}
	data := b[len(b)-r.Len():]
	if !utf8.Valid(data) {
		return codec.ParseError("error data is not UTF-8")
	}
	m.Error = &codec.Error{Code: code, Message: msg, Data: string(data)}
	return nil
}

// readID reads an id into the zero id, setting only Kind and Num.
func readID(id *codec.ID, b []byte) (int, *codec.Error) {
	v, n := wire.Uvarint(b)
	if n <= 0 {
		return 0, varintError("id", n)
	}
	if v > math.MaxInt64 {
		return 0, codec.ParseError("id exceeds 2^63-1")
	}
	id.Kind, id.Num = codec.IDNumber, int64(v)
	return n, nil
}

func varintError(field string, n int) *codec.Error {
	if n == 0 {
		return codec.ParseError("truncated " + field)
	}
	return codec.ParseError("malformed varint in " + field)
}

// Unmarshal decodes body with v's UnmarshalBinary. binary-raw has no
// "absent params": an empty body is handed to v like any other, and only
// the types whose layout is empty accept it.
func (c *binrawCodec) Unmarshal(body []byte, v any) error {
	u, ok := v.(encoding.BinaryUnmarshaler)
	if !ok {
		return &codec.Error{Code: codec.CodeInternalError, Message: "Internal error",
			Data: fmt.Sprintf("binraw: %T does not implement encoding.BinaryUnmarshaler", v)}
	}
	if err := u.UnmarshalBinary(body); err != nil {
		return codec.InvalidParams(err.Error())
	}
	return nil
}

// Append encodes m with body as its payload. Body must be nil (empty
// payload) or an encoding.BinaryAppender. On error dst is returned as it
// was.
func (c *binrawCodec) Append(dst []byte, m codec.Message, body any) ([]byte, error) {
	orig := dst
	var err error
	switch m.Kind {
	case codec.KindRequest:
		dst, err = c.appendCall(dst, kindRequest, &m.ID, m.Method, body)
	case codec.KindNotification:
		dst, err = c.appendCall(dst, kindNotification, nil, m.Method, body)
	case codec.KindResult:
		dst, err = appendID(append(dst, kindResult), &m.ID)
		if err == nil {
			dst, err = appendBody(dst, body)
		}
	case codec.KindError:
		dst, err = appendError(dst, &m)
	default:
		err = ErrKind
	}
	if err != nil {
		return orig, err
	}
	return dst, nil
}

func (c *binrawCodec) appendCall(dst []byte, kind byte, id *codec.ID, method string, body any) ([]byte, error) {
	mt, known := c.method(method)
	if !known {
		if method == "" {
			return dst, ErrNoMethod
		}
		kind |= flagName
	}
	dst = append(dst, kind)
	if id != nil {
		var err error
		if dst, err = appendID(dst, id); err != nil {
			return dst, err
		}
	}
	if known {
		dst = wire.AppendUvarint(dst, mt.ID)
	} else {
		dst = wire.AppendString(dst, method)
	}
	return appendBody(dst, body)
}

func appendError(dst []byte, m *codec.Message) ([]byte, error) {
	e := m.Error
	if e == nil {
		return dst, ErrNoError
	}
	switch m.ID.Kind {
	case codec.IDNull, codec.IDNone:
		dst = append(dst, kindError|flagNullID)
	default:
		var err error
		if dst, err = appendID(append(dst, kindError), &m.ID); err != nil {
			return dst, err
		}
	}
	dst = wire.AppendVarint(dst, e.Code)
	dst = wire.AppendString(dst, e.Message)
	return wire.AppendUTF8(dst, e.Data), nil
}

func appendID(dst []byte, id *codec.ID) ([]byte, error) {
	if id.Kind != codec.IDNumber || id.Num < 0 {
		return dst, ErrID
	}
	return wire.AppendUvarint(dst, uint64(id.Num)), nil
}

func appendBody(dst []byte, body any) ([]byte, error) {
	if body == nil {
		return dst, nil
	}
	a, ok := body.(encoding.BinaryAppender)
	if !ok {
		return dst, fmt.Errorf("binraw: %T does not implement encoding.BinaryAppender", body)
	}
	return a.AppendBinary(dst)
}

// AppendBatch appends a batch of already encoded messages (1 to MaxBatch,
// none of them empty or a batch).
func (c *binrawCodec) AppendBatch(dst []byte, items [][]byte) ([]byte, error) {
	if len(items) == 0 || len(items) > MaxBatch {
		return dst, ErrBatchSize
	}
	for _, it := range items {
		if len(it) == 0 || it[0]&kindMask == kindBatch {
			return dst, ErrBatchItem
		}
	}
	dst = append(dst, kindBatch)
	dst = wire.AppendUvarint(dst, uint64(len(items)))
	for _, it := range items {
		dst = wire.AppendUvarint(dst, uint64(len(it)))
		dst = append(dst, it...)
	}
	return dst, nil
}
