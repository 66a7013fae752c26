// Package mcpauth is the HTTP layer of the OAuth 2.1 authorization server
// for MCP servers built on github.com/modelcontextprotocol/go-sdk. One call,
//
//	h, err := mcpauth.Wrap(server, mcpauth.Options{Issuer: "https://notes.example.com", Store: store})
//
// serves the MCP endpoint behind bearer tokens together with everything an
// MCP client needs to obtain them: protected resource metadata (RFC 9728),
// authorization server metadata (RFC 8414), dynamic client registration
// (RFC 7591), the authorization endpoint with PKCE (OAuth 2.1, RFC 7636,
// RFC 8707, RFC 9207), the token endpoint with refresh rotation, revocation
// (RFC 7009), introspection (RFC 7662), the JWK Set, and the approval page on
// which the user reads a short code that the owner approves.
//
// The parts are usable alone: [NewAuthorizationServer] over any
// oauth.Provider, [RequireBearer] in front of any handler, and
// [RemoteVerifier] for a resource server that runs apart from the
// authorization server.
package mcpauth

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/modelcontextprotocol/go-sdk/oauthex"

	oauth "github.com/mcp-oauth/oauth"
	"github.com/mcp-oauth/oauth/devicepage"
	"github.com/mcp-oauth/oauth/internal/cimd"
	"github.com/mcp-oauth/oauth/internal/redirect"
	"github.com/mcp-oauth/oauth/provider"
	"github.com/mcp-oauth/oauth/storage"
	"github.com/mcp-oauth/oauth/storage/memory"
)

// Options configure [Wrap] and [New]. Only Issuer is required; every other
// zero value selects the documented default.
type Options struct {
	// Issuer is the public base URL clients reach the server at, such as
	// "https://notes.example.com" (RFC 8414 §2). It must be https, except
	// on a loopback host. Behind a reverse proxy it is the proxy's URL.
	// Required.
	Issuer string
	// Store persists clients, grants, codes, tokens and signing keys. Nil
	// means an in-memory store: everything is lost on restart (tests only).
	Store storage.Store
	// Provider replaces the default provider built on Store. When set,
	// Store and the token lifetimes below are ignored.
	Provider oauth.Provider
	// MCPPath is the path of the MCP endpoint; empty means "/mcp". The
	// resource (RFC 8707) is Issuer + MCPPath.
	MCPPath string
	// Scopes are the scopes the server knows (scopes_supported). Empty
	// means DefaultScopes, ["mcp"].
	Scopes []string
	// RequiredScopes must be granted for every MCP request. Empty means a
	// valid token suffices.
	RequiredScopes []string
	// ToolScopes declares per-tool scopes: a tools/call of the named tool
	// needs these scopes in addition to RequiredScopes (403
	// insufficient_scope otherwise). Every scope named must be in Scopes.
	ToolScopes map[string][]string
	// Limits bound how fast one client network may register clients and
	// start authorization requests; the zero value gives the defaults (30
	// registrations and 60 authorization requests a minute). See
	// RateLimits.
	Limits RateLimits
	// ScopeDescriptions say in plain words what each scope allows; the
	// approval pages (the authorize tab and the console's confirmation)
	// show them beside the scope names. Every key must be in Scopes. A
	// scope without one is described from ToolScopes ("Use the tools
	// a and b") or, for a scope in RequiredScopes or the default "mcp",
	// as connecting to the server and using what it offers; any other
	// is shown by its name alone.
	ScopeDescriptions map[string]string
	// ResourceName is the human-readable resource_name of RFC 9728 §2.
	ResourceName string
	// DisableRegistration turns off dynamic client registration.
	DisableRegistration bool
	// InitialAccessToken, when set, gates /register (RFC 7591 §3).
	InitialAccessToken string
	// Token lifetimes; zero selects the provider package defaults
	// (access 1 h, refresh 30 days, code 10 min, pending 10 min, unused
	// client registrations 90 days).
	AccessTokenTTL, RefreshTokenTTL, CodeTTL, PendingTTL, ClientTTL time.Duration
	// SigningAlgorithm is "ES256" (default) or "EdDSA".
	SigningAlgorithm string
	// KeyEncryptionKeys encrypt private signing keys at rest (AES-256-GCM,
	// 32 bytes each; the first encrypts, all decrypt). See
	// provider.Options.KeyEncryptionKeys for rotation.
	KeyEncryptionKeys [][]byte
	// VerifiedTokenCacheSize bounds the access tokens remembered as
	// verified, so that a token presented again costs no signature check
	// and no database read; zero means 10,000 and a negative value turns
	// the cache off. See provider.Options.VerifiedTokenCacheSize for how
	// revocations stay honoured.
	VerifiedTokenCacheSize int
	// AllowedHosts are extra Host header values accepted on a loopback
	// listener, besides loopback names and the Issuer's host. See
	// TrustProxyHeaders.
	AllowedHosts []string
	// TrustProxyHeaders makes the server believe X-Forwarded-Host when it
	// checks the Host of requests that reach a loopback listener (DNS
	// rebinding protection), and take the client's address for the
	// per-network limits (Limits, and the console's sign-in and
	// code-entry limits) from the last X-Forwarded-For entry
	// (the one your proxy appended) of requests whose peer is on a
	// loopback or private network. Set it only when a reverse proxy you
	// control sets these headers; otherwise any client could claim any
	// host, and any client on a private network any address.
	TrustProxyHeaders bool
	// Streamable configures go-sdk's streamable HTTP handler. Its
	// DisableLocalhostProtection is always set: Wrap performs that check
	// itself, accepting the Issuer's host (so a reverse proxy on the same
	// machine works) and refusing others.
	Streamable *mcp.StreamableHTTPOptions
	// ClientIDMetadataDocuments configures clients whose client_id is an
	// https URL (draft-ietf-oauth-client-id-metadata-document), which the
	// newest MCP clients (ChatGPT, VS Code, Claude Code) use instead of
	// registration. On by default, fetched with SSRF protections.
	ClientIDMetadataDocuments CIMDOptions
	// DevicePage configures the approval page (product name, where to
	// approve). Its Logger defaults to Logger.
	DevicePage devicepage.Options
	// Console configures the console at /console, where signed-in owners
	// approve codes and manage grants and clients. With neither Accounts
	// nor Identity set, the built-in sign-in (console users in Store,
	// created with devicepage.Accounts.AddUser or the example's "users
	// add") is used; Secure defaults to the Issuer being https. The
	// console is served only with the default Provider (Options.Provider
	// unset).
	Console devicepage.ConsoleOptions
	// Logger receives operational events; nil discards them. Tokens,
	// codes and secrets are never logged.
	Logger *slog.Logger
}

// CIMDOptions configure Client ID Metadata Documents. The zero value
// accepts documents from any public https host.
type CIMDOptions struct {
	// Disable refuses URL client IDs; metadata then omits
	// client_id_metadata_document_supported.
	Disable bool
	// AllowHosts, if non-empty, lists the only hosts whose documents are
	// accepted; "example.com" matches that host, ".example.com" its
	// subdomains.
	AllowHosts []string
	// DenyHosts lists hosts whose documents are refused, same syntax.
	DenyHosts []string
	// AllowPrivateAddresses lets documents be fetched from loopback,
	// private and link-local addresses: for tests and intranets only.
	AllowPrivateAddresses bool
	// RootCAs replaces the system roots for fetching documents (a private
	// PKI, or tests).
	RootCAs *x509.CertPool
}

// Handler is the http.Handler returned by Wrap and New.
type Handler struct {
	mux      *http.ServeMux
	as       *AuthorizationServer
	provider oauth.Provider
	def      *provider.Provider
	handler  http.Handler
	resource string
	prmURL   string
	console  *devicepage.Console
}

// Wrap serves server over streamable HTTP at Options.MCPPath behind OAuth
// 2.1 bearer tokens, together with the authorization server. The returned
// handler is a *Handler, whose Approve method approves user codes from Go.
func Wrap(server *mcp.Server, opts Options) (http.Handler, error) {
	h, err := New(server, opts)
	if err != nil {
		return nil, err
	}
	return h, nil
}

// New is Wrap returning the concrete *Handler.
func New(server *mcp.Server, opts Options) (*Handler, error) {
	if server == nil {
		return nil, errors.New("mcpauth: nil server")
	}
	iu, err := checkIssuer(opts.Issuer)
	if err != nil {
		return nil, fmt.Errorf("mcpauth: Issuer: %w", err)
	}
	if opts.MCPPath == "" {
		opts.MCPPath = DefaultMCPPath
	}
	if !plainPath(opts.MCPPath) || opts.MCPPath == "" {
		return nil, fmt.Errorf("mcpauth: MCPPath %q must be a plain absolute path such as /mcp: segments of letters, digits, '-', '.', '_', '~', no trailing slash", opts.MCPPath)
	}
	if len(opts.Scopes) == 0 {
		opts.Scopes = DefaultScopes
	}
	opts.Scopes = slices.Clone(opts.Scopes)
	opts.RequiredScopes = slices.Clone(opts.RequiredScopes)
	toolScopes := make(map[string][]string, len(opts.ToolScopes))
	for tool, scopes := range opts.ToolScopes {
		toolScopes[tool] = slices.Clone(scopes)
	}
	opts.ToolScopes = toolScopes
	for tool, scopes := range opts.ToolScopes {
		for _, s := range scopes {
			if !slices.Contains(opts.Scopes, s) {
				return nil, fmt.Errorf("mcpauth: ToolScopes[%q] names %q, which is not in Scopes", tool, s)
			}
		}
	}
	for sc := range opts.ScopeDescriptions {
		if !slices.Contains(opts.Scopes, sc) {
			return nil, fmt.Errorf("mcpauth: ScopeDescriptions names %q, which is not in Scopes", sc)
		}
	}
	scopeText := describeScopes(opts)
	var clientIP func(*http.Request) string // nil: the connection's peer
	if opts.TrustProxyHeaders {
		clientIP = forwardedFor
	}
	if opts.DevicePage.ScopeDescriptions == nil {
		opts.DevicePage.ScopeDescriptions = scopeText
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	base := strings.TrimSuffix(opts.Issuer, "/")
	resource := base + opts.MCPPath
	// With an issuer that has a path (https://host/app), everything lives
	// under that path, and the resource's metadata sits at the RFC 9728 §3.1
	// path-inserted location: https://host/.well-known/oauth-protected-resource/app/mcp.
	issuerPath := strings.TrimSuffix(iu.Path, "/")
	mcpPath := issuerPath + opts.MCPPath
	origin := iu.Scheme + "://" + iu.Host
	h := &Handler{mux: http.NewServeMux(), resource: resource, prmURL: origin + wellKnownPRM + mcpPath}

	h.provider = opts.Provider
	if h.provider == nil {
		store := opts.Store
		if store == nil {
			log.Warn("mcpauth: no Store configured; using an in-memory store, all registrations and grants are lost on restart")
			store = memory.New()
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		var resolve func(context.Context, string) (*oauth.Client, error)
		if c := opts.ClientIDMetadataDocuments; !c.Disable {
			resolve = cimd.New(cimd.Options{AllowHosts: c.AllowHosts, DenyHosts: c.DenyHosts,
				AllowPrivateAddresses: c.AllowPrivateAddresses, RootCAs: c.RootCAs}).Client
		}
		consoleURL := strings.TrimSuffix(opts.Issuer, "/") + PathConsole
		p, err := provider.New(ctx, store, provider.Options{
			DeviceVerification: func(code string) (string, string) {
				return consoleURL, consoleURL + "/approve?" + url.Values{"user_code": {code}}.Encode()
			},
			ClientMetadata: resolve,
			Issuer:         opts.Issuer, Resource: resource,
			AccessTokenTTL: opts.AccessTokenTTL, RefreshTokenTTL: opts.RefreshTokenTTL, CodeTTL: opts.CodeTTL,
			PendingTTL: opts.PendingTTL, ClientTTL: opts.ClientTTL, SigningAlgorithm: opts.SigningAlgorithm,
			KeyEncryptionKeys: opts.KeyEncryptionKeys, VerifiedTokenCacheSize: opts.VerifiedTokenCacheSize,
			ApprovalPath: PathDevice, Logger: log,
		})
		if err != nil {
			return nil, fmt.Errorf("mcpauth: %w", err)
		}
		h.provider, h.def = p, p
		co := opts.Console
		if co.Accounts == nil && co.Identity == nil {
			co.Accounts = devicepage.NewAccounts(store, devicepage.AccountsOptions{})
		}
		if co.Logger == nil {
			co.Logger = log
		}
		if co.ProductName == "" {
			co.ProductName = opts.DevicePage.ProductName
		}
		if co.LogoURL == "" {
			co.LogoURL = opts.DevicePage.LogoURL
		}
		if co.ClientIP == nil {
			co.ClientIP = clientIP
		}
		if co.ScopeDescriptions == nil {
			co.ScopeDescriptions = scopeText
		}
		co.Secure = co.Secure || iu.Scheme == "https"
		h.console = devicepage.NewConsole(p, issuerPath+PathConsole, co)
		if opts.DevicePage.Console == nil {
			opts.DevicePage.Console = h.console
		}
		if opts.DevicePage.ApproveHint == nil {
			opts.DevicePage.ApproveHint = func(code string) string {
				if code == "" {
					return "The owner of this server approves the code in the console: " + consoleURL
				}
				return "The owner of this server approves the code " + code + " in the console: " + consoleURL
			}
		}
	}
	h.as, err = NewAuthorizationServer(h.provider, ServerOptions{
		Issuer: opts.Issuer, Resource: resource, Scopes: opts.Scopes,
		DisableRegistration: opts.DisableRegistration, InitialAccessToken: opts.InitialAccessToken,
		ClientIDMetadataDocumentSupported: !opts.ClientIDMetadataDocuments.Disable && opts.Provider == nil,
		DevicePage:                        opts.DevicePage, Logger: log,
		Limits: opts.Limits, ClientIP: clientIP,
	})
	if err != nil {
		return nil, err
	}

	// RFC 9728 §3.1: metadata at the path-inserted well-known URI of the
	// resource, and (when the issuer has no path) at the root for clients of
	// earlier MCP revisions. Both name the MCP endpoint itself as the
	// resource, byte for byte.
	prm := &oauthex.ProtectedResourceMetadata{
		Resource:               resource,
		AuthorizationServers:   []string{opts.Issuer},
		ScopesSupported:        opts.Scopes,
		BearerMethodsSupported: []string{"header"},
		ResourceName:           opts.ResourceName,
	}
	prmHandler := cors("GET", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=3600")
		writeJSON(w, http.StatusOK, prm)
	}))
	prmPaths := []string{wellKnownPRM + mcpPath}
	if issuerPath == "" {
		// The root document describes the whole host; serve it only when
		// this server owns the host (its issuer has no path).
		prmPaths = append(prmPaths, wellKnownPRM)
	}
	for _, p := range prmPaths {
		h.mux.Handle("GET "+p, prmHandler)
		h.mux.Handle("OPTIONS "+p, prmHandler)
	}

	var sopts mcp.StreamableHTTPOptions
	if opts.Streamable != nil {
		sopts = *opts.Streamable
	}
	sopts.DisableLocalhostProtection = true
	mcpHandler := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return server }, &sopts)
	maxBody := sopts.MaxRequestBodyBytes
	bearer := RequireBearer(h.provider.LoadAccessToken, BearerOptions{
		ResourceMetadataURL: h.prmURL, Scopes: opts.Scopes, RequiredScopes: opts.RequiredScopes,
		ToolScopes: opts.ToolScopes, MaxBodyBytes: maxBody, Logger: log,
	})
	protected := cors("GET, POST, DELETE", bearer(mcpHandler))
	h.mux.Handle(mcpPath, protected)
	if h.console != nil {
		h.mux.Handle(issuerPath+PathConsole, h.console)
		h.mux.Handle(issuerPath+PathConsole+"/", h.console)
	}
	h.mux.Handle("/", h.as)

	allowed := map[string]bool{strings.ToLower(iu.Host): true}
	for _, a := range opts.AllowedHosts {
		allowed[strings.ToLower(a)] = true
	}
	h.handler = hostGuard(allowed, opts.TrustProxyHeaders, h.mux)
	return h, nil
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.handler.ServeHTTP(w, r) }

// Close releases what the Handler started: the default Provider's watch of
// the store for revocations (see provider.Provider.Close). It closes
// neither Options.Store nor Options.Provider, which belong to the caller.
func (h *Handler) Close() error {
	if h.def != nil {
		return h.def.Close()
	}
	return nil
}

// AuthorizationServer returns the authorization server part.
func (h *Handler) AuthorizationServer() *AuthorizationServer { return h.as }

// Provider returns the default provider, or nil when Options.Provider
// replaced it.
func (h *Handler) Provider() *provider.Provider { return h.def }

// Resource returns the canonical resource URL of the MCP endpoint.
func (h *Handler) Resource() string { return h.resource }

// Approve approves the pending authorization request with the given user
// code on behalf of subject (the owner's account name); the waiting browser
// then continues to the client with an authorization code.
func (h *Handler) Approve(ctx context.Context, userCode, subject string) (*provider.Pending, error) {
	if h.def == nil {
		return nil, errors.New("mcpauth: Approve needs the default provider")
	}
	return h.def.Approve(ctx, userCode, subject)
}

// hostGuard is the DNS-rebinding protection that go-sdk applies to
// loopback listeners, made proxy-aware: a request that reached a loopback
// address must name a loopback host, the Issuer's host, or an allowed host.
func hostGuard(allowed map[string]bool, trustProxy bool, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if la, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok && isLoopbackAddr(la) {
			host := r.Host
			if trustProxy {
				if fh := r.Header.Get("X-Forwarded-Host"); fh != "" {
					host, _, _ = strings.Cut(fh, ",")
					host = strings.TrimSpace(host)
				}
			}
			if !hostAllowed(host, allowed) {
				http.Error(w, "mcpauth: requests for host "+quoteSafe(host)+" are not served here (DNS rebinding protection); set Options.Issuer to the public URL or add the host to Options.AllowedHosts", http.StatusForbidden)
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

func isLoopbackAddr(a net.Addr) bool {
	if t, ok := a.(*net.TCPAddr); ok { // the usual case, without formatting and parsing
		return t.IP.IsLoopback()
	}
	host, _, err := net.SplitHostPort(a.String())
	if err != nil {
		host = a.String()
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func hostAllowed(hostport string, allowed map[string]bool) bool {
	hp := strings.ToLower(hostport)
	if allowed[hp] {
		return true
	}
	host := hp
	if h, _, err := net.SplitHostPort(hp); err == nil {
		host = h
	}
	host = strings.Trim(host, "[]")
	return redirect.IsLoopbackHost(host) || allowed[host]
}

// plainPath reports whether p is empty or a clean absolute path whose
// segments use only RFC 3986 unreserved characters, so that it can be used
// both in URLs and as an http.ServeMux pattern without surprises (no
// wildcards, escapes, dot segments or trailing slash).
func plainPath(p string) bool {
	if p == "" {
		return true
	}
	if !strings.HasPrefix(p, "/") || strings.HasSuffix(p, "/") || path.Clean(p) != p {
		return false
	}
	for _, seg := range strings.Split(p[1:], "/") {
		if seg == "" || seg == "." || seg == ".." {
			return false
		}
		for i := 0; i < len(seg); i++ {
			c := seg[i]
			if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~') {
				return false
			}
		}
	}
	return true
}

// describeScopes returns the plain-words description of every scope in
// opts.Scopes that has one: the host's own, or one derived from what the
// scope unlocks (see Options.ScopeDescriptions).
func describeScopes(opts Options) map[string]string {
	out := make(map[string]string, len(opts.Scopes))
	for _, sc := range opts.Scopes {
		if d := opts.ScopeDescriptions[sc]; d != "" {
			out[sc] = d
			continue
		}
		var tools []string
		for tool, scopes := range opts.ToolScopes {
			if slices.Contains(scopes, sc) {
				tools = append(tools, tool)
			}
		}
		slices.Sort(tools)
		switch {
		case len(tools) == 1:
			out[sc] = "Use the tool " + tools[0]
		case len(tools) > 1:
			out[sc] = "Use the tools " + strings.Join(tools[:len(tools)-1], ", ") + " and " + tools[len(tools)-1]
		case slices.Contains(opts.RequiredScopes, sc) || (len(opts.RequiredScopes) == 0 && sc == defaultScopeMCP):
			if len(opts.ToolScopes) > 0 {
				out[sc] = "Connect, and use the resources, prompts and tools that need no further access"
			} else {
				out[sc] = "Connect, and use the tools, resources and prompts"
			}
		}
	}
	return out
}

// forwardedFor is the client's address that a trusted reverse proxy
// appended to X-Forwarded-For (its last entry), or "" without one. It is
// believed only from a peer on a loopback or private network, where a
// proxy sits: a client that reaches the server directly from the internet
// cannot choose its own address.
func forwardedFor(r *http.Request) string {
	if peer, err := netip.ParseAddrPort(r.RemoteAddr); err != nil || !(peer.Addr().IsLoopback() || peer.Addr().IsPrivate()) {
		return ""
	}
	h := r.Header.Values("X-Forwarded-For")
	if len(h) == 0 {
		return ""
	}
	last := h[len(h)-1]
	if i := strings.LastIndexByte(last, ','); i >= 0 {
		last = last[i+1:]
	}
	last = strings.TrimSpace(last)
	addr, err := netip.ParseAddr(last)
	if err != nil {
		// Some proxies write the client's port too: 192.0.2.1:5000, [2001:db8::1]:5000.
		ap, err := netip.ParseAddrPort(last)
		if err != nil {
			return ""
		}
		addr = ap.Addr()
	}
	return addr.Unmap().String()
}
