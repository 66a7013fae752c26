package page

import (
	"net/http"
	"strings"
	"testing"
)

func TestCSRFToken(t *testing.T) {
	c1, c2 := "mcp_sess_one", "mcp_sess_two"
	if CSRFToken(c1) == CSRFToken(c2) || CSRFToken(c1) != CSRFToken(c1) || strings.Contains(CSRFToken(c1), c1) {
		t.Error("CSRF tokens must be per session, stable, and not reveal the cookie")
	}
	if !CheckCSRF(c1, CSRFToken(c1)) || CheckCSRF(c1, CSRFToken(c2)) || CheckCSRF(c1, "") || CheckCSRF("", CSRFToken("")) {
		t.Error("CheckCSRF accepts a wrong token or an empty cookie")
	}
}

func TestSetHeaders(t *testing.T) {
	h := http.Header{}
	SetHeaders(h)
	for k, want := range map[string]string{
		"X-Frame-Options": "DENY", "Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
	} {
		if got := h.Get(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	if !strings.Contains(CSP, "frame-ancestors 'none'") || strings.Contains(CSP, "script-src") {
		t.Errorf("CSP %q must forbid framing and allow no script", CSP)
	}
}
