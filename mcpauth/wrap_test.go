package mcpauth

import (
	"maps"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

func TestDescribeScopes(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts Options
		want map[string]string
	}{
		{"default scope", Options{Scopes: []string{"mcp"}},
			map[string]string{"mcp": "Connect, and use the tools, resources and prompts"}},
		{"tool scopes", Options{Scopes: []string{"mcp", "admin", "notes:write"},
			ToolScopes: map[string][]string{"purge": {"admin"}, "delete_note": {"notes:write", "admin"}, "add_note": {"notes:write"}}},
			map[string]string{
				"mcp":         "Connect, and use the resources, prompts and tools that need no further access",
				"admin":       "Use the tools delete_note and purge",
				"notes:write": "Use the tools add_note and delete_note",
			}},
		{"three tools", Options{Scopes: []string{"x"}, ToolScopes: map[string][]string{"c": {"x"}, "a": {"x"}, "b": {"x"}}},
			map[string]string{"x": "Use the tools a, b and c"}},
		{"one tool", Options{Scopes: []string{"x"}, ToolScopes: map[string][]string{"a": {"x"}}},
			map[string]string{"x": "Use the tool a"}},
		{"required scope other than mcp", Options{Scopes: []string{"mcp", "read"}, RequiredScopes: []string{"read"}},
			map[string]string{"read": "Connect, and use the tools, resources and prompts"}},
		{"host's own words win", Options{Scopes: []string{"mcp", "admin"}, ToolScopes: map[string][]string{"purge": {"admin"}},
			ScopeDescriptions: map[string]string{"admin": "Delete everything"}},
			map[string]string{"mcp": "Connect, and use the resources, prompts and tools that need no further access", "admin": "Delete everything"}},
		{"unknown purpose: name alone", Options{Scopes: []string{"mcp", "offline"}, RequiredScopes: []string{"mcp"}},
			map[string]string{"mcp": "Connect, and use the tools, resources and prompts"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := describeScopes(Resource{Scopes: tc.opts.Scopes, RequiredScopes: tc.opts.RequiredScopes, ToolScopes: tc.opts.ToolScopes, ScopeDescriptions: tc.opts.ScopeDescriptions}); !maps.Equal(got, tc.want) {
				t.Errorf("describeScopes = %v, want %v", got, tc.want)
			}
		})
	}
}

// TestScopeDescriptionsOnPages: the authorize tab and the console's
// confirmation say what each requested scope allows, with its name; a
// description of an unknown scope is refused at start.
func TestScopeDescriptionsOnPages(t *testing.T) {
	if _, err := Wrap(newMCPServer(), Options{Issuer: "http://127.0.0.1:1", Scopes: []string{"mcp"},
		ScopeDescriptions: map[string]string{"nope": "x"}}); err == nil || !strings.Contains(err.Error(), "nope") {
		t.Errorf("a description of a scope not in Scopes: %v", err)
	}
	f := newFixture(t, func(o *Options) { o.ScopeDescriptions = map[string]string{"admin": "Read & <delete> secrets"} })
	c := signedIn(t, f)
	cl := f.publicClient()
	q := authParams(cl)
	q.Set("scope", "mcp admin")
	loc, _ := url.Parse(f.get("/authorize?" + q.Encode()).header.Get("Location"))
	tab := string(f.getURL(loc).body)
	_, confirm, _ := c.get("/console/approve?user_code=" + url.QueryEscape(loc.Query().Get("user_code")))
	for name, body := range map[string]string{"tab": tab, "console": confirm} {
		for _, want := range []string{
			`<li>Read &amp; &lt;delete&gt; secrets <span class="scope">admin</span></li>`,
			`<li>Connect, and use the resources, prompts and tools that need no further access <span class="scope">mcp</span></li>`,
		} {
			if !strings.Contains(body, want) {
				t.Errorf("%s does not show %s", name, want)
			}
		}
	}
}

func TestForwardedFor(t *testing.T) {
	for _, tc := range []struct {
		name   string
		values []string
		want   string
	}{
		{"none", nil, ""},
		{"one", []string{"192.0.2.1"}, "192.0.2.1"},
		{"the proxy's entry is the last", []string{"10.0.0.1, 192.0.2.1"}, "192.0.2.1"},
		{"a client's forged first header is ignored", []string{"10.0.0.1", "198.51.100.2"}, "198.51.100.2"},
		{"spaces", []string{" 192.0.2.1 ,  2001:db8::1 "}, "2001:db8::1"},
		{"mapped IPv4", []string{"::ffff:192.0.2.1"}, "192.0.2.1"},
		{"junk", []string{"192.0.2.1, unknown"}, ""},
		{"with a port", []string{"192.0.2.1:443"}, "192.0.2.1"},
		{"IPv6 with a port", []string{"[2001:db8::1]:443"}, "2001:db8::1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/console", nil)
			r.RemoteAddr = "10.1.2.3:40000" // a proxy on a private network
			for _, v := range tc.values {
				r.Header.Add("X-Forwarded-For", v)
			}
			if got := forwardedFor(r); got != tc.want {
				t.Errorf("forwardedFor = %q, want %q", got, tc.want)
			}
		})
	}
}

// TestForwardedForOnlyFromProxies: a peer on the internet cannot pick its
// address with X-Forwarded-For; loopback and private peers (proxies) can.
func TestForwardedForOnlyFromProxies(t *testing.T) {
	for peer, believed := range map[string]bool{
		"127.0.0.1:1": true, "[::1]:1": true, "10.0.0.5:1": true, "192.168.1.2:1": true, "[fd00::1]:1": true,
		"203.0.113.9:1": false, "[2001:db8::9]:1": false, "garbage": false,
	} {
		r := httptest.NewRequest("GET", "/console", nil)
		r.RemoteAddr = peer
		r.Header.Set("X-Forwarded-For", "198.51.100.1")
		if got := forwardedFor(r) != ""; got != believed {
			t.Errorf("peer %s: believed %v, want %v", peer, got, believed)
		}
	}
}
