package extauth

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	oauth "github.com/mcp-oauth/oauth"
)

// TestKeyRotation: a key the issuer adds is picked up when a token names
// it, without a restart; a key it withdraws stops verifying, also for
// tokens in the verified-token cache.
func TestKeyRotation(t *testing.T) {
	ctx := context.Background()
	k1, k2 := newKey("k1", RS256, 0), newKey("k2", ES256, 0)
	p := newIdP(t, "", k1)
	v := newVerifier(t, p, nil)
	long := p.claims("exp", p.clock.Now().Add(time.Hour).Unix())
	t1 := sign(t, k1, long)
	if _, err := v.Verify(ctx, t1); err != nil {
		t.Fatal(err)
	}

	p.set(func(p *testIdP) { p.keys = []*testKey{k1, k2} })
	t2 := sign(t, k2, long)
	// Right after the last fetch, an unknown kid fails closed without one.
	if _, err := v.Verify(ctx, t2); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("unknown kid within MinInterval: %v", err)
	}
	if n := p.jwksFetches.Load(); n != 1 {
		t.Fatalf("%d fetches, want 1", n)
	}
	p.clock.Advance(DefaultKeysMinInterval)
	if _, err := v.Verify(ctx, t2); err != nil {
		t.Fatalf("the rotated-in key: %v", err)
	}
	if n := p.jwksFetches.Load(); n != 2 {
		t.Fatalf("%d fetches, want 2", n)
	}

	// The issuer withdraws k1. Once the key set is past its age, a request
	// fetches it again (in the background); the cache forgets t1.
	p.set(func(p *testIdP) { p.keys = []*testKey{k2} })
	if _, err := v.Verify(ctx, t1); err != nil {
		t.Fatalf("t1 before the refetch: %v", err)
	}
	p.clock.Advance(DefaultKeysAge)
	if _, err := v.Verify(ctx, sign(t, k2, long, "jti", "other")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the background fetch", func() bool { return p.jwksFetches.Load() == 3 && v.keys.inflightDone() })
	if _, err := v.Verify(ctx, t1); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("a token of a withdrawn key: %v", err)
	}
}

// inflightDone reports whether no fetch is under way.
func (ks *keySet) inflightDone() bool {
	ks.mu.Lock()
	defer ks.mu.Unlock()
	return ks.inflight == nil
}

// TestJWKSDown: while the JWK Set cannot be fetched, cached keys keep
// verifying, unknown keys fail closed, and a burst of tokens naming
// unknown keys costs at most one fetch per MinInterval; past MaxStale,
// verification fails as a server error.
func TestJWKSDown(t *testing.T) {
	ctx := context.Background()
	k1 := newKey("k1", ES256, 0)
	p := newIdP(t, "", k1)
	v := newVerifier(t, p, func(o *Options) { o.VerifiedTokenCacheSize = -1 })
	claims := func() map[string]any { return p.claims("exp", p.clock.Now().Add(time.Hour).Unix()) }
	if _, err := v.Verify(ctx, sign(t, k1, claims())); err != nil {
		t.Fatal(err)
	}
	p.set(func(p *testIdP) { p.down = true })

	p.clock.Advance(DefaultKeysAge + time.Second) // stale: a background refetch, which fails
	if _, err := v.Verify(ctx, sign(t, k1, claims())); err != nil {
		t.Fatalf("a known key while the JWK Set is down: %v", err)
	}
	waitFor(t, "the failed background fetch", func() bool { return v.Stats().KeyFetchFailures == 1 && v.keys.inflightDone() })
	if _, err := v.Verify(ctx, sign(t, k1, claims())); err != nil {
		t.Fatalf("a known key after the failed fetch: %v", err)
	}

	burst := func() {
		t.Helper()
		var wg sync.WaitGroup
		errs := make(chan error, 200)
		for i := range 200 {
			wg.Go(func() {
				_, err := v.Verify(ctx, sign(t, newKey(fmt.Sprint("junk", i), ES256, 0), claims()))
				errs <- err
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if !errors.Is(err, ErrUnknownKey) || !errors.Is(err, oauth.ErrInvalidToken) {
				t.Fatalf("an unknown key: %v", err)
			}
		}
	}
	before := p.jwksFetches.Load()
	burst() // within MinInterval of the last attempt: no fetch at all
	if n := p.jwksFetches.Load() - before; n != 0 {
		t.Fatalf("a burst within MinInterval fetched %d times", n)
	}
	p.clock.Advance(DefaultKeysMinInterval)
	gate := make(chan struct{})
	p.set(func(p *testIdP) { p.jwksGate = gate }) // hold the fetch, so the burst piles onto it
	go func() {
		for deadline := time.Now().Add(2 * time.Second); p.jwksFetches.Load() == before && time.Now().Before(deadline); {
			time.Sleep(time.Millisecond)
		}
		time.Sleep(20 * time.Millisecond) // let the burst pile onto the held fetch
		close(gate)
	}()
	burst()
	if n := p.jwksFetches.Load() - before; n != 1 {
		t.Fatalf("a burst of 200 unknown keys fetched %d times, want 1", n)
	}
	p.set(func(p *testIdP) { p.jwksGate = nil })
	if _, err := v.Verify(ctx, sign(t, k1, claims())); err != nil {
		t.Fatalf("a known key after the burst: %v", err)
	}

	// Past MaxStale the cached keys are no longer trusted.
	p.clock.Advance(DefaultKeysMaxStale)
	_, err := v.Verify(ctx, sign(t, k1, claims()))
	if !errors.Is(err, ErrKeysUnavailable) || !errors.Is(err, oauth.ErrServerError) || errors.Is(err, oauth.ErrInvalidToken) {
		t.Fatalf("past MaxStale: %v", err)
	}
	p.set(func(p *testIdP) { p.down = false })
	p.clock.Advance(DefaultKeysMinInterval)
	if _, err := v.Verify(ctx, sign(t, k1, claims())); err != nil {
		t.Fatalf("after the JWK Set is back: %v", err)
	}
}

// TestCacheControlAge: the JWK Set is fetched again after its max-age,
// not before.
func TestCacheControlAge(t *testing.T) {
	ctx := context.Background()
	k1 := newKey("k1", EdDSA, 0)
	p := newIdP(t, "", k1)
	p.cacheControl = "public, max-age=120"
	v := newVerifier(t, p, func(o *Options) { o.VerifiedTokenCacheSize = -1 })
	tok := sign(t, k1, p.claims("exp", p.clock.Now().Add(time.Hour).Unix()))
	p.clock.Advance(119 * time.Second)
	if _, err := v.Verify(ctx, tok); err != nil {
		t.Fatal(err)
	}
	if n := p.jwksFetches.Load(); n != 1 {
		t.Fatalf("%d fetches before max-age, want 1", n)
	}
	p.clock.Advance(2 * time.Second)
	if _, err := v.Verify(ctx, tok); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the fetch after max-age", func() bool { return p.jwksFetches.Load() == 2 })
}

func TestCacheAge(t *testing.T) {
	var o KeySetOptions
	o.defaults()
	for _, tc := range []struct {
		cc   []string
		want time.Duration
	}{
		{nil, DefaultKeysAge},
		{[]string{"max-age=600"}, 10 * time.Minute},
		{[]string{"public, max-age=3600, must-revalidate"}, time.Hour},
		{[]string{"MAX-AGE=\"300\""}, 5 * time.Minute},
		{[]string{"max-age=1"}, DefaultKeysMinAge},
		{[]string{"max-age=99999999999999"}, DefaultKeysMaxAge},
		{[]string{"max-age=-5"}, DefaultKeysAge},
		{[]string{"max-age=600", "no-cache"}, DefaultKeysMinAge},
		{[]string{"no-store, max-age=600"}, DefaultKeysMinAge},
		{[]string{"max-age=abc"}, DefaultKeysAge},
	} {
		h := http.Header{}
		for _, v := range tc.cc {
			h.Add("Cache-Control", v)
		}
		if got := cacheAge(h, &o); got != tc.want {
			t.Errorf("%q: %v, want %v", tc.cc, got, tc.want)
		}
	}
}

// TestParseJWKS: only public signature keys of supported types enter,
// each checked; the rest are skipped.
func TestParseJWKS(t *testing.T) {
	small, _ := rsa.GenerateKey(rand.Reader, 1024)
	rs, es, ed := newKey("rs", RS256, 0), newKey("es", ES256, 0), newKey("ed", EdDSA, 0)
	with := func(j map[string]any, kv ...any) map[string]any {
		c := map[string]any{}
		for k, v := range j {
			c[k] = v
		}
		for i := 0; i+1 < len(kv); i += 2 {
			if kv[i+1] == nil {
				delete(c, kv[i].(string))
			} else {
				c[kv[i].(string)] = kv[i+1]
			}
		}
		return c
	}
	smallJWK := publicJWK(&small.PublicKey)
	for _, tc := range []struct {
		name    string
		key     map[string]any
		kept    bool
		skipped bool // reported as malformed
	}{
		{"RSA", rs.jwk, true, false},
		{"RSA without alg", with(rs.jwk, "alg", nil), true, false},
		{"EC", es.jwk, true, false},
		{"Ed25519", ed.jwk, true, false},
		{"encryption key", with(rs.jwk, "use", "enc"), false, false},
		{"key_ops without verify", with(rs.jwk, "key_ops", []string{"encrypt"}), false, false},
		{"key_ops verify", with(rs.jwk, "key_ops", []string{"verify"}), true, false},
		{"oct key", map[string]any{"kty": "oct", "k": "c2VjcmV0", "kid": "hs"}, false, false},
		{"HS256 alg", with(rs.jwk, "alg", "HS256"), false, false},
		{"RSA-OAEP alg", with(rs.jwk, "alg", "RSA-OAEP"), false, false},
		{"1024-bit RSA", with(smallJWK, "kid", "small"), false, true},
		{"RSA with ES256 alg", with(rs.jwk, "alg", ES256), false, true},
		{"EC with RS256 alg", with(es.jwk, "alg", RS256), false, true},
		{"EC P-256 with ES384 alg", with(es.jwk, "alg", ES384), false, true},
		{"Ed25519 with ES256 alg", with(ed.jwk, "alg", ES256), false, true},
		{"even exponent", with(rs.jwk, "e", "AAI"), false, true},
		{"bad n", with(rs.jwk, "n", "!!"), false, true},
		{"EC off the curve", with(es.jwk, "y", es.jwk["x"]), false, true},
		{"EC short x", with(es.jwk, "x", "AAAA"), false, true},
		{"unknown curve", with(es.jwk, "crv", "secp256k1"), false, false},
		{"X25519", with(ed.jwk, "crv", "X25519"), false, false},
		{"short Ed25519", with(ed.jwk, "x", "AAAA"), false, true},
		{"unknown kty", map[string]any{"kty": "PQC"}, false, false},
	} {
		data, _ := json.Marshal(map[string]any{"keys": []any{tc.key}})
		keys, skipped, err := parseJWKS(data)
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if (len(keys) == 1) != tc.kept || (len(skipped) == 1) != tc.skipped {
			t.Errorf("%s: kept %d, skipped %v", tc.name, len(keys), skipped)
		}
	}
	for _, bad := range []string{`{}`, `[]`, `{"keys":{}}`, `nope`} {
		if _, _, err := parseJWKS([]byte(bad)); err == nil {
			t.Errorf("%s: accepted", bad)
		}
	}
}
