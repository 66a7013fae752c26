package mcpauth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/modelcontextprotocol/go-sdk/oauthex"

	"github.com/mcp-oauth/oauth/extauth"
)

// ProtectOptions configure [Protect]. Resource and one way of verifying
// tokens (External, Verifier or Verify) are required; every other zero
// value selects the documented default.
type ProtectOptions struct {
	// Resource is the canonical URL of the MCP endpoint, such as
	// "https://notes.example.com/mcp": the resource of the protected
	// resource metadata (RFC 9728 §2) and the audience tokens must carry
	// (RFC 8707). The endpoint is served at its path, the metadata at the
	// path-inserted well-known URI (RFC 9728 §3.1)
	// /.well-known/oauth-protected-resource/mcp and, for clients of
	// earlier MCP revisions, at /.well-known/oauth-protected-resource. It
	// must be https, except on a loopback host. Required.
	Resource string
	// External configures the verifier of the external issuer's tokens
	// when Verifier is nil: Protect calls extauth.New with it, which
	// discovers the issuer and fetches its keys (within 30 seconds). Its
	// Audiences default to {Resource}; its Logger to Logger.
	External extauth.Options
	// Verifier is a verifier built with extauth.New, for a caller that
	// wants its Stats or shares it; it replaces External.
	Verifier *extauth.Verifier
	// Verify, when set, verifies the tokens instead of the Verifier's (or
	// External's) Verify: extauth.ByShape(v.Verify, apiKeys, "sk_") takes
	// API keys beside the issuer's JWTs. It must check the audience. The
	// metadata still names the Verifier's (or External's) issuer, or
	// AuthorizationServers.
	Verify TokenVerifier
	// AuthorizationServers are the issuers the metadata names
	// (authorization_servers), where MCP clients obtain tokens; empty
	// means the issuer of Verifier or External. Required when Verify is
	// set without either.
	AuthorizationServers []string
	// Scopes are the scopes a client should request: scopes_supported in
	// the metadata and the scope of the 401 challenge. Empty names none
	// (the issuer's defaults apply).
	Scopes []string
	// RequiredScopes, ToolScopes, RequiredRoles and ToolRoles are the
	// rules of BearerOptions of those names: 403 insufficient_scope for a
	// token that lacks what a request needs.
	RequiredScopes []string
	ToolScopes     map[string][]string
	RequiredRoles  []string
	ToolRoles      map[string][]string
	// ResourceName is the human-readable resource_name of RFC 9728 §2.
	ResourceName string
	// Streamable configures go-sdk's streamable HTTP handler. Its
	// DisableLocalhostProtection is always set: Protect checks the Host
	// itself, accepting Resource's host and AllowedHosts (see
	// Options.AllowedHosts and Options.TrustProxyHeaders, which these
	// mirror).
	Streamable        *mcp.StreamableHTTPOptions
	AllowedHosts      []string
	TrustProxyHeaders bool
	// Logger receives server-side failures; nil discards them.
	Logger *slog.Logger
}

// Protect serves server over streamable HTTP behind bearer tokens that an
// external authorization server issues (a company's Keycloak, Entra ID,
// Okta, Auth0, ...), with the protected resource metadata (RFC 9728) that
// sends MCP clients there and the same 401 and 403 challenges as Wrap.
// There is no authorization server of this library here: clients register
// with, and obtain tokens from, the issuer. A tool reads the caller,
// with its roles, with CallerOf.
func Protect(server *mcp.Server, opts ProtectOptions) (http.Handler, error) {
	if server == nil {
		return nil, errors.New("mcpauth: nil server")
	}
	ru, err := checkIssuer(opts.Resource)
	if err != nil {
		return nil, fmt.Errorf("mcpauth: ProtectOptions.Resource: %w", err)
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	v := opts.Verifier
	if v == nil && opts.External.Issuer != "" {
		ext := opts.External
		if len(ext.Audiences) == 0 {
			ext.Audiences = []string{opts.Resource}
		}
		if ext.Logger == nil {
			ext.Logger = opts.Logger
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if v, err = extauth.New(ctx, ext); err != nil {
			return nil, fmt.Errorf("mcpauth: ProtectOptions.External: %w", err)
		}
	}
	verify, servers := opts.Verify, slices.Clone(opts.AuthorizationServers)
	if v != nil {
		if verify == nil {
			verify = v.Verify
		}
		if len(servers) == 0 {
			servers = []string{v.Issuer()}
		}
	}
	if verify == nil {
		return nil, errors.New("mcpauth: ProtectOptions: set External (or Verifier, or Verify) to verify tokens")
	}
	if len(servers) == 0 {
		return nil, errors.New("mcpauth: ProtectOptions.AuthorizationServers: name the issuer of the tokens Verify accepts")
	}

	mcpPath := ru.EscapedPath()
	if mcpPath == "" {
		mcpPath = "/"
	}
	prmPath := wellKnownPRM + strings.TrimSuffix(mcpPath, "/")
	prm := &oauthex.ProtectedResourceMetadata{
		Resource:               opts.Resource,
		AuthorizationServers:   servers,
		ScopesSupported:        slices.Clone(opts.Scopes),
		BearerMethodsSupported: []string{"header"},
		ResourceName:           opts.ResourceName,
	}
	prmHandler := cors("GET", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=3600")
		writeJSON(w, http.StatusOK, prm)
	}))
	mux := http.NewServeMux()
	for _, p := range slices.Compact([]string{prmPath, wellKnownPRM}) {
		mux.Handle("GET "+p, prmHandler)
		mux.Handle("OPTIONS "+p, prmHandler)
	}

	var sopts mcp.StreamableHTTPOptions
	if opts.Streamable != nil {
		sopts = *opts.Streamable
	}
	sopts.DisableLocalhostProtection = true
	mcpHandler := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return server }, &sopts)
	bopts := BearerOptions{
		ResourceMetadataURL: ru.Scheme + "://" + ru.Host + prmPath,
		Scopes:              slices.Clone(opts.Scopes), RequiredScopes: slices.Clone(opts.RequiredScopes),
		ToolScopes: cloneRules(opts.ToolScopes), RequiredRoles: slices.Clone(opts.RequiredRoles),
		ToolRoles: cloneRules(opts.ToolRoles), MaxBodyBytes: sopts.MaxRequestBodyBytes, Logger: log,
	}
	mux.Handle(mcpPath, cors("GET, POST, DELETE", RequireBearer(verify, bopts)(mcpHandler)))

	allowed := map[string]bool{strings.ToLower(ru.Host): true}
	for _, a := range opts.AllowedHosts {
		allowed[strings.ToLower(a)] = true
	}
	return hostGuard(allowed, opts.TrustProxyHeaders, mux), nil
}

// cloneRules copies a tool → scopes (or roles) map.
func cloneRules(m map[string][]string) map[string][]string {
	if m == nil {
		return nil
	}
	out := make(map[string][]string, len(m))
	for k, v := range m {
		out[k] = slices.Clone(v)
	}
	return out
}
