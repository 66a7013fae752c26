package provider

import (
	"context"
	"time"
)

// Hooks for the external tests of the fast path (cache_test.go). Those
// tests let time pass with testing/synctest, so no hook replaces a clock.

// PollNow reads the store's revocation count at once, as a poll does (or a
// store's revocation signal makes one do), so a test decides exactly when
// a read happens relative to its other steps.
func PollNow(p *Provider) error { return p.pollOnce(p.elapsed()) }

// CachedTokens returns how many verified tokens p remembers.
func CachedTokens(p *Provider) int {
	return p.tokens.Len()
}

// ReloadKeys rereads the key set, as a replica does periodically.
func ReloadKeys(ctx context.Context, p *Provider) error { return p.reloadKeys(ctx) }

// RevocationMaxStale is how long a confirmation of the grant states is
// trusted, for tests that let that much time pass.
const RevocationMaxStale time.Duration = revocationMaxStale
