package mcpauth

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"testing"

	sdkauth "github.com/modelcontextprotocol/go-sdk/auth"
	sdkext "github.com/modelcontextprotocol/go-sdk/auth/extauth"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/modelcontextprotocol/go-sdk/oauthex"
	"golang.org/x/oauth2"

	oauth "github.com/mcp-oauth/oauth"
	"github.com/mcp-oauth/oauth/provider"
	"github.com/mcp-oauth/oauth/tokenexchange"
)

// Secrets of the machine clients of newMachineFixture.
const (
	svcSecret = "svc-secret-0123456789abcdefghijklmnopqrstuv"
	rsSecret  = "rs-secret-0123456789abcdefghijklmnopqrstuvw"
)

// callerServer is an MCP server whose tool "whoami" describes its caller.
func callerServer(name string) *mcp.Server {
	s := mcp.NewServer(&mcp.Implementation{Name: name, Version: "1"}, nil)
	mcp.AddTool(s, &mcp.Tool{Name: "whoami"}, func(ctx context.Context, req *mcp.CallToolRequest, in struct{}) (*mcp.CallToolResult, any, error) {
		c, ok := CallerOf(req)
		if !ok {
			return nil, nil, fmt.Errorf("no caller")
		}
		text := fmt.Sprintf("%s via %s scopes=%s act=%v resource=%s", c.Subject, c.ClientID, strings.Join(c.Scopes, ","), c.Act, c.Resource)
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: text}}}, nil, nil
	})
	return s
}

// newMachineFixture serves "notes" (scopes read, write) at /mcp and
// "files" (scope read) at /files/mcp, with two machine clients: svc (client
// credentials, scope read) and rs (token exchange).
func newMachineFixture(t *testing.T, mutate func(*Options)) *fixture {
	return newFixtureOf(t, callerServer("notes"), func(o *Options) {
		newMachineOptions(o)
		if mutate != nil {
			mutate(o)
		}
	})
}

// newMachineOptions sets newMachineFixture's resources and clients.
func newMachineOptions(o *Options) {
	o.Scopes, o.ToolScopes = []string{"read", "write"}, nil
	o.Resources = []Resource{{Server: callerServer("files"), Path: "/files/mcp", Scopes: []string{"read"}}}
	o.ProviderOptions.Clients = []provider.StaticClient{
		{ID: "svc", Secret: svcSecret, ClientRegistrationMetadata: oauthex.ClientRegistrationMetadata{
			ClientName: "Nightly job", GrantTypes: []string{oauth.GrantTypeClientCredentials}, Scope: "read"}},
		{ID: "rs", Secret: rsSecret, ClientRegistrationMetadata: oauthex.ClientRegistrationMetadata{
			ClientName: "Notes backend", GrantTypes: []string{oauth.GrantTypeTokenExchange}}},
	}
}

// whoami connects a go-sdk client to endpoint, authorized by handler or,
// when handler is nil, by token, and calls whoami.
func whoami(t *testing.T, endpoint string, handler sdkauth.OAuthHandler, token string) (string, error) {
	t.Helper()
	tr := &mcp.StreamableClientTransport{Endpoint: endpoint, MaxRetries: -1, OAuthHandler: handler}
	if handler == nil {
		tr.HTTPClient = oauth2.NewClient(t.Context(), oauth2.StaticTokenSource(&oauth2.Token{AccessToken: token}))
	}
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "t", Version: "1"}, nil).Connect(t.Context(), tr, nil)
	if err != nil {
		return "", err
	}
	defer cs.Close()
	res, err := cs.CallTool(t.Context(), &mcp.CallToolParams{Name: "whoami"})
	if err != nil {
		return "", err
	}
	if res.IsError {
		return "", fmt.Errorf("tool error: %v", res.Content[0])
	}
	return res.Content[0].(*mcp.TextContent).Text, nil
}

// TestClientCredentialsWithSDKClient: go-sdk's client-credentials handler
// (SEP-1046) gets a token for a configured service, which calls a tool as
// itself; one grant serves its repeated requests; revoking it stops the
// token; the grant type is advertised.
func TestClientCredentialsWithSDKClient(t *testing.T) {
	f := newMachineFixture(t, nil)
	meta := f.get("/.well-known/oauth-authorization-server")
	if gts := fmt.Sprint(meta.json["grant_types_supported"]); !strings.Contains(gts, "client_credentials") || !strings.Contains(gts, oauth.GrantTypeTokenExchange) {
		t.Errorf("grant_types_supported = %s", gts)
	}
	h, err := sdkext.NewClientCredentialsHandler(&sdkext.ClientCredentialsHandlerConfig{
		Credentials: &oauthex.ClientCredentials{ClientID: "svc", ClientSecretAuth: &oauthex.ClientSecretAuth{ClientSecret: svcSecret}},
	})
	if err != nil {
		t.Fatal(err)
	}
	got, err := whoami(t, f.base+"/mcp", h, "")
	if err != nil {
		t.Fatal(err)
	}
	if want := "svc via svc scopes=read act=map[] resource=" + f.base + "/mcp"; got != want {
		t.Errorf("whoami = %q, want %q", got, want)
	}
	// A second token, by hand, lives on the same grant.
	tok := func() *response {
		return f.post("/token", url.Values{"grant_type": {"client_credentials"}}, []string{"svc", svcSecret})
	}
	r := tok()
	if r.status != 200 || r.str("refresh_token") != "" || r.str("scope") != "read" {
		t.Fatalf("token: %d %s", r.status, r.body)
	}
	grants, err := f.h.provider.(oauth.Administrator).ListGrants(t.Context())
	if err != nil || len(grants) != 1 || grants[0].GrantType != oauth.GrantTypeClientCredentials || grants[0].Subject != "svc" {
		t.Fatalf("grants = %+v, %v; want one client_credentials grant of svc", grants, err)
	}
	if err := f.h.provider.(oauth.Administrator).RevokeGrant(t.Context(), grants[0].ID); err != nil {
		t.Fatal(err)
	}
	if _, err := whoami(t, f.base+"/mcp", nil, r.str("access_token")); err == nil {
		t.Error("a token of a revoked grant still calls tools")
	}
	if r := tok(); r.status != 200 {
		t.Errorf("a new token after revocation: %d %s", r.status, r.body)
	}
}

// TestClientCredentialsRefusals: each refusal is the RFC 6749 §5.2 error.
func TestClientCredentialsRefusals(t *testing.T) {
	f := newMachineFixture(t, nil)
	dyn := f.register(`{"redirect_uris":["https://app.example.com/cb"],"grant_types":["authorization_code","client_credentials"],"client_name":"Self-registered"}`)
	pub := f.publicClient()
	for _, tc := range []struct {
		name   string
		form   url.Values
		basic  []string
		status int
		code   string
	}{
		{"wrong secret", url.Values{}, []string{"svc", svcSecret + "x"}, 401, "invalid_client"},
		{"self-registered client", url.Values{}, []string{dyn.id, dyn.secret}, 400, "unauthorized_client"},
		{"public client", url.Values{"client_id": {pub.id}}, nil, 400, "unauthorized_client"},
		{"client not configured for it", url.Values{}, []string{"rs", rsSecret}, 400, "unauthorized_client"},
		{"only scopes beyond the client's", url.Values{"scope": {"write"}}, []string{"svc", svcSecret}, 400, "invalid_scope"},
		{"unknown scope", url.Values{"scope": {"admin"}}, []string{"svc", svcSecret}, 400, "invalid_scope"},
		{"unknown resource", url.Values{"resource": {"https://elsewhere.example.com/mcp"}}, []string{"svc", svcSecret}, 400, "invalid_target"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			form := tc.form
			form.Set("grant_type", "client_credentials")
			r := f.post("/token", form, tc.basic)
			if r.status != tc.status || r.str("error") != tc.code {
				t.Errorf("got %d %s, want %d %s", r.status, r.body, tc.status, tc.code)
			}
		})
	}
	// Scopes beyond the client's are left out (RFC 6749 §3.3).
	if r := f.post("/token", url.Values{"grant_type": {"client_credentials"}, "scope": {"read write admin"}}, []string{"svc", svcSecret}); r.status != 200 || r.str("scope") != "read" {
		t.Errorf("token with scopes beyond the client's: %d %s", r.status, r.body)
	}
	// The other resource: a token for it, with its scope.
	r := f.post("/token", url.Values{"grant_type": {"client_credentials"}, "resource": {f.base + "/files/mcp"}}, []string{"svc", svcSecret})
	if r.status != 200 || r.str("scope") != "read" {
		t.Fatalf("token for files: %d %s", r.status, r.body)
	}
	if got, err := whoami(t, f.base+"/files/mcp", nil, r.str("access_token")); err != nil || !strings.HasPrefix(got, "svc via svc") {
		t.Errorf("files whoami = %q, %v", got, err)
	}
	if _, err := whoami(t, f.base+"/mcp", nil, r.str("access_token")); err == nil {
		t.Error("a token for files is accepted by notes")
	}
}

// userToken returns an access token of alice's for notes with scopes
// read and write, and its grant's ID.
func (f *fixture) userToken() (token, grantID string) {
	f.t.Helper()
	c := f.publicClient()
	q := authParams(c)
	q.Set("scope", "read write")
	u := f.authorize(q, f.approve("alice"))
	r := f.exchange(c, u.Query().Get("code"))
	if r.status != 200 {
		f.t.Fatalf("token: %d %s", r.status, r.body)
	}
	at, err := f.h.provider.LoadAccessToken(f.t.Context(), r.str("access_token"))
	if err != nil {
		f.t.Fatal(err)
	}
	return r.str("access_token"), at.GrantID
}

// exchangeForm is an RFC 8693 request for subject.
func exchangeForm(subject string, kv ...string) url.Values {
	form := url.Values{"grant_type": {oauth.GrantTypeTokenExchange}, "subject_token": {subject}, "subject_token_type": {TokenTypeAccessToken}}
	for i := 0; i+1 < len(kv); i += 2 {
		form.Set(kv[i], kv[i+1])
	}
	return form
}

// TestTokenExchange: a configured resource server exchanges alice's notes
// token for a files token with scope read (RFC 8693 §2.2): the new token
// names rs as the actor, calls files as alice, expires no later than the
// subject token, and stops when alice's grant is revoked.
func TestTokenExchange(t *testing.T) {
	f := newMachineFixture(t, nil)
	subject, grantID := f.userToken()
	files := f.base + "/files/mcp"
	r := f.post("/token", exchangeForm(subject, "resource", files, "scope", "read"), []string{"rs", rsSecret})
	if r.status != 200 || r.str("issued_token_type") != TokenTypeAccessToken || r.str("token_type") != "Bearer" || r.str("scope") != "read" || r.str("refresh_token") != "" {
		t.Fatalf("exchange: %d %s", r.status, r.body)
	}
	exchanged := r.str("access_token")
	got, err := whoami(t, files, nil, exchanged)
	if want := "alice via rs scopes=read act=map[sub:rs] resource=" + files; err != nil || got != want {
		t.Fatalf("whoami = %q, %v; want %q", got, err, want)
	}
	sub, _ := f.h.provider.LoadAccessToken(t.Context(), subject)
	ex, _ := f.h.provider.LoadAccessToken(t.Context(), exchanged)
	if ex.GrantID != grantID || ex.ExpiresAt.After(sub.ExpiresAt) {
		t.Errorf("exchanged token: grant %s (want %s), expires %v (subject %v)", ex.GrantID, grantID, ex.ExpiresAt, sub.ExpiresAt)
	}
	// audience names the resource as well; the token is for files only.
	if r := f.post("/token", exchangeForm(subject, "audience", files), []string{"rs", rsSecret}); r.status != 200 || r.str("scope") != "read" {
		t.Errorf("exchange by audience: %d %s", r.status, r.body)
	}
	if _, err := whoami(t, f.base+"/mcp", nil, exchanged); err == nil {
		t.Error("a files token is accepted by notes")
	}
	// Revoking the exchanged token at /revoke does not end alice's grant.
	if r := f.post("/revoke", url.Values{"token": {exchanged}}, []string{"rs", rsSecret}); r.status != 200 {
		t.Fatalf("revoke: %d %s", r.status, r.body)
	}
	if _, err := whoami(t, f.base+"/mcp", nil, subject); err != nil {
		t.Errorf("the subject token after the exchanged one was revoked: %v", err)
	}
	// Revoking alice's grant ends both.
	if err := f.h.provider.(oauth.Administrator).RevokeGrant(t.Context(), grantID); err != nil {
		t.Fatal(err)
	}
	if _, err := whoami(t, files, nil, exchanged); err == nil {
		t.Error("an exchanged token outlives its grant")
	}
	if r := f.post("/token", exchangeForm(subject, "resource", files), []string{"rs", rsSecret}); r.status != 400 || r.str("error") != "invalid_grant" {
		t.Errorf("exchange of a revoked token: %d %s", r.status, r.body)
	}
}

// TestTokenExchangeChain: an exchanged token exchanged again nests the
// actors (RFC 8693 §4.1), up to provider.MaxActDepth.
func TestTokenExchangeChain(t *testing.T) {
	f := newMachineFixture(t, nil)
	tok, _ := f.userToken()
	for i := 1; i <= provider.MaxActDepth; i++ {
		r := f.post("/token", exchangeForm(tok, "scope", "read"), []string{"rs", rsSecret})
		if r.status != 200 {
			t.Fatalf("exchange %d: %d %s", i, r.status, r.body)
		}
		tok = r.str("access_token")
	}
	at, err := f.h.provider.LoadAccessToken(t.Context(), tok)
	if err != nil {
		t.Fatal(err)
	}
	depth := 0
	for a := at.Act; a != nil; a, _ = a["act"].(map[string]any) {
		if a["sub"] != "rs" {
			t.Errorf("actor %d = %v", depth, a["sub"])
		}
		depth++
	}
	if depth != provider.MaxActDepth {
		t.Errorf("act depth = %d, want %d", depth, provider.MaxActDepth)
	}
	if r := f.post("/token", exchangeForm(tok), []string{"rs", rsSecret}); r.status != 400 || r.str("error") != "invalid_request" {
		t.Errorf("exchange beyond the depth: %d %s", r.status, r.body)
	}
}

// TestTokenExchangeRefusals: each refusal is the RFC 8693 §2.2.2 error.
func TestTokenExchangeRefusals(t *testing.T) {
	f := newMachineFixture(t, nil)
	subject, _ := f.userToken()
	files := f.base + "/files/mcp"
	// A token with scope write only, which files does not offer.
	wr := f.post("/token", exchangeForm(subject, "scope", "write"), []string{"rs", rsSecret})
	writeOnly := wr.str("access_token")
	if wr.status != 200 || wr.str("scope") != "write" {
		t.Fatalf("exchange for write: %d %s", wr.status, wr.body)
	}
	dyn := f.register(`{"redirect_uris":["https://app.example.com/cb"],"client_name":"Self-registered"}`)
	rs := []string{"rs", rsSecret}
	for _, tc := range []struct {
		name   string
		form   url.Values
		basic  []string
		status int
		code   string
	}{
		{"no subject_token", exchangeForm("", "resource", files), rs, 400, "invalid_request"},
		{"wrong subject_token_type", exchangeForm(subject, "subject_token_type", "urn:ietf:params:oauth:token-type:id_token"), rs, 400, "invalid_request"},
		{"actor_token", exchangeForm(subject, "actor_token", subject, "actor_token_type", TokenTypeAccessToken), rs, 400, "invalid_request"},
		{"requested refresh token", exchangeForm(subject, "requested_token_type", "urn:ietf:params:oauth:token-type:refresh_token"), rs, 400, "invalid_request"},
		{"forged subject token", exchangeForm(subject[:len(subject)-4] + "AAAA"), rs, 400, "invalid_grant"},
		{"unknown resource", exchangeForm(subject, "resource", "https://elsewhere.example.com/mcp"), rs, 400, "invalid_target"},
		{"audience and resource differ", exchangeForm(subject, "resource", files, "audience", f.base+"/mcp"), rs, 400, "invalid_target"},
		{"scope the subject lacks", exchangeForm(subject, "resource", files, "scope", "admin"), rs, 400, "invalid_scope"},
		{"scope the resource lacks", exchangeForm(subject, "resource", files, "scope", "write"), rs, 400, "invalid_scope"},
		{"no scope of the subject's offered", exchangeForm(writeOnly, "resource", files), rs, 400, "invalid_scope"},
		{"self-registered client", exchangeForm(subject, "resource", files), []string{dyn.id, dyn.secret}, 400, "unauthorized_client"},
		{"client of client credentials", exchangeForm(subject, "resource", files), []string{"svc", svcSecret}, 400, "unauthorized_client"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := f.post("/token", tc.form, tc.basic)
			if r.status != tc.status || r.str("error") != tc.code {
				t.Errorf("got %d %s, want %d %s", r.status, r.body, tc.status, tc.code)
			}
		})
	}
	if r := f.post("/token", exchangeForm(subject, "resource", files), rs); r.status != 200 {
		t.Errorf("the valid request after the refusals: %d %s", r.status, r.body)
	}
}

// TestTokenExchangeFromTool: a tool of notes, as the resource server rs,
// exchanges its caller's token with package tokenexchange for a files
// token (RFC 8693) and calls files with it, for the same user.
func TestTokenExchangeFromTool(t *testing.T) {
	var base string
	var sts *tokenexchange.Client
	notes := callerServer("notes")
	mcp.AddTool(notes, &mcp.Tool{Name: "relay"}, func(ctx context.Context, req *mcp.CallToolRequest, in struct{}) (*mcp.CallToolResult, any, error) {
		subject, ok := tokenexchange.SubjectFromRequest(req)
		if !ok {
			return nil, nil, fmt.Errorf("no bearer token")
		}
		tok, err := sts.Exchange(ctx, &tokenexchange.Request{SubjectToken: subject, Resource: []string{base + "/files/mcp"}, Scopes: []string{"read"}})
		if err != nil {
			return nil, nil, err
		}
		got, err := whoami(t, base+"/files/mcp", nil, tok.AccessToken)
		if err != nil {
			return nil, nil, err
		}
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: got}}}, nil, nil
	})
	f := newFixtureOf(t, notes, func(o *Options) {
		newMachineOptions(o)
	})
	base = f.base
	var err error
	if sts, err = tokenexchange.New(tokenexchange.Options{Issuer: base, ClientID: "rs", ClientSecret: rsSecret}); err != nil {
		t.Fatal(err)
	}
	user, _ := f.userToken()
	tr := &mcp.StreamableClientTransport{Endpoint: base + "/mcp", MaxRetries: -1,
		HTTPClient: oauth2.NewClient(t.Context(), oauth2.StaticTokenSource(&oauth2.Token{AccessToken: user}))}
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "t", Version: "1"}, nil).Connect(t.Context(), tr, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	res, err := cs.CallTool(t.Context(), &mcp.CallToolParams{Name: "relay"})
	if err != nil || res.IsError {
		t.Fatalf("relay: %v %v", res, err)
	}
	if got, want := res.Content[0].(*mcp.TextContent).Text, "alice via rs scopes=read act=map[sub:rs] resource="+base+"/files/mcp"; got != want {
		t.Errorf("relay = %q, want %q", got, want)
	}
}
