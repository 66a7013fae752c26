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
// Wrap builds the default Provider (package provider) on a storage.Store, or
// takes any oauth.Provider; the approval page and the console (package
// approval) are served for any Provider that is also an oauth.Approver.
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
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	oauth "github.com/mcp-oauth/oauth"
	"github.com/mcp-oauth/oauth/approval"
	"github.com/mcp-oauth/oauth/internal/cimd"
	"github.com/mcp-oauth/oauth/provider"
	"github.com/mcp-oauth/oauth/storage"
	"github.com/mcp-oauth/oauth/storage/memory"
	"github.com/mcp-oauth/oauth/upstream"
)

// Options configure [Wrap]. Only Issuer is required; every other zero
// value selects the documented default.
type Options struct {
	// Issuer is the public base URL clients reach the server at, such as
	// "https://notes.example.com" (RFC 8414 §2). It must be https, except
	// on a loopback host. Behind a reverse proxy it is the proxy's URL.
	// Required.
	Issuer string
	// Store persists the default Provider's clients, grants, codes,
	// tokens and signing keys. Nil means an in-memory store: everything
	// is lost on restart (tests only). When it is also a
	// storage.AccountStore, as every backend of this module is, the
	// console's built-in sign-in keeps its users and sessions in it.
	// Must be nil when Provider is set.
	Store storage.Store
	// Provider replaces the default Provider built on Store. Only
	// oauth.Provider is required; its optional contracts add features:
	// oauth.Approver the approval page at PathDevice, the console and
	// Handler.Approve; oauth.Administrator the console's lists of grants
	// and clients; oauth.DeviceProvider the RFC 8628 device grant;
	// oauth.KeySetProvider the JWK Set. Wrap logs which of them a
	// Provider lacks. With Provider set, Wrap refuses a non-zero Store,
	// ProviderOptions or ClientIDMetadataDocuments (other than Disable),
	// and, unless the
	// Provider is an oauth.Approver, a non-zero ApprovalPage or Console.
	Provider oauth.Provider
	// ProviderOptions configure the default Provider: token lifetimes,
	// signing algorithm, key-encryption keys, the verified-token cache,
	// the clock (see provider.Options). Issuer, Resource and ApprovalPath
	// are Wrap's and must be left empty; ClientMetadata defaults to the
	// fetcher that ClientIDMetadataDocuments configures, DeviceVerification
	// to the console, and Logger to Logger.
	ProviderOptions provider.Options
	// MCPPath is the path of the MCP endpoint; empty means "/mcp". The
	// resource (RFC 8707) is Issuer + MCPPath.
	MCPPath string
	// Resources are further MCP servers served beside server, behind the
	// same authorization server, each a resource of its own (see
	// Resource). Empty for the usual one server. A custom Provider must
	// then issue tokens for each of Handler.Resources and report the one a
	// token is for in AccessToken.Resource.
	Resources []Resource
	// Scopes are the scopes the server knows (scopes_supported). Empty
	// means []string{DefaultScope}.
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
	// ApprovalPage configures the approval page (product name, logo,
	// where to approve, a setup step). Its Logger defaults to Logger.
	ApprovalPage approval.PageOptions
	// Upstream, when set, signs owners in through an existing OpenID
	// Connect identity provider (package upstream) instead of built-in
	// accounts: the console and the approval page link to its sign-in at
	// PathUpstream, a signed-in browser approves its own requests with
	// one click, the upstream tokens are kept with each grant it approves
	// (UpstreamToken) and revoked at the upstream when the grant ends.
	// Approval by code keeps working. Console.Identity and
	// Console.Accounts must then be empty.
	Upstream *upstream.IdP
	// Assertions are the enterprise identity providers whose identity
	// assertion JWT authorization grants (ID-JAG, MCP's SEP-990; RFC
	// 7523 §2.1) the token endpoint exchanges for access tokens, and
	// AssertionSubject maps their subjects (see ServerOptions). Machine
	// clients (client credentials, token exchange) are configured in
	// ProviderOptions.Clients.
	Assertions       []AssertionVerifier
	AssertionSubject func(issuer, sub string) string
	// Console configures the console at PathConsole, where signed-in
	// owners approve codes and manage grants and clients. Sign-in is
	// Console.Accounts, else Console.Identity, else the built-in
	// sign-in on Store (console users created with
	// approval.Accounts.AddUser or the example's "users add"); with none
	// of these the console is not served (Wrap logs it) and codes are
	// approved with Handler.Approve. Console.Admin defaults to the
	// Provider when it is an oauth.Administrator; Secure defaults to the
	// Issuer being https.
	Console approval.ConsoleOptions
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

// Handler is what Wrap returns: the MCP endpoint behind bearer tokens and
// the authorization server, as one http.Handler.
type Handler struct {
	mux      *http.ServeMux
	as       *AuthorizationServer
	provider oauth.Provider
	def      *provider.Provider // nil with Options.Provider
	approver oauth.Approver     // nil when the Provider is not one
	handler  http.Handler
	served   []*served // Wrap's server first
	console  *approval.Console
}

// Wrap serves server over streamable HTTP at Options.MCPPath behind OAuth
// 2.1 bearer tokens, together with the authorization server, the approval
// page and the console. It refuses a configuration it cannot serve as
// asked, with an error naming the option.
func Wrap(server *mcp.Server, opts Options) (*Handler, error) {
	if server == nil {
		return nil, errors.New("mcpauth: nil server")
	}
	iu, err := checkIssuer(opts.Issuer)
	if err != nil {
		return nil, fmt.Errorf("mcpauth: Issuer: %w", err)
	}
	// With an issuer that has a path (https://host/app), everything lives
	// under that path, and a resource's metadata sits at the RFC 9728 §3.1
	// path-inserted location: https://host/.well-known/oauth-protected-resource/app/mcp.
	issuerPath := strings.TrimSuffix(iu.Path, "/")
	res, err := resourcesOf(server, &opts, issuerPath, iu.Scheme+"://"+iu.Host)
	if err != nil {
		return nil, err
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var clientIP func(*http.Request) string // nil: the connection's peer
	if opts.TrustProxyHeaders {
		clientIP = forwardedFor
	}
	consoleURL := strings.TrimSuffix(opts.Issuer, "/") + PathConsole
	h := &Handler{mux: http.NewServeMux(), served: res}

	if err := setupUpstream(&opts, issuerPath, iu.Scheme == "https", log); err != nil {
		return nil, err
	}
	store := opts.Store
	if opts.Provider != nil {
		if err := checkCustomProvider(&opts, log); err != nil {
			return nil, err
		}
		h.provider = opts.Provider
	} else {
		if store == nil {
			log.Warn("mcpauth: no Store configured; using an in-memory store, all registrations and grants are lost on restart")
			store = memory.New()
		}
		if h.def, err = newDefaultProvider(store, &opts, res, consoleURL, log); err != nil {
			return nil, err
		}
		h.provider = h.def
	}
	h.approver, _ = h.provider.(oauth.Approver)
	opts.ApprovalPage.Step = stepOf(res)
	if opts.ApprovalPage.Step != nil {
		if opts.Console.Step == nil {
			opts.Console.Step = opts.ApprovalPage.Step // a device request's step runs where the owner approves
		}
		if _, ok := h.provider.(oauth.GrantDataProvider); !ok {
			log.Warn("mcpauth: a setup step is configured but the Provider keeps no grant data (oauth.GrantDataProvider): a step that completes with values fails")
		} else if h.def != nil && len(opts.ProviderOptions.KeyEncryptionKeys) == 0 {
			log.Warn("mcpauth: a setup step is configured without ProviderOptions.KeyEncryptionKeys: grant data is sealed, but under data keys stored unwrapped beside it, so a copy of the database reveals it")
		}
	}
	scopeText := describeScopes(res[0].Resource)
	if opts.ApprovalPage.ScopeDescriptions == nil {
		opts.ApprovalPage.ScopeDescriptions = scopeText
	}
	if len(res) > 1 {
		// The pages say which resource a request is for, and describe its
		// scopes in its own words.
		info := make(map[string]approval.ResourceInfo, len(res))
		for _, r := range res {
			info[r.url] = approval.ResourceInfo{Name: r.ResourceName, ScopeDescriptions: describeScopes(r.Resource)}
		}
		if opts.ApprovalPage.Resources == nil {
			opts.ApprovalPage.Resources = info
		}
		if opts.Console.Resources == nil {
			opts.Console.Resources = info
		}
	}
	if h.approver != nil {
		h.console = newConsole(h, &opts, store, issuerPath, consoleURL, iu.Scheme == "https", clientIP, scopeText, log)
	}
	h.as, err = NewAuthorizationServer(h.provider, ServerOptions{
		Issuer: opts.Issuer, Resource: res[0].url, Scopes: opts.Scopes, MoreResources: moreResources(res),
		DisableRegistration: opts.DisableRegistration, InitialAccessToken: opts.InitialAccessToken,
		ClientIDMetadataDocumentSupported: !opts.ClientIDMetadataDocuments.Disable && opts.Provider == nil,
		ApprovalPage:                      opts.ApprovalPage, Logger: log,
		Limits: opts.Limits, ClientIP: clientIP,
		Assertions: opts.Assertions, AssertionSubject: opts.AssertionSubject,
		KeyFetcher: documentFetcher(&opts).Get,
	})
	if err != nil {
		return nil, err
	}
	h.routes(&opts, issuerPath, log)
	allowed := map[string]bool{strings.ToLower(iu.Host): true}
	for _, a := range opts.AllowedHosts {
		allowed[strings.ToLower(a)] = true
	}
	h.handler = hostGuard(allowed, opts.TrustProxyHeaders, h.mux)
	return h, nil
}

// checkCustomProvider refuses the options that a custom Provider makes
// meaningless, and logs which features it lacks.
func checkCustomProvider(opts *Options, log *slog.Logger) error {
	_, approver := opts.Provider.(oauth.Approver)
	const defaultOnly = "it configures the default Provider, which Options.Provider replaces"
	pagesWhy := "" // allowed
	if !approver {
		pagesWhy = "the Provider is not an oauth.Approver, so there is no approval page and no console"
	}
	cimdOpts := opts.ClientIDMetadataDocuments
	for _, o := range []struct {
		name string
		set  bool
		why  string // why it is refused; "" allows it
	}{
		{"Store", opts.Store != nil, defaultOnly},
		{"ProviderOptions", !reflect.ValueOf(opts.ProviderOptions).IsZero(), defaultOnly},
		// Disable alone says what a custom Provider means anyway.
		{"ClientIDMetadataDocuments", len(cimdOpts.AllowHosts) > 0 || len(cimdOpts.DenyHosts) > 0 || cimdOpts.AllowPrivateAddresses || cimdOpts.RootCAs != nil, defaultOnly},
		{"ApprovalPage", !reflect.ValueOf(opts.ApprovalPage).IsZero(), pagesWhy},
		{"Console", !reflect.ValueOf(opts.Console).IsZero(), pagesWhy},
	} {
		if o.set && o.why != "" {
			return fmt.Errorf("mcpauth: Options.%s is set together with Options.Provider, but %s", o.name, o.why)
		}
	}
	var lacks []string
	if !approver {
		lacks = append(lacks, "oauth.Approver (no approval page, no console, Handler.Approve fails)")
	} else if _, ok := opts.Provider.(oauth.Administrator); !ok {
		lacks = append(lacks, "oauth.Administrator (the console lists no grants or clients)")
	}
	if _, ok := opts.Provider.(oauth.DeviceProvider); !ok {
		lacks = append(lacks, "oauth.DeviceProvider (no RFC 8628 device grant)")
	}
	if _, ok := opts.Provider.(oauth.KeySetProvider); !ok {
		lacks = append(lacks, "oauth.KeySetProvider (no JWK Set, no jwks_uri)")
	}
	if len(lacks) > 0 {
		log.Info("mcpauth: the Provider does not implement "+strings.Join(lacks, "; "), "provider", fmt.Sprintf("%T", opts.Provider))
	}
	return nil
}

// documentFetcher returns a fetcher of Client ID Metadata Documents, and
// of private_key_jwt clients' jwks_uri documents, guarded as
// Options.ClientIDMetadataDocuments says.
func documentFetcher(opts *Options) *cimd.Fetcher {
	c := opts.ClientIDMetadataDocuments
	return cimd.New(cimd.Options{AllowHosts: c.AllowHosts, DenyHosts: c.DenyHosts,
		AllowPrivateAddresses: c.AllowPrivateAddresses, RootCAs: c.RootCAs})
}

// newDefaultProvider builds the default Provider on store from
// opts.ProviderOptions, with what Wrap owns filled in.
func newDefaultProvider(store storage.Store, opts *Options, res []*served, consoleURL string, log *slog.Logger) (*provider.Provider, error) {
	po := opts.ProviderOptions
	for _, f := range []struct{ name, v string }{{"Issuer", po.Issuer}, {"Resource", po.Resource}, {"ApprovalPath", po.ApprovalPath}, {"Resources", strings.Join(po.Resources, " ")}} {
		if f.v != "" {
			return nil, fmt.Errorf("mcpauth: ProviderOptions.%s is set by Wrap (from Options.Issuer, Options.MCPPath and Options.Resources); leave it empty", f.name)
		}
	}
	po.Issuer, po.Resource, po.ApprovalPath = opts.Issuer, res[0].url, PathDevice
	for _, r := range res[1:] {
		po.Resources = append(po.Resources, r.url)
	}
	if po.ClientMetadata == nil && !opts.ClientIDMetadataDocuments.Disable {
		po.ClientMetadata = documentFetcher(opts).Client
	}
	if po.DeviceVerification == nil {
		po.DeviceVerification = func(code string) (string, string) {
			return consoleURL, consoleURL + "/approve?" + url.Values{"user_code": {code}}.Encode()
		}
	}
	if po.Logger == nil {
		po.Logger = log
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p, err := provider.New(ctx, store, po)
	if err != nil {
		return nil, fmt.Errorf("mcpauth: %w", err)
	}
	return p, nil
}

// newConsole builds the console for h's Approver, or returns nil (logged)
// when there is no way to sign in to it; it points the approval page's
// quick authorize and hint at it.
func newConsole(h *Handler, opts *Options, store storage.Store, issuerPath, consoleURL string, https bool,
	clientIP func(*http.Request) string, scopeText map[string]string, log *slog.Logger) *approval.Console {
	co := opts.Console
	if co.Accounts == nil && co.Identity == nil {
		as, ok := store.(storage.AccountStore)
		if !ok {
			log.Warn("mcpauth: no console: set Console.Accounts or Console.Identity (the Store, if any, is not a storage.AccountStore); approve codes with Handler.Approve")
			return nil
		}
		co.Accounts = approval.NewAccounts(as, approval.AccountsOptions{})
	}
	if co.Admin == nil {
		co.Admin, _ = h.provider.(oauth.Administrator)
	}
	if co.Logger == nil {
		co.Logger = log
	}
	if co.ProductName == "" {
		co.ProductName = opts.ApprovalPage.ProductName
	}
	if co.LogoURL == "" {
		co.LogoURL = opts.ApprovalPage.LogoURL
	}
	if co.ClientIP == nil {
		co.ClientIP = clientIP
	}
	if co.ScopeDescriptions == nil {
		co.ScopeDescriptions = scopeText
	}
	co.Secure = co.Secure || https
	c := approval.NewConsole(h.approver, issuerPath+PathConsole, co)
	if opts.ApprovalPage.Console == nil {
		opts.ApprovalPage.Console = c
	}
	if opts.ApprovalPage.ApproveHint == nil {
		opts.ApprovalPage.ApproveHint = func(code string) string {
			if code == "" {
				return "The owner of this server approves the code in the console: " + consoleURL
			}
			return "The owner of this server approves the code " + code + " in the console: " + consoleURL
		}
	}
	return c
}

// routes mounts every resource (its metadata and MCP endpoint), the
// console and the authorization server on h.mux.
func (h *Handler) routes(opts *Options, issuerPath string, log *slog.Logger) {
	for i, r := range h.served {
		// The root metadata document describes the whole host; serve it
		// only for Wrap's server, and only when this server owns the host
		// (its issuer has no path).
		h.routeResource(r, opts, i == 0 && issuerPath == "", len(h.served) > 1, log)
	}
	if h.console != nil {
		h.mux.Handle(issuerPath+PathConsole, h.console)
		h.mux.Handle(issuerPath+PathConsole+"/", h.console)
	}
	if opts.Upstream != nil {
		h.mux.Handle(issuerPath+PathUpstream+"/", opts.Upstream.Handler(issuerPath+PathUpstream))
	}
	h.mux.Handle("/", h.as)
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

// DefaultProvider returns the default Provider, for what only it offers
// (RotateKeys, Sweep), or nil when Options.Provider replaced it.
func (h *Handler) DefaultProvider() *provider.Provider { return h.def }

// Resource returns the canonical resource URL of Wrap's server's MCP
// endpoint.
func (h *Handler) Resource() string { return h.served[0].url }

// Resources returns the canonical resource URLs of every MCP endpoint,
// Wrap's server first, then Options.Resources in order.
func (h *Handler) Resources() []string {
	out := make([]string, len(h.served))
	for i, r := range h.served {
		out[i] = r.url
	}
	return out
}

// Approve approves the pending authorization request with the given user
// code on behalf of subject (the owner's account name); the waiting browser
// then continues to the client with an authorization code. It fails when
// the Provider is not an oauth.Approver. It runs no setup step: a device
// request whose resource has one is approved without its data (approve
// it on the console, where its step runs).
func (h *Handler) Approve(ctx context.Context, userCode, subject string) (*oauth.PendingRequest, error) {
	if h.approver == nil {
		return nil, errors.New("mcpauth: Approve needs a Provider that implements oauth.Approver")
	}
	return h.approver.Approve(ctx, userCode, subject, nil)
}
