package clientassert

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"errors"
	"net"
	"net/url"
	"slices"
	"strings"

	"github.com/go-jose/go-jose/v4"
	gjson "github.com/go-jose/go-jose/v4/json"
)

// Limits on JWK Sets (RFC 7517 §5), inline or fetched from a jwks_uri.
const (
	// MaxJWKSBytes bounds a JWK Set document. A client needs a few keys;
	// 64 KiB holds dozens of RSA-4096 keys.
	MaxJWKSBytes = 64 << 10
	// MaxKeys bounds the number of keys in one JWK Set.
	MaxKeys = 100
	// MaxJWKSURIBytes bounds a jwks_uri.
	MaxJWKSURIBytes = 2048
	// minRSABits is the smallest RSA modulus accepted (RFC 7518 §3.3,
	// §3.5); go-jose refuses moduli above jose.MaxRSAModulusBits (4096).
	minRSABits = 2048
)

// KeySource is where a client's public keys are: its registered jwks
// (an inline JWK Set) or its jwks_uri (RFC 7591 §2, OIDC Dynamic Client
// Registration §2). Exactly one of the two is set.
type KeySource struct {
	// JWKS (jwks) is the client's JWK Set document, as registered.
	JWKS []byte
	// JWKSURI (jwks_uri) is the URL of the client's JWK Set document.
	JWKSURI string
}

// key is one public key that may verify client assertions.
type key struct {
	kid string
	alg string // the JWK's alg member (RFC 7517 §4.4), "" if absent
	pub crypto.PublicKey
}

// keySet is the usable keys of one JWK Set.
type keySet struct {
	keys []key
}

// privateMembers are the JWK members that carry private or symmetric key
// material (RFC 7518 §6.2.2, §6.3.2, §6.4.1; RFC 8037 §2; ML-DSA "priv").
var privateMembers = []string{"d", "p", "q", "dp", "dq", "qi", "oth", "k", "priv"}

// parseKeySet reads a JWK Set (RFC 7517 §5) and keeps the keys that can
// verify one of algs. A set that is not JSON, has duplicate members, more
// than MaxKeys keys, private or symmetric key material anywhere, is an
// error. Keys that are not for signatures (use other than sig, RFC 7517
// §4.2; key_ops without verify, §4.3), of a type or curve not supported,
// RSA below 2048 bits, or whose alg fits none of algs are skipped, as
// RFC 7517 §5 asks of keys an implementation does not understand.
func parseKeySet(b []byte, algs []jose.SignatureAlgorithm) (*keySet, error) {
	if len(b) > MaxJWKSBytes {
		return nil, errors.New("JWK Set larger than 64 KiB")
	}
	var doc struct {
		Keys *[]gjson.RawMessage `json:"keys"`
	}
	if err := gjson.Unmarshal(b, &doc); err != nil || doc.Keys == nil {
		return nil, errors.New("not a JWK Set: want a JSON object with a keys array")
	}
	if len(*doc.Keys) > MaxKeys {
		return nil, errors.New("JWK Set has more than 100 keys")
	}
	set := &keySet{}
	for _, raw := range *doc.Keys {
		var members map[string]gjson.RawMessage
		if err := gjson.Unmarshal(raw, &members); err != nil {
			return nil, errors.New("JWK Set holds a key that is not a JSON object, or has duplicate members")
		}
		for _, m := range privateMembers {
			if _, ok := members[m]; ok {
				return nil, errors.New("JWK Set holds private or symmetric key material")
			}
		}
		if string(members["kty"]) == `"oct"` {
			return nil, errors.New("JWK Set holds a symmetric key")
		}
		if !forSignatures(members) {
			continue
		}
		var jwk jose.JSONWebKey
		if jwk.UnmarshalJSON(raw) != nil {
			continue // unsupported type or curve, or invalid values
		}
		k := key{kid: jwk.KeyID, alg: jwk.Algorithm, pub: jwk.Key}
		if rk, ok := k.pub.(*rsa.PublicKey); ok && rk.N.BitLen() < minRSABits {
			continue
		}
		if slices.ContainsFunc(algs, func(a jose.SignatureAlgorithm) bool { return k.fits(string(a)) }) {
			set.keys = append(set.keys, k)
		}
	}
	return set, nil
}

// forSignatures reports whether a JWK's use and key_ops members, when
// present, allow verifying signatures (RFC 7517 §4.2, §4.3).
func forSignatures(members map[string]gjson.RawMessage) bool {
	if u, ok := members["use"]; ok && string(u) != `"sig"` {
		return false
	}
	if raw, ok := members["key_ops"]; ok {
		var ops []string
		if gjson.Unmarshal(raw, &ops) != nil || !slices.Contains(ops, "verify") {
			return false
		}
	}
	return true
}

// fits reports whether k may verify a signature made with alg: the key's
// type and curve are the ones alg is defined for (RFC 7518 §3.1, RFC
// 8037 §3.1), and the key's own alg member, if any, is alg (RFC 7517
// §4.4). This is what stops algorithm confusion (RFC 8725 §2.1).
func (k *key) fits(alg string) bool {
	if k.alg != "" && k.alg != alg {
		return false
	}
	switch pub := k.pub.(type) {
	case *rsa.PublicKey:
		switch jose.SignatureAlgorithm(alg) {
		case jose.RS256, jose.RS384, jose.RS512, jose.PS256, jose.PS384, jose.PS512:
			return true
		}
	case *ecdsa.PublicKey:
		switch jose.SignatureAlgorithm(alg) {
		case jose.ES256:
			return pub.Curve == elliptic.P256()
		case jose.ES384:
			return pub.Curve == elliptic.P384()
		case jose.ES512:
			return pub.Curve == elliptic.P521()
		}
	case ed25519.PublicKey:
		return alg == string(jose.EdDSA)
	}
	return false
}

// pick selects the key that verifies an assertion with the given kid
// and alg headers (RFC 7515 §4.1.4): the one key with that kid, or,
// without a kid, the one key that fits alg. Ambiguity is refused rather
// than resolved by trying several keys.
func (s *keySet) pick(kid, alg string) (*key, error) {
	var found *key
	named, fitting := 0, 0
	for i := range s.keys {
		k := &s.keys[i]
		if kid != "" && k.kid != kid {
			continue
		}
		named++
		if k.fits(alg) {
			fitting++
			found = k
		}
	}
	switch {
	case fitting == 1:
		return found, nil
	case fitting > 1 && kid != "":
		return nil, refuse(ErrUnknownKey, "several client keys share the assertion's kid")
	case fitting > 1:
		return nil, refuse(ErrUnknownKey, "the assertion names no kid and several client keys fit")
	case named > 0:
		return nil, refuse(ErrAlgorithm, "the assertion's alg does not fit the client's key")
	case kid != "":
		return nil, refuse(ErrUnknownKey, "no client key has the assertion's kid")
	}
	return nil, refuse(ErrUnknownKey, "the client has no usable signing key")
}

// ValidateKeys checks a client's registration metadata for
// private_key_jwt (RFC 7591 §2, RFC 7523 §2.2, OIDC Dynamic Client
// Registration §2): exactly one of jwks and jwks_uri; an inline jwks of
// at most MaxJWKSBytes that parses, holds no private or symmetric key
// material and at least one public key usable with the Verifier's
// algorithms; a jwks_uri that is an absolute https URL without userinfo
// or fragment (http to a loopback host only with
// Options.AllowHTTPLoopback). A jwks_uri is not fetched. Failures wrap
// ErrInvalidKeys.
func (v *Verifier) ValidateKeys(src KeySource) error {
	switch {
	case len(src.JWKS) > 0 && src.JWKSURI != "":
		return refuse(ErrInvalidKeys, "jwks and jwks_uri must not both be present")
	case src.JWKSURI != "":
		if err := checkJWKSURI(src.JWKSURI, v.opts.AllowHTTPLoopback); err != nil {
			return refuseWith(ErrInvalidKeys, "jwks_uri is not acceptable", err)
		}
		return nil
	case len(src.JWKS) == 0:
		return refuse(ErrInvalidKeys, "private_key_jwt needs jwks or jwks_uri")
	}
	set, err := parseKeySet(src.JWKS, v.algs)
	if err != nil {
		return refuseWith(ErrInvalidKeys, "jwks is not acceptable", err)
	}
	if len(set.keys) == 0 {
		return refuse(ErrInvalidKeys, "jwks holds no public key usable for signatures with an allowed algorithm")
	}
	return nil
}

// checkJWKSURI enforces what a jwks_uri must be before it is fetched: an
// absolute https URL with a host, no userinfo and no fragment (RFC 7591
// §2 asks for a URL that the server can retrieve; RFC 8414 §2 and OIDC
// Discovery require https for jwks_uri). With allowLoopback, http to
// localhost or a loopback address is also accepted, for tests.
func checkJWKSURI(s string, allowLoopback bool) error {
	if len(s) > MaxJWKSURIBytes {
		return errors.New("longer than 2048 bytes")
	}
	u, err := url.Parse(s)
	if err != nil || u.Host == "" || u.Opaque != "" || !u.IsAbs() {
		return errors.New("not an absolute URL with a host")
	}
	if u.User != nil || u.Fragment != "" || strings.Contains(s, "#") {
		return errors.New("must not contain userinfo or a fragment")
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		if allowLoopback && isLoopback(u.Hostname()) {
			return nil
		}
	}
	return errors.New("must be an https URL")
}

// isLoopback reports whether host names the local machine (RFC 8252
// §7.3, RFC 6761 §6.3).
func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
