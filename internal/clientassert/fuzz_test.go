package clientassert

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"errors"
	"strings"
	"testing"

	"github.com/mcp-oauth/oauth/internal/testclock"
)

// reasons are every sentinel an *Error may wrap.
var reasons = []error{ErrMalformed, ErrAssertionType, ErrAlgorithm, ErrUnknownKey, ErrSignature, ErrIssuer,
	ErrAudience, ErrExpired, ErrNotYetValid, ErrLifetime, ErrReplayed, ErrReplayCacheFull, ErrKeysUnavailable, ErrInvalidKeys}

// checkReason fails unless err is an *Error with a known reason whose
// text does not quote input.
func checkReason(t *testing.T, err error, input string) {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v (%T) is not an *Error", err, err)
	}
	known := false
	for _, r := range reasons {
		known = known || errors.Is(err, r)
	}
	if !known {
		t.Fatalf("error %v has no known reason", err)
	}
	if len(input) >= 16 && strings.Contains(err.Error(), input) {
		t.Fatalf("error text %q quotes the input", err)
	}
}

// FuzzVerify feeds arbitrary client_assertion values to the parser and
// the whole of Verify, with keys of every type inline.
func FuzzVerify(f *testing.F) {
	fk := fixtures()
	keys := KeySource{JWKS: jwks(f, jwk(f, fk.rsa, nil), jwk(f, fk.ec, nil), jwk(f, fk.ed, nil))}
	for _, s := range []string{
		assertion(f, "RS256", fk.rsa, claimsFor(clientA, t0)),
		assertion(f, "PS256", fk.rsa, claimsFor(clientA, t0)),
		assertion(f, "ES256", fk.ec, claimsFor(clientA, t0)),
		assertion(f, "EdDSA", fk.ed, claimsFor(clientA, t0)),
		signJWS(f, "none", nil, map[string]any{"alg": "none"}, claimsFor(clientA, t0)),
		signJWS(f, "HS256", []byte("k"), map[string]any{"alg": "HS256"}, claimsFor(clientA, t0)),
		signJWS(f, "ES256", fk.ec.priv, map[string]any{"alg": "ES256", "crit": []string{"x"}}, []byte(`{"iss":1}`)),
		"", ".", "..", "a.b.c", "a.b.c.d.e", "eyJ9.e30.", `{"payload":""}`,
	} {
		f.Add(s)
	}
	v := newVerifier(f, testclock.New(t0), nil)
	f.Fuzz(func(t *testing.T, s string) {
		if jws, err := v.parse(s); err != nil {
			checkReason(t, err, s)
		} else {
			alg := jws.Signatures[0].Header.Algorithm
			if !strings.Contains(strings.Join(DefaultAlgorithms(), " "), alg) || alg == "" {
				t.Fatalf("parse accepted alg %q", alg)
			}
			if _, err := parseClaims(jws.UnsafePayloadWithoutVerification()); err != nil {
				checkReason(t, err, s)
			}
		}
		if _, err := v.UnverifiedClientID(s); err != nil {
			checkReason(t, err, s)
		}
		if err := v.Verify(context.Background(), clientA, keys, AssertionType, s); err != nil {
			checkReason(t, err, s)
		}
	})
}

// FuzzParseClaims feeds arbitrary claims sets to the claims parser and
// checks.
func FuzzParseClaims(f *testing.F) {
	for _, s := range []string{
		`{"iss":"client-a","sub":"client-a","aud":"https://as.example/token","exp":1700000060,"iat":1700000000,"jti":"x"}`,
		`{"iss":"client-a","sub":"client-a","aud":["https://as.example"],"exp":1700000060.5,"nbf":1.7e9,"jti":"x"}`,
		`{"aud":null,"exp":null}`, `{"exp":"1"}`, `{"exp":-1}`, `{"exp":1e400}`, `{"iss":"a","iss":"b"}`, `[]`, `{`,
	} {
		f.Add([]byte(s))
	}
	v := newVerifier(f, testclock.New(t0), nil)
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := parseClaims(b)
		if err != nil {
			checkReason(t, err, string(b))
			return
		}
		if err := v.checkClaims(clientA, c, t0); err != nil {
			checkReason(t, err, string(b))
			return
		}
		if c.Exp == nil || c.Jti == nil || *c.Jti == "" || *c.Iss != clientA || *c.Sub != clientA {
			t.Fatalf("checkClaims accepted %s", b)
		}
	})
}

// FuzzParseKeySet feeds arbitrary JWK Set documents to the key-set
// parser and ValidateKeys: no panic, no private or symmetric key kept,
// every key kept fits an allowed algorithm.
func FuzzParseKeySet(f *testing.F) {
	fk := fixtures()
	for _, b := range [][]byte{
		jwks(f, jwk(f, fk.rsa, nil), jwk(f, fk.ec, map[string]any{"use": "sig"}), jwk(f, fk.ed, map[string]any{"alg": "EdDSA"})),
		jwks(f, jwk(f, fk.ec384, nil), jwk(f, fk.rsa, map[string]any{"use": "enc"}), jwk(f, fk.ec, map[string]any{"key_ops": []string{"verify"}})),
		jwks(f, privateJWK(f, fk.ec)),
		jwks(f, privateJWK(f, fk.ed)),
		jwks(f, map[string]any{"kty": "oct", "k": "AA"}),
		[]byte(`{"keys":[]}`), []byte(`{"keys":[{}]}`), []byte(`{"keys":[{"kty":"RSA","n":"AQAB","e":"AQAB"}]}`), []byte(`{`),
	} {
		f.Add(b)
	}
	v := newVerifier(f, testclock.New(t0), nil)
	f.Fuzz(func(t *testing.T, b []byte) {
		set, err := parseKeySet(b, supported)
		if err == nil {
			for _, k := range set.keys {
				switch pub := k.pub.(type) {
				case *rsa.PublicKey:
					if pub.N.BitLen() < minRSABits {
						t.Fatalf("kept a %d-bit RSA key", pub.N.BitLen())
					}
				case *ecdsa.PublicKey, ed25519.PublicKey:
				default:
					t.Fatalf("kept a %T", k.pub)
				}
				fits := false
				for _, a := range supported {
					fits = fits || k.fits(string(a))
				}
				if !fits {
					t.Fatal("kept a key that fits no algorithm")
				}
			}
		}
		if err := v.ValidateKeys(KeySource{JWKS: b}); err != nil {
			checkReason(t, err, "")
		}
	})
}
