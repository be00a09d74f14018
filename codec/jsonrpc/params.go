package jsonrpc

import (
	"encoding/json"
	"errors"
	"reflect"
	"strconv"
	"strings"
	"sync"

	"github.com/subgate/subgate/codec"
)

// Unmarshal decodes a body into v. Objects fill struct fields by their json
// names, matched exactly; arrays fill them by position, in declaration
// order, and may leave trailing fields out. Anything else goes to
// encoding/json unchanged (results, for example).
func (c *jsonCodec) Unmarshal(body []byte, v any) error {
	if len(body) == 0 {
		return nil
	}
	fields := structFields(v)
	if fields != nil {
		switch body[skipSpace(body, 0)] {
		case '{':
			if err := checkKeys(body, fields); err != nil {
				return err
			}
			if emptyObject(body) {
				return nil // nothing to set: skip encoding/json (a ping's {})
			}
		case '[':
			return unmarshalPositional(body, v, fields)
		}
	}
	if err := json.Unmarshal(body, v); err != nil {
		return codec.InvalidParams(paramsError(err, ""))
	}
	return nil
}

// paramsError words a decoding failure with the wire's field name and
// types: "room: want a string, got a number", not encoding/json's text,
// which names Go types ("Go struct field JoinParams.room of type string").
// field names the value decoded when err cannot (a positional param).
func paramsError(err error, field string) string {
	var te *json.UnmarshalTypeError
	if !errors.As(err, &te) {
		return strings.TrimPrefix(err.Error(), "json: ")
	}
	if te.Field != "" {
		field = te.Field
	}
	got := te.Value
	switch {
	case strings.HasPrefix(got, "number "):
		got = got[len("number "):]
	case got == "array" || got == "object":
		got = "an " + got
	default:
		got = "a " + got
	}
	msg := "want " + codec.WireType(te.Type) + ", got " + got
	if field == "" {
		return msg
	}
	return field + ": " + msg
}

// fieldList is the json names of a struct's fields in declaration order.
type fieldList struct {
	names []string
	index []int
}

var fieldCache sync.Map // reflect.Type -> *fieldList

// structFields returns the fields of the struct v points to, or nil when v
// is not a pointer to a struct.
func structFields(v any) *fieldList {
	t := reflect.TypeOf(v)
	if t == nil || t.Kind() != reflect.Pointer || t.Elem().Kind() != reflect.Struct {
		return nil
	}
	t = t.Elem()
	if f, ok := fieldCache.Load(t); ok {
		return f.(*fieldList)
	}
	fl := &fieldList{}
	for i := range t.NumField() {
		sf := t.Field(i)
		if !sf.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(sf.Tag.Get("json"), ",")
		if name == "-" {
			continue
		}
		if name == "" {
			name = sf.Name
		}
		fl.names = append(fl.names, name)
		fl.index = append(fl.index, i)
	}
	fieldCache.Store(t, fl)
	return fl
}

func (fl *fieldList) has(key string) bool {
	for _, n := range fl.names {
		if n == key {
			return true
		}
	}
	return false
}

// checkKeys refuses members that do not name a field exactly:
// encoding/json alone would match "ROOM" to room.
func checkKeys(body []byte, fl *fieldList) error {
	var bad error
	eachMember(body, skipSpace(body, 0), func(m member) bool {
		key := string(m.key)
		if strings.IndexByte(key, '\\') >= 0 {
			_ = json.Unmarshal(append(append([]byte{'"'}, m.key...), '"'), &key)
		}
		if !fl.has(key) {
			bad = codec.InvalidParams("unknown field " + strconv.Quote(key))
			return false
		}
		return true
	})
	return bad
}

func unmarshalPositional(body []byte, v any, fl *fieldList) error {
	rv := reflect.ValueOf(v).Elem()
	i := 0
	var bad error
	eachElement(body, skipSpace(body, 0), func(el []byte) {
		if bad != nil {
			return
		}
		if i >= len(fl.index) {
			bad = codec.InvalidParams("too many positional params: want at most " + strconv.Itoa(len(fl.index)))
			return
		}
		f := rv.Field(fl.index[i])
		if err := json.Unmarshal(el, f.Addr().Interface()); err != nil {
			bad = codec.InvalidParams("param " + strconv.Itoa(i) + " (" + fl.names[i] + "): " + paramsError(err, ""))
		}
		i++
	})
	return bad
}

// emptyObject reports whether body, a valid JSON object, has no members.
func emptyObject(body []byte) bool {
	i := skipSpace(body, skipSpace(body, 0)+1)
	return i < len(body) && body[i] == '}'
}
