// Package jwtkeys generates, serializes and uses the signing keys of JWT
// access tokens (RFC 9068), and reads and writes JWK Sets (RFC 7517).
package jwtkeys

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	oauth "github.com/mcp-oauth/oauth"
	"github.com/mcp-oauth/oauth/internal/sealbox"
	"github.com/mcp-oauth/oauth/storage"
)

// Supported JWS algorithms (RFC 7518 §3.4, RFC 8037 §3.1).
const (
	ES256 = "ES256"
	EdDSA = "EdDSA"
)

// TokenType is the JOSE "typ" header of access tokens, RFC 9068 §2.1.
const TokenType = "at+jwt"

// Generate creates a new key for alg, identified by the RFC 7638 thumbprint
// of its public key, created at now.
func Generate(alg string, now time.Time) (*storage.KeyRecord, error) {
	var priv crypto.Signer
	var err error
	switch alg {
	case ES256:
		priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case EdDSA:
		_, priv, err = ed25519.GenerateKey(rand.Reader)
	default:
		return nil, fmt.Errorf("jwtkeys: unsupported algorithm %q", alg)
	}
	if err != nil {
		return nil, fmt.Errorf("jwtkeys: generate %s key: %w", alg, err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, fmt.Errorf("jwtkeys: marshal key: %w", err)
	}
	jwk, err := publicJWK(alg, "", priv.Public())
	if err != nil {
		return nil, err
	}
	return &storage.KeyRecord{ID: thumbprint(jwk), Algorithm: alg, Private: der, CreatedAt: now}, nil
}

// Key is a parsed signing key.
type Key struct {
	ID        string
	Algorithm string
	Private   crypto.Signer // nil for a verification-only key
	Public    crypto.PublicKey
	RetiredAt time.Time
	// sealKey encrypts and opens sealed claims (see Claims.SealedExtra);
	// derived from the private key, so nil for a verification-only key.
	sealKey []byte
}

// sealInfo is the HKDF info of the sealed-claims key of a signing key.
const sealInfo = "mcpauth sealed claims v1 "

// Parse decodes a stored key.
func Parse(r *storage.KeyRecord) (*Key, error) {
	k, err := x509.ParsePKCS8PrivateKey(r.Private)
	if err != nil {
		return nil, fmt.Errorf("jwtkeys: parse key %s: %w", r.ID, err)
	}
	signer, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("jwtkeys: key %s is not a signer", r.ID)
	}
	switch signer.(type) {
	case *ecdsa.PrivateKey:
		if r.Algorithm != ES256 {
			return nil, fmt.Errorf("jwtkeys: key %s: algorithm %q does not fit an EC key", r.ID, r.Algorithm)
		}
	case ed25519.PrivateKey:
		if r.Algorithm != EdDSA {
			return nil, fmt.Errorf("jwtkeys: key %s: algorithm %q does not fit an Ed25519 key", r.ID, r.Algorithm)
		}
	default:
		return nil, fmt.Errorf("jwtkeys: key %s has an unsupported type", r.ID)
	}
	// The key that seals claims is derived from the private key (RFC 5869
	// HKDF-SHA256, the kid in the info), so it rotates with it and no
	// holder of the public key alone (a remote resource server) has it.
	sk, err := hkdf.Key(sha256.New, r.Private, nil, sealInfo+r.ID, 32)
	if err != nil {
		return nil, fmt.Errorf("jwtkeys: key %s: %w", r.ID, err)
	}
	return &Key{ID: r.ID, Algorithm: r.Algorithm, Private: signer, Public: signer.Public(), RetiredAt: r.RetiredAt, sealKey: sk}, nil
}

func method(alg string) jwt.SigningMethod {
	switch alg {
	case ES256:
		return jwt.SigningMethodES256
	case EdDSA:
		return jwt.SigningMethodEdDSA
	}
	return nil
}

// Claims are the claims of an access token: the RFC 9068 §2.2 set plus
// "gid", the grant the token belongs to.
type Claims struct {
	jwt.RegisteredClaims
	// ClientID (client_id) is the client the token was issued to.
	ClientID string `json:"client_id"`
	// Scope (scope) is the space-separated list of granted scopes.
	Scope string `json:"scope,omitempty"`
	// GrantID (gid) identifies the grant; revoking it stops the token.
	GrantID string `json:"gid"`
	// Extra are the custom claims, beside the ones above; a name for
	// which Reserved is true is refused when signing and ignored when
	// parsing.
	Extra map[string]any `json:"-"`
	// SealedExtra are custom claims the client must not read: Sign seals
	// them, as JSON, with AES-256-GCM under a key derived from the signing
	// key, the token's jti as additional data, into the one claim
	// mcpauth_sealed; Verify opens them into Extra (a verifier with only
	// public keys leaves them out). Names are checked as Extra's, and must
	// not repeat one of Extra.
	SealedExtra map[string]any `json:"-"`
	// Sealed is the mcpauth_sealed claim: base64url of nonce and
	// ciphertext.
	Sealed string `json:"mcpauth_sealed,omitempty"`
	// Act is the RFC 8693 §4.1 actor claim of an exchanged token.
	Act map[string]any `json:"act,omitempty"`
	// GrantClient (mcpauth_gc) is the client of the grant an exchanged
	// token belongs to, which is not the client it was issued to.
	GrantClient string `json:"mcpauth_gc,omitempty"`
}

// reserved are the registered claims of RFC 7519 §4.1, the JWT access
// token claims of RFC 9068 §2.2, the claims of RFC 8693 §4 (act, may_act)
// and RFC 7800 §3.1 (cnf), which carry security meaning to resource
// servers, and this library's gid.
var reserved = map[string]bool{
	"iss": true, "sub": true, "aud": true, "exp": true, "nbf": true, "iat": true, "jti": true,
	"client_id": true, "scope": true, "auth_time": true, "acr": true, "amr": true,
	"azp": true, "nonce": true, "act": true, "may_act": true, "cnf": true,
	"gid": true,
}

// Reserved reports whether a custom claim may not have name: it is one of
// the registered or security-relevant claims above, or begins with
// "mcpauth" (kept for this library), in any letter case (encoding/json
// matches names case-insensitively, Unicode folding included, so "Sub"
// or "ſub" must not pass for a custom claim).
func Reserved(name string) bool {
	for r := range reserved {
		if strings.EqualFold(name, r) {
			return true
		}
	}
	return hasFoldPrefix(name, "mcpauth")
}

// hasFoldPrefix reports whether s begins with prefix under Unicode case
// folding, rune by rune.
func hasFoldPrefix(s, prefix string) bool {
	n := 0
	for i := range s {
		if n == len([]rune(prefix)) {
			return strings.EqualFold(s[:i], prefix)
		}
		n++
	}
	return n == len([]rune(prefix)) && strings.EqualFold(s, prefix)
}

// structClaims are the JSON names of the fields of Claims, decoded by
// exact name only.
var structClaims = map[string]bool{"iss": true, "sub": true, "aud": true, "exp": true, "nbf": true, "iat": true,
	"jti": true, "client_id": true, "scope": true, "gid": true, "mcpauth_sealed": true,
	"act": true, "mcpauth_gc": true}

// claimsJSON is Claims without its methods, for encoding/json.
type claimsJSON Claims

// MarshalJSON implements json.Marshaler: the claims above, then Extra.
func (c Claims) MarshalJSON() ([]byte, error) {
	b, err := json.Marshal(claimsJSON(c))
	if err != nil || len(c.Extra) == 0 {
		return b, err
	}
	for name := range c.Extra {
		if Reserved(name) {
			return nil, fmt.Errorf("jwtkeys: custom claim %q: %w", name, oauth.ErrReservedClaim)
		}
	}
	extra, err := json.Marshal(c.Extra)
	if err != nil {
		return nil, fmt.Errorf("jwtkeys: custom claims: %w", err)
	}
	// Both are non-empty JSON objects: splice them.
	out := make([]byte, 0, len(b)+len(extra))
	out = append(out, b[:len(b)-1]...)
	out = append(out, ',')
	return append(out, extra[1:]...), nil
}

// UnmarshalJSON implements json.Unmarshaler: the claims above, by their
// exact names (encoding/json alone would also take "Sub" for sub), and
// every other claim not Reserved into Extra.
func (c *Claims) UnmarshalJSON(b []byte) error {
	var all map[string]json.RawMessage
	if err := json.Unmarshal(b, &all); err != nil {
		return err
	}
	exact := make(map[string]json.RawMessage, len(structClaims))
	for name, raw := range all {
		if structClaims[name] {
			exact[name] = raw
		}
	}
	eb, err := json.Marshal(exact)
	if err != nil {
		return err
	}
	*c = Claims{}
	if err := json.Unmarshal(eb, (*claimsJSON)(c)); err != nil {
		return err
	}
	for name, raw := range all {
		if Reserved(name) {
			continue
		}
		var v any
		if err := json.Unmarshal(raw, &v); err != nil {
			return err
		}
		if c.Extra == nil {
			c.Extra = map[string]any{}
		}
		c.Extra[name] = v
	}
	return nil
}

// Sign returns the compact JWS of claims signed by k with typ "at+jwt".
func (k *Key) Sign(c *Claims) (string, error) {
	if k.Private == nil {
		return "", errors.New("jwtkeys: key has no private part")
	}
	if len(c.SealedExtra) > 0 {
		sealed, err := k.sealClaims(c.ID, c.Extra, c.SealedExtra)
		if err != nil {
			return "", err
		}
		cc := *c
		cc.Sealed = sealed
		c = &cc
	}
	t := jwt.NewWithClaims(method(k.Algorithm), c)
	t.Header["kid"] = k.ID
	t.Header["typ"] = TokenType
	s, err := t.SignedString(k.Private)
	if err != nil {
		return "", fmt.Errorf("jwtkeys: sign: %w", err)
	}
	return s, nil
}

// ErrUnknownKey is returned by Verify when the token names a kid that the
// lookup does not know; callers may refresh their key set and retry.
var ErrUnknownKey = errors.New("jwtkeys: unknown key id")

// Verifier checks access tokens for one issuer and audience.
type Verifier struct {
	// Issuer is the required "iss".
	Issuer string
	// Audiences are the accepted "aud" values (RFC 8707 resources): a
	// token must name one of them.
	Audiences []string
	// Lookup returns the verification key for a kid, or nil.
	Lookup func(kid string) *Key
	// Leeway tolerates clock skew on exp, nbf and iat.
	Leeway time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Verify parses and checks a compact JWS: signature by a known key whose
// algorithm matches the header, typ "at+jwt", iss, aud, an exp in the future,
// and the presence of sub, client_id, gid and jti.
func (v *Verifier) Verify(token string) (*Claims, error) {
	var c Claims
	opts := []jwt.ParserOption{
		jwt.WithValidMethods([]string{ES256, EdDSA}),
		jwt.WithIssuer(v.Issuer),
		jwt.WithAudience(v.Audiences...),
		jwt.WithExpirationRequired(),
		jwt.WithLeeway(v.Leeway),
	}
	if v.Now != nil {
		opts = append(opts, jwt.WithTimeFunc(v.Now))
	}
	var key *Key
	_, err := jwt.ParseWithClaims(token, &c, func(t *jwt.Token) (any, error) {
		if typ, _ := t.Header["typ"].(string); typ != TokenType && typ != "application/"+TokenType {
			return nil, errors.New("jwtkeys: not an access token (typ)")
		}
		kid, _ := t.Header["kid"].(string)
		k := v.Lookup(kid)
		if k == nil {
			return nil, ErrUnknownKey
		}
		if t.Method.Alg() != k.Algorithm {
			return nil, errors.New("jwtkeys: algorithm does not match key")
		}
		key = k
		return k.Public, nil
	}, opts...)
	if err != nil {
		return nil, fmt.Errorf("jwtkeys: %w", err)
	}
	if c.Subject == "" || c.ClientID == "" || c.GrantID == "" || c.ID == "" {
		return nil, errors.New("jwtkeys: token lacks sub, client_id, gid or jti")
	}
	if c.Sealed != "" && key.sealKey != nil {
		if err := key.openClaims(&c); err != nil {
			return nil, err
		}
	}
	c.Sealed = ""
	return &c, nil
}

// AccessToken converts verified claims to the domain type.
func (c *Claims) AccessToken(token string) *oauth.AccessToken {
	at := &oauth.AccessToken{Token: token, ID: c.ID, ClientID: c.ClientID, GrantID: c.GrantID, Subject: c.Subject,
		Scopes: strings.Fields(c.Scope), Claims: c.Extra, Act: c.Act}
	if len(c.Audience) > 0 {
		at.Resource = c.Audience[0]
	}
	if c.IssuedAt != nil {
		at.IssuedAt = c.IssuedAt.Time
	}
	if c.ExpiresAt != nil {
		at.ExpiresAt = c.ExpiresAt.Time
	}
	return at
}

// JWK is one JSON Web Key (RFC 7517 §4) of a public signing key.
type JWK struct {
	Kty string `json:"kty"`
	Crv string `json:"crv"`
	X   string `json:"x"`
	Y   string `json:"y,omitempty"`
	Kid string `json:"kid,omitempty"`
	Use string `json:"use,omitempty"`
	Alg string `json:"alg,omitempty"`
}

// JWKSet is a JWK Set (RFC 7517 §5).
type JWKSet struct {
	Keys []JWK `json:"keys"`
}

var b64 = base64.RawURLEncoding

func publicJWK(alg, kid string, pub crypto.PublicKey) (JWK, error) {
	switch p := pub.(type) {
	case *ecdsa.PublicKey:
		ecdh, err := p.ECDH()
		if err != nil {
			return JWK{}, fmt.Errorf("jwtkeys: %w", err)
		}
		raw := ecdh.Bytes() // 0x04 || X || Y, 32 bytes each for P-256
		return JWK{Kty: "EC", Crv: "P-256", X: b64.EncodeToString(raw[1:33]), Y: b64.EncodeToString(raw[33:]), Kid: kid, Use: "sig", Alg: alg}, nil
	case ed25519.PublicKey:
		return JWK{Kty: "OKP", Crv: "Ed25519", X: b64.EncodeToString(p), Kid: kid, Use: "sig", Alg: alg}, nil
	}
	return JWK{}, errors.New("jwtkeys: unsupported public key type")
}

// thumbprint is the RFC 7638 JWK thumbprint (SHA-256, base64url).
func thumbprint(j JWK) string {
	var m string
	if j.Kty == "EC" {
		m = fmt.Sprintf(`{"crv":%q,"kty":%q,"x":%q,"y":%q}`, j.Crv, j.Kty, j.X, j.Y)
	} else {
		m = fmt.Sprintf(`{"crv":%q,"kty":%q,"x":%q}`, j.Crv, j.Kty, j.X)
	}
	sum := sha256.Sum256([]byte(m))
	return b64.EncodeToString(sum[:])
}

// MarshalJWKS returns the JWK Set of the public parts of keys.
func MarshalJWKS(keys []*Key) ([]byte, error) {
	set := JWKSet{Keys: []JWK{}}
	for _, k := range keys {
		j, err := publicJWK(k.Algorithm, k.ID, k.Public)
		if err != nil {
			return nil, err
		}
		set.Keys = append(set.Keys, j)
	}
	return json.Marshal(set)
}

// MaxJWKSBytes bounds a JWK Set read from the network.
const MaxJWKSBytes = 64 << 10

// ParseJWKS decodes a JWK Set into verification keys. Keys that are not
// signature keys of a supported type are skipped; malformed ones are errors.
func ParseJWKS(data []byte) ([]*Key, error) {
	if len(data) > MaxJWKSBytes {
		return nil, errors.New("jwtkeys: JWK Set too large")
	}
	var set JWKSet
	if err := json.Unmarshal(data, &set); err != nil {
		return nil, fmt.Errorf("jwtkeys: decode JWK Set: %w", err)
	}
	var out []*Key
	for _, j := range set.Keys {
		if j.Use != "" && j.Use != "sig" {
			continue
		}
		x, err := b64.DecodeString(j.X)
		if err != nil {
			return nil, fmt.Errorf("jwtkeys: key %q: bad x", j.Kid)
		}
		switch {
		case j.Kty == "EC" && j.Crv == "P-256" && (j.Alg == "" || j.Alg == ES256):
			y, err := b64.DecodeString(j.Y)
			if err != nil || len(x) != 32 || len(y) != 32 {
				return nil, fmt.Errorf("jwtkeys: key %q: bad EC coordinates", j.Kid)
			}
			raw := append(append([]byte{4}, x...), y...)
			pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), raw)
			if err != nil {
				return nil, fmt.Errorf("jwtkeys: key %q: %w", j.Kid, err)
			}
			out = append(out, &Key{ID: j.Kid, Algorithm: ES256, Public: pub})
		case j.Kty == "OKP" && j.Crv == "Ed25519" && (j.Alg == "" || j.Alg == EdDSA):
			if len(x) != ed25519.PublicKeySize {
				return nil, fmt.Errorf("jwtkeys: key %q: bad Ed25519 key", j.Kid)
			}
			out = append(out, &Key{ID: j.Kid, Algorithm: EdDSA, Public: ed25519.PublicKey(x)})
		}
	}
	return out, nil
}

// sealClaims returns the mcpauth_sealed claim holding claims, for the
// token jti; plain are the token's other custom claims, which no sealed
// name may repeat.
func (k *Key) sealClaims(jti string, plain, claims map[string]any) (string, error) {
	for name := range claims {
		if Reserved(name) {
			return "", fmt.Errorf("jwtkeys: custom claim %q: %w", name, oauth.ErrReservedClaim)
		}
		if _, dup := plain[name]; dup {
			return "", fmt.Errorf("jwtkeys: claim %q is both sealed and plain", name)
		}
	}
	pt, err := json.Marshal(claims)
	if err != nil {
		return "", fmt.Errorf("jwtkeys: sealed claims: %w", err)
	}
	b, err := sealbox.New(k.sealKey)
	if err != nil {
		return "", fmt.Errorf("jwtkeys: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b.Seal(nil, pt, []byte(jti))), nil
}

// openClaims opens c.Sealed into c.Extra.
func (k *Key) openClaims(c *Claims) error {
	raw, err := base64.RawURLEncoding.DecodeString(c.Sealed)
	if err != nil {
		return errors.New("jwtkeys: malformed sealed claims")
	}
	b, err := sealbox.New(k.sealKey)
	if err != nil {
		return fmt.Errorf("jwtkeys: %w", err)
	}
	pt, err := b.Open(raw, []byte(c.ID))
	if err != nil {
		return errors.New("jwtkeys: sealed claims do not open")
	}
	var sealed map[string]any
	if err := json.Unmarshal(pt, &sealed); err != nil {
		return fmt.Errorf("jwtkeys: sealed claims: %w", err)
	}
	for name, v := range sealed {
		if Reserved(name) {
			continue
		}
		if c.Extra == nil {
			c.Extra = make(map[string]any, len(sealed))
		}
		c.Extra[name] = v
	}
	return nil
}
