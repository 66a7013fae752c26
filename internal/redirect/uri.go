package redirect

import (
	"net"
	"net/url"
	"slices"
	"strings"
	"unicode"

	oauth "github.com/mcp-oauth/oauth"
)

// IsLoopbackHost reports whether host (without port or brackets) names the
// loopback interface: "localhost", 127.0.0.0/8 or ::1 (RFC 8252 §7.3, §8.3).
func IsLoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// maxLen bounds a redirect URI.
const maxLen = 2048

// forbiddenSchemes can run code or read local files in a browser.
var forbiddenSchemes = map[string]bool{
	"javascript": true, "data": true, "vbscript": true, "file": true,
	"about": true, "blob": true, "filesystem": true, "view-source": true,
}

// Check validates one registered redirect URI (RFC 7591 §2,
// OAuth 2.1 §2.3.1, RFC 8252 §7): absolute, no fragment; https with a
// host; http only on a loopback host; or a private-use scheme (such as
// cursor:// or com.example.app:/cb), never one that runs code or reads files.
func Check(s string) *oauth.Error {
	bad := func(why string) *oauth.Error {
		return oauth.ErrInvalidRedirectURI.WithDescription("redirect URI " + why)
	}
	if s == "" || len(s) > maxLen {
		return bad("is empty or too long")
	}
	u, err := url.Parse(s)
	if err != nil || !u.IsAbs() {
		return bad("is not an absolute URI")
	}
	if u.Fragment != "" || strings.Contains(s, "#") {
		return bad("must not contain a fragment")
	}
	scheme := strings.ToLower(u.Scheme)
	switch {
	case forbiddenSchemes[scheme]:
		return bad("uses a forbidden scheme")
	case scheme == "https":
		if u.Host == "" {
			return bad("has no host")
		}
	case scheme == "http":
		if !IsLoopbackHost(u.Hostname()) {
			return bad("uses http on a non-loopback host; use https")
		}
	case scheme == "ws" || scheme == "wss" || scheme == "ftp":
		return bad("uses a scheme that is not a web or app callback")
	}
	if u.User != nil {
		return bad("must not contain userinfo")
	}
	return nil
}

// Match reports whether the requested redirect URI matches a
// registered one: exactly (simple string comparison, OAuth 2.1 §4.1.1), or,
// for loopback http URIs, equal in everything but the port, which native
// apps choose at run time (RFC 8252 §7.3).
func Match(registered []string, requested string) bool {
	if strings.Contains(requested, "#") {
		return false // OAuth 2.1 §2.3.1: a redirect URI has no fragment
	}
	if slices.Contains(registered, requested) {
		return true
	}
	ru, err := url.Parse(requested)
	if err != nil || ru.Scheme != "http" || !IsLoopbackHost(ru.Hostname()) || ru.User != nil {
		return false
	}
	for _, r := range registered {
		gu, err := url.Parse(r)
		if err != nil || gu.Scheme != "http" || !IsLoopbackHost(gu.Hostname()) {
			continue
		}
		if gu.Hostname() == ru.Hostname() && gu.EscapedPath() == ru.EscapedPath() && gu.RawQuery == ru.RawQuery {
			return true
		}
	}
	return false
}

// AllNative reports whether every URI is a loopback http URI or a
// private-use scheme: the client is a native app (RFC 8252).
func AllNative(uris []string) bool {
	for _, s := range uris {
		u, err := url.Parse(s)
		if err != nil {
			return false
		}
		if u.Scheme == "https" || (u.Scheme == "http" && !IsLoopbackHost(u.Hostname())) {
			return false
		}
	}
	return len(uris) > 0
}

// SameResource reports whether the requested resource (RFC 8707) names the
// canonical one, tolerating only a trailing slash difference (Claude sends
// the MCP URL with one).
func SameResource(canonical, requested string) bool {
	return requested == canonical || strings.TrimSuffix(requested, "/") == strings.TrimSuffix(canonical, "/")
}

// HasControl reports whether s contains Unicode control or format
// characters (categories Cc, Cf): terminal escapes, bidirectional overrides
// and other invisible characters that can disguise a name shown to people.
func HasControl(s string) bool {
	return strings.IndexFunc(s, func(r rune) bool { return unicode.Is(unicode.Cc, r) || unicode.Is(unicode.Cf, r) }) >= 0
}

// ForbiddenScheme reports whether a redirect URI scheme is refused because
// it can run code or read local files in a browser.
func ForbiddenScheme(scheme string) bool { return forbiddenSchemes[strings.ToLower(scheme)] }
