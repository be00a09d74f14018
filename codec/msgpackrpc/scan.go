package msgpackrpc

import (
	"encoding/binary"
	"math"
	"strconv"
)

// MaxDepth is how deeply arrays and maps may nest in a frame (and in a body
// given to Unmarshal). The envelope takes one level and the params array a
// second, so typed params keep 30 levels, far more than any chat type needs.
// The bound exists because the msgpack library decodes nested values
// recursively: a few megabytes of 0x91 would overflow the goroutine stack.
const MaxDepth = 32

// Value types as head reports them.
const (
	tNil byte = iota + 1
	tBool
	tInt
	tFloat
	tStr
	tBin
	tArray
	tMap
)

// scanError says why bytes are not one well-formed, bounded MessagePack
// value.
type scanError struct {
	off int
	msg string
}

func (e *scanError) Error() string {
	return e.msg + " at offset " + strconv.Itoa(e.off)
}

// Reasons head and scan give.
const (
	errTruncated = "unexpected end of data"
	errNeverUsed = "byte 0xc1 is never used"
	errExt       = "extension types are not accepted"
	errTooLong   = "declared length exceeds the bytes left"
	errTooDeep   = "arrays and maps nested deeper than MaxDepth (32)"
	errTrailing  = "trailing bytes after the value"
	errEmpty     = "empty input"
)

// head decodes the header of the value that starts at b[i]. For nil, bool,
// int and float values next is the offset after the whole value; for str
// and bin it is the offset of the payload and n its length; for arrays and
// maps it is the offset of the first item and n the item (or pair) count.
// A non-empty msg means the header is malformed or refused; head never
// reads past len(b), but it does not check that payloads or items fit.
func head(b []byte, i int) (t byte, n uint64, next int, msg string) {
	if i >= len(b) {
		return 0, 0, i, errTruncated
	}
	c := b[i]
	switch {
	case c <= 0x7f || c >= 0xe0:
		return tInt, 0, i + 1, ""
	case c <= 0x8f:
		return tMap, uint64(c & 0x0f), i + 1, ""
	case c <= 0x9f:
		return tArray, uint64(c & 0x0f), i + 1, ""
	case c <= 0xbf:
		return tStr, uint64(c & 0x1f), i + 1, ""
	}
	switch c {
	case 0xc0:
		return tNil, 0, i + 1, ""
	case 0xc2, 0xc3:
		return tBool, 0, i + 1, ""
	case 0xc4, 0xc5, 0xc6:
		return sized(b, i, tBin, 1<<(c-0xc4))
	case 0xca:
		return fixed(b, i, tFloat, 4)
	case 0xcb:
		return fixed(b, i, tFloat, 8)
	case 0xcc, 0xcd, 0xce, 0xcf:
		return fixed(b, i, tInt, 1<<(c-0xcc))
	case 0xd0, 0xd1, 0xd2, 0xd3:
		return fixed(b, i, tInt, 1<<(c-0xd0))
	case 0xd9, 0xda, 0xdb:
		return sized(b, i, tStr, 1<<(c-0xd9))
	case 0xdc, 0xdd:
		return sized(b, i, tArray, 2<<(c-0xdc))
	case 0xde, 0xdf:
		return sized(b, i, tMap, 2<<(c-0xde))
	case 0xc1:
		return 0, 0, i, errNeverUsed
	}
	return 0, 0, i, errExt // 0xc7-0xc9, 0xd4-0xd8
}

// fixed is head for a value of w bytes after its type byte.
func fixed(b []byte, i int, t byte, w int) (byte, uint64, int, string) {
	if len(b)-i-1 < w {
		return 0, 0, i, errTruncated
	}
	return t, 0, i + 1 + w, ""
}

// sized is head for a value whose length or count takes w bytes.
func sized(b []byte, i int, t byte, w int) (byte, uint64, int, string) {
	if len(b)-i-1 < w {
		return 0, 0, i, errTruncated
	}
	p := b[i+1 : i+1+w]
	var n uint64
	switch w {
	case 1:
		n = uint64(p[0])
	case 2:
		n = uint64(binary.BigEndian.Uint16(p))
	default:
		n = uint64(binary.BigEndian.Uint32(p))
	}
	return t, n, i + 1 + w, ""
}

// scan checks that b is exactly one MessagePack value that is safe to give
// to the msgpack library: every str and bin payload fits in b, every array
// declares at most as many items as bytes are left and every map at most
// half as many pairs (an item takes at least one byte), arrays and maps nest
// at most MaxDepth deep, no extension type or 0xc1 appears, and nothing
// follows the value. It walks b once, iteratively, and does not allocate
// unless it fails.
func scan(b []byte) error {
	if len(b) == 0 {
		return &scanError{0, errEmpty}
	}
	var left [MaxDepth]uint64 // items still expected by each open container
	depth, i := 0, 0
	for {
		t, n, next, msg := head(b, i)
		if msg != "" {
			return &scanError{i, msg}
		}
		rest := uint64(len(b) - next)
		switch t {
		case tStr, tBin:
			if n > rest {
				return &scanError{i, errTooLong}
			}
			next += int(n)
		case tArray, tMap:
			if t == tMap {
				n *= 2 // at most 2*(2^32-1): no overflow
			}
			if n > rest {
				return &scanError{i, errTooLong}
			}
			if depth == MaxDepth {
				return &scanError{i, errTooDeep}
			}
			if n > 0 {
				left[depth] = n
				depth++
				i = next
				continue
			}
		}
		i = next
		// A value is complete: close every container it completes.
		for depth > 0 {
			left[depth-1]--
			if left[depth-1] > 0 {
				break
			}
			depth--
		}
		if depth == 0 {
			if i != len(b) {
				return &scanError{i, errTrailing}
			}
			return nil
		}
	}
}

// skip returns the offset after the value at b[i]. b must have passed scan.
func skip(b []byte, i int) int {
	for pending := uint64(1); pending > 0; pending-- {
		t, n, next, _ := head(b, i)
		switch t {
		case tStr, tBin:
			next += int(n)
		case tArray:
			pending += n
		case tMap:
			pending += 2 * n
		}
		i = next
	}
	return i
}

// integer decodes the integer that is exactly b (as head reported it). A
// negative value comes back as its two's complement in u with neg set.
func integer(b []byte) (u uint64, neg bool) {
	c := b[0]
	if c <= 0x7f || c >= 0xe0 {
		return uint64(int64(int8(c))), c >= 0xe0
	}
	p := b[1:]
	switch c {
	case 0xcc:
		return uint64(p[0]), false
	case 0xcd:
		return uint64(binary.BigEndian.Uint16(p)), false
	case 0xce:
		return uint64(binary.BigEndian.Uint32(p)), false
	case 0xcf:
		return binary.BigEndian.Uint64(p), false
	case 0xd0:
		v := int64(int8(p[0]))
		return uint64(v), v < 0
	case 0xd1:
		v := int64(int16(binary.BigEndian.Uint16(p)))
		return uint64(v), v < 0
	case 0xd2:
		v := int64(int32(binary.BigEndian.Uint32(p)))
		return uint64(v), v < 0
	}
	v := int64(binary.BigEndian.Uint64(p)) // 0xd3
	return uint64(v), v < 0
}

// intValue decodes the integer that is exactly b. ok is false for a value
// above math.MaxInt64.
func intValue(b []byte) (v int64, ok bool) {
	u, neg := integer(b)
	return int64(u), neg || u <= math.MaxInt64
}

// floatValue decodes the float32 or float64 that is exactly b.
func floatValue(b []byte) float64 {
	if b[0] == 0xca {
		return float64(math.Float32frombits(binary.BigEndian.Uint32(b[1:])))
	}
	return math.Float64frombits(binary.BigEndian.Uint64(b[1:]))
}

// isInt reports whether b is exactly one MessagePack integer.
func isInt(b []byte) bool {
	t, _, next, msg := head(b, 0)
	return msg == "" && t == tInt && next == len(b)
}
