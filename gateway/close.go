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
	CloseSlowConsumer                           // 1008: send queue overflow
	CloseIdle                                   // 1001: no traffic within the idle timeout
	CloseUnsupportedProtocol                    // 1002: reject-mode close, nothing negotiated
	CloseIOError                                // no close frame: the socket failed
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
	CloseSlowConsumer:        {ws.StatusPolicyViolation, "slow_consumer"},
	CloseIdle:                {ws.StatusGoingAway, "idle"},
	CloseUnsupportedProtocol: {ws.StatusProtocolError, "unsupported_subprotocol"},
	CloseIOError:             {0, "io_error"},
}

// Code is the WebSocket close code sent for r.
func (r CloseReason) Code() ws.StatusCode { return closeInfo[r].code }

func (r CloseReason) String() string { return closeInfo[r].label }
