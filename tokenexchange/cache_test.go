package tokenexchange

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcp-oauth/oauth/internal/testclock"
)

func cachedClient(t *testing.T, s *testSTS, clock *testclock.Clock, mod func(*Options)) *Client {
	return secretClient(t, s, func(o *Options) {
		o.Now = clock.Now
		if mod != nil {
			mod(o)
		}
	})
}

// TestCacheExpiry: an issued token is served from the cache until its
// expiry less the margin, and no later; never past the subject token's
// (or actor token's) own exp when it is a JWT; not at all when its expiry
// is unknown, when the cache is off, or when it failed.
func TestCacheExpiry(t *testing.T) {
	t0 := time.Unix(1_800_000_000, 0)
	tests := []struct {
		name     string
		opts     func(*Options)
		req      Request
		respond  func(http.ResponseWriter, *stsCall)
		hitUntil time.Duration // a call at t0+hitUntil-1s hits, at t0+hitUntil misses; 0: never cached
	}{
		{"expires_in less the default margin", nil, Request{SubjectToken: "opaque"}, nil, 300*time.Second - DefaultExpiryMargin},
		{"a margin of 100 s", func(o *Options) { o.ExpiryMargin = 100 * time.Second }, Request{SubjectToken: "opaque"}, nil, 200 * time.Second},
		{"no margin", func(o *Options) { o.ExpiryMargin = -1 }, Request{SubjectToken: "opaque"}, nil, 300 * time.Second},
		{"the subject JWT expires first", nil, Request{SubjectToken: unsignedJWT(map[string]any{"exp": t0.Add(60 * time.Second).Unix()})}, nil, 60 * time.Second},
		{"the actor JWT expires first", nil, Request{SubjectToken: "opaque", ActorToken: unsignedJWT(map[string]any{"exp": t0.Add(90 * time.Second).Unix()})}, nil, 90 * time.Second},
		{"the subject JWT expires later", nil, Request{SubjectToken: unsignedJWT(map[string]any{"exp": t0.Add(time.Hour).Unix()})}, nil, 270 * time.Second},
		{"no expires_in", nil, Request{SubjectToken: "opaque"}, func(w http.ResponseWriter, _ *stsCall) {
			writeJSON(w, 200, map[string]any{"access_token": "at", "issued_token_type": TokenTypeAccessToken, "token_type": "Bearer"})
		}, 0},
		{"expires within the margin", nil, Request{SubjectToken: "opaque"}, func(w http.ResponseWriter, _ *stsCall) {
			writeJSON(w, 200, map[string]any{"access_token": "at", "issued_token_type": TokenTypeAccessToken, "token_type": "Bearer", "expires_in": 20})
		}, 0},
		{"cache off", func(o *Options) { o.CacheSize = -1 }, Request{SubjectToken: "opaque"}, nil, 0},
		{"an error", nil, Request{SubjectToken: "opaque"}, func(w http.ResponseWriter, _ *stsCall) {
			writeJSON(w, 400, map[string]any{"error": "invalid_grant"})
		}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSTS(t)
			s.setRespond(tt.respond)
			clock := testclock.New(t0)
			c := cachedClient(t, s, clock, tt.opts)
			ctx := context.Background()
			first, err1 := c.Exchange(ctx, &tt.req)
			if tt.hitUntil == 0 {
				c.Exchange(ctx, &tt.req)
				if n := s.calls.Load(); n != 2 {
					t.Fatalf("%d calls, want 2: nothing cached", n)
				}
				return
			}
			if err1 != nil {
				t.Fatal(err1)
			}
			clock.Advance(tt.hitUntil - time.Second)
			hit, err := c.Exchange(ctx, &tt.req)
			if err != nil || s.calls.Load() != 1 || hit.AccessToken != first.AccessToken {
				t.Fatalf("1 s before the deadline: %v, %d calls", err, s.calls.Load())
			}
			clock.Advance(time.Second)
			miss, err := c.Exchange(ctx, &tt.req)
			if err != nil || s.calls.Load() != 2 || miss.AccessToken == first.AccessToken {
				t.Fatalf("at the deadline: %v, %d calls", err, s.calls.Load())
			}
		})
	}
}

// TestErrorsNotCached: after a failure the next call asks again, and its
// success is cached.
func TestErrorsNotCached(t *testing.T) {
	s := newSTS(t)
	var fail atomic.Bool
	fail.Store(true)
	s.setRespond(func(w http.ResponseWriter, c *stsCall) {
		if fail.Load() {
			writeJSON(w, 503, map[string]any{"error": "temporarily_unavailable"})
			return
		}
		issue(w, c, "ok")
	})
	c := secretClient(t, s, nil)
	ctx := context.Background()
	if _, err := c.Exchange(ctx, &Request{SubjectToken: "subj"}); err == nil {
		t.Fatal("no error")
	}
	fail.Store(false)
	for range 3 {
		if tok, err := c.Exchange(ctx, &Request{SubjectToken: "subj"}); err != nil || tok.AccessToken != "ok" {
			t.Fatalf("%+v, %v", tok, err)
		}
	}
	if n := s.calls.Load(); n != 2 {
		t.Errorf("%d calls, want 2", n)
	}
}

// TestCacheKeys: a request that differs from another in any parameter
// is another cache entry; the same request is the same entry.
func TestCacheKeys(t *testing.T) {
	base := Request{SubjectToken: "subj"}
	variants := []Request{
		base,
		{SubjectToken: "subj2"},
		{SubjectToken: "subj", SubjectTokenType: TokenTypeJWT},
		{SubjectToken: "subj", ActorToken: "act"},
		{SubjectToken: "subj", ActorToken: "act", ActorTokenType: TokenTypeJWT},
		{SubjectToken: "subj", ActorToken: "act2"},
		{SubjectToken: "subj", Audience: []string{"a"}},
		{SubjectToken: "subj", Audience: []string{"a", "b"}},
		{SubjectToken: "subj", Audience: []string{"ab"}},
		{SubjectToken: "subj", Resource: []string{"urn:a"}},
		{SubjectToken: "subj", Resource: []string{"urn:b"}},
		{SubjectToken: "subj", Audience: []string{"urn:a"}}, // the same value, another parameter
		{SubjectToken: "subj", Scopes: []string{"urn:a"}},
		{SubjectToken: "subj", Scopes: []string{"read"}},
		{SubjectToken: "subj", Scopes: []string{"read", "write"}},
		{SubjectToken: "subj", RequestedTokenType: TokenTypeAccessToken},
		{SubjectToken: "subj", RequestedTokenType: TokenTypeJWT},
	}
	s := newSTS(t)
	c := secretClient(t, s, nil)
	ctx := context.Background()
	for round := range 2 {
		for i, r := range variants {
			if _, err := c.Exchange(ctx, &r); err != nil {
				t.Fatal(err)
			}
			if round == 0 && s.calls.Load() != int32(i+1) {
				t.Fatalf("variant %d (%+v) was served another's token", i, r)
			}
		}
	}
	if n := s.calls.Load(); n != int32(len(variants)) {
		t.Errorf("%d calls for %d distinct requests asked twice", n, len(variants))
	}
	// The default SubjectTokenType is the same request as naming it.
	if _, err := c.Exchange(ctx, &Request{SubjectToken: "subj", SubjectTokenType: TokenTypeAccessToken}); err != nil || s.calls.Load() != int32(len(variants)) {
		t.Errorf("the explicit default is another entry: %v", err)
	}
}

// TestCacheBounded: the cache never holds more than CacheSize tokens.
func TestCacheBounded(t *testing.T) {
	s := newSTS(t)
	c := secretClient(t, s, func(o *Options) { o.CacheSize = 8 })
	for i := range 100 {
		if _, err := c.Exchange(context.Background(), &Request{SubjectToken: fmt.Sprint("subj-", i)}); err != nil {
			t.Fatal(err)
		}
		if n := c.cache.Len(); n > 8 {
			t.Fatalf("%d entries, over the bound of 8", n)
		}
	}
}

// TestSingleFlight: N identical concurrent requests make one call to the
// STS, and each caller gets its own copy of the one token.
func TestSingleFlight(t *testing.T) {
	const n = 32
	s := newSTS(t)
	s.gate = make(chan struct{})
	c := secretClient(t, s, nil)
	req := &Request{SubjectToken: "subj", Scopes: []string{"a", "b"}}
	var wg sync.WaitGroup
	toks := make([]*Token, n)
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() { toks[i], errs[i] = c.Exchange(context.Background(), req) })
	}
	waitFor(t, func() bool { return waiters(c, req) == n })
	close(s.gate)
	wg.Wait()
	if calls := s.calls.Load(); calls != 1 {
		t.Fatalf("%d calls to the STS, want 1", calls)
	}
	for i := range n {
		if errs[i] != nil || toks[i].AccessToken != "issued-1" {
			t.Fatalf("caller %d: %+v, %v", i, toks[i], errs[i])
		}
	}
	toks[0].Scopes[0] = "changed"
	if toks[1].Scopes[0] != "a" {
		t.Error("callers share a Token")
	}
	if again, _ := c.Exchange(context.Background(), req); again.Scopes[0] != "a" {
		t.Error("a caller's change reached the cache")
	}
}

// TestSingleFlightCancel: a caller that gives up does not fail the others
// waiting for the same call; when all have given up, the call to the STS
// is canceled, and the next request starts a new one.
func TestSingleFlightCancel(t *testing.T) {
	s := newSTS(t)
	s.gate = make(chan struct{})
	c := secretClient(t, s, nil)
	req := &Request{SubjectToken: "subj"}

	ctx1, cancel1 := context.WithCancel(context.Background())
	done1 := make(chan error, 1)
	go func() { _, err := c.Exchange(ctx1, req); done1 <- err }()
	waitFor(t, func() bool { return waiters(c, req) == 1 })
	done2 := make(chan *Token, 1)
	go func() { tok, _ := c.Exchange(context.Background(), req); done2 <- tok }()
	waitFor(t, func() bool { return waiters(c, req) == 2 })
	cancel1() // the caller that started the call leaves
	if err := <-done1; !errors.Is(err, context.Canceled) {
		t.Fatalf("the leaving caller got %v", err)
	}
	close(s.gate)
	if tok := <-done2; tok == nil || tok.AccessToken != "issued-1" {
		t.Fatalf("the remaining caller got %+v", tok)
	}

	s2 := newSTS(t)
	s2.gate = make(chan struct{})
	defer close(s2.gate)
	c2 := secretClient(t, s2, nil)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for range 3 {
		wg.Go(func() { c2.Exchange(ctx, req) })
	}
	waitFor(t, func() bool { return waiters(c2, req) == 3 && s2.calls.Load() == 1 })
	cancel()
	wg.Wait()
	waitFor(t, func() bool { return s2.canceled.Load() == 1 })
	if waiters(c2, req) != -1 {
		t.Error("a canceled flight is still joinable")
	}
}

// waiters is the number of callers waiting for the flight of req, or -1
// if none is in flight.
func waiters(c *Client, req *Request) int {
	r, _ := req.normalize()
	c.mu.Lock()
	defer c.mu.Unlock()
	if f := c.flights[r.key()]; f != nil {
		return f.waiters
	}
	return -1
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("timed out")
		}
		time.Sleep(time.Millisecond)
	}
}

// TestCallerMayReuseRequest: a caller that gave up may change its
// Request while the call it started goes on for others (run with -race).
func TestCallerMayReuseRequest(t *testing.T) {
	s := newSTS(t)
	s.gate = make(chan struct{})
	c := secretClient(t, s, nil)
	req := &Request{SubjectToken: "subj", Audience: []string{"a"}, Resource: []string{"urn:r"}, Scopes: []string{"s"}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan *Token, 1)
	go func() { c.Exchange(ctx, req) }()
	waitFor(t, func() bool { return waiters(c, req) == 1 })
	go func() {
		tok, _ := c.Exchange(context.Background(), &Request{SubjectToken: "subj", Audience: []string{"a"}, Resource: []string{"urn:r"}, Scopes: []string{"s"}})
		done <- tok
	}()
	waitFor(t, func() bool { return waiters(c, req) == 2 })
	cancel()
	waitFor(t, func() bool { return waiters(c, req) == 1 })
	req.Audience[0], req.Resource[0], req.Scopes[0] = "changed", "urn:changed", "changed"
	close(s.gate)
	if tok := <-done; tok == nil || tok.Scopes[0] != "s" {
		t.Fatalf("%+v", tok)
	}
	if f := s.last(t).form; f.Get("audience") != "a" || f.Get("resource") != "urn:r" {
		t.Errorf("the form changed with the caller's Request: %v", f)
	}
}
