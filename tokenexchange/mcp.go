package tokenexchange

import (
	"net/http"
	"strings"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// SubjectFromRequest returns the caller's bearer access token of an MCP
// request, the usual SubjectToken: go-sdk's streamable HTTP transport
// passes the HTTP headers of each request on in req.GetExtra().Header,
// and the bearer middleware (mcpauth.RequireBearer, or go-sdk's
// auth.RequireBearerToken) has checked the token before the tool handler
// runs. ok is false for a request without an "Authorization: Bearer"
// header (a stdio session, a DPoP-bound token, a client request). req
// must not be a nil pointer.
func SubjectFromRequest(req mcp.Request) (token string, ok bool) {
	if req == nil {
		return "", false
	}
	extra := req.GetExtra()
	if extra == nil {
		return "", false
	}
	return SubjectFromHeader(extra.Header)
}

// SubjectFromHeader returns the token of an "Authorization: Bearer"
// header (RFC 6750 §2.1; the scheme is matched without case), for
// handlers that are not MCP tools.
func SubjectFromHeader(h http.Header) (token string, ok bool) {
	scheme, tok, found := strings.Cut(h.Get("Authorization"), " ")
	if !found || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	tok = strings.TrimLeft(tok, " ")
	if tok == "" || len(tok) > MaxTokenBytes || strings.ContainsFunc(tok, func(r rune) bool { return r <= ' ' || r >= 0x7f }) {
		return "", false
	}
	return tok, true
}
