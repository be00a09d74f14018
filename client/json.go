package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"unicode/utf8"

	"github.com/subgate/subgate/codec"
	"github.com/subgate/subgate/protocols"
	"github.com/subgate/subgate/protocols/chat"
)

// jsonCodec reads CallJSON's params: member names must match exactly (unlike
// encoding/json, which would take "ROOM" for "room"), unknown members are
// refused, and a JSON array gives the params by position, as the server's
// json-rpc subprotocol does.
var jsonCodec = func() codec.Codec {
	p, _ := protocols.Lookup(protocols.All, protocols.JSONRPC)
	return p.Codec
}()

// CallJSON calls method with params given as JSON and returns the result as
// JSON, whatever the connection's subprotocol: it is the bridge for tools
// such as the subgate CLI.
//
// For the methods of protocols/chat the params are decoded into the typed
// params value (exact member names, unknown members refused, an array gives
// them by position; empty or null means none), and the reply is decoded into
// the typed result before it is turned into JSON, so the three subprotocols
// print the same. For other method names the params are sent untyped: as
// they are on json-rpc, as the equivalent MessagePack map or array on
// msgpack; binary-raw, whose payloads have no self-describing form, can only
// send such a method without params.
//
// An error reply is returned as a *codec.Error, as by Call.
func (c *Client) CallJSON(ctx context.Context, method string, paramsJSON []byte) (json.RawMessage, error) {
	paramsJSON = bytes.TrimSpace(paramsJSON)
	if len(paramsJSON) > 0 && !json.Valid(paramsJSON) {
		return nil, fmt.Errorf("client: params for %s are not valid JSON", method)
	}
	if e, ok := chat.Lookup(method); ok && e.NewResult != nil {
		params := e.NewParams()
		if err := jsonCodec.Unmarshal(paramsJSON, params); err != nil {
			return nil, fmt.Errorf("client: params for %s: %s", method, errorDetail(err))
		}
		result := e.NewResult()
		if err := c.Call(ctx, method, params, result); err != nil {
			return nil, err
		}
		return marshalJSON(result)
	}

	empty := len(paramsJSON) == 0 || string(paramsJSON) == "null"
	var params any // stays an untyped nil when there are none: no params member
	switch c.proto.Name {
	case protocols.JSONRPC:
		if !empty {
			if paramsJSON[0] != '{' && paramsJSON[0] != '[' {
				return nil, fmt.Errorf("client: params for %s must be a JSON object or array", method)
			}
			params = json.RawMessage(paramsJSON)
		}
		var result json.RawMessage
		if err := c.Call(ctx, method, params, &result); err != nil {
			return nil, err
		}
		if len(result) == 0 {
			result = json.RawMessage("null")
		}
		return result, nil
	case protocols.MsgPack:
		if !empty {
			v, err := untypedJSON(paramsJSON)
			if err != nil {
				return nil, fmt.Errorf("client: params for %s: %v", method, err)
			}
			switch v.(type) {
			case map[string]any, []any:
			default:
				return nil, fmt.Errorf("client: params for %s must be a JSON object or array", method)
			}
			params = v
		}
		var result any
		if err := c.Call(ctx, method, params, &result); err != nil {
			return nil, err
		}
		return marshalJSON(jsonable(result))
	default:
		if !empty {
			return nil, fmt.Errorf("client: unknown method %s: cannot encode params for %s", method, c.proto.Name)
		}
		err := c.Call(ctx, method, nil, nil)
		if err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("client: unknown method %s: cannot decode its %s result", method, c.proto.Name)
	}
}

// PushJSON returns a push as one JSON object, {"method":M,"params":P}, with
// the payload decoded into its typed value first (so every subprotocol
// prints the same). A push protocols/chat does not know is shown as sent on
// json-rpc, converted from MessagePack on msgpack, and is an error on
// binary-raw.
func PushJSON(p Push) (json.RawMessage, error) {
	var params any
	if _, ok := chat.Lookup(p.Method); ok {
		v, err := p.Value()
		if err != nil {
			return nil, err
		}
		params = v
	} else if p.codec != nil {
		switch p.codec.Name() {
		case protocols.JSONRPC:
			if len(p.Body) > 0 {
				params = json.RawMessage(p.Body)
			}
		case protocols.MsgPack:
			if len(p.Body) > 0 {
				var v any
				if err := p.Decode(&v); err != nil {
					return nil, err
				}
				// Named params travel as a one-map array: show the map,
				// as json-rpc would.
				if a, ok := v.([]any); ok && len(a) == 1 {
					if m, ok := a[0].(map[string]any); ok {
						v = m
					}
				}
				params = jsonable(v)
			}
		default:
			return nil, fmt.Errorf("client: unknown push %s: cannot decode its %s payload", p.Method, p.codec.Name())
		}
	}
	out := struct {
		Method string `json:"method"`
		Params any    `json:"params,omitempty"`
	}{p.Method, params}
	return marshalJSON(&out)
}

// marshalJSON encodes v without HTML escaping (the server does not escape
// either) and without a trailing newline.
func marshalJSON(v any) (json.RawMessage, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, fmt.Errorf("client: encode JSON: %w", err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte{'\n'}), nil
}

// errorDetail is the text of a local decoding error: the detail of an
// Invalid params *codec.Error, which must not read like a server's reply.
func errorDetail(err error) string {
	var ce *codec.Error
	if errors.As(err, &ce) && ce.Data != "" {
		return ce.Data
	}
	return err.Error()
}

// untypedJSON decodes JSON into map[string]any, []any and scalars, with
// integers kept as int64 or uint64 so MessagePack sends them as integers.
func untypedJSON(b []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	return numbers(v), nil
}

func numbers(v any) any {
	switch x := v.(type) {
	case json.Number:
		if i, err := strconv.ParseInt(string(x), 10, 64); err == nil {
			return i
		}
		if u, err := strconv.ParseUint(string(x), 10, 64); err == nil {
			return u
		}
		if f, err := x.Float64(); err == nil {
			return f
		}
		return string(x)
	case map[string]any:
		for k, e := range x {
			x[k] = numbers(e)
		}
	case []any:
		for i, e := range x {
			x[i] = numbers(e)
		}
	}
	return v
}

// jsonable turns what MessagePack decodes into something encoding/json
// accepts: maps with non-string keys get their keys formatted, binary
// becomes a string when it is UTF-8, and NaN or infinities become strings.
func jsonable(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			x[k] = jsonable(e)
		}
	case map[any]any:
		m := make(map[string]any, len(x))
		for k, e := range x {
			m[fmt.Sprint(k)] = jsonable(e)
		}
		return m
	case []any:
		for i, e := range x {
			x[i] = jsonable(e)
		}
	case []byte:
		if utf8.Valid(x) {
			return string(x)
		}
		return x // base64
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return strconv.FormatFloat(x, 'g', -1, 64)
		}
	case float32:
		if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
			return strconv.FormatFloat(float64(x), 'g', -1, 32)
		}
	}
	return v
}
