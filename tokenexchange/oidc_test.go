package tokenexchange

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	oauth "github.com/mcp-oauth/oauth"
	"github.com/mcp-oauth/oauth/internal/oidctest"
)

// TestZitadelExchange: a real exchange at zitadel/oidc's OpenID Provider
// (internal/oidctest), found by discovery from its issuer: the MCP
// server, a confidential client, exchanges a service's access token (the
// subject), acting with its own (the actor, which the example storage
// wants for delegation), for a new access token, which the provider then
// introspects as active for the subject. zitadel's token exchange takes
// client_secret_basic only; its refusals come back typed.
func TestZitadelExchange(t *testing.T) {
	ctx := context.Background()
	p := oidctest.Start(t, oidctest.Options{
		Clients: []oidctest.Client{{ID: "mcp-notes", Secret: "notes-secret", RedirectURIs: []string{"http://127.0.0.1:1/cb"}}},
		Services: []oidctest.Service{
			{ID: "svc-caller", Secret: "s1"},
			{ID: "svc-actor", Secret: "s2"},
		},
	})
	subject, err := p.ServiceToken(ctx, "svc-caller", "s1", "notes.read")
	if err != nil {
		t.Fatal(err)
	}
	actor, err := p.ServiceToken(ctx, "svc-actor", "s2")
	if err != nil {
		t.Fatal(err)
	}
	c, err := New(Options{Issuer: p.Issuer, ClientID: "mcp-notes", ClientSecret: "notes-secret"})
	if err != nil {
		t.Fatal(err)
	}
	req := &Request{
		SubjectToken: subject, ActorToken: actor,
		Audience: []string{"calendar"}, Scopes: []string{"notes.read"},
		RequestedTokenType: TokenTypeAccessToken,
	}
	start := time.Now()
	tok, err := c.Exchange(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if tok.IssuedTokenType != TokenTypeAccessToken || tok.TokenType != "Bearer" || tok.AccessToken == "" || tok.AccessToken == subject {
		t.Errorf("token %+v", tok)
	}
	if !tok.ExpiresAt.After(start) {
		t.Errorf("ExpiresAt %v", tok.ExpiresAt)
	}
	if len(tok.Scopes) != 1 || tok.Scopes[0] != "notes.read" {
		t.Errorf("Scopes %v", tok.Scopes)
	}
	if got := introspect(t, p.Issuer, tok.AccessToken); got["active"] != true || got["sub"] != "svc-caller" {
		t.Errorf("introspection of the issued token: %v", got)
	}
	again, err := c.Exchange(ctx, req)
	if err != nil || again.AccessToken != tok.AccessToken {
		t.Errorf("the second exchange was not served from the cache: %v", err)
	}

	_, err = c.Exchange(ctx, &Request{SubjectToken: "not-a-token", ActorToken: actor, RequestedTokenType: TokenTypeAccessToken})
	var e *Error
	if !errors.As(err, &e) || !errors.Is(err, oauth.ErrInvalidRequest) || e.Status != http.StatusBadRequest {
		t.Errorf("a junk subject token: %v", err)
	}
	bad, err := New(Options{Issuer: p.Issuer, ClientID: "mcp-notes", ClientSecret: "wrong"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err = bad.Exchange(ctx, req); !errors.Is(err, oauth.ErrInvalidClient) || !errors.As(err, &e) || e.Status != http.StatusUnauthorized {
		t.Errorf("a wrong secret: %v", err)
	}
}

// introspect asks the provider about token, authenticated as a service.
func introspect(t *testing.T, issuer, token string) map[string]any {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, issuer+"oauth/introspect", strings.NewReader(url.Values{"token": {token}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth("svc-actor", "s2")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	json.NewDecoder(resp.Body).Decode(&out)
	return out
}
