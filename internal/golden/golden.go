// Package golden reads and writes the wire vectors under testdata/golden.
//
// Each vector is one file, <name>.golden, holding the same logical message
// in every encoding, one line per encoding:
//
//	# chat.ping request with id 1
//	json-rpc {"jsonrpc":"2.0","method":"chat.ping","id":1}
//	msgpack 94 00 01 a9 63 68 61 74 2e 70 69 6e 67 90
//	binary-raw 00 01 10
//
// Text encodings (json-rpc) are written as they are; binary ones as hex
// bytes separated by spaces. Lines starting with # are comments.
package golden

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// Encodings lists the subprotocols in the order lines are written.
var Encodings = []string{"json-rpc", "msgpack", "binary-raw"}

// textual reports whether an encoding is stored as text rather than hex.
func textual(enc string) bool { return enc == "json-rpc" }

// Vector is one golden file.
type Vector struct {
	Name    string
	Comment string
	Wire    map[string][]byte // encoding name -> wire bytes
}

// Dir returns the path of testdata/golden from a package directory nested
// depth levels below the module root.
func Dir(depth int) string {
	return filepath.Join(strings.Repeat("../", depth)+"testdata", "golden")
}

// Load reads every vector in dir, sorted by name.
func Load(dir string) ([]Vector, error) {
	paths, err := filepath.Glob(filepath.Join(dir, "*.golden"))
	if err != nil {
		return nil, err
	}
	sort.Strings(paths)
	vs := make([]Vector, 0, len(paths))
	for _, p := range paths {
		v, err := readFile(p)
		if err != nil {
			return nil, err
		}
		vs = append(vs, v)
	}
	return vs, nil
}

func readFile(path string) (Vector, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Vector{}, err
	}
	v := Vector{Name: strings.TrimSuffix(filepath.Base(path), ".golden"), Wire: map[string][]byte{}}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			v.Comment = strings.TrimSpace(strings.TrimPrefix(line, "#"))
			continue
		}
		if line == "" {
			continue
		}
		enc, text, _ := strings.Cut(line, " ")
		if textual(enc) {
			v.Wire[enc] = []byte(text)
			continue
		}
		b, err := ParseHex(text)
		if err != nil {
			return Vector{}, fmt.Errorf("golden: %s: %s: %w", path, enc, err)
		}
		v.Wire[enc] = b
	}
	return v, sc.Err()
}

// Write stores v as dir/<name>.golden.
func Write(dir string, v Vector) error {
	var b strings.Builder
	fmt.Fprintf(&b, "# %s\n", v.Comment)
	for _, enc := range Encodings {
		w, ok := v.Wire[enc]
		if !ok {
			continue
		}
		if textual(enc) {
			fmt.Fprintf(&b, "%s %s\n", enc, w)
		} else {
			fmt.Fprintf(&b, "%s %s\n", enc, Hex(w))
		}
	}
	return os.WriteFile(filepath.Join(dir, v.Name+".golden"), []byte(b.String()), 0o644)
}

// ParseHex reads bytes written as hex pairs, with any white space between
// them: the form Hex writes and the specs' examples use.
func ParseHex(s string) ([]byte, error) {
	return hex.DecodeString(strings.Join(strings.Fields(s), ""))
}

// MustHex is ParseHex for tests: bad hex fails tb.
func MustHex(tb testing.TB, s string) []byte {
	tb.Helper()
	b, err := ParseHex(s)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

// Hex formats bytes as space-separated lower-case hex pairs.
func Hex(b []byte) string {
	var s strings.Builder
	for i, c := range b {
		if i > 0 {
			s.WriteByte(' ')
		}
		fmt.Fprintf(&s, "%02x", c)
	}
	return s.String()
}

// Seeds returns the wire bytes of one encoding from every golden vector plus
// every file under testdata/hostile/<enc> (hex, or raw for textual ones), for
// fuzz seed corpora. depth is as for Dir.
func Seeds(depth int, enc string) ([][]byte, error) {
	vs, err := Load(Dir(depth))
	if err != nil {
		return nil, err
	}
	var out [][]byte
	for _, v := range vs {
		if w, ok := v.Wire[enc]; ok {
			out = append(out, w)
		}
	}
	hostile := filepath.Join(strings.Repeat("../", depth)+"testdata", "hostile", enc)
	paths, _ := filepath.Glob(filepath.Join(hostile, "*"))
	sort.Strings(paths)
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			return nil, err
		}
		if !textual(enc) {
			data, err = ParseHex(stripComments(string(data)))
			if err != nil {
				return nil, fmt.Errorf("golden: %s: %w", p, err)
			}
		}
		out = append(out, data)
	}
	return out, nil
}

func stripComments(s string) string {
	var b strings.Builder
	for _, line := range strings.Split(s, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(line), "#") {
			b.WriteString(line)
			b.WriteByte('\n')
		}
	}
	return b.String()
}
