package mcpauth

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/mcp-oauth/oauth/internal/testclock"
	"github.com/mcp-oauth/oauth/provider"
	"github.com/mcp-oauth/oauth/storage/memory"
)

// deviceFixture serves Wrap around a provider with a hand-moved clock, so
// that polls can be spaced by the RFC 8628 interval without sleeping.
func deviceFixture(t *testing.T) (*fixture, *provider.Provider, *testclock.Clock) {
	t.Helper()
	srv := httptest.NewUnstartedServer(nil)
	base := "http://" + srv.Listener.Addr().String()
	clk := testclock.New(time.Now())
	store := memory.New()
	p, err := provider.New(context.Background(), store, provider.Options{Issuer: base, Resource: base + "/mcp", Now: clk.Now,
		ApprovalPath: PathDevice})
	if err != nil {
		t.Fatal(err)
	}
	h, err := Wrap(newMCPServer(), Options{Issuer: base, Provider: p})
	if err != nil {
		t.Fatal(err)
	}
	srv.Config.Handler = h
	srv.Start()
	t.Cleanup(srv.Close)
	return &fixture{t: t, srv: srv, h: h, base: base, store: store}, p, clk
}

// TestDeviceGrantOverHTTP walks RFC 8628 over HTTP: a client registered
// for the device grant alone (no redirect URI) asks for a device code,
// polls while the owner has not decided, is slowed down when it polls too
// fast, and gets tokens that work at the MCP endpoint once the owner
// approves; a second poll is invalid_grant.
func TestDeviceGrantOverHTTP(t *testing.T) {
	f, p, clk := deviceFixture(t)
	reg := f.postJSON("/register", `{"grant_types":["urn:ietf:params:oauth:grant-type:device_code"],"token_endpoint_auth_method":"none","client_name":"CLI"}`, nil)
	if reg.status != http.StatusCreated || !sameList(reg.json["grant_types"], "urn:ietf:params:oauth:grant-type:device_code", "refresh_token") {
		t.Fatalf("register a device client: %d %s", reg.status, reg.body)
	}
	id := reg.str("client_id")

	r := f.post(PathDeviceAuthorization, url.Values{"client_id": {id}, "scope": {"mcp"}}, nil)
	if r.status != 200 || r.header.Get("Cache-Control") != "no-store" {
		t.Fatalf("device authorization: %d %v %s", r.status, r.header, r.body)
	}
	dc, uc := r.str("device_code"), r.str("user_code")
	if dc == "" || uc == "" || r.str("verification_uri") != f.base+"/device" ||
		r.str("verification_uri_complete") != f.base+"/device?user_code="+url.QueryEscape(uc) ||
		r.json["expires_in"] != float64(600) || r.json["interval"] != float64(5) {
		t.Fatalf("device authorization response: %s", r.body)
	}
	poll := func() *response {
		return f.post(PathToken, url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:device_code"}, "device_code": {dc}, "client_id": {id}}, nil)
	}
	wantErr := func(r *response, code string) {
		t.Helper()
		if r.status != 400 || r.str("error") != code {
			t.Fatalf("poll: %d %s, want 400 %s", r.status, r.body, code)
		}
	}
	wantErr(poll(), "authorization_pending")
	wantErr(poll(), "slow_down")
	clk.Advance(11 * time.Second)
	wantErr(poll(), "authorization_pending")

	// The verification page names the code and where to approve it.
	page := f.get("/device?user_code=" + url.QueryEscape(uc))
	if page.status != 200 || !strings.Contains(string(page.body), `data-user-code="`+uc+`"`) {
		t.Errorf("verification page: %d %s", page.status, page.body)
	}

	if _, err := p.Approve(context.Background(), uc, "alice", nil); err != nil {
		t.Fatal(err)
	}
	clk.Advance(11 * time.Second)
	tok := poll()
	if tok.status != 200 || tok.str("access_token") == "" || tok.str("refresh_token") == "" {
		t.Fatalf("poll after approval: %d %s", tok.status, tok.body)
	}
	if c := f.mcpCall(tok.str("access_token"), initialize); c.status != 200 || strings.Contains(string(c.body), `"error"`) {
		t.Errorf("MCP call with the device's token: %d %s", c.status, c.body)
	}
	clk.Advance(11 * time.Second)
	wantErr(poll(), "invalid_grant")
}

// TestDeviceGrantRefusals: the device endpoints refuse what RFC 8628 and
// our registration rules do not allow.
func TestDeviceGrantRefusals(t *testing.T) {
	f, p, clk := deviceFixture(t)
	ctx := context.Background()
	codeClient := f.publicClient()
	if r := f.post(PathDeviceAuthorization, url.Values{"client_id": {codeClient.id}}, nil); r.status != 400 || r.str("error") != "unauthorized_client" {
		t.Errorf("device authorization by a code-flow client: %d %s", r.status, r.body)
	}
	if r := f.post(PathToken, url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:device_code"}, "device_code": {"mcp_dc_x"},
		"client_id": {codeClient.id}}, nil); r.status != 400 || r.str("error") != "unauthorized_client" {
		t.Errorf("device_code grant by a code-flow client: %d %s", r.status, r.body)
	}
	if r := f.postJSON("/register", `{"grant_types":["implicit"],"redirect_uris":["http://127.0.0.1/cb"]}`, nil); r.status != 400 ||
		r.str("error") != "invalid_client_metadata" {
		t.Errorf("register with only unsupported grant types: %d %s", r.status, r.body)
	}
	reg := f.postJSON("/register", `{"grant_types":["urn:ietf:params:oauth:grant-type:device_code"],"token_endpoint_auth_method":"none"}`, nil)
	id := reg.str("client_id")
	if r := f.post(PathDeviceAuthorization, url.Values{"client_id": {id}, "resource": {"https://elsewhere.example/mcp"}}, nil); r.status != 400 ||
		r.str("error") != "invalid_target" {
		t.Errorf("device authorization for another resource: %d %s", r.status, r.body)
	}
	if r := f.post(PathToken, url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:device_code"}, "client_id": {id}}, nil); r.status != 400 ||
		r.str("error") != "invalid_request" {
		t.Errorf("device_code grant without device_code: %d %s", r.status, r.body)
	}

	deny := f.post(PathDeviceAuthorization, url.Values{"client_id": {id}}, nil)
	if _, err := p.Deny(ctx, deny.str("user_code")); err != nil {
		t.Fatal(err)
	}
	if r := f.post(PathToken, url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:device_code"}, "device_code": {deny.str("device_code")},
		"client_id": {id}}, nil); r.status != 400 || r.str("error") != "access_denied" {
		t.Errorf("poll after denial: %d %s", r.status, r.body)
	}
	exp := f.post(PathDeviceAuthorization, url.Values{"client_id": {id}}, nil)
	clk.Advance(provider.DefaultPendingTTL)
	if r := f.post(PathToken, url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:device_code"}, "device_code": {exp.str("device_code")},
		"client_id": {id}}, nil); r.status != 400 || r.str("error") != "expired_token" {
		t.Errorf("poll after expiry: %d %s", r.status, r.body)
	}
}
