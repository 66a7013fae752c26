package extauth

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	segjson "github.com/segmentio/encoding/json"

	oauth "github.com/mcp-oauth/oauth"
)

// The fuzz targets cover every parser of untrusted input in this
// package: the compact JWS and its header, the whole verification of a
// token, JWK Sets, introspection responses with their claims, and role
// paths over claims. `go test` runs their seeds.

// tokenSeeds returns tokens of a test issuer for the seed corpora.
func tokenSeeds(t testing.TB, p *testIdP, keys ...*testKey) []string {
	c := p.claims()
	out := []string{"", "a", "a.b.c", "eyJ.eyJ.eyJ", "eyJhbGciOiJub25lIn0.e30.", strings.Repeat("eyJ", 100)}
	for _, k := range keys {
		out = append(out, sign(t, k, c), sign(t, k, c, "typ", "JWT"), sign(t, k, c, "crit", []string{"x"}), sign(t, k, c, "kid", nil))
	}
	out = append(out, hmacJWS(map[string]any{"alg": "HS256", "kid": "rs", "typ": "at+jwt"}, c, []byte("secret")))
	return out
}

func FuzzParseJWS(f *testing.F) {
	rs := newKey("rs", RS256, 0)
	p := newIdP(f, "", rs)
	for _, s := range tokenSeeds(f, p, rs, newKey("ed", EdDSA, 0)) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, token string) {
		j, err := parseJWS(token)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("a parse error of another reason: %v", err)
			}
			if len(token) >= 16 && strings.Contains(err.Error(), token) {
				t.Fatalf("the error contains the token")
			}
			return
		}
		if j.alg == "" || !strings.HasPrefix(token, j.signingInput+".") {
			t.Fatalf("parsed %+v", j)
		}
	})
}

func FuzzVerify(f *testing.F) {
	rs, ed := newKey("rs", RS256, 0), newKey("ed", EdDSA, 0)
	p := newIdP(f, "", rs, ed)
	v := newVerifier(f, p, func(o *Options) {
		o.Keys.MinInterval = time.Hour // no refetch while fuzzing
		o.Roles.Claims = []RoleClaim{{Path: "realm_access.roles"}, {Path: "scp"}}
		o.Logger = nil
	})
	for _, s := range tokenSeeds(f, p, rs, ed) {
		f.Add(s)
	}
	f.Add(sign(f, rs, p.claims("realm_access", map[string]any{"roles": []any{"a", 1, nil}}, "scp", []any{"x", "y"})))
	f.Fuzz(func(t *testing.T, token string) {
		at, err := v.Verify(context.Background(), token)
		if err != nil {
			var r *rejection
			if !errors.As(err, &r) || !errors.Is(err, oauth.ErrInvalidToken) && !r.reason.server {
				t.Fatalf("refusal %v is not a typed invalid_token", err)
			}
			if len(token) >= 16 && strings.Contains(err.Error(), token) {
				t.Fatalf("the error contains the token")
			}
			return
		}
		if at.Subject == "" || at.Resource != testAudience || at.ExpiresAt.IsZero() {
			t.Fatalf("accepted %+v", at)
		}
	})
}

func FuzzParseJWKS(f *testing.F) {
	for _, k := range []*testKey{newKey("rs", RS256, 0), newKey("es", ES256, 0), newKey("e3", ES384, 0), newKey("ed", EdDSA, 0)} {
		b, _ := json.Marshal(map[string]any{"keys": []any{k.jwk}})
		f.Add(b)
	}
	f.Add([]byte(`{"keys":[{"kty":"oct","k":"AAAA"},{"kty":"EC","crv":"P-256","x":"","y":""},{"kty":"RSA","n":"AQAB","e":"AQAB"}]}`))
	f.Add([]byte(`{"keys":null}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		keys, _, err := parseJWKS(data)
		if err != nil {
			return
		}
		if len(keys) > MaxKeys {
			t.Fatalf("%d keys", len(keys))
		}
		for _, k := range keys {
			if k.pub == nil || (k.alg != "" && !k.fits(k.alg)) {
				t.Fatalf("key %+v", k)
			}
			n := 0
			for _, alg := range []string{RS256, PS256, ES256, ES384, ES512, EdDSA} {
				if k.fits(alg) {
					n++
				}
			}
			if n == 0 {
				t.Fatalf("key %+v fits no algorithm", k)
			}
		}
	})
}

func FuzzParseIntrospection(f *testing.F) {
	v := &Verifier{issuer: "https://idp.example.com", audiences: []string{testAudience}, skew: DefaultClockSkew}
	v.roles, _ = compileRoles(RoleOptions{Claims: []RoleClaim{{Path: "roles"}}, Scopes: map[string][]string{"a": {"b"}}})
	v.picker = newClaimPicker([]string{"email"}, v.roles)
	now := time.Unix(1900000000, 0)
	for _, s := range []string{
		`{"active":true,"sub":"alice","aud":"` + testAudience + `","exp":1900000100,"scope":"a b","roles":["r"]}`,
		`{"active":false}`, `{"active":"true"}`, `{"active":true} {}`, `[]`, `null`,
		`{"active":true,"sub":"x","aud":["` + testAudience + `",1],"exp":1e309}`,
		`{"active":true,"sub":"x","aud":"` + testAudience + `","iss":"https://idp.example.com","nbf":-1,"scp":["a"]}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		active, c, err := v.picker.parseIntrospection(body)
		if err != nil || !active {
			return
		}
		at, err := v.accessToken(c, now, fromIntrospection)
		if err != nil {
			var r *rejection
			if !errors.As(err, &r) {
				t.Fatalf("untyped refusal %v", err)
			}
			return
		}
		if at.Subject == "" || at.Resource != testAudience {
			t.Fatalf("accepted %+v", at)
		}
	})
}

// FuzzPickClaims compares the claims decoder with encoding/json: the same
// members for every object encoding/json decodes, an error for what it
// refuses.
func FuzzPickClaims(f *testing.F) {
	for _, s := range []string{
		`{"iss":"a","sub":"b","aud":["x","y"],"exp":1.5e9,"realm_access":{"roles":["r"]},"x":{"y":[1,{"z":"}"}]}}`,
		`{"\u0073ub":"escaped","sub":"later","a\"b":1}`, ` { } `, `{"a":"\"}\\"}`, `{"a":1}x`, `{"a":1,}`, `[1]`, `"s"`,
		`{"email":"e","name":"n","nested":{"a":[true,false,null]}}`, `{"a":-0.0e+1,"b":"\ud83d\ude00"}`,
	} {
		f.Add([]byte(s))
	}
	all := newClaimPicker([]string{"*"}, nil)
	few := newClaimPicker([]string{"email", "realm_access"}, nil)
	f.Fuzz(func(t *testing.T, data []byte) {
		var want map[string]any
		stdErr := json.Unmarshal(data, &want)
		gotSet, err := all.pick(data)
		var got map[string]any
		if gotSet != nil {
			got = gotSet.rest
			if got == nil {
				got = map[string]any{}
			}
		}
		if stdErr != nil || want == nil {
			if err == nil && !(stdErr == nil && want == nil) {
				t.Fatalf("pick accepted what encoding/json refuses (%v): %v", stdErr, got)
			}
			return
		}
		if err != nil {
			if !utf8.Valid(data) {
				return // segmentio refuses some invalid UTF-8 that encoding/json replaces
			}
			t.Fatalf("pick refused a valid object: %v", err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("pick = %v, encoding/json = %v", got, want)
		}
		sub, err := few.pick(data)
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range sub.rest {
			if few.names[k]&wantRest == 0 || !reflect.DeepEqual(v, want[k]) {
				t.Fatalf("picked %q = %v, want %v", k, v, want[k])
			}
		}
		for i, raw := range sub.used {
			name := usedName(i)
			if _, present := want[name]; present != (raw != nil) {
				t.Fatalf("claim %s: raw %q, encoding/json %v", name, raw, want[name])
			}
			if raw != nil {
				v, err := decodeValue(raw)
				if err != nil || !reflect.DeepEqual(v, want[name]) {
					t.Fatalf("claim %s = %v (%v), want %v", name, v, err, want[name])
				}
			}
		}
	})
}

// usedName is the claim name of index i of claimSet.used.
func usedName(i int) string {
	for _, n := range []string{"iss", "sub", "aud", "exp", "nbf", "iat", "jti", "client_id", "azp", "appid", "cid", "scope", "scp", "active", "token_type"} {
		if usedIndex([]byte(n)) == i {
			return n
		}
	}
	panic(i)
}

func FuzzRolePath(f *testing.F) {
	f.Add("realm_access.roles", []byte(`{"realm_access":{"roles":["a","b"]}}`))
	f.Add("resource_access.a.b.roles", []byte(`{"resource_access":{"a.b":{"roles":["c"]},"a":{"b":{"roles":"d e"}}}}`))
	f.Add("https://x.example/roles", []byte(`{"https://x.example/roles":"a b c"}`))
	f.Add("a.b.c.d.e.f.g.h", []byte(`{"a":{"b":{"c":{}}}}`))
	f.Fuzz(func(t *testing.T, path string, claimsJSON []byte) {
		m, err := compileRoles(RoleOptions{Claims: []RoleClaim{{Path: path}, {Path: path, Map: map[string][]string{"a": {"mapped"}}}}})
		if err != nil {
			return
		}
		var claims map[string]any
		if json.Unmarshal(claimsJSON, &claims) != nil || claims == nil || !segjson.Valid(claimsJSON) {
			return
		}
		c, err := newClaimPicker(nil, m).pick(claimsJSON)
		if err != nil {
			t.Fatalf("pick refused valid JSON: %v", err)
		}
		roles := m.roles(c, strings.Fields(path))
		if len(roles) > maxRoles {
			t.Fatalf("%d roles", len(roles))
		}
		seen := map[string]bool{}
		for _, r := range roles {
			if r == "" || len(r) > maxRoleLen || seen[r] {
				t.Fatalf("role %q in %q", r, roles)
			}
			seen[r] = true
		}
		// The raw lookup finds what a lookup in the decoded claims finds.
		want := decodedLookup(claims, strings.Split(path, "."))
		w := claimStrings(want)
		for _, got := range [][]string{rawStrings(lookupPath(claimsJSON, m.claims[0].prefixes)), rawStrings(m.claims[0].lookup(c.roots))} {
			if !slices.Equal(got, w) && !(len(got) == 0 && len(w) == 0) {
				t.Fatalf("raw lookup %q, decoded lookup %q", got, w)
			}
		}
	})
}

// decodedLookup is lookupPath over decoded claims, for FuzzRolePath.
func decodedLookup(claims map[string]any, segs []string) any {
	var cur any = claims
	for len(segs) > 0 {
		obj, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		found := false
		for n := len(segs); n > 0; n-- {
			if v, ok := obj[strings.Join(segs[:n], ".")]; ok {
				cur, segs, found = v, segs[n:], true
				break
			}
		}
		if !found {
			return nil
		}
	}
	return cur
}
