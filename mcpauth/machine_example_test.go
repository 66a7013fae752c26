package mcpauth_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/modelcontextprotocol/go-sdk/oauthex"

	oauth "github.com/mcp-oauth/oauth"
	"github.com/mcp-oauth/oauth/mcpauth"
	"github.com/mcp-oauth/oauth/provider"
	"github.com/mcp-oauth/oauth/storage/memory"
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
