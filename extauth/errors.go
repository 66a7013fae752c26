package extauth

import (
	"sync/atomic"

	oauth "github.com/mcp-oauth/oauth"
)

// Reason is a class of token rejection. The Err* values below are the
// reasons: sentinel errors that every error Verify returns matches with
// errors.Is, as in errors.Is(err, extauth.ErrExpired). Every reason but
// ErrIntrospectionUnavailable and ErrKeysUnavailable also matches
// oauth.ErrInvalidToken (RFC 6750 §3.1 invalid_token: the client should
// obtain a new token); those two match oauth.ErrServerError, a failure on
// the server's side that mcpauth.RequireBearer answers with 500 rather than
// telling the client to authorize again.
type Reason struct {
	name   string
	desc   string // error_description sent to the client
	server bool
	idx    int
}

// Error implements error.
func (r *Reason) Error() string { return "extauth: " + r.name }

// Name is the reason's short name, the key of Stats.Rejected.
func (r *Reason) Name() string { return r.name }

// The reasons for refusing a token.
var (
	// ErrMalformed: not a token this verifier can read (not a JWS, bad
	// base64url or JSON, a crit header, a missing sub or exp, oversized),
	// or an opaque token while introspection is off.
	ErrMalformed = newReason("malformed", "the access token is malformed", false)
	// ErrDisallowedAlgorithm: the JWS alg is not one of
	// Options.Algorithms (none and HMAC never are), or the key the token
	// names is not a key of that algorithm (RFC 8725 §3.1, §2.1: no
	// algorithm confusion).
	ErrDisallowedAlgorithm = newReason("disallowed_algorithm", "the access token's signing algorithm is not accepted", false)
	// ErrBadSignature: the signature does not verify.
	ErrBadSignature = newReason("bad_signature", "the access token's signature is invalid", false)
	// ErrUnknownKey: the kid is in none of the issuer's keys, even after
	// fetching them again (or a refetch is not allowed yet), or the token
	// names no kid and several keys could have signed it.
	ErrUnknownKey = newReason("unknown_key", "the access token is signed by an unknown key", false)
	// ErrWrongType: the JOSE typ header is not an accepted one (RFC 9068
	// §2.1, §4: "at+jwt" by default), or an introspected token is not an
	// access token.
	ErrWrongType = newReason("wrong_type", "the token is not an access token", false)
	// ErrExpired: exp has passed (beyond the clock skew).
	ErrExpired = newReason("expired", "the access token has expired", false)
	// ErrNotYetValid: nbf or iat is in the future (beyond the clock skew).
	ErrNotYetValid = newReason("not_yet_valid", "the access token is not valid yet", false)
	// ErrWrongIssuer: iss is not Options.Issuer.
	ErrWrongIssuer = newReason("wrong_issuer", "the access token is from another issuer", false)
	// ErrWrongAudience: aud names none of Options.Audiences (RFC 8707,
	// RFC 9068 §4).
	ErrWrongAudience = newReason("wrong_audience", "the access token is for another resource", false)
	// ErrInactive: introspection (RFC 7662) answered that the token is not
	// active: revoked, expired, or unknown to the issuer.
	ErrInactive = newReason("inactive", "the access token is not active", false)
	// ErrIntrospectionUnavailable: the introspection endpoint could not be
	// reached or gave no usable answer. A server-side failure.
	ErrIntrospectionUnavailable = newReason("introspection_unavailable", "token introspection is unavailable", true)
	// ErrKeysUnavailable: the issuer's keys could not be fetched and no
	// cached keys are usable any more (Options.Keys.MaxStale). A
	// server-side failure.
	ErrKeysUnavailable = newReason("keys_unavailable", "the issuer's signing keys are unavailable", true)
)

var reasons []*Reason

func newReason(name, desc string, server bool) *Reason {
	r := &Reason{name: name, desc: desc, server: server, idx: len(reasons)}
	reasons = append(reasons, r)
	return r
}

// rejection is the error Verify returns: it matches its Reason and, by
// unwrapping, the *oauth.Error that mcpauth.RequireBearer answers with.
// Its text never contains the token.
type rejection struct {
	reason *Reason
	oerr   *oauth.Error
	detail string
	cause  error
}

func reject(r *Reason, detail string) *rejection { return rejectCause(r, detail, nil) }

func rejectCause(r *Reason, detail string, cause error) *rejection {
	base := oauth.ErrInvalidToken
	if r.server {
		base = oauth.ErrServerError
	}
	return &rejection{reason: r, oerr: base.WithDescription(r.desc), detail: detail, cause: cause}
}

func (e *rejection) Error() string {
	s := "extauth: " + e.reason.name
	if e.detail != "" {
		s += ": " + e.detail
	}
	if e.cause != nil {
		s += ": " + e.cause.Error()
	}
	return s
}

// Is matches the rejection's Reason.
func (e *rejection) Is(target error) bool { return target == error(e.reason) }

// Unwrap returns the OAuth error (invalid_token or server_error) and the
// cause, if any.
func (e *rejection) Unwrap() []error {
	if e.cause == nil {
		return []error{e.oerr}
	}
	return []error{e.oerr, e.cause}
}

// Stats is a snapshot of a Verifier's counters since New, for metrics
// (a Prometheus CounterFunc per field reads them cheaply). Counting is
// the Verifier's own, so no hook runs on the request path.
type Stats struct {
	// Accepted counts tokens accepted, CacheHits those of them answered
	// from the verified-token cache (no signature check, no
	// introspection).
	Accepted, CacheHits uint64
	// Rejected counts refusals by Reason.Name; every reason is present.
	Rejected map[string]uint64
	// KeyFetches counts JWK Set fetches (successful or not) since New,
	// including the first; KeyFetchFailures those that failed.
	KeyFetches, KeyFetchFailures uint64
	// Introspections counts introspection requests sent;
	// IntrospectionFailures those that gave no usable answer.
	Introspections, IntrospectionFailures uint64
}

type counters struct {
	accepted, cacheHits           atomic.Uint64
	rejected                      [16]atomic.Uint64
	keyFetches, keyFetchFailures  atomic.Uint64
	introspections, introFailures atomic.Uint64
}

func (c *counters) snapshot() Stats {
	s := Stats{
		Accepted: c.accepted.Load(), CacheHits: c.cacheHits.Load(), Rejected: make(map[string]uint64, len(reasons)),
		KeyFetches: c.keyFetches.Load(), KeyFetchFailures: c.keyFetchFailures.Load(),
		Introspections: c.introspections.Load(), IntrospectionFailures: c.introFailures.Load(),
	}
	for _, r := range reasons {
		s.Rejected[r.name] = c.rejected[r.idx].Load()
	}
	return s
}
