package clientassert

import (
	"context"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcp-oauth/oauth/internal/testclock"
)

// TestVerify covers every acceptance and every refusal of Verify with
// inline keys, including the algorithm-confusion forgeries of RFC 8725
// §2.1.
func TestVerify(t *testing.T) {
	fk := fixtures()
	now := t0
	inline := func(keys ...map[string]any) KeySource { return KeySource{JWKS: jwks(t, keys...)} }
	rsaSet := func() KeySource { return inline(jwk(t, fk.rsa, nil)) }
	// tok signs valid claims, changed by mod, with alg and k.
	tok := func(alg string, k *testKey, mod func(map[string]any)) func() string {
		return func() string {
			c := claimsFor(clientA, now)
			if mod != nil {
				mod(c)
			}
			return assertion(t, alg, k, c)
		}
	}
	// tokH signs valid claims under header with alg and key.
	tokH := func(alg string, key any, header map[string]any) func() string {
		return func() string { return signJWS(t, alg, key, header, claimsFor(clientA, now)) }
	}
	// raw signs a raw claims document with the RSA key.
	raw := func(claims string) func() string {
		return func() string {
			return signJWS(t, "RS256", fk.rsa.priv, map[string]any{"alg": "RS256", "kid": "rsa-1"}, []byte(claims))
		}
	}
	set := func(k string, v any) func(map[string]any) { return func(c map[string]any) { c[k] = v } }
	del := func(k string) func(map[string]any) { return func(c map[string]any) { delete(c, k) } }
	rsaPub := x509.MarshalPKCS1PublicKey(fk.rsa.priv.Public().(*rsa.PublicKey))
	rsaPEM := pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: rsaPub})
	later := func(d time.Duration) int64 { return now.Add(d).Unix() }

	cases := []struct {
		name   string
		client string           // default clientA
		keys   func() KeySource // default: the RSA key inline
		typ    string           // default AssertionType; "none" for empty
		token  func() string    // the client_assertion
		mod    func(o *Options) // Options changes
		want   error            // nil: accepted
	}{
		// Accepted.
		{name: "RS256", token: tok("RS256", fk.rsa, nil)},
		{name: "PS256", token: tok("PS256", fk.rsa, nil)},
		{name: "ES256", keys: func() KeySource { return inline(jwk(t, fk.ec, nil)) }, token: tok("ES256", fk.ec, nil)},
		{name: "EdDSA", keys: func() KeySource { return inline(jwk(t, fk.ed, nil)) }, token: tok("EdDSA", fk.ed, nil)},
		{name: "ES384 when allowed", keys: func() KeySource { return inline(jwk(t, fk.ec384, nil)) }, token: tok("ES384", fk.ec384, nil),
			mod: func(o *Options) { o.Algorithms = []string{"ES384"} }},
		{name: "key among several, by kid", keys: func() KeySource {
			return inline(jwk(t, fk.rsa2, nil), jwk(t, fk.ec, nil), jwk(t, fk.rsa, map[string]any{"use": "sig", "alg": "RS256", "key_ops": []string{"verify"}}))
		}, token: tok("RS256", fk.rsa, nil)},
		{name: "no kid, one key", token: tokH("RS256", fk.rsa.priv, map[string]any{"alg": "RS256"})},
		{name: "no kid, one key fits the alg", keys: func() KeySource { return inline(jwk(t, fk.rsa, nil), jwk(t, fk.ec, nil)) },
			token: tokH("ES256", fk.ec.priv, map[string]any{"alg": "ES256"})},
		{name: "unknown kty and use=enc keys are skipped", keys: func() KeySource {
			return inline(map[string]any{"kty": "XYZ", "kid": "future"}, jwk(t, fk.rsa2, map[string]any{"use": "enc"}), jwk(t, fk.rsa, nil))
		}, token: tokH("RS256", fk.rsa.priv, map[string]any{"alg": "RS256"})},
		{name: "typ client-authentication+jwt", token: tokH("RS256", fk.rsa.priv, map[string]any{"alg": "RS256", "typ": "client-authentication+jwt"})},
		{name: "typ application/jwt", token: tokH("RS256", fk.rsa.priv, map[string]any{"alg": "RS256", "typ": "application/JWT"})},
		{name: "header jwk ignored", token: tokH("RS256", fk.rsa.priv, map[string]any{"alg": "RS256", "jwk": jwk(t, fk.rsa2, nil)})},
		{name: "aud token endpoint with slash", token: tok("RS256", fk.rsa, set("aud", tokenURL+"/"))},
		{name: "aud issuer", token: tok("RS256", fk.rsa, set("aud", issuer))},
		{name: "aud array", token: tok("RS256", fk.rsa, set("aud", []string{"https://other.example", tokenURL}))},
		{name: "no iat", token: tok("RS256", fk.rsa, del("iat"))},
		{name: "fractional dates", token: tok("RS256", fk.rsa, func(c map[string]any) {
			c["exp"] = float64(later(time.Minute)) + 0.5
			c["iat"] = float64(now.Unix()) - 0.25
		})},
		{name: "exp within skew", token: tok("RS256", fk.rsa, func(c map[string]any) { c["exp"] = later(-20 * time.Second); c["iat"] = later(-time.Minute) })},
		{name: "nbf and iat within skew", token: tok("RS256", fk.rsa, func(c map[string]any) { c["nbf"] = later(20 * time.Second); c["iat"] = later(20 * time.Second) })},
		{name: "exp at max lifetime", token: tok("RS256", fk.rsa, set("exp", later(DefaultMaxLifetime)))},
		{name: "unknown claims ignored", token: tok("RS256", fk.rsa, set("client_id", "someone-else"))},
		{name: "URL client_id", client: clientB, token: func() string { return assertion(t, "RS256", fk.rsa, claimsFor(clientB, now)) }},

		// client_assertion_type.
		{name: "type empty", typ: "none", token: tok("RS256", fk.rsa, nil), want: ErrAssertionType},
		{name: "type saml2", typ: "urn:ietf:params:oauth:client-assertion-type:saml2-bearer", token: tok("RS256", fk.rsa, nil), want: ErrAssertionType},
		{name: "type upper case", typ: strings.ToUpper(AssertionType), token: tok("RS256", fk.rsa, nil), want: ErrAssertionType},

		// Malformed.
		{name: "empty", token: func() string { return "" }, want: ErrMalformed},
		{name: "garbage", token: func() string { return "not a jwt" }, want: ErrMalformed},
		{name: "two segments", token: func() string { return strings.Join(strings.Split(tok("RS256", fk.rsa, nil)(), ".")[:2], ".") }, want: ErrMalformed},
		{name: "JWE", token: func() string { return "eyJhbGciOiJSU0EtT0FFUCIsImVuYyI6IkEyNTZHQ00ifQ.a.b.c.d" }, want: ErrMalformed},
		{name: "JSON serialization", token: func() string { return `{"payload":"e30","protected":"eyJhbGciOiJSUzI1NiJ9","signature":"AA"}` }, want: ErrMalformed},
		{name: "too large", token: tok("RS256", fk.rsa, set("pad", strings.Repeat("x", MaxAssertionBytes))), want: ErrMalformed},
		{name: "header not JSON", token: func() string { return b64([]byte("alg")) + "." + b64([]byte("{}")) + ".AA" }, want: ErrMalformed},
		{name: "bad base64 signature", token: func() string { return tok("RS256", fk.rsa, nil)() + "!" }, want: ErrMalformed},
		{name: "payload not an object", token: raw(`["iss"]`), want: ErrMalformed},
		{name: "payload not JSON", token: raw(`iss=client-a`), want: ErrMalformed},
		{name: "duplicate claim", token: raw(`{"iss":"client-a","sub":"client-a","sub":"x","aud":"` + tokenURL + `","exp":` + itoa(later(time.Minute)) + `,"jti":"a"}`), want: ErrMalformed},
		{name: "claim name case", token: raw(`{"ISS":"x","iss":"client-a","sub":"client-a","aud":"` + tokenURL + `","exp":` + itoa(later(time.Minute)) + `,"jti":"a"}`)},
		{name: "exp a string", token: tok("RS256", fk.rsa, set("exp", itoa(later(time.Minute)))), want: ErrMalformed},
		{name: "exp negative", token: tok("RS256", fk.rsa, set("exp", -1)), want: ErrMalformed},
		{name: "exp huge", token: tok("RS256", fk.rsa, set("exp", 1e300)), want: ErrMalformed},
		{name: "iss a number", token: tok("RS256", fk.rsa, set("iss", 7)), want: ErrMalformed},
		{name: "aud a number", token: tok("RS256", fk.rsa, set("aud", 7)), want: ErrMalformed},
		{name: "aud array of numbers", token: tok("RS256", fk.rsa, set("aud", []int{1})), want: ErrMalformed},
		{name: "no exp", token: tok("RS256", fk.rsa, del("exp")), want: ErrMalformed},
		{name: "exp null", token: tok("RS256", fk.rsa, set("exp", nil)), want: ErrMalformed},
		{name: "no jti", token: tok("RS256", fk.rsa, del("jti")), want: ErrMalformed},
		{name: "empty jti", token: tok("RS256", fk.rsa, set("jti", "")), want: ErrMalformed},
		{name: "long jti", token: tok("RS256", fk.rsa, set("jti", strings.Repeat("j", MaxJTIBytes+1))), want: ErrMalformed},
		{name: "crit header", token: tokH("RS256", fk.rsa.priv, map[string]any{"alg": "RS256", "crit": []string{"exp"}, "exp": 1}), want: ErrMalformed},
		{name: "b64 header", token: tokH("RS256", fk.rsa.priv, map[string]any{"alg": "RS256", "b64": false, "crit": []string{"b64"}}), want: ErrMalformed},
		{name: "zip header", token: tokH("RS256", fk.rsa.priv, map[string]any{"alg": "RS256", "zip": "DEF"}), want: ErrMalformed},
		{name: "typ at+jwt", token: tokH("RS256", fk.rsa.priv, map[string]any{"alg": "RS256", "typ": "at+jwt"}), want: ErrMalformed},
		{name: "typ dpop+jwt", token: tokH("RS256", fk.rsa.priv, map[string]any{"alg": "RS256", "typ": "dpop+jwt"}), want: ErrMalformed},
		{name: "duplicate header", token: func() string {
			return signJWS(t, "RS256", fk.rsa.priv, []byte(`{"alg":"RS256","alg":"none"}`), claimsFor(clientA, now))
		}, want: ErrMalformed},

		// Algorithms and algorithm confusion.
		{name: "alg none", token: tokH("none", nil, map[string]any{"alg": "none", "kid": "rsa-1"}), want: ErrAlgorithm},
		{name: "alg None", token: tokH("none", nil, map[string]any{"alg": "None"}), want: ErrAlgorithm},
		{name: "no alg", token: tokH("RS256", fk.rsa.priv, map[string]any{"kid": "rsa-1"}), want: ErrAlgorithm},
		{name: "HS256 with the RSA public key (DER)", token: tokH("HS256", rsaPub, map[string]any{"alg": "HS256", "kid": "rsa-1"}), want: ErrAlgorithm},
		{name: "HS256 with the RSA public key (PEM)", token: tokH("HS256", rsaPEM, map[string]any{"alg": "HS256"}), want: ErrAlgorithm},
		{name: "RS256 header with an EC key", keys: func() KeySource { return inline(jwk(t, fk.ec, nil)) },
			token: tokH("ES256", fk.ec.priv, map[string]any{"alg": "RS256", "kid": "ec-1"}), want: ErrAlgorithm},
		{name: "RS256 header, no kid, EC key only", keys: func() KeySource { return inline(jwk(t, fk.ec, nil)) },
			token: tokH("ES256", fk.ec.priv, map[string]any{"alg": "RS256"}), want: ErrAlgorithm},
		{name: "ES256 header with an RSA key", token: tokH("RS256", fk.rsa.priv, map[string]any{"alg": "ES256", "kid": "rsa-1"}), want: ErrAlgorithm},
		{name: "ES256 header with a P-384 key", keys: func() KeySource { return inline(jwk(t, fk.ec384, nil)) },
			token: tokH("ES384", fk.ec384.priv, map[string]any{"alg": "ES256", "kid": "ec-384"}), want: ErrUnknownKey}, // P-384 fits no allowed alg: skipped
		{name: "EdDSA header with an RSA key", token: tokH("RS256", fk.rsa.priv, map[string]any{"alg": "EdDSA", "kid": "rsa-1"}), want: ErrAlgorithm},
		{name: "RS256 header, key alg PS256", keys: func() KeySource { return inline(jwk(t, fk.rsa, map[string]any{"alg": "PS256"})) },
			token: tok("RS256", fk.rsa, nil), want: ErrAlgorithm},
		{name: "RS384 not allowed by default", token: tok("RS384", fk.rsa, nil), want: ErrAlgorithm},
		{name: "PS256 not allowed", token: tok("PS256", fk.rsa, nil), mod: func(o *Options) { o.Algorithms = []string{"RS256"} }, want: ErrAlgorithm},

		// Key selection.
		{name: "unknown kid", token: tokH("RS256", fk.rsa.priv, map[string]any{"alg": "RS256", "kid": "nope"}), want: ErrUnknownKey},
		{name: "kid of another client's key", token: tok("RS256", fk.rsa2, nil), want: ErrUnknownKey},
		{name: "another client's key under our kid", token: tokH("RS256", fk.rsa2.priv, map[string]any{"alg": "RS256", "kid": "rsa-1"}), want: ErrSignature},
		{name: "key use enc", keys: func() KeySource { return inline(jwk(t, fk.rsa, map[string]any{"use": "enc"})) }, token: tok("RS256", fk.rsa, nil), want: ErrUnknownKey},
		{name: "key_ops without verify", keys: func() KeySource { return inline(jwk(t, fk.rsa, map[string]any{"key_ops": []string{"encrypt"}})) }, token: tok("RS256", fk.rsa, nil), want: ErrUnknownKey},
		{name: "key alg HS256", keys: func() KeySource { return inline(jwk(t, fk.rsa, map[string]any{"alg": "HS256"})) }, token: tok("RS256", fk.rsa, nil), want: ErrUnknownKey},
		{name: "RSA 1024", keys: func() KeySource { return inline(jwk(t, fk.rsaSmall, nil)) }, token: tok("RS256", fk.rsaSmall, nil), want: ErrUnknownKey},
		{name: "no kid, two keys", keys: func() KeySource { return inline(jwk(t, fk.rsa, nil), jwk(t, fk.rsa2, nil)) },
			token: tokH("RS256", fk.rsa.priv, map[string]any{"alg": "RS256"}), want: ErrUnknownKey},
		{name: "duplicate kid", keys: func() KeySource { return inline(jwk(t, fk.rsa, nil), jwk(t, fk.rsa2, map[string]any{"kid": "rsa-1"})) },
			token: tok("RS256", fk.rsa, nil), want: ErrUnknownKey},
		{name: "empty key set", keys: func() KeySource { return inline() }, token: tok("RS256", fk.rsa, nil), want: ErrUnknownKey},
		{name: "empty key set, no kid", keys: func() KeySource { return inline() }, token: tokH("RS256", fk.rsa.priv, map[string]any{"alg": "RS256"}), want: ErrUnknownKey},

		// Signature.
		{name: "tampered payload", token: func() string {
			parts := strings.Split(tok("RS256", fk.rsa, nil)(), ".")
			c := claimsFor(clientA, now)
			c["sub"] = "admin"
			parts[1] = strings.Split(assertion(t, "RS256", fk.rsa2, c), ".")[1]
			return strings.Join(parts, ".")
		}, want: ErrSignature},
		{name: "truncated signature", token: func() string { s := tok("ES256", fk.ec, nil)(); return s[:len(s)-4] },
			keys: func() KeySource { return inline(jwk(t, fk.ec, nil)) }, want: ErrSignature},
		{name: "PS256 signature under RS256", token: tokH("PS256", fk.rsa.priv, map[string]any{"alg": "RS256", "kid": "rsa-1"}), want: ErrSignature},

		// Issuer and subject.
		{name: "iss another client", token: tok("RS256", fk.rsa, set("iss", clientB)), want: ErrIssuer},
		{name: "sub another client", token: tok("RS256", fk.rsa, set("sub", clientB)), want: ErrIssuer},
		{name: "no iss", token: tok("RS256", fk.rsa, del("iss")), want: ErrIssuer},
		{name: "no sub", token: tok("RS256", fk.rsa, del("sub")), want: ErrIssuer},
		{name: "assertion of another client", client: clientB, token: tok("RS256", fk.rsa, nil), want: ErrIssuer},
		{name: "empty client_id", client: "none", token: tok("RS256", fk.rsa, func(c map[string]any) { c["iss"], c["sub"] = "", "" }), want: ErrIssuer},

		// Audience.
		{name: "no aud", token: tok("RS256", fk.rsa, del("aud")), want: ErrAudience},
		{name: "aud elsewhere", token: tok("RS256", fk.rsa, set("aud", "https://other.example/token")), want: ErrAudience},
		{name: "aud prefix", token: tok("RS256", fk.rsa, set("aud", "https://as.example/tok")), want: ErrAudience},
		{name: "aud suffix", token: tok("RS256", fk.rsa, set("aud", tokenURL+"/x")), want: ErrAudience},
		{name: "aud case", token: tok("RS256", fk.rsa, set("aud", strings.ToUpper(tokenURL))), want: ErrAudience},
		{name: "aud empty array", token: tok("RS256", fk.rsa, set("aud", []string{})), want: ErrAudience},
		{name: "aud array elsewhere", token: tok("RS256", fk.rsa, set("aud", []string{"https://other.example"})), want: ErrAudience},

		// Time.
		{name: "expired", token: tok("RS256", fk.rsa, func(c map[string]any) { c["exp"] = later(-31 * time.Second); c["iat"] = later(-time.Minute) }), want: ErrExpired},
		{name: "expired at skew", token: tok("RS256", fk.rsa, func(c map[string]any) { c["exp"] = later(-DefaultClockSkew); c["iat"] = later(-time.Minute) }), want: ErrExpired},
		{name: "exp too far", token: tok("RS256", fk.rsa, set("exp", later(DefaultMaxLifetime+DefaultClockSkew+time.Second))), want: ErrLifetime},
		{name: "exp − iat too long", token: tok("RS256", fk.rsa, func(c map[string]any) { c["iat"] = later(-10 * time.Minute); c["exp"] = later(time.Minute) }), want: ErrLifetime},
		{name: "MaxLifetime option", token: tok("RS256", fk.rsa, set("exp", later(2*time.Minute))), mod: func(o *Options) { o.MaxLifetime = time.Minute }, want: ErrLifetime},
		{name: "nbf future", token: tok("RS256", fk.rsa, set("nbf", later(time.Minute))), want: ErrNotYetValid},
		{name: "iat future", token: tok("RS256", fk.rsa, func(c map[string]any) { c["iat"] = later(time.Minute); c["exp"] = later(2 * time.Minute) }), want: ErrNotYetValid},
		{name: "no skew", token: tok("RS256", fk.rsa, set("nbf", later(time.Second))), mod: func(o *Options) { o.ClockSkew = -1 }, want: ErrNotYetValid},

		// Key sources.
		{name: "no keys", keys: func() KeySource { return KeySource{} }, token: tok("RS256", fk.rsa, nil), want: ErrKeysUnavailable},
		{name: "both jwks and jwks_uri", keys: func() KeySource { s := rsaSet(); s.JWKSURI = "https://c.example/jwks"; return s }, token: tok("RS256", fk.rsa, nil), want: ErrKeysUnavailable},
		{name: "jwks not JSON", keys: func() KeySource { return KeySource{JWKS: []byte("{")} }, token: tok("RS256", fk.rsa, nil), want: ErrKeysUnavailable},
		{name: "jwks with a private key", keys: func() KeySource { return inline(privateJWK(t, fk.rsa)) }, token: tok("RS256", fk.rsa, nil), want: ErrKeysUnavailable},
		{name: "jwks_uri without Fetch", keys: func() KeySource { return KeySource{JWKSURI: "https://c.example/jwks"} }, token: tok("RS256", fk.rsa, nil), want: ErrKeysUnavailable},
		{name: "jwks_uri http", keys: func() KeySource { return KeySource{JWKSURI: "http://c.example/jwks"} }, token: tok("RS256", fk.rsa, nil),
			mod: func(o *Options) { o.Fetch = newFakeFetcher().Fetch; o.AllowHTTPLoopback = true }, want: ErrKeysUnavailable},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			v := newVerifier(t, testclock.New(now), tc.mod)
			client := tc.client
			switch client {
			case "":
				client = clientA
			case "none":
				client = ""
			}
			keys := rsaSet()
			if tc.keys != nil {
				keys = tc.keys()
			}
			typ := tc.typ
			switch typ {
			case "":
				typ = AssertionType
			case "none":
				typ = ""
			}
			a := tc.token()
			err := v.Verify(context.Background(), client, keys, typ, a)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("Verify: %v", err)
				}
				return
			}
			checkRefusal(t, err, tc.want, a)
			t.Log(err)
		})
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// TestNew checks that New refuses what would make a Verifier unsafe or
// useless, and fills in the defaults.
func TestNew(t *testing.T) {
	for _, o := range []Options{
		{},
		{Audiences: []string{""}},
		{Audiences: []string{tokenURL}, Algorithms: []string{"HS256"}},
		{Audiences: []string{tokenURL}, Algorithms: []string{"none"}},
		{Audiences: []string{tokenURL}, Algorithms: []string{"RS256", "HS512"}},
		{Audiences: []string{tokenURL}, Algorithms: []string{"rs256"}},
	} {
		if _, err := New(o); err == nil {
			t.Errorf("New(%+v) succeeded", o)
		}
	}
	v, err := New(Options{Audiences: []string{tokenURL}})
	if err != nil {
		t.Fatal(err)
	}
	o := v.opts
	if o.MaxLifetime != DefaultMaxLifetime || o.ClockSkew != DefaultClockSkew || o.KeySetMaxAge != DefaultKeySetMaxAge ||
		o.KeySetMaxStale != DefaultKeySetMaxStale || o.KeySetRefetchInterval != DefaultKeySetRefetchInterval ||
		o.KeySetCacheSize != DefaultKeySetCacheSize || o.ReplayCacheSize != DefaultReplayCacheSize ||
		o.FetchTimeout != DefaultFetchTimeout || o.Now == nil || o.AllowHTTPLoopback || o.Fetch != nil {
		t.Errorf("defaults not applied: %+v", o)
	}
	if !slices.Equal(o.Algorithms, DefaultAlgorithms()) {
		t.Errorf("Algorithms = %v", o.Algorithms)
	}
}

// TestReplay checks RFC 7523 §3 item 7: a jti is single-use per client
// within the assertion's lifetime, and the replay cache fails closed.
func TestReplay(t *testing.T) {
	fk := fixtures()
	clock := testclock.New(t0)
	v := newVerifier(t, clock, nil)
	ctx := context.Background()
	keys := KeySource{JWKS: jwks(t, jwk(t, fk.rsa, nil))}
	c := claimsFor(clientA, t0)
	c["jti"] = "same"
	a := assertion(t, "RS256", fk.rsa, c)
	if err := v.Verify(ctx, clientA, keys, AssertionType, a); err != nil {
		t.Fatal(err)
	}
	checkRefusal(t, v.Verify(ctx, clientA, keys, AssertionType, a), ErrReplayed, a)

	// A new assertion reusing the jti is a replay too.
	c["exp"] = t0.Add(2 * time.Minute).Unix()
	a2 := assertion(t, "RS256", fk.rsa, c)
	checkRefusal(t, v.Verify(ctx, clientA, keys, AssertionType, a2), ErrReplayed, a2)

	// The same jti from another client is that client's own.
	cb := claimsFor(clientB, t0)
	cb["jti"] = "same"
	b := assertion(t, "RS256", fk.rsa, cb)
	if err := v.Verify(ctx, clientB, keys, AssertionType, b); err != nil {
		t.Fatalf("other client: %v", err)
	}

	// Client ids and jtis cannot be spliced into each other's keys.
	cs := claimsFor("client", t0)
	cs["jti"] = "-a:same"
	s := assertion(t, "RS256", fk.rsa, cs)
	if err := v.Verify(ctx, "client", keys, AssertionType, s); err != nil {
		t.Fatalf("spliced: %v", err)
	}

	// Once the first assertion can no longer be accepted, its jti may
	// come back in a fresh one.
	clock.Advance(time.Minute + DefaultClockSkew)
	c3 := claimsFor(clientA, clock.Now())
	c3["jti"] = "same"
	a3 := assertion(t, "RS256", fk.rsa, c3)
	if err := v.Verify(ctx, clientA, keys, AssertionType, a3); err != nil {
		t.Fatalf("after expiry: %v", err)
	}
}

// TestReplayCacheFull checks that a full replay cache refuses new
// assertions (fail closed) until entries expire.
func TestReplayCacheFull(t *testing.T) {
	fk := fixtures()
	clock := testclock.New(t0)
	v := newVerifier(t, clock, func(o *Options) { o.ReplayCacheSize = 2 })
	ctx := context.Background()
	keys := KeySource{JWKS: jwks(t, jwk(t, fk.ec, nil))}
	for i := range 2 {
		if err := v.Verify(ctx, clientA, keys, AssertionType, assertion(t, "ES256", fk.ec, claimsFor(clientA, t0))); err != nil {
			t.Fatalf("assertion %d: %v", i, err)
		}
	}
	a := assertion(t, "ES256", fk.ec, claimsFor(clientA, t0))
	checkRefusal(t, v.Verify(ctx, clientA, keys, AssertionType, a), ErrReplayCacheFull, a)
	clock.Advance(time.Minute + DefaultClockSkew)
	a = assertion(t, "ES256", fk.ec, claimsFor(clientA, clock.Now()))
	if err := v.Verify(ctx, clientA, keys, AssertionType, a); err != nil {
		t.Fatalf("after expiry: %v", err)
	}
}

// TestReplayConcurrent checks that of many concurrent presentations of
// one assertion exactly one is accepted.
func TestReplayConcurrent(t *testing.T) {
	fk := fixtures()
	v := newVerifier(t, testclock.New(t0), nil)
	keys := KeySource{JWKS: jwks(t, jwk(t, fk.ed, nil))}
	a := assertion(t, "EdDSA", fk.ed, claimsFor(clientA, t0))
	var ok, replayed atomic.Int32
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			switch err := v.Verify(context.Background(), clientA, keys, AssertionType, a); {
			case err == nil:
				ok.Add(1)
			case errors.Is(err, ErrReplayed):
				replayed.Add(1)
			default:
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if ok.Load() != 1 || replayed.Load() != 15 {
		t.Errorf("accepted %d, replayed %d; want 1 and 15", ok.Load(), replayed.Load())
	}
}

// TestUnverifiedClientID checks the look-up of the claimed client.
func TestUnverifiedClientID(t *testing.T) {
	fk := fixtures()
	v := newVerifier(t, testclock.New(t0), nil)
	got, err := v.UnverifiedClientID(assertion(t, "RS256", fk.rsa, claimsFor(clientB, t0)))
	if err != nil || got != clientB {
		t.Fatalf("UnverifiedClientID = %q, %v", got, err)
	}
	c := claimsFor(clientA, t0)
	c["sub"] = clientB
	a := assertion(t, "RS256", fk.rsa, c)
	_, err = v.UnverifiedClientID(a)
	checkRefusal(t, err, ErrIssuer, a)
	_, err = v.UnverifiedClientID("x.y.z")
	checkRefusal(t, err, ErrMalformed, "x.y.z")
	a = signJWS(t, "HS256", []byte("k"), map[string]any{"alg": "HS256"}, claimsFor(clientA, t0))
	_, err = v.UnverifiedClientID(a)
	checkRefusal(t, err, ErrAlgorithm, a)
}
