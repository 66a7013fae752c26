package proxy

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/auth"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/modelcontextprotocol/go-sdk/oauthex"
	"golang.org/x/oauth2"

	"github.com/mcp-oauth/oauth/extauth"
	"github.com/mcp-oauth/oauth/internal/oidctest"
	"github.com/mcp-oauth/oauth/mcpauth"
)

// serveMCP serves, at e.resource, a go-sdk MCP server protected by
// mcpauth.Protect with extauth verifying the upstream's JWTs for
// e.resource; its metadata sends clients to the facade.
func (e *env) serveMCP(t *testing.T) {
	t.Helper()
	s := mcp.NewServer(&mcp.Implementation{Name: "notes", Version: "1.0.0"}, nil)
	mcp.AddTool(s, &mcp.Tool{Name: "whoami", Description: "Returns the caller."},
		func(ctx context.Context, req *mcp.CallToolRequest, _ struct{}) (*mcp.CallToolResult, any, error) {
			c, ok := mcpauth.CallerOf(req)
			if !ok {
				return nil, nil, errors.New("no caller")
			}
			text := fmt.Sprintf("%s via %s, roles %v", c.Subject, c.ClientID, c.Roles)
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: text}}}, nil, nil
		})
	h, err := mcpauth.Protect(s, mcpauth.ProtectOptions{
		Resource: e.resource,
		External: extauth.Options{
			Issuer:     e.idp.Issuer,
			Audiences:  []string{e.resource},
			TokenTypes: []string{"at+jwt", "JWT"}, // zitadel signs access tokens with typ JWT
			Roles:      extauth.RoleOptions{Claims: []extauth.RoleClaim{{Path: "roles"}}},
		},
		AuthorizationServers: []string{e.base}, // the facade, not the upstream
		Scopes:               []string{"openid"},
		RequiredRoles:        []string{"notes-user"},
	})
	if err != nil {
		t.Fatal(err)
	}
	e.mcp = h
	if e.mcpSrv != nil {
		e.mcpSrv.Config.Handler = h
		e.mcpSrv.Start()
	}
}

// connect connects go-sdk's MCP client, with its OAuth client, to the
// MCP server, and returns the session, the handler and the client_id it
// registered at the facade.
func (e *env) connect(t *testing.T, ctx context.Context) (*mcp.ClientSession, *auth.AuthorizationCodeHandler, string) {
	t.Helper()
	var registered string
	fetch := func(ctx context.Context, args *auth.AuthorizationArgs) (*auth.AuthorizationResult, error) {
		au, _ := url.Parse(args.URL)
		registered = au.Query().Get("client_id")
		back, err := signIn(t, e.idp.Issuer, args.URL, clientRedirect)
		if err != nil {
			return nil, err
		}
		q := back.Query()
		if q.Get("error") != "" {
			return nil, fmt.Errorf("authorization error %s: %s", q.Get("error"), q.Get("error_description"))
		}
		return &auth.AuthorizationResult{Code: q.Get("code"), State: q.Get("state"), Iss: q.Get("iss")}, nil
	}
	oh, err := auth.NewAuthorizationCodeHandler(&auth.AuthorizationCodeHandlerConfig{
		DynamicClientRegistrationConfig: &auth.DynamicClientRegistrationConfig{Metadata: &oauthex.ClientRegistrationMetadata{
			RedirectURIs: []string{clientRedirect}, ClientName: "e2e", TokenEndpointAuthMethod: "none",
			GrantTypes: []string{"authorization_code", "refresh_token"},
		}},
		AuthorizationCodeFetcher: fetch,
		RequestRefreshToken:      true,
	})
	if err != nil {
		t.Fatal(err)
	}
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "e2e", Version: "1"}, nil).
		Connect(ctx, &mcp.StreamableClientTransport{Endpoint: e.resource, OAuthHandler: oh, MaxRetries: -1}, nil)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(func() { cs.Close() })
	return cs, oh, registered
}

// TestGoSDKClientEndToEnd: go-sdk's own OAuth client
// (auth.AuthorizationCodeHandler with dynamic client registration)
// discovers the facade through the MCP server's metadata, registers,
// is sent through the facade to the real OpenID Provider, signs in there
// over plain HTTP, comes back through the facade's callback, exchanges
// the code at the facade, and calls a tool with the upstream's JWT, which
// extauth verifies for the MCP server's audience. Then the refresh token
// (sealed by the facade, the upstream's inside) refreshes, rotates, is
// revoked; and a resource server introspects through the facade.
func TestGoSDKClientEndToEnd(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, nil)
	e.serveMCP(t)
	cs, oh, registered := e.connect(t, ctx)
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "whoami"})
	if err != nil || res.IsError {
		t.Fatalf("whoami: %v %+v", err, res)
	}
	if got, want := res.Content[0].(*mcp.TextContent).Text, oidctest.Subject+" via "+upstreamClient+", roles [notes-user]"; got != want {
		t.Fatalf("whoami = %q, want %q", got, want)
	}
	if !strings.HasPrefix(registered, prefixClient) {
		t.Fatalf("the client registered as %q", registered)
	}

	ts, _ := oh.TokenSource(ctx)
	tok, err := ts.Token()
	if err != nil {
		t.Fatal(err)
	}
	// The access token is the upstream's, for the MCP server; the refresh
	// token is the facade's.
	if claims := jwtClaims(t, tok.AccessToken); claims["iss"] != e.idp.Issuer || !hasAudience(claims["aud"], e.resource) {
		t.Fatalf("access token claims %v", claims)
	}
	if !strings.HasPrefix(tok.RefreshToken, prefixRefresh) || tok.Extra("id_token") != nil {
		t.Fatalf("token response: refresh %q, id_token %v", tok.RefreshToken[:min(12, len(tok.RefreshToken))], tok.Extra("id_token"))
	}

	// Refresh at the facade, as the registered client.
	cfg := &oauth2.Config{ClientID: registered, Endpoint: oauth2.Endpoint{TokenURL: e.base + TokenPath, AuthStyle: oauth2.AuthStyleInParams}}
	fresh, err := cfg.TokenSource(ctx, &oauth2.Token{RefreshToken: tok.RefreshToken, Expiry: time.Now().Add(-time.Minute)}).Token()
	if err != nil {
		t.Fatalf("refresh: %v", err)
	}
	if fresh.AccessToken == tok.AccessToken || fresh.RefreshToken == tok.RefreshToken || !strings.HasPrefix(fresh.RefreshToken, prefixRefresh) {
		t.Fatal("the refresh did not rotate both tokens")
	}
	if got, err := callTool(ctx, e.resource, fresh.AccessToken); err != nil || !strings.HasPrefix(got, oidctest.Subject) {
		t.Fatalf("whoami with the refreshed token: %q %v", got, err)
	}
	// The upstream rotates refresh tokens: the spent one is refused,
	// relayed as invalid_grant.
	status, body, _ := postForm(t, e.base+TokenPath, url.Values{"grant_type": {"refresh_token"}, "client_id": {registered}, "refresh_token": {tok.RefreshToken}}, nil)
	if status != 400 || body["error"] != "invalid_grant" {
		t.Fatalf("a spent refresh token: %d %v", status, body)
	}
	// Another client may not use it.
	other := e.register(t, clientRedirect)
	status, body, _ = postForm(t, e.base+TokenPath, url.Values{"grant_type": {"refresh_token"}, "client_id": {other}, "refresh_token": {fresh.RefreshToken}}, nil)
	if status != 400 || body["error"] != "invalid_grant" || !strings.Contains(body["error_description"].(string), "another client") {
		t.Fatalf("another client's refresh token: %d %v", status, body)
	}

	// A resource server introspects through the facade.
	rs := http.Header{"Authorization": {"Basic " + base64.StdEncoding.EncodeToString([]byte(rsID+":"+rsSecret))}}
	status, body, _ = postForm(t, e.base+IntrospectPath, url.Values{"token": {fresh.AccessToken}}, rs)
	if status != 200 || body["active"] != true || body["sub"] != oidctest.Subject {
		t.Fatalf("introspection: %d %v", status, body)
	}
	svc, err := e.idp.ServiceToken(ctx, "svc-other", "s")
	if err != nil {
		t.Fatal(err)
	}
	if status, body, _ = postForm(t, e.base+IntrospectPath, url.Values{"token": {svc}}, rs); status != 200 || body["active"] != false {
		t.Fatalf("introspection of a token for another audience: %d %v", status, body)
	}
	if status, body, _ = postForm(t, e.base+IntrospectPath, url.Values{"token": {fresh.RefreshToken}}, rs); status != 200 || body["active"] != false {
		t.Fatalf("introspection of a refresh token: %d %v", status, body)
	}
	if status, body, _ = postForm(t, e.base+IntrospectPath, url.Values{"token": {fresh.AccessToken}}, nil); status != 401 || body["error"] != "invalid_client" {
		t.Fatalf("introspection without credentials: %d %v", status, body)
	}
	bad := http.Header{"Authorization": {"Basic " + base64.StdEncoding.EncodeToString([]byte(rsID+":wrong"))}}
	if status, _, _ = postForm(t, e.base+IntrospectPath, url.Values{"token": {fresh.AccessToken}}, bad); status != 401 {
		t.Fatalf("introspection with a wrong secret: %d", status)
	}

	// Revocation: another client may not; the client may, and then the
	// refresh token is dead at the upstream.
	if status, body, _ = postForm(t, e.base+RevokePath, url.Values{"client_id": {other}, "token": {fresh.RefreshToken}}, nil); status != 400 || body["error"] != "unauthorized_client" {
		t.Fatalf("revocation by another client: %d %v", status, body)
	}
	if status, body, _ = postForm(t, e.base+RevokePath, url.Values{"client_id": {registered}, "token": {fresh.RefreshToken}, "token_type_hint": {"refresh_token"}}, nil); status != 200 {
		t.Fatalf("revocation: %d %v", status, body)
	}
	status, body, _ = postForm(t, e.base+TokenPath, url.Values{"grant_type": {"refresh_token"}, "client_id": {registered}, "refresh_token": {fresh.RefreshToken}}, nil)
	if status != 400 || body["error"] != "invalid_grant" {
		t.Fatalf("a revoked refresh token: %d %v", status, body)
	}
	// RFC 7009 §2.2: an invalid token is no error.
	if status, _, _ = postForm(t, e.base+RevokePath, url.Values{"client_id": {registered}, "token": {"junk"}}, nil); status != 200 {
		t.Fatalf("revocation of junk: %d", status)
	}
}

// TestSameOrigin: the facade and the MCP server on one origin, mounted
// as README.md shows.
func TestSameOrigin(t *testing.T) {
	ctx := context.Background()
	e := newEnvOrigin(t, true, nil)
	e.serveMCP(t)
	cs, _, _ := e.connect(t, ctx)
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "whoami"})
	if err != nil || res.IsError || !strings.HasPrefix(res.Content[0].(*mcp.TextContent).Text, oidctest.Subject+" via ") {
		t.Fatalf("whoami: %v %+v", err, res)
	}
}

// TestPKCEEndToEnd: the client's code_verifier reaches the upstream,
// which checks it against the challenge the facade passed on: a wrong
// verifier is refused there, relayed as invalid_grant, and the code of
// one client does not serve another.
func TestPKCEEndToEnd(t *testing.T) {
	e := newEnv(t, nil)
	client := e.register(t, clientRedirect)
	code := func() string {
		back, err := signIn(t, e.idp.Issuer, e.authorizeURL(client, clientRedirect, nil), clientRedirect)
		if err != nil {
			t.Fatal(err)
		}
		q := back.Query()
		if q.Get("state") != "client-state" || q.Get("iss") != e.base || !strings.HasPrefix(q.Get("code"), prefixCode) {
			t.Fatalf("the client got %v", q)
		}
		return q.Get("code")
	}
	exchange := func(client, code, verifier string) (int, map[string]any) {
		s, b, _ := postForm(t, e.base+TokenPath, url.Values{"grant_type": {"authorization_code"}, "client_id": {client},
			"code": {code}, "redirect_uri": {clientRedirect}, "code_verifier": {verifier}, "resource": {e.resource}}, nil)
		return s, b
	}
	wrong := strings.Repeat("x", 43)
	if s, b := exchange(client, code(), wrong); s != 400 || b["error"] != "invalid_grant" || !strings.Contains(b["error_description"].(string), "identity provider") {
		t.Fatalf("a wrong verifier: %d %v", s, b)
	}
	if s, b := exchange(e.register(t, clientRedirect), code(), verifier); s != 400 || b["error"] != "invalid_grant" {
		t.Fatalf("another client's code: %d %v", s, b)
	}
	c := code()
	if s, b := exchange(client, c, verifier); s != 200 || b["access_token"] == nil || b["token_type"] != "Bearer" {
		t.Fatalf("the exchange: %d %v", s, b)
	}
	// The upstream's code is single use, and so the facade's.
	if s, b := exchange(client, c, verifier); s != 400 || b["error"] != "invalid_grant" {
		t.Fatalf("a replayed code: %d %v", s, b)
	}
}

// callTool calls whoami with a static bearer token.
func callTool(ctx context.Context, endpoint, token string) (string, error) {
	hc := oauth2.NewClient(ctx, oauth2.StaticTokenSource(&oauth2.Token{AccessToken: token}))
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "t", Version: "1"}, nil).
		Connect(ctx, &mcp.StreamableClientTransport{Endpoint: endpoint, HTTPClient: hc, MaxRetries: -1}, nil)
	if err != nil {
		return "", err
	}
	defer cs.Close()
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "whoami"})
	if err != nil {
		return "", err
	}
	if res.IsError {
		return "", fmt.Errorf("tool error: %v", res.Content)
	}
	return res.Content[0].(*mcp.TextContent).Text, nil
}

func jwtClaims(t *testing.T, tok string) map[string]any {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT: %d parts", len(parts))
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func hasAudience(aud any, want string) bool {
	switch a := aud.(type) {
	case string:
		return a == want
	case []any:
		return slices.Contains(a, any(want))
	}
	return false
}
