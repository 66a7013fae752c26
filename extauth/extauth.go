// Package extauth verifies access tokens issued by an external
// authorization server, for an MCP server that is a resource server of a
// company's identity provider (Keycloak, Entra ID, Okta, Auth0, Google,
// zitadel, ...) rather than its own authorization server:
//
//	v, err := extauth.New(ctx, extauth.Options{
//		Issuer:    "https://idp.example.com/realms/acme",
//		Audiences: []string{"https://notes.example.com/mcp"},
//	})
//	h := mcpauth.RequireBearer(v.Verify, mcpauth.BearerOptions{...})(mcpHandler)
//
// or, in one call, mcpauth.Protect. What it checks:
//
//   - discovery: the issuer's RFC 8414 metadata, else its OpenID Connect
//     Discovery document, whose issuer must equal Options.Issuer;
//   - JWT access tokens (RFC 9068, RFC 7519): a JWS signed with one of
//     Options.Algorithms (never none, never HMAC) by a key of the issuer's
//     JWK Set whose type and curve fit the algorithm (RFC 8725 §3.1), the
//     typ header (at+jwt unless relaxed), iss, aud, exp, nbf and iat with
//     a clock skew, and sub;
//   - opaque tokens by RFC 7662 introspection, when configured;
//   - roles, from scopes and from claims (see RoleOptions).
//
// The JWK Set is cached for its Cache-Control max-age (bounded), fetched
// again when a token names an unknown kid (single-flight, at most once per
// KeySetOptions.MinInterval), and kept in use while the issuer cannot be
// reached (KeySetOptions.MaxStale). Answers are cached by the SHA-256 of
// the token, never past its exp, so a token is checked once.
//
// Every refusal is an error that matches one of the Reason sentinels
// (ErrExpired, ErrWrongAudience, ...) with errors.Is, is counted in Stats,
// and is logged (at debug level, server-side failures at warn) with a
// fingerprint of the token, never the token.
package extauth

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"time"

	oauth "github.com/mcp-oauth/oauth"
	"github.com/mcp-oauth/oauth/internal/tokencache"
)

// DefaultClockSkew is the default tolerance for the clocks of the issuer
// and of this server on exp, nbf and iat.
const DefaultClockSkew = 60 * time.Second

// MaxTokenBytes bounds a token Verify reads.
const MaxTokenBytes = 16 << 10

// DefaultTokenType is the JOSE typ of JWT access tokens (RFC 9068 §2.1);
// "application/at+jwt" is the same type.
const DefaultTokenType = "at+jwt"

// Options configure [New]. Issuer and Audiences are required; every other
// zero value selects the documented default.
type Options struct {
	// Issuer is the authorization server's issuer identifier, exactly as
	// its tokens carry it in iss and its metadata in issuer (Keycloak
	// "https://kc.example.com/realms/acme", Entra ID
	// "https://login.microsoftonline.com/<tenant>/v2.0", Auth0
	// "https://acme.eu.auth0.com/" with its slash). It must be https,
	// except on a loopback host. Required.
	Issuer string
	// Audiences are the aud values accepted (RFC 8707, RFC 9068 §4): the
	// MCP server's resource URL, and whatever identifier the issuer puts
	// in aud for it (an Entra application ID URI "api://notes", a Keycloak
	// client ID). A token must name at least one; AccessToken.Resource is
	// the first of Audiences that it names. Required.
	Audiences []string
	// Algorithms are the JWS algorithms accepted; empty means
	// DefaultAlgorithms(). Each must be one of the constants of this
	// package: none and HMAC are refused at New.
	Algorithms []string
	// TokenTypes are the accepted JOSE typ header values, compared without
	// case and without the "application/" prefix (RFC 7515 §4.1.9); ""
	// accepts a token without typ. Empty means {DefaultTokenType}, as RFC
	// 9068 §4 requires. Relax it for issuers that do not set at+jwt
	// (Entra ID, Okta, Auth0 and zitadel send "JWT"; Keycloak "JWT" by
	// default): {"at+jwt", "JWT", ""}. An ID token then passes only if its
	// aud is in Audiences, which a client ID should therefore not be.
	TokenTypes []string
	// ClockSkew is tolerated on exp, nbf and iat; zero means
	// DefaultClockSkew, negative means none.
	ClockSkew time.Duration
	// Keys configure the JWK Set cache.
	Keys KeySetOptions
	// Introspection, when ClientID or Authenticate is set, verifies
	// opaque tokens (anything that is not a JWS) at the issuer's RFC 7662
	// endpoint. Without it, opaque tokens are refused as ErrMalformed.
	Introspection IntrospectionOptions
	// Roles say where the roles of a token's holder are.
	Roles RoleOptions
	// Claims name the claims passed on in AccessToken.Claims (and so
	// mcpauth.Caller.Claims) beside what its fields carry: "email",
	// "name", "preferred_username", "tid", "groups", ...; "*" passes every
	// claim but iss, sub, aud, exp, nbf, iat and jti. Empty passes none.
	// Claims not passed on and not named by Roles are not even decoded.
	Claims []string
	// VerifiedTokenCacheSize bounds the verified-token cache; zero means
	// DefaultVerifiedTokenCacheSize, negative turns it off.
	VerifiedTokenCacheSize int
	// HTTPClient fetches metadata and keys and sends introspection
	// requests; nil means a client with a 10 second timeout.
	HTTPClient *http.Client
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Logger receives refusals (debug), key fetch and introspection
	// failures (warn); nil discards them. Tokens are never logged.
	Logger *slog.Logger
}

// Verifier verifies the access tokens of one external issuer. It is safe
// for concurrent use. Its Verify method has the shape of
// mcpauth.TokenVerifier.
type Verifier struct {
	opts       Options
	issuer     string
	audiences  []string
	algs       map[string]bool
	types      map[string]bool
	skew       time.Duration
	now        func() time.Time
	log        *slog.Logger
	hc         *http.Client
	meta       Metadata
	keys       *keySet // nil when the issuer has no jwks_uri
	introURL   string  // "" when introspection is off
	introSlots chan struct{}
	cache      *tokencache.Cache[*cacheEntry]
	roles      *roleMapper
	picker     *claimPicker
	stats      counters
}

// New discovers the issuer's metadata and fetches its JWK Set, and
// returns a Verifier, or an error naming what is misconfigured or
// unreachable: a resource server that cannot verify must not start.
func New(ctx context.Context, opts Options) (*Verifier, error) {
	if err := checkIssuer(opts.Issuer); err != nil {
		return nil, fmt.Errorf("extauth: Issuer: %w", err)
	}
	if len(opts.Audiences) == 0 || slices.Contains(opts.Audiences, "") {
		return nil, errors.New("extauth: Audiences must name at least one non-empty audience (the resource URL)")
	}
	v := &Verifier{opts: opts, issuer: opts.Issuer, audiences: slices.Clone(opts.Audiences), algs: map[string]bool{}, types: map[string]bool{}}
	algs := opts.Algorithms
	if len(algs) == 0 {
		algs = DefaultAlgorithms()
	}
	for _, a := range algs {
		if method(a) == nil {
			return nil, fmt.Errorf("extauth: Algorithms: %q is not accepted (only RS*, PS*, ES* and EdDSA; never none or HMAC)", a)
		}
		v.algs[a] = true
	}
	types := opts.TokenTypes
	if len(types) == 0 {
		types = []string{DefaultTokenType}
	}
	for _, t := range types {
		v.types[normType(t)] = true
	}
	switch {
	case opts.ClockSkew == 0:
		v.skew = DefaultClockSkew
	case opts.ClockSkew > 0:
		v.skew = opts.ClockSkew
	}
	if v.now = opts.Now; v.now == nil {
		v.now = time.Now
	}
	if v.log = opts.Logger; v.log == nil {
		v.log = slog.New(slog.DiscardHandler)
	}
	if v.hc = opts.HTTPClient; v.hc == nil {
		v.hc = &http.Client{Timeout: 10 * time.Second}
	}
	switch n := opts.VerifiedTokenCacheSize; {
	case n == 0:
		v.cache = tokencache.New[*cacheEntry](DefaultVerifiedTokenCacheSize)
	case n > 0:
		v.cache = tokencache.New[*cacheEntry](n)
	}
	var err error
	if v.roles, err = compileRoles(opts.Roles); err != nil {
		return nil, fmt.Errorf("extauth: %w", err)
	}
	v.picker = newClaimPicker(opts.Claims, v.roles)
	in := &v.opts.Introspection
	if in.CacheTTL == 0 {
		in.CacheTTL = DefaultIntrospectionCacheTTL
	}
	if in.InactiveTTL == 0 {
		in.InactiveTTL = DefaultIntrospectionInactiveTTL
	}
	if in.AuthMethod != "" && in.AuthMethod != "client_secret_basic" && in.AuthMethod != "client_secret_post" {
		return nil, fmt.Errorf("extauth: Introspection.AuthMethod %q: want client_secret_basic or client_secret_post", in.AuthMethod)
	}
	m, err := discover(ctx, v.get, opts.Issuer)
	if err != nil {
		return nil, err
	}
	v.meta = *m
	if in.enabled() {
		if v.introURL = in.Endpoint; v.introURL == "" {
			v.introURL = m.IntrospectionEndpoint
		}
		if v.introURL == "" {
			return nil, fmt.Errorf("extauth: Introspection is configured but the issuer's metadata has no introspection_endpoint; set Introspection.Endpoint")
		}
		if err := checkURL(v.introURL, true); err != nil {
			return nil, fmt.Errorf("extauth: introspection endpoint: %w", err)
		}
		if in.MaxConcurrent <= 0 {
			in.MaxConcurrent = DefaultIntrospectionConcurrency
		}
		v.introSlots = make(chan struct{}, in.MaxConcurrent)
	}
	if m.JWKSURI == "" {
		if v.introURL == "" {
			return nil, fmt.Errorf("extauth: the issuer's metadata has no jwks_uri and Introspection is not configured: no token could be verified")
		}
		return v, nil
	}
	v.opts.Keys.defaults()
	v.keys = &keySet{url: m.JWKSURI, get: v.get, now: v.now, opts: v.opts.Keys, log: v.log, stats: &v.stats}
	if v.cache != nil {
		v.keys.onRemove = v.cache.Clear
	}
	if err := v.keys.fetchWait(ctx, v.now()); err != nil {
		return nil, fmt.Errorf("extauth: fetch the issuer's JWK Set: %w", err)
	}
	return v, nil
}

// Issuer returns Options.Issuer.
func (v *Verifier) Issuer() string { return v.issuer }

// Metadata returns what discovery found.
func (v *Verifier) Metadata() Metadata {
	m := v.meta
	m.ScopesSupported = slices.Clone(m.ScopesSupported)
	return m
}

// Stats returns the counters since New.
func (v *Verifier) Stats() Stats { return v.stats.snapshot() }

// Verify verifies an access token and returns what it grants: Subject
// from sub; ClientID from client_id, azp (OpenID Connect, Keycloak,
// Auth0), appid (Entra ID v1) or cid (Okta), the first present; Scopes
// from scope (space-separated) or scp (a string, as Entra ID sends it, or
// an array, as Okta does); Resource, the first of Options.Audiences that
// aud names; ID from jti; IssuedAt and ExpiresAt; Roles as Options.Roles
// say; Claims as Options.Claims say. A JWS goes to signature
// verification, anything else to introspection (if configured).
//
// A refusal matches one of the Reason sentinels with errors.Is and, but
// for ErrIntrospectionUnavailable and ErrKeysUnavailable,
// oauth.ErrInvalidToken. The AccessToken returned shares its slices and
// Claims with the cache: treat them as read-only.
func (v *Verifier) Verify(ctx context.Context, token string) (*oauth.AccessToken, error) {
	at, err := v.verify(ctx, token)
	if err == nil {
		v.stats.accepted.Add(1)
		return at, nil
	}
	var r *rejection
	if !errors.As(err, &r) {
		r = rejectCause(ErrMalformed, "", err) // not reached: every path returns a rejection
		err = r
	}
	v.stats.rejected[r.reason.idx].Add(1)
	level := slog.LevelDebug
	if r.reason.server {
		level = slog.LevelWarn
	}
	if v.log.Enabled(ctx, level) {
		sum := sha256.Sum256([]byte(token))
		v.log.Log(ctx, level, "extauth: access token refused", "reason", r.reason.name, "err", err.Error(), "token_sha256", hex.EncodeToString(sum[:6]))
	}
	return nil, err
}

func (v *Verifier) verify(ctx context.Context, token string) (*oauth.AccessToken, error) {
	if token == "" || len(token) > MaxTokenBytes {
		return nil, reject(ErrMalformed, "empty or oversized token")
	}
	now := v.now()
	var k tokencache.Key
	if v.cache != nil {
		k = tokencache.KeyOf(token)
		if e, ok := v.cache.Get(k, now.UnixNano()); ok {
			if e.refuse != nil {
				return nil, e.refuse
			}
			v.stats.cacheHits.Add(1)
			at := *e.at
			at.Token = token
			return &at, nil
		}
	}
	var at *oauth.AccessToken
	var until time.Time
	var err error
	switch {
	case v.keys != nil && LooksLikeJWT(token):
		if at, err = v.verifyJWT(ctx, token, now); err != nil {
			return nil, err
		}
		until = at.ExpiresAt
		if v.introURL != "" && v.opts.Introspection.JWTs {
			if _, err := v.introspect(ctx, token); err != nil {
				v.cacheRefusal(k, err, now)
				return nil, err
			}
			until = v.introUntil(at, now)
		}
	case v.introURL != "":
		claims, err := v.introspect(ctx, token)
		if err != nil {
			v.cacheRefusal(k, err, now)
			return nil, err
		}
		if at, err = v.accessToken(claims, now, fromIntrospection); err != nil {
			return nil, err
		}
		if at.ExpiresAt.IsZero() {
			// No exp: the answer is good for as long as it is cached.
			at.ExpiresAt = now.Add(max(v.opts.Introspection.CacheTTL, DefaultIntrospectionCacheTTL))
		}
		until = v.introUntil(at, now)
	default:
		return nil, reject(ErrMalformed, "not a JWT, and introspection is not configured")
	}
	if v.cache != nil {
		v.cache.Put(k, newAccepted(at), until.UnixNano(), now.UnixNano())
	}
	at.Token = token
	return at, nil
}

// introUntil is how long an introspected answer for at is reused.
func (v *Verifier) introUntil(at *oauth.AccessToken, now time.Time) time.Time {
	ttl := v.opts.Introspection.CacheTTL
	if ttl < 0 {
		return now
	}
	if until := now.Add(ttl); until.Before(at.ExpiresAt) {
		return until
	}
	return at.ExpiresAt
}

// cacheRefusal remembers an inactive answer for InactiveTTL.
func (v *Verifier) cacheRefusal(k tokencache.Key, err error, now time.Time) {
	var r *rejection
	ttl := v.opts.Introspection.InactiveTTL
	if v.cache == nil || ttl <= 0 || !errors.As(err, &r) || r.reason.server {
		return
	}
	v.cache.Put(k, &cacheEntry{refuse: r}, now.Add(ttl).UnixNano(), now.UnixNano())
}

// scratchBytes is the size of verifyJWT's scratch buffers: room for the
// largest payload a token of MaxTokenBytes can have (and so for any header
// of at most maxHeaderBytes).
const scratchBytes = MaxTokenBytes / 4 * 3

// scratch holds buffers into which verifyJWT decodes the JOSE header and
// the payload, so that a token costs no allocation for them. Nothing that
// verifyJWT returns refers to them: what the AccessToken (and an error)
// carries is copied out (rawString, decodeValue, segjson without its
// zero-copy flags). No buffer is held while the JWK Set may be fetched.
var scratch = sync.Pool{New: func() any { return new([scratchBytes]byte) }}

// verifyJWT checks a JWS access token: header, key, signature, claims.
func (v *Verifier) verifyJWT(ctx context.Context, token string, now time.Time) (*oauth.AccessToken, error) {
	var sigBuf [maxSigBytes]byte
	j, err := v.checkHeader(token, sigBuf[:])
	if err != nil {
		return nil, err
	}
	k, err := v.keys.lookup(ctx, j.kid, j.alg)
	if err != nil {
		return nil, err
	}
	if !verifySignature(j.alg, j.signingInput, j.sig, k.pub) {
		return nil, reject(ErrBadSignature, "")
	}
	buf := scratch.Get().(*[scratchBytes]byte)
	defer scratch.Put(buf)
	payload, err := decodeInto(buf[:], j.payload)
	if err != nil {
		return nil, reject(ErrMalformed, "payload is not base64url")
	}
	var c claimSet
	if err := v.picker.pickInto(&c, payload); err != nil {
		return nil, reject(ErrMalformed, "payload is not a JSON object")
	}
	return v.accessToken(&c, now, fromJWT)
}

// checkHeader splits token, decoding its signature into sigBuf, and
// checks its header's alg and typ. It returns j without typ, which was a slice of a scratch buffer.
func (v *Verifier) checkHeader(token string, sigBuf []byte) (j jws, err error) {
	buf := scratch.Get().(*[scratchBytes]byte)
	defer scratch.Put(buf)
	if j, err = splitDecodeJWS(token, sigBuf, buf[:maxHeaderBytes]); err != nil {
		return j, err
	}
	if !v.algs[j.alg] {
		return j, reject(ErrDisallowedAlgorithm, "")
	}
	var typBuf [64]byte
	var typ []byte
	if j.hasTyp {
		typ = typeKey(j.typ, typBuf[:])
	}
	if !v.types[string(typ)] {
		return j, reject(ErrWrongType, "")
	}
	j.typ = nil // a slice of buf
	return j, nil
}
