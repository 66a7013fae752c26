package mcpauth

import (
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"

	oauth "github.com/mcp-oauth/oauth"
	"github.com/mcp-oauth/oauth/internal/redirect"
	"github.com/mcp-oauth/oauth/internal/secret"
)

// secretChecker is the optional capability of checking a client secret.
// Providers that store secrets differently implement it; the default is a
// constant-time comparison of SHA-256 digests against Client.SecretHash.
type secretChecker interface {
	AuthenticateClient(c *oauth.Client, secret string) bool
}

// parseForm reads an application/x-www-form-urlencoded body of at most
// MaxFormBytes and rejects repeated or oversized parameters (RFC 6749 §3.2).
func parseForm(w http.ResponseWriter, r *http.Request) (url.Values, *oauth.Error) {
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(strings.ToLower(ct), "application/x-www-form-urlencoded") {
		return nil, oauth.ErrInvalidRequest.WithDescription("Content-Type must be application/x-www-form-urlencoded")
	}
	r.Body = http.MaxBytesReader(w, r.Body, MaxFormBytes)
	if err := r.ParseForm(); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, oauth.ErrInvalidRequest.WithDescription("request body too large").WithStatus(http.StatusRequestEntityTooLarge)
		}
		return nil, oauth.ErrInvalidRequest.WithDescription("malformed form body")
	}
	if r.URL.RawQuery != "" {
		// OAuth 2.1 §3.2: token endpoint parameters travel in the body;
		// credentials in a URL end up in logs.
		return nil, oauth.ErrInvalidRequest.WithDescription("parameters must be sent in the request body, not the URL")
	}
	for k, v := range r.PostForm {
		if len(v) > 1 {
			return nil, oauth.ErrInvalidRequest.WithDescription("parameter " + k + " is repeated")
		}
		if len(v[0]) > MaxParamLen && k != "token" {
			return nil, oauth.ErrInvalidRequest.WithDescription("parameter " + k + " is too long")
		}
	}
	return r.PostForm, nil
}

// authenticateClient identifies and authenticates the client of a token,
// revocation or introspection request (RFC 6749 §2.3.1, OAuth 2.1 §2.4):
// HTTP Basic (client_secret_basic), client_secret in the body
// (client_secret_post), or client_id alone for a public client ("none").
// Using two methods at once is invalid_request. Failures are invalid_client
// (401), which also makes clients such as Claude register again.
func (s *AuthorizationServer) authenticateClient(r *http.Request, form url.Values) (*oauth.Client, *oauth.Error) {
	id, sec, basic := r.BasicAuth()
	if basic {
		var err1, err2 error
		id, err1 = url.QueryUnescape(id)
		sec, err2 = url.QueryUnescape(sec)
		if err1 != nil || err2 != nil {
			return nil, oauth.ErrInvalidClient.WithDescription("malformed HTTP Basic credentials")
		}
		if form.Has("client_secret") {
			return nil, oauth.ErrInvalidRequest.WithDescription("use one client authentication method, not two")
		}
		if fid := form.Get("client_id"); fid != "" && fid != id {
			return nil, oauth.ErrInvalidRequest.WithDescription("client_id does not match the HTTP Basic credentials")
		}
	} else if r.Header.Get("Authorization") != "" {
		return nil, oauth.ErrInvalidClient.WithDescription("unsupported Authorization scheme; use HTTP Basic")
	} else {
		id, sec = form.Get("client_id"), form.Get("client_secret")
	}
	if id == "" {
		return nil, oauth.ErrInvalidClient.WithDescription("client authentication required")
	}
	client, err := s.p.GetClient(r.Context(), id)
	if err != nil {
		e := oauth.AsError(err)
		if e.Code == oauth.ErrServerError.Code {
			return nil, e
		}
		return nil, oauth.ErrInvalidClient.WithDescription("unknown client")
	}
	if client.Public() {
		if sec != "" {
			return nil, oauth.ErrInvalidClient.WithDescription("public client must not send a secret")
		}
		return client, nil
	}
	if sec == "" {
		return nil, oauth.ErrInvalidClient.WithDescription("client secret required")
	}
	var ok bool
	if sc, has := s.p.(secretChecker); has {
		ok = sc.AuthenticateClient(client, sec)
	} else {
		ok = client.SecretHash != "" && secret.Equal(secret.Hash(sec), client.SecretHash)
	}
	if !ok {
		return nil, oauth.ErrInvalidClient.WithDescription("client authentication failed")
	}
	return client, nil
}

// clientRequest does what /token, /revoke and /introspect share: the
// no-store headers, the bounded form body and client authentication. On
// failure it has written the RFC 6749 §5.2 error and returns ok false.
func (s *AuthorizationServer) clientRequest(w http.ResponseWriter, r *http.Request) (url.Values, *oauth.Client, bool) {
	noStore(w)
	form, e := parseForm(w, r)
	if e == nil {
		var client *oauth.Client
		if client, e = s.authenticateClient(r, form); e == nil {
			return form, client, true
		}
	}
	writeError(w, s.log, e)
	return nil, nil, false
}

// serveToken implements the token endpoint (OAuth 2.1 §3.2, §4.1.3, §4.3).
func (s *AuthorizationServer) serveToken(w http.ResponseWriter, r *http.Request) {
	form, client, ok := s.clientRequest(w, r)
	if !ok {
		return
	}
	var resp *oauth.TokenResponse
	var err error
	switch gt := form.Get("grant_type"); gt {
	case oauth.GrantTypeAuthorizationCode:
		resp, err = s.exchangeCode(r, client, form)
	case oauth.GrantTypeRefreshToken:
		resp, err = s.exchangeRefresh(r, client, form)
	case oauth.GrantTypeDeviceCode:
		resp, err = s.exchangeDeviceCode(r, client, form)
	case "":
		err = oauth.ErrInvalidRequest.WithDescription("grant_type is required")
	default:
		err = oauth.ErrUnsupportedGrantType.WithDescription("supported grant types: " + strings.Join(s.meta.GrantTypesSupported, ", "))
	}
	if err != nil {
		writeError(w, s.log, err)
		return
	}
	writeJSON(w, http.StatusOK, resp)
}

func (s *AuthorizationServer) exchangeCode(r *http.Request, client *oauth.Client, form url.Values) (*oauth.TokenResponse, error) {
	if client.GrantTypes != nil && !slices.Contains(client.GrantTypes, oauth.GrantTypeAuthorizationCode) {
		return nil, oauth.ErrUnauthorizedClient.WithDescription("client is not registered for authorization_code")
	}
	codeStr, verifier := form.Get("code"), form.Get("code_verifier")
	if codeStr == "" {
		return nil, oauth.ErrInvalidRequest.WithDescription("code is required")
	}
	if verifier == "" {
		return nil, oauth.ErrInvalidRequest.WithDescription("code_verifier is required (PKCE)")
	}
	if !validVerifier(verifier) {
		return nil, oauth.ErrInvalidRequest.WithDescription("code_verifier must be 43 to 128 unreserved characters")
	}
	code, err := s.p.LoadAuthorizationCode(r.Context(), codeStr)
	if err != nil {
		return nil, err
	}
	// Everything below is checked before the code is consumed, so a request
	// that fails here does not burn a code that its rightful client holds.
	if code.ClientID != client.ID {
		return nil, oauth.ErrInvalidGrant.WithDescription("code was issued to another client")
	}
	ru := form.Get("redirect_uri")
	if (code.RedirectURIExplicit || ru != "") && ru != code.RedirectURI {
		return nil, oauth.ErrInvalidGrant.WithDescription("redirect_uri does not match the authorization request")
	}
	sum := sha256.Sum256([]byte(verifier))
	if !secret.Equal(base64.RawURLEncoding.EncodeToString(sum[:]), code.CodeChallenge) {
		return nil, oauth.ErrInvalidGrant.WithDescription("code_verifier does not match code_challenge")
	}
	if res := form.Get("resource"); res != "" && !redirect.SameResource(code.Resource, res) {
		return nil, oauth.ErrInvalidTarget.WithDescription("resource does not match the authorization request")
	}
	return s.p.ExchangeAuthorizationCode(r.Context(), client, code)
}

// exchangeDeviceCode answers a device's poll (RFC 8628 §3.4, §3.5).
func (s *AuthorizationServer) exchangeDeviceCode(r *http.Request, client *oauth.Client, form url.Values) (*oauth.TokenResponse, error) {
	dp, ok := s.p.(oauth.DeviceProvider)
	if !ok {
		return nil, oauth.ErrUnsupportedGrantType.WithDescription("this server does not support the device_code grant")
	}
	if !slices.Contains(client.GrantTypes, oauth.GrantTypeDeviceCode) {
		return nil, oauth.ErrUnauthorizedClient.WithDescription("client is not registered for the device_code grant")
	}
	dc := form.Get("device_code")
	if dc == "" {
		return nil, oauth.ErrInvalidRequest.WithDescription("device_code is required")
	}
	return dp.ExchangeDeviceCode(r.Context(), client, dc)
}

// serveDeviceAuthorization implements the device authorization endpoint
// (RFC 8628 §3.1, §3.2) for clients registered for the device_code grant.
// scope works as at /authorize; resource (RFC 8707), if given, must name
// the protected MCP endpoint.
func (s *AuthorizationServer) serveDeviceAuthorization(w http.ResponseWriter, r *http.Request, dp oauth.DeviceProvider) {
	form, client, ok := s.clientRequest(w, r)
	if !ok {
		return
	}
	fail := func(e *oauth.Error) { writeError(w, s.log, e) }
	if !slices.Contains(client.GrantTypes, oauth.GrantTypeDeviceCode) {
		fail(oauth.ErrUnauthorizedClient.WithDescription("client is not registered for the device_code grant"))
		return
	}
	scopes, e := s.requestedAccess(form.Get("resource"), form.Get("scope"))
	if e != nil {
		fail(e)
		return
	}
	if !s.allow(w, r, s.auths, s.authLimit) {
		fail(tooMany("authorization requests"))
		return
	}
	da, err := dp.AuthorizeDevice(r.Context(), client, &oauth.AuthorizationParams{ClientID: client.ID, Scopes: scopes, Resource: s.resource})
	if err != nil {
		writeError(w, s.log, err)
		return
	}
	writeJSON(w, http.StatusOK, da)
}

func (s *AuthorizationServer) exchangeRefresh(r *http.Request, client *oauth.Client, form url.Values) (*oauth.TokenResponse, error) {
	tok := form.Get("refresh_token")
	if tok == "" {
		return nil, oauth.ErrInvalidRequest.WithDescription("refresh_token is required")
	}
	rt, err := s.p.LoadRefreshToken(r.Context(), tok)
	if err != nil {
		return nil, err
	}
	if rt.ClientID != client.ID {
		return nil, oauth.ErrInvalidGrant.WithDescription("refresh token was issued to another client")
	}
	scopes := strings.Fields(form.Get("scope"))
	for _, sc := range scopes {
		if !slices.Contains(rt.Scopes, sc) {
			return nil, oauth.ErrInvalidScope.WithDescription("requested scope exceeds the original grant")
		}
	}
	if res := form.Get("resource"); res != "" && !redirect.SameResource(rt.Resource, res) {
		return nil, oauth.ErrInvalidTarget.WithDescription("resource does not match the grant")
	}
	return s.p.ExchangeRefreshToken(r.Context(), client, rt, scopes)
}

// validVerifier checks RFC 7636 §4.1: 43 to 128 characters of
// [A-Z] / [a-z] / [0-9] / "-" / "." / "_" / "~".
func validVerifier(v string) bool {
	if len(v) < 43 || len(v) > 128 {
		return false
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~') {
			return false
		}
	}
	return true
}

// serveRevoke implements token revocation, RFC 7009 §2: the client is
// authenticated, and the answer is 200 whether or not the token existed.
func (s *AuthorizationServer) serveRevoke(w http.ResponseWriter, r *http.Request) {
	form, client, ok := s.clientRequest(w, r)
	if !ok {
		return
	}
	tok := form.Get("token")
	if tok == "" {
		writeError(w, s.log, oauth.ErrInvalidRequest.WithDescription("token is required"))
		return
	}
	if len(tok) <= 8192 {
		if err := s.p.RevokeToken(r.Context(), client, tok, form.Get("token_type_hint")); err != nil {
			writeError(w, s.log, err)
			return
		}
	}
	w.WriteHeader(http.StatusOK)
}

// introspection is the RFC 7662 §2.2 response.
type introspection struct {
	Active    bool   `json:"active"`
	Scope     string `json:"scope,omitempty"`
	ClientID  string `json:"client_id,omitempty"`
	Sub       string `json:"sub,omitempty"`
	Aud       string `json:"aud,omitempty"`
	Iss       string `json:"iss,omitempty"`
	Exp       int64  `json:"exp,omitempty"`
	Iat       int64  `json:"iat,omitempty"`
	Jti       string `json:"jti,omitempty"`
	TokenType string `json:"token_type,omitempty"`
	GrantID   string `json:"gid,omitempty"`
}

// serveIntrospect implements token introspection, RFC 7662 §2, for resource
// servers that run apart. Callers authenticate as confidential clients and
// may introspect access tokens; anything else, refresh tokens included, is
// {"active":false}. Refresh tokens are not described because loading one has
// side effects (a spent one revokes its grant) that a third party must not
// be able to trigger, and resource servers never need them.
func (s *AuthorizationServer) serveIntrospect(w http.ResponseWriter, r *http.Request) {
	_, client, ok := s.clientRequest(w, r)
	if !ok {
		return
	}
	if client.Public() {
		writeError(w, s.log, oauth.ErrInvalidClient.WithDescription("introspection requires a confidential client"))
		return
	}
	tok := r.PostForm.Get("token")
	if tok == "" {
		writeError(w, s.log, oauth.ErrInvalidRequest.WithDescription("token is required"))
		return
	}
	out := introspection{}
	if at, err := s.p.LoadAccessToken(r.Context(), tok); err == nil {
		out = introspection{Active: true, Scope: strings.Join(at.Scopes, " "), ClientID: at.ClientID, Sub: at.Subject,
			Aud: at.Resource, Iss: s.opts.Issuer, Exp: at.ExpiresAt.Unix(), Iat: at.IssuedAt.Unix(), Jti: at.ID,
			TokenType: "Bearer", GrantID: at.GrantID}
	}
	writeJSON(w, http.StatusOK, out)
}
