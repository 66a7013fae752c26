package mcpauth

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/modelcontextprotocol/go-sdk/oauthex"

	oauth "github.com/mcp-oauth/oauth"
	"github.com/mcp-oauth/oauth/approval"
	"github.com/mcp-oauth/oauth/internal/clientassert"
	"github.com/mcp-oauth/oauth/internal/ratelimit"
	"github.com/mcp-oauth/oauth/internal/redirect"
	"github.com/mcp-oauth/oauth/internal/replay"
)

// Endpoint paths, relative to the issuer (DESIGN.md, "HTTP surface").
const (
	PathAuthorize  = "/authorize"
	PathToken      = "/token"
	PathRegister   = "/register"
	PathRevoke     = "/revoke"
	PathIntrospect = "/introspect"
	PathJWKS       = "/jwks.json"
	PathDevice     = "/device"
	// PathConsole is where signed-in owners approve codes and manage
	// grants (served by Wrap with the default Provider).
	PathConsole = "/console"
	// PathDeviceAuthorization is the RFC 8628 §3.1 device authorization
	// endpoint, served when the Provider implements oauth.DeviceProvider.
	PathDeviceAuthorization = "/device_authorization"
	wellKnownAS             = "/.well-known/oauth-authorization-server"
	wellKnownOIDC           = "/.well-known/openid-configuration"
	wellKnownPRM            = "/.well-known/oauth-protected-resource"
	// DefaultMCPPath is the MCP endpoint's path when Options.MCPPath is
	// empty.
	DefaultMCPPath = "/mcp"
	// DefaultScope is the one scope a server knows when Options.Scopes
	// (ServerOptions.Scopes) is empty.
	DefaultScope = "mcp"
	// pathStatus is appended to PathDevice for the approval page's status
	// endpoint (see approval.NewPage).
	pathStatus = "/status"
)

// ServerOptions configure an [AuthorizationServer].
type ServerOptions struct {
	// Issuer is the public base URL of the authorization server (RFC 8414
	// §2): https, or http on a loopback host for development. Required.
	Issuer string
	// Resource is the canonical URL of the protected MCP endpoint (RFC 8707
	// §2); requests for any other resource fail with invalid_target, except
	// the same URL with or without a trailing slash. Required.
	Resource string
	// Scopes are the scopes of Resource. A request without scope is
	// granted all of the requested resource's scopes; unknown requested
	// scopes are ignored (RFC 6749 §3.3). Empty means
	// []string{DefaultScope}.
	Scopes []string
	// MoreResources are further protected resources this server issues
	// tokens for (RFC 8707), each with its own scopes. A request names
	// the one it wants with the resource parameter; without it, it gets
	// Resource. scopes_supported lists the scopes of all of them.
	MoreResources []ProtectedResource
	// DisableRegistration turns off dynamic client registration (RFC 7591):
	// /register answers 404 and the metadata omits registration_endpoint.
	DisableRegistration bool
	// InitialAccessToken, when set, gates /register: requests must carry it
	// as a bearer token (RFC 7591 §3). Compared in constant time.
	InitialAccessToken string
	// ClientIDMetadataDocumentSupported advertises
	// client_id_metadata_document_supported: set it when the Provider
	// resolves https client IDs (the default provider with a ClientMetadata
	// resolver does).
	ClientIDMetadataDocumentSupported bool
	// ApprovalPage configures the approval page, served at PathDevice when
	// the Provider is an oauth.Approver; its Logger defaults to Logger.
	ApprovalPage approval.PageOptions
	// Limits bound how fast one client network may register clients and
	// start authorization requests.
	Limits RateLimits
	// ClientIP, when set, returns the client's address of a request for
	// Limits; nil, or "" from it, means the connection's peer. Wrap sets it
	// from X-Forwarded-For when TrustProxyHeaders is set.
	ClientIP func(r *http.Request) string
	// Assertions are the trusted issuers of JWT authorization grants
	// (RFC 7523 §2.1): enterprise identity providers whose ID-JAGs
	// (SEP-990) a client may exchange for an access token. Empty turns
	// the grant off.
	Assertions []AssertionVerifier
	// AssertionSubject maps an assertion's issuer and sub to the subject
	// of the grant (the owner that tools see); "" refuses the identity
	// with access_denied. Nil means sub as it is, which is right for one
	// trusted issuer; with several, map them apart.
	AssertionSubject func(issuer, sub string) string
	// KeyFetcher fetches the jwks_uri documents of clients that
	// authenticate with private_key_jwt (RFC 7523 §2.2); nil means only
	// clients with inline jwks can. Wrap sets it to the guarded fetcher of
	// Client ID Metadata Documents.
	KeyFetcher KeyFetcher
	// Logger receives operational events; nil discards them. Tokens, codes
	// and secrets are never logged.
	Logger *slog.Logger
}

// ProtectedResource is a resource an authorization server issues tokens
// for, besides ServerOptions.Resource.
type ProtectedResource struct {
	// URL is the resource's canonical URL (RFC 8707 §2). Required.
	URL string
	// Scopes are its scopes; empty means []string{DefaultScope}.
	Scopes []string
}

// Defaults of RateLimits.
const (
	DefaultRegistrationsPerMinute  = 30
	DefaultAuthorizationsPerMinute = 60
)

// RateLimits bound how fast one client network (an IPv4 address, an IPv6
// /64) can make the server store something new: without them open
// registration and /authorize let anyone fill the store and the owner's
// console. A request over a limit is answered temporarily_unavailable
// with HTTP 429 and Retry-After (at /authorize, once the client and
// redirect URI are valid, by redirecting that error to the client, OAuth
// 2.1 §4.1.2.1). Requests from a loopback address are not limited: they
// come from this machine, or from a reverse proxy on it whose clients'
// addresses are unknown unless TrustProxyHeaders is set (without it, a
// limit would be shared by every client). The zero value gives the
// defaults.
type RateLimits struct {
	// Registrations per client network per minute at /register (RFC
	// 7591); zero means 30, negative turns the limit off. Requests with
	// the InitialAccessToken are not limited.
	Registrations int
	// Authorizations is how many authorization requests (/authorize and
	// /device_authorization) one client network may start per minute;
	// zero means 60, negative turns the limit off.
	Authorizations int
}

// AuthorizationServer serves the OAuth 2.1 endpoints of DESIGN.md over a
// Provider. It is an http.Handler; mount it at the issuer's root.
type AuthorizationServer struct {
	p       oauth.Provider
	opts    ServerOptions
	log     *slog.Logger
	mux     *http.ServeMux
	meta    *oauthex.AuthServerMeta
	issuerU *url.URL
	// resources are Resource (first) and MoreResources, scopes filled in.
	resources []ProtectedResource

	regs, auths *ratelimit.Window // nil when off
	regLimit    int
	authLimit   int
	replays     *replay.Cache          // jti of the assertions accepted (grants.go, clientassert.go)
	assertions  *clientassert.Verifier // private_key_jwt (clientassert.go)
}

// NewAuthorizationServer returns the authorization server for p. Optional
// capabilities of p add endpoints: an oauth.Approver gets the approval page
// at PathDevice, an oauth.DeviceProvider the RFC 8628 endpoint and grant,
// an oauth.KeySetProvider the JWK Set at PathJWKS.
func NewAuthorizationServer(p oauth.Provider, opts ServerOptions) (*AuthorizationServer, error) {
	if p == nil {
		return nil, errors.New("mcpauth: nil Provider")
	}
	iu, err := checkIssuer(opts.Issuer)
	if err != nil {
		return nil, err
	}
	if _, err := checkIssuer(opts.Resource); err != nil {
		return nil, fmt.Errorf("mcpauth: Resource: %w", err)
	}
	resources := append([]ProtectedResource{{URL: opts.Resource, Scopes: opts.Scopes}}, opts.MoreResources...)
	for i := range resources {
		r := &resources[i]
		if i > 0 {
			if _, err := checkIssuer(r.URL); err != nil {
				return nil, fmt.Errorf("mcpauth: MoreResources[%d]: %w", i-1, err)
			}
		}
		for _, o := range resources[:i] {
			if redirect.SameResource(o.URL, r.URL) {
				return nil, fmt.Errorf("mcpauth: resource %q is named twice", r.URL)
			}
		}
		if len(r.Scopes) == 0 {
			r.Scopes = []string{DefaultScope}
		}
		r.Scopes = slices.Clone(r.Scopes) // never alias the caller's slice
		for _, s := range r.Scopes {
			if !validScopeToken(s) {
				return nil, fmt.Errorf("mcpauth: invalid scope %q (RFC 6749 §3.3 scope-token)", s)
			}
		}
	}
	opts.Scopes, opts.MoreResources = resources[0].Scopes, resources[1:]
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	for i, v := range opts.Assertions {
		if v == nil || v.Issuer() == "" {
			return nil, fmt.Errorf("mcpauth: Assertions[%d] is nil or has no issuer", i)
		}
	}
	s := &AuthorizationServer{p: p, opts: opts, log: log, mux: http.NewServeMux(), issuerU: iu, resources: resources,
		replays: replay.New(maxAssertionsInFlight)}
	if s.assertions, err = s.newClientAssertions(); err != nil {
		return nil, err
	}
	s.regs, s.regLimit = newLimit(opts.Limits.Registrations, DefaultRegistrationsPerMinute)
	s.auths, s.authLimit = newLimit(opts.Limits.Authorizations, DefaultAuthorizationsPerMinute)
	s.meta = s.metadata()
	s.routes()
	return s, nil
}

// newLimit returns the window of a per-minute limit (nil when n is
// negative) and the limit, n or def when n is zero.
func newLimit(n, def int) (*ratelimit.Window, int) {
	switch {
	case n < 0:
		return nil, 0
	case n == 0:
		n = def
	}
	return ratelimit.New(time.Minute, ""), n
}

// allow counts a request against a per-network limit and reports whether
// it is within it (see RateLimits); when it is not, it sets Retry-After.
func (s *AuthorizationServer) allow(w http.ResponseWriter, r *http.Request, win *ratelimit.Window, limit int) bool {
	if win == nil {
		return true
	}
	ip := ratelimit.ClientIP(r, s.opts.ClientIP)
	if addr, err := netip.ParseAddr(ip); err == nil && addr.IsLoopback() {
		return true
	}
	if win.Take(ratelimit.Network(ip), time.Now(), limit) {
		return true
	}
	w.Header().Set("Retry-After", "60")
	return false
}

// tooMany is the error of a request over a limit (see allow).
func tooMany(what string) *oauth.Error {
	return oauth.ErrTemporarilyUnavailable.WithStatus(http.StatusTooManyRequests).
		WithDescription("too many " + what + " from this network; try again in a minute")
}

// checkIssuer enforces RFC 8414 §2: an https URL with no query or fragment;
// http is allowed for loopback hosts only (local development).
func checkIssuer(s string) (*url.URL, error) {
	u, err := url.Parse(s)
	if err != nil || s == "" || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil || u.Opaque != "" {
		return nil, fmt.Errorf("mcpauth: %q is not an absolute URL without query, fragment or userinfo", s)
	}
	if p := strings.TrimSuffix(u.EscapedPath(), "/"); !plainPath(p) {
		return nil, fmt.Errorf("mcpauth: %q: the path must be plain segments of letters, digits, '-', '.', '_', '~'", s)
	}
	switch u.Scheme {
	case "https":
	case "http":
		if !redirect.IsLoopbackHost(u.Hostname()) {
			return nil, fmt.Errorf("mcpauth: %q: http is allowed only on loopback hosts; use https", s)
		}
	default:
		return nil, fmt.Errorf("mcpauth: %q: scheme must be https", s)
	}
	return u, nil
}

func (s *AuthorizationServer) url(path string) string {
	return strings.TrimSuffix(s.opts.Issuer, "/") + path
}

// Metadata returns the RFC 8414 authorization server metadata.
func (s *AuthorizationServer) Metadata() *oauthex.AuthServerMeta {
	m := *s.meta
	return &m
}

func (s *AuthorizationServer) metadata() *oauthex.AuthServerMeta {
	authMethods := []string{oauth.AuthMethodNone, oauth.AuthMethodClientSecretBasic, oauth.AuthMethodClientSecretPost, oauth.AuthMethodPrivateKeyJWT}
	m := &oauthex.AuthServerMeta{
		Issuer:                                     s.opts.Issuer,
		AuthorizationEndpoint:                      s.url(PathAuthorize),
		TokenEndpoint:                              s.url(PathToken),
		ScopesSupported:                            s.allScopes(),
		ResponseTypesSupported:                     []string{"code"},
		ResponseModesSupported:                     []string{"query"},
		GrantTypesSupported:                        []string{oauth.GrantTypeAuthorizationCode, oauth.GrantTypeRefreshToken},
		TokenEndpointAuthMethodsSupported:          authMethods,
		RevocationEndpoint:                         s.url(PathRevoke),
		RevocationEndpointAuthMethodsSupported:     authMethods,
		IntrospectionEndpoint:                      s.url(PathIntrospect),
		IntrospectionEndpointAuthMethodsSupported:  []string{oauth.AuthMethodClientSecretBasic, oauth.AuthMethodClientSecretPost},
		CodeChallengeMethodsSupported:              []string{"S256"},
		AuthorizationResponseIssParameterSupported: true,
		ClientIDMetadataDocumentSupported:          s.opts.ClientIDMetadataDocumentSupported,
	}
	if !s.opts.DisableRegistration {
		m.RegistrationEndpoint = s.url(PathRegister)
	}
	if _, ok := s.p.(oauth.KeySetProvider); ok {
		m.JWKSURI = s.url(PathJWKS)
	}
	if _, ok := s.p.(oauth.DeviceProvider); ok {
		m.GrantTypesSupported = append(m.GrantTypesSupported, oauth.GrantTypeDeviceCode)
	}
	if ti, ok := s.p.(oauth.TokenIssuer); ok {
		m.GrantTypesSupported = append(m.GrantTypesSupported, ti.IssuedGrantTypes()...)
		if len(s.opts.Assertions) > 0 {
			m.GrantTypesSupported = append(m.GrantTypesSupported, oauth.GrantTypeJWTBearer)
		}
	}
	return m
}

// serverMetadata is the RFC 8414 document as served: oauthex's fields and
// the RFC 8628 §4 device_authorization_endpoint, which oauthex lacks.
type serverMetadata struct {
	*oauthex.AuthServerMeta
	DeviceAuthorizationEndpoint string `json:"device_authorization_endpoint,omitempty"`
}

func (s *AuthorizationServer) routes() {
	// RFC 8414 §3: metadata at the well-known URI, path-inserted when the
	// issuer has a path, plus the OpenID Connect discovery alias, which some
	// MCP clients try first.
	issuerPath := strings.TrimSuffix(s.issuerU.Path, "/")
	meta := cors("GET", http.HandlerFunc(s.serveMetadata))
	for _, p := range []string{wellKnownAS + issuerPath, wellKnownOIDC + issuerPath} {
		s.mux.Handle("GET "+p, meta)
		s.mux.Handle("OPTIONS "+p, meta)
	}
	if issuerPath != "" {
		s.mux.Handle("GET "+issuerPath+wellKnownOIDC, meta)
	}
	base := issuerPath
	s.mux.HandleFunc("GET "+base+PathAuthorize, s.serveAuthorize)
	s.mux.HandleFunc("POST "+base+PathAuthorize, s.serveAuthorize)
	for path, h := range map[string]http.HandlerFunc{
		PathToken:      s.serveToken,
		PathRevoke:     s.serveRevoke,
		PathIntrospect: s.serveIntrospect,
	} {
		c := cors("POST", h)
		s.mux.Handle("POST "+base+path, c)
		s.mux.Handle("OPTIONS "+base+path, c)
	}
	if !s.opts.DisableRegistration {
		c := cors("POST", http.HandlerFunc(s.serveRegister))
		s.mux.Handle("POST "+base+PathRegister, c)
		s.mux.Handle("OPTIONS "+base+PathRegister, c)
	}
	if dp, ok := s.p.(oauth.DeviceProvider); ok {
		c := cors("POST", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { s.serveDeviceAuthorization(w, r, dp) }))
		s.mux.Handle("POST "+base+PathDeviceAuthorization, c)
		s.mux.Handle("OPTIONS "+base+PathDeviceAuthorization, c)
	}
	if jp, ok := s.p.(oauth.KeySetProvider); ok {
		c := cors("GET", jwksHandler(jp, s.log))
		s.mux.Handle("GET "+base+PathJWKS, c)
		s.mux.Handle("OPTIONS "+base+PathJWKS, c)
	}
	if a, ok := s.p.(oauth.Approver); ok {
		po := s.opts.ApprovalPage
		if po.Logger == nil {
			po.Logger = s.log
		}
		page := approval.NewPage(a, po)
		s.mux.Handle(base+PathDevice, page)
		s.mux.Handle(base+PathDevice+pathStatus, page)
	}
}

// ServeHTTP implements http.Handler.
func (s *AuthorizationServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mux.ServeHTTP(w, r)
}

func (s *AuthorizationServer) serveMetadata(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "public, max-age=3600")
	m := serverMetadata{AuthServerMeta: s.meta}
	if _, ok := s.p.(oauth.DeviceProvider); ok {
		m.DeviceAuthorizationEndpoint = s.url(PathDeviceAuthorization)
	}
	writeJSON(w, http.StatusOK, m)
}

func jwksHandler(p oauth.KeySetProvider, log *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := p.JWKS(r.Context())
		if err != nil {
			log.Error("mcpauth: jwks", "err", err)
			http.Error(w, "internal error", http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/jwk-set+json")
		w.Header().Set("Cache-Control", "public, max-age=300")
		w.Write(b)
	})
}

// validScopeToken reports whether s is a RFC 6749 §3.3 scope-token:
// 1*( %x21 / %x23-5B / %x5D-7E ).
func validScopeToken(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x21 || c == 0x22 || c == 0x5C || c > 0x7E {
			return false
		}
	}
	return true
}
