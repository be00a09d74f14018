package codec

import "fmt"

// MethodTable maps method names to their binary-raw method ids. Codecs use
// it to intern known names (no allocation when decoding them) and binary-raw
// uses it to put numbers on the wire.
type MethodTable struct {
	byName map[string]Method
	byID   map[uint64]Method
	list   []Method
}

// Method is one entry of a MethodTable.
type Method struct {
	Name string
	ID   uint64
}

// NewMethodTable builds a table. It panics on a duplicate name or id, or on
// id 0, which binary-raw reserves: tables are static program data.
func NewMethodTable(methods ...Method) *MethodTable {
	t := &MethodTable{byName: map[string]Method{}, byID: map[uint64]Method{}}
	for _, m := range methods {
		if _, dup := t.byName[m.Name]; dup || m.ID == 0 {
			panic(fmt.Sprintf("codec: bad method table entry %q", m.Name))
		}
		if _, dup := t.byID[m.ID]; dup {
			panic(fmt.Sprintf("codec: duplicate method id %d", m.ID))
		}
		t.byName[m.Name] = m
		t.byID[m.ID] = m
		t.list = append(t.list, m)
	}
	return t
}

// Lookup finds a method by its name's bytes without allocating.
func (t *MethodTable) Lookup(name []byte) (Method, bool) {
	if t == nil {
		return Method{}, false
	}
	m, ok := t.byName[string(name)]
	return m, ok
}

// ByName finds a method by name.
func (t *MethodTable) ByName(name string) (Method, bool) {
	if t == nil {
		return Method{}, false
	}
	m, ok := t.byName[name]
	return m, ok
}

// ByID finds a method by its binary-raw id.
func (t *MethodTable) ByID(id uint64) (Method, bool) {
	if t == nil {
		return Method{}, false
	}
	m, ok := t.byID[id]
	return m, ok
}

// Methods lists the table in declaration order.
func (t *MethodTable) Methods() []Method { return append([]Method(nil), t.list...) }

// Intern returns name as a string, without allocating when it is in t.
func (t *MethodTable) Intern(name []byte) string {
	if m, ok := t.Lookup(name); ok {
		return m.Name
	}
	return string(name)
}
