package extauth

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults of KeySetOptions.
const (
	DefaultKeysAge         = 15 * time.Minute
	DefaultKeysMinAge      = time.Minute
	DefaultKeysMaxAge      = 24 * time.Hour
	DefaultKeysMinInterval = 10 * time.Second
	DefaultKeysMaxStale    = 24 * time.Hour
	DefaultFetchTimeout    = 10 * time.Second
)

// KeySetOptions configure how a Verifier fetches and caches the issuer's
// JWK Set (RFC 7517 §5), found at the jwks_uri of its metadata. The zero
// value gives the defaults above.
type KeySetOptions struct {
	// DefaultAge is how long a fetched JWK Set is used before it is
	// fetched again when the response has no Cache-Control max-age; zero
	// means DefaultKeysAge.
	DefaultAge time.Duration
	// MinAge and MaxAge bound the Cache-Control max-age of the response
	// (no-cache and no-store count as zero); zero means DefaultKeysMinAge
	// and DefaultKeysMaxAge.
	MinAge, MaxAge time.Duration
	// MinInterval is the least time between two fetches, whatever asks for
	// them: a token that names an unknown kid (the issuer rotated its
	// keys), or a JWK Set past its age. Tokens that name unknown keys
	// while a fetch is not allowed yet are refused with ErrUnknownKey at
	// once, so a burst of junk tokens costs the issuer at most one fetch
	// per MinInterval; concurrent requests share one fetch. Zero means
	// DefaultKeysMinInterval.
	MinInterval time.Duration
	// MaxStale is how long past its age a JWK Set stays in use while it
	// cannot be fetched again (stale-while-error): known keys keep
	// verifying, unknown ones fail closed. After that, tokens are refused
	// with ErrKeysUnavailable. Zero means DefaultKeysMaxStale.
	MaxStale time.Duration
	// FetchTimeout bounds one fetch; zero means DefaultFetchTimeout.
	FetchTimeout time.Duration
}

func (o *KeySetOptions) defaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&o.DefaultAge, DefaultKeysAge)
	def(&o.MinAge, DefaultKeysMinAge)
	def(&o.MaxAge, DefaultKeysMaxAge)
	def(&o.MinInterval, DefaultKeysMinInterval)
	def(&o.MaxStale, DefaultKeysMaxStale)
	def(&o.FetchTimeout, DefaultFetchTimeout)
	if o.MaxAge < o.MinAge {
		o.MaxAge = o.MinAge
	}
}

// getFunc fetches a URL with a bounded body.
type getFunc func(ctx context.Context, url string, max int64) ([]byte, http.Header, error)

// keySet is the cached JWK Set of the issuer. Readers load the current
// snapshot without locking; fetches are single-flight and rate-limited.
type keySet struct {
	url      string
	get      getFunc
	now      func() time.Time
	opts     KeySetOptions
	log      *slog.Logger
	stats    *counters
	onRemove func() // called when a fetch drops a key that was in use

	cur atomic.Pointer[keySnap]

	mu          sync.Mutex
	lastAttempt time.Time
	inflight    *fetchCall
}

// keySnap is one fetched JWK Set.
type keySnap struct {
	keys   []*key
	fresh  time.Time // used without fetching again until then
	usable time.Time // used at all until then (fresh + MaxStale)
}

type fetchCall struct {
	done chan struct{}
	err  error
}

var (
	errNoCandidate = errors.New("no key for the token")
	errTooSoon     = errors.New("JWK Set fetched too recently")
)

// lookup returns the key that verifies a token with header kid and alg
// (alg is one the Verifier accepts). It fetches the JWK Set again when the
// token names a key not in it, when there are no usable keys, and, in the
// background, when the keys are past their age.
func (ks *keySet) lookup(ctx context.Context, kid, alg string) (*key, error) {
	now := ks.now()
	s := ks.cur.Load()
	if s == nil || !now.Before(s.usable) {
		err := ks.fetchWait(ctx, now)
		if s = ks.cur.Load(); s == nil || !now.Before(s.usable) {
			return nil, rejectCause(ErrKeysUnavailable, "no usable JWK Set", err)
		}
	} else if !now.Before(s.fresh) {
		ks.fetchAsync(now)
	}
	k, err := s.find(kid, alg)
	if errors.Is(err, errNoCandidate) {
		// The issuer may have rotated its keys: fetch them again, once.
		if ks.fetchWait(ctx, now) == nil {
			k, err = ks.cur.Load().find(kid, alg)
		}
		if errors.Is(err, errNoCandidate) {
			return nil, reject(ErrUnknownKey, "no key of the issuer has the token's kid")
		}
	}
	return k, err
}

// find returns the key of s for kid and alg. A kid names the key: if that
// key is not one for alg, the token is refused, whatever other keys there
// are. Without a kid, the one key for alg is used; with several, the
// token is refused rather than tried against each.
func (s *keySnap) find(kid, alg string) (*key, error) {
	var match *key
	n, named := 0, false
	for _, k := range s.keys {
		if kid != "" {
			if k.kid == kid {
				named = true
				if k.fits(alg) {
					return k, nil
				}
			}
			continue
		}
		if k.fits(alg) {
			match, n = k, n+1
		}
	}
	switch {
	case named:
		return nil, reject(ErrDisallowedAlgorithm, "the key named by kid is not a key for the token's alg")
	case kid == "" && n == 1:
		return match, nil
	case kid == "" && n > 1:
		return nil, reject(ErrUnknownKey, "the token names no kid and several keys could verify it")
	}
	return nil, errNoCandidate
}

// fetchWait fetches the JWK Set, or joins the fetch under way, and waits
// for it; it fails with errTooSoon when the last fetch began less than
// MinInterval ago.
func (ks *keySet) fetchWait(ctx context.Context, now time.Time) error {
	ks.mu.Lock()
	c := ks.inflight
	if c == nil {
		if !ks.lastAttempt.IsZero() && now.Sub(ks.lastAttempt) < ks.opts.MinInterval {
			ks.mu.Unlock()
			return errTooSoon
		}
		c = ks.startLocked(now)
	}
	ks.mu.Unlock()
	select {
	case <-c.done:
		return c.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// fetchAsync starts a fetch unless one is under way or too recent.
func (ks *keySet) fetchAsync(now time.Time) {
	ks.mu.Lock()
	defer ks.mu.Unlock()
	if ks.inflight == nil && now.Sub(ks.lastAttempt) >= ks.opts.MinInterval {
		ks.startLocked(now)
	}
}

func (ks *keySet) startLocked(now time.Time) *fetchCall {
	ks.lastAttempt = now
	c := &fetchCall{done: make(chan struct{})}
	ks.inflight = c
	go ks.fetch(c)
	return c
}

// fetch runs one fetch on its own deadline, so that the request that
// started it can go away without failing the others that wait for it.
func (ks *keySet) fetch(c *fetchCall) {
	ctx, cancel := context.WithTimeout(context.Background(), ks.opts.FetchTimeout)
	defer cancel()
	ks.stats.keyFetches.Add(1)
	body, hdr, err := ks.get(ctx, ks.url, MaxJWKSBytes)
	var keys []*key
	if err == nil {
		var skipped []error
		keys, skipped, err = parseJWKS(body)
		for _, s := range skipped {
			ks.log.Warn("extauth: JWK Set: key skipped", "url", ks.url, "err", s)
		}
		if err == nil && len(keys) == 0 {
			err = errors.New("the JWK Set has no usable signature key")
		}
	}
	if err != nil {
		ks.stats.keyFetchFailures.Add(1)
		ks.log.Warn("extauth: fetch JWK Set failed; cached keys stay in use", "url", ks.url, "err", err)
	} else {
		now := ks.now()
		age := cacheAge(hdr, &ks.opts)
		old := ks.cur.Swap(&keySnap{keys: keys, fresh: now.Add(age), usable: now.Add(age + ks.opts.MaxStale)})
		if old != nil && removedAny(old.keys, keys) && ks.onRemove != nil {
			ks.onRemove()
		}
	}
	ks.mu.Lock()
	ks.inflight = nil
	ks.mu.Unlock()
	c.err = err
	close(c.done)
}

// removedAny reports whether a key of old is not in cur.
func removedAny(old, cur []*key) bool {
	for _, o := range old {
		found := false
		for _, c := range cur {
			if c.kid == o.kid && c.alg == o.alg && c.kty == o.kty {
				found = true
				break
			}
		}
		if !found {
			return true
		}
	}
	return false
}

// cacheAge is the RFC 9111 §5.2.2 freshness lifetime of a response
// (max-age; no-cache and no-store mean none), clamped to the options.
func cacheAge(h http.Header, o *KeySetOptions) time.Duration {
	age, noCache := o.DefaultAge, false
	for _, v := range h.Values("Cache-Control") {
		for d := range strings.SplitSeq(v, ",") {
			d = strings.ToLower(strings.TrimSpace(d))
			switch {
			case d == "no-cache" || d == "no-store":
				noCache = true
			case strings.HasPrefix(d, "max-age="):
				if n, err := strconv.ParseInt(strings.Trim(d[len("max-age="):], `"`), 10, 64); err == nil && n >= 0 {
					age = time.Duration(min(n, int64(o.MaxAge/time.Second)+1)) * time.Second
				}
			}
		}
	}
	if noCache {
		age = 0
	}
	return min(max(age, o.MinAge), o.MaxAge)
}
