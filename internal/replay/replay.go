// Package replay remembers one-time identifiers (the jti of a JWT
// assertion, RFC 7523 §3 item 7) until they expire, so that an assertion
// presented twice is refused. It is bounded and fails closed: when full of
// live identifiers it refuses new ones rather than forget old ones.
package replay

import (
	"sync"
	"time"
)

// Cache is a bounded set of identifiers with expiry times, safe for
// concurrent use.
type Cache struct {
	mu   sync.Mutex
	max  int
	seen map[string]time.Time
}

// New returns a Cache that holds at most max live identifiers.
func New(max int) *Cache {
	return &Cache{max: max, seen: make(map[string]time.Time)}
}

// Result is what Use found.
type Result int

// The results of Use.
const (
	// Fresh: the identifier was not seen before and is now remembered.
	Fresh Result = iota
	// Replayed: the identifier was seen before and has not expired.
	Replayed
	// Full: the cache holds max live identifiers; the identifier was not
	// remembered and must be refused.
	Full
)

// Use records id as used until exp, at now, and reports whether it was
// fresh.
func (c *Cache) Use(id string, exp, now time.Time) Result {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.seen[id]; ok && now.Before(e) {
		return Replayed
	}
	if len(c.seen) >= c.max {
		for k, e := range c.seen {
			if !now.Before(e) {
				delete(c.seen, k)
			}
		}
		if len(c.seen) >= c.max {
			return Full
		}
	}
	c.seen[id] = exp
	return Fresh
}
