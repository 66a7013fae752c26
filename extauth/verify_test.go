package extauth

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	oauth "github.com/mcp-oauth/oauth"
)

// rawJWS assembles a compact JWS from a header, claims and signature
// bytes, for tokens no library would sign.
func rawJWS(header, claims map[string]any, sig []byte) string {
	h, _ := json.Marshal(header)
	c, _ := json.Marshal(claims)
	return b64.EncodeToString(h) + "." + b64.EncodeToString(c) + "." + b64.EncodeToString(sig)
}

// hmacJWS signs header and claims with HMAC-SHA256 under secret.
func hmacJWS(header, claims map[string]any, secret []byte) string {
	h, _ := json.Marshal(header)
	c, _ := json.Marshal(claims)
	in := b64.EncodeToString(h) + "." + b64.EncodeToString(c)
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(in))
	return in + "." + b64.EncodeToString(m.Sum(nil))
}

// TestVerifyAlgorithms: a token of each accepted algorithm verifies, and
// becomes the AccessToken its claims say.
func TestVerifyAlgorithms(t *testing.T) {
	keys := []*testKey{newKey("rs", RS256, 0), newKey("ps", PS256, 1), newKey("es", ES256, 0), newKey("ed", EdDSA, 0),
		newKey("es384", ES384, 0), newKey("rs512", RS512, 2)}
	p := newIdP(t, "/realms/acme", keys...)
	v := newVerifier(t, p, func(o *Options) { o.Algorithms = []string{RS256, PS256, ES256, EdDSA, ES384, RS512} })
	for _, k := range keys {
		t.Run(k.alg, func(t *testing.T) {
			tok := sign(t, k, p.claims("jti", k.kid))
			at, err := v.Verify(context.Background(), tok)
			if err != nil {
				t.Fatal(err)
			}
			if at.Subject != "alice" || at.ClientID != "cli" || at.Resource != testAudience || at.ID != k.kid || at.Token != tok ||
				!slices.Equal(at.Scopes, []string{"notes.read", "notes.write"}) || !at.ExpiresAt.Equal(p.clock.Now().Add(5*time.Minute)) {
				t.Errorf("access token %+v", at)
			}
		})
	}
}

// TestVerifyRefusals: every failure class, and every algorithm confusion
// attempt, is refused with its Reason, as invalid_token, without the
// token in the error or the log.
func TestVerifyRefusals(t *testing.T) {
	rs := newKey("rs", RS256, 0)
	rs2 := newKey("rs2", RS256, 1)
	es := newKey("es", ES256, 0)
	es384 := newKey("es384", ES384, 0)
	pinned := newKey("pinned", RS256, 2, RS256) // its JWK says RS256
	attacker := newKey("rs", RS256, 3)          // same kid as rs, another key
	p := newIdP(t, "", rs, rs2, es, es384, pinned)
	v := newVerifier(t, p, nil)
	c := p.claims()
	now := p.clock.Now()

	pubDER, _ := x509.MarshalPKIXPublicKey(rs.priv.Public())
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})
	valid := sign(t, rs, c)
	parts := strings.Split(valid, ".")
	tampered := parts[0] + "." + b64.EncodeToString([]byte(`{"iss":"`+p.issuer+`","sub":"root","aud":"`+testAudience+`","exp":9999999999}`)) + "." + parts[2]

	sig, _ := b64.DecodeString(parts[2])
	truncated := parts[0] + "." + parts[1] + "." + b64.EncodeToString(sig[:len(sig)-3])
	noKid := newKey("", RS256, 0)
	for _, tc := range []struct {
		name  string
		token string
		want  *Reason
	}{
		// Malformed.
		{"garbage", "not-a-token", ErrMalformed},
		{"two parts", parts[0] + "." + parts[1], ErrMalformed},
		{"four parts", valid + ".x", ErrMalformed},
		{"header not base64url", "eyJ!!!." + parts[1] + "." + parts[2], ErrMalformed},
		{"header not JSON", b64.EncodeToString([]byte("{nope")) + "." + parts[1] + "." + parts[2], ErrMalformed},
		{"header alg not a string", rawJWS(map[string]any{"alg": 1, "kid": "rs", "typ": "at+jwt"}, c, []byte("x")), ErrMalformed},
		{"no alg", rawJWS(map[string]any{"kid": "rs", "typ": "at+jwt"}, c, []byte("x")), ErrMalformed},
		{"crit header", sign(t, rs, c, "crit", []string{"exp"}, "exp", 1), ErrMalformed},
		{"b64 false", sign(t, rs, c, "b64", false, "crit", []string{"b64"}), ErrMalformed},
		{"JWE-style enc header", sign(t, rs, c, "enc", "A256GCM"), ErrMalformed},
		{"empty signature", parts[0] + "." + parts[1] + ".", ErrBadSignature},
		{"padded base64", parts[0] + "." + parts[1] + "=." + parts[2], ErrBadSignature},
		{"signature not base64url", parts[0] + "." + parts[1] + ".!!!!", ErrMalformed},
		{"payload not JSON", signRaw(t, rs, "not json"), ErrMalformed},
		{"payload a JSON array", signRaw(t, rs, "[1]"), ErrMalformed},
		{"no sub", sign(t, rs, p.claims("sub", nil)), ErrMalformed},
		{"no exp", sign(t, rs, p.claims("exp", nil)), ErrMalformed},
		{"exp a string", sign(t, rs, p.claims("exp", "tomorrow")), ErrMalformed},
		{"exp huge", sign(t, rs, p.claims("exp", 1e300)), ErrMalformed},
		{"aud a number", sign(t, rs, p.claims("aud", 7)), ErrMalformed},
		{"oversized", strings.Repeat("a", MaxTokenBytes+1), ErrMalformed},
		{"opaque without introspection", "gho_16C7e42F292c6912E7710c838347Ae178B4a", ErrMalformed},

		// Algorithm confusion.
		{"alg none, no signature", rawJWS(map[string]any{"alg": "none", "typ": "at+jwt"}, c, nil), ErrDisallowedAlgorithm},
		{"alg none with kid", rawJWS(map[string]any{"alg": "none", "kid": "rs", "typ": "at+jwt"}, c, []byte("x")), ErrDisallowedAlgorithm},
		{"alg None", rawJWS(map[string]any{"alg": "None", "kid": "rs", "typ": "at+jwt"}, c, []byte("x")), ErrDisallowedAlgorithm},
		{"HS256 keyed with the RSA public key (DER)", hmacJWS(map[string]any{"alg": "HS256", "kid": "rs", "typ": "at+jwt"}, c, pubDER), ErrDisallowedAlgorithm},
		{"HS256 keyed with the RSA public key (PEM)", hmacJWS(map[string]any{"alg": "HS256", "kid": "rs", "typ": "at+jwt"}, c, pubPEM), ErrDisallowedAlgorithm},
		{"HS256 keyed with the JWK n", hmacJWS(map[string]any{"alg": "HS256", "kid": "rs", "typ": "at+jwt"}, c, []byte(rs.jwk["n"].(string))), ErrDisallowedAlgorithm},
		{"HS512", hmacJWS(map[string]any{"alg": "HS512", "kid": "rs", "typ": "at+jwt"}, c, pubDER), ErrDisallowedAlgorithm},
		{"ES384 not in Algorithms", sign(t, es384, c), ErrDisallowedAlgorithm},
		{"RS256 header, kid of the EC key", rawJWS(map[string]any{"alg": "RS256", "kid": "es", "typ": "at+jwt"}, c, []byte("x")), ErrDisallowedAlgorithm},
		{"ES256 header, kid of an RSA key", rawJWS(map[string]any{"alg": "ES256", "kid": "rs", "typ": "at+jwt"}, c, make([]byte, 64)), ErrDisallowedAlgorithm},
		{"ES256 header, kid of the P-384 key", signAs(t, es384, ES256, c), ErrDisallowedAlgorithm},
		{"PS256 with a key pinned to RS256", signAs(t, pinned, PS256, c), ErrDisallowedAlgorithm},
		{"EdDSA header, kid of an RSA key", rawJWS(map[string]any{"alg": "EdDSA", "kid": "rs", "typ": "at+jwt"}, c, make([]byte, 64)), ErrDisallowedAlgorithm},
		{"no kid, several RSA keys", sign(t, noKid, c), ErrUnknownKey},
		{"embedded jwk of the attacker", sign(t, attacker, c, "jwk", attacker.jwk), ErrBadSignature},
		{"jku to the attacker", sign(t, newKey("evil", RS256, 3), c, "jku", "https://evil.example/jwks"), ErrUnknownKey},

		// Signature and key.
		{"tampered payload", tampered, ErrBadSignature},
		{"another key with a known kid", sign(t, attacker, c), ErrBadSignature},
		{"truncated signature", truncated, ErrBadSignature},
		{"unknown kid", sign(t, newKey("who", RS256, 3), c), ErrUnknownKey},

		// Type.
		{"typ JWT", sign(t, rs, c, "typ", "JWT"), ErrWrongType},
		{"no typ", sign(t, rs, c, "typ", nil), ErrWrongType},
		{"typ of an ID token's logout cousin", sign(t, rs, c, "typ", "logout+jwt"), ErrWrongType},

		// Time.
		{"expired", sign(t, rs, p.claims("exp", now.Add(-2*time.Minute).Unix())), ErrExpired},
		{"expired at the skew's edge", sign(t, rs, p.claims("exp", now.Add(-DefaultClockSkew).Unix())), ErrExpired},
		{"nbf in the future", sign(t, rs, p.claims("nbf", now.Add(5*time.Minute).Unix())), ErrNotYetValid},
		{"iat in the future", sign(t, rs, p.claims("iat", now.Add(5*time.Minute).Unix())), ErrNotYetValid},

		// Issuer and audience.
		{"other issuer", sign(t, rs, p.claims("iss", "https://evil.example")), ErrWrongIssuer},
		{"issuer with a trailing slash", sign(t, rs, p.claims("iss", p.issuer+"/")), ErrWrongIssuer},
		{"no issuer", sign(t, rs, p.claims("iss", nil)), ErrWrongIssuer},
		{"other audience", sign(t, rs, p.claims("aud", "https://other.example.com/mcp")), ErrWrongAudience},
		{"audience array without ours", sign(t, rs, p.claims("aud", []string{"a", "b"})), ErrWrongAudience},
		{"no audience", sign(t, rs, p.claims("aud", nil)), ErrWrongAudience},
		{"audience prefix", sign(t, rs, p.claims("aud", testAudience+"/x")), ErrWrongAudience},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := v.Stats().Rejected[tc.want.Name()]
			at, err := v.Verify(context.Background(), tc.token)
			if err == nil {
				t.Fatalf("accepted: %+v", at)
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if !errors.Is(err, oauth.ErrInvalidToken) || errors.Is(err, oauth.ErrServerError) {
				t.Errorf("err %v is not invalid_token", err)
			}
			if e := oauth.AsError(err); e.Code != "invalid_token" || e.Description == "" {
				t.Errorf("oauth error %+v", e)
			}
			if len(tc.token) > 20 && strings.Contains(err.Error(), tc.token[len(tc.token)/2:]) {
				t.Errorf("the error contains the token: %v", err)
			}
			if got := v.Stats().Rejected[tc.want.Name()]; got != before+1 {
				t.Errorf("Stats.Rejected[%s] = %d, want %d", tc.want.Name(), got, before+1)
			}
		})
	}
	if logs := logsOf(t); !strings.Contains(logs, "reason=bad_signature") || strings.Contains(logs, parts[1]) || strings.Contains(logs, parts[2]) {
		t.Errorf("logs name no reason, or contain a token:\n%s", logs)
	}

	// The edges that pass: within the skew, aud in an array, the typ's
	// long form.
	for name, tok := range map[string]string{
		"expired within the skew": sign(t, rs, p.claims("exp", now.Add(-30*time.Second).Unix())),
		"nbf within the skew":     sign(t, rs, p.claims("nbf", now.Add(30*time.Second).Unix())),
		"audience in an array":    sign(t, rs, p.claims("aud", []string{"other", testAudience})),
		"application/at+jwt":      sign(t, rs, c, "typ", "application/AT+JWT"),
		"EC key":                  sign(t, es, c),
	} {
		if _, err := v.Verify(context.Background(), tok); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// signRaw signs payload (not necessarily JSON) with k.
func signRaw(t *testing.T, k *testKey, payload string) string {
	h, _ := json.Marshal(map[string]any{"alg": k.alg, "kid": k.kid, "typ": "at+jwt"})
	in := b64.EncodeToString(h) + "." + b64.EncodeToString([]byte(payload))
	sig, err := method(k.alg).Sign(in, k.priv)
	if err != nil {
		t.Fatal(err)
	}
	return in + "." + b64.EncodeToString(sig)
}

// signAs signs claims with k's private key but names alg in the header.
func signAs(t *testing.T, k *testKey, alg string, claims map[string]any) string {
	h, _ := json.Marshal(map[string]any{"alg": alg, "kid": k.kid, "typ": "at+jwt"})
	c, _ := json.Marshal(claims)
	in := b64.EncodeToString(h) + "." + b64.EncodeToString(c)
	sig, err := method(k.alg).Sign(in, k.priv)
	if err != nil {
		t.Fatal(err)
	}
	return in + "." + b64.EncodeToString(sig)
}

// TestTokenTypes: the typ check relaxes for issuers that send JWT or
// nothing.
func TestTokenTypes(t *testing.T) {
	rs := newKey("rs", RS256, 0)
	p := newIdP(t, "", rs)
	v := newVerifier(t, p, func(o *Options) { o.TokenTypes = []string{"at+jwt", "JWT", ""} })
	for _, typ := range []any{"JWT", "jwt", nil, "at+jwt"} {
		if _, err := v.Verify(context.Background(), sign(t, rs, p.claims(), "typ", typ)); err != nil {
			t.Errorf("typ %v: %v", typ, err)
		}
	}
	if _, err := v.Verify(context.Background(), sign(t, rs, p.claims(), "typ", "dpop+jwt")); !errors.Is(err, ErrWrongType) {
		t.Errorf("typ dpop+jwt: %v", err)
	}
}

// TestNewRefuses: misconfigurations fail at New.
func TestNewRefuses(t *testing.T) {
	rs := newKey("rs", RS256, 0)
	p := newIdP(t, "", rs)
	for name, mut := range map[string]func(*Options){
		"no issuer":         func(o *Options) { o.Issuer = "" },
		"http issuer":       func(o *Options) { o.Issuer = "http://idp.example.com" },
		"issuer with query": func(o *Options) { o.Issuer += "?x=1" },
		"no audiences":      func(o *Options) { o.Audiences = nil },
		"empty audience":    func(o *Options) { o.Audiences = []string{""} },
		"alg none":          func(o *Options) { o.Algorithms = []string{"none"} },
		"alg HS256":         func(o *Options) { o.Algorithms = []string{RS256, "HS256"} },
		"alg unknown":       func(o *Options) { o.Algorithms = []string{"RS1"} },
		"bad role path":     func(o *Options) { o.Roles.Claims = []RoleClaim{{Path: "a..b"}} },
		"bad auth method": func(o *Options) {
			o.Introspection = IntrospectionOptions{ClientID: "rs", AuthMethod: "tls_client_auth"}
		},
		"wrong issuer":        func(o *Options) { o.Issuer += "/other" },
		"metadata of another": func(o *Options) { p.set(func(p *testIdP) { p.metaIssuer = "https://evil.example" }) },
	} {
		t.Run(name, func(t *testing.T) {
			defer p.set(func(p *testIdP) { p.metaIssuer = "" })
			o := Options{Issuer: p.issuer, Audiences: []string{testAudience}}
			mut(&o)
			if v, err := New(context.Background(), o); err == nil {
				t.Fatalf("New accepted it: %v", v)
			}
		})
	}
	p.set(func(p *testIdP) { p.down = true })
	if _, err := New(context.Background(), Options{Issuer: p.issuer, Audiences: []string{testAudience}}); err == nil {
		t.Error("New succeeded without the JWK Set")
	}
}

// TestDiscovery: RFC 8414 first, then OpenID Connect Discovery, for
// issuers with and without a path.
func TestDiscovery(t *testing.T) {
	for _, path := range []string{"", "/", "/realms/acme", "/tenant/v2.0"} {
		for _, oidcOnly := range []bool{false, true} {
			rs := newKey("rs", RS256, 0)
			p := newIdP(t, path, rs)
			p.oidcOnly = oidcOnly
			v := newVerifier(t, p, nil)
			if m := v.Metadata(); m.Issuer != p.issuer || !strings.HasSuffix(m.JWKSURI, "/jwks") {
				t.Errorf("%q oidc=%v: metadata %+v", path, oidcOnly, m)
			}
			if _, err := v.Verify(context.Background(), sign(t, rs, p.claims())); err != nil {
				t.Errorf("%q oidc=%v: %v", path, oidcOnly, err)
			}
		}
	}
}

// TestVerifiedTokenCache: a token verified once is answered from the
// cache until its exp, and never after.
func TestVerifiedTokenCache(t *testing.T) {
	rs := newKey("rs", RS256, 0)
	p := newIdP(t, "", rs)
	v := newVerifier(t, p, nil)
	tok := sign(t, rs, p.claims("exp", p.clock.Now().Add(2*time.Minute).Unix(), "roles", []string{"x"}))
	for i := range 3 {
		at, err := v.Verify(context.Background(), tok)
		if err != nil || at.Token != tok || at.Subject != "alice" {
			t.Fatalf("verify %d: %v %+v", i, err, at)
		}
	}
	if s := v.Stats(); s.Accepted != 3 || s.CacheHits != 2 {
		t.Errorf("stats %+v", s)
	}
	p.clock.Advance(2 * time.Minute) // at exp: the cache no longer answers; the skew still admits it
	if _, err := v.Verify(context.Background(), tok); err != nil {
		t.Fatal(err)
	}
	if s := v.Stats(); s.CacheHits != 2 {
		t.Errorf("a cache hit at exp: %+v", s)
	}
	p.clock.Advance(DefaultClockSkew)
	if _, err := v.Verify(context.Background(), tok); !errors.Is(err, ErrExpired) {
		t.Errorf("past exp and skew: %v", err)
	}
}
