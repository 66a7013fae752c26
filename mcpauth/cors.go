package mcpauth

import "net/http"

// cors lets browser-based clients (the MCP Inspector, web apps) call an
// endpoint from any origin. It is safe because these endpoints take no
// ambient credentials (no cookies): clients authenticate with bearer tokens or
// client credentials they send explicitly. WWW-Authenticate is exposed so the
// browser client can read the RFC 9728 resource_metadata hint.
func cors(methods string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Access-Control-Allow-Origin", "*")
		h.Set("Access-Control-Expose-Headers", "WWW-Authenticate, Mcp-Session-Id, Mcp-Protocol-Version")
		if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
			h.Set("Access-Control-Allow-Methods", methods+", OPTIONS")
			allow := "Authorization, Content-Type, Accept, Mcp-Session-Id, Mcp-Protocol-Version, Last-Event-ID"
			// Also allow whatever else the browser asks for (custom headers
			// some clients add): nothing here reads cookies, so no header
			// can carry ambient authority.
			if req := r.Header.Get("Access-Control-Request-Headers"); req != "" && len(req) <= 1024 && validHeaderList(req) {
				allow += ", " + req
			}
			h.Set("Access-Control-Allow-Headers", allow)
			h.Add("Vary", "Access-Control-Request-Headers")
			h.Set("Access-Control-Max-Age", "86400")
			w.WriteHeader(http.StatusNoContent)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// validHeaderList reports whether s is a comma-separated list of header
// field names (RFC 9110 tokens), so it can be echoed safely.
func validHeaderList(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == ',' || c == ' ') {
			return false
		}
	}
	return true
}
