package chat

import "github.com/subgate/subgate/codec"

// Server-defined error codes (-32000..-32099), the same in every encoding.
// protocols/json-rpc.md lists them with their meaning; never renumber.
const (
	CodeNotMember      = -32001 // chat.send or chat.leave on a room the client has not joined
	CodeUnknownClient  = -32002 // chat.direct to a client id with no live connection
	CodeInvalidRoom    = -32003 // room name empty, too long or outside [A-Za-z0-9._-]
	CodeMessageTooLong = -32004 // message text longer than MaxMessageLen bytes
	CodeEmptyMessage   = -32005 // message text empty
	CodeRateLimited    = -32006 // the connection sent calls faster than its rate limit
	CodeShuttingDown   = -32007 // the server is draining and takes no new calls
	CodeReplyTooLarge  = -32008 // the reply would exceed the connection's reply budget
	CodeLimitReached   = -32009 // a room or history bound of the node or the client was hit
)

// ErrorMessages gives the message text used for each server-defined code.
var ErrorMessages = map[int64]string{
	CodeNotMember:      "Not a member of the room",
	CodeUnknownClient:  "Unknown client",
	CodeInvalidRoom:    "Invalid room name",
	CodeMessageTooLong: "Message too long",
	CodeEmptyMessage:   "Empty message",
	CodeRateLimited:    "Rate limited",
	CodeShuttingDown:   "Server shutting down",
	CodeReplyTooLarge:  "Reply too large",
	CodeLimitReached:   "Limit reached",
}

// NewError returns the error for a server-defined code with an optional detail.
func NewError(code int64, detail string) *codec.Error {
	return &codec.Error{Code: code, Message: ErrorMessages[code], Data: detail}
}
