package mcpauth

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/modelcontextprotocol/go-sdk/auth"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/modelcontextprotocol/go-sdk/oauthex"

	oauth "github.com/mcp-oauth/oauth"
	"github.com/mcp-oauth/oauth/approval"
	"github.com/mcp-oauth/oauth/internal/browsertest"
	"github.com/mcp-oauth/oauth/internal/redirect"
	"github.com/mcp-oauth/oauth/internal/secret"
)

// mapProvider is a minimal custom oauth.Provider, oauth.Approver and
// oauth.Administrator: opaque random tokens in maps under one mutex,
// nothing from packages provider or storage. It is what a host with its
// own user database would write, cut to what a test needs.
type mapProvider struct {
	issuer string

	mu      sync.Mutex
	calls   map[string]int // method name → number of calls
	clients map[string]*oauth.Client
	order   []string               // client IDs, oldest first
	pending map[string]*mapPending // by normalized user code
	handles map[string]string      // handle → normalized user code
	codes   map[string]*mapCode
	grants  map[string]*oauth.Grant
	gorder  []string // grant IDs, oldest first
	refresh map[string]*oauth.RefreshToken
	access  map[string]*oauth.AccessToken
}

type mapPending struct {
	oauth.PendingRequest
	handle string
}

type mapCode struct {
	oauth.AuthorizationCode
	used bool
}

var (
	_ oauth.Provider      = (*mapProvider)(nil)
	_ oauth.Approver      = (*mapProvider)(nil)
	_ oauth.Administrator = (*mapProvider)(nil)
)

func newMapProvider(issuer string) *mapProvider {
	return &mapProvider{issuer: issuer, calls: map[string]int{}, clients: map[string]*oauth.Client{},
		pending: map[string]*mapPending{}, handles: map[string]string{}, codes: map[string]*mapCode{},
		grants: map[string]*oauth.Grant{}, refresh: map[string]*oauth.RefreshToken{}, access: map[string]*oauth.AccessToken{}}
}

// lock takes the mutex and counts a call of method.
func (p *mapProvider) lock(method string) {
	p.mu.Lock()
	p.calls[method]++
}

// count returns the number of calls of method so far.
func (p *mapProvider) count(method string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.calls[method]
}

func (p *mapProvider) GetClient(ctx context.Context, clientID string) (*oauth.Client, error) {
	p.lock("GetClient")
	defer p.mu.Unlock()
	c := p.clients[clientID]
	if c == nil {
		return nil, oauth.ErrInvalidClient.WithDescription("unknown client")
	}
	cp := *c
	return &cp, nil
}

func (p *mapProvider) RegisterClient(ctx context.Context, md *oauthex.ClientRegistrationMetadata) (*oauthex.ClientRegistrationResponse, error) {
	p.lock("RegisterClient")
	defer p.mu.Unlock()
	c := &oauth.Client{ClientRegistrationMetadata: *md, ID: "client-" + rand.Text(), IssuedAt: time.Now().Truncate(time.Second)}
	var plain string
	if md.TokenEndpointAuthMethod != oauth.AuthMethodNone {
		plain = "cs_" + rand.Text()
		c.SecretHash = secret.Hash(plain) // what the HTTP layer compares without a ClientAuthenticator
	}
	p.clients[c.ID] = c
	p.order = append(p.order, c.ID)
	return &oauthex.ClientRegistrationResponse{ClientRegistrationMetadata: *md, ClientID: c.ID, ClientSecret: plain, ClientIDIssuedAt: c.IssuedAt}, nil
}

// Authorize records the request and sends the browser to the approval
// page that Wrap serves at PathDevice, with this tab's handle and the
// user code.
func (p *mapProvider) Authorize(ctx context.Context, client *oauth.Client, params *oauth.AuthorizationParams) (string, error) {
	p.lock("Authorize")
	defer p.mu.Unlock()
	code := secret.NewUserCode()
	norm := secret.NormalizeUserCode(code)
	if p.pending[norm] != nil {
		return "", errors.New("user code collision") // 1 in 20^8; a test may ignore it
	}
	handle := "req_" + rand.Text() + rand.Text() // 56 characters, under the page's 128
	now := time.Now()
	c := *client
	p.pending[norm] = &mapPending{handle: handle, PendingRequest: oauth.PendingRequest{
		ID: "pending-" + rand.Text(), Client: &c, AuthorizationParams: *params,
		Status: oauth.PendingWaiting, CreatedAt: now, ExpiresAt: now.Add(10 * time.Minute)}}
	p.handles[handle] = norm
	return p.issuer + PathDevice + "?" + url.Values{"request": {handle}, "user_code": {code}}.Encode(), nil
}

func (p *mapProvider) LoadAuthorizationCode(ctx context.Context, code string) (*oauth.AuthorizationCode, error) {
	p.lock("LoadAuthorizationCode")
	defer p.mu.Unlock()
	c := p.codes[code]
	if c == nil || !time.Now().Before(c.ExpiresAt) {
		return nil, oauth.ErrInvalidGrant.WithDescription("unknown or expired code")
	}
	if c.used {
		p.revokeLocked(c.GrantID) // a code presented twice: revoke what it issued
		return nil, oauth.ErrInvalidGrant.WithDescription("code already used")
	}
	ac := c.AuthorizationCode
	return &ac, nil
}

func (p *mapProvider) ExchangeAuthorizationCode(ctx context.Context, client *oauth.Client, code *oauth.AuthorizationCode) (*oauth.TokenResponse, error) {
	p.lock("ExchangeAuthorizationCode")
	defer p.mu.Unlock()
	c := p.codes[code.Code]
	if c == nil || c.used {
		return nil, oauth.ErrInvalidGrant.WithDescription("code already used")
	}
	c.used = true
	return p.issueLocked(client.ID, p.grants[c.GrantID]), nil
}

// issueLocked issues an access and a refresh token for grant g.
func (p *mapProvider) issueLocked(clientID string, g *oauth.Grant) *oauth.TokenResponse {
	now := time.Now()
	at := &oauth.AccessToken{Token: "at_" + rand.Text(), ID: rand.Text(), ClientID: clientID, GrantID: g.ID, Subject: g.Subject,
		Scopes: g.Scopes, Resource: g.Resource, IssuedAt: now, ExpiresAt: now.Add(time.Hour)}
	rt := &oauth.RefreshToken{Token: "rt_" + rand.Text(), ClientID: clientID, GrantID: g.ID, Subject: g.Subject,
		Scopes: g.Scopes, Resource: g.Resource, ExpiresAt: now.Add(24 * time.Hour)}
	p.access[at.Token] = at
	p.refresh[rt.Token] = rt
	g.LastUsedAt = now
	return &oauth.TokenResponse{AccessToken: at.Token, TokenType: "Bearer", ExpiresIn: 3600, RefreshToken: rt.Token, Scope: strings.Join(g.Scopes, " ")}
}

func (p *mapProvider) LoadRefreshToken(ctx context.Context, token string) (*oauth.RefreshToken, error) {
	p.lock("LoadRefreshToken")
	defer p.mu.Unlock()
	rt := p.refresh[token]
	if rt == nil || !time.Now().Before(rt.ExpiresAt) || !p.grants[rt.GrantID].RevokedAt.IsZero() {
		return nil, oauth.ErrInvalidGrant.WithDescription("unknown, expired or revoked refresh token")
	}
	cp := *rt
	return &cp, nil
}

func (p *mapProvider) ExchangeRefreshToken(ctx context.Context, client *oauth.Client, rt *oauth.RefreshToken, scopes []string) (*oauth.TokenResponse, error) {
	p.lock("ExchangeRefreshToken")
	defer p.mu.Unlock()
	if p.refresh[rt.Token] == nil {
		return nil, oauth.ErrInvalidGrant.WithDescription("refresh token already rotated")
	}
	delete(p.refresh, rt.Token)
	g := *p.grants[rt.GrantID]
	if len(scopes) > 0 {
		g.Scopes = scopes
	}
	return p.issueLocked(client.ID, &g), nil
}

func (p *mapProvider) LoadAccessToken(ctx context.Context, token string) (*oauth.AccessToken, error) {
	p.lock("LoadAccessToken")
	defer p.mu.Unlock()
	at := p.access[token]
	if at == nil || !time.Now().Before(at.ExpiresAt) || !p.grants[at.GrantID].RevokedAt.IsZero() {
		return nil, oauth.ErrInvalidToken.WithDescription("unknown, expired or revoked token")
	}
	cp := *at
	return &cp, nil
}

func (p *mapProvider) RevokeToken(ctx context.Context, client *oauth.Client, token, tokenTypeHint string) error {
	p.lock("RevokeToken")
	defer p.mu.Unlock()
	if at := p.access[token]; at != nil && at.ClientID == client.ID {
		p.revokeLocked(at.GrantID)
	}
	if rt := p.refresh[token]; rt != nil && rt.ClientID == client.ID {
		p.revokeLocked(rt.GrantID)
	}
	return nil
}

func (p *mapProvider) revokeLocked(grantID string) {
	if g := p.grants[grantID]; g != nil && g.RevokedAt.IsZero() {
		g.RevokedAt = time.Now()
	}
}

// livePendingLocked returns the unexpired request with the user code
// (any form), or nil.
func (p *mapProvider) livePendingLocked(userCode string) *mapPending {
	r := p.pending[secret.NormalizeUserCode(userCode)]
	if r == nil || !time.Now().Before(r.ExpiresAt) {
		return nil
	}
	return r
}

// view returns a copy of r for the approval pages.
func (r *mapPending) view() *oauth.PendingRequest {
	v := r.PendingRequest
	c := *v.Client
	v.Client = &c
	return &v
}

func (p *mapProvider) PendingByUserCode(ctx context.Context, userCode string) (*oauth.PendingRequest, error) {
	p.lock("PendingByUserCode")
	defer p.mu.Unlock()
	r := p.livePendingLocked(userCode)
	if r == nil {
		return nil, oauth.ErrUnknownRequest
	}
	return r.view(), nil
}

func (p *mapProvider) ListPending(ctx context.Context) ([]*oauth.PendingRequest, error) {
	p.lock("ListPending")
	defer p.mu.Unlock()
	var out []*oauth.PendingRequest
	for _, r := range p.pending {
		if r.Status == oauth.PendingWaiting && time.Now().Before(r.ExpiresAt) {
			out = append(out, r.view())
		}
	}
	slices.SortFunc(out, func(a, b *oauth.PendingRequest) int { return a.CreatedAt.Compare(b.CreatedAt) })
	return out, nil
}

func (p *mapProvider) Approve(ctx context.Context, userCode, subject string, setup *oauth.GrantSetup) (*oauth.PendingRequest, error) {
	p.lock("Approve")
	defer p.mu.Unlock()
	if subject == "" || len(subject) > 255 {
		return nil, errors.New("subject must be 1 to 255 bytes")
	}
	if setup != nil && (len(setup.Values) > 0 || len(setup.Claims) > 0) {
		return nil, errors.New("this provider keeps no grant data or claims")
	}
	return p.decideLocked(userCode, oauth.PendingApproved, subject)
}

func (p *mapProvider) Deny(ctx context.Context, userCode string) (*oauth.PendingRequest, error) {
	p.lock("Deny")
	defer p.mu.Unlock()
	return p.decideLocked(userCode, oauth.PendingDenied, "")
}

func (p *mapProvider) decideLocked(userCode string, status oauth.PendingStatus, subject string) (*oauth.PendingRequest, error) {
	r := p.livePendingLocked(userCode)
	switch {
	case r == nil:
		return nil, oauth.ErrUnknownRequest
	case r.Status != oauth.PendingWaiting:
		return nil, oauth.ErrAlreadyDecided
	}
	r.Status, r.Subject = status, subject
	return r.view(), nil
}

// Poll answers a load of the approval page: the request of the tab
// holding handle, if userCode is its code; once approved (and not held),
// it completes the request with a grant and a single-use code and sends
// the tab back to the client.
func (p *mapProvider) Poll(ctx context.Context, req *oauth.PollRequest) (*oauth.PendingRequest, string, error) {
	p.lock("Poll")
	defer p.mu.Unlock()
	norm, ok := p.handles[req.Handle]
	if !ok || norm != secret.NormalizeUserCode(req.UserCode) {
		return nil, "", oauth.ErrUnknownRequest
	}
	r := p.livePendingLocked(norm)
	if r == nil {
		return nil, "", oauth.ErrUnknownRequest
	}
	v := r.view()
	v.UserCode = secret.DisplayUserCode(norm)
	resp := url.Values{"state": {r.State}, "iss": {p.issuer}}
	switch {
	case r.Status == oauth.PendingDenied:
		resp.Set("error", oauth.ErrAccessDenied.Code)
		to, err := redirect.With(r.RedirectURI, resp)
		return v, to, err
	case r.Status != oauth.PendingApproved || req.Hold:
		return v, "", nil
	case req.Setup != nil && (len(req.Setup.Values) > 0 || len(req.Setup.Claims) > 0):
		return nil, "", errors.New("this provider keeps no grant data or claims")
	}
	now := time.Now()
	g := &oauth.Grant{ID: "grant-" + rand.Text(), ClientID: r.ClientID, Subject: r.Subject, Scopes: r.Scopes,
		Resource: r.Resource, RedirectURI: r.RedirectURI, CreatedAt: now, LastUsedAt: now}
	p.grants[g.ID] = g
	p.gorder = append(p.gorder, g.ID)
	code := "code_" + rand.Text()
	p.codes[code] = &mapCode{AuthorizationCode: oauth.AuthorizationCode{Code: code, GrantID: g.ID, Subject: r.Subject,
		ExpiresAt: now.Add(time.Minute), AuthorizationParams: r.AuthorizationParams}}
	r.Status = oauth.PendingCompleted
	v.Status = oauth.PendingCompleted
	resp.Set("code", code)
	to, err := redirect.With(r.RedirectURI, resp)
	return v, to, err
}

func (p *mapProvider) ListGrants(ctx context.Context) ([]*oauth.Grant, error) {
	p.lock("ListGrants")
	defer p.mu.Unlock()
	var out []*oauth.Grant
	for _, id := range p.gorder {
		if g := p.grants[id]; g.RevokedAt.IsZero() {
			cp := *g
			out = append(out, &cp)
		}
	}
	return out, nil
}

func (p *mapProvider) RevokeGrant(ctx context.Context, grantID string) error {
	p.lock("RevokeGrant")
	defer p.mu.Unlock()
	if p.grants[grantID] == nil {
		return fmt.Errorf("no grant %q", grantID)
	}
	p.revokeLocked(grantID)
	return nil
}

func (p *mapProvider) ListClients(ctx context.Context) ([]*oauth.Client, error) {
	p.lock("ListClients")
	defer p.mu.Unlock()
	var out []*oauth.Client
	for _, id := range p.order {
		if c := p.clients[id]; c != nil {
			cp := *c
			out = append(out, &cp)
		}
	}
	return out, nil
}

func (p *mapProvider) DeleteClient(ctx context.Context, clientID string) error {
	p.lock("DeleteClient")
	defer p.mu.Unlock()
	if p.clients[clientID] == nil {
		return fmt.Errorf("no client %q", clientID)
	}
	delete(p.clients, clientID)
	for _, g := range p.grants {
		if g.ClientID == clientID {
			p.revokeLocked(g.ID)
		}
	}
	return nil
}

// providerOnly exposes only the oauth.Provider methods of a Provider: no
// Approver, no Administrator.
type providerOnly struct{ oauth.Provider }

// ownerCookie is the host's own sign-in cookie in
// TestCustomProviderBrowserFlow: the console's Identity says a request
// carrying it is the owner's.
const ownerCookie = "host_session"

// TestCustomProviderBrowserFlow: a custom Provider that is an
// oauth.Approver gets the approval page and the console from Wrap, with
// the host's own sign-in (Identity). In two headless browsers, the
// user's and the owner's: go-sdk's OAuth client registers and sends the
// user's tab to the authorization URL, which shows the waiting page with a
// user code; the owner's console lists the request, the owner types the
// code and clicks Approve; the user's tab returns to the client by itself,
// which exchanges the code and calls a tool. Every step went through the
// custom Provider: the approval through its Approve, the token through its
// LoadAccessToken.
func TestCustomProviderBrowserFlow(t *testing.T) {
	srv := httptest.NewUnstartedServer(nil)
	base := "http://" + srv.Listener.Addr().String()
	p := newMapProvider(base)
	session := rand.Text()
	h, err := Wrap(newMCPServer(), Options{Issuer: base, Provider: p, Console: approval.ConsoleOptions{
		Identity: approval.IdentityFunc(func(r *http.Request) (string, error) {
			if c, err := r.Cookie(ownerCookie); err == nil && c.Value == session {
				return "owner", nil
			}
			return "", nil
		}),
	}})
	if err != nil {
		t.Fatal(err)
	}
	srv.Config.Handler = h
	srv.Start()
	t.Cleanup(srv.Close)
	if h.DefaultProvider() != nil {
		t.Error("Handler.DefaultProvider() is the default Provider's, but Options.Provider replaced it")
	}

	cb, landed := callbackServer(t)
	userTab, ownerTab := browsertest.New(t), browsertest.New(t) // two people, two browsers
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()

	// The user's side: go-sdk's client, whose fetcher opens the
	// authorization URL in the user's tab and waits for the tab to land on
	// the redirect URI.
	shown := make(chan string, 1)
	fetch := func(ctx context.Context, args *auth.AuthorizationArgs) (*auth.AuthorizationResult, error) {
		tab, cancel := context.WithTimeout(userTab, 60*time.Second)
		defer cancel()
		if err := chromedp.Do(tab, chromedp.Navigate(args.URL), chromedp.WaitVisible(`[data-user-code]`)); err != nil {
			return nil, fmt.Errorf("the authorize tab shows no user code: %w", err)
		}
		code, err := chromedp.Run(tab, chromedp.AttributeValue(`[data-user-code]`, "data-user-code"))
		if err != nil {
			return nil, err
		}
		shown <- code.Value
		select {
		case q := <-landed:
			return &auth.AuthorizationResult{Code: q.Get("code"), State: q.Get("state"), Iss: q.Get("iss")}, nil
		case <-tab.Done():
			return nil, errors.New("the tab did not return to the client")
		}
	}
	oh, err := auth.NewAuthorizationCodeHandler(&auth.AuthorizationCodeHandlerConfig{
		DynamicClientRegistrationConfig: &auth.DynamicClientRegistrationConfig{Metadata: &oauthex.ClientRegistrationMetadata{
			RedirectURIs: []string{cb}, ClientName: "Custom provider client", TokenEndpointAuthMethod: oauth.AuthMethodNone,
			GrantTypes: []string{oauth.GrantTypeAuthorizationCode, oauth.GrantTypeRefreshToken},
		}},
		AuthorizationCodeFetcher: fetch,
	})
	if err != nil {
		t.Fatal(err)
	}
	type connected struct {
		cs  *mcp.ClientSession
		err error
	}
	done := make(chan connected, 1)
	go func() {
		cs, err := mcp.NewClient(&mcp.Implementation{Name: "custom-provider", Version: "1"}, nil).
			Connect(ctx, &mcp.StreamableClientTransport{Endpoint: base + "/mcp", OAuthHandler: oh}, nil)
		done <- connected{cs, err}
	}()
	var code string
	select {
	case code = <-shown:
	case c := <-done:
		t.Fatalf("the client connected (%v) without showing a code", c.err)
	case <-ctx.Done():
		t.Fatal("the authorize tab showed no code in time")
	}
	if n := p.count("Authorize"); n != 1 {
		t.Fatalf("Authorize called %d times, want 1", n)
	}

	// The owner's side: signed in to the host (its cookie), the console
	// lists the waiting request; the owner enters the code, checks it and
	// approves.
	owner, cancelOwner := context.WithTimeout(ownerTab, 60*time.Second)
	defer cancelOwner()
	if _, err := chromedp.Call(owner, network.SetCookie, network.SetCookieParams{Name: ownerCookie, Value: session, URL: base, HTTPOnly: new(true)}); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(owner, chromedp.Navigate(base+PathConsole), chromedp.WaitVisible(`table[data-pending]`)); err != nil {
		t.Fatalf("the console lists nothing waiting: %v", err)
	}
	listed, err := chromedp.Run(owner, chromedp.Text(`table[data-pending] tbody`))
	if err != nil || !strings.Contains(listed, "Custom provider client") || !strings.Contains(listed, cb) {
		t.Errorf("the console's pending list %q (%v), want the client's name and redirect URI", listed, err)
	}
	clients, err := chromedp.Run(owner, chromedp.Text(`table[data-clients] tbody`))
	if err != nil || !strings.Contains(clients, "Custom provider client") {
		t.Errorf("the console's client list (from the Provider's Administrator) %q (%v)", clients, err)
	}
	if user, err := chromedp.Run(owner, chromedp.Text(`[data-user]`)); err != nil || user != "owner" {
		t.Errorf("the console is signed in as %q (%v), want the Identity's owner", user, err)
	}
	if n := p.count("Approve"); n != 0 {
		t.Fatalf("Approve called %d times before the owner clicked", n)
	}
	if err := chromedp.Do(owner,
		chromedp.SendKeys(`#user_code`, strings.ToLower(code)),
		chromedp.Submit(`form[data-enter-code]`),
		chromedp.WaitVisible(`[data-approve]`),
	); err != nil {
		t.Fatalf("entering the code in the console: %v", err)
	}
	if confirm, err := chromedp.Run(owner, chromedp.AttributeValue(`[data-user-code]`, "data-user-code")); err != nil || confirm.Value != code {
		t.Fatalf("the confirmation shows %q (%v), want %q", confirm.Value, err, code)
	}
	if err := chromedp.Do(owner, chromedp.Click(`[data-approve]`), chromedp.WaitVisible(`[data-notice]`)); err != nil {
		t.Fatalf("approve in the console: %v", err)
	}

	// The user's tab moves on by itself; the client exchanges the code
	// and calls a tool with the custom Provider's token.
	var cs *mcp.ClientSession
	select {
	case c := <-done:
		if c.err != nil {
			t.Fatalf("connect: %v", c.err)
		}
		cs = c.cs
	case <-ctx.Done():
		t.Fatal("the client did not connect after the approval")
	}
	defer cs.Close()
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "echo"})
	if err != nil || res.IsError || len(res.Content) != 1 {
		t.Fatalf("tool call: %v %+v", err, res)
	}
	if txt, ok := res.Content[0].(*mcp.TextContent); !ok || txt.Text != "ok" {
		t.Errorf("tool result %+v", res.Content[0])
	}

	if n := p.count("Approve"); n != 1 {
		t.Errorf("Approve called %d times, want 1 (the console's)", n)
	}
	for _, m := range []string{"RegisterClient", "Poll", "ExchangeAuthorizationCode", "LoadAccessToken"} {
		if p.count(m) == 0 {
			t.Errorf("the flow never called the custom Provider's %s", m)
		}
	}
	grants, _ := p.ListGrants(ctx)
	if len(grants) != 1 || grants[0].Subject != "owner" {
		t.Errorf("grants %+v, want one approved by owner", grants)
	}
	if pend, _ := p.ListPending(ctx); len(pend) != 0 {
		t.Errorf("still pending after the flow: %+v", pend)
	}
}

// TestCustomProviderOptions: Wrap refuses, naming the option, what a
// custom Provider makes meaningless (the default Provider's Store,
// ProviderOptions, ClientIDMetadataDocuments) and, for a Provider that is
// not an oauth.Approver, the approval page's and the console's options.
// Such a Provider gets no approval page and no console (404), and
// Handler.Approve fails; an Approver without a console sign-in gets the
// page and no console.
func TestCustomProviderOptions(t *testing.T) {
	const base = "http://127.0.0.1:1"
	p := newMapProvider(base)
	only := providerOnly{p}
	identity := approval.IdentityFunc(func(*http.Request) (string, error) { return "", nil })
	// Any Store will do; the fixture's keeps this file free of the
	// storage packages, which a custom Provider needs none of.
	store := newFixture(t, nil).store
	for _, tc := range []struct {
		name  string
		opts  Options
		field string // "" means Wrap succeeds
	}{
		{"Store", Options{Provider: p, Store: store}, "Store"},
		{"ProviderOptions", func() Options {
			o := Options{Provider: p}
			o.ProviderOptions.AccessTokenTTL = time.Minute
			return o
		}(), "ProviderOptions"},
		{"ClientIDMetadataDocuments", Options{Provider: p, ClientIDMetadataDocuments: CIMDOptions{AllowHosts: []string{"claude.ai"}}}, "ClientIDMetadataDocuments"},
		{"CIMD disabled", Options{Provider: p, ClientIDMetadataDocuments: CIMDOptions{Disable: true}}, ""},
		{"Approver with ApprovalPage and Console", Options{Provider: p, ApprovalPage: approval.PageOptions{ProductName: "Notes"},
			Console: approval.ConsoleOptions{Identity: identity}}, ""},
		{"not an Approver, ApprovalPage", Options{Provider: only, ApprovalPage: approval.PageOptions{ProductName: "Notes"}}, "ApprovalPage"},
		{"not an Approver, Console", Options{Provider: only, Console: approval.ConsoleOptions{Identity: identity}}, "Console"},
		{"not an Approver", Options{Provider: only}, ""},
	} {
		tc.opts.Issuer = base
		h, err := Wrap(newMCPServer(), tc.opts)
		switch {
		case tc.field == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.field != "" && err == nil:
			t.Errorf("%s: Wrap accepted Options.%s with Options.Provider", tc.name, tc.field)
		case tc.field != "" && !strings.Contains(err.Error(), "Options."+tc.field+" "):
			t.Errorf("%s: error %q does not name Options.%s", tc.name, err, tc.field)
		}
		if h != nil {
			h.Close()
		}
	}

	serve := func(t *testing.T, prov oauth.Provider, co approval.ConsoleOptions) (*Handler, func(string) int) {
		h, err := Wrap(newMCPServer(), Options{Issuer: base, Provider: prov, Console: co})
		if err != nil {
			t.Fatal(err)
		}
		return h, func(path string) int {
			w := httptest.NewRecorder()
			h.ServeHTTP(w, httptest.NewRequest("GET", base+path, nil))
			return w.Code
		}
	}
	t.Run("not an Approver", func(t *testing.T) {
		h, get := serve(t, only, approval.ConsoleOptions{})
		for _, path := range []string{PathDevice, PathDevice + "?user_code=BCDF-GHJK", PathDevice + pathStatus, PathConsole, PathConsole + "/", PathConsole + "/approve?user_code=BCDF-GHJK"} {
			if st := get(path); st != http.StatusNotFound {
				t.Errorf("GET %s: %d, want 404", path, st)
			}
		}
		if st := get(wellKnownAS); st != http.StatusOK {
			t.Errorf("metadata: %d", st)
		}
		if _, err := h.Approve(context.Background(), "BCDF-GHJK", "owner"); err == nil {
			t.Error("Handler.Approve succeeded without an Approver")
		}
	})
	t.Run("Approver without sign-in", func(t *testing.T) {
		_, get := serve(t, p, approval.ConsoleOptions{})
		if st := get(PathDevice + "?user_code=BCDF-GHJK"); st != http.StatusOK {
			t.Errorf("approval page: %d, want 200", st)
		}
		if st := get(PathConsole); st != http.StatusNotFound {
			t.Errorf("console without Identity, Accounts or an AccountStore: %d, want 404", st)
		}
	})
}
