package msgpackrpc

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"reflect"
	"strconv"
	"sync"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/subgate/subgate/codec"
)

type msgpackCodec struct {
	table *codec.MethodTable
}

var _ codec.Codec = (*msgpackCodec)(nil)

// New returns the msgpack codec. Method names in t are interned when
// decoded; t may be nil.
func New(t *codec.MethodTable) codec.Codec { return &msgpackCodec{table: t} }

func (*msgpackCodec) Name() string { return "msgpack" }

// The message types, the first element of every message array.
const (
	typeRequest      = 0
	typeResponse     = 1
	typeNotification = 2
)

var (
	errStringID = errors.New("msgpackrpc: string ids are not representable, msgids are integers")
	errNoID     = errors.New("msgpackrpc: requests and results need an integer msgid")
	errNoError  = errors.New("msgpackrpc: error reply without an Error")
	errRawArray = errors.New("msgpackrpc: raw params must be one msgpack array")
	errNotArray = errors.New("msgpackrpc: positional params did not encode as an array")
)

// Decode reads one message. The frame is pre-scanned (see scan) before
// anything else looks at it; the envelope is then read by hand, so decoding
// a request allocates nothing beyond dst's growth.
//
// A frame that starts like a response (an array whose first element is the
// integer 1) always decodes to a message, KindInvalidReply when it is
// malformed in any way, even when it fails the scan: a response is never
// answered (see codec.KindInvalidReply).
func (c *msgpackCodec) Decode(dst []codec.Message, frame []byte) ([]codec.Message, bool, error) {
	if err := scan(frame); err != nil {
		e := codec.ParseError(err.Error())
		if isResponse(frame) {
			return append(dst, invalidReply(frame, e)), false, nil
		}
		return dst, false, e
	}
	m, e := c.message(frame)
	if e != nil {
		return dst, false, e
	}
	return append(dst, m), false, nil
}

// isResponse reports whether b starts with the header of an array whose
// first element is the integer 1. It reads only headers, which head checks
// against len(b), so b need not have passed scan.
func isResponse(b []byte) bool {
	t, n, i, _ := head(b, 0)
	if t != tArray || n == 0 {
		return false
	}
	t, _, end, _ := head(b, i)
	if t != tInt {
		return false
	}
	typ, ok := intValue(b[i:end])
	return ok && typ == typeResponse
}

// invalidReply returns the KindInvalidReply message for the response-typed
// frame b, with its msgid when one can be read.
func invalidReply(b []byte, e *codec.Error) codec.Message {
	m := codec.Message{Kind: codec.KindInvalidReply, Error: e}
	_, n, i, _ := head(b, 0)
	if _, _, i, _ = head(b, i); n < 2 {
		return m
	}
	if id, _, err := readID(b, i); err == nil {
		m.ID = id
	}
	return m
}

func invalid(detail string) (codec.Message, *codec.Error) {
	return codec.Message{}, codec.InvalidRequest(detail)
}

// message reads the envelope of a scanned frame. The last element of every
// message (params or result) runs to the end of the frame, since scan
// refused trailing bytes.
func (c *msgpackCodec) message(b []byte) (codec.Message, *codec.Error) {
	t, n, i, _ := head(b, 0)
	if t != tArray {
		return invalid("message is not an array")
	}
	if n == 0 {
		return invalid("message is an empty array")
	}
	t, _, end, _ := head(b, i)
	if t != tInt {
		return invalid("message type is not an integer")
	}
	typ, ok := intValue(b[i:end])
	switch {
	case !ok:
		return invalid("unknown message type " + strconv.FormatUint(uint64(typ), 10))
	case typ < typeRequest || typ > typeNotification:
		return invalid("unknown message type " + strconv.FormatInt(typ, 10))
	case typ == typeRequest && n == 4:
		return c.request(b, end)
	case typ == typeResponse:
		return response(b, end, n), nil
	case typ == typeNotification && n == 3:
		return c.notification(b, end)
	}
	want := 4
	if typ == typeNotification {
		want = 3
	}
	return invalid(fmt.Sprintf("message type %d needs %d elements, got %d", typ, want, n))
}

func (c *msgpackCodec) request(b []byte, i int) (codec.Message, *codec.Error) {
	id, i, e := readID(b, i)
	if e != nil {
		return codec.Message{}, e
	}
	if id.Kind == codec.IDNull {
		return invalid("request msgid is nil")
	}
	m := codec.Message{Kind: codec.KindRequest, ID: id}
	if m.Method, i, e = c.readMethod(b, i); e != nil {
		return codec.Message{}, e
	}
	if m.Body, e = readParams(b, i); e != nil {
		return codec.Message{}, e
	}
	return m, nil
}

func (c *msgpackCodec) notification(b []byte, i int) (codec.Message, *codec.Error) {
	m := codec.Message{Kind: codec.KindNotification}
	var e *codec.Error
	if m.Method, i, e = c.readMethod(b, i); e != nil {
		return codec.Message{}, e
	}
	if m.Body, e = readParams(b, i); e != nil {
		return codec.Message{}, e
	}
	return m, nil
}

// response reads a response of n elements whose msgid starts at b[i]. A
// malformed one is a KindInvalidReply message.
func response(b []byte, i int, n uint64) codec.Message {
	if n != 4 {
		_, e := invalid(fmt.Sprintf("message type 1 needs 4 elements, got %d", n))
		return invalidReply(b, e)
	}
	m, e := validResponse(b, i)
	if e != nil {
		return invalidReply(b, e)
	}
	return m
}

func validResponse(b []byte, i int) (codec.Message, *codec.Error) {
	id, i, e := readID(b, i)
	if e != nil {
		return codec.Message{}, e
	}
	t, n, next, _ := head(b, i)
	switch t {
	case tNil:
		if id.Kind == codec.IDNull {
			return invalid("result with a nil msgid")
		}
		return codec.Message{Kind: codec.KindResult, ID: id, Body: b[next:len(b):len(b)]}, nil
	case tMap:
		rpcErr, end, e := readError(b, next, n)
		if e != nil {
			return codec.Message{}, e
		}
		if b[end] != 0xc0 {
			return invalid("error response with a non-nil result")
		}
		return codec.Message{Kind: codec.KindError, ID: id, Error: rpcErr}, nil
	}
	return invalid("response error is neither nil nor a map")
}

// readID reads a msgid: an integer that fits int64, or nil (IDNull). Raw
// aliases the frame with its capacity capped, so appending to it cannot
// overwrite the frame.
func readID(b []byte, i int) (codec.ID, int, *codec.Error) {
	t, _, next, _ := head(b, i)
	switch t {
	case tNil:
		return codec.NullID, next, nil
	case tInt:
		v, ok := intValue(b[i:next])
		if !ok {
			_, e := invalid("msgid does not fit in int64")
			return codec.ID{}, 0, e
		}
		return codec.ID{Kind: codec.IDNumber, Num: v, Raw: b[i:next:next]}, next, nil
	}
	_, e := invalid("msgid is not an integer")
	return codec.ID{}, 0, e
}

func (c *msgpackCodec) readMethod(b []byte, i int) (string, int, *codec.Error) {
	t, n, next, _ := head(b, i)
	if t != tStr {
		_, e := invalid("method is not a string")
		return "", 0, e
	}
	end := next + int(n)
	return c.table.Intern(b[next:end]), end, nil
}

// readParams returns the params array, the message's last element.
func readParams(b []byte, i int) ([]byte, *codec.Error) {
	if t, _, _, _ := head(b, i); t != tArray {
		_, e := invalid("params is not an array")
		return nil, e
	}
	return b[i:len(b):len(b)], nil
}

// readError reads the n pairs of an error map starting at b[i]. code and
// message are required; data is a string or nil; other keys, and keys that
// are not strings, are skipped.
func readError(b []byte, i int, n uint64) (*codec.Error, int, *codec.Error) {
	rpcErr := new(codec.Error)
	var haveCode, haveMessage bool
	for ; n > 0; n-- {
		t, kn, next, _ := head(b, i)
		if t != tStr {
			i = skip(b, skip(b, i))
			continue
		}
		key := b[next : next+int(kn)]
		i = next + int(kn)
		vt, vn, vnext, _ := head(b, i)
		var bad string
		switch string(key) {
		case "code":
			ok := vt == tInt
			if ok {
				rpcErr.Code, ok = intValue(b[i:vnext])
			}
			if !ok {
				bad = "error code is not an integer that fits int64"
			}
			haveCode = true
		case "message":
			if vt != tStr {
				bad = "error message is not a string"
			}
			rpcErr.Message, haveMessage = string(b[vnext:vnext+int(vn)]), true
		case "data":
			switch vt {
			case tStr:
				rpcErr.Data = string(b[vnext : vnext+int(vn)])
			case tNil:
				rpcErr.Data = ""
			default:
				bad = "error data is neither a string nor nil"
			}
		}
		if bad != "" {
			_, e := invalid(bad)
			return nil, 0, e
		}
		i = skip(b, i)
	}
	if !haveCode || !haveMessage {
		_, e := invalid("error map lacks code or message")
		return nil, 0, e
	}
	return rpcErr, i, nil
}

// Append encodes m. Params are sent as [] when body is nil (or encodes as
// an empty map), as the array itself when body is a slice or an array
// (positional), and as a one-element array holding body otherwise (named
// params: a struct becomes a map keyed by its json tags). A
// msgpack.RawMessage body is written as it is, after a check that it is one
// well-formed value (an array, for params). On error dst comes back with its
// original length.
func (c *msgpackCodec) Append(dst []byte, m codec.Message, body any) ([]byte, error) {
	out, err := appendMessage(dst, m, body)
	if err != nil {
		return dst, err
	}
	return out, nil
}

func appendMessage(dst []byte, m codec.Message, body any) ([]byte, error) {
	switch m.Kind {
	case codec.KindRequest:
		if err := checkID(m.ID, false); err != nil {
			return dst, err
		}
		dst = appendID(append(dst, 0x94, typeRequest), m.ID)
		return appendParams(appendStr(dst, m.Method), body)
	case codec.KindNotification:
		dst = appendStr(append(dst, 0x93, typeNotification), m.Method)
		return appendParams(dst, body)
	case codec.KindResult:
		if err := checkID(m.ID, false); err != nil {
			return dst, err
		}
		dst = appendID(append(dst, 0x94, typeResponse), m.ID)
		return appendResult(append(dst, 0xc0), body)
	case codec.KindError:
		if m.Error == nil {
			return dst, errNoError
		}
		if err := checkID(m.ID, true); err != nil {
			return dst, err
		}
		dst = appendID(append(dst, 0x94, typeResponse), m.ID)
		return append(appendError(dst, m.Error), 0xc0), nil
	}
	return dst, fmt.Errorf("msgpackrpc: cannot encode a message of kind %v", m.Kind)
}

// checkID accepts integer ids, and no id or a null one where nullOK (error
// replies, where both are written as nil).
func checkID(id codec.ID, nullOK bool) error {
	switch id.Kind {
	case codec.IDNumber:
		return nil
	case codec.IDString:
		return errStringID
	}
	if nullOK {
		return nil
	}
	return errNoID
}

// appendID echoes a decoded msgid's wire form. Ids without one, or whose
// Raw is not the msgpack encoding of Num (an id decoded by another codec),
// get the compact encoding of Num.
func appendID(dst []byte, id codec.ID) []byte {
	switch {
	case id.Kind != codec.IDNumber:
		return append(dst, 0xc0)
	case id.Raw != nil && isInt(id.Raw):
		if v, ok := intValue(id.Raw); ok && v == id.Num {
			return append(dst, id.Raw...)
		}
	}
	return appendInt(dst, id.Num)
}

func appendParams(dst []byte, body any) ([]byte, error) {
	switch v := body.(type) {
	case nil:
		return append(dst, 0x90), nil
	case msgpack.RawMessage:
		return appendRaw(dst, v, true)
	}
	rv := reflect.ValueOf(body)
	if rv.Kind() == reflect.Pointer {
		if rv.IsNil() {
			return append(dst, 0x90), nil
		}
		rv = rv.Elem()
	}
	start := len(dst)
	switch k := rv.Kind(); {
	case (k == reflect.Slice || k == reflect.Array) && rv.Type().Elem().Kind() != reflect.Uint8:
		if k == reflect.Slice && rv.IsNil() {
			return append(dst, 0x90), nil
		}
		dst, err := appendValue(dst, body)
		if err == nil {
			if t, _, _, _ := head(dst, start); t != tArray {
				err = errNotArray
			}
		}
		return dst, err
	}
	dst, err := appendValue(append(dst, 0x91), body)
	if err == nil && len(dst) == start+2 && dst[start+1] == 0x80 {
		dst = append(dst[:start], 0x90) // [{}] is sent as []
	}
	return dst, err
}

func appendResult(dst []byte, body any) ([]byte, error) {
	switch v := body.(type) {
	case nil:
		return append(dst, 0xc0), nil
	case msgpack.RawMessage:
		return appendRaw(dst, v, false)
	}
	return appendValue(dst, body)
}

func appendRaw(dst, raw []byte, params bool) ([]byte, error) {
	switch {
	case len(raw) == 0 && params:
		return append(dst, 0x90), nil
	case len(raw) == 0:
		return append(dst, 0xc0), nil
	}
	if err := scan(raw); err != nil {
		return dst, fmt.Errorf("msgpackrpc: raw body: %w", err)
	}
	if t, _, _, _ := head(raw, 0); params && t != tArray {
		return dst, errRawArray
	}
	return append(dst, raw...), nil
}

func appendError(dst []byte, e *codec.Error) []byte {
	if e.Data == "" {
		dst = append(dst, 0x82)
	} else {
		dst = append(dst, 0x83)
	}
	dst = appendInt(append(dst, "\xa4code"...), e.Code)
	dst = appendStr(append(dst, "\xa7message"...), e.Message)
	if e.Data != "" {
		dst = appendStr(append(dst, "\xa4data"...), e.Data)
	}
	return dst
}

// appendStr appends s in the smallest str form.
func appendStr(dst []byte, s string) []byte {
	switch n := len(s); {
	case n < 32:
		dst = append(dst, 0xa0|byte(n))
	case n <= math.MaxUint8:
		dst = append(dst, 0xd9, byte(n))
	case n <= math.MaxUint16:
		dst = binary.BigEndian.AppendUint16(append(dst, 0xda), uint16(n))
	default:
		dst = binary.BigEndian.AppendUint32(append(dst, 0xdb), uint32(n))
	}
	return append(dst, s...)
}

// appendInt appends n in the smallest int form, as the library's encoder
// does with UseCompactInts: non-negative numbers as unsigned.
func appendInt(dst []byte, n int64) []byte {
	switch {
	case n >= 0:
		return appendUint(dst, uint64(n))
	case n >= -32:
		return append(dst, byte(n))
	case n >= math.MinInt8:
		return append(dst, 0xd0, byte(n))
	case n >= math.MinInt16:
		return binary.BigEndian.AppendUint16(append(dst, 0xd1), uint16(n))
	case n >= math.MinInt32:
		return binary.BigEndian.AppendUint32(append(dst, 0xd2), uint32(n))
	}
	return binary.BigEndian.AppendUint64(append(dst, 0xd3), uint64(n))
}

func appendUint(dst []byte, n uint64) []byte {
	switch {
	case n <= math.MaxInt8:
		return append(dst, byte(n))
	case n <= math.MaxUint8:
		return append(dst, 0xcc, byte(n))
	case n <= math.MaxUint16:
		return binary.BigEndian.AppendUint16(append(dst, 0xcd), uint16(n))
	case n <= math.MaxUint32:
		return binary.BigEndian.AppendUint32(append(dst, 0xce), uint32(n))
	}
	return binary.BigEndian.AppendUint64(append(dst, 0xcf), n)
}

// appendWriter is the io.Writer (and io.ByteWriter, so the library does not
// wrap it) through which a pooled encoder appends to the caller's slice.
type appendWriter struct{ b []byte }

func (w *appendWriter) Write(p []byte) (int, error) {
	w.b = append(w.b, p...)
	return len(p), nil
}

func (w *appendWriter) WriteByte(c byte) error {
	w.b = append(w.b, c)
	return nil
}

type encoder struct {
	w   appendWriter
	enc *msgpack.Encoder
}

var encoders = sync.Pool{New: func() any {
	e := new(encoder)
	e.enc = msgpack.NewEncoder(&e.w)
	e.enc.SetCustomStructTag("json")
	e.enc.UseCompactInts(true)
	e.enc.SetSortMapKeys(true)
	return e
}}

// appendValue appends the library's encoding of v: structs as maps keyed by
// their json tags (omitempty honoured), integers in their smallest form.
func appendValue(dst []byte, v any) ([]byte, error) {
	e := encoders.Get().(*encoder)
	e.w.b = dst
	e.enc.ResetWriter(&e.w)
	err := e.enc.Encode(v)
	dst = e.w.b
	e.w.b = nil
	encoders.Put(e)
	if err != nil {
		return dst, fmt.Errorf("msgpackrpc: %w", err)
	}
	return dst, nil
}

// AppendBatch reports codec.ErrNoBatch: MessagePack-RPC has no batches.
func (*msgpackCodec) AppendBatch(dst []byte, _ [][]byte) ([]byte, error) {
	return dst, codec.ErrNoBatch
}
