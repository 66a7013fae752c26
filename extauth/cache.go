package extauth

import (
	"crypto/sha256"
	"sync"
	"unsafe"

	oauth "github.com/mcp-oauth/oauth"
)

// DefaultVerifiedTokenCacheSize is the default bound on the number of
// answers a Verifier remembers.
const DefaultVerifiedTokenCacheSize = 10000

// The verified-token cache keeps a signature check (or an introspection)
// off the path of every request after a token's first: it maps the
// SHA-256 of a token (never the token itself) to what verifying it
// answered, until a deadline that never passes the token's exp:
//
//   - a JWT that checked out: until its exp (or, with
//     Introspection.JWTs, until the introspection answer's CacheTTL);
//   - an active introspection answer: CacheTTL, at most until exp;
//   - an inactive one: InactiveTTL.
//
// Only answers of this Verifier's own checks enter; an entry is never used
// at or after its deadline; and the whole cache is emptied when a fetch of
// the JWK Set drops a key, so that tokens of a withdrawn key stop at once.

type tokenKey [sha256.Size]byte

// hashToken returns the SHA-256 of t without copying it (Sum256 only
// reads its argument).
func hashToken(t string) tokenKey {
	return sha256.Sum256(unsafe.Slice(unsafe.StringData(t), len(t)))
}

type cacheEntry struct {
	at     *oauth.AccessToken // with Token empty; nil for a refusal
	refuse *rejection
	until  int64 // UnixNano
}

type tokenCache struct {
	mu      sync.RWMutex
	entries map[tokenKey]*cacheEntry
	max     int
}

func newTokenCache(max int) *tokenCache {
	return &tokenCache{entries: make(map[tokenKey]*cacheEntry), max: max}
}

// get returns the entry of k if it is still valid at now (UnixNano).
func (c *tokenCache) get(k tokenKey, now int64) *cacheEntry {
	c.mu.RLock()
	e := c.entries[k]
	c.mu.RUnlock()
	if e == nil || now >= e.until {
		return nil
	}
	return e
}

// put adds an entry. When the map is full it first drops the entries
// expired at now, then, if that freed less than a quarter, arbitrary
// entries down to three quarters of the bound.
func (c *tokenCache) put(k tokenKey, e *cacheEntry, now int64) {
	if now >= e.until {
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
	c.entries[k] = e
}

func (c *tokenCache) clear() {
	c.mu.Lock()
	clear(c.entries)
	c.mu.Unlock()
}
