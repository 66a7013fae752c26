package extauth

import (
	"errors"
	"strings"

	segjson "github.com/segmentio/encoding/json"
)

// maxHeaderBytes bounds the decoded JOSE header.
const maxHeaderBytes = 4 << 10

// b64s is base64url without padding, refusing non-canonical encodings,
// so that a token has one spelling.
var b64s = b64.Strict()

// jws is a JWS in compact serialization (RFC 7515 §7.1), split but not
// verified.
type jws struct {
	alg, kid string
	typ      string
	hasTyp   bool
	// signingInput is ASCII(BASE64URL(header) || '.' || BASE64URL(payload)).
	signingInput string
	payload      string // BASE64URL(payload)
	sig          []byte
}

// splitJWS reports whether token has the shape of a JWS compact
// serialization: three base64url segments, the first a JSON object.
// It checks no more than that; parseJWS reads the header.
func splitJWS(token string) (header, payload, sig string, ok bool) {
	header, rest, ok1 := strings.Cut(token, ".")
	payload, sig, ok2 := strings.Cut(rest, ".")
	if !ok1 || !ok2 || strings.Contains(sig, ".") || len(header) < 4 || payload == "" {
		return "", "", "", false
	}
	// The header's first decoded byte must open a JSON object.
	var first [3]byte
	if n, err := b64.Decode(first[:], []byte(header[:4])); err != nil || n < 1 || first[0] != '{' {
		return "", "", "", false
	}
	return header, payload, sig, true
}

// LooksLikeJWT reports whether token has the shape of a signed JWT (a JWS
// in compact serialization, RFC 7515 §7.1): three base64url segments
// separated by dots, the first a JSON object. It verifies nothing.
func LooksLikeJWT(token string) bool {
	_, _, _, ok := splitJWS(token)
	return ok
}

// parseJWS splits and decodes a compact JWS. The header must name alg;
// crit (RFC 7515 §4.1.11), b64 (RFC 7797), zip and enc (JWE) are refused,
// since this verifier implements none of them. Keys embedded in the
// header (jwk, jku, x5u, x5c) are never used.
func parseJWS(token string) (*jws, error) {
	h64, p64, s64, ok := splitJWS(token)
	if !ok {
		return nil, reject(ErrMalformed, "not a JWS compact serialization")
	}
	if b64s.DecodedLen(len(h64)) > maxHeaderBytes {
		return nil, reject(ErrMalformed, "JOSE header too large")
	}
	hb, err := b64s.DecodeString(h64)
	if err != nil {
		return nil, reject(ErrMalformed, "JOSE header is not base64url")
	}
	sig, err := b64s.DecodeString(s64)
	if err != nil {
		return nil, reject(ErrMalformed, "signature is not base64url")
	}
	j := &jws{signingInput: token[:len(h64)+1+len(p64)], payload: p64, sig: sig}
	if err := j.parseHeader(hb); err != nil {
		return nil, err
	}
	return j, nil
}

// parseHeader reads the JOSE header (RFC 7515 §4.1): alg, kid and typ,
// which must be strings, and the parameters that refuse the token.
func (j *jws) parseHeader(hb []byte) error {
	if !segjson.Valid(hb) {
		return reject(ErrMalformed, "JOSE header is not JSON")
	}
	var hasAlg bool
	err := eachMember(hb, func(key []byte, _ string, raw []byte) error {
		var dst *string
		switch string(key) {
		case "alg":
			dst, hasAlg = &j.alg, true
		case "kid":
			dst = &j.kid
		case "typ":
			dst, j.hasTyp = &j.typ, true
		case "crit", "b64", "zip", "enc":
			return reject(ErrMalformed, "JOSE header parameter "+string(key)+" is not supported")
		default:
			return nil
		}
		s, ok := rawString(raw)
		if !ok {
			return reject(ErrMalformed, "JOSE header "+string(key)+" is not a string")
		}
		*dst = s
		return nil
	})
	var r *rejection
	switch {
	case errors.As(err, &r):
		return err
	case err != nil:
		return reject(ErrMalformed, "JOSE header is not a JSON object")
	case !hasAlg || j.alg == "":
		return reject(ErrMalformed, "JOSE header has no alg")
	}
	return nil
}

// normType lowercases a media type and drops "application/", which
// RFC 7515 §4.1.9 lets typ omit.
func normType(t string) string {
	t = strings.ToLower(strings.TrimSpace(t))
	return strings.TrimPrefix(t, "application/")
}
