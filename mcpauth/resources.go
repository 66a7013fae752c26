package mcpauth

import (
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"slices"
	"strings"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/modelcontextprotocol/go-sdk/oauthex"

	oauth "github.com/mcp-oauth/oauth"
	"github.com/mcp-oauth/oauth/approval"
)

// Resource is an MCP server served by the same Handler as Wrap's server,
// behind the same authorization server, at a path of its own: a protected
// resource of its own (RFC 8707), with its own protected resource metadata
// (RFC 9728), scopes, tool scopes and setup step. A token issued for one
// resource is refused by every other with 401 invalid_token (its audience
// differs).
type Resource struct {
	// Server is the MCP server. Required.
	Server *mcp.Server
	// Path is the MCP endpoint's path, relative to the Issuer like
	// Options.MCPPath (for instance "/calendar/mcp"); its resource URL is
	// Issuer + Path. Required, and distinct from every other resource's.
	Path string
	// Scopes, RequiredScopes, ToolScopes, ScopeDescriptions, ResourceName
	// and Streamable mean what the Options fields of those names mean for
	// Wrap's server.
	Scopes            []string
	RequiredScopes    []string
	ToolScopes        map[string][]string
	ScopeDescriptions map[string]string
	ResourceName      string
	Streamable        *mcp.StreamableHTTPOptions
	// Step is the setup step of authorizations for this resource (see
	// approval.PageOptions.Step); nil means none. Wrap's server's step is
	// Options.ApprovalPage.Step.
	Step http.Handler
}

// served is a resource as Wrap serves it: the configuration, its
// canonical URL, where its endpoint and metadata are.
type served struct {
	Resource
	url     string // canonical resource URL: Issuer + Path
	mcpPath string // mux path: the issuer's path + Path
	prmURL  string // its RFC 9728 metadata URL (path-inserted)
}

// resourcesOf returns every resource Wrap serves, Wrap's server first,
// normalized and checked.
func resourcesOf(server *mcp.Server, opts *Options, issuerPath, origin string) ([]*served, error) {
	if opts.MCPPath == "" {
		opts.MCPPath = DefaultMCPPath
	}
	all := append([]Resource{{
		Server: server, Path: opts.MCPPath, Scopes: opts.Scopes, RequiredScopes: opts.RequiredScopes,
		ToolScopes: opts.ToolScopes, ScopeDescriptions: opts.ScopeDescriptions, ResourceName: opts.ResourceName,
		Streamable: opts.Streamable, Step: opts.ApprovalPage.Step,
	}}, opts.Resources...)
	out := make([]*served, 0, len(all))
	for i, r := range all {
		name := "MCPPath"
		if i > 0 {
			name = fmt.Sprintf("Resources[%d].Path", i-1)
			if r.Server == nil {
				return nil, fmt.Errorf("mcpauth: Resources[%d].Server is nil", i-1)
			}
		}
		if r.Path == "" || !plainPath(r.Path) {
			return nil, fmt.Errorf("mcpauth: %s %q must be a plain absolute path such as /mcp: segments of letters, digits, '-', '.', '_', '~', no trailing slash", name, r.Path)
		}
		for _, builtin := range []string{PathAuthorize, PathToken, PathRegister, PathRevoke, PathIntrospect, PathJWKS,
			PathDevice, PathDeviceAuthorization, PathConsole, PathUpstream, "/.well-known"} {
			if r.Path == builtin || strings.HasPrefix(r.Path, builtin+"/") {
				return nil, fmt.Errorf("mcpauth: %s %q is a path of the authorization server (%s)", name, r.Path, builtin)
			}
		}
		for _, o := range out {
			if o.Path == r.Path {
				return nil, fmt.Errorf("mcpauth: %s %q is the path of another resource", name, r.Path)
			}
		}
		if err := normalizeScopes(&r, name); err != nil {
			return nil, err
		}
		mcpPath := issuerPath + r.Path
		out = append(out, &served{Resource: r, url: strings.TrimSuffix(opts.Issuer, "/") + r.Path,
			mcpPath: mcpPath, prmURL: origin + wellKnownPRM + mcpPath})
	}
	first := out[0]
	opts.Scopes, opts.RequiredScopes, opts.ToolScopes, opts.ScopeDescriptions = first.Scopes, first.RequiredScopes, first.ToolScopes, first.ScopeDescriptions
	return out, nil
}

// normalizeScopes fills in the default scope, copies the caller's slices
// and maps, and checks that every scope named elsewhere is in Scopes.
func normalizeScopes(r *Resource, name string) error {
	if len(r.Scopes) == 0 {
		r.Scopes = []string{DefaultScope}
	}
	r.Scopes = slices.Clone(r.Scopes)
	r.RequiredScopes = slices.Clone(r.RequiredScopes)
	prefix := ""
	if name != "MCPPath" {
		prefix = strings.TrimSuffix(name, ".Path") + "."
	}
	toolScopes := make(map[string][]string, len(r.ToolScopes))
	for tool, scopes := range r.ToolScopes {
		for _, s := range scopes {
			if !slices.Contains(r.Scopes, s) {
				return fmt.Errorf("mcpauth: %sToolScopes[%q] names %q, which is not in %sScopes", prefix, tool, s, prefix)
			}
		}
		toolScopes[tool] = slices.Clone(scopes)
	}
	r.ToolScopes = toolScopes
	for sc := range r.ScopeDescriptions {
		if !slices.Contains(r.Scopes, sc) {
			return fmt.Errorf("mcpauth: %sScopeDescriptions names %q, which is not in %sScopes", prefix, sc, prefix)
		}
	}
	r.ScopeDescriptions = maps.Clone(r.ScopeDescriptions)
	return nil
}

// moreResources returns the resources after the first, as the
// authorization server's ServerOptions.MoreResources.
func moreResources(res []*served) []ProtectedResource {
	out := make([]ProtectedResource, 0, len(res)-1)
	for _, r := range res[1:] {
		out = append(out, ProtectedResource{URL: r.url, Scopes: r.Scopes})
	}
	return out
}

// stepOf returns the setup step of the approval pages: nil when no
// resource has one, the one step when only Wrap's server is served, else
// a step that runs the requested resource's (completing at once, with
// nothing, for a resource without one).
func stepOf(res []*served) http.Handler {
	steps := map[string]http.Handler{}
	for _, r := range res {
		if r.Step != nil {
			steps[r.url] = r.Step
		}
	}
	switch {
	case len(steps) == 0:
		return nil
	case len(res) == 1:
		return res[0].Step
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := approval.StepRequest(r)
		if p == nil {
			http.Error(w, "not a setup step", http.StatusNotFound)
			return
		}
		if s := steps[p.Resource]; s != nil {
			s.ServeHTTP(w, r)
			return
		}
		approval.Complete(r, nil)
	})
}

// routeResource mounts r's protected resource metadata and its MCP
// endpoint behind bearer tokens for exactly r.
func (h *Handler) routeResource(r *served, opts *Options, rootMetadata, checkAudience bool, log *slog.Logger) {
	// RFC 9728 §3.1: metadata at the path-inserted well-known URI of the
	// resource, and (for Wrap's server, when the issuer has no path) at
	// the root for clients of earlier MCP revisions. Both name the MCP
	// endpoint itself as the resource, byte for byte.
	prm := &oauthex.ProtectedResourceMetadata{
		Resource:               r.url,
		AuthorizationServers:   []string{opts.Issuer},
		ScopesSupported:        r.Scopes,
		BearerMethodsSupported: []string{"header"},
		ResourceName:           r.ResourceName,
	}
	prmHandler := cors("GET", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=3600")
		writeJSON(w, http.StatusOK, prm)
	}))
	prmPaths := []string{wellKnownPRM + r.mcpPath}
	if rootMetadata {
		prmPaths = append(prmPaths, wellKnownPRM)
	}
	for _, p := range prmPaths {
		h.mux.Handle("GET "+p, prmHandler)
		h.mux.Handle("OPTIONS "+p, prmHandler)
	}

	var sopts mcp.StreamableHTTPOptions
	if r.Streamable != nil {
		sopts = *r.Streamable
	}
	sopts.DisableLocalhostProtection = true
	server := r.Server
	mcpHandler := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return server }, &sopts)
	bopts := BearerOptions{
		ResourceMetadataURL: r.prmURL, Scopes: r.Scopes, RequiredScopes: r.RequiredScopes,
		ToolScopes: r.ToolScopes, MaxBodyBytes: sopts.MaxRequestBodyBytes, Logger: log,
	}
	if checkAudience {
		// The Provider accepts the audience of every resource; each
		// endpoint admits only its own.
		bopts.Resource = r.url
	}
	bopts.GrantData, _ = h.provider.(oauth.GrantDataProvider)
	bopts.Upstream = opts.Upstream
	h.mux.Handle(r.mcpPath, cors("GET, POST, DELETE", RequireBearer(h.provider.LoadAccessToken, bopts)(mcpHandler)))
}
