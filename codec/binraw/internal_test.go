package binraw

import (
	"testing"

	"github.com/subgate/subgate/protocols/chat"
)

// The chat table's names all fit the direct-mapped cache, so encoding a
// push or request never falls back to the map. If a new method collides,
// change nameSlot's arithmetic.
func TestNameCacheHoldsChatTable(t *testing.T) {
	c := New(chat.Table).(*binrawCodec)
	for _, m := range chat.Table.Methods() {
		if got := c.byName[nameSlot(m.Name)]; got != m {
			t.Errorf("%s: slot %d holds %+v", m.Name, nameSlot(m.Name), got)
		}
		if got, ok := c.method(m.Name); !ok || got != m {
			t.Errorf("method(%q) = %+v, %v", m.Name, got, ok)
		}
	}
	for _, name := range []string{"", "chat.nope", "chat.pinG"} {
		if m, ok := c.method(name); ok {
			t.Errorf("method(%q) = %+v", name, m)
		}
	}
}
