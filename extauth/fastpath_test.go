package extauth

import (
	"bytes"
	"context"
	"fmt"
	"reflect"
	"slices"
	"testing"
	"unicode/utf8"
)

// The unseen-token path avoids golang-jwt's layers, allocations and
// copies (verifySignature, typeKey, endOfString, the scratch buffers);
// these tests hold each shortcut to what it replaces.

// TestVerifySignatureLikeGolangJWT: verifySignature answers as
// golang-jwt's Verify of the same algorithm, for good signatures, altered
// ones, and keys of every type.
func TestVerifySignatureLikeGolangJWT(t *testing.T) {
	algs := []string{RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, ES512, EdDSA}
	keys := map[string]*testKey{}
	for _, alg := range algs {
		keys[alg] = newKey("k", alg, 1)
	}
	in := "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9"
	for _, alg := range algs {
		sig, err := method(alg).Sign(in, keys[alg].priv)
		if err != nil {
			t.Fatal(err)
		}
		flipped := slices.Clone(sig)
		flipped[len(flipped)/2] ^= 1
		sigs := map[string][]byte{
			"good": sig, "flipped": flipped, "truncated": sig[:len(sig)-1], "longer": append(slices.Clone(sig), 0),
			"empty": nil, "zeros": make([]byte, len(sig)),
		}
		for name, s := range sigs {
			for kalg, k := range keys {
				for _, input := range []string{in, in + "x"} {
					want := method(alg).Verify(input, s, k.priv.Public()) == nil
					if got := verifySignature(alg, input, s, k.priv.Public()); got != want {
						t.Errorf("%s, %s signature, %s key, input %q: verifySignature = %v, golang-jwt %v", alg, name, kalg, input, got, want)
					}
				}
			}
		}
	}
	if verifySignature("HS256", in, nil, []byte("secret")) || verifySignature("none", in, nil, nil) {
		t.Error("verifySignature accepted an algorithm it does not implement")
	}
}

// TestAlgName: algName interns the accepted algorithms and
// keeps any other name as written.
func TestAlgName(t *testing.T) {
	for _, a := range append(DefaultAlgorithms(), RS384, RS512, PS384, PS512, ES384, ES512, "HS256", "none", "rs256", "") {
		if got := algName([]byte(a)); got != a {
			t.Errorf("algName(%q) = %q", a, got)
		}
	}
	if n := testing.AllocsPerRun(100, func() { algName([]byte(RS256)) }); n != 0 {
		t.Errorf("algName allocates %v times", n)
	}
}

// FuzzTypeKey: typeKey normalizes typ as normType does.
func FuzzTypeKey(f *testing.F) {
	for _, s := range []string{"JWT", "at+jwt", "application/AT+JWT", " Application/jwt\t", "\vJWT\f", "APPLICATION/", "", "ÄT+JWT", "at+jwt\u00a0", string(make([]byte, 70))} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, typ string) {
		var buf [64]byte
		if got, want := string(typeKey([]byte(typ), buf[:])), normType(typ); got != want {
			t.Fatalf("typeKey(%q) = %q, normType %q", typ, got, want)
		}
	})
}

// endOfStringLoop is endOfString as it was, a byte at a time.
func endOfStringLoop(b []byte, i int) int {
	for i++; i < len(b); i++ {
		switch b[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
	return len(b)
}

// FuzzEndOfString: endOfString ends every string where the byte-at-a-time
// scan does, for any input, and plainString answers as bytes.IndexByte and
// utf8.Valid.
func FuzzEndOfString(f *testing.F) {
	for _, s := range []string{`"abc"`, `"a\"b"`, `"a\\"b"`, `"\\\\\"x"`, `"`, `"\`, `"abc`, `"\"`, `"0123456789abcdef0123\"45"x"`, `"01234567\\"`, "\"0123456\xff\\\"ab\"", "abcdefgh\u00e9ijklmnop\\q"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if got, want := plainString(b), bytes.IndexByte(b, '\\') < 0 && utf8.Valid(b); got != want {
			t.Fatalf("plainString(%q) = %v", b, got)
		}
		for i, c := range b {
			if c == '"' {
				if got, want := endOfString(b, i), endOfStringLoop(b, i); got != want {
					t.Fatalf("endOfString(%q, %d) = %d, want %d", b, i, got, want)
				}
			}
		}
	})
}

// TestScratchNotRetained: nothing a Verify returns refers to the buffers
// that later tokens are decoded into.
func TestScratchNotRetained(t *testing.T) {
	rs := newKey("rs", RS256, 0)
	p := newIdP(t, "", rs)
	v := newVerifier(t, p, func(o *Options) {
		o.Claims = []string{"*"}
		o.Roles.Claims = []RoleClaim{{Path: "realm_access.roles"}, {Path: "groups"}}
		o.VerifiedTokenCacheSize = -1
	})
	token := func(i int) string {
		s := fmt.Sprintf("%03d", i)
		return sign(t, rs, p.claims("sub", "user-"+s, "jti", "jti-"+s, "scope", "a"+s+" b"+s, "client_id", "cli-"+s,
			"realm_access", map[string]any{"roles": []any{"r" + s, "q" + s}}, "groups", "g"+s+" h"+s,
			"email", "e"+s+"@example.com", "nested", map[string]any{"k" + s: []any{"v" + s, 1.5}}))
	}
	ctx := context.Background()
	first, err := v.Verify(ctx, token(0))
	if err != nil {
		t.Fatal(err)
	}
	want := *first
	want.Scopes, want.Roles = slices.Clone(first.Scopes), slices.Clone(first.Roles)
	want.Claims = deepCopy(first.Claims).(map[string]any)
	if want.Subject != "user-000" || !slices.Equal(want.Roles, []string{"r000", "q000", "g000", "h000"}) || want.Claims["email"] != "e000@example.com" {
		t.Fatalf("first token: %+v", want)
	}
	for i := 1; i < 50; i++ {
		if _, err := v.Verify(ctx, token(i)); err != nil {
			t.Fatal(err)
		}
	}
	if !reflect.DeepEqual(*first, want) {
		t.Fatalf("the first answer changed as other tokens were verified:\n%+v\nwant\n%+v", *first, want)
	}
}

// deepCopy copies a decoded JSON value, strings included.
func deepCopy(v any) any {
	switch t := v.(type) {
	case map[string]any:
		m := make(map[string]any, len(t))
		for k, e := range t {
			m[string(bytes.Clone([]byte(k)))] = deepCopy(e)
		}
		return m
	case []any:
		a := make([]any, len(t))
		for i, e := range t {
			a[i] = deepCopy(e)
		}
		return a
	case string:
		return string(bytes.Clone([]byte(t)))
	}
	return v
}

// TestUnseenAllocations bounds the allocations of an unseen RS256 token
// beyond those of crypto/rsa, so that the fast path stays fast.
func TestUnseenAllocations(t *testing.T) {
	if testing.Short() {
		t.Skip("RSA signing")
	}
	rs := newKey("rs", RS256, 0)
	p := newIdP(t, "", rs)
	v := newVerifier(t, p, func(o *Options) {
		o.Logger = nil
		o.TokenTypes = []string{"at+jwt", "JWT"}
		o.Roles.Claims = []RoleClaim{{Path: "realm_access.roles"}}
	})
	tok := sign(t, rs, benchClaims(p, "j"), "typ", "JWT")
	dot := bytes.LastIndexByte([]byte(tok), '.')
	sig, _ := b64.DecodeString(tok[dot+1:])
	pub := rs.priv.Public()
	raw := testing.AllocsPerRun(50, func() { verifySignature(RS256, tok[:dot], sig, pub) })
	full := testing.AllocsPerRun(50, func() {
		v.cache.Clear()
		if _, err := v.Verify(context.Background(), tok); err != nil {
			t.Fatal(err)
		}
	})
	// The kid, the claims' roots, at and its strings, scopes and roles, the
	// cache entry: 9 with Go 1.26.
	t.Logf("allocations: %v, of which the signature check %v", full, raw)
	if extra := full - raw; extra > 10 {
		t.Errorf("an unseen token costs %v allocations beyond the signature check's %v", extra, raw)
	}
}
