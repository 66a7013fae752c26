package mcpauth

import (
	"net/http"
	"strings"

	oauth "github.com/mcp-oauth/oauth"
)

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
