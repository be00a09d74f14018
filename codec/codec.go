package codec

import (
	"errors"
	"fmt"
	"strconv"
)

// Kind says what a message is. Every encoding tags its messages explicitly,
// so a kind never has to be guessed from which fields are present.
type Kind uint8

const (
	// KindInvalid is a message that could be framed but is not a valid
	// message (an element of a batch, say). Its Error says why; the reply is
	// that error with a null id.
	KindInvalid Kind = iota
	// KindRequest is a call that expects a reply: ID, Method, Body (params).
	KindRequest
	// KindNotification is a call without a reply: Method, Body (params).
	// Notifications flow both ways; server pushes are notifications.
	KindNotification
	// KindResult is a successful reply: ID, Body (the result).
	KindResult
	// KindError is a failed reply: ID (possibly null) and Error.
	KindError
	// KindInvalidReply is a message tagged as a reply (a result or an
	// error) that is not a valid one, such as a MessagePack-RPC response
	// whose error is a string. Error says what is wrong; ID is set when it
	// could be read. Unlike KindInvalid it is never answered: an error
	// reply to a reply could be answered in turn, and two peers would
	// answer each other forever.
	KindInvalidReply
)

var kindNames = [...]string{"invalid", "request", "notification", "result", "error", "invalid reply"}

func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "kind(" + strconv.Itoa(int(k)) + ")"
}

// IDKind says which of the JSON-RPC id shapes an ID has.
type IDKind uint8

const (
	// IDNone: the message has no id (notifications).
	IDNone IDKind = iota
	// IDNull: an explicit null id (errors about unreadable requests).
	IDNull
	// IDNumber: a numeric id. MessagePack-RPC and binary-raw know only these.
	IDNumber
	// IDString: a string id (JSON-RPC only).
	IDString
)

// ID identifies a request and its reply. Replies echo the request's id
// exactly: a codec that decoded the id keeps its wire form in Raw and
// writes it back unchanged, so a JSON id such as 1.0, 1e3 or a 30-digit
// number comes back as sent.
type ID struct {
	Kind IDKind
	// Num is the value of an IDNumber that is an integer in int64 range.
	Num int64
	// Str is the value of an IDString.
	Str string
	// Raw is the id's exact wire form in the codec that decoded it (nil for
	// ids made with [NumberID] or [StringID]). It aliases the frame.
	Raw []byte
}

// NumberID returns a numeric id.
func NumberID(n int64) ID { return ID{Kind: IDNumber, Num: n} }

// StringID returns a string id (representable in JSON-RPC only).
func StringID(s string) ID { return ID{Kind: IDString, Str: s} }

// NullID is the id of replies to requests whose id could not be read.
var NullID = ID{Kind: IDNull}

// Clone returns an id that no longer aliases the frame it was decoded from.
func (id ID) Clone() ID {
	if id.Raw != nil {
		id.Raw = append([]byte(nil), id.Raw...)
	}
	return id
}

// Equal reports whether two ids denote the same value. Wire forms are
// compared when both ids have them; otherwise values are.
func (id ID) Equal(o ID) bool {
	if id.Kind != o.Kind {
		return false
	}
	switch {
	case id.Raw != nil && o.Raw != nil:
		return string(id.Raw) == string(o.Raw)
	case id.Kind == IDNumber:
		return id.Num == o.Num
	case id.Kind == IDString:
		return id.Str == o.Str
	}
	return true
}

func (id ID) String() string {
	switch id.Kind {
	case IDNone:
		return ""
	case IDNull:
		return "null"
	}
	if id.Raw != nil {
		return string(id.Raw)
	}
	if id.Kind == IDString {
		return strconv.Quote(id.Str)
	}
	return strconv.FormatInt(id.Num, 10)
}

// Message is one decoded JSON-RPC-style message, whatever the encoding.
type Message struct {
	Kind Kind
	// ID is set for requests and replies.
	ID ID
	// Method is set for requests and notifications. Known method names are
	// interned through the codec's [MethodTable], so decoding them does not
	// allocate.
	Method string
	// Body holds the params of a request or notification, or the result of
	// a reply, still in the codec's wire format: decode it with the same
	// codec's Unmarshal. Empty when the message carried none. It aliases the
	// frame.
	Body []byte
	// Error is set for KindError, KindInvalid and KindInvalidReply.
	Error *Error
}

// Codec translates between WebSocket message payloads and messages. It is
// safe for concurrent use.
type Codec interface {
	// Name is the subprotocol name, as negotiated in Sec-WebSocket-Protocol.
	Name() string
	// Decode parses one WebSocket message payload, appending the messages it
	// holds to dst (one, or several for a batch). A non-nil error is an
	// *Error (parse error or invalid request) about the frame as a whole;
	// the reply to it carries NullID. A batch element that is invalid comes
	// back as a KindInvalid message in its place. Anything tagged as a
	// reply, however malformed, is a KindResult, KindError or
	// KindInvalidReply message and never an error or KindInvalid, so that
	// the server never answers a reply.
	Decode(dst []Message, frame []byte) (msgs []Message, batch bool, err error)
	// Unmarshal decodes a message Body into v (a pointer to a typed struct).
	// In json-rpc and msgpack an empty body (no params) leaves v unchanged;
	// in binary-raw the body is always the method's payload, and an empty
	// one is valid only where the layout is empty. Errors are *Error with
	// CodeInvalidParams.
	Unmarshal(body []byte, v any) error
	// Append encodes m to dst. For requests and notifications body is the
	// params value, for results the result value (nil: none); it is ignored
	// for errors, which take m.Error. m.Body is ignored.
	Append(dst []byte, m Message, body any) ([]byte, error)
	// AppendBatch appends a batch made of already encoded messages. Codecs
	// without batches return ErrNoBatch.
	AppendBatch(dst []byte, items [][]byte) ([]byte, error)
}

// ErrNoBatch is returned by codecs whose wire format has no batches.
var ErrNoBatch = errors.New("codec: this encoding has no batches")

// AppendResult appends the successful reply to the request with id.
func AppendResult(c Codec, dst []byte, id ID, result any) ([]byte, error) {
	return c.Append(dst, Message{Kind: KindResult, ID: id}, result)
}

// AppendError appends the failed reply to the request with id.
func AppendError(c Codec, dst []byte, id ID, e *Error) ([]byte, error) {
	return c.Append(dst, Message{Kind: KindError, ID: id, Error: e}, nil)
}

// AppendNotification appends a notification (a server push, for example).
func AppendNotification(c Codec, dst []byte, method string, params any) ([]byte, error) {
	return c.Append(dst, Message{Kind: KindNotification, Method: method}, params)
}

// AppendRequest appends a request.
func AppendRequest(c Codec, dst []byte, id ID, method string, params any) ([]byte, error) {
	return c.Append(dst, Message{Kind: KindRequest, ID: id, Method: method}, params)
}

// Error is an RPC error. Its codes are one space shared by all encodings:
// the JSON-RPC 2.0 codes, with -32000..-32099 for server-defined errors.
type Error struct {
	Code    int64
	Message string
	// Data is an optional human-readable detail; empty means absent. A JSON
	// peer's non-string data is kept as its JSON text.
	Data string
}

// The standard JSON-RPC 2.0 error codes.
const (
	CodeParseError     = -32700
	CodeInvalidRequest = -32600
	CodeMethodNotFound = -32601
	CodeInvalidParams  = -32602
	CodeInternalError  = -32603
	// CodeServerErrorMin and CodeServerErrorMax bound server-defined errors.
	CodeServerErrorMin = -32099
	CodeServerErrorMax = -32000
)

func (e *Error) Error() string {
	if e.Data != "" {
		return fmt.Sprintf("rpc error %d: %s (%s)", e.Code, e.Message, e.Data)
	}
	return fmt.Sprintf("rpc error %d: %s", e.Code, e.Message)
}

// Errorf returns an *Error with code and a formatted message.
func Errorf(code int64, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// ParseError is the error for a frame that is not in the codec's format.
func ParseError(detail string) *Error {
	return &Error{Code: CodeParseError, Message: "Parse error", Data: detail}
}

// InvalidRequest is the error for well-formed data that is not a valid message.
func InvalidRequest(detail string) *Error {
	return &Error{Code: CodeInvalidRequest, Message: "Invalid Request", Data: detail}
}

// InvalidParams is the error for params that do not fit the method.
func InvalidParams(detail string) *Error {
	return &Error{Code: CodeInvalidParams, Message: "Invalid params", Data: detail}
}
