// Package testclock is a clock that tests move by hand, for the Now
// options of the provider and the console's accounts. It is safe for
// concurrent use.
package testclock

import (
	"sync"
	"time"
)

// Clock is a time that changes only when Advance is called.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// New returns a Clock reading t.
func New(t time.Time) *Clock { return &Clock{t: t} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }
