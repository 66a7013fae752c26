package provider

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	oauth "github.com/mcp-oauth/oauth"
)

// The fast path of LoadAccessToken. Every MCP request presents an access
// token, and verifying an ES256 signature costs far more than serving a
// small tool call, so a Provider remembers tokens it has verified and the
// state of the grants they belong to:
//
//   - tokens (internal/tokencache) maps the SHA-256 of a token whose signature, typ,
//     iss and aud checked out to the claims it carries, until the token
//     expires. Only verified tokens enter, the audience is this
//     Provider's own, and an entry is never used at or after the token's
//     exp, so the cache cannot make a forged, expired or wrong-audience
//     token pass. It is emptied when a signing key disappears from the
//     key set.
//
//   - grantStates remembers which grants were found active (and with which
//     client) and which were found revoked or absent, and the registered
//     clients read by GetClient (lookups by /token and /authorize).
//     Revocation is final and grant IDs are never reused, so "revoked"
//     needs no refreshing. "Active" does: it is trusted only while the
//     Provider has confirmed, within the last revocationMaxStale, that no
//     grant was revoked since it was read. That confirmation is one read
//     of the store's RevocationCount, made in the background at most
//     every revocationPollInterval while requests come in, and at once
//     when a store that implements storage.RevocationWatcher (PostgreSQL)
//     signals a revocation. When the count moves, every "active" entry is
//     dropped, and so is every remembered client (the count also moves
//     when a client is deleted). A client whose remembered registration
//     has lapsed is read again, since another replica may have renewed
//     it. When confirmation is overdue (the store is slow or
//     unreachable), grants are read from the store again, request by
//     request. A revocation by this Provider takes effect at once; one
//     made by another process or replica sharing the store is honoured
//     within revocationMaxStale (milliseconds when signalled).
const (
	// DefaultVerifiedTokenCacheSize is the default bound on the number of
	// verified access tokens a Provider remembers.
	DefaultVerifiedTokenCacheSize = 10000
	// grantStateCacheSize bounds each of the two maps of grantStates.
	grantStateCacheSize = 10000
	// revocationPollInterval is how often, at most, RevocationCount is
	// read while requests come in.
	revocationPollInterval = 250 * time.Millisecond
	// revocationMaxStale is how long after the start of the last
	// successful read of RevocationCount an "active" grant state is
	// trusted; it bounds how late a revocation made elsewhere is honoured.
	revocationMaxStale = 750 * time.Millisecond
	// revocationPollTimeout bounds one read of RevocationCount.
	revocationPollTimeout = 5 * time.Second
)

// grantStates remembers grant states; see the comment at the top of this
// file.
type grantStates struct {
	mu      sync.RWMutex
	active  map[string]string        // grant ID → client ID, found active
	revoked map[string]struct{}      // grant IDs found revoked or absent
	clients map[string]*oauth.Client // registered clients by ID; never modified
	// gen counts the times active was emptied because a grant may have
	// been revoked. A grant read from the store is recorded as active
	// only if gen did not change during the read, so a read that raced a
	// revocation cannot outlive the emptying that revocation causes.
	gen uint64
	// count is the last RevocationCount read; known is false until the
	// first read.
	count int64
	known bool

	// confirmedAt is the elapsed time at the start of the last successful
	// read of RevocationCount (after which active held only states read
	// since the last revocation it counted); attemptAt the start of the
	// last attempt. Both are durations since New (Provider.elapsed).
	confirmedAt atomic.Int64
	attemptAt   atomic.Int64
	// polling is set while a read runs; repoll asks it to read again,
	// because a store signalled a revocation during the read.
	polling atomic.Bool
	repoll  atomic.Bool
}

func newGrantStates() *grantStates {
	g := &grantStates{active: map[string]string{}, revoked: map[string]struct{}{}, clients: map[string]*oauth.Client{}}
	g.confirmedAt.Store(-int64(time.Hour)) // nothing confirmed yet
	// The first attempt is New's own read of the count, at elapsed 0: the
	// next one is due revocationPollInterval later, not at the first
	// request.
	g.attemptAt.Store(0)
	return g
}

// elapsed is the monotonic clock of the grant states: the time since New.
func (p *Provider) elapsed() time.Duration { return time.Since(p.start) }

// lookup reports whether grant id is known to be active for clientID
// (ok), known revoked or absent (revoked), or must be read (neither).
// "Active" is only known while the last confirmation is at most
// revocationMaxStale old at elapsed.
func (g *grantStates) lookup(id, clientID string, elapsed time.Duration) (ok, revoked bool) {
	fresh := int64(elapsed)-g.confirmedAt.Load() < int64(revocationMaxStale)
	g.mu.RLock()
	defer g.mu.RUnlock()
	if _, r := g.revoked[id]; r {
		return false, true
	}
	if fresh {
		if c, a := g.active[id]; a && c == clientID {
			return true, false
		}
	}
	return false, false
}

// generation returns gen, taken before reading a grant from the store.
func (g *grantStates) generation() uint64 {
	g.mu.RLock()
	defer g.mu.RUnlock()
	return g.gen
}

// setActive records a grant read as active, unless the states were
// emptied since gen was taken.
func (g *grantStates) setActive(id, clientID string, gen uint64) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.gen != gen {
		return
	}
	if len(g.active) >= grantStateCacheSize {
		clear(g.active) // forgetting an active state only costs a read
	}
	g.active[id] = clientID
}

// setRevoked records a grant that is revoked or absent, for good.
func (g *grantStates) setRevoked(id string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.revoked) >= grantStateCacheSize {
		clear(g.revoked)
	}
	g.revoked[id] = struct{}{}
	delete(g.active, id)
}

// forgetActive empties active and clients, because grants this Provider
// cannot name (those of a deleted client) were revoked.
func (g *grantStates) forgetActive() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.gen++
	clear(g.active)
	clear(g.clients)
}

// client returns a copy of the remembered client id, if the states are
// confirmed current at elapsed and its registration is live at now.
func (g *grantStates) client(id string, elapsed time.Duration, now time.Time) *oauth.Client {
	if int64(elapsed)-g.confirmedAt.Load() >= int64(revocationMaxStale) {
		return nil
	}
	return g.knownClient(id, now)
}

// knownClient returns a copy of the remembered client id whatever the age
// of the states, if its registration is live at now: for showing a pending
// request, where a client deleted elsewhere is forgotten at the next poll.
func (g *grantStates) knownClient(id string, now time.Time) *oauth.Client {
	g.mu.RLock()
	c := g.clients[id]
	g.mu.RUnlock()
	if c == nil || (!c.ExpiresAt.IsZero() && !c.ExpiresAt.After(now)) {
		return nil
	}
	cp := *c
	return &cp
}

// setClient remembers a client read from the store, unless the states were
// emptied since gen was taken. c must not be modified after.
func (g *grantStates) setClient(c *oauth.Client, gen uint64) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.gen != gen {
		return
	}
	if len(g.clients) >= grantStateCacheSize {
		clear(g.clients)
	}
	g.clients[c.ID] = c
}

// renewClient records that this Provider renewed client id's registration
// until exp.
func (g *grantStates) renewClient(id string, exp time.Time) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if c := g.clients[id]; c != nil {
		cp := *c
		cp.ExpiresAt = exp
		g.clients[id] = &cp
	}
}

// observe records a RevocationCount read that started at start: if the
// count moved, every active state is dropped; either way the states are
// confirmed as of start.
func (g *grantStates) observe(n int64, start time.Duration) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.known || n != g.count {
		g.gen++
		clear(g.active)
		clear(g.clients)
		g.count, g.known = n, true
	}
	if int64(start) > g.confirmedAt.Load() {
		g.confirmedAt.Store(int64(start))
	}
}

// maybePoll starts a background read of RevocationCount if none is
// running and the last attempt began at least revocationPollInterval
// before elapsed (or at once when force is set, on a store's signal).
func (p *Provider) maybePoll(elapsed time.Duration, force bool) {
	g := p.grants
	if !force && int64(elapsed)-g.attemptAt.Load() < int64(revocationPollInterval) {
		return
	}
	if !g.polling.CompareAndSwap(false, true) {
		if force {
			g.repoll.Store(true)
		}
		return
	}
	go p.poll()
}

// poll reads RevocationCount (again while a signal arrived during a read)
// and records it.
func (p *Provider) poll() {
	g := p.grants
	for {
		g.repoll.Store(false)
		start := p.elapsed()
		g.attemptAt.Store(int64(start))
		if err := p.pollOnce(start); err != nil {
			p.log.Warn("mcpauth: read revocation count; grants are read from the store until it succeeds", "err", err)
		}
		g.polling.Store(false)
		if !g.repoll.Load() || !g.polling.CompareAndSwap(false, true) {
			return
		}
	}
}

func (p *Provider) pollOnce(start time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), revocationPollTimeout)
	defer cancel()
	n, err := p.store.RevocationCount(ctx)
	if err != nil {
		return err
	}
	p.grants.observe(n, start)
	return nil
}

// maxCreatedGrants bounds the grants createdGrants remembers.
const maxCreatedGrants = 10000

// createdGrants remembers grants as they were created, for the custom
// claims of their access tokens: a grant's claims never change, so the
// token endpoint reads a grant this process made or read once, not at
// every exchange and refresh. Forgetting (when full) only costs a read.
type createdGrants struct {
	mu sync.Mutex
	m  map[string]*oauth.Grant
}

func (c *createdGrants) get(id string) *oauth.Grant {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.m[id]
}

func (c *createdGrants) put(g *oauth.Grant) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil || len(c.m) >= maxCreatedGrants {
		c.m = make(map[string]*oauth.Grant)
	}
	c.m[g.ID] = g
}
