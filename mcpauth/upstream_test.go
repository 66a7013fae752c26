package mcpauth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/modelcontextprotocol/go-sdk/auth"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/modelcontextprotocol/go-sdk/oauthex"

	oauth "github.com/mcp-oauth/oauth"
	"github.com/mcp-oauth/oauth/internal/browsertest"
	"github.com/mcp-oauth/oauth/internal/oidctest"
	"github.com/mcp-oauth/oauth/storage/memory"
	"github.com/mcp-oauth/oauth/upstream"
)

// upstreamFixture is Wrap with Options.Upstream on a real OpenID Provider
// (internal/oidctest), and a tool that calls the provider's userinfo
// endpoint with the caller's upstream token.
type upstreamFixture struct {
	base  string
	idp   *oidctest.Server
	up    *upstream.IdP
	h     *Handler
	store *memory.Store
}

func newUpstreamFixture(t *testing.T, allow upstream.Policy) *upstreamFixture {
	t.Helper()
	srv := httptest.NewUnstartedServer(nil)
	base := "http://" + srv.Listener.Addr().String()
	idp := oidctest.New(t, oidctest.Client{ID: "mcp-server", Secret: "s3cret", RedirectURIs: []string{base + PathUpstream + "/callback"}})
	up, err := upstream.New(context.Background(), upstream.Options{Issuer: idp.Issuer, ClientID: "mcp-server", ClientSecret: "s3cret",
		Scopes: []string{"email", "profile", "offline_access"}, Name: "Test IdP", Allow: allow})
	if err != nil {
		t.Fatal(err)
	}
	server := mcp.NewServer(&mcp.Implementation{Name: "federated", Version: "1"}, nil)
	userinfo := strings.TrimSuffix(idp.Issuer, "/") + "/userinfo"
	mcp.AddTool(server, &mcp.Tool{Name: "upstream_me"}, func(ctx context.Context, req *mcp.CallToolRequest, _ struct{}) (*mcp.CallToolResult, any, error) {
		caller, _ := CallerOf(req)
		tok, err := UpstreamToken(ctx, req)
		if err != nil {
			return nil, nil, err
		}
		r, _ := http.NewRequestWithContext(ctx, "GET", userinfo, nil)
		tok.SetAuthHeader(r)
		resp, err := http.DefaultClient.Do(r)
		if err != nil {
			return nil, nil, err
		}
		defer resp.Body.Close()
		var info struct {
			Sub   string `json:"sub"`
			Email string `json:"email"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&info); err != nil || resp.StatusCode != 200 {
			return nil, nil, fmt.Errorf("userinfo: %d %v", resp.StatusCode, err)
		}
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: caller.Subject + " " + info.Sub + " " + info.Email}}}, nil, nil
	})
	store := memory.New()
	h, err := Wrap(server, Options{Issuer: base, Store: store, Upstream: up})
	if err != nil {
		t.Fatal(err)
	}
	srv.Config.Handler = h
	srv.Start()
	t.Cleanup(srv.Close)
	return &upstreamFixture{base: base, idp: idp, up: up, h: h, store: store}
}

// TestBrowserUpstreamSignIn is the federated mode end to end in Chromium:
// go-sdk's client opens our authorization URL; the approval page offers
// the upstream's sign-in; the user signs in at the real OpenID Provider's
// login page; back on the approval page, signed in, the user approves
// with one click; the client connects, and a tool returns the upstream
// subject, calling the upstream's userinfo with the stored upstream token.
// Refreshing our token keeps it working; revoking our grant revokes the
// upstream token, so the tool then fails.
func TestBrowserUpstreamSignIn(t *testing.T) {
	f := newUpstreamFixture(t, upstream.Policy{Domains: []string{"zitadel.ch"}})
	tab := browsertest.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	cb, landed := callbackServer(t)
	fetch := func(ctx context.Context, args *auth.AuthorizationArgs) (*auth.AuthorizationResult, error) {
		tctx, tcancel := context.WithTimeout(tab, 30*time.Second)
		defer tcancel()
		if err := chromedp.Do(tctx,
			chromedp.Navigate(args.URL),
			chromedp.WaitVisible(`a[data-sign-in]`),
			chromedp.Click(`a[data-sign-in]`),
			// The OpenID Provider's own login page.
			chromedp.WaitVisible(`#username`),
			chromedp.SendKeys(`#username`, oidctest.Username),
			chromedp.SendKeys(`#password`, oidctest.Password),
			chromedp.Submit(`#password`),
			// Back on the approval page, signed in: one explicit click.
			chromedp.WaitVisible(`[data-quick-approve]`),
		); err != nil {
			body, _ := chromedp.Run(tab, chromedp.Text(`body`))
			loc, _ := chromedp.Run(tab, chromedp.Location())
			err = fmt.Errorf("the upstream sign-in: %w (the tab is at %s: %q)", err, loc, body)
			t.Log(err)
			return nil, err
		}
		label, err := chromedp.Run(tctx, chromedp.Text(`[data-quick-approve]`))
		if err != nil || label != "Approve as "+oidctest.Subject {
			return nil, fmt.Errorf("the approve button reads %q (%v)", label, err)
		}
		if err := chromedp.Do(tctx, chromedp.Click(`[data-quick-approve]`)); err != nil {
			return nil, err
		}
		select {
		case q := <-landed:
			return &auth.AuthorizationResult{Code: q.Get("code"), State: q.Get("state"), Iss: q.Get("iss")}, nil
		case <-tctx.Done():
			return nil, errors.New("the tab did not return to the client")
		}
	}
	oh, err := auth.NewAuthorizationCodeHandler(&auth.AuthorizationCodeHandlerConfig{
		DynamicClientRegistrationConfig: &auth.DynamicClientRegistrationConfig{Metadata: &oauthex.ClientRegistrationMetadata{
			RedirectURIs: []string{cb}, ClientName: "Federated client", TokenEndpointAuthMethod: oauth.AuthMethodNone,
			GrantTypes: []string{oauth.GrantTypeAuthorizationCode, oauth.GrantTypeRefreshToken},
		}},
		AuthorizationCodeFetcher: fetch,
	})
	if err != nil {
		t.Fatal(err)
	}
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "federated", Version: "1"}, nil).
		Connect(ctx, &mcp.StreamableClientTransport{Endpoint: f.base + "/mcp", OAuthHandler: oh}, nil)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer cs.Close()
	call := func() (string, bool) {
		res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "upstream_me"})
		if err != nil {
			t.Fatalf("upstream_me: %v", err)
		}
		return res.Content[0].(*mcp.TextContent).Text, res.IsError
	}
	want := oidctest.Subject + " " + oidctest.Subject + " " + oidctest.Email
	if got, isErr := call(); isErr || got != want {
		t.Fatalf("upstream_me = %q (error %v), want %q: our subject, then the upstream's userinfo", got, isErr, want)
	}

	// Our refresh: a new access token, the same grant and upstream token.
	ts, err := oh.TokenSource(ctx)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := ts.Token()
	if err != nil {
		t.Fatal(err)
	}
	ref := postToken(t, f.base, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}, "client_id": {clientIDOf(t, f, tok.AccessToken)}})
	at, _ := ref["access_token"].(string)
	if at == "" {
		t.Fatalf("refresh: %v", ref)
	}
	grant, err := f.h.DefaultProvider().LoadAccessToken(ctx, at)
	if err != nil {
		t.Fatal(err)
	}
	// The grant keeps the upstream token, sealed; revoking the grant
	// revokes it at the upstream, whose userinfo then refuses it.
	up, err := UpstreamTokenOf(ctx, f, grant.GrantID)
	if err != nil || up.AccessToken == "" || up.RefreshToken == "" {
		t.Fatalf("the grant's upstream token: %+v, %v", up, err)
	}
	if err := f.h.DefaultProvider().RevokeGrant(ctx, grant.GrantID); err != nil {
		t.Fatal(err)
	}
	if st := userinfoStatus(t, f.idp, up.AccessToken); st == http.StatusOK {
		t.Error("the upstream access token still works after our grant was revoked")
	}
}

// UpstreamTokenOf reads the upstream token kept with grantID, as a tool
// would through UpstreamToken.
func UpstreamTokenOf(ctx context.Context, f *upstreamFixture, grantID string) (*struct{ AccessToken, RefreshToken string }, error) {
	tok, err := f.up.Token(ctx, f.h.DefaultProvider(), grantID)
	if err != nil {
		return nil, err
	}
	return &struct{ AccessToken, RefreshToken string }{tok.AccessToken, tok.RefreshToken}, nil
}

func userinfoStatus(t *testing.T, idp *oidctest.Server, accessToken string) int {
	t.Helper()
	r, _ := http.NewRequest("GET", strings.TrimSuffix(idp.Issuer, "/")+"/userinfo", nil)
	r.Header.Set("Authorization", "Bearer "+accessToken)
	resp, err := http.DefaultClient.Do(r)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func clientIDOf(t *testing.T, f *upstreamFixture, accessToken string) string {
	t.Helper()
	at, err := f.h.DefaultProvider().LoadAccessToken(context.Background(), accessToken)
	if err != nil {
		t.Fatal(err)
	}
	return at.ClientID
}

func postToken(t *testing.T, base string, form url.Values) map[string]any {
	t.Helper()
	resp, err := http.PostForm(base+PathToken, form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	json.NewDecoder(resp.Body).Decode(&out)
	return out
}

// TestConsoleSignInThroughUpstream: with Options.Upstream the console has
// no sign-in form of its own: it links to the upstream sign-in, which
// returns to the console signed in as the upstream subject.
func TestConsoleSignInThroughUpstream(t *testing.T) {
	f := newUpstreamFixture(t, upstream.Policy{Emails: []string{oidctest.Email}})
	jar, _ := cookiejar.New(nil)
	hc := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	get := func(u string) (*http.Response, string) {
		t.Helper()
		resp, err := hc.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	_, page := get(f.base + PathConsole + "/")
	m := regexp.MustCompile(`<a href="([^"]+)">Sign in</a>`).FindStringSubmatch(page)
	if m == nil || strings.Contains(page, "data-signin") {
		t.Fatalf("the console's sign-in: %s", page)
	}
	// The sign-in, through the provider's login form, by plain HTTP,
	// following every redirect until it is back at the console.
	next, _ := url.Parse(f.base + html.UnescapeString(m[1]))
	for i := 0; next.String() != f.base+PathConsole+"/"; i++ {
		if i == 20 {
			t.Fatalf("the sign-in did not come back to the console; last at %s", next)
		}
		resp, body := get(next.String())
		if id := regexp.MustCompile(`name="id" value="([^"]+)"`).FindStringSubmatch(body); id != nil {
			r, err := hc.PostForm(strings.TrimSuffix(f.idp.Issuer, "/")+"/login/username",
				url.Values{"id": {id[1]}, "username": {oidctest.Username}, "password": {oidctest.Password}})
			if err != nil {
				t.Fatal(err)
			}
			r.Body.Close()
			resp = r
		}
		loc, err := resp.Location()
		if err != nil {
			t.Fatalf("the sign-in stopped at %s: %d %s", next, resp.StatusCode, body)
		}
		next = loc
	}
	_, page = get(f.base + PathConsole + "/")
	if !strings.Contains(page, "data-user>"+oidctest.Subject+"<") {
		t.Fatalf("after the upstream sign-in the console shows: %s", page)
	}
}
