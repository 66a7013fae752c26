package provider

import (
	"context"
	"time"
)

// Hooks for the external tests of the fast path (cache_test.go).

// SetElapsed replaces the monotonic clock of p's grant states, which
// count as confirmed and polled at f's current reading.
func SetElapsed(p *Provider, f func() time.Duration) {
	p.elapsed = f
	p.grants.confirmedAt.Store(int64(f()))
	p.grants.attemptAt.Store(int64(f()))
}

// PollNow reads the store's revocation count at once, as a poll does.
func PollNow(p *Provider) error { return p.pollOnce(p.elapsed()) }

// CachedTokens returns how many verified tokens p remembers.
func CachedTokens(p *Provider) int {
	p.tokens.mu.RLock()
	defer p.tokens.mu.RUnlock()
	return len(p.tokens.entries)
}

// ReloadKeys rereads the key set, as a replica does periodically.
func ReloadKeys(ctx context.Context, p *Provider) error { return p.reloadKeys(ctx) }

// Revocation-cache timing, for tests that step a clock across it.
const (
	RevocationPollInterval = revocationPollInterval
	RevocationMaxStale     = revocationMaxStale
)
