package mcpauth

import (
	"net"
	"net/http"
	"net/netip"
	"strings"

	"github.com/mcp-oauth/oauth/internal/redirect"
)

// hostGuard is the DNS-rebinding protection that go-sdk applies to
// loopback listeners, made proxy-aware: a request that reached a loopback
// address must name a loopback host, the Issuer's host, or an allowed host.
func hostGuard(allowed map[string]bool, trustProxy bool, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if la, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok && isLoopbackAddr(la) {
			host := r.Host
			if trustProxy {
				if fh := r.Header.Get("X-Forwarded-Host"); fh != "" {
					host, _, _ = strings.Cut(fh, ",")
					host = strings.TrimSpace(host)
				}
			}
			if !hostAllowed(host, allowed) {
				http.Error(w, "mcpauth: requests for host "+quoteSafe(host)+" are not served here (DNS rebinding protection); set Options.Issuer to the public URL or add the host to Options.AllowedHosts", http.StatusForbidden)
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}

func isLoopbackAddr(a net.Addr) bool {
	if t, ok := a.(*net.TCPAddr); ok { // the usual case, without formatting and parsing
		return t.IP.IsLoopback()
	}
	host, _, err := net.SplitHostPort(a.String())
	if err != nil {
		host = a.String()
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func hostAllowed(hostport string, allowed map[string]bool) bool {
	hp := strings.ToLower(hostport)
	if allowed[hp] {
		return true
	}
	host := hp
	if h, _, err := net.SplitHostPort(hp); err == nil {
		host = h
	}
	host = strings.Trim(host, "[]")
	return redirect.IsLoopbackHost(host) || allowed[host]
}

// forwardedFor is the client's address that a trusted reverse proxy
// appended to X-Forwarded-For (its last entry), or "" without one. It is
// believed only from a peer on a loopback or private network, where a
// proxy sits: a client that reaches the server directly from the internet
// cannot choose its own address.
func forwardedFor(r *http.Request) string {
	if peer, err := netip.ParseAddrPort(r.RemoteAddr); err != nil || !(peer.Addr().IsLoopback() || peer.Addr().IsPrivate()) {
		return ""
	}
	h := r.Header.Values("X-Forwarded-For")
	if len(h) == 0 {
		return ""
	}
	last := h[len(h)-1]
	if i := strings.LastIndexByte(last, ','); i >= 0 {
		last = last[i+1:]
	}
	last = strings.TrimSpace(last)
	addr, err := netip.ParseAddr(last)
	if err != nil {
		// Some proxies write the client's port too: 192.0.2.1:5000, [2001:db8::1]:5000.
		ap, err := netip.ParseAddrPort(last)
		if err != nil {
			return ""
		}
		addr = ap.Addr()
	}
	return addr.Unmap().String()
}
