package mcpauth

import (
	"net/url"
	"strings"
	"testing"
)

func TestRegister(t *testing.T) {
	f := newFixture(t, nil)
	for _, tc := range []struct {
		name, body string
		status     int
		err        string
		secret     bool
	}{
		{"public loopback", `{"redirect_uris":["http://127.0.0.1:8976/cb"],"token_endpoint_auth_method":"none"}`, 201, "", false},
		{"public localhost and ipv6", `{"redirect_uris":["http://localhost/cb","http://[::1]:9/cb"],"token_endpoint_auth_method":"none"}`, 201, "", false},
		{"confidential post", `{"redirect_uris":["https://claude.ai/api/mcp/auth_callback"],"token_endpoint_auth_method":"client_secret_post"}`, 201, "", true},
		{"confidential basic", `{"redirect_uris":["https://app.example/cb"],"token_endpoint_auth_method":"client_secret_basic"}`, 201, "", true},
		{"default method is basic", `{"redirect_uris":["https://app.example/cb"]}`, 201, "", true},
		{"cursor three uris", `{"redirect_uris":["cursor://anysphere.cursor-mcp/oauth/callback","http://127.0.0.1:3000/cb","https://cursor.com/cb"],"token_endpoint_auth_method":"none"}`, 201, "", false},
		{"reverse-domain scheme", `{"redirect_uris":["com.example.app:/oauth2redirect"],"token_endpoint_auth_method":"none"}`, 201, "", false},
		{"unknown grant ignored", `{"redirect_uris":["https://a.example/cb"],"grant_types":["authorization_code","urn:ietf:params:oauth:grant-type:jwt-bearer"],"token_endpoint_auth_method":"none"}`, 201, "", false},
		{"javascript", `{"redirect_uris":["javascript:alert(1)"]}`, 400, "invalid_redirect_uri", false},
		{"data", `{"redirect_uris":["data:text/html,hi"]}`, 400, "invalid_redirect_uri", false},
		{"vbscript", `{"redirect_uris":["vbscript:msgbox"]}`, 400, "invalid_redirect_uri", false},
		{"file", `{"redirect_uris":["file:///etc/passwd"]}`, 400, "invalid_redirect_uri", false},
		{"JavaScript mixed case", `{"redirect_uris":["JaVaScRiPt:alert(1)"]}`, 400, "invalid_redirect_uri", false},
		{"http non-loopback", `{"redirect_uris":["http://app.example/cb"]}`, 400, "invalid_redirect_uri", false},
		{"one bad among good", `{"redirect_uris":["https://a.example/cb","http://evil.example/cb"]}`, 400, "invalid_redirect_uri", false},
		{"fragment", `{"redirect_uris":["https://a.example/cb#frag"]}`, 400, "invalid_redirect_uri", false},
		{"relative", `{"redirect_uris":["/cb"]}`, 400, "invalid_redirect_uri", false},
		{"no uris", `{"client_name":"x"}`, 400, "invalid_redirect_uri", false},
		{"private_key_jwt", `{"redirect_uris":["https://a.example/cb"],"token_endpoint_auth_method":"private_key_jwt"}`, 400, "invalid_client_metadata", false},
		{"refresh_token only", `{"redirect_uris":["https://a.example/cb"],"grant_types":["refresh_token"]}`, 400, "invalid_client_metadata", false},
		{"implicit only", `{"redirect_uris":["https://a.example/cb"],"response_types":["token"]}`, 400, "invalid_client_metadata", false},
		{"bad application_type", `{"redirect_uris":["https://a.example/cb"],"application_type":"tv"}`, 400, "invalid_client_metadata", false},
		{"long name", `{"redirect_uris":["https://a.example/cb"],"client_name":"` + strings.Repeat("n", 201) + `"}`, 400, "invalid_client_metadata", false},
		{"not json", `redirect_uris=x`, 400, "invalid_client_metadata", false},
		{"bidi in name", `{"redirect_uris":["https://a.example/cb"],"client_name":"\u202eedualC"}`, 400, "invalid_client_metadata", false},
		{"escape in name", `{"redirect_uris":["https://a.example/cb"],"client_name":"x\u001b]0;pwned\u0007"}`, 400, "invalid_client_metadata", false},
		{"too large", `{"redirect_uris":["https://a.example/cb"],"client_name":"` + strings.Repeat("n", MaxRegistrationBytes) + `"}`, 413, "invalid_client_metadata", false},
	} {
		r := f.postJSON("/register", tc.body, nil)
		if r.status != tc.status || r.str("error") != tc.err {
			t.Errorf("%s: %d %s, want %d %q", tc.name, r.status, r.body, tc.status, tc.err)
			continue
		}
		if r.header.Get("Cache-Control") != "no-store" {
			t.Errorf("%s: no Cache-Control: no-store", tc.name)
		}
		if tc.status != 201 {
			continue
		}
		if r.str("client_id") == "" {
			t.Errorf("%s: no client_id", tc.name)
		}
		if got := r.str("client_secret") != ""; got != tc.secret {
			t.Errorf("%s: secret issued = %v, want %v", tc.name, got, tc.secret)
		}
		if _, has := r.json["client_secret_expires_at"]; has != tc.secret {
			t.Errorf("%s: client_secret_expires_at present = %v, want %v (RFC 7591 §3.2.1)", tc.name, has, tc.secret)
		}
		if !sameList(r.json["grant_types"], "authorization_code", "refresh_token") {
			t.Errorf("%s: grant_types %v", tc.name, r.json["grant_types"])
		}
	}
	// application_type is inferred from the redirect URIs.
	if r := f.postJSON("/register", `{"redirect_uris":["http://127.0.0.1/cb"],"token_endpoint_auth_method":"none"}`, nil); r.str("application_type") != "native" {
		t.Errorf("loopback client: application_type %q, want native", r.str("application_type"))
	}
	if r := f.postJSON("/register", `{"redirect_uris":["https://a.example/cb"]}`, nil); r.str("application_type") != "web" {
		t.Errorf("web client: application_type %q, want web", r.str("application_type"))
	}
}

func TestRegistrationGating(t *testing.T) {
	off := newFixture(t, func(o *Options) { o.DisableRegistration = true })
	if r := off.postJSON("/register", `{"redirect_uris":["https://a.example/cb"]}`, nil); r.status != 404 && r.status != 405 {
		t.Errorf("registration off: %d", r.status)
	}
	if r := off.get("/.well-known/oauth-authorization-server"); r.str("registration_endpoint") != "" {
		t.Error("registration off but advertised")
	}
	gated := newFixture(t, func(o *Options) { o.InitialAccessToken = "let-me-in" })
	body := `{"redirect_uris":["https://a.example/cb"]}`
	for name, hdr := range map[string]map[string]string{
		"none":  nil,
		"wrong": {"Authorization": "Bearer let-me-out"},
	} {
		if r := gated.postJSON("/register", body, hdr); r.status != 401 || r.str("error") != "invalid_token" {
			t.Errorf("gated, %s token: %d %s", name, r.status, r.body)
		}
	}
	if r := gated.postJSON("/register", body, map[string]string{"Authorization": "Bearer let-me-in"}); r.status != 201 {
		t.Errorf("gated, right token: %d %s", r.status, r.body)
	}
}

func TestRevoke(t *testing.T) {
	f := newFixture(t, nil)
	c, tok := f.tokens()
	other := f.publicClient()
	for name, form := range map[string]url.Values{
		"unknown token":  {"token": {"mcp_rt_nonexistent"}, "client_id": {c.id}},
		"junk token":     {"token": {"junk"}, "client_id": {c.id}},
		"other's token":  {"token": {tok.str("refresh_token")}, "client_id": {other.id}},
		"other's access": {"token": {tok.str("access_token")}, "client_id": {other.id}},
		"unknown hint":   {"token": {"x"}, "client_id": {c.id}, "token_type_hint": {"weird"}},
	} {
		if r := f.post("/revoke", form, nil); r.status != 200 {
			t.Errorf("%s: %d %s", name, r.status, r.body)
		}
	}
	if r := f.mcpCall(tok.str("access_token"), initialize); r.status != 200 {
		t.Fatalf("another client revoked this client's token: %d", r.status)
	}
	if r := f.post("/revoke", url.Values{"client_id": {c.id}}, nil); r.status != 400 || r.str("error") != "invalid_request" {
		t.Errorf("no token: %d %s", r.status, r.body)
	}
	if r := f.post("/revoke", url.Values{"token": {"x"}, "client_id": {"nope"}}, nil); r.status != 401 {
		t.Errorf("unknown client: %d", r.status)
	}
	// Revoking the access token revokes its grant.
	if r := f.post("/revoke", url.Values{"token": {tok.str("access_token")}, "client_id": {c.id}, "token_type_hint": {"access_token"}}, nil); r.status != 200 {
		t.Fatal(r.status)
	}
	if r := f.mcpCall(tok.str("access_token"), initialize); r.status != 401 {
		t.Fatalf("revoked access token: %d", r.status)
	}
	if r := f.post("/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.str("refresh_token")}, "client_id": {c.id}}, nil); r.status != 400 {
		t.Fatalf("refresh after revocation: %d", r.status)
	}
}

func TestIntrospect(t *testing.T) {
	f := newFixture(t, nil)
	c, tok := f.tokens()
	rs := f.register(`{"redirect_uris":["https://rs.example/cb"],"token_endpoint_auth_method":"client_secret_basic"}`)
	r := f.post("/introspect", url.Values{"token": {tok.str("access_token")}}, []string{rs.id, rs.secret})
	if r.status != 200 || r.json["active"] != true || r.str("sub") != "alice" || r.str("client_id") != c.id || r.str("aud") != f.base+"/mcp" || r.str("iss") != f.base {
		t.Fatalf("introspect access token: %d %s", r.status, r.body)
	}
	// Refresh tokens are not described, and introspecting one has no side
	// effect: a spent one does not revoke the grant from a third party.
	if r := f.post("/introspect", url.Values{"token": {tok.str("refresh_token")}}, []string{rs.id, rs.secret}); r.json["active"] != false {
		t.Errorf("refresh token described: %s", r.body)
	}
	spent := tok.str("refresh_token")
	r1 := f.post("/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {spent}, "client_id": {c.id}}, nil)
	r2 := f.post("/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {r1.str("refresh_token")}, "client_id": {c.id}}, nil)
	f.post("/introspect", url.Values{"token": {spent}}, []string{rs.id, rs.secret})
	if r := f.mcpCall(r2.str("access_token"), initialize); r.status != 200 {
		t.Fatalf("introspecting a spent refresh token revoked the grant: %d", r.status)
	}
	tok = r2
	for name, tk := range map[string]string{"junk": "junk", "empty-ish": "mcp_rt_x"} {
		if r := f.post("/introspect", url.Values{"token": {tk}}, []string{rs.id, rs.secret}); r.status != 200 || r.json["active"] != false || len(r.json) != 1 {
			t.Errorf("%s: %s", name, r.body)
		}
	}
	if r := f.post("/introspect", url.Values{"token": {tok.str("access_token")}, "client_id": {c.id}}, nil); r.status != 401 {
		t.Errorf("public client may introspect: %d", r.status)
	}
	if r := f.post("/introspect", url.Values{"token": {tok.str("access_token")}}, nil); r.status != 401 {
		t.Errorf("anonymous introspection: %d", r.status)
	}
	f.post("/revoke", url.Values{"token": {tok.str("refresh_token")}, "client_id": {c.id}}, nil)
	if r := f.post("/introspect", url.Values{"token": {tok.str("access_token")}}, []string{rs.id, rs.secret}); r.json["active"] != false {
		t.Errorf("revoked token active: %s", r.body)
	}
}
