package extauth

import (
	"errors"
	"strings"
	"unicode/utf8"
	"unsafe"

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
	// typ is the typ header's value, unescaped; hasTyp says whether there
	// is one.
	typ    []byte
	hasTyp bool
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
	j, err := splitDecodeJWS(token, nil, nil)
	if err != nil {
		return nil, err
	}
	return &j, nil
}

// splitDecodeJWS is parseJWS, decoding the signature into sigBuf and the
// header into hdrBuf when they fit (else into new slices), so that
// verifyJWT can keep the first on its stack and the second in its scratch
// buffer. j.typ may be a slice of hdrBuf.
func splitDecodeJWS(token string, sigBuf, hdrBuf []byte) (j jws, err error) {
	h64, p64, s64, ok := splitJWS(token)
	if !ok {
		return j, reject(ErrMalformed, "not a JWS compact serialization")
	}
	if b64s.DecodedLen(len(h64)) > maxHeaderBytes {
		return j, reject(ErrMalformed, "JOSE header too large")
	}
	hb, err := decodeInto(hdrBuf, h64)
	if err != nil {
		return j, reject(ErrMalformed, "JOSE header is not base64url")
	}
	sig, err := decodeInto(sigBuf, s64)
	if err != nil {
		return j, reject(ErrMalformed, "signature is not base64url")
	}
	j.signingInput, j.payload, j.sig = token[:len(h64)+1+len(p64)], p64, sig
	if err := j.parseHeader(hb); err != nil {
		return j, err
	}
	return j, nil
}

// decodeInto decodes the base64url s (strictly, as b64s) into buf when it
// fits, else into a new slice.
func decodeInto(buf []byte, s string) ([]byte, error) {
	if n := b64s.DecodedLen(len(s)); n > len(buf) {
		buf = make([]byte, n)
	}
	// Decode only reads its source: the token is not copied.
	n, err := b64s.Decode(buf, unsafe.Slice(unsafe.StringData(s), len(s)))
	if err != nil {
		return nil, err
	}
	return buf[:n:n], nil
}

// parseHeader reads the JOSE header (RFC 7515 §4.1): alg, kid and typ,
// which must be strings, and the parameters that refuse the token.
func (j *jws) parseHeader(hb []byte) error {
	if !segjson.Valid(hb) {
		return reject(ErrMalformed, "JOSE header is not JSON")
	}
	var hasAlg bool
	err := eachMember(hb, func(key []byte, _ string, raw []byte) error {
		switch string(key) {
		case "alg", "kid", "typ":
		case "crit", "b64", "zip", "enc":
			return reject(ErrMalformed, "JOSE header parameter "+string(key)+" is not supported")
		default:
			return nil
		}
		s, ok := rawStringBytes(raw)
		if !ok {
			return reject(ErrMalformed, "JOSE header "+string(key)+" is not a string")
		}
		switch key[0] {
		case 'a':
			j.alg, hasAlg = algName(s), true
		case 'k':
			j.kid = string(s)
		default:
			j.typ, j.hasTyp = s, true
		}
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

// algName returns alg as a string: one of the constants of this package
// when it is one, so that the common case allocates nothing.
func algName(alg []byte) string {
	for _, a := range [...]string{RS256, PS256, ES256, EdDSA, RS384, RS512, PS384, PS512, ES384, ES512} {
		if string(alg) == a {
			return a
		}
	}
	return string(alg)
}

// normType lowercases a media type and drops "application/", which
// RFC 7515 §4.1.9 lets typ omit.
func normType(t string) string {
	t = strings.ToLower(strings.TrimSpace(t))
	return strings.TrimPrefix(t, "application/")
}

// typeKey returns normType(string(typ)) in buf when typ is ASCII and fits,
// without allocating; else normType's answer, as bytes.
func typeKey(typ, buf []byte) []byte {
	if len(typ) > len(buf) || !isASCII(typ) {
		return []byte(normType(string(typ)))
	}
	// strings.TrimSpace and ToLower, on ASCII.
	for len(typ) > 0 && asciiSpace(typ[0]) {
		typ = typ[1:]
	}
	for len(typ) > 0 && asciiSpace(typ[len(typ)-1]) {
		typ = typ[:len(typ)-1]
	}
	t := buf[:len(typ)]
	for i, c := range typ {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		t[i] = c
	}
	if p := "application/"; len(t) >= len(p) && string(t[:len(p)]) == p {
		t = t[len(p):]
	}
	return t
}

func isASCII(b []byte) bool {
	for _, c := range b {
		if c >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// asciiSpace reports the ASCII bytes strings.TrimSpace trims.
func asciiSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r'
}
