package upstream

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	oauth "github.com/mcp-oauth/oauth"
	"github.com/mcp-oauth/oauth/internal/oidctest"
	"github.com/mcp-oauth/oauth/internal/sealbox"
)

// env is an IdP on the real OpenID Provider of internal/oidctest, its
// Handler on a loopback server whose /upstream/callback is registered
// there.
type env struct {
	idp  *oidctest.Server
	up   *IdP
	base string
}

func newEnv(t *testing.T, allow Policy) *env {
	t.Helper()
	srv := httptest.NewUnstartedServer(nil)
	base := "http://" + srv.Listener.Addr().String()
	idp := oidctest.New(t, oidctest.Client{ID: "rs", Secret: "s3cret", RedirectURIs: []string{base + "/upstream/callback"}})
	up, err := New(context.Background(), Options{Issuer: idp.Issuer, ClientID: "rs", ClientSecret: "s3cret",
		RedirectURL: base + "/upstream/callback", Scopes: []string{"email", "offline_access"}, Allow: allow})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/upstream/", up.Handler("/upstream"))
	mux.HandleFunc("/back", func(w http.ResponseWriter, r *http.Request) {
		user, _ := up.ConsoleUser(r)
		io.WriteString(w, "signed in as "+user)
	})
	srv.Config.Handler = mux
	srv.Start()
	t.Cleanup(srv.Close)
	return &env{idp: idp, up: up, base: base}
}

// browser is an HTTP client with cookies that follows no redirect, so
// that a test can step through (and tamper with) the sign-in.
type browser struct {
	t  *testing.T
	hc *http.Client
}

func newBrowser(t *testing.T) *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t, &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

func (b *browser) do(method, u string, form url.Values) (*http.Response, string) {
	b.t.Helper()
	req, _ := http.NewRequest(method, u, strings.NewReader(form.Encode()))
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := b.hc.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}

var authRequestID = regexp.MustCompile(`name="id" value="([^"]+)"`)

// signIn starts a sign-in at our /upstream/login?return=ret, signs in at
// the provider's login page, and returns our callback URL (not yet
// visited), which tamper may change.
func (b *browser) signIn(e *env, ret string) *url.URL {
	b.t.Helper()
	resp, _ := b.do("GET", e.base+"/upstream/login?"+url.Values{"return": {ret}}.Encode(), nil)
	loc := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusFound || !strings.HasPrefix(loc, e.idp.Issuer) {
		b.t.Fatalf("login: %d %s", resp.StatusCode, loc)
	}
	for u := loc; ; {
		resp, body := b.do("GET", u, nil)
		if resp.StatusCode == http.StatusOK {
			m := authRequestID.FindStringSubmatch(body)
			if m == nil {
				b.t.Fatalf("the provider's login page: %s", body)
			}
			resp, _ = b.do("POST", strings.TrimSuffix(e.idp.Issuer, "/")+"/login/username",
				url.Values{"id": {m[1]}, "username": {oidctest.Username}, "password": {oidctest.Password}})
		}
		next, err := resp.Location()
		if err != nil {
			b.t.Fatalf("the provider stopped at %d", resp.StatusCode)
		}
		if strings.HasPrefix(next.String(), e.base+"/upstream/callback") {
			return next
		}
		u = next.String()
	}
}

// TestSignIn: the whole sign-in against the real provider, and every way
// its answer can be wrong.
func TestSignIn(t *testing.T) {
	e := newEnv(t, Policy{Domains: []string{"zitadel.ch"}})
	for _, tc := range []struct {
		name   string
		tamper func(u *url.URL, b *browser)
		status int
		shows  string
	}{
		{"signs in", nil, http.StatusSeeOther, ""},
		{"wrong state", func(u *url.URL, _ *browser) { q := u.Query(); q.Set("state", "forged"); u.RawQuery = q.Encode() }, 400, "does not match"},
		{"wrong iss", func(u *url.URL, _ *browser) {
			q := u.Query()
			q.Set("iss", "https://evil.example/")
			u.RawQuery = q.Encode()
		}, 400, "wrong issuer"},
		{"two iss", func(u *url.URL, _ *browser) { u.RawQuery += "&iss=x&iss=y" }, 400, "wrong issuer"},
		{"another browser", func(_ *url.URL, b *browser) { jar, _ := cookiejar.New(nil); b.hc.Jar = jar }, 400, "another browser"},
		{"forged code", func(u *url.URL, _ *browser) { q := u.Query(); q.Set("code", "forged"); u.RawQuery = q.Encode() }, 502, "refused"},
		{"error from the provider", func(u *url.URL, _ *browser) { q := u.Query(); q.Set("error", "access_denied"); u.RawQuery = q.Encode() }, 403, "did not sign you in"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := newBrowser(t)
			cb := b.signIn(e, "/back")
			if tc.tamper != nil {
				tc.tamper(cb, b)
			}
			resp, body := b.do("GET", cb.String(), nil)
			if resp.StatusCode != tc.status || !strings.Contains(body, tc.shows) {
				t.Fatalf("callback: %d %s, want %d %q", resp.StatusCode, body, tc.status, tc.shows)
			}
			_, page := b.do("GET", e.base+"/back", nil)
			if signedIn := page == "signed in as "+oidctest.Subject; signedIn != (tc.tamper == nil) {
				t.Fatalf("after the callback the browser is %q", page)
			}
			if tc.tamper == nil && resp.Header.Get("Location") != "/back" {
				t.Errorf("returned to %q, want /back", resp.Header.Get("Location"))
			}
			// The login cookie is single use: the same answer again fails.
			if resp, _ := b.do("GET", cb.String(), nil); resp.StatusCode != 400 {
				t.Errorf("a replayed callback: %d", resp.StatusCode)
			}
		})
	}
}

// TestPolicy: who may sign in, and that the return path is this site's.
func TestPolicy(t *testing.T) {
	for _, tc := range []struct {
		name  string
		allow Policy
		ok    bool
	}{
		{"domain", Policy{Domains: []string{"ZITADEL.ch"}}, true},
		{"email", Policy{Emails: []string{oidctest.Email}}, true},
		{"anyone", Policy{AllowAnyone: true}, true},
		{"other domain", Policy{Domains: []string{"example.com"}}, false},
		{"other email", Policy{Emails: []string{"root@zitadel.ch"}}, false},
		{"claim", Policy{Claim: "email_verified", Values: []string{"true"}}, false}, // a bool, not a string
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, tc.allow)
			b := newBrowser(t)
			resp, body := b.do("GET", b.signIn(e, "//evil.example/x").String(), nil)
			if tc.ok != (resp.StatusCode == http.StatusSeeOther) {
				t.Fatalf("callback: %d %s", resp.StatusCode, body)
			}
			if tc.ok && resp.Header.Get("Location") != "/" {
				t.Errorf("a return of //evil.example/x led to %q, want / (no open redirect)", resp.Header.Get("Location"))
			}
		})
	}
	if _, err := New(context.Background(), Options{Issuer: "http://127.0.0.1:1/", ClientID: "x"}); err == nil || !strings.Contains(err.Error(), "admits nobody") {
		t.Errorf("New without a policy: %v", err)
	}
}

// TestClaimPolicy covers claim rules without the provider.
func TestClaimPolicy(t *testing.T) {
	claims := map[string]any{"groups": []any{"eng", "ops"}, "org": map[string]any{"tier": "gold"}, "email": "a@b.c", "email_verified": false}
	for _, tc := range []struct {
		p    Policy
		want bool
	}{
		{Policy{Claim: "groups", Values: []string{"ops"}}, true},
		{Policy{Claim: "groups", Values: []string{"admin"}}, false},
		{Policy{Claim: "org.tier", Values: []string{"gold"}}, true},
		{Policy{Claim: "org.missing", Values: []string{"gold"}}, false},
		{Policy{Emails: []string{"a@b.c"}}, false}, // not verified
		{Policy{Domains: []string{"b.c"}}, false},
	} {
		if got := tc.p.allows(claims); got != tc.want {
			t.Errorf("%+v: %v, want %v", tc.p, got, tc.want)
		}
	}
}

// fakeGrants is an oauth.GrantDataProvider in memory.
type fakeGrants struct {
	mu sync.Mutex
	m  map[string][]byte
}

func (f *fakeGrants) GrantData(_ context.Context, g, n string) ([]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if v, ok := f.m[g+"/"+n]; ok {
		return v, nil
	}
	return nil, oauth.ErrNoGrantData
}

func (f *fakeGrants) SetGrantData(_ context.Context, g, n string, v []byte, _ time.Duration) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.m[g+"/"+n] = v
	return nil
}

func (f *fakeGrants) DeleteGrantData(context.Context, string, string) error { return nil }

// TestTokenRefreshAndRevoke: a grant's upstream token is refreshed at the
// provider once it has expired, and kept; revoking it at the provider
// makes its refresh token useless.
func TestTokenRefreshAndRevoke(t *testing.T) {
	e := newEnv(t, Policy{AllowAnyone: true})
	b := newBrowser(t)
	b.do("GET", b.signIn(e, "/back").String(), nil)
	req, _ := http.NewRequest("GET", e.base+"/back", nil)
	for _, c := range b.hc.Jar.Cookies(req.URL) {
		req.AddCookie(c)
	}
	setup, err := e.up.ApprovalSetup(req)
	if err != nil || setup == nil || len(setup.Values) != 1 || setup.Values[0].Name != ValueName {
		t.Fatalf("ApprovalSetup = %+v, %v", setup, err)
	}
	var st storedToken
	json.Unmarshal(setup.Values[0].Value, &st)
	if st.AccessToken == "" || st.RefreshToken == "" {
		t.Fatalf("the sign-in kept %+v; want access and refresh tokens", st)
	}
	gd := &fakeGrants{m: map[string][]byte{}}
	st.Expiry = time.Now().Add(-time.Minute) // expired
	old, _ := json.Marshal(st)
	gd.SetGrantData(context.Background(), "g1", ValueName, old, 0)
	tok, err := e.up.Token(context.Background(), gd, "g1")
	if err != nil || tok.AccessToken == "" || tok.AccessToken == st.AccessToken {
		t.Fatalf("Token of an expired token: %+v, %v; want a refreshed one", tok, err)
	}
	kept, _ := gd.GrantData(context.Background(), "g1", ValueName)
	var now storedToken
	json.Unmarshal(kept, &now)
	if now.AccessToken != tok.AccessToken || !now.Expiry.After(time.Now()) {
		t.Fatalf("the refreshed token was not kept: %+v", now)
	}
	if again, err := e.up.Token(context.Background(), gd, "g1"); err != nil || again.AccessToken != tok.AccessToken {
		t.Fatalf("a live token was refreshed again: %v", err)
	}
	if _, err := e.up.Token(context.Background(), gd, "other"); !errors.Is(err, ErrNoUpstreamToken) {
		t.Fatalf("a grant without an upstream token: %v", err)
	}
	if err := e.up.Revoke(context.Background(), map[string][]byte{ValueName: kept}); err != nil {
		t.Fatal(err)
	}
	now.Expiry = time.Now().Add(-time.Minute)
	expired, _ := json.Marshal(now)
	gd.SetGrantData(context.Background(), "g1", ValueName, expired, 0)
	if _, err := e.up.Token(context.Background(), gd, "g1"); err == nil {
		t.Fatal("the refresh token still works after Revoke")
	}
}

// FuzzSessionCookie: whatever a browser sends as the session cookie never
// panics and signs in no one but whom this IdP sealed a cookie for.
func FuzzSessionCookie(f *testing.F) {
	s, _ := sealbox.New(make([]byte, 32))
	p := &IdP{opts: Options{Now: time.Now}, cookies: s}
	w := httptest.NewRecorder()
	p.setCookie(w, sessionCookie, session{Subject: "alice", Expires: time.Now().Add(time.Hour)}, time.Hour)
	good := w.Result().Cookies()[0].Value
	f.Add(good)
	f.Add(good[:len(good)-2])
	f.Add("")
	f.Add("e30")
	f.Fuzz(func(t *testing.T, v string) {
		r := httptest.NewRequest("GET", "/", nil)
		r.AddCookie(&http.Cookie{Name: sessionCookie, Value: v})
		// Only "alice" was ever sealed under this key: any other user
		// is a forgery.
		if user, _ := p.ConsoleUser(r); user != "" && user != "alice" {
			t.Fatalf("cookie %q signed in %q", v, user)
		}
	})
}
