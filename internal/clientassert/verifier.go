// Package clientassert verifies JWT client assertions: the
// private_key_jwt client authentication method of RFC 7523 §2.2 and §3
// and OpenID Connect Core §9, by which a client proves its identity at
// the token endpoint with a JWT signed by one of its registered keys
// (its jwks or jwks_uri, RFC 7591 §2).
//
// A Verifier checks, in this order: the client_assertion_type; that the
// assertion is a compact JWS (RFC 7515 §7.1) of bounded size, with no
// JOSE extension it does not implement; that alg is allowed (never none
// or HMAC, RFC 8725 §3.1) and fits the key that kid selects; the
// signature; iss and sub equal to the client_id; aud one of the accepted
// audiences; exp present, not past and not too far ahead; nbf and iat not
// in the future; jti present and not seen before for this client. Keys
// named in the JOSE header (jwk, jku, x5c, x5u) are never used.
//
// jwks_uri documents are fetched with the caller's Fetch function (which
// must guard against SSRF) and cached per URL with bounded size and age.
// Used jti values are remembered in memory until the assertion expires;
// the cache refuses new assertions when full of live ones (fail closed).
package clientassert

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"
	gjson "github.com/go-jose/go-jose/v4/json"

	"github.com/mcp-oauth/oauth/internal/replay"
)

// AssertionType is the only client_assertion_type accepted (RFC 7523
// §2.2).
const AssertionType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

// Limits and defaults. The zero value of each Options field means the
// default named here.
const (
	// MaxAssertionBytes bounds a client_assertion. Client assertions are
	// a few hundred bytes (RS256: about 700).
	MaxAssertionBytes = 8 << 10
	// MaxJTIBytes bounds the jti claim, which is kept in memory.
	MaxJTIBytes = 256
	// DefaultMaxLifetime bounds exp − now and exp − iat.
	DefaultMaxLifetime = 5 * time.Minute
	// DefaultClockSkew is the leeway for exp, nbf and iat (RFC 7519
	// §4.1.4: "some small leeway, usually no more than a few minutes").
	DefaultClockSkew = 30 * time.Second
	// DefaultReplayCacheSize bounds the jti values remembered at once.
	DefaultReplayCacheSize = 100_000
	// DefaultKeySetMaxAge is how long a fetched jwks_uri document is used
	// before it is fetched again.
	DefaultKeySetMaxAge = 5 * time.Minute
	// DefaultKeySetMaxStale is how long a fetched document is still used
	// when fetching it again fails.
	DefaultKeySetMaxStale = time.Hour
	// DefaultKeySetRefetchInterval is the least time between two fetches
	// of one jwks_uri, for whatever reason (an unknown kid, a failure).
	DefaultKeySetRefetchInterval = 30 * time.Second
	// DefaultKeySetCacheSize bounds the jwks_uri documents cached.
	DefaultKeySetCacheSize = 1024
	// DefaultFetchTimeout bounds one jwks_uri fetch.
	DefaultFetchTimeout = 10 * time.Second
)

// DefaultAlgorithms returns the JWS algorithms (RFC 7518 §3.1, RFC 8037
// §3.1) accepted when Options.Algorithms is empty: RS256 (what ChatGPT's
// connector signs with), PS256, ES256 and EdDSA.
func DefaultAlgorithms() []string {
	return []string{string(jose.RS256), string(jose.PS256), string(jose.ES256), string(jose.EdDSA)}
}

// supported are the algorithms Options.Algorithms may name: the
// asymmetric ones of RFC 7518 §3.1 and RFC 8037 §3.1. HMAC and none are
// not, since a client's registered keys are public (RFC 8725 §2.1).
var supported = []jose.SignatureAlgorithm{
	jose.RS256, jose.RS384, jose.RS512, jose.PS256, jose.PS384, jose.PS512,
	jose.ES256, jose.ES384, jose.ES512, jose.EdDSA,
}

// Options configure a Verifier. Audiences is required; every other
// field's zero value is the safe default.
type Options struct {
	// Audiences are the accepted aud values (RFC 7523 §3 item 3): the
	// token endpoint URL, with and without a trailing slash, and the
	// issuer identifier (RFC 8414 §2). aud, a string or an array of
	// strings, must contain one of them exactly. Required.
	Audiences []string
	// Algorithms are the accepted alg values; empty means
	// DefaultAlgorithms. Only RS256, RS384, RS512, PS256, PS384, PS512,
	// ES256, ES384, ES512 and EdDSA may be named.
	Algorithms []string
	// MaxLifetime bounds how far ahead exp may be (beyond ClockSkew), and
	// exp − iat when iat is present; zero means DefaultMaxLifetime.
	MaxLifetime time.Duration
	// ClockSkew is the leeway for exp, nbf and iat; zero means
	// DefaultClockSkew, negative means none.
	ClockSkew time.Duration
	// Fetch retrieves a jwks_uri document of at most maxBytes. It must
	// guard against server-side request forgery as the Client ID
	// Metadata Document fetcher does (public addresses only, no
	// redirects, bounded time and size). Nil means clients with a
	// jwks_uri cannot authenticate (ErrKeysUnavailable).
	Fetch func(ctx context.Context, url string, maxBytes int64) ([]byte, error)
	// FetchTimeout bounds one call of Fetch; zero means
	// DefaultFetchTimeout.
	FetchTimeout time.Duration
	// KeySetMaxAge is how long a fetched JWK Set is used before it is
	// fetched again; zero means DefaultKeySetMaxAge.
	KeySetMaxAge time.Duration
	// KeySetMaxStale is how long a fetched JWK Set is still used while
	// fetching it again fails; zero means DefaultKeySetMaxStale. It is
	// raised to KeySetMaxAge + KeySetRefetchInterval if lower.
	KeySetMaxStale time.Duration
	// KeySetRefetchInterval is the least time between two fetches of one
	// jwks_uri, so that assertions naming unknown kids cannot make the
	// server hammer a client's host; zero means
	// DefaultKeySetRefetchInterval.
	KeySetRefetchInterval time.Duration
	// KeySetCacheSize bounds the number of jwks_uri documents cached,
	// and separately the number of parsed inline jwks documents; zero
	// means DefaultKeySetCacheSize.
	KeySetCacheSize int
	// ReplayCacheSize bounds the number of (client, jti) pairs
	// remembered; zero means DefaultReplayCacheSize. When it is full of
	// unexpired pairs, assertions are refused with ErrReplayCacheFull.
	ReplayCacheSize int
	// AllowHTTPLoopback lets ValidateKeys and Verify accept a jwks_uri
	// with http to localhost or a loopback address: for tests only.
	AllowHTTPLoopback bool
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Verifier verifies client assertions. It is safe for concurrent use.
type Verifier struct {
	opts    Options
	algs    []jose.SignatureAlgorithm
	remote  *remoteKeys
	inline  *inlineKeys
	replays *replay.Cache
}

// New returns a Verifier, or an error if Audiences is empty or
// Algorithms names an algorithm that is not supported (none and HMAC
// never are).
func New(opts Options) (*Verifier, error) {
	if len(opts.Audiences) == 0 || slices.Contains(opts.Audiences, "") {
		return nil, errors.New("clientassert: Options.Audiences must list the token endpoint and the issuer")
	}
	opts.Audiences = slices.Clone(opts.Audiences)
	if len(opts.Algorithms) == 0 {
		opts.Algorithms = DefaultAlgorithms()
	}
	var algs []jose.SignatureAlgorithm
	for _, a := range opts.Algorithms {
		if !slices.Contains(supported, jose.SignatureAlgorithm(a)) {
			return nil, fmt.Errorf("clientassert: algorithm %q is not supported for client assertions", a)
		}
		algs = append(algs, jose.SignatureAlgorithm(a))
	}
	opts.Algorithms = slices.Clone(opts.Algorithms)
	setDefault(&opts.MaxLifetime, DefaultMaxLifetime)
	setDefault(&opts.ClockSkew, DefaultClockSkew)
	opts.ClockSkew = max(opts.ClockSkew, 0)
	setDefault(&opts.FetchTimeout, DefaultFetchTimeout)
	setDefault(&opts.KeySetMaxAge, DefaultKeySetMaxAge)
	setDefault(&opts.KeySetMaxStale, DefaultKeySetMaxStale)
	setDefault(&opts.KeySetRefetchInterval, DefaultKeySetRefetchInterval)
	// Keys must not go stale while the refetch interval forbids a fetch.
	opts.KeySetMaxStale = max(opts.KeySetMaxStale, opts.KeySetMaxAge+opts.KeySetRefetchInterval)
	setDefault(&opts.KeySetCacheSize, DefaultKeySetCacheSize)
	setDefault(&opts.ReplayCacheSize, DefaultReplayCacheSize)
	if opts.Now == nil {
		opts.Now = time.Now
	}
	v := &Verifier{opts: opts, algs: algs, replays: replay.New(opts.ReplayCacheSize)}
	v.remote = newRemoteKeys(v)
	v.inline = &inlineKeys{max: opts.KeySetCacheSize, sets: map[[32]byte]*keySet{}}
	return v, nil
}

func setDefault[T time.Duration | int](p *T, def T) {
	if *p == 0 {
		*p = def
	}
}

// Verify authenticates client clientID by a client assertion (RFC 7523
// §2.2 and §3, OIDC Core §9): assertionType and assertion are the
// client_assertion_type and client_assertion parameters, keys the
// client's registered jwks or jwks_uri. It returns nil if the assertion
// is valid, which also marks its jti as used; otherwise an *Error
// wrapping one of the Err* reasons.
func (v *Verifier) Verify(ctx context.Context, clientID string, keys KeySource, assertionType, assertion string) error {
	if assertionType != AssertionType {
		return refuse(ErrAssertionType, "client_assertion_type must be "+AssertionType)
	}
	jws, err := v.parse(assertion)
	if err != nil {
		return err
	}
	payload, err := v.verifySignature(ctx, keys, jws)
	if err != nil {
		return err
	}
	c, err := parseClaims(payload)
	if err != nil {
		return err
	}
	now := v.opts.Now()
	if err := v.checkClaims(clientID, c, now); err != nil {
		return err
	}
	// Remember the jti while the assertion could still be accepted.
	id := strconv.Itoa(len(clientID)) + ":" + clientID + ":" + *c.Jti
	switch v.replays.Use(id, c.Exp.Add(v.opts.ClockSkew), now) {
	case replay.Replayed:
		return refuse(ErrReplayed, "the client used this jti before")
	case replay.Full:
		return refuse(ErrReplayCacheFull, "too many unexpired assertions are remembered; try again later")
	}
	return nil
}

// UnverifiedClientID returns the client_id an assertion claims to be
// from (its iss, which must equal its sub), without verifying anything
// else. It is for finding the client to authenticate when the request
// omits client_id, which RFC 7521 §4.2 allows; the client found must
// then be authenticated with Verify.
func (v *Verifier) UnverifiedClientID(assertion string) (string, error) {
	jws, err := v.parse(assertion)
	if err != nil {
		return "", err
	}
	c, err := parseClaims(jws.UnsafePayloadWithoutVerification())
	if err != nil {
		return "", err
	}
	if c.Iss == nil || c.Sub == nil || *c.Iss != *c.Sub || *c.Iss == "" {
		return "", refuse(ErrIssuer, "iss and sub must both be the client_id")
	}
	return *c.Iss, nil
}

// verifySignature selects the key (fetching the client's jwks_uri again,
// within its rate limit, when none matches) and returns the verified
// payload.
func (v *Verifier) verifySignature(ctx context.Context, src KeySource, jws *jose.JSONWebSignature) ([]byte, error) {
	h := jws.Signatures[0].Header
	set, err := v.keySet(ctx, src, false)
	if err != nil {
		return nil, err
	}
	k, err := set.pick(h.KeyID, h.Algorithm)
	if err != nil && src.JWKSURI != "" {
		// The client may have rotated its keys (RFC 7517 §4.5): look
		// again, unless the document was fetched moments ago. If that
		// fails, the original refusal stands (fail closed).
		if fresh, ferr := v.keySet(ctx, src, true); ferr == nil {
			k, err = fresh.pick(h.KeyID, h.Algorithm)
		}
	}
	if err != nil {
		return nil, err
	}
	payload, err := jws.Verify(k.pub)
	if err != nil {
		return nil, refuse(ErrSignature, "the assertion's signature does not verify with the client's key")
	}
	return payload, nil
}

// keySet returns the client's usable keys from src.
func (v *Verifier) keySet(ctx context.Context, src KeySource, refresh bool) (*keySet, error) {
	switch {
	case len(src.JWKS) > 0 && src.JWKSURI != "":
		return nil, refuse(ErrKeysUnavailable, "the client has both jwks and jwks_uri")
	case len(src.JWKS) > 0:
		set, err := v.inline.get(src.JWKS, v.algs)
		if err != nil {
			return nil, refuseWith(ErrKeysUnavailable, "the client's jwks is not acceptable", err)
		}
		return set, nil
	case src.JWKSURI == "":
		return nil, refuse(ErrKeysUnavailable, "the client has no jwks or jwks_uri")
	case v.opts.Fetch == nil:
		return nil, refuse(ErrKeysUnavailable, "jwks_uri is not supported by this server")
	}
	if err := checkJWKSURI(src.JWKSURI, v.opts.AllowHTTPLoopback); err != nil {
		return nil, refuseWith(ErrKeysUnavailable, "the client's jwks_uri is not acceptable", err)
	}
	return v.remote.get(ctx, src.JWKSURI, refresh)
}

// parse splits and decodes an assertion without verifying it: a compact
// JWS of at most MaxAssertionBytes (never a JWE, RFC 7516 §7.1, nor the
// JSON serialization) whose alg is allowed. The crit (RFC 7515 §4.1.11),
// b64 (RFC 7797), zip and enc headers are refused, and a typ other than
// JWT or client-authentication+jwt (draft-ietf-oauth-rfc7523bis), so
// that a JWT of another kind (an access token, a DPoP proof) is not
// taken for a client assertion (RFC 8725 §3.11).
func (v *Verifier) parse(assertion string) (*jose.JSONWebSignature, error) {
	switch {
	case assertion == "":
		return nil, refuse(ErrMalformed, "client_assertion is empty")
	case len(assertion) > MaxAssertionBytes:
		return nil, refuse(ErrMalformed, "client_assertion is larger than 8 KiB")
	case strings.Count(assertion, ".") == 4:
		return nil, refuse(ErrMalformed, "client_assertion is encrypted (JWE); only signed JWTs are accepted")
	case strings.Count(assertion, ".") != 2:
		return nil, refuse(ErrMalformed, "client_assertion is not a JWS in compact serialization")
	}
	jws, err := jose.ParseSignedCompact(assertion, v.algs)
	if err != nil {
		// go-jose's messages may quote header content: never pass them on.
		if _, ok := errors.AsType[*jose.ErrUnexpectedSignatureAlgorithm](err); ok {
			return nil, refuse(ErrAlgorithm, "the assertion's alg is not accepted")
		}
		return nil, refuse(ErrMalformed, "client_assertion is not a valid JWS")
	}
	if len(jws.Signatures) != 1 {
		return nil, refuse(ErrMalformed, "client_assertion must have one signature")
	}
	h := jws.Signatures[0].Header
	for _, name := range []jose.HeaderKey{"crit", "b64", "zip", "enc"} {
		if _, ok := h.ExtraHeaders[name]; ok {
			return nil, refuse(ErrMalformed, "the assertion uses a JOSE header parameter that is not supported")
		}
	}
	if t, ok := h.ExtraHeaders[jose.HeaderType]; ok {
		s, _ := t.(string)
		s = strings.TrimPrefix(strings.ToLower(s), "application/")
		if s != "jwt" && s != "client-authentication+jwt" {
			return nil, refuse(ErrMalformed, "the assertion's typ is not that of a client assertion")
		}
	}
	return jws, nil
}

// claims are the members of a client assertion's claims set that RFC
// 7523 §3 and OIDC Core §9 give meaning to. Pointers tell absent from
// empty. go-jose's JSON decoder is used because it refuses duplicate
// members and matches names case-sensitively, so that no other parser
// can read a different claim than this one does.
type claims struct {
	Iss *string      `json:"iss"`
	Sub *string      `json:"sub"`
	Aud audience     `json:"aud"`
	Exp *numericDate `json:"exp"`
	Nbf *numericDate `json:"nbf"`
	Iat *numericDate `json:"iat"`
	Jti *string      `json:"jti"`
}

// parseClaims decodes a JWT claims set (RFC 7519 §7.2 step 10).
func parseClaims(payload []byte) (*claims, error) {
	var c claims
	if len(payload) == 0 || payload[0] != '{' {
		return nil, refuse(ErrMalformed, "the assertion's payload is not a JSON object")
	}
	if err := gjson.Unmarshal(payload, &c); err != nil {
		return nil, refuse(ErrMalformed, "the assertion's claims do not parse, repeat a member, or have the wrong types")
	}
	return &c, nil
}

// checkClaims applies RFC 7523 §3 items 1 to 7 (and OIDC Core §9) to a
// verified claims set.
func (v *Verifier) checkClaims(clientID string, c *claims, now time.Time) error {
	skew, life := v.opts.ClockSkew, v.opts.MaxLifetime
	switch {
	case clientID == "" || c.Iss == nil || c.Sub == nil || *c.Iss != clientID || *c.Sub != clientID:
		return refuse(ErrIssuer, "the assertion's iss and sub are not both the client_id")
	case !slices.ContainsFunc(c.Aud, func(a string) bool { return slices.Contains(v.opts.Audiences, a) }):
		return refuse(ErrAudience, "aud must name this server's token endpoint or issuer")
	case c.Exp == nil:
		return refuse(ErrMalformed, "exp is required")
	case c.Jti == nil || *c.Jti == "":
		return refuse(ErrMalformed, "jti is required")
	case len(*c.Jti) > MaxJTIBytes:
		return refuse(ErrMalformed, "jti is longer than 256 bytes")
	case !now.Before(c.Exp.Add(skew)):
		return refuse(ErrExpired, "the assertion has expired")
	case c.Exp.After(now.Add(life + skew)):
		return refuse(ErrLifetime, "exp is too far in the future")
	case c.Iat != nil && c.Exp.Sub(c.Iat.Time) > life:
		return refuse(ErrLifetime, "exp − iat exceeds the maximum lifetime")
	case c.Iat != nil && c.Iat.After(now.Add(skew)):
		return refuse(ErrNotYetValid, "iat is in the future")
	case c.Nbf != nil && c.Nbf.After(now.Add(skew)):
		return refuse(ErrNotYetValid, "nbf is in the future")
	}
	return nil
}

// audience is the aud claim: a string or an array of strings (RFC 7519
// §4.1.3). null is the same as absent.
type audience []string

// UnmarshalJSON implements gjson.Unmarshaler.
func (a *audience) UnmarshalJSON(b []byte) error {
	switch {
	case string(b) == "null":
		*a = nil
		return nil
	case len(b) > 0 && b[0] == '"':
		var s string
		if err := gjson.Unmarshal(b, &s); err != nil {
			return err
		}
		*a = audience{s}
		return nil
	}
	var list []string
	if err := gjson.Unmarshal(b, &list); err != nil {
		return err
	}
	*a = list
	return nil
}

// maxNumericDate is 9999-12-31T23:59:59Z; later dates are refused.
const maxNumericDate = 253402300799

// numericDate is a JSON number of seconds since the epoch, possibly
// fractional (RFC 7519 §2 NumericDate).
type numericDate struct{ time.Time }

// UnmarshalJSON implements gjson.Unmarshaler.
func (d *numericDate) UnmarshalJSON(b []byte) error {
	// The decoder has checked that b is one JSON value; one starting
	// with a digit or '-' is a number, which ParseFloat reads.
	if len(b) == 0 || (b[0] != '-' && (b[0] < '0' || b[0] > '9')) {
		return errors.New("NumericDate must be a number")
	}
	f, err := strconv.ParseFloat(string(b), 64)
	if err != nil || f < 0 || f > maxNumericDate {
		return errors.New("NumericDate out of range")
	}
	sec := math.Floor(f)
	d.Time = time.Unix(int64(sec), int64((f-sec)*1e9))
	return nil
}
