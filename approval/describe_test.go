package approval

import (
	"testing"

	oauth "github.com/mcp-oauth/oauth"
)

func TestDescribe(t *testing.T) {
	client := func(id string, uris ...string) *oauth.Client {
		c := &oauth.Client{ID: id}
		c.RedirectURIs = uris
		return c
	}
	const doc = "https://app.example/client.json"
	for _, tc := range []struct {
		name               string
		client             *oauth.Client
		redirect           string
		redirectHost, host string
		warn               bool
	}{
		{"registered client, all loopback: registered clients do not warn",
			client("3f2a", "http://127.0.0.1/cb"), "http://127.0.0.1:5000/cb", "127.0.0.1:5000", "", false},
		{"document, all loopback", client(doc, "http://localhost/cb", "http://[::1]/cb"),
			"http://localhost:8080/cb", "localhost:8080", "app.example", true},
		{"document, all loopback, device request without a redirect", client(doc, "http://127.0.0.1/cb"),
			"", "", "app.example", true},
		{"document, https only", client(doc, "https://app.example/cb"),
			"https://app.example/cb", "app.example", "app.example", false},
		{"document, https and loopback, https requested", client(doc, "https://app.example/cb", "http://127.0.0.1/cb"),
			"https://app.example/cb", "app.example", "app.example", false},
		{"document, https and loopback, loopback requested", client(doc, "https://app.example/cb", "http://127.0.0.1/cb"),
			"http://127.0.0.1:9/cb", "127.0.0.1:9", "app.example", true},
		{"document, private-use scheme requested", client(doc, "cursor://anysphere.cursor-mcp/oauth/callback"),
			"cursor://anysphere.cursor-mcp/oauth/callback", "cursor://anysphere.cursor-mcp", "app.example", true},
		{"document, private-use scheme without an authority", client(doc, "com.example.app:/cb"),
			"com.example.app:/cb", "com.example.app:", "app.example", true},
		{"document, upper-case LOCALHOST", client(doc, "HTTP://LOCALHOST/cb"),
			"HTTP://LOCALHOST:1/cb", "LOCALHOST:1", "app.example", true},
		{"document, a loopback-looking name is not loopback", client(doc, "http://localhost.evil.example/cb"),
			"", "", "app.example", false},
		{"document without redirect URIs, device request", client(doc),
			"", "", "app.example", false},
		{"http client ID is not a document", client("http://app.example/c.json", "http://127.0.0.1/cb"),
			"", "", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rh, dh, warn := describe(&oauth.PendingRequest{Client: tc.client, AuthorizationParams: oauth.AuthorizationParams{RedirectURI: tc.redirect}})
			if rh != tc.redirectHost || dh != tc.host || warn != tc.warn {
				t.Errorf("describe = %q, %q, %v; want %q, %q, %v", rh, dh, warn, tc.redirectHost, tc.host, tc.warn)
			}
		})
	}
}
