package provider_test

import (
	"context"
	"errors"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/modelcontextprotocol/go-sdk/oauthex"

	oauth "github.com/mcp-oauth/oauth"
	"github.com/mcp-oauth/oauth/internal/testclock"
	"github.com/mcp-oauth/oauth/provider"
	"github.com/mcp-oauth/oauth/storage"
	"github.com/mcp-oauth/oauth/storage/memory"
)

// countingStore counts grant and client reads, can make RevocationCount
// fail, and can make GetGrant slow.
type countingStore struct {
	*memory.Store
	getGrant  atomic.Int64
	getClient atomic.Int64
	countFail atomic.Bool
	// grantLatency is how long GetGrant takes to answer after reading the
	// grant (in a synctest bubble, time that passes only for the caller):
	// what it answers is the grant as it was when read. answering counts
	// the GetGrant calls that have read and not yet answered.
	grantLatency atomic.Int64
	answering    atomic.Int64
}

func (s *countingStore) GetClient(ctx context.Context, id string, now time.Time) (*oauth.Client, error) {
	s.getClient.Add(1)
	return s.Store.GetClient(ctx, id, now)
}

func (s *countingStore) GetGrant(ctx context.Context, id string) (*oauth.Grant, error) {
	s.getGrant.Add(1)
	g, err := s.Store.GetGrant(ctx, id)
	if d := time.Duration(s.grantLatency.Load()); d > 0 {
		s.answering.Add(1)
		time.Sleep(d)
		s.answering.Add(-1)
	}
	return g, err
}

func (s *countingStore) RevocationCount(ctx context.Context) (int64, error) {
	if s.countFail.Load() {
		return 0, errors.New("database unreachable")
	}
	return s.Store.RevocationCount(ctx)
}

// replicas are two providers sharing one store, as two replicas (or a
// server and the CLI) do.
//
// The tests run inside a testing/synctest bubble: the providers' monotonic
// clock (that of the grant states) stands still until a test sleeps, so no
// confirmation goes stale and no background poll starts unless the test
// lets time pass (time.Sleep), and every poll started has finished once a
// Sleep returns. The wall clock of both (Options.Now) is clk, which the
// tests step by hand where only the wall clock may move: past a token's
// exp or a client's registration while the grant states stay confirmed.
type replicas struct {
	a, b  *provider.Provider
	store *countingStore
	clk   *testclock.Clock
}

// newReplicas must be called inside a synctest bubble.
func newReplicas(t *testing.T, cacheSize int) *replicas {
	t.Helper()
	r := &replicas{store: &countingStore{Store: memory.New()}, clk: testclock.New(time.Now())}
	o := provider.Options{Issuer: "https://as.example", Resource: "https://as.example/mcp", Now: r.clk.Now,
		VerifiedTokenCacheSize: cacheSize}
	var err error
	if r.a, err = provider.New(ctx, r.store, o); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.a.Close() })
	if r.b, err = provider.New(ctx, r.store, o); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.b.Close() })
	return r
}

// issue runs an authorization for subject through p and returns the
// token response.
func issueFor(t *testing.T, p *provider.Provider, subject string) *oauth.TokenResponse {
	t.Helper()
	e := &env{p: p}
	c, _ := e.client(t, "none")
	h, code := e.pending(t, c)
	if _, err := p.Approve(ctx, code, subject, nil); err != nil {
		t.Fatal(err)
	}
	to, err := complete(p, h, code)
	must(t, err)
	u, _ := url.Parse(to)
	ac, err := p.LoadAuthorizationCode(ctx, u.Query().Get("code"))
	must(t, err)
	tr, err := p.ExchangeAuthorizationCode(ctx, c, ac)
	must(t, err)
	return tr
}

func grantOf(t *testing.T, p *provider.Provider, token string) string {
	t.Helper()
	at, err := p.LoadAccessToken(ctx, token)
	must(t, err)
	return at.GrantID
}

func wantInvalid(t *testing.T, p *provider.Provider, token, why string) {
	t.Helper()
	if _, err := p.LoadAccessToken(ctx, token); !errors.Is(err, oauth.ErrInvalidToken) {
		t.Fatalf("%s: LoadAccessToken = %v, want invalid_token", why, err)
	}
}

// TestCacheAnswersFromMemory: a token presented again, while the grant
// states are confirmed current, costs no store read; the AccessToken
// returned is a fresh copy each time.
func TestCacheAnswersFromMemory(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newReplicas(t, 0)
		tok := issueFor(t, r.a, "alice")
		first, err := r.a.LoadAccessToken(ctx, tok.AccessToken)
		must(t, err)
		reads := r.store.getGrant.Load()
		for range 100 {
			at, err := r.a.LoadAccessToken(ctx, tok.AccessToken)
			must(t, err)
			if at.Token != tok.AccessToken || at.Subject != "alice" || at.GrantID != first.GrantID || len(at.Scopes) != 1 {
				t.Fatalf("cached AccessToken %+v", at)
			}
			at.Scopes[0] = "changed"
		}
		if n := r.store.getGrant.Load() - reads; n != 0 {
			t.Errorf("%d grant reads for 100 loads of a known token, want 0", n)
		}
		if n := provider.CachedTokens(r.a); n != 1 {
			t.Errorf("%d cached tokens, want 1", n)
		}
	})
}

// TestCacheLocalRevocationAtOnce: revoking through the provider that
// cached the grant, by RevokeGrant, RevokeToken or DeleteClient, is
// honoured by the very next request.
func TestCacheLocalRevocationAtOnce(t *testing.T) {
	for name, revoke := range map[string]func(p *provider.Provider, tok *oauth.TokenResponse, at *oauth.AccessToken) error{
		"RevokeGrant": func(p *provider.Provider, _ *oauth.TokenResponse, at *oauth.AccessToken) error {
			return p.RevokeGrant(ctx, at.GrantID)
		},
		"RevokeToken": func(p *provider.Provider, tok *oauth.TokenResponse, at *oauth.AccessToken) error {
			c, err := p.GetClient(ctx, at.ClientID)
			if err != nil {
				return err
			}
			return p.RevokeToken(ctx, c, tok.RefreshToken, "")
		},
		"DeleteClient": func(p *provider.Provider, _ *oauth.TokenResponse, at *oauth.AccessToken) error {
			return p.DeleteClient(ctx, at.ClientID)
		},
	} {
		t.Run(name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				r := newReplicas(t, 0)
				tok := issueFor(t, r.a, "alice")
				at, err := r.a.LoadAccessToken(ctx, tok.AccessToken)
				must(t, err)
				must(t, revoke(r.a, tok, at))
				wantInvalid(t, r.a, tok.AccessToken, "after "+name)
			})
		})
	}
}

// TestCacheRemoteRevocation: a revocation through another provider on the
// same store is honoured once the revocation count has been read (a poll,
// or a store's signal), and in any case once RevocationMaxStale has
// passed since the last confirmation, even if no poll succeeds.
func TestCacheRemoteRevocation(t *testing.T) {
	t.Run("AfterPoll", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			r := newReplicas(t, 0)
			tok := issueFor(t, r.a, "alice")
			gid := grantOf(t, r.a, tok.AccessToken)
			must(t, r.b.RevokeGrant(ctx, gid))
			must(t, provider.PollNow(r.a))
			wantInvalid(t, r.a, tok.AccessToken, "after a poll that saw the revocation")
		})
	})
	t.Run("AfterMaxStaleWithoutPolls", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			r := newReplicas(t, 0)
			tok := issueFor(t, r.a, "alice")
			gid := grantOf(t, r.a, tok.AccessToken)
			r.store.countFail.Store(true) // no poll can confirm anything
			must(t, r.b.RevokeGrant(ctx, gid))
			time.Sleep(provider.RevocationMaxStale)
			wantInvalid(t, r.a, tok.AccessToken, "RevocationMaxStale after the last confirmation")
		})
	})
	t.Run("OtherGrantRevokedDropsActiveStates", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			r := newReplicas(t, 0)
			tok := issueFor(t, r.a, "alice")
			other := issueFor(t, r.a, "bob")
			grantOf(t, r.a, tok.AccessToken)
			must(t, r.b.RevokeGrant(ctx, grantOf(t, r.a, other.AccessToken)))
			must(t, provider.PollNow(r.a))
			reads := r.store.getGrant.Load()
			grantOf(t, r.a, tok.AccessToken)
			if r.store.getGrant.Load() == reads {
				t.Error("the grant state survived a move of the revocation count: no store read")
			}
			wantInvalid(t, r.a, other.AccessToken, "the revoked grant")
		})
	})
}

// TestCacheStaleConfirmationReadsStore: while the revocation count cannot
// be read, known grants are read from the store on every request once the
// last confirmation is RevocationMaxStale old; once a poll succeeds they
// are answered from memory again.
func TestCacheStaleConfirmationReadsStore(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newReplicas(t, 0)
		tok := issueFor(t, r.a, "alice")
		grantOf(t, r.a, tok.AccessToken)
		r.store.countFail.Store(true)
		time.Sleep(provider.RevocationMaxStale)
		reads := r.store.getGrant.Load()
		for range 3 {
			grantOf(t, r.a, tok.AccessToken)
		}
		if n := r.store.getGrant.Load() - reads; n != 3 {
			t.Errorf("%d grant reads for 3 loads with a stale confirmation, want 3", n)
		}
		r.store.countFail.Store(false)
		must(t, provider.PollNow(r.a))
		grantOf(t, r.a, tok.AccessToken) // reads the grant once more
		reads = r.store.getGrant.Load()
		grantOf(t, r.a, tok.AccessToken)
		if n := r.store.getGrant.Load() - reads; n != 0 {
			t.Errorf("%d grant reads after a successful poll, want 0", n)
		}
	})
}

// TestCacheHonoursExpiry: a cached token stops working at its exp.
func TestCacheHonoursExpiry(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newReplicas(t, 0)
		tok := issueFor(t, r.a, "alice")
		at, err := r.a.LoadAccessToken(ctx, tok.AccessToken)
		must(t, err)
		// Only the wall clock moves: the grant states stay confirmed, so
		// nothing but the token's exp can refuse it.
		r.clk.Advance(at.ExpiresAt.Sub(r.clk.Now()) + 10*time.Second) // past exp and the verifier's leeway
		wantInvalid(t, r.a, tok.AccessToken, "after exp")
	})
}

// TestCacheOtherTokensStillVerified: a cached token does not vouch for a
// token that differs from it: its payload with another audience, or its
// signature altered.
func TestCacheOtherTokensStillVerified(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newReplicas(t, 0)
		tok := issueFor(t, r.a, "alice")
		grantOf(t, r.a, tok.AccessToken)
		tampered := []byte(tok.AccessToken)
		tampered[len(tampered)-2] ^= 1
		wantInvalid(t, r.a, string(tampered), "altered signature")
		var claims jwt.MapClaims
		p := jwt.NewParser()
		if _, _, err := p.ParseUnverified(tok.AccessToken, &claims); err != nil {
			t.Fatal(err)
		}
		claims["aud"] = "https://elsewhere.example/mcp"
		forged, err := jwt.NewWithClaims(jwt.SigningMethodNone, claims).SignedString(jwt.UnsafeAllowNoneSignatureType)
		must(t, err)
		wantInvalid(t, r.a, forged, "other audience, unsigned")
	})
}

// TestCacheDeletedKey: tokens of a signing key that left the key set are
// refused even if they were cached.
func TestCacheDeletedKey(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newReplicas(t, 0)
		tok := issueFor(t, r.a, "alice")
		grantOf(t, r.a, tok.AccessToken)
		keys, err := r.store.ListKeys(ctx)
		must(t, err)
		must(t, r.a.RotateKeys(ctx))
		must(t, r.store.DeleteKey(ctx, keys[0].ID))
		must(t, provider.ReloadKeys(ctx, r.a))
		wantInvalid(t, r.a, tok.AccessToken, "token of a deleted key")
	})
}

// TestCacheBounded: the cache never holds more tokens than its bound, and
// evicted tokens still verify.
func TestCacheBounded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newReplicas(t, 4)
		var toks []string
		for i := range 10 {
			toks = append(toks, issueFor(t, r.a, "user"+string(rune('a'+i))).AccessToken)
		}
		for range 2 {
			for _, tok := range toks {
				grantOf(t, r.a, tok)
				if n := provider.CachedTokens(r.a); n > 4 {
					t.Fatalf("%d cached tokens, bound 4", n)
				}
			}
		}
	})
}

// TestCacheOff: with the cache off, every load reads the grant, and a
// revocation elsewhere is honoured at once.
func TestCacheOff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newReplicas(t, -1)
		tok := issueFor(t, r.a, "alice")
		gid := grantOf(t, r.a, tok.AccessToken)
		reads := r.store.getGrant.Load()
		grantOf(t, r.a, tok.AccessToken)
		if r.store.getGrant.Load() != reads+1 {
			t.Error("no grant read with the cache off")
		}
		must(t, r.b.RevokeGrant(ctx, gid))
		wantInvalid(t, r.a, tok.AccessToken, "cache off, revoked elsewhere")
	})
}

// TestCacheRevocationRace: loads racing a revocation made elsewhere all
// fail once the revocation count has been read after it, whatever they
// had read from the store while it happened.
//
// Grant reads take readTime to answer, and every loader loads at each
// multiple of RevocationMaxStale, so all of them wake together, find the
// last confirmation exactly that old and read the grant from the store,
// racing one another and the poll they start. The revocation and
// the count read that sees it land while the reads of one such round are
// on their way back with the grant still active; the loads are checked
// once those reads have been answered.
func TestCacheRevocationRace(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const readTime = 10 * time.Millisecond
		r := newReplicas(t, 0)
		tok := issueFor(t, r.a, "alice")
		gid := grantOf(t, r.a, tok.AccessToken)
		r.store.grantLatency.Store(int64(readTime))
		var wg sync.WaitGroup
		stop := make(chan struct{})
		stopLoaders := sync.OnceFunc(func() { close(stop); wg.Wait() })
		defer stopLoaders() // also when an assertion fails
		for range 8 {
			wg.Go(func() {
				for next := time.Now(); ; {
					select {
					case <-stop:
						return
					default:
						r.a.LoadAccessToken(ctx, tok.AccessToken)
						next = next.Add(provider.RevocationMaxStale) // polls start now and then
						time.Sleep(time.Until(next))
					}
				}
			})
		}
		time.Sleep(20*provider.RevocationMaxStale + readTime/2)
		must(t, r.b.RevokeGrant(ctx, gid))
		must(t, provider.PollNow(r.a))
		if r.store.answering.Load() == 0 {
			t.Error("no grant read was on its way back when the revocation was counted")
		}
		time.Sleep(readTime) // the reads made before the revocation are answered
		for range 100 {
			wantInvalid(t, r.a, tok.AccessToken, "after the revocation was counted, with loads racing")
		}
		stopLoaders()
		wantInvalid(t, r.a, tok.AccessToken, "after the race")
	})
}

// TestClientCache: a registered client is read from the store once while
// the states are confirmed current; deleting it through this provider
// takes effect at once, through another once the revocation count is
// read; a remembered registration that has lapsed is read again (another
// replica may have renewed it).
// TestPollReadsAfterStaleness: a waiting request polled less often than
// the grant states stay confirmed (a tab whose script polls every second)
// still costs one store read per poll, its own row: the client is taken
// from memory.
func TestPollReadsAfterStaleness(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newReplicas(t, 0)
		e := &env{p: r.a}
		c, _ := e.client(t, "none")
		h, code := e.pending(t, c)
		for i := range 5 {
			time.Sleep(provider.RevocationMaxStale + time.Second)
			synctest.Wait() // the background poll started by the last one has finished
			reads := r.store.getClient.Load()
			p, to, err := r.a.Poll(ctx, &oauth.PollRequest{Handle: h, UserCode: code})
			if err != nil || to != "" || p.Status != oauth.PendingWaiting || p.Client.ID != c.ID {
				t.Fatalf("poll %d: %+v, %q, %v", i, p, to, err)
			}
			if n := r.store.getClient.Load() - reads; n != 0 {
				t.Fatalf("poll %d after the states went stale read the client %d times, want 0", i, n)
			}
		}
		// A client deleted through another replica is forgotten at the poll
		// that the next lookup starts.
		must(t, r.b.DeleteClient(ctx, c.ID))
		time.Sleep(provider.RevocationMaxStale)
		r.a.Poll(ctx, &oauth.PollRequest{Handle: h, UserCode: code})
		synctest.Wait()
		if _, _, err := r.a.Poll(ctx, &oauth.PollRequest{Handle: h, UserCode: code}); !errors.Is(err, oauth.ErrUnknownRequest) {
			t.Errorf("poll of a request whose client was deleted elsewhere: %v, want ErrUnknownRequest", err)
		}
	})
}

func TestClientCache(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newReplicas(t, 0)
		reg, err := r.a.RegisterClient(ctx, &oauthex.ClientRegistrationMetadata{RedirectURIs: []string{"https://app.example/cb"},
			TokenEndpointAuthMethod: "none", ClientName: "app"})
		must(t, err)
		get := func(p *provider.Provider) error { _, err := p.GetClient(ctx, reg.ClientID); return err }
		must(t, get(r.a))
		reads := r.store.getClient.Load()
		for range 10 {
			must(t, get(r.a))
		}
		if n := r.store.getClient.Load() - reads; n != 0 {
			t.Errorf("%d client reads for 10 lookups of a known client, want 0", n)
		}

		// Lapsed in memory, renewed in the store by another replica. Only
		// the wall clock moves: the states stay confirmed current, so the
		// lapse alone must make the client be read again.
		c, err := r.a.GetClient(ctx, reg.ClientID)
		must(t, err)
		must(t, r.store.TouchClient(ctx, reg.ClientID, c.ExpiresAt.Add(time.Hour)))
		r.clk.Advance(c.ExpiresAt.Sub(r.clk.Now()) + time.Minute)
		reads = r.store.getClient.Load()
		must(t, get(r.a))
		if r.store.getClient.Load() == reads {
			t.Error("a client whose remembered registration lapsed was not read again")
		}

		must(t, r.b.DeleteClient(ctx, reg.ClientID))
		must(t, provider.PollNow(r.a))
		if err := get(r.a); !errors.Is(err, oauth.ErrInvalidClient) {
			t.Errorf("client deleted through another provider, after a poll: %v", err)
		}

		reg2, err := r.a.RegisterClient(ctx, &oauthex.ClientRegistrationMetadata{RedirectURIs: []string{"https://app.example/cb"},
			TokenEndpointAuthMethod: "none", ClientName: "app2"})
		must(t, err)
		_, err = r.a.GetClient(ctx, reg2.ClientID)
		must(t, err)
		must(t, r.a.DeleteClient(ctx, reg2.ClientID))
		if _, err := r.a.GetClient(ctx, reg2.ClientID); !errors.Is(err, oauth.ErrInvalidClient) {
			t.Errorf("client deleted through this provider: %v", err)
		}
	})
}

var _ storage.Store = (*countingStore)(nil)
