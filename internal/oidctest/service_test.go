package oidctest

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// TestServiceTokens: a Service obtains JWT access tokens by
// client_credentials, signed by the current key; an opaque token is
// active at introspection until the Service revokes it.
func TestServiceTokens(t *testing.T) {
	ctx := context.Background()
	p := Start(t, Options{Services: []Service{
		{ID: "svc-jwt", Secret: "s1", JWT: true, Audience: []string{"http://127.0.0.1/mcp"}, Claims: map[string]any{"roles": []string{"admin"}}},
		{ID: "svc-opaque", Secret: "s2", Audience: []string{"http://127.0.0.1/mcp"}},
	}})
	tok, err := p.ServiceToken(ctx, "svc-jwt", "s1", "notes.read")
	if err != nil {
		t.Fatal(err)
	}
	header, claims := decodeJWT(t, tok)
	if header["kid"] != p.SigningKeyID() || header["alg"] != "RS256" || header["typ"] != "JWT" {
		t.Errorf("header %v", header)
	}
	if claims["sub"] != "svc-jwt" || claims["scope"] != "notes.read" || claims["iss"] != p.Issuer {
		t.Errorf("claims %v", claims)
	}
	if err := p.RotateKey(); err != nil {
		t.Fatal(err)
	}
	tok2, _ := p.ServiceToken(ctx, "svc-jwt", "s1")
	if h, _ := decodeJWT(t, tok2); h["kid"] == header["kid"] || h["kid"] != p.SigningKeyID() {
		t.Errorf("after rotation kid %v, before %v", h["kid"], header["kid"])
	}
	if _, err := p.ServiceToken(ctx, "svc-jwt", "wrong"); err == nil {
		t.Error("a wrong secret got a token")
	}

	opaque, err := p.ServiceToken(ctx, "svc-opaque", "s2", "notes.read")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Count(opaque, ".") == 2 {
		t.Fatalf("opaque token looks like a JWT")
	}
	introspect := func() map[string]any {
		req, _ := http.NewRequest("POST", p.Issuer+"oauth/introspect", strings.NewReader(url.Values{"token": {opaque}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth("svc-jwt", "s1")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]any
		json.NewDecoder(resp.Body).Decode(&out)
		return out
	}
	if got := introspect(); got["active"] != true || got["sub"] != "svc-opaque" || got["scope"] != "notes.read" {
		t.Errorf("introspection %v", got)
	}
	if err := p.Revoke(ctx, "svc-opaque", "s2", opaque); err != nil {
		t.Fatal(err)
	}
	if got := introspect(); got["active"] != false {
		t.Errorf("after revocation %v", got)
	}
}

func decodeJWT(t *testing.T, tok string) (header, claims map[string]any) {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT: %d parts", len(parts))
	}
	for i, dst := range []*map[string]any{&header, &claims} {
		b, err := base64.RawURLEncoding.DecodeString(parts[i])
		if err != nil || json.Unmarshal(b, dst) != nil {
			t.Fatalf("part %d does not decode", i)
		}
	}
	return header, claims
}
