// Package ratelimit counts events per key over a sliding window of time,
// for the limits that keep guessing and flooding in check: sign-in attempts
// and wrong user codes in the console, registrations and authorization
// requests per client network.
package ratelimit

import (
	"net"
	"net/http"
	"net/netip"
	"sync"
	"time"
)

// Window counts events per key over a sliding span of time, for limits
// of so many events per span (sign-in attempts per IP, wrong codes per
// session, IP and overall). It tracks at most MaxTracked keys: when full it
// first drops keys whose events have all aged out, and if that is not
// enough it forgets every key but keep (the overall count), which can only
// grant the forgotten keys a few extra attempts while the overall limit
// still holds.
type Window struct {
	mu     sync.Mutex
	span   time.Duration
	keep   string
	events map[string][]time.Time
}

// New returns a Window over span whose key keep ("" for none) is
// never forgotten.
func New(span time.Duration, keep string) *Window {
	return &Window{span: span, keep: keep, events: map[string][]time.Time{}}
}

// recentLocked drops key's events older than span at now and returns how
// many remain.
func (w *Window) recentLocked(key string, now time.Time) int {
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

// Under reports whether every key has fewer recent events than its limit.
func (w *Window) Under(now time.Time, limits map[string]int) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	for key, limit := range limits {
		if w.recentLocked(key, now) >= limit {
			return false
		}
	}
	return true
}

// Add records an event at now for each key.
func (w *Window) Add(now time.Time, keys ...string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.addLocked(now, keys...)
}

func (w *Window) addLocked(now time.Time, keys ...string) {
	if len(w.events) >= MaxTracked {
		for key := range w.events {
			w.recentLocked(key, now)
		}
		if len(w.events) >= MaxTracked {
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

// Take records an event for key at now if key has fewer recent events
// than limit, and reports whether it did.
func (w *Window) Take(key string, now time.Time, limit int) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.recentLocked(key, now) >= limit {
		return false
	}
	w.addLocked(now, key)
	return true
}

// Reserve records an event for every key of limits if each has fewer
// recent events than its limit, all under one lock (so concurrent callers
// cannot all pass the check before any is counted), and reports whether it
// did. Refund takes a reserved event back.
func (w *Window) Reserve(now time.Time, limits map[string]int) bool {
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

// Refund removes the latest event of each key.
func (w *Window) Refund(keys ...string) {
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

// MaxTracked is how many keys a Window tracks at most (see Window).
const MaxTracked = 10000

// Network is the unit of a per-address limit: an IPv4 address, or the /64
// an IPv6 address is in (one host usually has a whole /64). Anything else
// is returned as it is.
func Network(ip string) string {
	addr, err := netip.ParseAddr(ip)
	if err != nil || addr.Is4() || addr.Is4In6() {
		return ip
	}
	p, err := addr.Prefix(64)
	if err != nil {
		return ip
	}
	return p.String()
}

// ClientIP is the client's address of r: what fromProxy says (a trusted
// proxy's header), or when it is nil or says "", the connection's peer.
func ClientIP(r *http.Request, fromProxy func(*http.Request) string) string {
	if fromProxy != nil {
		if ip := fromProxy(r); ip != "" {
			return ip
		}
	}
	return remoteIP(r)
}

// remoteIP is the address of the connection's peer (r.RemoteAddr without
// its port).
func remoteIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}
