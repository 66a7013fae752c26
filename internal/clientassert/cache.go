package clientassert

import (
	"context"
	"crypto/sha256"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// remoteKeys caches the parsed JWK Sets of jwks_uri documents, one entry
// per URL, with at most one fetch of a URL in flight (single flight) and
// at most one fetch attempt of a URL per refetch interval, whatever
// prompts it: expiry, an unknown kid, or a failed previous attempt.
type remoteKeys struct {
	v *Verifier

	mu       sync.Mutex
	entries  map[string]*keyEntry
	inflight map[string]*fetchCall
}

// keyEntry is what is known of one jwks_uri.
type keyEntry struct {
	set   *keySet   // the last set fetched and parsed, nil if none yet
	good  time.Time // when set was fetched
	tried time.Time // when a fetch was last attempted
	err   error     // why the last attempt failed; nil if it succeeded
}

// fetchCall is a fetch in flight that other verifications wait for.
type fetchCall struct {
	done chan struct{}
	set  *keySet
	err  error
}

func newRemoteKeys(v *Verifier) *remoteKeys {
	return &remoteKeys{v: v, entries: map[string]*keyEntry{}, inflight: map[string]*fetchCall{}}
}

// get returns the key set of uri: from the cache while younger than
// KeySetMaxAge, unless refresh asks for a newer one (because no key
// matched); otherwise it fetches, at most once per KeySetRefetchInterval.
// When a fetch fails, or the interval forbids one, the cached set is
// used while younger than KeySetMaxStale; beyond that, or with nothing
// cached, the error wraps ErrKeysUnavailable.
func (r *remoteKeys) get(ctx context.Context, uri string, refresh bool) (*keySet, error) {
	o := &r.v.opts
	now := o.Now()
	r.mu.Lock()
	e := r.entries[uri]
	if e != nil && e.set != nil && !refresh && now.Sub(e.good) < o.KeySetMaxAge {
		r.mu.Unlock()
		return e.set, nil
	}
	// Join a fetch in flight before applying the rate limit: the fetch
	// that set e.tried a moment ago is the one to wait for.
	if c, ok := r.inflight[uri]; ok {
		r.mu.Unlock()
		select {
		case <-c.done:
			return c.set, c.err
		case <-ctx.Done():
			return nil, refuseWith(ErrKeysUnavailable, "gave up waiting for the client's jwks_uri", ctx.Err())
		}
	}
	if e != nil && now.Sub(e.tried) < o.KeySetRefetchInterval {
		r.mu.Unlock()
		return e.usable(now, o.KeySetMaxStale)
	}
	if e == nil {
		if len(r.entries) >= o.KeySetCacheSize {
			r.evictLocked()
		}
		e = &keyEntry{}
		r.entries[uri] = e
	}
	e.tried = now
	c := &fetchCall{done: make(chan struct{})}
	r.inflight[uri] = c
	r.mu.Unlock()

	// The fetch serves every waiter, so it must not end with the
	// context of the request that happened to start it.
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), o.FetchTimeout)
	set, err := r.fetch(fctx, uri)
	cancel()

	r.mu.Lock()
	delete(r.inflight, uri)
	if err == nil {
		e.set, e.good, e.err = set, now, nil
	} else {
		e.err = err
	}
	c.set, c.err = e.usable(now, o.KeySetMaxStale)
	r.mu.Unlock()
	close(c.done)
	return c.set, c.err
}

// usable returns the entry's set if it is younger than maxStale, else
// the reason there is none. Called with the lock held.
func (e *keyEntry) usable(now time.Time, maxStale time.Duration) (*keySet, error) {
	if e.set != nil && now.Sub(e.good) < maxStale {
		return e.set, nil
	}
	if e.err != nil {
		return nil, e.err
	}
	return nil, refuse(ErrKeysUnavailable, "the client's jwks_uri keys are out of date and cannot be refreshed yet")
}

// fetch retrieves and parses one jwks_uri document.
func (r *remoteKeys) fetch(ctx context.Context, uri string) (*keySet, error) {
	body, err := r.v.opts.Fetch(ctx, uri, MaxJWKSBytes)
	if err != nil {
		return nil, refuseWith(ErrKeysUnavailable, "the client's jwks_uri could not be fetched", err)
	}
	set, err := parseKeySet(body, r.v.algs)
	if err != nil {
		return nil, refuseWith(ErrKeysUnavailable, "the client's jwks_uri document is not acceptable", err)
	}
	return set, nil
}

// evictLocked makes room for one entry: it drops the entry attempted
// longest ago that no fetch is in flight for. Called with the lock held;
// O(n), and n is at most KeySetCacheSize.
func (r *remoteKeys) evictLocked() {
	var oldest string
	var at time.Time
	for u, e := range r.entries {
		if _, busy := r.inflight[u]; busy {
			continue
		}
		if oldest == "" || e.tried.Before(at) {
			oldest, at = u, e.tried
		}
	}
	if oldest != "" {
		delete(r.entries, oldest)
	}
}

// cachedKeySets reports how many jwks_uri entries are cached (tests).
func (r *remoteKeys) cachedKeySets() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.entries)
}

// inlineKeys caches parsed inline jwks documents by their SHA-256, since
// parsing a JWK Set costs about as much as verifying an RS256 signature.
// Parsed sets are immutable, so they are shared. Refused documents are
// not cached: they are registered, not chosen per request.
type inlineKeys struct {
	max  int
	mu   sync.Mutex
	sets map[[sha256.Size]byte]*keySet
}

// get returns the parsed set of doc.
func (c *inlineKeys) get(doc []byte, algs []jose.SignatureAlgorithm) (*keySet, error) {
	h := sha256.Sum256(doc)
	c.mu.Lock()
	set, ok := c.sets[h]
	c.mu.Unlock()
	if ok {
		return set, nil
	}
	set, err := parseKeySet(doc, algs)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	if len(c.sets) >= c.max {
		for k := range c.sets { // evict an arbitrary entry
			delete(c.sets, k)
			break
		}
	}
	c.sets[h] = set
	c.mu.Unlock()
	return set, nil
}
