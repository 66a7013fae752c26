package extauth

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	oauth "github.com/mcp-oauth/oauth"
)

// answers is what the test issuer's introspection endpoint says about
// each token.
type answers struct {
	mu sync.Mutex
	m  map[string]map[string]any
}

func (a *answers) set(token string, answer map[string]any) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.m[token] = answer
}

// introIdP returns an issuer whose introspection endpoint authenticates
// client "rs" (secret "s e/cret", to test form-encoding in Basic) and
// answers from the returned answers.
func introIdP(t *testing.T, post bool) (*testIdP, *answers) {
	p := newIdP(t, "", newKey("k1", RS256, 0))
	a := &answers{m: map[string]map[string]any{}}
	p.introspect = func(token string, r *http.Request) (int, map[string]any) {
		id, secret, ok := r.BasicAuth()
		if post {
			id, secret, ok = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret"), true
		}
		if !ok || id != "rs" || secret != map[bool]string{false: "s+e%2Fcret", true: "s e/cret"}[post] {
			return http.StatusUnauthorized, map[string]any{"error": "invalid_client"}
		}
		if r.PostForm.Get("token_type_hint") != "access_token" {
			return http.StatusBadRequest, map[string]any{"error": "invalid_request"}
		}
		a.mu.Lock()
		defer a.mu.Unlock()
		if ans, ok := a.m[token]; ok {
			return http.StatusOK, ans
		}
		return http.StatusOK, map[string]any{"active": false}
	}
	return p, a
}

func introOpts(o *Options) {
	o.Introspection = IntrospectionOptions{ClientID: "rs", ClientSecret: "s e/cret"}
}

func (p *testIdP) activeAnswer(kv ...any) map[string]any {
	c := p.claims(kv...)
	c["active"] = true
	return c
}

// TestIntrospection: opaque tokens are verified at the introspection
// endpoint; an active answer is cached, never past exp; an inactive one
// briefly; the endpoint down is a server error, not invalid_token.
func TestIntrospection(t *testing.T) {
	ctx := context.Background()
	p, a := introIdP(t, false)
	v := newVerifier(t, p, func(o *Options) { introOpts(o); o.Claims = []string{"username"} })
	now := p.clock.Now()

	a.set("opaque-1", p.activeAnswer("exp", now.Add(10*time.Second).Unix(), "scope", "notes.read", "username", "alice@example.com"))
	at, err := v.Verify(ctx, "opaque-1")
	if err != nil {
		t.Fatal(err)
	}
	if at.Subject != "alice" || at.ClientID != "cli" || at.Resource != testAudience || !slices.Equal(at.Scopes, []string{"notes.read"}) ||
		at.Claims["username"] != "alice@example.com" || at.Claims["active"] != nil || at.Token != "opaque-1" {
		t.Errorf("access token %+v", at)
	}
	if _, err := v.Verify(ctx, "opaque-1"); err != nil {
		t.Fatal(err)
	}
	if n := p.introspections.Load(); n != 1 {
		t.Fatalf("%d introspections, want 1 (cached)", n)
	}
	// The issuer revokes it; the cache (CacheTTL 30 s) would outlive exp
	// (10 s), so the answer is asked again at exp.
	a.set("opaque-1", map[string]any{"active": false})
	p.clock.Advance(10 * time.Second)
	if _, err := v.Verify(ctx, "opaque-1"); !errors.Is(err, ErrInactive) || !errors.Is(err, oauth.ErrInvalidToken) {
		t.Fatalf("after exp: %v", err)
	}
	if n := p.introspections.Load(); n != 2 {
		t.Fatalf("%d introspections, want 2", n)
	}
	// Inactive answers are reused for InactiveTTL.
	if _, err := v.Verify(ctx, "opaque-1"); !errors.Is(err, ErrInactive) {
		t.Fatal(err)
	}
	if n := p.introspections.Load(); n != 2 {
		t.Fatalf("%d introspections, want 2 (inactive cached)", n)
	}
	p.clock.Advance(DefaultIntrospectionInactiveTTL)
	v.Verify(ctx, "opaque-1")
	if n := p.introspections.Load(); n != 3 {
		t.Fatalf("%d introspections, want 3", n)
	}

	// An active answer is reused for CacheTTL at most.
	a.set("opaque-2", p.activeAnswer("exp", p.clock.Now().Add(time.Hour).Unix()))
	v.Verify(ctx, "opaque-2")
	p.clock.Advance(DefaultIntrospectionCacheTTL - time.Second)
	v.Verify(ctx, "opaque-2")
	if n := p.introspections.Load(); n != 4 {
		t.Fatalf("%d introspections, want 4", n)
	}
	p.clock.Advance(time.Second)
	v.Verify(ctx, "opaque-2")
	if n := p.introspections.Load(); n != 5 {
		t.Fatalf("%d introspections, want 5", n)
	}

	// The endpoint down: a server-side failure, never cached.
	p.set(func(p *testIdP) { p.down = true })
	_, err = v.Verify(ctx, "opaque-3")
	if !errors.Is(err, ErrIntrospectionUnavailable) || !errors.Is(err, oauth.ErrServerError) || errors.Is(err, oauth.ErrInvalidToken) {
		t.Fatalf("endpoint down: %v", err)
	}
	if e := oauth.AsError(err); e.Code != "server_error" {
		t.Errorf("oauth error %+v", e)
	}
	p.set(func(p *testIdP) { p.down = false })
	a.set("opaque-3", p.activeAnswer())
	if _, err := v.Verify(ctx, "opaque-3"); err != nil {
		t.Fatalf("after the endpoint is back: %v", err)
	}
	if s := v.Stats(); s.Introspections != 7 || s.IntrospectionFailures != 1 || s.Rejected["introspection_unavailable"] != 1 {
		t.Errorf("stats %+v", s)
	}
	if logs := logsOf(t); strings.Contains(logs, "opaque-") {
		t.Errorf("a token was logged:\n%s", logs)
	}
}

// TestIntrospectionAnswers: what an active answer must say.
func TestIntrospectionAnswers(t *testing.T) {
	ctx := context.Background()
	p, a := introIdP(t, false)
	v := newVerifier(t, p, introOpts)
	lax := newVerifier(t, p, func(o *Options) { introOpts(o); o.Introspection.AllowMissingAudience = true })
	now := p.clock.Now()
	for _, tc := range []struct {
		name      string
		answer    map[string]any
		status    int
		want      *Reason // nil: accepted
		wantLax   *Reason
		wantNoExp bool
	}{
		{"active", p.activeAnswer(), 200, nil, nil, false},
		{"inactive", map[string]any{"active": false}, 200, ErrInactive, ErrInactive, false},
		{"active as a string", map[string]any{"active": "true", "sub": "alice"}, 200, ErrIntrospectionUnavailable, ErrIntrospectionUnavailable, false},
		{"no active member", p.claims(), 200, ErrIntrospectionUnavailable, ErrIntrospectionUnavailable, false},
		{"status 401", nil, 401, ErrIntrospectionUnavailable, ErrIntrospectionUnavailable, false},
		{"other issuer", p.activeAnswer("iss", "https://evil.example"), 200, ErrWrongIssuer, ErrWrongIssuer, false},
		{"no issuer", p.activeAnswer("iss", nil), 200, nil, nil, false},
		{"other audience", p.activeAnswer("aud", "https://other.example/mcp"), 200, ErrWrongAudience, ErrWrongAudience, false},
		{"no audience", p.activeAnswer("aud", nil), 200, ErrWrongAudience, nil, false},
		{"expired", p.activeAnswer("exp", now.Add(-time.Hour).Unix()), 200, ErrExpired, ErrExpired, false},
		{"no exp", p.activeAnswer("exp", nil), 200, nil, nil, true},
		{"not yet valid", p.activeAnswer("nbf", now.Add(time.Hour).Unix()), 200, ErrNotYetValid, ErrNotYetValid, false},
		{"no sub", p.activeAnswer("sub", nil), 200, ErrMalformed, ErrMalformed, false},
		{"a refresh token", p.activeAnswer("token_type", "refresh_token"), 200, ErrWrongType, ErrWrongType, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tok := "opaque " + tc.name
			tok = strings.ReplaceAll(tok, " ", "-")
			if tc.status != 200 {
				p.set(func(p *testIdP) {
					old := p.introspect
					p.introspect = func(string, *http.Request) (int, map[string]any) { return tc.status, map[string]any{"error": "x"} }
					t.Cleanup(func() { p.set(func(p *testIdP) { p.introspect = old }) })
				})
			}
			a.set(tok, tc.answer)
			for _, c := range []struct {
				v    *Verifier
				want *Reason
			}{{v, tc.want}, {lax, tc.wantLax}} {
				at, err := c.v.Verify(ctx, tok)
				if c.want == nil {
					if err != nil {
						t.Fatal(err)
					}
					if tc.wantNoExp && !at.ExpiresAt.Equal(now.Add(DefaultIntrospectionCacheTTL)) {
						t.Errorf("ExpiresAt without exp: %v", at.ExpiresAt)
					}
					continue
				}
				if !errors.Is(err, c.want) {
					t.Fatalf("err = %v, want %v", err, c.want)
				}
			}
		})
	}
}

// TestIntrospectionClientAuth: client_secret_post and a custom
// Authenticate.
func TestIntrospectionClientAuth(t *testing.T) {
	ctx := context.Background()
	p, a := introIdP(t, true)
	a.set("tok", p.activeAnswer())
	v := newVerifier(t, p, func(o *Options) { introOpts(o); o.Introspection.AuthMethod = "client_secret_post" })
	if _, err := v.Verify(ctx, "tok"); err != nil {
		t.Fatal(err)
	}
	basic := newVerifier(t, p, introOpts) // Basic, which this endpoint does not take
	if _, err := basic.Verify(ctx, "tok"); !errors.Is(err, ErrIntrospectionUnavailable) {
		t.Fatalf("rejected client auth: %v", err)
	}
	var sawBody bool
	custom := newVerifier(t, p, func(o *Options) {
		o.Introspection = IntrospectionOptions{Authenticate: func(r *http.Request) error {
			sawBody = r.Body != nil
			return errors.New("no credentials today")
		}}
	})
	if _, err := custom.Verify(ctx, "tok"); !errors.Is(err, ErrIntrospectionUnavailable) || !sawBody {
		t.Fatalf("Authenticate failing: %v", err)
	}
}

// TestIntrospectionOfJWTs: with Introspection.JWTs a revoked JWT is
// refused within CacheTTL.
func TestIntrospectionOfJWTs(t *testing.T) {
	ctx := context.Background()
	p, a := introIdP(t, false)
	k1 := p.keys[0]
	v := newVerifier(t, p, func(o *Options) { introOpts(o); o.Introspection.JWTs = true })
	tok := sign(t, k1, p.claims("exp", p.clock.Now().Add(time.Hour).Unix()))
	a.set(tok, p.activeAnswer())
	if _, err := v.Verify(ctx, tok); err != nil {
		t.Fatal(err)
	}
	a.set(tok, map[string]any{"active": false})
	if _, err := v.Verify(ctx, tok); err != nil {
		t.Fatalf("within CacheTTL: %v", err)
	}
	p.clock.Advance(DefaultIntrospectionCacheTTL)
	if _, err := v.Verify(ctx, tok); !errors.Is(err, ErrInactive) {
		t.Fatalf("revoked: %v", err)
	}
	// A JWT whose signature fails is never sent to the issuer.
	n := p.introspections.Load()
	if _, err := v.Verify(ctx, tok[:len(tok)-4]+"AAAA"); !errors.Is(err, ErrBadSignature) {
		t.Fatal(err)
	}
	if p.introspections.Load() != n {
		t.Error("a forged JWT was introspected")
	}
}

// TestIntrospectionConcurrency: at most MaxConcurrent introspection
// requests are in flight, however many opaque tokens arrive at once.
func TestIntrospectionConcurrency(t *testing.T) {
	p, _ := introIdP(t, false)
	var mu sync.Mutex
	inFlight, peak := 0, 0
	release := make(chan struct{})
	p.introspect = func(token string, r *http.Request) (int, map[string]any) {
		mu.Lock()
		inFlight++
		peak = max(peak, inFlight)
		mu.Unlock()
		<-release
		mu.Lock()
		inFlight--
		mu.Unlock()
		return http.StatusOK, map[string]any{"active": false}
	}
	v := newVerifier(t, p, func(o *Options) { introOpts(o); o.Introspection.MaxConcurrent = 2 })
	var wg sync.WaitGroup
	for i := range 10 {
		wg.Go(func() {
			if _, err := v.Verify(context.Background(), "junk-"+strings.Repeat("x", i)); !errors.Is(err, ErrInactive) {
				t.Errorf("junk %d: %v", i, err)
			}
		})
	}
	waitFor(t, "two requests in flight", func() bool { mu.Lock(); defer mu.Unlock(); return inFlight == 2 })
	time.Sleep(20 * time.Millisecond)
	close(release)
	wg.Wait()
	if peak != 2 || p.introspections.Load() != 10 {
		t.Errorf("peak %d in flight, %d requests", peak, p.introspections.Load())
	}
}
