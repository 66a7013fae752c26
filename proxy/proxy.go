// Package proxy is the proxy facade mode: an OAuth 2.1 authorization
// server facade for an identity provider that can issue access tokens for
// the MCP server itself. MCP clients see a complete authorization server
// (RFC 8414 metadata, RFC 7591 registration, PKCE, RFC 9207 iss) at
// Options.Issuer; behind it, every authorization is the upstream's:
//
//   - /register is answered here: the client_id is a sealed record of the
//     registration (its redirect URIs), so no storage is needed and every
//     replica that shares Options.Keys knows every client. Nothing is
//     registered at the upstream, which knows one pre-registered client,
//     the facade's (Options.ClientID).
//   - /authorize checks the client, its redirect URI and PKCE (S256), then
//     sends the browser to the upstream with the facade's client, redirect
//     URI Issuer + CallbackPath, the client's code_challenge unchanged and
//     a sealed state naming the client's registration, redirect URI and
//     state. /callback checks the upstream's iss (RFC 9207), and returns
//     the upstream's code to the client, sealed to that client and redirect
//     URI, with the client's state and this facade's iss.
//   - /token forwards authorization_code and refresh_token grants to the
//     upstream with the facade's client credentials; the client's
//     code_verifier passes through, so PKCE runs end to end between the MCP
//     client and the upstream. The access token is the upstream's; the
//     refresh token is the upstream's, sealed to the client.
//   - /revoke forwards to the upstream (RFC 7009); /introspect (RFC 7662)
//     forwards for the resource servers of Options.ResourceServers only.
//
// The MCP server verifies the upstream's tokens itself, with package
// extauth (mcpauth.Protect with the upstream as External issuer and this
// facade in ProtectOptions.AuthorizationServers).
//
// # When to choose it
//
// Choose the proxy facade when the identity provider can issue access
// tokens whose audience is this MCP server (Keycloak with an audience
// mapper, Entra ID with an application ID URI and its scopes, Auth0 with an
// API, Okta with a custom authorization server), but MCP clients cannot
// use it directly: it has no dynamic client registration, or refuses the
// loopback redirect URIs with random ports that MCP clients register, or
// lacks what MCP clients require in its metadata. The tokens, their
// lifetimes, their revocation, the user's sessions and consent, MFA and
// conditional access all stay the provider's; this server keeps no state.
//
// Choose the federated mode (package upstream with mcpauth.Wrap) when the
// provider cannot issue tokens for this server, or when the server needs
// what only its own authorization server gives: its own audience-bound
// tokens and grants, approval of each client by the owner, grant data and
// custom claims, per-grant revocation from the console, and upstream
// tokens that tools use to call the provider's APIs.
//
// # Token passthrough
//
// The MCP authorization specification forbids token passthrough: an MCP
// server must accept only tokens issued for itself, and must not pass the
// tokens it receives on to other (downstream) APIs. This mode stays within
// it: the token the MCP server accepts is issued by the upstream for this
// MCP server (the resource forwarded as RFC 8707 resource, or the
// audience parameter Options.AuthParams adds, and the scopes limited to
// Options.Scopes, so that a client cannot obtain through the facade's
// client a token for another API); the MCP server verifies its audience
// (extauth.Options.Audiences) and does not forward it to any other API.
// The facade never uses a token itself: it relays protocol messages
// between the client and the authorization server that issues the token,
// which is what an authorization server's front end does, not passthrough
// to a downstream API. A tool that needs to call another API needs its own
// token for that API (token exchange, or the federated mode's upstream
// tokens), never the one it was called with.
package proxy

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/modelcontextprotocol/go-sdk/oauthex"

	oauth "github.com/mcp-oauth/oauth"
	"github.com/mcp-oauth/oauth/internal/redirect"
)

// Paths of the facade's endpoints, under the path of Options.Issuer.
const (
	// MetadataPath is the RFC 8414 §3.1 well-known path of the
	// authorization server metadata; the issuer's path, without its
	// terminating slash, is appended to it (path insertion).
	MetadataPath = "/.well-known/oauth-authorization-server"
	// RegisterPath is the client registration endpoint (RFC 7591 §3).
	RegisterPath = "/register"
	// AuthorizePath is the authorization endpoint (OAuth 2.1 §3.1).
	AuthorizePath = "/authorize"
	// CallbackPath is where the upstream sends the browser back with its
	// authorization response (RFC 6749 §4.1.2): register Options.Issuer +
	// CallbackPath as the redirect URI of Options.ClientID at the upstream.
	CallbackPath = "/callback"
	// TokenPath is the token endpoint (OAuth 2.1 §3.2).
	TokenPath = "/token"
	// RevokePath is the revocation endpoint (RFC 7009 §2), served when the
	// upstream has one.
	RevokePath = "/revoke"
	// IntrospectPath is the introspection endpoint (RFC 7662 §2), served
	// when the upstream has one and Options.ResourceServers is set.
	IntrospectPath = "/introspect"
)

// Defaults.
const (
	// DefaultStateTTL is how long a user has to sign in at the upstream:
	// the lifetime of the sealed state of an authorization request.
	DefaultStateTTL = 10 * time.Minute
	// DefaultUpstreamTimeout bounds each request to the upstream.
	DefaultUpstreamTimeout = 15 * time.Second
)

// Options configure [New]. Issuer, Upstream, ClientID and Resource are
// required; every other zero value selects the documented default.
type Options struct {
	// Issuer is the facade's issuer identifier (RFC 8414 §2), its public
	// base URL: https, or http on a loopback host; no query or fragment.
	// The Facade serves its endpoints under Issuer's path and its metadata
	// at MetadataPath + that path, so mount it at the root of Issuer's
	// origin. Required.
	Issuer string
	// Upstream is the upstream authorization server's issuer identifier,
	// exactly as its metadata names it. Its metadata is read from the RFC
	// 8414 §3.1 well-known URI, else from OpenID Connect Discovery 1.0 §4
	// (Upstream + "/.well-known/openid-configuration"). Required.
	Upstream string
	// ClientID and ClientSecret are the facade's client pre-registered at
	// the upstream: a confidential web client with the authorization_code
	// and refresh_token grants and the redirect URI Issuer + CallbackPath.
	// ClientID is required.
	ClientID, ClientSecret string
	// Scopes are the scopes clients may request (scopes_supported in the
	// metadata), and what is asked of the upstream when a client names
	// none. A request for any other scope is refused with invalid_scope,
	// so that no client obtains, through the facade's client, a token for
	// another API. Include "offline_access" (or what the upstream wants)
	// for refresh tokens. Nil means clients name no scope and none is
	// sent (the upstream's defaults apply).
	Scopes []string
	// Resource is the canonical URL of the MCP server (RFC 8707 §2), the
	// audience its tokens must carry. A client's resource parameter must
	// name it; it is sent to the upstream as resource at /authorize and
	// /token, unless OmitResource. Required.
	Resource string
	// OmitResource stops sending resource to the upstream, for providers
	// that refuse it (Entra ID v2.0 answers AADSTS901002) and take the
	// audience from the scope instead.
	OmitResource bool
	// AuthParams are extra parameters of the upstream authorization
	// request, such as Auth0's {"audience": Resource}. The facade's own
	// (client_id, redirect_uri, response_type, scope, state, PKCE,
	// resource) cannot be replaced.
	AuthParams map[string]string
	// TokenParams are extra parameters of the upstream token requests
	// (both grants), such as Auth0's {"audience": Resource}, under the
	// same rule.
	TokenParams map[string]string
	// Keys seal client IDs, states, codes and refresh tokens (AES-256-GCM,
	// 32 bytes each). The first seals, all of them open: to rotate, put a
	// new key first and drop the old one once the refresh tokens it sealed
	// may go (clients then register and sign in again). Give every
	// replica the same keys. Nil means a random key per process, right for
	// one process only: its clients and refresh tokens die with it.
	Keys [][]byte
	// ResourceServers may call /introspect (RFC 7662 §2.1 requires its
	// callers to be authorized), with client_secret_basic. Empty means no
	// introspection endpoint. MCP clients never may: a token is opaque to
	// them.
	ResourceServers []ResourceServer
	// Audiences are the aud values for which /introspect reports a token
	// active; nil means {Resource}. A token for another audience is
	// reported inactive: the facade vouches only for tokens for its
	// server.
	Audiences []string
	// StateTTL is how long a user has to sign in at the upstream; zero
	// means DefaultStateTTL.
	StateTTL time.Duration
	// HTTPClient is used for every request to the upstream; nil means a
	// client with DefaultUpstreamTimeout. Upstream redirects are not
	// followed.
	HTTPClient *http.Client
	// Logger receives refusals and upstream failures; nil discards them.
	// Tokens, codes, states and secrets are never logged.
	Logger *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// ResourceServer is a caller allowed at /introspect, authenticated with
// client_secret_basic (RFC 6749 §2.3.1).
type ResourceServer struct {
	ClientID, ClientSecret string
}

// Facade is the authorization server facade; it is an http.Handler.
// Create it with [New].
type Facade struct {
	opts     Options
	keys     *keyRing
	log      *slog.Logger
	hc       *http.Client
	up       *upstreamMeta
	meta     oauthex.AuthServerMeta
	callback string
	mux      *http.ServeMux
}

// New reads the upstream's metadata and returns the Facade. It refuses
// a configuration that would not be secure or could not work: a
// non-https issuer off loopback, an upstream without the authorization
// code grant's endpoints, a key of the wrong size.
func New(ctx context.Context, opts Options) (*Facade, error) {
	iu, err := checkIssuer(opts.Issuer)
	if err != nil {
		return nil, fmt.Errorf("proxy: Options.Issuer: %w", err)
	}
	if _, err := checkIssuer(opts.Upstream); err != nil {
		return nil, fmt.Errorf("proxy: Options.Upstream: %w", err)
	}
	if opts.ClientID == "" {
		return nil, errors.New("proxy: Options.ClientID is required: the facade's client registered at the upstream")
	}
	if _, err := checkIssuer(opts.Resource); err != nil {
		return nil, fmt.Errorf("proxy: Options.Resource: %w", err)
	}
	for _, s := range opts.Scopes {
		if !validScopeToken(s) {
			return nil, fmt.Errorf("proxy: Options.Scopes: %q is not a scope token (RFC 6749 §3.3)", s)
		}
	}
	for _, rs := range opts.ResourceServers {
		if rs.ClientID == "" || rs.ClientSecret == "" {
			return nil, errors.New("proxy: Options.ResourceServers: each needs a ClientID and a ClientSecret")
		}
	}
	opts.Scopes = slices.Clone(opts.Scopes)
	opts.Audiences = slices.Clone(opts.Audiences)
	if len(opts.Audiences) == 0 {
		opts.Audiences = []string{opts.Resource}
	}
	if opts.StateTTL <= 0 {
		opts.StateTTL = DefaultStateTTL
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	keys := opts.Keys
	if len(keys) == 0 {
		k := make([]byte, 32)
		rand.Read(k)
		keys = [][]byte{k}
	}
	ring, err := newKeyRing(keys)
	if err != nil {
		return nil, fmt.Errorf("proxy: Options.Keys: %w", err)
	}
	hc := &http.Client{Timeout: DefaultUpstreamTimeout}
	if opts.HTTPClient != nil {
		c := *opts.HTTPClient
		hc = &c
	}
	// A redirect from the upstream's token endpoint would carry the
	// facade's credentials and the user's code elsewhere.
	hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

	f := &Facade{opts: opts, keys: ring, log: log, hc: hc}
	if f.up, err = discover(ctx, hc, opts.Upstream); err != nil {
		return nil, err
	}
	base := strings.TrimSuffix(opts.Issuer, "/")
	f.callback = base + CallbackPath
	f.meta = oauthex.AuthServerMeta{
		Issuer:                                     opts.Issuer,
		AuthorizationEndpoint:                      base + AuthorizePath,
		TokenEndpoint:                              base + TokenPath,
		JWKSURI:                                    f.up.JWKSURI, // the keys that sign the tokens obtained here
		RegistrationEndpoint:                       base + RegisterPath,
		ScopesSupported:                            opts.Scopes,
		ResponseTypesSupported:                     []string{"code"},
		ResponseModesSupported:                     []string{"query"},
		GrantTypesSupported:                        []string{oauth.GrantTypeAuthorizationCode, oauth.GrantTypeRefreshToken},
		TokenEndpointAuthMethodsSupported:          []string{oauth.AuthMethodNone},
		CodeChallengeMethodsSupported:              []string{"S256"},
		AuthorizationResponseIssParameterSupported: true,
	}
	if f.up.RevocationEndpoint != "" {
		f.meta.RevocationEndpoint = base + RevokePath
		f.meta.RevocationEndpointAuthMethodsSupported = []string{oauth.AuthMethodNone}
	}
	if f.up.IntrospectionEndpoint != "" && len(opts.ResourceServers) > 0 {
		f.meta.IntrospectionEndpoint = base + IntrospectPath
		f.meta.IntrospectionEndpointAuthMethodsSupported = []string{oauth.AuthMethodClientSecretBasic}
	}
	f.mux = f.routes(strings.TrimSuffix(iu.EscapedPath(), "/"), iu.EscapedPath())
	return f, nil
}

// routes serves the endpoints under prefix, the issuer's path without
// its terminating slash; the metadata also at the path with it (rawPath),
// where clients that do not remove the slash look (go-sdk does not).
func (f *Facade) routes(prefix, rawPath string) *http.ServeMux {
	mux := http.NewServeMux()
	meta := cors("GET", http.HandlerFunc(f.serveMetadata))
	for _, p := range slices.Compact([]string{MetadataPath + prefix, MetadataPath + rawPath}) {
		if strings.HasSuffix(p, "/") {
			p += "{$}" // exactly this path, not the subtree
		}
		mux.Handle("GET "+p, meta)
		mux.Handle("OPTIONS "+p, meta)
	}
	mux.Handle(prefix+RegisterPath, cors("POST", http.HandlerFunc(f.serveRegister)))
	mux.HandleFunc(prefix+AuthorizePath, f.serveAuthorize)
	mux.HandleFunc(prefix+CallbackPath, f.serveCallback)
	mux.Handle(prefix+TokenPath, cors("POST", http.HandlerFunc(f.serveToken)))
	if f.meta.RevocationEndpoint != "" {
		mux.Handle(prefix+RevokePath, cors("POST", http.HandlerFunc(f.serveRevoke)))
	}
	if f.meta.IntrospectionEndpoint != "" {
		mux.HandleFunc(prefix+IntrospectPath, f.serveIntrospect)
	}
	return mux
}

// ServeHTTP implements http.Handler.
func (f *Facade) ServeHTTP(w http.ResponseWriter, r *http.Request) { f.mux.ServeHTTP(w, r) }

// Metadata returns a copy of the facade's authorization server metadata
// (RFC 8414 §2), as served at MetadataPath.
func (f *Facade) Metadata() *oauthex.AuthServerMeta {
	m := f.meta
	m.ScopesSupported = slices.Clone(m.ScopesSupported)
	return &m
}

// CallbackURL returns Options.Issuer + CallbackPath, the redirect URI to
// register for Options.ClientID at the upstream.
func (f *Facade) CallbackURL() string { return f.callback }

func (f *Facade) serveMetadata(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Cache-Control", "public, max-age=3600")
	writeJSON(w, http.StatusOK, &f.meta)
}

// checkIssuer enforces RFC 8414 §2 on an issuer (and on the resource,
// RFC 8707 §2): an absolute https URL without query or fragment; http only
// on a loopback host.
func checkIssuer(s string) (*url.URL, error) {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" || u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || strings.Contains(s, "#") || u.User != nil || u.Opaque != "" {
		return nil, fmt.Errorf("%q is not an absolute URL without query, fragment or userinfo", s)
	}
	if u.Scheme == "https" || u.Scheme == "http" && redirect.IsLoopbackHost(u.Hostname()) {
		return u, nil
	}
	return nil, fmt.Errorf("%q is not an https URL (http is for loopback hosts only)", s)
}
