package gateway

import "github.com/subgate/subgate/codec"

// NewEncodedPush returns a push whose encoding with c is already known:
// b, which recipients speaking c get as it is. A hub that receives pushes
// from other nodes in one codec's form uses it to encode them once less.
func NewEncodedPush(method string, body any, c codec.Codec, b []byte) *Push {
	return &Push{Method: method, Body: body, enc: []encoded{{c, b}}}
}
