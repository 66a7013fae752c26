package proxy_test

import (
	"context"
	"encoding/hex"
	"log"
	"net/http"
	"os"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcp-oauth/oauth/extauth"
	"github.com/mcp-oauth/oauth/mcpauth"
	"github.com/mcp-oauth/oauth/proxy"
)

// A facade for a Keycloak realm that issues tokens for the MCP server (a
// confidential client "notes-mcp" with redirect URI
// https://notes.example.com/callback, and an audience mapper adding
// https://notes.example.com/mcp to its access tokens), served on the MCP
// server's own origin. MCP clients register, authorize and obtain tokens
// at the facade; the MCP endpoint verifies Keycloak's tokens for its own
// audience.
func Example() {
	ctx := context.Background()
	const (
		issuer   = "https://notes.example.com"
		resource = "https://notes.example.com/mcp"
		realm    = "https://kc.example.com/realms/acme"
	)
	key, err := hex.DecodeString(os.Getenv("FACADE_KEY")) // 32 bytes, the same on every replica
	if err != nil {
		log.Fatal(err)
	}
	facade, err := proxy.New(ctx, proxy.Options{
		Issuer:   issuer,
		Upstream: realm,
		ClientID: "notes-mcp", ClientSecret: os.Getenv("KC_CLIENT_SECRET"),
		Scopes:   []string{"openid", "offline_access"},
		Resource: resource,
		Keys:     [][]byte{key},
	})
	if err != nil {
		log.Fatal(err)
	}

	server := mcp.NewServer(&mcp.Implementation{Name: "notes", Version: "1.0.0"}, nil)
	// ... add tools ...
	protected, err := mcpauth.Protect(server, mcpauth.ProtectOptions{
		Resource:             resource,
		External:             extauth.Options{Issuer: realm, TokenTypes: []string{"at+jwt", "JWT"}}, // Audiences: {resource}
		AuthorizationServers: []string{issuer},                                                      // clients go to the facade
		Scopes:               []string{"openid"},
	})
	if err != nil {
		log.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/mcp", protected)
	mux.Handle("/.well-known/oauth-protected-resource", protected)
	mux.Handle("/.well-known/oauth-protected-resource/", protected)
	mux.Handle("/", facade) // metadata, /register, /authorize, /callback, /token, /revoke
	log.Fatal(http.ListenAndServe(":8080", mux))
}
