package jwtkeys

import (
	"encoding/base64"
	"encoding/json"
	"errors"

	"strings"
	"testing"
	"time"

	oauth "github.com/mcp-oauth/oauth"

	"github.com/golang-jwt/jwt/v5"
)

func claims(now time.Time) *Claims {
	return &Claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer: "https://as.example", Subject: "alice", Audience: jwt.ClaimStrings{"https://rs.example/mcp"},
			ExpiresAt: jwt.NewNumericDate(now.Add(time.Hour)), IssuedAt: jwt.NewNumericDate(now), ID: "jti-1",
		},
		ClientID: "c1", Scope: "mcp", GrantID: "g1",
	}
}

func TestSignVerify(t *testing.T) {
	now := time.Now()
	for _, alg := range []string{ES256, EdDSA} {
		t.Run(alg, func(t *testing.T) {
			rec, err := Generate(alg, now)
			if err != nil {
				t.Fatal(err)
			}
			k, err := Parse(rec)
			if err != nil {
				t.Fatal(err)
			}
			other, _ := Generate(alg, now)
			ok, _ := Parse(other)
			v := &Verifier{Issuer: "https://as.example", Audiences: []string{"https://rs.example/mcp"}, Lookup: func(kid string) *Key {
				if kid == k.ID {
					return k
				}
				return nil
			}}
			tok, err := k.Sign(claims(now))
			if err != nil {
				t.Fatal(err)
			}
			c, err := v.Verify(tok)
			if err != nil || c.Subject != "alice" || c.GrantID != "g1" || c.ClientID != "c1" {
				t.Fatalf("Verify = %+v, %v", c, err)
			}
			mut := func(f func(*Claims)) string {
				c := claims(now)
				f(c)
				s, err := k.Sign(c)
				if err != nil {
					t.Fatal(err)
				}
				return s
			}
			forged, _ := ok.Sign(claims(now))
			forged = strings.Replace(forged, strings.SplitN(forged, ".", 2)[0], strings.SplitN(tok, ".", 2)[0], 1) // claim k's kid
			for name, bad := range map[string]string{
				"wrong audience": mut(func(c *Claims) { c.Audience = jwt.ClaimStrings{"https://rs.example/other"} }),
				"wrong issuer":   mut(func(c *Claims) { c.Issuer = "https://evil.example" }),
				"expired":        mut(func(c *Claims) { c.ExpiresAt = jwt.NewNumericDate(now.Add(-time.Minute)) }),
				"no exp":         mut(func(c *Claims) { c.ExpiresAt = nil }),
				"no grant":       mut(func(c *Claims) { c.GrantID = "" }),
				"forged":         forged,
				"truncated":      tok[:len(tok)-4],
				"junk":           "a.b.c",
				"alg none":       "eyJhbGciOiJub25lIiwidHlwIjoiYXQrand0In0." + strings.Split(tok, ".")[1] + ".",
			} {
				if _, err := v.Verify(bad); err == nil {
					t.Errorf("%s: verified", name)
				}
			}
		})
	}
}

func TestWrongTyp(t *testing.T) {
	rec, _ := Generate(ES256, time.Now())
	k, _ := Parse(rec)
	tk := jwt.NewWithClaims(jwt.SigningMethodES256, claims(time.Now()))
	tk.Header["kid"] = k.ID // typ stays "JWT": an ID token or other JWT, not an access token
	s, err := tk.SignedString(k.Private)
	if err != nil {
		t.Fatal(err)
	}
	v := &Verifier{Issuer: "https://as.example", Audiences: []string{"https://rs.example/mcp"}, Lookup: func(string) *Key { return k }}
	if _, err := v.Verify(s); err == nil {
		t.Fatal("a JWT without typ at+jwt verified")
	}
}

func TestJWKSRoundTrip(t *testing.T) {
	var keys []*Key
	for _, alg := range []string{ES256, EdDSA} {
		rec, _ := Generate(alg, time.Now())
		k, _ := Parse(rec)
		keys = append(keys, k)
	}
	b, err := MarshalJWKS(keys)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), `"d"`) {
		t.Fatal("JWKS leaks a private part")
	}
	got, err := ParseJWKS(b)
	if err != nil || len(got) != 2 {
		t.Fatalf("ParseJWKS = %v, %v", got, err)
	}
	for i, k := range got {
		if k.ID != keys[i].ID || k.Algorithm != keys[i].Algorithm {
			t.Errorf("key %d: %s/%s, want %s/%s", i, k.ID, k.Algorithm, keys[i].ID, keys[i].Algorithm)
		}
		tok, _ := keys[i].Sign(claims(time.Now()))
		v := &Verifier{Issuer: "https://as.example", Audiences: []string{"https://rs.example/mcp"}, Lookup: func(string) *Key { return k }}
		if _, err := v.Verify(tok); err != nil {
			t.Errorf("key %d parsed from JWKS does not verify: %v", i, err)
		}
	}
}

func FuzzParseJWKS(f *testing.F) {
	rec, _ := Generate(ES256, time.Now())
	k, _ := Parse(rec)
	b, _ := MarshalJWKS([]*Key{k})
	f.Add(b)
	f.Add([]byte(`{"keys":[{"kty":"OKP","crv":"Ed25519","x":"AAAA"}]}`))
	f.Add([]byte(`{"keys":[{"kty":"EC","crv":"P-256","x":"","y":""}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		keys, err := ParseJWKS(data)
		if err != nil {
			return
		}
		for _, k := range keys {
			if k.Public == nil {
				t.Fatal("nil public key")
			}
		}
	})
}

// FuzzVerify: arbitrary input never panics and never verifies.
func FuzzVerify(f *testing.F) {
	rec, _ := Generate(ES256, time.Now())
	k, _ := Parse(rec)
	tok, _ := k.Sign(claims(time.Now()))
	f.Add(tok[:len(tok)-1])
	f.Add("eyJhbGciOiJub25lIn0.e30.")
	f.Add("..")
	f.Add("a.b.c.d")
	withClaims := claims(time.Now())
	withClaims.Extra = map[string]any{"tenant": "acme", "n": 1.5}
	withClaims.SealedExtra = map[string]any{"account": "a"}
	if s, err := k.Sign(withClaims); err == nil {
		f.Add(s[:len(s)-2])
	}
	v := &Verifier{Issuer: "https://as.example", Audiences: []string{"https://rs.example/mcp"}, Lookup: func(string) *Key { return k }}
	f.Fuzz(func(t *testing.T, s string) {
		if s == tok {
			return
		}
		if _, err := v.Verify(s); err == nil {
			t.Fatalf("verified %q", s)
		}
	})
}

// TestCustomClaims: custom claims travel in the token and come back in
// Extra (and in the AccessToken); a reserved name is refused at signing,
// whatever its value, and never lands in Extra when parsing.
func TestCustomClaims(t *testing.T) {
	now := time.Now()
	rec, _ := Generate(ES256, now)
	k, _ := Parse(rec)
	v := &Verifier{Issuer: "https://as.example", Audiences: []string{"https://rs.example/mcp"}, Lookup: func(string) *Key { return k }}
	c := claims(now)
	c.Extra = map[string]any{"tenant": "acme", "role": "admin", "limits": map[string]any{"rpm": 60.0}}
	tok, err := k.Sign(c)
	if err != nil {
		t.Fatal(err)
	}
	got, err := v.Verify(tok)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Extra) != 3 || got.Extra["tenant"] != "acme" || got.Extra["role"] != "admin" || got.Extra["limits"].(map[string]any)["rpm"] != 60.0 {
		t.Fatalf("Extra = %#v", got.Extra)
	}
	if at := got.AccessToken(tok); at.Claims["tenant"] != "acme" || at.Subject != "alice" {
		t.Fatalf("AccessToken = %+v", at)
	}
	// Without custom claims, Extra stays nil and the token is as before.
	plain, _ := k.Sign(claims(now))
	if got, err := v.Verify(plain); err != nil || got.Extra != nil {
		t.Fatalf("plain: Extra = %#v, %v", got.Extra, err)
	}
	for _, name := range []string{"iss", "sub", "aud", "exp", "nbf", "iat", "jti", "client_id", "scope", "gid", "cnf", "act", "mcpauth_x",
		// encoding/json matches names case-insensitively, with Unicode
		// folding: these would replace sub, scope, exp and aud.
		"Sub", "SCOPE", "Exp", "AUD", "ſub", "ſcope", "Client_ID", "GID", "McpAuth_sealed", "mcpauth_ſealed", "MCPAUTH"} {
		c := claims(now)
		c.Extra = map[string]any{"tenant": "acme", name: "x"}
		if _, err := k.Sign(c); !errors.Is(err, oauth.ErrReservedClaim) || !strings.Contains(err.Error(), name) {
			t.Errorf("Sign with custom %q = %v, want ErrReservedClaim naming it", name, err)
		}
	}
	var parsed Claims
	if err := json.Unmarshal([]byte(`{"sub":"a","mcpauth_y":1,"scope":"mcp","x":true}`), &parsed); err != nil {
		t.Fatal(err)
	}
	if len(parsed.Extra) != 1 || parsed.Extra["x"] != true || parsed.Scope != "mcp" {
		t.Fatalf("parsed = %+v", parsed)
	}
}

// TestSealedClaims: sealed claims travel encrypted (the payload does not
// hold them), open into Extra for a verifier with the private key, are
// left out by one with the public key alone, and are bound to their
// token's jti.
func TestSealedClaims(t *testing.T) {
	now := time.Now()
	rec, _ := Generate(ES256, now)
	k, _ := Parse(rec)
	v := &Verifier{Issuer: "https://as.example", Audiences: []string{"https://rs.example/mcp"}, Lookup: func(string) *Key { return k }}
	c := claims(now)
	c.Extra = map[string]any{"tenant": "acme"}
	c.SealedExtra = map[string]any{"account": "acct-secret-42"}
	tok, err := k.Sign(c)
	if err != nil {
		t.Fatal(err)
	}
	payload, _ := base64.RawURLEncoding.DecodeString(strings.Split(tok, ".")[1])
	if strings.Contains(string(payload), "acct-secret-42") || strings.Contains(string(payload), "account") || !strings.Contains(string(payload), `"mcpauth_sealed":"`) {
		t.Fatalf("payload %s", payload)
	}
	got, err := v.Verify(tok)
	if err != nil || got.Extra["account"] != "acct-secret-42" || got.Extra["tenant"] != "acme" || got.Sealed != "" {
		t.Fatalf("Verify = %+v, %v", got, err)
	}
	// A verifier with the public key only (a remote resource server).
	pub := &Key{ID: k.ID, Algorithm: k.Algorithm, Public: k.Public}
	rv := &Verifier{Issuer: v.Issuer, Audiences: v.Audiences, Lookup: func(string) *Key { return pub }}
	if got, err := rv.Verify(tok); err != nil || got.Extra["tenant"] != "acme" || got.Extra["account"] != nil {
		t.Fatalf("public-key Verify = %+v, %v", got, err)
	}
	// The sealed claim of one token, copied into another (another jti).
	var first Claims
	json.Unmarshal(payload, &first)
	c2 := claims(now)
	c2.ID = "jti-2"
	c2.Sealed = first.Sealed
	moved, err := k.Sign(c2)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(moved); err == nil {
		t.Fatal("a sealed claim moved to another token opened")
	}
	for name, bad := range map[string]map[string]any{"reserved": {"sub": "x"}, "mcpauth": {"mcpauth_x": 1}, "also plain": {"tenant": "x"}} {
		c := claims(now)
		c.Extra = map[string]any{"tenant": "acme"}
		c.SealedExtra = bad
		if _, err := k.Sign(c); err == nil {
			t.Errorf("%s sealed claim accepted", name)
		}
	}
}

// FuzzClaimsJSON: the claims decoder (run on a token's payload before its
// signature is known good) never panics, and never puts a reserved name
// in Extra.
func FuzzClaimsJSON(f *testing.F) {
	for _, seed := range []string{`{}`, `{"sub":"a","x":1}`, `{"mcpauth_sealed":"zz","scope":"a b","aud":["x"]}`, `{"exp":"soon"}`, `[]`, `{"a":{"b":[1,null,true]}}`} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var c Claims
		if err := json.Unmarshal(b, &c); err != nil {
			return
		}
		for name := range c.Extra {
			if Reserved(name) {
				t.Fatalf("reserved claim %q in Extra", name)
			}
		}
	})
}

// TestClaimsDecodeExactNames: a payload whose keys differ from the
// registered names only in case decodes none of them into the registered
// fields, and none into Extra.
func TestClaimsDecodeExactNames(t *testing.T) {
	var c Claims
	if err := json.Unmarshal([]byte(`{"sub":"alice","Sub":"root","ſcope":"admin","scope":"mcp","EXP":99999999999,"Aud":"x","tenant":"t"}`), &c); err != nil {
		t.Fatal(err)
	}
	if c.Subject != "alice" || c.Scope != "mcp" || c.ExpiresAt != nil || len(c.Audience) != 0 || len(c.Extra) != 1 || c.Extra["tenant"] != "t" {
		t.Fatalf("decoded %+v, Extra %v", c, c.Extra)
	}
}
