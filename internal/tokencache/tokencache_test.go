package tokencache

import (
	"fmt"
	"testing"
)

// TestCache: entries live until their deadline, never past it; a full
// cache makes room by dropping expired entries, then others, keeping it
// within its bound.
func TestCache(t *testing.T) {
	c := New[string](8)
	k := KeyOf("token")
	c.Put(k, "v", 100, 10)
	if v, ok := c.Get(k, 99); !ok || v != "v" {
		t.Fatalf("Get before the deadline = %q, %v", v, ok)
	}
	if _, ok := c.Get(k, 100); ok {
		t.Fatal("Get at the deadline found the entry")
	}
	c.Put(KeyOf("late"), "x", 10, 10)
	if c.Len() != 1 {
		t.Fatalf("an entry expired on arrival was kept: %d entries", c.Len())
	}
	for i := range 20 {
		c.Put(KeyOf(fmt.Sprint(i)), "v", 1000, 10)
		if c.Len() > 8 {
			t.Fatalf("%d entries, over the bound of 8", c.Len())
		}
	}
	c.Clear()
	if c.Len() != 0 {
		t.Fatal("Clear left entries")
	}
	if KeyOf("a") == KeyOf("b") || KeyOf("a") != KeyOf("a") {
		t.Fatal("KeyOf is not a hash of the token")
	}
}
