package jsonrpc

import (
	"bytes"
	"encoding/json"
	"errors"
	"strconv"
	"sync"
	"unicode/utf8"

	"github.com/subgate/subgate/codec"
)

// MaxBatch is the largest batch a frame may hold; larger batches are
// refused whole with -32600.
const MaxBatch = 100

type jsonCodec struct {
	table *codec.MethodTable
}

var _ codec.Codec = (*jsonCodec)(nil)

// New returns the json-rpc codec. Method names in t are interned when
// decoded; t may be nil.
func New(t *codec.MethodTable) codec.Codec { return &jsonCodec{table: t} }

func (c *jsonCodec) Name() string { return "json-rpc" }

func (c *jsonCodec) Decode(dst []codec.Message, frame []byte) ([]codec.Message, bool, error) {
	if !json.Valid(frame) {
		return dst, false, codec.ParseError(parseDetail(frame))
	}
	if !utf8.Valid(frame) {
		return dst, false, codec.ParseError("invalid UTF-8")
	}
	i := skipSpace(frame, 0)
	switch frame[i] {
	case '{':
		return append(dst, c.decodeObject(frame[i:skipValue(frame, i)])), false, nil
	case '[':
		n := 0
		eachElement(frame, i, func([]byte) { n++ })
		if n == 0 {
			return dst, false, codec.InvalidRequest("empty batch")
		}
		if n > MaxBatch {
			return dst, false, codec.InvalidRequest("batch larger than " + strconv.Itoa(MaxBatch))
		}
		eachElement(frame, i, func(el []byte) {
			if el[0] != '{' {
				dst = append(dst, invalid("batch element is not an object"))
				return
			}
			dst = append(dst, c.decodeObject(el))
		})
		return dst, true, nil
	}
	return dst, false, codec.InvalidRequest("not an object or a batch")
}

func parseDetail(frame []byte) string {
	var v any
	if err := json.Unmarshal(frame, &v); err != nil {
		return err.Error()
	}
	return "invalid JSON"
}

func invalid(detail string) codec.Message {
	return codec.Message{Kind: codec.KindInvalid, ID: codec.NullID, Error: codec.InvalidRequest(detail)}
}

// envelope holds the spans of the members of one message object.
type envelope struct {
	version, id, method, params, result, errv []byte
	dup, badKey                               bool
}

// set records one member. It reads every member, even after a duplicate or
// an escaped name, so that an object is known to be a Response (see
// decodeObject) however malformed it is.
func (e *envelope) set(m member) bool {
	key := m.key
	if bytes.IndexByte(key, '\\') >= 0 {
		// Unknown members are ignored, but a name with escapes could
		// spell a known member; such an object is refused rather than
		// guessed at, but read as the escapes say.
		e.badKey = true
		quoted := append(append(append(make([]byte, 0, len(key)+2), '"'), key...), '"')
		var s string
		_ = json.Unmarshal(quoted, &s) // a valid JSON string
		key = []byte(s)
	}
	var slot *[]byte
	switch string(key) {
	case "jsonrpc":
		slot = &e.version
	case "id":
		slot = &e.id
	case "method":
		slot = &e.method
	case "params":
		slot = &e.params
	case "result":
		slot = &e.result
	case "error":
		slot = &e.errv
	default:
		return true
	}
	if *slot != nil {
		e.dup = true
		return true
	}
	*slot = m.value
	return true
}

// decodeObject decodes one message object. An object with "result" or
// "error" and no "method" is a Response object, never a request: it comes
// back as a reply kind even when it is malformed (protocols/json-rpc.md,
// "Responses from a client"), since a Response is never answered.
func (c *jsonCodec) decodeObject(obj []byte) codec.Message {
	var e envelope
	eachMember(obj, 0, e.set)
	switch {
	case e.method == nil && (e.result != nil || e.errv != nil):
		return decodeReply(&e)
	case e.dup:
		return invalid("duplicate member")
	case e.badKey:
		return invalid("escaped member name")
	case string(e.version) != `"2.0"`:
		return invalid(`"jsonrpc" must be "2.0"`)
	case e.method != nil:
		return c.decodeCall(&e)
	}
	return invalid("neither a call nor a reply")
}

func (c *jsonCodec) decodeCall(e *envelope) codec.Message {
	if e.result != nil || e.errv != nil {
		return invalid("a call cannot carry result or error")
	}
	if e.method[0] != '"' {
		return invalid(`"method" must be a string`)
	}
	name := e.method[1 : len(e.method)-1]
	if bytes.IndexByte(name, '\\') >= 0 {
		var s string
		_ = json.Unmarshal(e.method, &s) // valid JSON string
		name = []byte(s)
	}
	if e.params != nil && e.params[0] != '{' && e.params[0] != '[' {
		return invalid(`"params" must be an object or an array`)
	}
	m := codec.Message{Kind: codec.KindNotification, Method: c.table.Intern(name), Body: e.params}
	if e.id != nil {
		id, ok := decodeID(e.id)
		if !ok {
			return invalid(`"id" must be a string, a number or null`)
		}
		m.Kind, m.ID = codec.KindRequest, id
	}
	return m
}

// decodeReply decodes a Response object. A malformed one is a
// KindInvalidReply message, with its id when that could be read.
func decodeReply(e *envelope) codec.Message {
	var id codec.ID // stays zero when absent or unreadable
	idOK := false
	if e.id != nil {
		id, idOK = decodeID(e.id)
	}
	bad := func(detail string) codec.Message {
		return codec.Message{Kind: codec.KindInvalidReply, ID: id, Error: codec.InvalidRequest(detail)}
	}
	switch {
	case e.dup:
		return bad("duplicate member")
	case e.badKey:
		return bad("escaped member name")
	case string(e.version) != `"2.0"`:
		return bad(`"jsonrpc" must be "2.0"`)
	case e.result != nil && e.errv != nil:
		return bad("a reply cannot carry both result and error")
	case e.id == nil:
		return bad("a reply must carry an id")
	case !idOK:
		return bad(`"id" must be a string, a number or null`)
	case e.result != nil:
		return codec.Message{Kind: codec.KindResult, ID: id, Body: e.result}
	}
	rerr, ok := decodeError(e.errv)
	if !ok {
		return bad(`"error" must be an object with an integer code and a string message`)
	}
	return codec.Message{Kind: codec.KindError, ID: id, Error: rerr}
}

func decodeID(raw []byte) (codec.ID, bool) {
	switch raw[0] {
	case 'n':
		return codec.ID{Kind: codec.IDNull, Raw: raw}, true
	case '"':
		var s string
		_ = json.Unmarshal(raw, &s)
		return codec.ID{Kind: codec.IDString, Str: s, Raw: raw}, true
	case '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
		n, _ := strconv.ParseInt(string(raw), 10, 64)
		return codec.ID{Kind: codec.IDNumber, Num: n, Raw: raw}, true
	}
	return codec.ID{}, false
}

func decodeError(raw []byte) (*codec.Error, bool) {
	if raw[0] != '{' {
		return nil, false
	}
	var w struct {
		Code    *int64          `json:"code"`
		Message *string         `json:"message"`
		Data    json.RawMessage `json:"data"`
	}
	if json.Unmarshal(raw, &w) != nil || w.Code == nil || w.Message == nil {
		return nil, false
	}
	e := &codec.Error{Code: *w.Code, Message: *w.Message}
	if len(w.Data) > 0 && string(w.Data) != "null" {
		if json.Unmarshal(w.Data, &e.Data) != nil {
			e.Data = string(w.Data)
		}
	}
	return e, true
}

// Append encodes m. On error dst comes back as it was given.
func (c *jsonCodec) Append(dst []byte, m codec.Message, body any) ([]byte, error) {
	out, err := c.append(dst, m, body)
	if err != nil {
		return dst, err
	}
	return out, nil
}

func (c *jsonCodec) append(dst []byte, m codec.Message, body any) ([]byte, error) {
	dst = append(dst, `{"jsonrpc":"2.0",`...)
	var err error
	switch m.Kind {
	case codec.KindRequest, codec.KindNotification:
		dst = append(dst, `"method":`...)
		dst = appendString(dst, m.Method)
		if body != nil {
			dst = append(dst, `,"params":`...)
			if dst, err = appendValue(dst, body); err != nil {
				return dst, err
			}
		}
		if m.Kind == codec.KindNotification {
			return append(dst, '}'), nil
		}
	case codec.KindResult:
		dst = append(dst, `"result":`...)
		if dst, err = appendValue(dst, body); err != nil {
			return dst, err
		}
	case codec.KindError, codec.KindInvalid:
		if m.Error == nil {
			return dst, errors.New("jsonrpc: error message without Error")
		}
		dst = appendError(dst, m.Error)
	default:
		return dst, errors.New("jsonrpc: unknown message kind")
	}
	dst = append(dst, `,"id":`...)
	return append(appendID(dst, m.ID), '}'), nil
}

func (c *jsonCodec) AppendBatch(dst []byte, items [][]byte) ([]byte, error) {
	dst = append(dst, '[')
	for i, it := range items {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, it...)
	}
	return append(dst, ']'), nil
}

func appendID(dst []byte, id codec.ID) []byte {
	switch {
	case id.Raw != nil:
		return append(dst, id.Raw...)
	case id.Kind == codec.IDNumber:
		return strconv.AppendInt(dst, id.Num, 10)
	case id.Kind == codec.IDString:
		return appendString(dst, id.Str)
	}
	return append(dst, "null"...)
}

func appendError(dst []byte, e *codec.Error) []byte {
	dst = append(dst, `"error":{"code":`...)
	dst = strconv.AppendInt(dst, e.Code, 10)
	dst = append(dst, `,"message":`...)
	dst = appendString(dst, e.Message)
	if e.Data != "" {
		dst = append(dst, `,"data":`...)
		dst = appendString(dst, e.Data)
	}
	return append(dst, '}')
}

const hexDigits = "0123456789abcdef"

// appendString appends s as a JSON string. Invalid UTF-8 becomes U+FFFD, as
// encoding/json does; <, > and & are not escaped.
func appendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c < utf8.RuneSelf {
			i++
			continue
		}
		if c < utf8.RuneSelf {
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// encoder is a pooled json.Encoder that appends to a caller's slice.
type encoder struct {
	w   appendWriter
	enc *json.Encoder
}

type appendWriter struct{ b []byte }

func (w *appendWriter) Write(p []byte) (int, error) {
	w.b = append(w.b, p...)
	return len(p), nil
}

var encoders = sync.Pool{New: func() any {
	e := &encoder{}
	e.enc = json.NewEncoder(&e.w)
	e.enc.SetEscapeHTML(false)
	return e
}}

func appendValue(dst []byte, v any) ([]byte, error) {
	if v == nil {
		return append(dst, "null"...), nil
	}
	e := encoders.Get().(*encoder)
	e.w.b = dst
	err := e.enc.Encode(v)
	dst = e.w.b
	e.w.b = nil
	encoders.Put(e)
	if err != nil {
		return dst, err
	}
	return dst[:len(dst)-1], nil // Encode ends with a newline
}
