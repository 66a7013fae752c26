package mcpauth

import (
	"embed"
	"errors"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"strings"

	oauth "github.com/mcp-oauth/oauth"
	"github.com/mcp-oauth/oauth/internal/page"
	"github.com/mcp-oauth/oauth/internal/redirect"
)

//go:embed templates/*.html
var templateFS embed.FS

var errorPage = template.Must(template.ParseFS(templateFS, "templates/error.html"))

// serveAuthorize implements the authorization endpoint (OAuth 2.1 §4.1.1,
// RFC 7636 §4.3, RFC 8707 §2, RFC 9207). Until the client and its redirect
// URI are known to be valid, errors are shown to the user and never
// redirected (OAuth 2.1 §4.1.2.1); after that they are returned to the
// client with error, state and iss.
func (s *AuthorizationServer) serveAuthorize(w http.ResponseWriter, r *http.Request) {
	noStore(w)
	pageHeaders(w)
	if r.Method == http.MethodPost {
		r.Body = http.MaxBytesReader(w, r.Body, MaxFormBytes)
		if err := r.ParseForm(); err != nil {
			s.showError(w, http.StatusBadRequest, "The request could not be read.")
			return
		}
	} else if len(r.URL.RawQuery) > 16<<10 {
		s.showError(w, http.StatusRequestURITooLong, "The request is too long.")
		return
	}
	q := r.URL.Query()
	if r.Method == http.MethodPost {
		q = r.Form
	}
	// RFC 6749 §3.1: parameters must not be repeated. resource may be
	// (RFC 8707 §2), but a token here is bound to one resource (a client
	// asks again for another), so at most one is accepted.
	for _, k := range []string{"client_id", "redirect_uri", "response_type", "state", "scope", "code_challenge", "code_challenge_method", "resource"} {
		if len(q[k]) > 1 {
			s.showError(w, http.StatusBadRequest, "The parameter "+k+" was sent more than once.")
			return
		}
	}
	clientID := q.Get("client_id")
	if clientID == "" {
		s.showError(w, http.StatusBadRequest, "The request has no client_id.")
		return
	}
	client, err := s.p.GetClient(r.Context(), clientID)
	if err != nil {
		if e := oauth.AsError(err); e.Code != oauth.ErrServerError.Code {
			s.showError(w, http.StatusBadRequest, "This application is not registered with this server (unknown client_id). Ask it to connect again.")
			return
		}
		s.log.Error("mcpauth: authorize: get client", "err", err)
		s.showError(w, http.StatusInternalServerError, "Something went wrong on the server. Try again.")
		return
	}
	redirectURI := q.Get("redirect_uri")
	explicit := redirectURI != ""
	switch {
	case explicit && (len(redirectURI) > MaxParamLen || !redirect.Match(client.RedirectURIs, redirectURI)):
		s.showError(w, http.StatusBadRequest, "The redirect URI in this request is not one this application registered, so the server will not send you there.")
		return
	case !explicit && len(client.RedirectURIs) != 1:
		s.showError(w, http.StatusBadRequest, "The request has no redirect_uri, and the application registered more than one.")
		return
	case !explicit:
		redirectURI = client.RedirectURIs[0]
	}

	// From here on the redirect URI is trusted: errors go back to the client.
	state := q.Get("state")
	fail := func(e *oauth.Error) {
		if len(state) > MaxStateLen {
			state = ""
		}
		to, err := redirect.With(redirectURI, url.Values{
			"error": {e.Code}, "error_description": {e.Description}, "state": {state}, "iss": {s.opts.Issuer},
		})
		if err != nil {
			s.showError(w, http.StatusBadRequest, "The redirect URI is malformed.")
			return
		}
		http.Redirect(w, r, to, http.StatusFound)
	}
	if len(state) > MaxStateLen {
		fail(oauth.ErrInvalidRequest.WithDescription("state is too long"))
		return
	}
	if rt := q.Get("response_type"); rt != "code" {
		if rt == "" {
			fail(oauth.ErrInvalidRequest.WithDescription("response_type is required"))
		} else {
			fail(oauth.ErrUnsupportedResponseType.WithDescription("only response_type=code is supported"))
		}
		return
	}
	if client.GrantTypes != nil && !slices.Contains(client.GrantTypes, oauth.GrantTypeAuthorizationCode) {
		fail(oauth.ErrUnauthorizedClient.WithDescription("the client is not registered for the authorization_code grant"))
		return
	}
	challenge, method := q.Get("code_challenge"), q.Get("code_challenge_method")
	switch {
	case challenge == "":
		fail(oauth.ErrInvalidRequest.WithDescription("code_challenge is required (PKCE, S256)"))
		return
	case method != "S256":
		fail(oauth.ErrInvalidRequest.WithDescription("code_challenge_method must be S256"))
		return
	case !validS256Challenge(challenge):
		fail(oauth.ErrInvalidRequest.WithDescription("code_challenge must be the base64url SHA-256 of the verifier (43 characters)"))
		return
	}
	resource, scopes, e := s.requestedAccess(q.Get("resource"), q.Get("scope"))
	if e != nil {
		fail(e)
		return
	}
	if !s.allow(w, r, s.auths, s.authLimit) {
		fail(tooMany("authorization requests"))
		return
	}
	to, err := s.p.Authorize(r.Context(), client, &oauth.AuthorizationParams{
		ClientID: client.ID, RedirectURI: redirectURI, RedirectURIExplicit: explicit, State: state,
		Scopes: scopes, CodeChallenge: challenge, Resource: resource,
	})
	if err != nil {
		e := oauth.AsError(err)
		if e.Code == oauth.ErrServerError.Code {
			s.log.Error("mcpauth: authorize", "err", err)
			e = oauth.ErrServerError.WithDescription("internal error")
		}
		fail(e)
		return
	}
	http.Redirect(w, r, to, http.StatusFound)
}

// requestedAccess resolves the resource (RFC 8707 §2: one this server
// protects; without the parameter, ServerOptions.Resource) and the scope
// of an authorization request, at /authorize and /device_authorization
// alike, and returns the resource's canonical URL and the scopes.
func (s *AuthorizationServer) requestedAccess(resource, scope string) (string, []string, *oauth.Error) {
	r := &s.resources[0]
	if resource != "" {
		r = nil
		for i := range s.resources {
			if redirect.SameResource(s.resources[i].URL, resource) {
				r = &s.resources[i]
				break
			}
		}
		if r == nil {
			return "", nil, oauth.ErrInvalidTarget.WithDescription("unknown resource; this server protects " + s.resourceList())
		}
	}
	scopes, e := grantedScopes(r.Scopes, scope)
	return r.URL, scopes, e
}

// resourceList names the protected resources for an error description.
func (s *AuthorizationServer) resourceList() string {
	urls := make([]string, len(s.resources))
	for i, r := range s.resources {
		urls[i] = r.URL
	}
	return strings.Join(urls, ", ")
}

// allScopes returns the scopes of every resource, each once, in order:
// the metadata's scopes_supported.
func (s *AuthorizationServer) allScopes() []string {
	var out []string
	for _, r := range s.resources {
		for _, sc := range r.Scopes {
			if !slices.Contains(out, sc) {
				out = append(out, sc)
			}
		}
	}
	return out
}

// grantedScopes resolves a requested scope string (RFC 6749 §3.3) against
// a resource's scopes: known scopes are kept, unknown ones ignored, and an
// empty result means all of known.
func grantedScopes(known []string, requested string) ([]string, *oauth.Error) {
	if len(requested) > MaxParamLen {
		return nil, oauth.ErrInvalidScope.WithDescription("scope is too long")
	}
	var out []string
	for _, sc := range strings.Fields(requested) {
		if slices.Contains(known, sc) && !slices.Contains(out, sc) {
			out = append(out, sc)
		}
	}
	if len(out) == 0 {
		out = slices.Clone(known)
	}
	return out, nil
}

// validS256Challenge checks the shape of an S256 code challenge: base64url
// without padding of a 32-byte digest (RFC 7636 §4.2).
func validS256Challenge(c string) bool {
	if len(c) != 43 {
		return false
	}
	return isB64URL(c)
}

func isB64URL(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// pageHeaders protects HTML pages against framing and sniffing.
func pageHeaders(w http.ResponseWriter) { page.SetHeaders(w.Header()) }

func (s *AuthorizationServer) showError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	if err := errorPage.Execute(w, map[string]string{"Message": msg}); err != nil && !errors.Is(err, http.ErrHandlerTimeout) {
		s.log.Debug("mcpauth: render error page", "err", err)
	}
}
