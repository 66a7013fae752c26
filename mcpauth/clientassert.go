package mcpauth

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"

	oauth "github.com/mcp-oauth/oauth"
	"github.com/mcp-oauth/oauth/internal/replay"
)

// ClientAssertionType is the client_assertion_type of a JWT client
// assertion (RFC 7523 §2.2).
const ClientAssertionType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

// Limits of client assertions (RFC 7523 §3).
const (
	maxClientAssertion = 8 << 10
	// maxClientAssertionLifetime bounds exp − now, and so how long a jti
	// is remembered.
	maxClientAssertionLifetime = 5 * time.Minute
	assertionSkew              = 30 * time.Second
	maxJWKSBytes               = 64 << 10
	jwksTTL                    = 5 * time.Minute
	jwksRefetch                = 30 * time.Second
	maxJWKSCached              = 1024
)

// assertionAlgorithms are the JWS algorithms a client may sign with:
// never none, never HMAC (a client's keys are public).
var assertionAlgorithms = []jose.SignatureAlgorithm{jose.RS256, jose.PS256, jose.ES256, jose.EdDSA}

// KeyFetcher fetches a client's jwks_uri document (RFC 7591 §2): an https
// GET through the same guard as Client ID Metadata Documents (public
// addresses only, no redirects, bounded time and size).
type KeyFetcher func(ctx context.Context, url string, maxBytes int64) ([]byte, error)

// clientKeys caches the JWK Sets of jwks_uri documents.
type clientKeys struct {
	fetch KeyFetcher
	mu    sync.Mutex
	sets  map[string]*cachedKeys
}

type cachedKeys struct {
	set     *jose.JSONWebKeySet
	fetched time.Time
}

// keysOf returns client's public keys: its inline jwks, or its jwks_uri
// document (cached for jwksTTL; fetched again, at most every jwksRefetch,
// when refresh is set because no key matched).
func (k *clientKeys) keysOf(ctx context.Context, c *oauth.Client, refresh bool, now time.Time) (*jose.JSONWebKeySet, error) {
	if c.JWKS != "" {
		return parseJWKS([]byte(c.JWKS))
	}
	if c.JWKSURI == "" || k.fetch == nil {
		return nil, errors.New("the client has no keys")
	}
	k.mu.Lock()
	e := k.sets[c.JWKSURI]
	k.mu.Unlock()
	if e != nil && now.Sub(e.fetched) < jwksTTL && (!refresh || now.Sub(e.fetched) < jwksRefetch) {
		return e.set, nil
	}
	body, err := k.fetch(ctx, c.JWKSURI, maxJWKSBytes)
	if err != nil {
		if e != nil && now.Sub(e.fetched) < 24*time.Hour {
			return e.set, nil // stale keys beat none while the document is down
		}
		return nil, fmt.Errorf("jwks_uri: %w", err)
	}
	set, err := parseJWKS(body)
	if err != nil {
		return nil, fmt.Errorf("jwks_uri: %w", err)
	}
	k.mu.Lock()
	if len(k.sets) >= maxJWKSCached {
		clear(k.sets)
	}
	k.sets[c.JWKSURI] = &cachedKeys{set: set, fetched: now}
	k.mu.Unlock()
	return set, nil
}

// parseJWKS parses a JWK Set of public signing keys (RFC 7517 §5); a set
// with private key material, or without a usable key, is refused.
func parseJWKS(b []byte) (*jose.JSONWebKeySet, error) {
	if len(b) > maxJWKSBytes {
		return nil, errors.New("the JWK Set is too large")
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(b, &set); err != nil {
		return nil, fmt.Errorf("the JWK Set does not parse: %w", err)
	}
	usable := 0
	for i := range set.Keys {
		k := &set.Keys[i]
		if !k.IsPublic() {
			return nil, errors.New("the JWK Set holds private key material")
		}
		if k.Use == "" || k.Use == "sig" {
			usable++
		}
	}
	if usable == 0 {
		return nil, errors.New("the JWK Set has no signing key")
	}
	return &set, nil
}

// fits reports whether key k may verify a signature of alg: its type and
// curve match, RSA keys have at least 2048 bits, and its use and alg, when
// set, allow it.
func fits(k *jose.JSONWebKey, alg string) bool {
	if (k.Use != "" && k.Use != "sig") || (k.Algorithm != "" && k.Algorithm != alg) {
		return false
	}
	switch pk := k.Key.(type) {
	case *rsa.PublicKey:
		return (alg == string(jose.RS256) || alg == string(jose.PS256)) && pk.N.BitLen() >= 2048
	case *ecdsa.PublicKey:
		return alg == string(jose.ES256) && pk.Curve == elliptic.P256()
	case ed25519.PublicKey:
		return alg == string(jose.EdDSA)
	}
	return false
}

// assertionClaims are the claims RFC 7523 §3 requires.
type assertionClaims struct {
	Iss string          `json:"iss"`
	Sub string          `json:"sub"`
	Aud json.RawMessage `json:"aud"`
	Exp *float64        `json:"exp"`
	Nbf *float64        `json:"nbf"`
	Iat *float64        `json:"iat"`
	Jti string          `json:"jti"`
}

// assertionSubject returns the sub of an assertion without verifying it,
// to find its client when client_id is absent (RFC 7521 §4.2).
func assertionSubject(assertion string) string {
	jws, err := jose.ParseSignedCompact(assertion, assertionAlgorithms)
	if err != nil {
		return ""
	}
	var c assertionClaims
	if json.Unmarshal(jws.UnsafePayloadWithoutVerification(), &c) != nil {
		return ""
	}
	return c.Sub
}

// verifyClientAssertion authenticates client by a private_key_jwt
// assertion (RFC 7523 §2.2 and §3): signed by one of its keys with an
// allowed algorithm; iss and sub its client_id; aud the token endpoint
// (with or without a trailing slash) or the issuer; exp present, not past
// and at most five minutes ahead; nbf and iat not in the future; jti
// present and never seen before for this client. Failures are
// invalid_client, with a description that never quotes the assertion.
func (s *AuthorizationServer) verifyClientAssertion(ctx context.Context, client *oauth.Client, typ, assertion string) *oauth.Error {
	bad := func(why string) *oauth.Error {
		s.log.Info("mcpauth: client assertion refused", "client_id", client.ID, "reason", why)
		return oauth.ErrInvalidClient.WithDescription("client assertion refused: " + why)
	}
	switch {
	case typ != ClientAssertionType:
		return bad("client_assertion_type must be " + ClientAssertionType)
	case len(assertion) > maxClientAssertion:
		return bad("the assertion is too large")
	case client.TokenEndpointAuthMethod != oauth.AuthMethodPrivateKeyJWT:
		return bad("the client is not registered for private_key_jwt")
	}
	jws, err := jose.ParseSignedCompact(assertion, assertionAlgorithms)
	if err != nil || len(jws.Signatures) != 1 {
		return bad("the assertion is not a compact JWS with an allowed algorithm")
	}
	h := jws.Signatures[0].Header
	now := time.Now()
	var payload []byte
	for attempt := 0; attempt < 2 && payload == nil; attempt++ {
		set, err := s.clientKeys.keysOf(ctx, client, attempt == 1, now)
		if err != nil {
			return bad("the client's keys are unavailable")
		}
		var candidates []*jose.JSONWebKey
		for i := range set.Keys {
			k := &set.Keys[i]
			if (h.KeyID == "" || k.KeyID == h.KeyID) && fits(k, h.Algorithm) {
				candidates = append(candidates, k)
			}
		}
		if h.KeyID == "" && len(candidates) > 1 {
			return bad("the assertion names no kid and the client has several keys")
		}
		for _, k := range candidates {
			if p, err := jws.Verify(k.Key); err == nil {
				payload = p
				break
			}
		}
		if payload == nil && len(candidates) > 0 {
			return bad("bad signature")
		}
		if client.JWKS != "" {
			break // inline keys: nothing to refetch
		}
	}
	if payload == nil {
		return bad("no key of the client matches the assertion")
	}
	var c assertionClaims
	if err := json.Unmarshal(payload, &c); err != nil {
		return bad("the claims do not parse")
	}
	at := func(f *float64) time.Time { return time.Unix(0, int64(*f*1e9)) }
	switch {
	case c.Iss != client.ID || c.Sub != client.ID:
		return bad("iss and sub must be the client_id")
	case !s.assertionAudience(c.Aud):
		return bad("aud must be the token endpoint")
	case c.Exp == nil:
		return bad("exp is required")
	case !now.Before(at(c.Exp).Add(assertionSkew)):
		return bad("the assertion has expired")
	case at(c.Exp).After(now.Add(maxClientAssertionLifetime + assertionSkew)):
		return bad("exp is too far in the future")
	case c.Nbf != nil && at(c.Nbf).After(now.Add(assertionSkew)):
		return bad("the assertion is not valid yet")
	case c.Iat != nil && at(c.Iat).After(now.Add(assertionSkew)):
		return bad("iat is in the future")
	case c.Jti == "" || len(c.Jti) > 256:
		return bad("jti is required")
	}
	switch s.replays.Use("client\x00"+client.ID+"\x00"+c.Jti, at(c.Exp).Add(assertionSkew), now) {
	case replay.Replayed:
		return bad("the assertion was used before")
	case replay.Full:
		return oauth.ErrTemporarilyUnavailable.WithDescription("too many assertions in flight; try again")
	}
	return nil
}

// assertionAudience reports whether aud (a string or an array of strings)
// names this server: its token endpoint, with or without a trailing
// slash, or its issuer.
func (s *AuthorizationServer) assertionAudience(raw json.RawMessage) bool {
	var list []string
	var one string
	if json.Unmarshal(raw, &one) == nil {
		list = []string{one}
	} else if json.Unmarshal(raw, &list) != nil {
		return false
	}
	token := s.url(PathToken)
	for _, a := range list {
		if a == token || strings.TrimSuffix(a, "/") == token || strings.TrimSuffix(a, "/") == strings.TrimSuffix(s.opts.Issuer, "/") {
			return true
		}
	}
	return false
}
