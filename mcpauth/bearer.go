package mcpauth

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/modelcontextprotocol/go-sdk/auth"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	oauth "github.com/mcp-oauth/oauth"
	"github.com/mcp-oauth/oauth/upstream"
)

// TokenVerifier verifies a bearer access token and returns what it grants,
// or an error wrapping oauth.ErrInvalidToken. The AccessToken's ExpiresAt
// is required (RFC 9068 §2.2 "exp"): a token without one is refused as
// invalid_token. (*provider.Provider).LoadAccessToken and
// (*RemoteVerifier).Verify have this shape.
type TokenVerifier func(ctx context.Context, token string) (*oauth.AccessToken, error)

// BearerOptions configure [RequireBearer].
type BearerOptions struct {
	// ResourceMetadataURL is the RFC 9728 protected resource metadata URL
	// named in every challenge (resource_metadata). Required.
	ResourceMetadataURL string
	// Scopes are the scopes a client should request, named in the scope
	// parameter of the 401 challenge (MCP authorization, scope selection).
	Scopes []string
	// RequiredScopes must all be granted for any request; empty means a
	// valid token suffices.
	RequiredScopes []string
	// ToolScopes maps a tool name to the scopes a tools/call of it needs in
	// addition to RequiredScopes. A call lacking one is answered 403
	// insufficient_scope with every scope the call needs.
	ToolScopes map[string][]string
	// RequiredRoles must all be held (AccessToken.Roles, which a verifier
	// of an external issuer's tokens maps from its claims and scopes; see
	// extauth.RoleOptions) for any request; empty means none.
	RequiredRoles []string
	// ToolRoles maps a tool name to the roles a tools/call of it needs in
	// addition to RequiredRoles. A call lacking one is answered 403
	// insufficient_scope, its description naming the roles missing.
	ToolRoles map[string][]string
	// MaxBodyBytes bounds the request body read to find the tool name;
	// zero means mcp.DefaultMaxRequestBodyBytes.
	MaxBodyBytes int64
	// Resource, when set, is the canonical URL of the protected resource:
	// a token whose audience (AccessToken.Resource) is another is refused
	// with 401 invalid_token, as RFC 9068 §4 requires. Set it when the
	// verifier accepts several audiences (an authorization server with
	// several resources); Wrap does.
	Resource string
	// GrantData, when set, is where tools behind the middleware read and
	// write the data kept with the caller's grant ([GrantData],
	// [SetGrantData]). Wrap sets it to a Provider that is an
	// oauth.GrantDataProvider.
	GrantData oauth.GrantDataProvider
	// Upstream, when set with GrantData, is the upstream identity
	// provider whose tokens UpstreamToken returns. Wrap sets it from
	// Options.Upstream.
	Upstream *upstream.IdP
	// Logger receives verification failures caused by the server; nil
	// discards them.
	Logger *slog.Logger
}

type tokenInfoKey struct{}

// Extra keys of auth.TokenInfo.Extra set by RequireBearer.
const (
	ExtraClientID = "client_id"
	ExtraGrantID  = "grant_id"
	ExtraTokenID  = "jti"
	ExtraResource = "resource"
	// ExtraClaims holds the token's custom claims, a map[string]any
	// (absent when it has none).
	ExtraClaims = "claims"
	// ExtraRoles holds the token's roles, a []string (absent when it has
	// none).
	ExtraRoles = "roles"
	// ExtraAct holds the token's RFC 8693 §4.1 act claim, a
	// map[string]any (absent when it has none).
	ExtraAct = "act"
	// extraGrantData holds the *grantAccess of GrantData.
	extraGrantData = "mcpauth.grant_data"
)

// RequireBearer returns middleware that admits a request only with a valid
// bearer access token (RFC 6750 §2.1), answering with the complete RFC 6750
// §3 challenge otherwise:
//
//   - no credentials: 401, WWW-Authenticate: Bearer resource_metadata="…", scope="…" (no error);
//   - a malformed Authorization header: 400 invalid_request;
//   - a bad, expired, revoked or wrong-audience token: 401 error="invalid_token";
//   - a token lacking a needed scope: 403 error="insufficient_scope", scope="<all needed>";
//   - a token lacking a needed role: 403 error="insufficient_scope" naming the roles missing.
//
// The token is verified once; the result then goes through go-sdk's
// auth.RequireBearerToken, so auth.TokenInfo reaches tool handlers
// (req.Extra.TokenInfo) and go-sdk's session-to-user binding keeps working.
func RequireBearer(verify TokenVerifier, opts BearerOptions) func(http.Handler) http.Handler {
	if opts.MaxBodyBytes <= 0 {
		opts.MaxBodyBytes = mcp.DefaultMaxRequestBodyBytes
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	fromContext := func(ctx context.Context, _ string, r *http.Request) (*auth.TokenInfo, error) {
		if ti, ok := r.Context().Value(tokenInfoKey{}).(*auth.TokenInfo); ok {
			return ti, nil
		}
		return nil, auth.ErrInvalidToken
	}
	sdk := auth.RequireBearerToken(fromContext, &auth.RequireBearerTokenOptions{ResourceMetadataURL: opts.ResourceMetadataURL})
	return func(next http.Handler) http.Handler {
		inner := sdk(next)
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			tok, status := extractBearer(r)
			switch status {
			case http.StatusUnauthorized:
				challenge(w, opts, http.StatusUnauthorized, nil, opts.Scopes)
				return
			case http.StatusBadRequest:
				challenge(w, opts, http.StatusBadRequest, oauth.ErrInvalidRequest.WithDescription("malformed Authorization header"), nil)
				return
			}
			at, err := verify(r.Context(), tok)
			if err != nil {
				e := oauth.AsError(err)
				if e.Code == oauth.ErrServerError.Code {
					log.Error("mcpauth: verify token", "err", err)
					challenge(w, opts, http.StatusInternalServerError, oauth.ErrServerError.WithDescription("internal error"), nil)
					return
				}
				challenge(w, opts, http.StatusUnauthorized, oauth.ErrInvalidToken.WithDescription(e.Description), nil)
				return
			}
			if opts.Resource != "" && at.Resource != opts.Resource {
				// A token of this issuer for another of its resources
				// (RFC 8707 §2, RFC 9068 §4: the audience must match).
				challenge(w, opts, http.StatusUnauthorized, oauth.ErrInvalidToken.WithDescription("the access token is for another resource"), nil)
				return
			}
			if at.ExpiresAt.IsZero() {
				// go-sdk refuses such a token with a bare 401; answer with
				// the full challenge, and tell the verifier's author why.
				log.Error("mcpauth: the TokenVerifier returned an access token without ExpiresAt; it is refused")
				challenge(w, opts, http.StatusUnauthorized, oauth.ErrInvalidToken.WithDescription("the token has no expiry"), nil)
				return
			}
			needed, neededRoles := opts.RequiredScopes, opts.RequiredRoles
			if (len(opts.ToolScopes) > 0 || len(opts.ToolRoles) > 0) && r.Method == http.MethodPost {
				tools, err := peekToolCalls(r, opts.MaxBodyBytes)
				switch {
				case errors.Is(err, errBodyTooLarge):
					http.Error(w, "request body too large", http.StatusRequestEntityTooLarge)
					return
				case err != nil:
					writeJSON(w, http.StatusBadRequest, oauth.ErrInvalidRequest.WithDescription(err.Error()))
					return
				}
				for _, t := range tools {
					needed = union(needed, opts.ToolScopes[t])
					neededRoles = union(neededRoles, opts.ToolRoles[t])
				}
			}
			for _, s := range needed {
				if !slices.Contains(at.Scopes, s) {
					challenge(w, opts, http.StatusForbidden, oauth.ErrInsufficientScope.WithDescription("the token lacks a scope this request needs"), needed)
					return
				}
			}
			if missing := lacking(at.Roles, neededRoles); len(missing) > 0 {
				// Roles are not scopes: no scope to ask for names them, so
				// the challenge carries none, only what is missing.
				challenge(w, opts, http.StatusForbidden, oauth.ErrInsufficientScope.WithDescription("the caller lacks a role this request needs: "+strings.Join(missing, " ")), nil)
				return
			}
			ti := &auth.TokenInfo{
				UserID:     at.Subject,
				Scopes:     at.Scopes,
				Expiration: at.ExpiresAt,
				Extra: map[string]any{
					ExtraClientID: at.ClientID, ExtraGrantID: at.GrantID, ExtraTokenID: at.ID, ExtraResource: at.Resource,
				},
			}
			if at.Claims != nil {
				ti.Extra[ExtraClaims] = at.Claims
			}
			if len(at.Roles) > 0 {
				ti.Extra[ExtraRoles] = slices.Clone(at.Roles)
			}
			if at.Act != nil {
				ti.Extra[ExtraAct] = at.Act
			}
			if opts.GrantData != nil {
				ti.Extra[extraGrantData] = &grantAccess{opts.GrantData, at.GrantID, opts.Upstream}
			}
			inner.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), tokenInfoKey{}, ti)))
		})
	}
}

// extractBearer returns the token of an "Authorization: Bearer" header. The
// status is 401 when no bearer credentials were sent and 400 when the header
// is malformed or repeated. Tokens in the URL query are not accepted
// (OAuth 2.1 §5.2.1).
func extractBearer(r *http.Request) (string, int) {
	hs := r.Header.Values("Authorization")
	if len(hs) == 0 {
		return "", http.StatusUnauthorized
	}
	if len(hs) > 1 {
		return "", http.StatusBadRequest
	}
	scheme, tok, ok := strings.Cut(hs[0], " ")
	if !strings.EqualFold(scheme, "Bearer") {
		return "", http.StatusUnauthorized
	}
	tok = strings.TrimLeft(tok, " ")
	if !ok || tok == "" || len(tok) > 8192 || strings.ContainsAny(tok, " \t,") {
		return "", http.StatusBadRequest
	}
	return tok, 0
}

// bearerToken returns the bearer token of r, if one is well formed.
func bearerToken(r *http.Request) (string, bool) {
	tok, st := extractBearer(r)
	return tok, st == 0
}

// challenge writes an RFC 6750 §3 response with its WWW-Authenticate header.
func challenge(w http.ResponseWriter, opts BearerOptions, status int, e *oauth.Error, scopes []string) {
	params := []string{`resource_metadata="` + quoteSafe(opts.ResourceMetadataURL) + `"`}
	if len(scopes) > 0 {
		params = append(params, `scope="`+quoteSafe(strings.Join(scopes, " "))+`"`)
	}
	if e != nil && status != http.StatusInternalServerError {
		params = append(params, `error="`+e.Code+`"`)
		if e.Description != "" {
			params = append(params, `error_description="`+quoteSafe(e.Description)+`"`)
		}
	}
	w.Header().Set("WWW-Authenticate", "Bearer "+strings.Join(params, ", "))
	if e == nil {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(status)
		io.WriteString(w, "authorization required\n")
		return
	}
	writeJSON(w, status, e)
}

// quoteSafe drops the characters that cannot appear in an RFC 7230
// quoted-string without escaping, and control characters.
func quoteSafe(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '"' || r == '\\' || r < 0x20 || r == 0x7f {
			return -1
		}
		return r
	}, s)
}

// lacking returns the elements of needed that have does not contain.
func lacking(have, needed []string) []string {
	var out []string
	for _, n := range needed {
		if !slices.Contains(have, n) {
			out = append(out, n)
		}
	}
	return out
}

func union(a, b []string) []string {
	out := slices.Clone(a)
	for _, s := range b {
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

// peekToolCalls reads the JSON-RPC body (bounded), restores it for the next
// handler, and returns the names of the tools it calls. It fails closed:
// a body that is not JSON-RPC, or that names "method", "params" or "name"
// twice or in another letter case, is an error. Go's encoding/json matches
// keys case-insensitively while go-sdk's decoder does not, so a lenient
// parse here would let {"name":"secret","NAME":"echo"} pass the scope check
// as "echo" and run "secret".
func peekToolCalls(r *http.Request, max int64) ([]string, error) {
	if r.Body == nil {
		return nil, nil
	}
	buf, err := io.ReadAll(io.LimitReader(r.Body, max+1))
	r.Body.Close()
	if err != nil {
		return nil, err
	}
	if int64(len(buf)) > max {
		return nil, errBodyTooLarge
	}
	r.Body = io.NopCloser(bytes.NewReader(buf))
	trimmed := bytes.TrimLeft(buf, " \t\r\n")
	if len(trimmed) == 0 {
		return nil, errAmbiguousBody
	}
	var msgs []json.RawMessage
	if trimmed[0] == '[' {
		if err := json.Unmarshal(buf, &msgs); err != nil {
			return nil, errAmbiguousBody
		}
	} else {
		msgs = []json.RawMessage{buf}
	}
	var names []string
	for _, m := range msgs {
		fields, err := strictObject(m, "method", "params")
		if err != nil {
			return nil, err
		}
		var method string
		if raw, ok := fields["method"]; ok && json.Unmarshal(raw, &method) != nil {
			return nil, errAmbiguousBody
		}
		if method != "tools/call" {
			continue
		}
		params, err := strictObject(fields["params"], "name")
		if err != nil {
			return nil, err
		}
		var name string
		if json.Unmarshal(params["name"], &name) != nil {
			return nil, errAmbiguousBody
		}
		names = append(names, name)
	}
	return names, nil
}

var (
	errBodyTooLarge  = errors.New("request body too large")
	errAmbiguousBody = errors.New("request body is not an unambiguous JSON-RPC message")
)

// strictObject decodes a JSON object and returns the values of the wanted
// keys, failing if one appears twice or in a different letter case.
func strictObject(raw json.RawMessage, wanted ...string) (map[string]json.RawMessage, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, errAmbiguousBody
	}
	out := make(map[string]json.RawMessage, len(wanted))
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, errAmbiguousBody
		}
		key, _ := tok.(string)
		var val json.RawMessage
		if err := dec.Decode(&val); err != nil {
			return nil, errAmbiguousBody
		}
		for _, w := range wanted {
			if !strings.EqualFold(key, w) {
				continue
			}
			if _, dup := out[w]; dup || key != w {
				return nil, errAmbiguousBody
			}
			out[w] = val
		}
	}
	if tok, err := dec.Token(); err != nil || tok != json.Delim('}') {
		return nil, errAmbiguousBody
	}
	return out, nil
}

// Caller is who is calling an MCP tool: the subject of the access token and
// the client and grant it was issued to.
type Caller struct {
	Subject   string
	ClientID  string
	GrantID   string
	TokenID   string
	Scopes    []string
	ExpiresAt time.Time
	// Resource is the audience of the token: the MCP server it is for
	// (RFC 8707).
	Resource string
	// Claims are the token's custom claims: what the grant's setup step
	// returned and what provider.Options.TokenClaims added (numbers are
	// float64, as encoding/json decodes them); nil when it has none.
	Claims map[string]any
	// Roles are the caller's roles, as the verifier mapped them from the
	// token (see BearerOptions.RequiredRoles); nil when it has none.
	Roles []string
	// Act is the token's RFC 8693 §4.1 act claim when it was obtained by
	// token exchange: Act["sub"] is the client that exchanged it (ClientID
	// too), who acts for Subject; nil otherwise.
	Act map[string]any
}

// CallerOf returns the authenticated caller of an MCP request handled
// behind RequireBearer (or Wrap): one line in a tool handler,
//
//	caller, ok := mcpauth.CallerOf(req)
func CallerOf(req mcp.Request) (*Caller, bool) {
	if req == nil || req.GetExtra() == nil {
		return nil, false
	}
	return CallerFromTokenInfo(req.GetExtra().TokenInfo)
}

// CallerFromRequest returns the authenticated caller of a plain HTTP
// request handled behind RequireBearer, for handlers that are not MCP
// tools.
func CallerFromRequest(r *http.Request) (*Caller, bool) {
	return CallerFromTokenInfo(auth.TokenInfoFromContext(r.Context()))
}

// CallerFromTokenInfo converts the auth.TokenInfo set by RequireBearer.
func CallerFromTokenInfo(ti *auth.TokenInfo) (*Caller, bool) {
	if ti == nil || ti.UserID == "" {
		return nil, false
	}
	str := func(k string) string { s, _ := ti.Extra[k].(string); return s }
	claims, _ := ti.Extra[ExtraClaims].(map[string]any)
	roles, _ := ti.Extra[ExtraRoles].([]string)
	act, _ := ti.Extra[ExtraAct].(map[string]any)
	return &Caller{Subject: ti.UserID, ClientID: str(ExtraClientID), GrantID: str(ExtraGrantID), TokenID: str(ExtraTokenID),
		Scopes: slices.Clone(ti.Scopes), ExpiresAt: ti.Expiration, Claims: claims, Resource: str(ExtraResource),
		Roles: slices.Clone(roles), Act: act}, true
}
