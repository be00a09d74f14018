package gateway

import "github.com/gobwas/ws"

// CloseReason is why a connection ended. It maps to a WebSocket close code,
// a log field and a metric label.
type CloseReason uint8

const (
	ClosePeer                CloseReason = iota // the client closed (its code is echoed)
	CloseNormal                                 // 1000
	CloseGoingAway                              // 1001: server shutting down
	CloseProtocolError                          // 1002: RFC 6455 violation
	CloseUnsupportedData                        // 1003: wrong frame type for the subprotocol
	CloseInvalidPayload                         // 1007: text frame that is not UTF-8
	ClosePolicy                                 // 1008: policy violation
	CloseTooBig                                 // 1009: message over the size limit
	CloseInternal                               // 1011: server error
	CloseSlowConsumer                           // 4000: bytes not yet written exceeded the send queue bound
	CloseIdle                                   // 1001: no traffic within the idle timeout
	CloseUnsupportedProtocol                    // 1002: reject-mode close, nothing negotiated
	CloseIOError                                // no close frame: the socket failed
	CloseRateLimited                            // 1008: kept calling after too many -32006 refusals
	CloseTokenExpired                           // 4001: the handshake's token expired
)

// Private close codes (RFC 6455 §7.4.2: 4000-4999 are for applications).
// Each tells the client what to do next; the specs list them.
const (
	// StatusLagging: the client fell behind (its send queue overflowed).
	// Reconnect and catch up with chat.history {since}.
	StatusLagging ws.StatusCode = 4000
	// StatusTokenExpired: the token given at the handshake expired.
	// Reconnect with a new token.
	StatusTokenExpired ws.StatusCode = 4001
)

var closeInfo = [...]struct {
	code  ws.StatusCode
	label string
}{
	ClosePeer:                {ws.StatusNormalClosure, "peer"},
	CloseNormal:              {ws.StatusNormalClosure, "normal"},
	CloseGoingAway:           {ws.StatusGoingAway, "going_away"},
	CloseProtocolError:       {ws.StatusProtocolError, "protocol_error"},
	CloseUnsupportedData:     {ws.StatusUnsupportedData, "unsupported_data"},
	CloseInvalidPayload:      {ws.StatusInvalidFramePayloadData, "invalid_payload"},
	ClosePolicy:              {ws.StatusPolicyViolation, "policy"},
	CloseTooBig:              {ws.StatusMessageTooBig, "too_big"},
	CloseInternal:            {ws.StatusInternalServerError, "internal"},
	CloseSlowConsumer:        {StatusLagging, "slow_consumer"},
	CloseIdle:                {ws.StatusGoingAway, "idle"},
	CloseUnsupportedProtocol: {ws.StatusProtocolError, "unsupported_subprotocol"},
	CloseIOError:             {0, "io_error"},
	CloseRateLimited:         {ws.StatusPolicyViolation, "rate_limited"},
	CloseTokenExpired:        {StatusTokenExpired, "token_expired"},
}

// Code is the WebSocket close code sent for r.
func (r CloseReason) Code() ws.StatusCode { return closeInfo[r].code }

func (r CloseReason) String() string { return closeInfo[r].label }
