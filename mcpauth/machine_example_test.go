package mcpauth_test

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/modelcontextprotocol/go-sdk/oauthex"

	oauth "github.com/mcp-oauth/oauth"
	"github.com/mcp-oauth/oauth/extauth"
	"github.com/mcp-oauth/oauth/mcpauth"
	"github.com/mcp-oauth/oauth/provider"
	"github.com/mcp-oauth/oauth/storage/memory"
	"github.com/mcp-oauth/oauth/upstream"
)

// A service with no user behind it (a nightly job) is configured in code
// and gets tokens with the client credentials grant (RFC 6749 §4.4, MCP's
// SEP-1046); a resource server configured for token exchange (RFC 8693)
// trades a token it received for one to another resource of this server,
// acting for the same user. Clients that register themselves get neither.
func Example_machineClients() {
	srv := httptest.NewUnstartedServer(nil)
	issuer := "http://" + srv.Listener.Addr().String()
	server := mcp.NewServer(&mcp.Implementation{Name: "notes", Version: "1.0.0"}, nil)
	files := mcp.NewServer(&mcp.Implementation{Name: "files", Version: "1.0.0"}, nil)
	h, err := mcpauth.Wrap(server, mcpauth.Options{
		Issuer: issuer, Store: memory.New(), Scopes: []string{"notes:read", "notes:write"},
		Resources: []mcpauth.Resource{{Server: files, Path: "/files/mcp", Scopes: []string{"notes:read"}}},
		ProviderOptions: provider.Options{Clients: []provider.StaticClient{
			{ID: "nightly-job", Secret: "a-secret-of-at-least-32-bytes-from-your-vault",
				ClientRegistrationMetadata: oauthex.ClientRegistrationMetadata{
					GrantTypes: []string{oauth.GrantTypeClientCredentials}, Scope: "notes:read"}},
			{ID: "notes-backend", Secret: "another-secret-of-at-least-32-bytes-long",
				ClientRegistrationMetadata: oauthex.ClientRegistrationMetadata{
					GrantTypes: []string{oauth.GrantTypeTokenExchange}}},
		}},
	})
	if err != nil {
		log.Fatal(err)
	}
	srv.Config.Handler = h
	srv.Start()
	defer srv.Close()

	token := func(id, secret string, form url.Values) map[string]any {
		req, _ := http.NewRequest("POST", issuer+"/token", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth(id, secret)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			log.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]any
		json.NewDecoder(resp.Body).Decode(&out)
		return out
	}
	job := token("nightly-job", "a-secret-of-at-least-32-bytes-from-your-vault", url.Values{"grant_type": {"client_credentials"}})
	fmt.Println("job:", job["token_type"], job["scope"])

	// The backend exchanges the token it was called with (here the job's)
	// for one to the files server, narrowed to notes:read.
	ex := token("notes-backend", "another-secret-of-at-least-32-bytes-long", url.Values{
		"grant_type": {oauth.GrantTypeTokenExchange}, "subject_token": {job["access_token"].(string)},
		"subject_token_type": {mcpauth.TokenTypeAccessToken}, "resource": {issuer + "/files/mcp"}})
	fmt.Println("exchanged:", ex["issued_token_type"], ex["scope"])
	at, err := h.DefaultProvider().LoadAccessToken(context.Background(), ex["access_token"].(string))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("for", at.Subject, "acted on by", at.Act["sub"])
	// Output:
	// job: Bearer notes:read
	// exchanged: urn:ietf:params:oauth:token-type:access_token notes:read
	// for nightly-job acted on by notes-backend
}

// An enterprise identity provider is trusted for MCP's Enterprise-Managed
// Authorization (SEP-990): MCP clients exchange the user's ID token at the
// IdP for an ID-JAG and present it here with the jwt-bearer grant (RFC
// 7523 §2.1). TestEnterpriseManagedAuthorization runs this setup with
// go-sdk's EnterpriseHandler.
func Example_enterpriseIdP() {
	ctx := context.Background()
	const issuer = "https://notes.example.com"
	jag, err := extauth.New(ctx, extauth.Options{
		Issuer:     "https://acme.okta.com", // the IdP; its keys come from its discovery document
		Audiences:  []string{issuer},        // an ID-JAG's aud is this authorization server
		TokenTypes: []string{mcpauth.TokenTypeIDJAG},
		Claims:     []string{"resource"},
	})
	if err != nil {
		log.Fatal(err)
	}
	server := mcp.NewServer(&mcp.Implementation{Name: "notes", Version: "1.0.0"}, nil)
	h, err := mcpauth.Wrap(server, mcpauth.Options{Issuer: issuer, Store: memory.New(),
		Assertions: []mcpauth.AssertionVerifier{jag}})
	if err != nil {
		log.Fatal(err)
	}
	log.Fatal(http.ListenAndServe(":8080", h))
}

// Owners sign in through the company's OpenID Connect provider (federated
// mode): this server stays the authorization server MCP clients talk to,
// and the upstream tokens of the sign-in are kept with each grant for
// tools (UpstreamToken). TestBrowserUpstreamSignIn runs this setup in
// Chromium against an in-process OpenID Provider.
func Example_upstreamSignIn() {
	ctx := context.Background()
	const issuer = "https://notes.example.com"
	idp, err := upstream.New(ctx, upstream.Options{
		Issuer:   "https://login.example.com/realms/corp",
		ClientID: "mcp-server", ClientSecret: os.Getenv("SSO_SECRET"), // redirect URI: issuer + "/upstream/callback"
		Scopes: []string{"email", "profile", "offline_access"},
		Name:   "Corp SSO",
		Allow:  upstream.Policy{Domains: []string{"example.com"}},
		CookieKey: func() []byte {
			k, _ := hex.DecodeString(os.Getenv("COOKIE_KEY")) // 32 bytes, the same on every replica
			return k
		}(),
	})
	if err != nil {
		log.Fatal(err)
	}
	server := mcp.NewServer(&mcp.Implementation{Name: "notes", Version: "1.0.0"}, nil)
	h, err := mcpauth.Wrap(server, mcpauth.Options{Issuer: issuer, Store: memory.New(), Upstream: idp})
	if err != nil {
		log.Fatal(err)
	}
	log.Fatal(http.ListenAndServe(":8080", h))
}
