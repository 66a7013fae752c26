package proxy

import (
	"encoding/json"
	"errors"
	"html/template"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"strings"

	oauth "github.com/mcp-oauth/oauth"
	"github.com/mcp-oauth/oauth/internal/page"
)

// Size limits on untrusted input. Every body is read through
// http.MaxBytesReader; every parameter is checked against a bound.
const (
	// MaxFormBytes bounds the /authorize, /token, /revoke and /introspect
	// bodies, and the /authorize query.
	MaxFormBytes = 16 << 10
	// MaxRegistrationBytes bounds a /register body.
	MaxRegistrationBytes = 16 << 10
	// MaxParamLen bounds a parameter that is not a sealed value or a token.
	MaxParamLen = 2048
	// MaxStateLen bounds the client's state, which travels sealed in the
	// upstream's state.
	MaxStateLen = 1024
	// maxTokenLen bounds a token at /revoke and /introspect.
	maxTokenLen = maxSealedLen
	// maxRedirectURIs bounds the redirect URIs of one registration, and
	// maxRedirectBytes their total length: they travel in the client_id.
	maxRedirectURIs  = 8
	maxRedirectBytes = 2048
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

// writeError writes err as an RFC 6749 §5.2 JSON error. An error that is
// not an *oauth.Error becomes server_error without detail and is logged.
func writeError(w http.ResponseWriter, log *slog.Logger, err error) {
	e := oauth.AsError(err)
	if e.Code == oauth.ErrServerError.Code && e.Description == "" {
		log.Error("proxy: internal error", "err", err)
		e = oauth.ErrServerError.WithDescription("internal error")
	}
	if e.HTTPStatus() == http.StatusUnauthorized && w.Header().Get("WWW-Authenticate") == "" {
		// RFC 6749 §5.2: a 401 invalid_client names the scheme it expects.
		w.Header().Set("WWW-Authenticate", `Basic realm="oauth"`)
	}
	writeJSON(w, e.HTTPStatus(), e)
}

// readForm parses a POST body of application/x-www-form-urlencoded
// (RFC 6749 §3.2) of at most MaxFormBytes, and refuses a parameter that
// is repeated (RFC 6749 §3.2: "MUST NOT be included more than once") or
// longer than its bound. The query string is ignored: credentials in
// URLs leak to logs.
func readForm(w http.ResponseWriter, r *http.Request) (url.Values, *oauth.Error) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		return nil, oauth.ErrInvalidRequest.WithDescription("use POST").WithStatus(http.StatusMethodNotAllowed)
	}
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/x-www-form-urlencoded" {
		return nil, oauth.ErrInvalidRequest.WithDescription("Content-Type must be application/x-www-form-urlencoded")
	}
	r.Body = http.MaxBytesReader(w, r.Body, MaxFormBytes)
	if err := r.ParseForm(); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, oauth.ErrInvalidRequest.WithDescription("request body too large").WithStatus(http.StatusRequestEntityTooLarge)
		}
		return nil, oauth.ErrInvalidRequest.WithDescription("the body is not a form")
	}
	if e := checkParams(r.PostForm); e != nil {
		return nil, e
	}
	return r.PostForm, nil
}

// sealedParams may be longer than MaxParamLen: sealed values and tokens.
var sealedParams = map[string]int{
	"client_id": maxSealedLen, "code": maxSealedLen, "refresh_token": maxSealedLen, "token": maxTokenLen,
	"state": maxSealedLen, // the facade's own, at /callback; /authorize bounds the client's by MaxStateLen
}

// checkParams refuses repeated parameters and overlong values.
func checkParams(form url.Values) *oauth.Error {
	for k, vs := range form {
		if len(vs) > 1 {
			return oauth.ErrInvalidRequest.WithDescription("parameter " + trunc(k) + " is repeated")
		}
		max, ok := sealedParams[k]
		if !ok {
			max = MaxParamLen
		}
		if len(vs[0]) > max {
			return oauth.ErrInvalidRequest.WithDescription("parameter " + trunc(k) + " is too long")
		}
	}
	return nil
}

// trunc shortens a parameter name echoed in an error, keeping it printable.
func trunc(k string) string {
	if len(k) > 40 {
		k = k[:40]
	}
	if !validErrorText(k) {
		return "(unprintable)"
	}
	return k
}

// validErrorText reports whether s may be an error_description (RFC 6749
// §5.2: %x20-21 / %x23-5B / %x5D-7E).
func validErrorText(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c > 0x7e || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}

var errorPage = template.Must(template.New("error").Parse(`<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>Authorization failed</title></head>
<body><main><h1>Authorization failed</h1><p data-proxy-error>{{.}}</p>
<p>Return to the application and try to connect again.</p></main></body></html>`))

// showError answers a browser request that cannot be sent back to a
// client (its client or redirect URI is not trusted, OAuth 2.1
// §4.1.2.1): a page, never a redirect.
func (f *Facade) showError(w http.ResponseWriter, status int, msg string) {
	f.log.Info("proxy: authorization refused", "status", status, "reason", msg)
	noStore(w)
	page.SetHeaders(w.Header())
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_ = errorPage.Execute(w, msg)
}

// cors lets browser-based clients (the MCP Inspector, web apps) call an
// endpoint from any origin. It is safe because these endpoints take no
// ambient credentials (no cookies): clients send what they have
// explicitly.
func cors(methods string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Access-Control-Allow-Origin", "*")
		if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
			h.Set("Access-Control-Allow-Methods", methods+", OPTIONS")
			h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type, Accept, Mcp-Protocol-Version")
			h.Set("Access-Control-Max-Age", "86400")
			w.WriteHeader(http.StatusNoContent)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// validScopeToken reports whether s is a scope-token (RFC 6749 §3.3:
// 1*( %x21 / %x23-5B / %x5D-7E )).
func validScopeToken(s string) bool {
	if s == "" || len(s) > 256 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x21 || c > 0x7e || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}

// isUnreserved reports whether s is 43 to 128 characters of RFC 7636
// §4.1's unreserved set: a code_verifier (and, at 43, an S256
// code_challenge).
func isUnreserved(s string) bool {
	if len(s) < 43 || len(s) > 128 {
		return false
	}
	return strings.IndexFunc(s, func(c rune) bool {
		return !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~')
	}) < 0
}
