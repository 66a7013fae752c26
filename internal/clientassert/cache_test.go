package clientassert

import (
	"context"
	"crypto/rsa"
	"errors"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/mcp-oauth/oauth/internal/testclock"
)

const jwksURI = "https://client.example/jwks.json"

// remoteSetup is a Verifier whose clients' keys are at jwksURI, served
// by a fake fetcher.
type remoteSetup struct {
	t     *testing.T
	f     *fakeFetcher
	clock *testclock.Clock
	v     *Verifier
}

func newRemote(t *testing.T, mod func(*Options)) *remoteSetup {
	r := &remoteSetup{t: t, f: newFakeFetcher(), clock: testclock.New(t0)}
	r.v = newVerifier(t, r.clock, func(o *Options) {
		o.Fetch = r.f.Fetch
		if mod != nil {
			mod(o)
		}
	})
	return r
}

// verify presents a fresh assertion signed with k, under kid, for the
// client whose keys are at uri.
func (r *remoteSetup) verify(ctx context.Context, uri string, k *testKey, kid string) error {
	r.t.Helper()
	alg := "ES256"
	if _, ok := k.priv.(*rsa.PrivateKey); ok {
		alg = "RS256"
	}
	a := signJWS(r.t, alg, k.priv, map[string]any{"alg": alg, "kid": kid}, claimsFor(clientA, r.clock.Now()))
	return r.v.Verify(ctx, clientA, KeySource{JWKSURI: uri}, AssertionType, a)
}

func (r *remoteSetup) expect(want error, k *testKey, kid string, fetches int) {
	r.t.Helper()
	err := r.verify(context.Background(), jwksURI, k, kid)
	if want == nil && err != nil {
		r.t.Fatalf("Verify: %v", err)
	}
	if want != nil && !errors.Is(err, want) {
		r.t.Fatalf("Verify = %v, want %v", err, want)
	}
	if n := r.f.count(jwksURI); n != fetches {
		r.t.Fatalf("fetches = %d, want %d", n, fetches)
	}
}

// TestKeySetCache checks cache hits and the maximum age.
func TestKeySetCache(t *testing.T) {
	fk := fixtures()
	r := newRemote(t, nil)
	r.f.set(jwksURI, jwks(t, jwk(t, fk.ec, nil), jwk(t, fk.rsa, nil)), nil)
	r.expect(nil, fk.ec, "ec-1", 1)
	r.expect(nil, fk.rsa, "rsa-1", 1)
	r.clock.Advance(DefaultKeySetMaxAge - time.Second)
	r.expect(nil, fk.ec, "ec-1", 1)
	r.clock.Advance(time.Second)
	r.expect(nil, fk.ec, "ec-1", 2)
	r.expect(nil, fk.ec, "ec-1", 2)
}

// TestKeySetUnknownKid checks that an unknown kid makes the document be
// fetched again, at most once per refetch interval, so that rotation is
// picked up and junk kids cannot make the server hammer the client.
func TestKeySetUnknownKid(t *testing.T) {
	fk := fixtures()
	r := newRemote(t, nil)
	r.f.set(jwksURI, jwks(t, jwk(t, fk.ec, nil)), nil)
	r.expect(nil, fk.ec, "ec-1", 1)

	// The client rotates to a new key; the document was fetched moments
	// ago, so the new kid is unknown for now.
	r.f.set(jwksURI, jwks(t, jwk(t, fk.rsa, nil)), nil)
	r.expect(ErrUnknownKey, fk.rsa, "rsa-1", 1)
	r.clock.Advance(DefaultKeySetRefetchInterval)
	r.expect(nil, fk.rsa, "rsa-1", 2)
	r.expect(ErrUnknownKey, fk.ec, "ec-1", 2) // the old key is gone

	// Made-up kids: one refetch per interval, however many arrive.
	r.clock.Advance(DefaultKeySetRefetchInterval)
	for range 5 {
		r.expect(ErrUnknownKey, fk.rsa, "made-up", 3)
	}
	r.expect(nil, fk.rsa, "rsa-1", 3)
}

// TestKeySetFetchFailure checks that cached keys keep working while the
// document cannot be fetched, up to KeySetMaxStale, and that unknown
// kids fail closed meanwhile.
func TestKeySetFetchFailure(t *testing.T) {
	fk := fixtures()
	r := newRemote(t, nil)
	r.f.set(jwksURI, jwks(t, jwk(t, fk.ec, nil)), nil)
	r.expect(nil, fk.ec, "ec-1", 1)
	down := errors.New("connection refused")
	r.f.set(jwksURI, nil, down)

	r.clock.Advance(DefaultKeySetMaxAge)
	r.expect(nil, fk.ec, "ec-1", 2) // stale, after a failed fetch
	r.expect(nil, fk.ec, "ec-1", 2) // no new attempt within the interval
	r.expect(ErrUnknownKey, fk.rsa, "rsa-1", 2)
	r.clock.Advance(DefaultKeySetRefetchInterval)
	r.expect(ErrUnknownKey, fk.rsa, "rsa-1", 3)

	r.clock.Advance(DefaultKeySetMaxStale)
	err := r.verify(context.Background(), jwksURI, fk.ec, "ec-1")
	if !errors.Is(err, ErrKeysUnavailable) || !errors.Is(err, down) {
		t.Fatalf("after MaxStale: %v", err)
	}

	// Recovery.
	r.clock.Advance(DefaultKeySetRefetchInterval)
	r.f.set(jwksURI, jwks(t, jwk(t, fk.ec, nil)), nil)
	r.expect(nil, fk.ec, "ec-1", 5)
}

// TestKeySetFetchFailureUncached checks that a failed first fetch is
// remembered for the refetch interval (no retry storm).
func TestKeySetFetchFailureUncached(t *testing.T) {
	fk := fixtures()
	r := newRemote(t, nil)
	r.f.set(jwksURI, nil, errors.New("503"))
	r.expect(ErrKeysUnavailable, fk.ec, "ec-1", 1)
	r.expect(ErrKeysUnavailable, fk.ec, "ec-1", 1)
	r.clock.Advance(DefaultKeySetRefetchInterval)
	r.f.set(jwksURI, jwks(t, jwk(t, fk.ec, nil)), nil)
	r.expect(nil, fk.ec, "ec-1", 2)
}

// TestKeySetBadDocument checks that unacceptable documents are refused.
func TestKeySetBadDocument(t *testing.T) {
	fk := fixtures()
	for name, body := range map[string][]byte{
		"not JSON":    []byte("<html>"),
		"private key": jwks(t, privateJWK(t, fk.ec)),
		"too large":   append(jwks(t, jwk(t, fk.ec, nil)), make([]byte, MaxJWKSBytes)...),
		"symmetric":   jwks(t, map[string]any{"kty": "oct", "kid": "ec-1"}),
	} {
		t.Run(name, func(t *testing.T) {
			r := newRemote(t, nil)
			r.f.set(jwksURI, body, nil)
			r.expect(ErrKeysUnavailable, fk.ec, "ec-1", 1)
		})
	}
}

// TestKeySetURIChecked checks that a jwks_uri is checked before it is
// fetched, and that loopback http needs AllowHTTPLoopback.
func TestKeySetURIChecked(t *testing.T) {
	fk := fixtures()
	const local = "http://127.0.0.1:8080/jwks"
	r := newRemote(t, nil)
	r.f.set(local, jwks(t, jwk(t, fk.ec, nil)), nil)
	if err := r.verify(context.Background(), local, fk.ec, "ec-1"); !errors.Is(err, ErrKeysUnavailable) || r.f.count(local) != 0 {
		t.Fatalf("http jwks_uri: %v, %d fetches", err, r.f.count(local))
	}
	r = newRemote(t, func(o *Options) { o.AllowHTTPLoopback = true })
	r.f.set(local, jwks(t, jwk(t, fk.ec, nil)), nil)
	if err := r.verify(context.Background(), local, fk.ec, "ec-1"); err != nil {
		t.Fatalf("loopback jwks_uri with AllowHTTPLoopback: %v", err)
	}
}

// TestKeySetCacheBounded checks that the cache holds at most
// KeySetCacheSize documents, evicting the one fetched longest ago.
func TestKeySetCacheBounded(t *testing.T) {
	fk := fixtures()
	r := newRemote(t, func(o *Options) { o.KeySetCacheSize = 2 })
	uris := []string{"https://a.example/jwks", "https://b.example/jwks", "https://c.example/jwks"}
	for _, u := range uris {
		r.f.set(u, jwks(t, jwk(t, fk.ec, nil)), nil)
	}
	for _, u := range uris {
		if err := r.verify(context.Background(), u, fk.ec, "ec-1"); err != nil {
			t.Fatal(err)
		}
		r.clock.Advance(time.Second)
	}
	if n := r.v.remote.cachedKeySets(); n != 2 {
		t.Fatalf("cached %d documents, want 2", n)
	}
	// a was evicted when c came; b and c are hits; a again evicts b.
	for _, u := range []string{uris[1], uris[2], uris[0]} {
		if err := r.verify(context.Background(), u, fk.ec, "ec-1"); err != nil {
			t.Fatal(err)
		}
	}
	for i, want := range []int{2, 1, 1} {
		if n := r.f.count(uris[i]); n != want {
			t.Errorf("%s fetched %d times, want %d", uris[i], n, want)
		}
	}
	if n := r.v.remote.cachedKeySets(); n != 2 {
		t.Fatalf("cached %d documents, want 2", n)
	}
}

// TestKeySetSingleFlight checks that concurrent verifications share one
// fetch, both for a first fetch and for an unknown-kid refetch.
func TestKeySetSingleFlight(t *testing.T) {
	fk := fixtures()
	synctest.Test(t, func(t *testing.T) {
		r := newRemote(t, nil)
		gate := make(chan struct{})
		r.f.gate = gate
		r.f.set(jwksURI, jwks(t, jwk(t, fk.ec, nil)), nil)
		run := func(k *testKey, kid string, n int) []error {
			assertions := make([]string, n)
			for i := range assertions {
				assertions[i] = signJWS(t, "ES256", k.priv, map[string]any{"alg": "ES256", "kid": kid}, claimsFor(clientA, r.clock.Now()))
			}
			errs := make([]error, n)
			var wg sync.WaitGroup
			for i, a := range assertions {
				wg.Go(func() {
					errs[i] = r.v.Verify(context.Background(), clientA, KeySource{JWKSURI: jwksURI}, AssertionType, a)
				})
			}
			synctest.Wait() // every goroutine waits for the one fetch
			gate <- struct{}{}
			wg.Wait()
			return errs
		}
		for i, err := range run(fk.ec, "ec-1", 20) {
			if err != nil {
				t.Errorf("verify %d: %v", i, err)
			}
		}
		if n := r.f.count(jwksURI); n != 1 {
			t.Fatalf("%d fetches, want 1", n)
		}
		// Rotation: twenty assertions under the new kid, one refetch.
		ec2 := &testKey{kid: "ec-2", priv: fk.ec.priv}
		r.f.set(jwksURI, jwks(t, jwk(t, ec2, nil)), nil)
		r.clock.Advance(DefaultKeySetRefetchInterval)
		for i, err := range run(ec2, "ec-2", 20) {
			if err != nil {
				t.Errorf("verify %d after rotation: %v", i, err)
			}
		}
		if n := r.f.count(jwksURI); n != 2 {
			t.Fatalf("%d fetches, want 2", n)
		}
	})
}

// TestKeySetWaiterCancel checks that a verification waiting for another's
// fetch can give up, and that the fetch is not cancelled with it nor
// with the request that started it; and that FetchTimeout bounds it.
func TestKeySetWaiterCancel(t *testing.T) {
	fk := fixtures()
	synctest.Test(t, func(t *testing.T) {
		r := newRemote(t, nil)
		gate := make(chan struct{})
		r.f.gate = gate
		r.f.set(jwksURI, jwks(t, jwk(t, fk.ec, nil)), nil)
		first, cancelFirst := context.WithCancel(context.Background())
		done := make(chan error)
		go func() { done <- r.verify(first, jwksURI, fk.ec, "ec-1") }()
		synctest.Wait()
		cancelFirst() // the starter's request goes away: the fetch goes on
		ctx, cancel := context.WithCancel(context.Background())
		waiter := make(chan error)
		go func() { waiter <- r.verify(ctx, jwksURI, fk.ec, "ec-1") }()
		synctest.Wait()
		cancel()
		if err := <-waiter; !errors.Is(err, ErrKeysUnavailable) || !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled waiter: %v", err)
		}
		gate <- struct{}{}
		if err := <-done; err != nil {
			t.Fatalf("first: %v", err)
		}
	})
	synctest.Test(t, func(t *testing.T) {
		r := newRemote(t, func(o *Options) { o.FetchTimeout = time.Second })
		r.f.hang = true
		start := time.Now()
		err := r.verify(context.Background(), jwksURI, fk.ec, "ec-1")
		if !errors.Is(err, ErrKeysUnavailable) || !errors.Is(err, context.DeadlineExceeded) || time.Since(start) != time.Second {
			t.Fatalf("hung fetch: %v after %v", err, time.Since(start))
		}
	})
}
