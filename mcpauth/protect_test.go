package mcpauth_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/modelcontextprotocol/go-sdk/auth"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/modelcontextprotocol/go-sdk/oauthex"
	"golang.org/x/oauth2"

	oauth "github.com/mcp-oauth/oauth"
	"github.com/mcp-oauth/oauth/extauth"
	"github.com/mcp-oauth/oauth/internal/oidctest"
	"github.com/mcp-oauth/oauth/mcpauth"
)

// whoamiServer is an MCP server whose whoami tool answers with the
// caller's subject, client and roles, and whose delete tool does nothing
// (its roles are Protect's business).
func whoamiServer() *mcp.Server {
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
	mcp.AddTool(s, &mcp.Tool{Name: "delete", Description: "Deletes everything."},
		func(ctx context.Context, req *mcp.CallToolRequest, _ struct{}) (*mcp.CallToolResult, any, error) {
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "deleted"}}}, nil, nil
		})
	return s
}

// callTool connects a go-sdk MCP client that sends token and calls tool.
func callTool(ctx context.Context, endpoint, token, tool string) (string, error) {
	hc := oauth2.NewClient(ctx, oauth2.StaticTokenSource(&oauth2.Token{AccessToken: token}))
	return connectAndCall(ctx, &mcp.StreamableClientTransport{Endpoint: endpoint, HTTPClient: hc, MaxRetries: -1}, tool)
}

// callToolWithHandler is callTool with the tokens of an OAuth handler.
func callToolWithHandler(ctx context.Context, endpoint string, h auth.OAuthHandler, tool string) (string, error) {
	return connectAndCall(ctx, &mcp.StreamableClientTransport{Endpoint: endpoint, OAuthHandler: h, MaxRetries: -1}, tool)
}

func connectAndCall(ctx context.Context, tr *mcp.StreamableClientTransport, tool string) (string, error) {
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "test-client", Version: "1.0.0"}, nil).Connect(ctx, tr, nil)
	if err != nil {
		return "", err
	}
	defer cs.Close()
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: tool})
	if err != nil {
		return "", err
	}
	if res.IsError {
		return "", fmt.Errorf("tool error: %v", res.Content)
	}
	return res.Content[0].(*mcp.TextContent).Text, nil
}

// postToolCall sends one tools/call with token and returns the response.
func postToolCall(t *testing.T, endpoint, token, tool string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest("POST", endpoint, strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"`+tool+`"}}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}

// TestProtectWithOpenIDProvider: a go-sdk MCP server protected by
// Protect takes the tokens of a real OpenID Provider (zitadel's op, in
// process), JWTs and opaque ones (by introspection), called by go-sdk's
// client; roles from the token's claims gate a tool; a key the provider
// rotates in is picked up without a restart; a revoked opaque token stops.
func TestProtectWithOpenIDProvider(t *testing.T) {
	ctx := context.Background()
	srv := httptest.NewUnstartedServer(nil)
	base := "http://" + srv.Listener.Addr().String()
	resource := base + "/mcp"
	idp := oidctest.Start(t, oidctest.Options{Services: []oidctest.Service{
		{ID: "svc-admin", Secret: "s1", JWT: true, Audience: []string{resource}, Claims: map[string]any{"roles": []string{"notes-admin"}}},
		{ID: "svc-reader", Secret: "s2", JWT: true, Audience: []string{resource}, Claims: map[string]any{"roles": []string{"notes-reader"}}},
		{ID: "svc-other", Secret: "s3", JWT: true, Audience: []string{"https://other.example/mcp"}},
		{ID: "svc-opaque", Secret: "s4", Audience: []string{resource}, Claims: map[string]any{"roles": []string{"notes-admin"}}},
		{ID: "notes-rs", Secret: "rs-secret"}, // this resource server, at the introspection endpoint
	}})
	v, err := extauth.New(ctx, extauth.Options{
		Issuer:     idp.Issuer,
		Audiences:  []string{resource},
		TokenTypes: []string{"at+jwt", "JWT"}, // zitadel signs access tokens with typ JWT
		Roles: extauth.RoleOptions{Claims: []extauth.RoleClaim{{Path: "roles",
			Map: map[string][]string{"notes-admin": {"admin", "reader"}, "notes-reader": {"reader"}}}}},
		Introspection: extauth.IntrospectionOptions{ClientID: "notes-rs", ClientSecret: "rs-secret", CacheTTL: -1},
		Keys:          extauth.KeySetOptions{MinInterval: time.Millisecond},
	})
	if err != nil {
		t.Fatal(err)
	}
	h, err := mcpauth.Protect(whoamiServer(), mcpauth.ProtectOptions{
		Resource:      resource,
		Verifier:      v,
		Scopes:        []string{"notes"},
		RequiredRoles: []string{"reader"},
		ToolRoles:     map[string][]string{"delete": {"admin"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	srv.Config.Handler = h
	srv.Start()
	defer srv.Close()

	// Discovery: 401 with the metadata, which names the provider.
	resp := postToolCall(t, resource, "", "whoami")
	if resp.StatusCode != 401 || !strings.Contains(resp.Header.Get("WWW-Authenticate"), `resource_metadata="`+base+`/.well-known/oauth-protected-resource/mcp"`) {
		t.Fatalf("no token: %d %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
	prmResp, err := http.Get(base + "/.well-known/oauth-protected-resource/mcp")
	if err != nil {
		t.Fatal(err)
	}
	var prm oauthex.ProtectedResourceMetadata
	json.NewDecoder(prmResp.Body).Decode(&prm)
	prmResp.Body.Close()
	if prm.Resource != resource || len(prm.AuthorizationServers) != 1 || prm.AuthorizationServers[0] != idp.Issuer {
		t.Fatalf("metadata %+v", prm)
	}

	token := func(id, secret string) string {
		tok, err := idp.ServiceToken(ctx, id, secret, "notes")
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	admin := token("svc-admin", "s1")
	if got, err := callTool(ctx, resource, admin, "whoami"); err != nil || got != "svc-admin via svc-admin, roles [admin reader]" {
		t.Fatalf("whoami as admin: %q %v", got, err)
	}
	if got, err := callTool(ctx, resource, admin, "delete"); err != nil || got != "deleted" {
		t.Fatalf("delete as admin: %q %v", got, err)
	}

	reader := token("svc-reader", "s2")
	if got, err := callTool(ctx, resource, reader, "whoami"); err != nil || !strings.Contains(got, "roles [reader]") {
		t.Fatalf("whoami as reader: %q %v", got, err)
	}
	resp = postToolCall(t, resource, reader, "delete")
	if wa := resp.Header.Get("WWW-Authenticate"); resp.StatusCode != 403 || !strings.Contains(wa, `error="insufficient_scope"`) || !strings.Contains(wa, "admin") {
		t.Fatalf("delete as reader: %d %q", resp.StatusCode, wa)
	}
	if resp := postToolCall(t, resource, token("svc-other", "s3"), "whoami"); resp.StatusCode != 401 ||
		!strings.Contains(resp.Header.Get("WWW-Authenticate"), `error="invalid_token"`) {
		t.Fatalf("a token for another resource: %d %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}

	// The provider rotates its signing key: the next token names a new kid.
	if err := idp.RotateKey(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(5 * time.Millisecond) // past Keys.MinInterval
	if got, err := callTool(ctx, resource, token("svc-admin", "s1"), "whoami"); err != nil || !strings.HasPrefix(got, "svc-admin") {
		t.Fatalf("after key rotation: %q %v", got, err)
	}
	if s := v.Stats(); s.KeyFetches != 2 || s.Rejected["wrong_audience"] != 1 || s.CacheHits == 0 {
		t.Errorf("stats after rotation: %+v", s)
	}

	// An opaque token, verified by introspection, until it is revoked.
	opaque := token("svc-opaque", "s4")
	if strings.Count(opaque, ".") == 2 {
		t.Fatal("the opaque token is a JWT")
	}
	if got, err := callTool(ctx, resource, opaque, "delete"); err != nil || got != "deleted" {
		t.Fatalf("opaque token: %q %v", got, err)
	}
	if err := idp.Revoke(ctx, "svc-opaque", "s4", opaque); err != nil {
		t.Fatal(err)
	}
	if resp := postToolCall(t, resource, opaque, "whoami"); resp.StatusCode != 401 {
		t.Fatalf("a revoked opaque token: %d", resp.StatusCode)
	}
	if s := v.Stats(); s.Rejected["inactive"] != 1 || s.Introspections < 2 || s.IntrospectionFailures != 0 {
		t.Errorf("stats after revocation: %+v", s)
	}
}

// TestProtectRules: the roles and scopes rules, the metadata and the host
// check, with a verifier of the test's own.
func TestProtectRules(t *testing.T) {
	tokens := map[string]*oauth.AccessToken{
		"admin":  {Subject: "ann", Scopes: []string{"notes"}, Roles: []string{"admin", "reader"}},
		"reader": {Subject: "bob", Scopes: []string{"notes"}, Roles: []string{"reader"}},
		"norole": {Subject: "cat", Scopes: []string{"notes"}},
		"noscp":  {Subject: "dan", Roles: []string{"admin", "reader"}},
	}
	verify := func(ctx context.Context, tok string) (*oauth.AccessToken, error) {
		if tok == "down" {
			return nil, fmt.Errorf("introspection: %w", extauth.ErrIntrospectionUnavailable)
		}
		at, ok := tokens[tok]
		if !ok {
			return nil, oauth.ErrInvalidToken.WithDescription("unknown")
		}
		c := *at
		c.ExpiresAt = time.Now().Add(time.Minute)
		return &c, nil
	}
	h, err := mcpauth.Protect(whoamiServer(), mcpauth.ProtectOptions{
		Resource: "http://127.0.0.1/mcp", Verify: verify, AuthorizationServers: []string{"https://idp.example.com"},
		Scopes: []string{"notes"}, RequiredScopes: []string{"notes"}, RequiredRoles: []string{"reader"},
		ToolRoles: map[string][]string{"delete": {"admin"}}, ResourceName: "Notes",
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	endpoint := srv.URL + "/mcp"
	for _, tc := range []struct {
		token, tool string
		status      int
		header      string
	}{
		{"admin", "delete", 200, ""},
		{"reader", "whoami", 200, ""},
		{"reader", "delete", 403, `error_description="the caller lacks a role this request needs: admin"`},
		{"norole", "whoami", 403, `error="insufficient_scope"`},
		{"noscp", "whoami", 403, `scope="notes"`},
		{"bogus", "whoami", 401, `error="invalid_token"`},
		{"down", "whoami", 500, `resource_metadata=`},
		{"", "whoami", 401, `scope="notes"`},
	} {
		resp := postToolCall(t, endpoint, tc.token, tc.tool)
		if resp.StatusCode != tc.status || !strings.Contains(resp.Header.Get("WWW-Authenticate"), tc.header) {
			t.Errorf("%s %s: %d %q", tc.token, tc.tool, resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
		}
	}
	if got, err := callTool(context.Background(), endpoint, "admin", "whoami"); err != nil || got != "ann via , roles [admin reader]" {
		t.Errorf("whoami: %q %v", got, err)
	}
	for _, path := range []string{"/.well-known/oauth-protected-resource/mcp", "/.well-known/oauth-protected-resource"} {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		var prm oauthex.ProtectedResourceMetadata
		json.NewDecoder(resp.Body).Decode(&prm)
		resp.Body.Close()
		if prm.Resource != "http://127.0.0.1/mcp" || prm.AuthorizationServers[0] != "https://idp.example.com" || prm.ResourceName != "Notes" ||
			len(prm.ScopesSupported) != 1 || resp.Header.Get("Access-Control-Allow-Origin") != "*" {
			t.Errorf("%s: %+v", path, prm)
		}
	}
	req, _ := http.NewRequest("GET", srv.URL+"/.well-known/oauth-protected-resource/mcp", nil)
	req.Host = "evil.example"
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 403 {
		t.Errorf("a foreign Host on loopback: %v %v", resp.StatusCode, err)
	}
}

func TestProtectRefuses(t *testing.T) {
	verify := func(context.Context, string) (*oauth.AccessToken, error) { return nil, oauth.ErrInvalidToken }
	for name, tc := range map[string]struct {
		server *mcp.Server
		opts   mcpauth.ProtectOptions
	}{
		"nil server":          {nil, mcpauth.ProtectOptions{Resource: "https://notes.example.com/mcp", Verify: verify, AuthorizationServers: []string{"https://idp"}}},
		"no resource":         {whoamiServer(), mcpauth.ProtectOptions{Verify: verify, AuthorizationServers: []string{"https://idp"}}},
		"http resource":       {whoamiServer(), mcpauth.ProtectOptions{Resource: "http://notes.example.com/mcp", Verify: verify, AuthorizationServers: []string{"https://idp"}}},
		"no verifier":         {whoamiServer(), mcpauth.ProtectOptions{Resource: "https://notes.example.com/mcp"}},
		"no issuer to name":   {whoamiServer(), mcpauth.ProtectOptions{Resource: "https://notes.example.com/mcp", Verify: verify}},
		"unreachable issuer":  {whoamiServer(), mcpauth.ProtectOptions{Resource: "https://notes.example.com/mcp", External: extauth.Options{Issuer: "http://127.0.0.1:1"}}},
		"external with HS256": {whoamiServer(), mcpauth.ProtectOptions{Resource: "https://notes.example.com/mcp", External: extauth.Options{Issuer: "http://127.0.0.1:1", Algorithms: []string{"HS256"}}}},
	} {
		if _, err := mcpauth.Protect(tc.server, tc.opts); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// Protect serves an MCP server to the holders of an external issuer's
// tokens (a company's Keycloak, Entra ID, Okta, Auth0, ...): clients learn
// from the protected resource metadata where to get a token, and tools
// read who is calling, with the roles the token grants. Here the issuer
// is a small stand-in on httptest that publishes its metadata and an
// ES256 key.
func ExampleProtect() {
	issuer, sign := exampleIssuer()
	defer issuer.Close()

	srv := httptest.NewUnstartedServer(nil)
	base := "http://" + srv.Listener.Addr().String()
	h, err := mcpauth.Protect(whoamiServer(), mcpauth.ProtectOptions{
		Resource: base + "/mcp",
		External: extauth.Options{
			Issuer: issuer.URL, // Keycloak: https://kc.example.com/realms/acme
			Roles:  extauth.RoleOptions{Claims: []extauth.RoleClaim{{Path: "realm_access.roles"}}},
		},
		RequiredRoles: []string{"notes-user"},
		ToolRoles:     map[string][]string{"delete": {"notes-admin"}},
	})
	if err != nil {
		log.Fatal(err)
	}
	srv.Config.Handler = h
	srv.Start()
	defer srv.Close()

	resp, err := http.Post(base+"/mcp", "application/json", strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"ping"}`))
	if err != nil {
		log.Fatal(err)
	}
	resp.Body.Close()
	fmt.Println(resp.StatusCode, strings.ReplaceAll(resp.Header.Get("WWW-Authenticate"), base, "BASE"))
	resp, err = http.Get(base + "/.well-known/oauth-protected-resource/mcp")
	if err != nil {
		log.Fatal(err)
	}
	var prm oauthex.ProtectedResourceMetadata
	json.NewDecoder(resp.Body).Decode(&prm)
	resp.Body.Close()
	fmt.Println("authorization servers are the issuer's:", len(prm.AuthorizationServers) == 1 && prm.AuthorizationServers[0] == issuer.URL)

	token := sign(map[string]any{
		"iss": issuer.URL, "aud": base + "/mcp", "sub": "alice", "azp": "notes-app",
		"exp": time.Now().Add(5 * time.Minute).Unix(), "iat": time.Now().Unix(),
		"realm_access": map[string]any{"roles": []string{"notes-user"}},
	})
	ctx := context.Background()
	out, err := callTool(ctx, base+"/mcp", token, "whoami")
	fmt.Println(out, err)
	_, err = callTool(ctx, base+"/mcp", token, "delete")
	fmt.Println("delete refused:", err != nil)
	// Output:
	// 401 Bearer resource_metadata="BASE/.well-known/oauth-protected-resource/mcp"
	// authorization servers are the issuer's: true
	// alice via notes-app, roles [notes-user] <nil>
	// delete refused: true
}

// exampleIssuer starts a stand-in issuer: RFC 8414 metadata and a JWK
// Set with one ES256 key; sign makes an access token (typ at+jwt) with it.
func exampleIssuer() (*httptest.Server, func(claims map[string]any) string) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		log.Fatal(err)
	}
	b64 := base64.RawURLEncoding
	x, y := make([]byte, 32), make([]byte, 32)
	key.X.FillBytes(x)
	key.Y.FillBytes(y)
	jwks, _ := json.Marshal(map[string]any{"keys": []any{map[string]any{
		"kty": "EC", "crv": "P-256", "kid": "k1", "use": "sig", "alg": "ES256", "x": b64.EncodeToString(x), "y": b64.EncodeToString(y)}}})
	var issuer *httptest.Server
	issuer = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/.well-known/oauth-authorization-server":
			json.NewEncoder(w).Encode(map[string]string{"issuer": issuer.URL, "jwks_uri": issuer.URL + "/jwks"})
		case "/jwks":
			w.Header().Set("Cache-Control", "max-age=3600")
			w.Write(jwks)
		default:
			http.NotFound(w, r)
		}
	}))
	return issuer, func(claims map[string]any) string {
		t := jwt.NewWithClaims(jwt.SigningMethodES256, jwt.MapClaims(claims))
		t.Header["kid"], t.Header["typ"] = "k1", "at+jwt"
		s, err := t.SignedString(key)
		if err != nil {
			log.Fatal(err)
		}
		return s
	}
}
