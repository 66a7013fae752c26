package provider

import (
	"strings"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/oauthex"

	oauth "github.com/mcp-oauth/oauth"
)

func TestStaticClients(t *testing.T) {
	secret := strings.Repeat("s", minStaticSecret)
	md := func(method string, gts ...string) oauthex.ClientRegistrationMetadata {
		return oauthex.ClientRegistrationMetadata{TokenEndpointAuthMethod: method, GrantTypes: gts}
	}
	cc := oauth.GrantTypeClientCredentials
	for _, tc := range []struct {
		name    string
		clients []StaticClient
		err     string // "" for valid
		method  string // the valid client's auth method
	}{
		{"secret", []StaticClient{{ID: "svc", Secret: secret, ClientRegistrationMetadata: md("", cc)}}, "", oauth.AuthMethodClientSecretBasic},
		{"post", []StaticClient{{ID: "svc", Secret: secret, ClientRegistrationMetadata: md(oauth.AuthMethodClientSecretPost, cc)}}, "", oauth.AuthMethodClientSecretPost},
		{"keys", []StaticClient{{ID: "svc", ClientRegistrationMetadata: oauthex.ClientRegistrationMetadata{GrantTypes: []string{cc}, JWKSURI: "https://svc.example.com/jwks"}}}, "", oauth.AuthMethodPrivateKeyJWT},
		{"no ID", []StaticClient{{Secret: secret, ClientRegistrationMetadata: md("", cc)}}, "ID must be", ""},
		{"https ID", []StaticClient{{ID: "https://x.example.com/c", Secret: secret, ClientRegistrationMetadata: md("", cc)}}, "metadata document", ""},
		{"twice", []StaticClient{{ID: "a", Secret: secret, ClientRegistrationMetadata: md("", cc)}, {ID: "a", Secret: secret, ClientRegistrationMetadata: md("", cc)}}, "twice", ""},
		{"no grant types", []StaticClient{{ID: "a", Secret: secret}}, "GrantTypes", ""},
		{"short secret", []StaticClient{{ID: "a", Secret: "short", ClientRegistrationMetadata: md("", cc)}}, "at least 32", ""},
		{"public client credentials", []StaticClient{{ID: "a", ClientRegistrationMetadata: md("", cc)}}, "confidential", ""},
		{"keys and secret", []StaticClient{{ID: "a", Secret: secret, ClientRegistrationMetadata: oauthex.ClientRegistrationMetadata{
			TokenEndpointAuthMethod: oauth.AuthMethodPrivateKeyJWT, GrantTypes: []string{cc}, JWKSURI: "https://a.example.com/jwks"}}}, "no Secret", ""},
		{"unknown method", []StaticClient{{ID: "a", Secret: secret, ClientRegistrationMetadata: md("tls_client_auth", cc)}}, "unsupported", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := staticClients(tc.clients)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want one containing %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			c := got[tc.clients[0].ID]
			if c == nil || c.TokenEndpointAuthMethod != tc.method {
				t.Fatalf("client = %+v, want method %s", c, tc.method)
			}
			if tc.clients[0].Secret != "" && (c.SecretHash == "" || strings.Contains(c.SecretHash, secret)) {
				t.Errorf("secret hash %q", c.SecretHash)
			}
		})
	}
}
