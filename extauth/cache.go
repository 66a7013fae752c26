package extauth

import oauth "github.com/mcp-oauth/oauth"

// DefaultVerifiedTokenCacheSize is the default bound on the number of
// answers a Verifier remembers.
const DefaultVerifiedTokenCacheSize = 10000

// The verified-token cache (internal/tokencache) keeps a signature check (or an introspection)
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

type cacheEntry struct {
	at     *oauth.AccessToken // with Token empty; nil for a refusal
	refuse *rejection
}

// accepted is a cacheEntry of an accepted token with its copy of the
// AccessToken, in one allocation.
type accepted struct {
	e  cacheEntry
	at oauth.AccessToken
}

// newAccepted returns the cache entry of at: a copy of it (whose Token is
// set later on the original only).
func newAccepted(at *oauth.AccessToken) *cacheEntry {
	a := &accepted{at: *at}
	a.e.at = &a.at
	return &a.e
}
