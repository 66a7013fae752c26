package mcpauth

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// These tests replay what real MCP clients send, as their public
// documentation and issue reports describe it.

// Claude.ai and Claude Desktop register as confidential clients with
// client_secret_post and a claude.ai (or claude.com) callback, send the MCP
// URL with a trailing slash as resource, never ask for offline_access but
// rely on refresh tokens, and register again when /token says
// invalid_client.
func TestReplayClaudeWeb(t *testing.T) {
	f := newFixture(t, nil)
	for _, cb := range []string{"https://claude.ai/api/mcp/auth_callback", "https://claude.com/api/mcp/auth_callback"} {
		r := f.postJSON("/register", `{"client_name":"Claude","redirect_uris":["`+cb+`"],"grant_types":["authorization_code","refresh_token"],
			"response_types":["code"],"token_endpoint_auth_method":"client_secret_post","scope":"mcp"}`, nil)
		if r.status != 201 || r.str("client_secret") == "" {
			t.Fatalf("register: %d %s", r.status, r.body)
		}
		c := client{id: r.str("client_id"), secret: r.str("client_secret"), redirect: cb}
		q := authParams(c)
		q.Set("resource", f.base+"/mcp/")
		q.Set("scope", "mcp")
		u := f.authorize(q, f.approve("alice"))
		if u.Host != strings.TrimPrefix(strings.Split(cb, "/api")[0], "https://") || u.Query().Get("code") == "" {
			t.Fatalf("redirect %s", u)
		}
		form := url.Values{"grant_type": {"authorization_code"}, "code": {u.Query().Get("code")}, "code_verifier": {verifier},
			"redirect_uri": {cb}, "client_id": {c.id}, "client_secret": {c.secret}, "resource": {f.base + "/mcp/"}}
		tok := f.post("/token", form, nil)
		if tok.status != 200 || tok.str("refresh_token") == "" {
			t.Fatalf("token: %d %s (Claude needs a refresh token without offline_access)", tok.status, tok.body)
		}
		ref := f.post("/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.str("refresh_token")},
			"client_id": {c.id}, "client_secret": {c.secret}, "resource": {f.base + "/mcp/"}}, nil)
		if ref.status != 200 {
			t.Fatalf("refresh: %d %s", ref.status, ref.body)
		}
	}
	// A registration the server no longer knows: 401 invalid_client, the
	// signal on which Claude registers again.
	r := f.post("/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"mcp_rt_x"}, "client_id": {"forgotten"}, "client_secret": {"s"}}, nil)
	if r.status != 401 || r.str("error") != "invalid_client" {
		t.Fatalf("unknown client: %d %s", r.status, r.body)
	}
}

// Claude Code registers a native client with a loopback redirect on an
// ephemeral port and uses PKCE as a public client.
func TestReplayClaudeCode(t *testing.T) {
	f := newFixture(t, nil)
	r := f.postJSON("/register", `{"client_name":"Claude Code (notes)","redirect_uris":["http://localhost:53127/callback"],
		"grant_types":["authorization_code","refresh_token"],"response_types":["code"],"token_endpoint_auth_method":"none","application_type":"native"}`, nil)
	if r.status != 201 || r.str("client_secret") != "" || r.str("application_type") != "native" {
		t.Fatalf("register: %d %s", r.status, r.body)
	}
	c := client{id: r.str("client_id"), redirect: "http://localhost:53127/callback"}
	if tok := f.exchange(c, f.code(c)); tok.status != 200 {
		t.Fatalf("token: %d %s", tok.status, tok.body)
	}
	// The next session listens on another port.
	c.redirect = "http://localhost:61002/callback"
	if tok := f.exchange(c, f.code(c)); tok.status != 200 {
		t.Fatalf("token on another port: %d %s", tok.status, tok.body)
	}
}

// Cursor registers three redirect URIs in one request, one of them its
// private-use scheme, and returns through the app scheme.
func TestReplayCursor(t *testing.T) {
	f := newFixture(t, nil)
	r := f.postJSON("/register", `{"client_name":"Cursor","redirect_uris":["cursor://anysphere.cursor-mcp/oauth/callback","http://127.0.0.1:3000/callback","https://cursor.com/oauth/callback"],
		"token_endpoint_auth_method":"none","grant_types":["authorization_code","refresh_token"]}`, nil)
	if r.status != 201 || !sameList(r.json["redirect_uris"], "cursor://anysphere.cursor-mcp/oauth/callback", "http://127.0.0.1:3000/callback", "https://cursor.com/oauth/callback") {
		t.Fatalf("register: %d %s", r.status, r.body)
	}
	c := client{id: r.str("client_id"), redirect: "cursor://anysphere.cursor-mcp/oauth/callback"}
	u := f.authorize(authParams(c), f.approve("alice"))
	if u.Scheme != "cursor" || u.Query().Get("code") == "" {
		t.Fatalf("redirect %s", u)
	}
	if tok := f.exchange(c, u.Query().Get("code")); tok.status != 200 {
		t.Fatalf("token: %d %s", tok.status, tok.body)
	}
}

// A DCR request without application_type whose redirect URIs are all
// loopback or app schemes is a native app.
func TestReplayDCRWithoutApplicationType(t *testing.T) {
	f := newFixture(t, nil)
	for body, want := range map[string]string{
		`{"redirect_uris":["http://127.0.0.1:8976/oauth/callback"],"token_endpoint_auth_method":"none"}`:             "native",
		`{"redirect_uris":["vscode://vscode.mcp/callback","http://[::1]:4/cb"],"token_endpoint_auth_method":"none"}`: "native",
		`{"redirect_uris":["https://app.example/cb","http://127.0.0.1/cb"]}`:                                         "web",
	} {
		if r := f.postJSON("/register", body, nil); r.str("application_type") != want {
			t.Errorf("%s: application_type %q, want %s", body, r.str("application_type"), want)
		}
	}
}

// The MCP Inspector makes every discovery, registration and token call from
// browser JavaScript: each needs a passing CORS preflight, and the 401 from
// the MCP endpoint must expose WWW-Authenticate.
func TestReplayInspectorCORS(t *testing.T) {
	f := newFixture(t, nil)
	origin := "http://localhost:6274"
	for _, tc := range []struct{ method, path, reqHeaders string }{
		{"GET", "/.well-known/oauth-protected-resource/mcp", "mcp-protocol-version"},
		{"GET", "/.well-known/oauth-protected-resource", "mcp-protocol-version"},
		{"GET", "/.well-known/oauth-authorization-server", "mcp-protocol-version"},
		{"GET", "/.well-known/openid-configuration", ""},
		{"POST", "/register", "content-type"},
		{"POST", "/token", "content-type, authorization"},
		{"POST", "/revoke", "content-type"},
		{"POST", "/mcp", "authorization, content-type, mcp-protocol-version, mcp-session-id"},
		{"GET", "/jwks.json", ""},
		{"POST", "/mcp", "authorization, x-custom-auth-header"},
	} {
		req, _ := http.NewRequest("OPTIONS", f.base+tc.path, nil)
		req.Header.Set("Origin", origin)
		req.Header.Set("Access-Control-Request-Method", tc.method)
		if tc.reqHeaders != "" {
			req.Header.Set("Access-Control-Request-Headers", tc.reqHeaders)
		}
		r := f.do(req)
		allowed := strings.ToLower(r.header.Get("Access-Control-Allow-Headers"))
		if r.status/100 != 2 || r.header.Get("Access-Control-Allow-Origin") == "" || !strings.Contains(r.header.Get("Access-Control-Allow-Methods"), tc.method) {
			t.Errorf("preflight %s %s: %d %v", tc.method, tc.path, r.status, r.header)
			continue
		}
		for _, h := range strings.Split(tc.reqHeaders, ",") {
			if h = strings.TrimSpace(h); h != "" && !strings.Contains(allowed, h) {
				t.Errorf("preflight %s %s: header %q not allowed (%q)", tc.method, tc.path, h, allowed)
			}
		}
	}
	req, _ := http.NewRequest("POST", f.base+"/mcp", strings.NewReader(initialize))
	req.Header.Set("Origin", origin)
	r := f.do(req)
	if r.status != 401 || r.header.Get("Access-Control-Allow-Origin") == "" || !strings.Contains(r.header.Get("Access-Control-Expose-Headers"), "WWW-Authenticate") {
		t.Fatalf("401 from /mcp to a browser: %d %v", r.status, r.header)
	}
}

// Re-authorizing the same application for the same subject replaces the
// earlier grant, also across re-registration (Claude registers again on
// invalid_client); other applications and other subjects keep theirs. For
// metadata-document clients, which many installations share, only the
// grant for the same redirect URI is replaced.
func TestReauthorizationReplacesGrant(t *testing.T) {
	docs := newDocHost(t)
	f := newFixture(t, docs.options)
	claude := `{"client_name":"Claude","redirect_uris":["https://claude.ai/api/mcp/auth_callback"],"token_endpoint_auth_method":"none"}`
	flow := func(c client, subject string) string {
		u := f.authorize(authParams(c), f.approve(subject))
		tok := f.exchange(c, u.Query().Get("code"))
		if tok.status != 200 {
			t.Fatalf("token: %d %s", tok.status, tok.body)
		}
		return tok.str("access_token")
	}
	works := func(at string) bool { return f.mcpCall(at, initialize).status == 200 }

	first := f.register(claude)
	a1 := flow(first, "alice")
	other := f.register(`{"client_name":"Cursor","redirect_uris":["http://127.0.0.1:3000/cb"],"token_endpoint_auth_method":"none"}`)
	cursor := flow(other, "alice")
	bob := flow(first, "bob")
	second := f.register(claude) // a re-registration: new client_id, same application
	a2 := flow(second, "alice")
	if works(a1) {
		t.Error("alice's grant from the first registration survived re-authorization")
	}
	for name, at := range map[string]string{"new grant": a2, "other application": cursor, "other subject": bob} {
		if !works(at) {
			t.Errorf("%s was revoked", name)
		}
	}
	// Same client, same subject, again: replaced.
	a3 := flow(second, "alice")
	if works(a2) || !works(a3) {
		t.Error("re-authorizing the same client did not replace the grant")
	}
	// A look-alike registration that is approved but whose code is never
	// redeemed (it goes to the real client's callback) replaces nothing.
	lookalike := f.register(claude)
	f.authorize(authParams(lookalike), f.approve("alice"))
	if !works(a3) {
		t.Error("an approved but unredeemed look-alike revoked the real client's grant")
	}

	id := docs.add("/chatgpt.json", `{"client_id":"%s","client_name":"ChatGPT","redirect_uris":["https://chatgpt.com/connector/oauth/one","https://chatgpt.com/connector/oauth/two"],"token_endpoint_auth_method":"none"}`)
	one := flow(client{id: id, redirect: "https://chatgpt.com/connector/oauth/one"}, "alice")
	two := flow(client{id: id, redirect: "https://chatgpt.com/connector/oauth/two"}, "alice")
	if !works(one) || !works(two) {
		t.Fatal("two installations of a metadata-document client replaced each other")
	}
	one2 := flow(client{id: id, redirect: "https://chatgpt.com/connector/oauth/one"}, "alice")
	if works(one) || !works(one2) || !works(two) {
		t.Error("re-authorizing one installation did not replace exactly its grant")
	}
	grants, _ := f.h.DefaultProvider().ListGrants(context.Background())
	if len(grants) != 6 { // bob, cursor, a3, the unredeemed look-alike's, two, one2
		t.Errorf("%d active grants, want 6", len(grants))
	}
}
