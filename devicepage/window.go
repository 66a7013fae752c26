package devicepage

import (
	"sync"
	"time"
)

// window counts events per key over a sliding span of time, for limits
// of so many events per span (sign-in attempts per IP, wrong codes per
// session, IP and overall). It tracks at most maxTracked keys: when full it
// first drops keys whose events have all aged out, and if that is not
// enough it forgets every key but keep (the overall count), which can only
// grant the forgotten keys a few extra attempts while the overall limit
// still holds.
type window struct {
	mu     sync.Mutex
	span   time.Duration
	keep   string
	events map[string][]time.Time
}

// newWindow returns a window over span whose key keep ("" for none) is
// never forgotten.
func newWindow(span time.Duration, keep string) *window {
	return &window{span: span, keep: keep, events: map[string][]time.Time{}}
}

// recentLocked drops key's events older than span at now and returns how
// many remain.
func (w *window) recentLocked(key string, now time.Time) int {
	recent := w.events[key][:0:0]
	for _, t := range w.events[key] {
		if now.Sub(t) < w.span {
			recent = append(recent, t)
		}
	}
	if len(recent) == 0 {
		delete(w.events, key)
	} else {
		w.events[key] = recent
	}
	return len(recent)
}

// under reports whether every key has fewer recent events than its limit.
func (w *window) under(now time.Time, limits map[string]int) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	for key, limit := range limits {
		if w.recentLocked(key, now) >= limit {
			return false
		}
	}
	return true
}

// add records an event at now for each key.
func (w *window) add(now time.Time, keys ...string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.addLocked(now, keys...)
}

func (w *window) addLocked(now time.Time, keys ...string) {
	if len(w.events) >= maxTracked {
		for key := range w.events {
			w.recentLocked(key, now)
		}
		if len(w.events) >= maxTracked {
			kept, ok := w.events[w.keep]
			clear(w.events)
			if ok {
				w.events[w.keep] = kept
			}
		}
	}
	for _, key := range keys {
		w.events[key] = append(w.events[key], now)
	}
}

// take records an event for key at now if key has fewer recent events
// than limit, and reports whether it did.
func (w *window) take(key string, now time.Time, limit int) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.recentLocked(key, now) >= limit {
		return false
	}
	w.addLocked(now, key)
	return true
}

// reserve records an event for every key of limits if each has fewer
// recent events than its limit, all under one lock (so concurrent callers
// cannot all pass the check before any is counted), and reports whether it
// did. refund takes a reserved event back.
func (w *window) reserve(now time.Time, limits map[string]int) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	for key, limit := range limits {
		if w.recentLocked(key, now) >= limit {
			return false
		}
	}
	for key := range limits {
		w.addLocked(now, key)
	}
	return true
}

// refund removes the latest event of each key.
func (w *window) refund(keys ...string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, key := range keys {
		if ev := w.events[key]; len(ev) > 0 {
			if len(ev) == 1 {
				delete(w.events, key)
			} else {
				w.events[key] = ev[:len(ev)-1]
			}
		}
	}
}
