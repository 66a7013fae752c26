package mcpauth

import (
	"net/http"

	oauth "github.com/mcp-oauth/oauth"
)

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
