package mcpauth

import (
	"encoding/json"
	"log/slog"
	"net/http"

	oauth "github.com/mcp-oauth/oauth"
)

// Size limits on untrusted input. Every body is read through
// http.MaxBytesReader; every parameter is checked against a bound.
const (
	// MaxFormBytes bounds /token, /revoke and /introspect bodies.
	MaxFormBytes = 16 << 10
	// MaxRegistrationBytes bounds /register bodies (RFC 7591 metadata).
	MaxRegistrationBytes = 32 << 10
	// MaxParamLen bounds any single OAuth parameter value.
	MaxParamLen = 2048
	// MaxStateLen bounds the state parameter, which clients echo back.
	MaxStateLen = 1024
	// maxRedirectURIs bounds the redirect_uris of one registration.
	maxRedirectURIs = 20
)

// noStore sets the headers RFC 6749 §5.1 requires on token responses.
func noStore(w http.ResponseWriter) {
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// writeError writes err as an RFC 6749 §5.2 JSON error. An error that is not
// an *oauth.Error becomes server_error without detail and is logged.
func writeError(w http.ResponseWriter, log *slog.Logger, err error) {
	e := oauth.AsError(err)
	if e.Code == oauth.ErrServerError.Code {
		log.Error("mcpauth: internal error", "err", err)
		e = oauth.ErrServerError.WithDescription("internal error")
	}
	if e.HTTPStatus() == http.StatusUnauthorized && w.Header().Get("WWW-Authenticate") == "" {
		// RFC 6749 §5.2: a 401 invalid_client names the scheme it expects.
		w.Header().Set("WWW-Authenticate", `Basic realm="oauth"`)
	}
	writeJSON(w, e.HTTPStatus(), e)
}
