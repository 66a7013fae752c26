// Package page holds what every HTML page of the authorization server
// shares: its security headers and its CSRF tokens. The approval page, the
// console (package approval) and the authorization endpoint's error pages
// (package mcpauth) use it.
package page

import (
	"crypto/sha256"
	"encoding/base64"
	"net/http"

	"github.com/mcp-oauth/oauth/internal/secret"
)

// CSP is the Content-Security-Policy of every page: no script, no framing,
// forms only to this origin. A page with a script adds its nonce
// (script-src) and lets the script call back (connect-src); a page with a
// logo adds its img-src.
const CSP = "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"

// SetHeaders sets the headers every page sends: no framing
// (X-Frame-Options, CSP frame-ancestors), the strict CSP, nosniff and no
// referrer.
func SetHeaders(h http.Header) {
	h.Set("X-Frame-Options", "DENY")
	h.Set("Content-Security-Policy", CSP)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
}

// CSRFToken returns the anti-CSRF token of the forms of a browser session:
// derived from its cookie, which a cross-site page cannot read, so the token
// needs no storage and is the same on every replica.
func CSRFToken(cookie string) string {
	sum := sha256.Sum256([]byte("mcpauth console csrf\x00" + cookie))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// CheckCSRF reports, in constant time, whether token is the CSRF token of
// cookie; never for an empty cookie.
func CheckCSRF(cookie, token string) bool {
	return cookie != "" && secret.Equal(CSRFToken(cookie), token)
}
