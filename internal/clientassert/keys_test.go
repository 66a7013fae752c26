package clientassert

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/mcp-oauth/oauth/internal/testclock"
)

// TestValidateKeys covers the registration checks for private_key_jwt
// metadata (RFC 7591 §2).
func TestValidateKeys(t *testing.T) {
	fk := fixtures()
	set := func(keys ...map[string]any) KeySource { return KeySource{JWKS: jwks(t, keys...)} }
	uri := func(u string) KeySource { return KeySource{JWKSURI: u} }
	many := make([]map[string]any, MaxKeys+1)
	for i := range many {
		many[i] = jwk(t, fk.ed, map[string]any{"kid": fmt.Sprint(i)})
	}
	cases := []struct {
		name     string
		src      KeySource
		loopback bool
		ok       bool
	}{
		{name: "RSA", src: set(jwk(t, fk.rsa, nil)), ok: true},
		{name: "EC P-256", src: set(jwk(t, fk.ec, nil)), ok: true},
		{name: "Ed25519", src: set(jwk(t, fk.ed, nil)), ok: true},
		{name: "several", src: set(jwk(t, fk.rsa, nil), jwk(t, fk.ec, map[string]any{"use": "sig", "alg": "ES256"})), ok: true},
		{name: "unknown kty beside a good key", src: set(map[string]any{"kty": "XYZ"}, jwk(t, fk.rsa, nil)), ok: true},
		{name: "https jwks_uri", src: uri("https://client.example/.well-known/jwks.json"), ok: true},
		{name: "https jwks_uri with port and query", src: uri("https://client.example:8443/jwks?v=2"), ok: true},
		{name: "loopback http allowed", src: uri("http://127.0.0.1:9999/jwks"), loopback: true, ok: true},
		{name: "localhost http allowed", src: uri("http://localhost:9999/jwks"), loopback: true, ok: true},
		{name: "IPv6 loopback http allowed", src: uri("http://[::1]:9999/jwks"), loopback: true, ok: true},

		{name: "neither", src: KeySource{}},
		{name: "both", src: KeySource{JWKS: jwks(t, jwk(t, fk.rsa, nil)), JWKSURI: "https://client.example/jwks"}},
		{name: "not JSON", src: KeySource{JWKS: []byte("keys")}},
		{name: "a JSON array", src: KeySource{JWKS: []byte(`[{"kty":"RSA"}]`)}},
		{name: "no keys member", src: KeySource{JWKS: []byte(`{}`)}},
		{name: "keys not an array", src: KeySource{JWKS: []byte(`{"keys":{}}`)}},
		{name: "key not an object", src: KeySource{JWKS: []byte(`{"keys":[1]}`)}},
		{name: "empty set", src: set()},
		{name: "duplicate member", src: KeySource{JWKS: []byte(`{"keys":[{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo","x":"AA"}]}`)}},
		{name: "duplicate keys member", src: KeySource{JWKS: []byte(`{"keys":[],"keys":[]}`)}},
		{name: "RSA private key", src: set(privateJWK(t, fk.rsa))},
		{name: "EC private key", src: set(privateJWK(t, fk.ec))},
		{name: "Ed25519 private key", src: set(privateJWK(t, fk.ed))},
		{name: "private key beside a public one", src: set(jwk(t, fk.rsa, nil), privateJWK(t, fk.ec))},
		{name: "RSA key with only p", src: set(jwk(t, fk.rsa, map[string]any{"p": "AQAB"}))},
		{name: "symmetric key", src: set(map[string]any{"kty": "oct", "k": "c2VjcmV0"})},
		{name: "symmetric key without k", src: set(map[string]any{"kty": "oct"}), ok: false},
		{name: "encryption key only", src: set(jwk(t, fk.rsa, map[string]any{"use": "enc"}))},
		{name: "key_ops without verify", src: set(jwk(t, fk.rsa, map[string]any{"key_ops": []string{"encrypt", "wrapKey"}}))},
		{name: "RSA 1024", src: set(jwk(t, fk.rsaSmall, nil))},
		{name: "P-384 without ES384 allowed", src: set(jwk(t, fk.ec384, nil))},
		{name: "key alg HS256", src: set(jwk(t, fk.rsa, map[string]any{"alg": "HS256"}))},
		{name: "key alg does not fit the key", src: set(jwk(t, fk.rsa, map[string]any{"alg": "ES256"}))},
		{name: "EC point off the curve", src: set(jwk(t, fk.ec, map[string]any{"y": "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}))},
		{name: "too many keys", src: set(many...)},
		{name: "too large", src: KeySource{JWKS: append(jwks(t, jwk(t, fk.rsa, nil)), bytes.Repeat([]byte(" "), MaxJWKSBytes)...)}},

		{name: "http jwks_uri", src: uri("http://client.example/jwks")},
		{name: "loopback http not allowed", src: uri("http://127.0.0.1:9999/jwks")},
		{name: "non-loopback http with loopback allowed", src: uri("http://10.0.0.1/jwks"), loopback: true},
		{name: "localhost suffix", src: uri("http://localhost.evil.example/jwks"), loopback: true},
		{name: "relative jwks_uri", src: uri("/jwks")},
		{name: "no host", src: uri("https:///jwks")},
		{name: "opaque", src: uri("https:client.example/jwks")},
		{name: "userinfo", src: uri("https://user:pw@client.example/jwks")},
		{name: "fragment", src: uri("https://client.example/jwks#k")},
		{name: "empty fragment", src: uri("https://client.example/jwks#")},
		{name: "ftp", src: uri("ftp://client.example/jwks")},
		{name: "file", src: uri("file:///etc/passwd")},
		{name: "too long", src: uri("https://client.example/" + strings.Repeat("a", MaxJWKSURIBytes))},
		{name: "unparseable", src: uri("https://client.example/%zz")},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			v := newVerifier(t, testclock.New(t0), func(o *Options) { o.AllowHTTPLoopback = tc.loopback })
			err := v.ValidateKeys(tc.src)
			if tc.ok {
				if err != nil {
					t.Fatalf("ValidateKeys: %v", err)
				}
				return
			}
			if !errors.Is(err, ErrInvalidKeys) {
				t.Fatalf("ValidateKeys = %v, want ErrInvalidKeys", err)
			}
			t.Log(err)
		})
	}
}

// TestValidateKeysAlgorithms checks that "usable" follows the Verifier's
// algorithms.
func TestValidateKeysAlgorithms(t *testing.T) {
	fk := fixtures()
	v := newVerifier(t, testclock.New(t0), func(o *Options) { o.Algorithms = []string{"ES384"} })
	if err := v.ValidateKeys(KeySource{JWKS: jwks(t, jwk(t, fk.ec384, nil))}); err != nil {
		t.Errorf("P-384 with ES384 allowed: %v", err)
	}
	if err := v.ValidateKeys(KeySource{JWKS: jwks(t, jwk(t, fk.rsa, nil))}); !errors.Is(err, ErrInvalidKeys) {
		t.Errorf("RSA with only ES384 allowed: %v", err)
	}
}

// TestFits checks the algorithm/key compatibility table (RFC 7518 §3.1,
// RFC 8037 §3.1) that stops algorithm confusion.
func TestFits(t *testing.T) {
	fk := fixtures()
	table := map[*testKey][]string{
		fk.rsa:   {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"},
		fk.ec:    {"ES256"},
		fk.ec384: {"ES384"},
		fk.ed:    {"EdDSA"},
	}
	all := []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA", "HS256", "none", ""}
	for tk, good := range table {
		k := key{pub: tk.priv.Public()}
		for _, alg := range all {
			want := false
			for _, g := range good {
				want = want || g == alg
			}
			if got := k.fits(alg); got != want {
				t.Errorf("%s fits %q = %v, want %v", tk.kid, alg, got, want)
			}
		}
		k.alg = good[0]
		for _, alg := range good[1:] {
			if k.fits(alg) {
				t.Errorf("%s with alg %s fits %s", tk.kid, good[0], alg)
			}
		}
	}
	if (&key{pub: []byte("secret")}).fits("HS256") {
		t.Error("a byte slice fits HS256")
	}
}

// TestInlineKeysCache checks that parsed inline jwks are cached by
// content (a client that re-registers new keys gets them at once) and
// that the cache is bounded.
func TestInlineKeysCache(t *testing.T) {
	fk := fixtures()
	v := newVerifier(t, testclock.New(t0), func(o *Options) { o.KeySetCacheSize = 2 })
	ctx := context.Background()
	old := KeySource{JWKS: jwks(t, jwk(t, fk.rsa, nil))}
	if err := v.Verify(ctx, clientA, old, AssertionType, assertion(t, "RS256", fk.rsa, claimsFor(clientA, t0))); err != nil {
		t.Fatal(err)
	}
	rotated := KeySource{JWKS: jwks(t, jwk(t, fk.ec, nil))}
	a := assertion(t, "RS256", fk.rsa, claimsFor(clientA, t0))
	checkRefusal(t, v.Verify(ctx, clientA, rotated, AssertionType, a), ErrUnknownKey, a)
	third := KeySource{JWKS: jwks(t, jwk(t, fk.ed, nil))}
	if err := v.Verify(ctx, clientA, third, AssertionType, assertion(t, "EdDSA", fk.ed, claimsFor(clientA, t0))); err != nil {
		t.Fatal(err)
	}
	v.inline.mu.Lock()
	n := len(v.inline.sets)
	v.inline.mu.Unlock()
	if n != 2 {
		t.Fatalf("%d inline sets cached, want 2", n)
	}
	// A refused document is not cached.
	bad := KeySource{JWKS: jwks(t, privateJWK(t, fk.ec))}
	a = assertion(t, "ES256", fk.ec, claimsFor(clientA, t0))
	checkRefusal(t, v.Verify(ctx, clientA, bad, AssertionType, a), ErrKeysUnavailable, a)
}
