package proxy

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/oauthex"
)

// TestRegister: registration is answered locally with a public client
// whose client_id carries its redirect URIs; redirect URIs are checked as
// a real authorization server checks them.
func TestRegister(t *testing.T) {
	fk := newFake(t, nil, nil)
	w := fk.serve("POST", RegisterPath, "application/json; charset=utf-8",
		`{"redirect_uris":["http://127.0.0.1/cb","cursor://anysphere.cursor-mcp/oauth/callback"],"client_name":"Cursor","token_endpoint_auth_method":"client_secret_basic","grant_types":["authorization_code"]}`, nil)
	if w.Code != http.StatusCreated || w.Header().Get("Cache-Control") != "no-store" {
		t.Fatalf("register: %d %s", w.Code, w.Body)
	}
	var resp oauthex.ClientRegistrationResponse
	json.Unmarshal(w.Body.Bytes(), &resp)
	if resp.TokenEndpointAuthMethod != "none" || resp.ClientSecret != "" || resp.ApplicationType != "native" ||
		!slices.Equal(resp.GrantTypes, []string{"authorization_code", "refresh_token"}) || resp.ClientIDIssuedAt.IsZero() {
		t.Errorf("response %+v", resp)
	}
	c, err := fk.f.client(resp.ClientID)
	if err != nil || !slices.Equal(c.RedirectURIs, []string{"http://127.0.0.1/cb", "cursor://anysphere.cursor-mcp/oauth/callback"}) {
		t.Fatalf("client %+v %v", c, err)
	}

	many := make([]string, maxRedirectURIs+1)
	for i := range many {
		many[i] = "https://app.example/cb" + strings.Repeat("x", i)
	}
	long := []string{"https://app.example/" + strings.Repeat("a", 1100), "https://app.example/" + strings.Repeat("b", 1100)}
	for _, tc := range []struct {
		name, ctype, body string
		status            int
		error             string
	}{
		{"no redirect_uris", "application/json", `{}`, 400, "invalid_redirect_uri"},
		{"http off loopback", "application/json", `{"redirect_uris":["http://app.example/cb"]}`, 400, "invalid_redirect_uri"},
		{"fragment", "application/json", `{"redirect_uris":["https://app.example/cb#x"]}`, 400, "invalid_redirect_uri"},
		{"javascript", "application/json", `{"redirect_uris":["javascript:alert(1)"]}`, 400, "invalid_redirect_uri"},
		{"relative", "application/json", `{"redirect_uris":["/cb"]}`, 400, "invalid_redirect_uri"},
		{"userinfo", "application/json", `{"redirect_uris":["https://u:p@app.example/cb"]}`, 400, "invalid_redirect_uri"},
		{"too many", "application/json", mustJSON(map[string]any{"redirect_uris": many}), 400, "invalid_redirect_uri"},
		{"too long together", "application/json", mustJSON(map[string]any{"redirect_uris": long}), 400, "invalid_redirect_uri"},
		{"client_credentials", "application/json", `{"redirect_uris":["https://app.example/cb"],"grant_types":["client_credentials"]}`, 400, "invalid_client_metadata"},
		{"refresh only", "application/json", `{"redirect_uris":["https://app.example/cb"],"grant_types":["refresh_token"]}`, 400, "invalid_client_metadata"},
		{"implicit", "application/json", `{"redirect_uris":["https://app.example/cb"],"response_types":["token"]}`, 400, "invalid_client_metadata"},
		{"control characters in the name", "application/json", `{"redirect_uris":["https://app.example/cb"],"client_name":"a\u202eb"}`, 400, "invalid_client_metadata"},
		{"bad application_type", "application/json", `{"redirect_uris":["https://app.example/cb"],"application_type":"tv"}`, 400, "invalid_client_metadata"},
		{"not JSON", "application/json", `redirect_uris=x`, 400, "invalid_client_metadata"},
		{"trailing data", "application/json", `{"redirect_uris":["https://app.example/cb"]} {}`, 400, "invalid_client_metadata"},
		{"a form", "application/x-www-form-urlencoded", `redirect_uris=https://app.example/cb`, 400, "invalid_client_metadata"},
		{"oversized", "application/json", `{"redirect_uris":["https://app.example/cb"],"client_name":"` + strings.Repeat("a", MaxRegistrationBytes) + `"}`, 413, "invalid_client_metadata"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := fk.serve("POST", RegisterPath, tc.ctype, tc.body, nil)
			if w.Code != tc.status || !strings.Contains(w.Body.String(), `"error":"`+tc.error+`"`) {
				t.Fatalf("%d %s, want %d %s", w.Code, w.Body, tc.status, tc.error)
			}
		})
	}
	if w := fk.serve("GET", RegisterPath, "", "", nil); w.Code != http.StatusMethodNotAllowed {
		t.Errorf("GET: %d", w.Code)
	}
	// CORS preflight, for browser-based clients.
	w = fk.serve("OPTIONS", RegisterPath, "", "", http.Header{"Origin": {"https://inspector.example"}, "Access-Control-Request-Method": {"POST"}})
	if w.Code != http.StatusNoContent || w.Header().Get("Access-Control-Allow-Origin") != "*" {
		t.Errorf("preflight: %d %v", w.Code, w.Header())
	}
}

// TestMetadata: the RFC 8414 document MCP clients need, with the secure
// choices of the facade.
func TestMetadata(t *testing.T) {
	fk := newFake(t, nil, nil)
	w := fk.serve("GET", MetadataPath, "", "", nil)
	var m oauthex.AuthServerMeta
	if err := json.Unmarshal(w.Body.Bytes(), &m); err != nil || w.Code != 200 {
		t.Fatalf("%d %v", w.Code, err)
	}
	want := oauthex.AuthServerMeta{
		Issuer: fakeIssuer, AuthorizationEndpoint: "http://127.0.0.1:9/authorize", TokenEndpoint: "http://127.0.0.1:9/token",
		JWKSURI: fk.srv.URL + "/keys", RegistrationEndpoint: "http://127.0.0.1:9/register",
		ScopesSupported: []string{"openid", "notes", "offline_access"}, ResponseTypesSupported: []string{"code"},
		ResponseModesSupported: []string{"query"}, GrantTypesSupported: []string{"authorization_code", "refresh_token"},
		TokenEndpointAuthMethodsSupported: []string{"none"}, RevocationEndpoint: "http://127.0.0.1:9/revoke",
		RevocationEndpointAuthMethodsSupported: []string{"none"}, IntrospectionEndpoint: "http://127.0.0.1:9/introspect",
		IntrospectionEndpointAuthMethodsSupported: []string{"client_secret_basic"}, CodeChallengeMethodsSupported: []string{"S256"},
		AuthorizationResponseIssParameterSupported: true,
	}
	if got, wantJSON := mustJSON(m), mustJSON(want); got != wantJSON {
		t.Errorf("metadata\n got %s\nwant %s", got, wantJSON)
	}
	if mustJSON(fk.f.Metadata()) != mustJSON(want) || fk.f.CallbackURL() != "http://127.0.0.1:9/callback" {
		t.Error("Metadata or CallbackURL differ from what is served")
	}

	// An issuer with a path: endpoints under it, metadata by path
	// insertion (RFC 8414 §3.1). No revocation or introspection upstream:
	// none here either.
	fk = newFake(t, func(m map[string]any) { delete(m, "revocation_endpoint"); delete(m, "introspection_endpoint") },
		func(o *Options) { o.Issuer = "http://127.0.0.1:9/auth/" })
	if w := fk.serve("GET", MetadataPath+"/auth", "", "", nil); w.Code != 200 || !strings.Contains(w.Body.String(), `"token_endpoint":"http://127.0.0.1:9/auth/token"`) ||
		strings.Contains(w.Body.String(), "revocation_endpoint") || strings.Contains(w.Body.String(), "introspection_endpoint") {
		t.Errorf("path issuer: %d %s", w.Code, w.Body)
	}
	if w := fk.serve("GET", MetadataPath+"/auth/", "", "", nil); w.Code != 200 {
		t.Errorf("metadata at the path with its slash: %d", w.Code)
	}
	if w := fk.serve("GET", MetadataPath+"/auth/x", "", "", nil); w.Code != 404 {
		t.Errorf("metadata below the issuer's path: %d", w.Code)
	}
	if w := fk.serve("POST", "/auth"+RevokePath, "application/x-www-form-urlencoded", "token=x", nil); w.Code != 404 {
		t.Errorf("revoke without an upstream endpoint: %d", w.Code)
	}
}

// TestZeroOptionsAreSecure: what the zero values choose. Without Keys,
// each facade seals with its own random key: no other accepts its
// clients. PKCE is S256 only, clients are public, there is no implicit
// or password grant, and introspection is off without ResourceServers.
func TestZeroOptionsAreSecure(t *testing.T) {
	a := newFake(t, nil, func(o *Options) { o.Keys, o.ResourceServers, o.Scopes = nil, nil, nil })
	b := newFake(t, nil, func(o *Options) { o.Keys = nil })
	client := a.register(t, clientRedirect)
	if _, err := b.f.client(client); err == nil {
		t.Fatal("two facades without Keys share a key")
	}
	m := a.f.Metadata()
	if !slices.Equal(m.CodeChallengeMethodsSupported, []string{"S256"}) || !slices.Equal(m.TokenEndpointAuthMethodsSupported, []string{"none"}) ||
		!slices.Equal(m.ResponseTypesSupported, []string{"code"}) || !slices.Equal(m.GrantTypesSupported, []string{"authorization_code", "refresh_token"}) ||
		m.IntrospectionEndpoint != "" || !m.AuthorizationResponseIssParameterSupported || m.ScopesSupported != nil {
		t.Errorf("zero options: %+v", m)
	}
	if a.f.opts.StateTTL != DefaultStateTTL || a.f.hc.Timeout != DefaultUpstreamTimeout {
		t.Errorf("defaults %v %v", a.f.opts.StateTTL, a.f.hc.Timeout)
	}
	// No scope offered: none is asked of the upstream, whatever the client asks.
	w := a.serve("GET", AuthorizePath+"?"+authQuery(client, url.Values{"scope": {"https://graph.microsoft.com/Mail.Read"}}), "", "", nil)
	if to, _ := url.Parse(w.Header().Get("Location")); w.Code != http.StatusFound || to.Query().Has("scope") {
		t.Errorf("scope without Scopes: %d %v", w.Code, to)
	}
	if w := a.serve("POST", IntrospectPath, "application/x-www-form-urlencoded", "token=x", nil); w.Code != 404 {
		t.Errorf("introspection without ResourceServers: %d", w.Code)
	}
}

// TestNewRefusals: a configuration that is not secure, or that cannot
// work, does not start.
func TestNewRefusals(t *testing.T) {
	fk := newFake(t, nil, nil)
	ok := Options{Issuer: fakeIssuer, Upstream: fk.srv.URL, ClientID: "c", Resource: fakeResource}
	for _, tc := range []struct {
		name   string
		mutate func(o *Options)
		says   string
	}{
		{"http issuer off loopback", func(o *Options) { o.Issuer = "http://auth.example.com" }, "https"},
		{"issuer with a query", func(o *Options) { o.Issuer = "https://auth.example.com/?x=1" }, "query"},
		{"no upstream", func(o *Options) { o.Upstream = "" }, "Upstream"},
		{"no client", func(o *Options) { o.ClientID = "" }, "ClientID"},
		{"no resource", func(o *Options) { o.Resource = "" }, "Resource"},
		{"short key", func(o *Options) { o.Keys = [][]byte{make([]byte, 16)} }, "32 bytes"},
		{"bad scope", func(o *Options) { o.Scopes = []string{"a b"} }, "scope"},
		{"resource server without a secret", func(o *Options) { o.ResourceServers = []ResourceServer{{ClientID: "rs"}} }, "ClientSecret"},
		{"another issuer's metadata", func(o *Options) { o.Upstream = fk.srv.URL + "/" }, "names issuer"},
		{"no metadata", func(o *Options) { o.Upstream = "http://127.0.0.1:1" }, "no authorization server metadata"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := ok
			tc.mutate(&o)
			if _, err := New(context.Background(), o); err == nil || !strings.Contains(err.Error(), tc.says) {
				t.Fatalf("New: %v, want %q", err, tc.says)
			}
		})
	}
	for name, meta := range map[string]func(m map[string]any){
		"no S256":                    func(m map[string]any) { m["code_challenge_methods_supported"] = []string{"plain"} },
		"no token endpoint":          func(m map[string]any) { delete(m, "token_endpoint") },
		"javascript endpoint":        func(m map[string]any) { m["authorization_endpoint"] = "javascript:alert(1)" },
		"endpoint with a fragment":   func(m map[string]any) { m["token_endpoint"] = "http://127.0.0.1/t#x" },
		"no authorization endpoint":  func(m map[string]any) { delete(m, "authorization_endpoint") },
		"relative revocation":        func(m map[string]any) { m["revocation_endpoint"] = "/revoke" },
		"introspection with no host": func(m map[string]any) { m["introspection_endpoint"] = "http:///x" },
	} {
		t.Run(name, func(t *testing.T) {
			bad := newFakeMetaOnly(t, meta)
			o := ok
			o.Upstream = bad
			if _, err := New(context.Background(), o); err == nil {
				t.Fatal("New accepted it")
			}
		})
	}
}

// TestKeyRotation: values sealed under an old key still open while it is
// in Options.Keys; a new registration is sealed with the first key.
func TestKeyRotation(t *testing.T) {
	oldKey, newKey := bytes.Repeat([]byte{1}, 32), bytes.Repeat([]byte{2}, 32)
	fk := newFake(t, nil, func(o *Options) { o.Keys = [][]byte{oldKey} })
	client := fk.register(t, clientRedirect)
	rt := fk.refresh(client)
	rotated := newFake(t, nil, func(o *Options) { o.Keys = [][]byte{newKey, oldKey} })
	if _, err := rotated.f.client(client); err != nil {
		t.Fatal("a client of the old key no longer opens")
	}
	var rec refreshRecord
	if err := rotated.f.keys.open(prefixRefresh, rt, &rec); err != nil {
		t.Fatal("a refresh token of the old key no longer opens")
	}
	fresh := rotated.register(t, clientRedirect)
	if _, err := fk.f.client(fresh); err == nil {
		t.Fatal("a new client was sealed with the old key")
	}
	dropped := newFake(t, nil, func(o *Options) { o.Keys = [][]byte{newKey} })
	if _, err := dropped.f.client(client); err == nil {
		t.Fatal("a client of a dropped key still opens")
	}
}
