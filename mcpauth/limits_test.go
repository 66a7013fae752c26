package mcpauth

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

// TestRateLimits: behind a trusted proxy, each client network may register
// so many clients and start so many authorization requests a minute; the
// next gets temporarily_unavailable (429 with Retry-After, or at /authorize
// a redirect of that error to the client); other networks, and programs on
// this machine, are not held back.
func TestRateLimits(t *testing.T) {
	f := newFixture(t, func(o *Options) {
		o.TrustProxyHeaders = true
		o.Limits = RateLimits{Registrations: 3, Authorizations: 2}
	})
	from := func(ip string) map[string]string { return map[string]string{"X-Forwarded-For": ip} }
	reg := `{"redirect_uris":["http://127.0.0.1:3000/cb"],"token_endpoint_auth_method":"none","grant_types":["authorization_code","refresh_token","urn:ietf:params:oauth:grant-type:device_code"]}`

	t.Run("registrations", func(t *testing.T) {
		for i := range 3 {
			if r := f.postJSON("/register", reg, from("198.51.100.1")); r.status != 201 {
				t.Fatalf("registration %d: %d %s", i+1, r.status, r.body)
			}
		}
		r := f.postJSON("/register", reg, from("198.51.100.1"))
		if r.status != http.StatusTooManyRequests || r.str("error") != "temporarily_unavailable" || r.header.Get("Retry-After") != "60" {
			t.Errorf("fourth registration in a minute: %d %s (Retry-After %q)", r.status, r.body, r.header.Get("Retry-After"))
		}
		if r := f.postJSON("/register", reg, from("2001:db8:1:2::1")); r.status != 201 {
			t.Errorf("another network: %d", r.status)
		}
		for range 5 {
			if r := f.postJSON("/register", reg, nil); r.status != 201 {
				t.Fatalf("a program on this machine: %d", r.status)
			}
		}
	})

	t.Run("authorizations", func(t *testing.T) {
		c := f.register(reg)
		get := func(ip string) *response {
			req, _ := http.NewRequest("GET", f.base+"/authorize?"+authParams(c).Encode(), nil)
			req.Header.Set("X-Forwarded-For", ip)
			return f.do(req)
		}
		for i := range 2 {
			if r := get("203.0.113.7"); r.status != http.StatusFound || !strings.Contains(r.header.Get("Location"), "/device") {
				t.Fatalf("authorization %d: %d %s", i+1, r.status, r.header.Get("Location"))
			}
		}
		r := get("203.0.113.7")
		loc, _ := url.Parse(r.header.Get("Location"))
		if r.status != http.StatusFound || loc.Query().Get("error") != "temporarily_unavailable" || loc.Query().Get("state") != "xyz" ||
			!strings.HasPrefix(loc.String(), "http://127.0.0.1:3000/cb") {
			t.Errorf("third authorization in a minute: %d, Location %s", r.status, loc)
		}
		dev := func(ip string) *response {
			req, _ := http.NewRequest("POST", f.base+PathDeviceAuthorization, strings.NewReader(url.Values{"client_id": {c.id}}.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.Header.Set("X-Forwarded-For", ip)
			return f.do(req)
		}
		if r := dev("203.0.113.7"); r.status != http.StatusTooManyRequests || r.str("error") != "temporarily_unavailable" || r.header.Get("Retry-After") == "" {
			t.Errorf("device authorization over the same network's limit: %d %s", r.status, r.body)
		}
		if r := dev("203.0.113.8"); r.status != 200 {
			t.Errorf("device authorization from another network: %d %s", r.status, r.body)
		}
	})
}

// TestRateLimitsOff: negative limits turn them off, and an initial access
// token exempts registration.
func TestRateLimitsOff(t *testing.T) {
	f := newFixture(t, func(o *Options) {
		o.TrustProxyHeaders = true
		o.Limits = RateLimits{Registrations: -1, Authorizations: -1}
	})
	for i := range 40 {
		if r := f.postJSON("/register", `{"redirect_uris":["http://127.0.0.1:3000/cb"],"token_endpoint_auth_method":"none"}`,
			map[string]string{"X-Forwarded-For": "198.51.100.9"}); r.status != 201 {
			t.Fatalf("registration %d with the limit off: %d", i+1, r.status)
		}
	}
	g := newFixture(t, func(o *Options) {
		o.TrustProxyHeaders = true
		o.InitialAccessToken = "let-me-in-please"
		o.Limits = RateLimits{Registrations: 1}
	})
	for i := range 3 {
		if r := g.postJSON("/register", `{"redirect_uris":["http://127.0.0.1:3000/cb"],"token_endpoint_auth_method":"none"}`,
			map[string]string{"X-Forwarded-For": "198.51.100.9", "Authorization": "Bearer let-me-in-please"}); r.status != 201 {
			t.Fatalf("registration %d with the initial access token: %d", i+1, r.status)
		}
	}
}

// TestRateLimitsDirectPeers: without TrustProxyHeaders the limit counts the
// connection's peer, and X-Forwarded-For cannot move a client to another
// network's budget.
func TestRateLimitsDirectPeers(t *testing.T) {
	f := newFixture(t, func(o *Options) { o.Limits = RateLimits{Registrations: 2} })
	register := func(xff string) int {
		r := httptest.NewRequest("POST", f.base+"/register", strings.NewReader(`{"redirect_uris":["http://127.0.0.1:3000/cb"],"token_endpoint_auth_method":"none"}`))
		r.RemoteAddr = "192.0.2.50:40000"
		r.Header.Set("Content-Type", "application/json")
		if xff != "" {
			r.Header.Set("X-Forwarded-For", xff)
		}
		w := httptest.NewRecorder()
		f.h.ServeHTTP(w, r)
		return w.Code
	}
	for i, xff := range []string{"", "198.51.100.1"} {
		if st := register(xff); st != 201 {
			t.Fatalf("registration %d: %d", i+1, st)
		}
	}
	if st := register("198.51.100.2"); st != http.StatusTooManyRequests {
		t.Errorf("third registration from one peer claiming another address: %d, want 429", st)
	}
}
