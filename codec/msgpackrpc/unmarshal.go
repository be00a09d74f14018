package msgpackrpc

import (
	"fmt"
	"math"
	"reflect"
	"strconv"
	"strings"
	"sync"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/subgate/subgate/codec"
)

// Unmarshal decodes a params or result body into v, a non-nil pointer. The
// body is scanned first (it may be any bytes), then decoded by the reflection
// walker below rather than the msgpack library: the chat types implement
// encoding.BinaryUnmarshaler for binary-raw, and the library's decoder
// prefers that over decoding a struct from a map.
//
// An array body decoded into a struct (or a map) is params: [] leaves v
// unchanged; a single map element is named params, whose keys must each
// name a field exactly; otherwise the elements fill the fields in
// declaration order, trailing ones may be left out. Any other body, such as
// a result, is decoded straight into v and map keys that name no field are
// skipped, so that clients survive fields added to results.
func (c *msgpackCodec) Unmarshal(body []byte, v any) error {
	if len(body) == 0 {
		return nil
	}
	if err := scan(body); err != nil {
		return codec.InvalidParams(err.Error())
	}
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.IsNil() {
		return codec.InvalidParams(fmt.Sprintf("msgpackrpc: Unmarshal needs a non-nil pointer, not %T", v))
	}
	d := valueDecoder{b: body}
	t, n, i, _ := head(body, 0)
	if k := rv.Elem().Kind(); t == tArray && (k == reflect.Struct || k == reflect.Map) {
		if n == 0 {
			return nil
		}
		d.strict = true
		if et, _, _, _ := head(body, i); n == 1 && et == tMap {
			d.i = i
		}
	}
	if err := d.value(rv.Elem()); err != nil {
		return codec.InvalidParams(err.Error())
	}
	return nil
}

// valueDecoder decodes scanned MessagePack into Go values by reflection.
// Recursion is bounded by MaxDepth, and every slice or map it makes is
// bounded by the bytes left, since scan checked the counts.
type valueDecoder struct {
	b      []byte
	i      int
	strict bool // refuse map keys that name no struct field
}

// decodeError is a decoding failure with the path of the value it is about.
type decodeError struct{ path, msg string }

func (e *decodeError) Error() string {
	if e.path == "" {
		return e.msg
	}
	return e.path + ": " + e.msg
}

// within prefixes err's path with the name of the field or element it is in.
func within(err error, name string) error {
	if e, ok := err.(*decodeError); ok {
		switch {
		case e.path == "":
			e.path = name
		case e.path[0] == '[':
			e.path = name + e.path
		default:
			e.path = name + "." + e.path
		}
	}
	return err
}

var typeNames = [...]string{tNil: "nil", tBool: "bool", tInt: "int", tFloat: "float",
	tStr: "str", tBin: "bin", tArray: "array", tMap: "map"}

func mismatch(t byte, v reflect.Value) error {
	return &decodeError{msg: "want " + codec.WireType(v.Type()) + ", got a msgpack " + typeNames[t]}
}

var (
	rawMessageType  = reflect.TypeFor[msgpack.RawMessage]()
	unmarshalerType = reflect.TypeFor[msgpack.Unmarshaler]()
)

// value decodes the value at d.i into v and moves past it.
func (d *valueDecoder) value(v reflect.Value) error {
	if ok, err := d.special(v); ok {
		return err
	}
	t, n, next, _ := head(d.b, d.i)
	end := next
	if t == tStr || t == tBin {
		end += int(n)
	}
	switch {
	case t == tNil:
		d.i = end
		v.SetZero()
		return nil
	case t == tArray || t == tMap || v.Kind() == reflect.Pointer || v.Kind() == reflect.Interface:
		return d.container(v, t, n, next)
	}
	if err := d.scalar(v, t, d.b[d.i:end], d.b[next:end]); err != nil {
		return err
	}
	d.i = end
	return nil
}

// special handles msgpack.RawMessage (a copy of the value's bytes) and
// types that implement msgpack.Unmarshaler.
func (d *valueDecoder) special(v reflect.Value) (bool, error) {
	typ := v.Type()
	if typ.PkgPath() == "" || v.Kind() == reflect.Pointer || v.Kind() == reflect.Interface {
		return false, nil
	}
	if typ == rawMessageType {
		end := skip(d.b, d.i)
		v.SetBytes(append([]byte(nil), d.b[d.i:end]...))
		d.i = end
		return true, nil
	}
	if !v.CanAddr() || !reflect.PointerTo(typ).Implements(unmarshalerType) {
		return false, nil
	}
	end := skip(d.b, d.i)
	err := v.Addr().Interface().(msgpack.Unmarshaler).UnmarshalMsgpack(d.b[d.i:end])
	d.i = end
	if err != nil {
		return true, &decodeError{msg: err.Error()}
	}
	return true, nil
}

// scalar sets v from the bool, number, str or bin in raw (payload is the
// bytes of a str or bin).
func (d *valueDecoder) scalar(v reflect.Value, t byte, raw, payload []byte) error {
	switch k := v.Kind(); {
	case k == reflect.Bool && t == tBool:
		v.SetBool(raw[0] == 0xc3)
	case k >= reflect.Int && k <= reflect.Int64 && t == tInt:
		u, neg := integer(raw)
		if (!neg && u > math.MaxInt64) || v.OverflowInt(int64(u)) {
			return &decodeError{msg: "integer out of range"}
		}
		v.SetInt(int64(u))
	case k >= reflect.Uint && k <= reflect.Uintptr && t == tInt:
		u, neg := integer(raw)
		if neg || v.OverflowUint(u) {
			return &decodeError{msg: "integer out of range: want " + codec.WireType(v.Type())}
		}
		v.SetUint(u)
	case (k == reflect.Float32 || k == reflect.Float64) && (t == tFloat || t == tInt):
		f := number(t, raw)
		if v.OverflowFloat(f) {
			return &decodeError{msg: "number out of range"}
		}
		v.SetFloat(f)
	case k == reflect.String && (t == tStr || t == tBin):
		v.SetString(string(payload))
	case k == reflect.Slice && v.Type().Elem().Kind() == reflect.Uint8 && (t == tStr || t == tBin):
		v.SetBytes(append([]byte{}, payload...))
	default:
		return mismatch(t, v)
	}
	return nil
}

// container decodes arrays and maps, and values behind pointers and
// interfaces.
func (d *valueDecoder) container(v reflect.Value, t byte, n uint64, next int) error {
	switch k := v.Kind(); {
	case k == reflect.Pointer:
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
		}
		return d.value(v.Elem())
	case k == reflect.Interface && v.NumMethod() == 0:
		x, err := d.any()
		if err == nil {
			v.Set(reflect.ValueOf(&x).Elem())
		}
		return err
	case k == reflect.Struct && t == tMap:
		d.i = next
		return d.structFromMap(v, n)
	case k == reflect.Struct && t == tArray:
		d.i = next
		return d.structFromArray(v, n)
	case k == reflect.Slice && t == tArray:
		d.i = next
		s := reflect.MakeSlice(v.Type(), int(n), int(n))
		for j := range int(n) {
			if err := d.value(s.Index(j)); err != nil {
				return within(err, "["+strconv.Itoa(j)+"]")
			}
		}
		v.Set(s)
		return nil
	case k == reflect.Array && t == tArray && n <= uint64(v.Len()):
		d.i = next
		for j := range v.Len() {
			if uint64(j) >= n {
				v.Index(j).SetZero()
			} else if err := d.value(v.Index(j)); err != nil {
				return within(err, "["+strconv.Itoa(j)+"]")
			}
		}
		return nil
	case k == reflect.Map && t == tMap && v.Type().Key().Kind() == reflect.String:
		d.i = next
		return d.mapFromMap(v, n)
	}
	return mismatch(t, v)
}

func (d *valueDecoder) key() ([]byte, bool) {
	t, n, next, _ := head(d.b, d.i)
	if t != tStr {
		return nil, false
	}
	d.i = next + int(n)
	return d.b[next:d.i], true
}

func errKey() error { return &decodeError{msg: "map key is not a string"} }

// number converts the int or float in raw to a float64.
func number(t byte, raw []byte) float64 {
	if t == tFloat {
		return floatValue(raw)
	}
	u, neg := integer(raw)
	if neg {
		return float64(int64(u))
	}
	return float64(u)
}

func (d *valueDecoder) mapFromMap(v reflect.Value, n uint64) error {
	if v.IsNil() {
		v.Set(reflect.MakeMapWithSize(v.Type(), int(n)))
	}
	kt, et := v.Type().Key(), v.Type().Elem()
	for ; n > 0; n-- {
		key, ok := d.key()
		if !ok {
			return errKey()
		}
		kv := reflect.New(kt).Elem()
		kv.SetString(string(key))
		ev := reflect.New(et).Elem()
		if err := d.value(ev); err != nil {
			return within(err, strconv.Quote(string(key)))
		}
		v.SetMapIndex(kv, ev)
	}
	return nil
}

func (d *valueDecoder) structFromMap(v reflect.Value, n uint64) error {
	fl := fieldsOf(v.Type())
	for ; n > 0; n-- {
		key, ok := d.key()
		if !ok && d.strict {
			return errKey()
		}
		f := -1
		if ok {
			f = fl.lookup(key)
		} else {
			d.i = skip(d.b, d.i)
		}
		if f < 0 {
			if d.strict {
				return &decodeError{msg: "unknown field " + strconv.Quote(string(key))}
			}
			d.i = skip(d.b, d.i)
			continue
		}
		if err := d.value(v.Field(fl.index[f])); err != nil {
			return within(err, fl.names[f])
		}
	}
	return nil
}

func (d *valueDecoder) structFromArray(v reflect.Value, n uint64) error {
	fl := fieldsOf(v.Type())
	if n > uint64(len(fl.index)) {
		return &decodeError{msg: fmt.Sprintf("%d positional values for %d fields (%s)",
			n, len(fl.index), strings.Join(fl.names, ", "))}
	}
	for f := range int(n) {
		if err := d.value(v.Field(fl.index[f])); err != nil {
			return within(err, fl.names[f])
		}
	}
	return nil
}

// any decodes the value at d.i as nil, bool, int64 (uint64 above
// math.MaxInt64), float64, string, []byte, []any or map[string]any.
func (d *valueDecoder) any() (any, error) {
	t, n, next, _ := head(d.b, d.i)
	raw := d.b[d.i:next]
	d.i = next
	switch t {
	case tBool:
		return raw[0] == 0xc3, nil
	case tInt:
		u, neg := integer(raw)
		if !neg && u > math.MaxInt64 {
			return u, nil
		}
		return int64(u), nil
	case tFloat:
		return floatValue(raw), nil
	case tStr:
		d.i += int(n)
		return string(d.b[next:d.i]), nil
	case tBin:
		d.i += int(n)
		return append([]byte{}, d.b[next:d.i]...), nil
	case tArray:
		s := make([]any, n)
		for j := range s {
			var err error
			if s[j], err = d.any(); err != nil {
				return nil, within(err, "["+strconv.Itoa(j)+"]")
			}
		}
		return s, nil
	case tMap:
		m := make(map[string]any, n)
		for ; n > 0; n-- {
			key, ok := d.key()
			if !ok {
				return nil, errKey()
			}
			x, err := d.any()
			if err != nil {
				return nil, within(err, strconv.Quote(string(key)))
			}
			m[string(key)] = x
		}
		return m, nil
	}
	return nil, nil // tNil
}

// fieldList is the names and indexes of a struct's exported fields in
// declaration order, named as the library's encoder names them: msgpack
// tag, else json tag, else the Go name. (Embedded structs are not inlined;
// no wire type has one.)
type fieldList struct {
	names []string
	index []int
}

var fieldCache sync.Map // reflect.Type -> *fieldList

func fieldsOf(t reflect.Type) *fieldList {
	if f, ok := fieldCache.Load(t); ok {
		return f.(*fieldList)
	}
	fl := new(fieldList)
	for i := range t.NumField() {
		sf := t.Field(i)
		tag, ok := sf.Tag.Lookup("msgpack")
		if !ok {
			tag = sf.Tag.Get("json")
		}
		name, _, _ := strings.Cut(tag, ",")
		if !sf.IsExported() || name == "-" {
			continue
		}
		if name == "" {
			name = sf.Name
		}
		fl.names = append(fl.names, name)
		fl.index = append(fl.index, i)
	}
	f, _ := fieldCache.LoadOrStore(t, fl)
	return f.(*fieldList)
}

// lookup returns the position in fl of the field named key, or -1.
func (fl *fieldList) lookup(key []byte) int {
	for i, name := range fl.names {
		if name == string(key) {
			return i
		}
	}
	return -1
}
