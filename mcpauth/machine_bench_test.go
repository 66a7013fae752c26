package mcpauth

import (
	"net/http"
	"net/url"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/oauthex"

	oauth "github.com/mcp-oauth/oauth"
	"github.com/mcp-oauth/oauth/provider"
)

// BenchmarkClientCredentials measures POST /token with grant_type
// client_credentials for a configured client (client_secret_basic): the
// secret check, the lookup and extension of the client's one grant, and
// JWT signing. BenchmarkTokenExchangeGrant measures an RFC 8693 exchange of
// a user's access token: its verification (from the cache), the grant's
// state, and signing.
func BenchmarkClientCredentials(b *testing.B) {
	for _, backend := range []string{"memory", "sqlite"} {
		b.Run(backend, func(b *testing.B) {
			e := newBenchEnvWith(b, backend, func(o *provider.Options) {
				o.Clients = []provider.StaticClient{{ID: "svc", Secret: svcSecret, ClientRegistrationMetadata: oauthex.ClientRegistrationMetadata{
					GrantTypes: []string{oauth.GrantTypeClientCredentials}}}}
			})
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if w := e.postBasic(url.Values{"grant_type": {"client_credentials"}}, "svc", svcSecret); w.Code != http.StatusOK {
					b.Fatalf("%d %s", w.Code, w.Body)
				}
			}
		})
	}
}

func BenchmarkTokenExchangeGrant(b *testing.B) {
	for _, backend := range []string{"memory", "sqlite"} {
		b.Run(backend, func(b *testing.B) {
			e := newBenchEnvWith(b, backend, func(o *provider.Options) {
				o.Clients = []provider.StaticClient{{ID: "rs", Secret: rsSecret, ClientRegistrationMetadata: oauthex.ClientRegistrationMetadata{
					GrantTypes: []string{oauth.GrantTypeTokenExchange}}}}
			})
			w := e.post(url.Values{"grant_type": {"authorization_code"}, "code": {e.code(b)}, "code_verifier": {verifier},
				"redirect_uri": {e.client.RedirectURIs[0]}, "client_id": {e.client.ID}})
			subject := extractJSON(w.Body.String(), "access_token")
			form := url.Values{"grant_type": {oauth.GrantTypeTokenExchange}, "subject_token": {subject}, "subject_token_type": {TokenTypeAccessToken}}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if w := e.postBasic(form, "rs", rsSecret); w.Code != http.StatusOK {
					b.Fatalf("%d %s", w.Code, w.Body)
				}
			}
		})
	}
}
