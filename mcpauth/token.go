package mcpauth

import (
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"net/url"
	"slices"
	"strings"

	oauth "github.com/mcp-oauth/oauth"
	"github.com/mcp-oauth/oauth/internal/redirect"
	"github.com/mcp-oauth/oauth/internal/secret"
)

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
	case oauth.GrantTypeClientCredentials:
		resp, err = s.exchangeClientCredentials(r, client, form)
	case oauth.GrantTypeTokenExchange:
		resp, err = s.exchangeToken(r, client, form)
	case oauth.GrantTypeJWTBearer:
		resp, err = s.exchangeAssertion(r, client, form)
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
