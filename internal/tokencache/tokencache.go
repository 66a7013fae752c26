// Package tokencache is the bounded map of verified access tokens that
// keeps a signature check off the path of every request after a token's
// first (the default Provider's own tokens, and package extauth's external
// ones). It is keyed by the SHA-256 of the token, never the token itself,
// and an entry is never returned at or after its deadline, which the
// caller sets no later than the token's exp.
package tokencache

import (
	"crypto/sha256"
	"sync"
	"unsafe"
)

// Key is the SHA-256 of a token.
type Key [sha256.Size]byte

// KeyOf returns the Key of token, without copying it (Sum256 only reads
// its argument).
func KeyOf(token string) Key {
	return sha256.Sum256(unsafe.Slice(unsafe.StringData(token), len(token)))
}

type entry[V any] struct {
	v     V
	until int64 // UnixNano
}

// Cache maps Keys to values until their deadlines; it is safe for
// concurrent use.
type Cache[V any] struct {
	mu      sync.RWMutex
	entries map[Key]entry[V]
	max     int
}

// New returns a Cache of at most max entries.
func New[V any](max int) *Cache[V] {
	return &Cache[V]{entries: make(map[Key]entry[V]), max: max}
}

// Get returns the value of k if its deadline is after now (UnixNano).
func (c *Cache[V]) Get(k Key, now int64) (V, bool) {
	c.mu.RLock()
	e, ok := c.entries[k]
	c.mu.RUnlock()
	if !ok || now >= e.until {
		var zero V
		return zero, false
	}
	return e.v, true
}

// Put keeps v for k until until (UnixNano); a deadline at or before now
// keeps nothing. When the map is full it first drops the entries expired
// at now, then, if that freed less than a quarter, arbitrary entries down
// to three quarters of the bound (each costs one more check if its token
// comes back).
func (c *Cache[V]) Put(k Key, v V, until, now int64) {
	if now >= until {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.entries) >= c.max {
		for k, old := range c.entries {
			if now >= old.until {
				delete(c.entries, k)
			}
		}
		for k := range c.entries {
			if len(c.entries) < c.max*3/4 {
				break
			}
			delete(c.entries, k)
		}
	}
	c.entries[k] = entry[V]{v, until}
}

// Clear empties the cache.
func (c *Cache[V]) Clear() {
	c.mu.Lock()
	clear(c.entries)
	c.mu.Unlock()
}

// Len returns the number of entries, expired ones included.
func (c *Cache[V]) Len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return len(c.entries)
}
