package extauth

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"slices"

	"github.com/golang-jwt/jwt/v5"
)

// JWS algorithms (RFC 7518 §3.1, RFC 8037 §3.1) a Verifier can accept.
// HMAC (HS256, HS384, HS512) and "none" are not among them: a resource
// server holds no shared secret, and a public key must never be used as
// one (RFC 8725 §2.1, §3.1).
const (
	RS256 = "RS256"
	RS384 = "RS384"
	RS512 = "RS512"
	PS256 = "PS256"
	PS384 = "PS384"
	PS512 = "PS512"
	ES256 = "ES256"
	ES384 = "ES384"
	ES512 = "ES512"
	EdDSA = "EdDSA"
)

// DefaultAlgorithms returns the algorithms a Verifier accepts when
// Options.Algorithms is empty: RS256, PS256, ES256 and EdDSA, which
// Keycloak, Entra ID, Okta, Auth0, Google and zitadel sign with.
func DefaultAlgorithms() []string { return []string{RS256, PS256, ES256, EdDSA} }

// methods maps each supported algorithm to golang-jwt's implementation.
func method(alg string) jwt.SigningMethod {
	switch alg {
	case RS256:
		return jwt.SigningMethodRS256
	case RS384:
		return jwt.SigningMethodRS384
	case RS512:
		return jwt.SigningMethodRS512
	case PS256:
		return jwt.SigningMethodPS256
	case PS384:
		return jwt.SigningMethodPS384
	case PS512:
		return jwt.SigningMethodPS512
	case ES256:
		return jwt.SigningMethodES256
	case ES384:
		return jwt.SigningMethodES384
	case ES512:
		return jwt.SigningMethodES512
	case EdDSA:
		return jwt.SigningMethodEdDSA
	}
	return nil
}

// Limits on JWK Sets read from the network.
const (
	// MaxJWKSBytes bounds a JWK Set response.
	MaxJWKSBytes = 512 << 10
	// MaxKeys bounds the number of keys kept from one JWK Set.
	MaxKeys = 100
	// minRSABits is the smallest RSA modulus accepted (RFC 7518 §3.3).
	minRSABits = 2048
	maxRSABits = 8192
)

// key is one verification key of the issuer's JWK Set (RFC 7517 §4).
type key struct {
	kid string
	kty string // RSA, EC, OKP
	crv string // P-256, P-384, P-521, Ed25519; "" for RSA
	alg string // the JWK's alg, or "" when it names none
	pub crypto.PublicKey
}

// fits reports whether k may verify a signature of alg: its type and
// curve are those of alg, and its own alg, if any, is alg. This is what
// stops algorithm confusion: a token cannot choose how a key is used.
func (k *key) fits(alg string) bool {
	if k.alg != "" && k.alg != alg {
		return false
	}
	switch alg {
	case RS256, RS384, RS512, PS256, PS384, PS512:
		_, ok := k.pub.(*rsa.PublicKey)
		return ok && k.kty == "RSA"
	case ES256:
		return k.kty == "EC" && k.crv == "P-256"
	case ES384:
		return k.kty == "EC" && k.crv == "P-384"
	case ES512:
		return k.kty == "EC" && k.crv == "P-521"
	case EdDSA:
		_, ok := k.pub.(ed25519.PublicKey)
		return ok && k.kty == "OKP" && k.crv == "Ed25519"
	}
	return false
}

// rawJWK is the JSON of a JWK; only public parameters are read.
type rawJWK struct {
	Kty    string   `json:"kty"`
	Kid    string   `json:"kid"`
	Use    string   `json:"use"`
	Alg    string   `json:"alg"`
	KeyOps []string `json:"key_ops"`
	Crv    string   `json:"crv"`
	N      string   `json:"n"`
	E      string   `json:"e"`
	X      string   `json:"x"`
	Y      string   `json:"y"`
}

var b64 = base64.RawURLEncoding

// parseJWKS decodes a JWK Set (RFC 7517 §5) into verification keys. Keys
// that are not public signature keys of a supported type (symmetric "oct"
// keys, encryption keys, unknown curves) are skipped, and so are keys
// whose parameters are malformed, each reported in skipped; the set
// itself must be valid JSON with a "keys" array.
func parseJWKS(data []byte) (keys []*key, skipped []error, err error) {
	if len(data) > MaxJWKSBytes {
		return nil, nil, errors.New("JWK Set too large")
	}
	var set struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(data, &set); err != nil {
		return nil, nil, fmt.Errorf("decode JWK Set: %w", err)
	}
	if set.Keys == nil {
		return nil, nil, errors.New("JWK Set has no keys member")
	}
	for i, raw := range set.Keys {
		if len(keys) == MaxKeys {
			skipped = append(skipped, fmt.Errorf("keys after the first %d ignored", MaxKeys))
			break
		}
		var j rawJWK
		if err := json.Unmarshal(raw, &j); err != nil {
			skipped = append(skipped, fmt.Errorf("key %d: %w", i, err))
			continue
		}
		k, err := parseJWK(&j)
		if err != nil {
			skipped = append(skipped, fmt.Errorf("key %d (kid %q): %w", i, j.Kid, err))
			continue
		}
		if k != nil {
			keys = append(keys, k)
		}
	}
	return keys, skipped, nil
}

// parseJWK returns the verification key of j, nil for a key that is not
// for verifying signatures (skipped silently), or an error.
func parseJWK(j *rawJWK) (*key, error) {
	if j.Use != "" && j.Use != "sig" {
		return nil, nil
	}
	if j.KeyOps != nil && !slices.Contains(j.KeyOps, "verify") {
		return nil, nil
	}
	if len(j.Kid) > 256 {
		return nil, errors.New("kid too long")
	}
	k := &key{kid: j.Kid, kty: j.Kty, alg: j.Alg}
	if j.Alg != "" && method(j.Alg) == nil {
		return nil, nil // a key for an algorithm we do not verify (HS256, RSA-OAEP, ...)
	}
	switch j.Kty {
	case "RSA":
		n, err1 := b64.DecodeString(j.N)
		e, err2 := b64.DecodeString(j.E)
		if err1 != nil || err2 != nil || len(n) == 0 || len(e) == 0 || len(e) > 4 {
			return nil, errors.New("bad RSA parameters")
		}
		pub := &rsa.PublicKey{N: new(big.Int).SetBytes(n)}
		for _, b := range e {
			pub.E = pub.E<<8 | int(b)
		}
		if bits := pub.N.BitLen(); bits < minRSABits || bits > maxRSABits {
			return nil, fmt.Errorf("RSA key of %d bits", bits)
		}
		if pub.E < 3 || pub.E&1 == 0 || pub.E > 1<<31-1 {
			return nil, errors.New("bad RSA exponent")
		}
		k.pub = pub
	case "EC":
		var curve elliptic.Curve
		switch j.Crv {
		case "P-256":
			curve = elliptic.P256()
		case "P-384":
			curve = elliptic.P384()
		case "P-521":
			curve = elliptic.P521()
		default:
			return nil, nil
		}
		size := (curve.Params().BitSize + 7) / 8
		x, err1 := b64.DecodeString(j.X)
		y, err2 := b64.DecodeString(j.Y)
		if err1 != nil || err2 != nil || len(x) != size || len(y) != size {
			return nil, errors.New("bad EC coordinates")
		}
		pub, err := ecdsa.ParseUncompressedPublicKey(curve, append(append([]byte{4}, x...), y...))
		if err != nil {
			return nil, err
		}
		k.crv, k.pub = j.Crv, pub
	case "OKP":
		if j.Crv != "Ed25519" {
			return nil, nil
		}
		x, err := b64.DecodeString(j.X)
		if err != nil || len(x) != ed25519.PublicKeySize {
			return nil, errors.New("bad Ed25519 key")
		}
		k.crv, k.pub = j.Crv, ed25519.PublicKey(x)
	default:
		return nil, nil // "oct" and unknown types are never verification keys here
	}
	if k.alg != "" && !k.fits(k.alg) {
		return nil, fmt.Errorf("alg %q does not fit a %s %s key", k.alg, k.kty, k.crv)
	}
	return k, nil
}
