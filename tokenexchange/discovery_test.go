package tokenexchange

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// TestDiscovery: with Issuer, the token endpoint comes from the RFC 8414
// document, else the OpenID Connect one; a document for another issuer
// is refused; the mTLS alias (RFC 8705 §5) is used with mutual TLS; a
// failure is not remembered, a success is.
func TestDiscovery(t *testing.T) {
	type doc = map[string]any
	tests := []struct {
		name     string
		rfc8414  func(issuer string) doc // nil: 404
		oidc     func(issuer string) doc
		mtls     bool
		wantPath string // "" wants an error
		wantErr  string
	}{
		{"RFC 8414", func(i string) doc { return doc{"issuer": i, "token_endpoint": i + "/oauth/token"} }, nil, false, "/tenant/oauth/token", ""},
		{"OpenID Connect fallback", nil, func(i string) doc { return doc{"issuer": i, "token_endpoint": i + "/oidc/token"} }, false, "/tenant/oidc/token", ""},
		{"another issuer", func(i string) doc { return doc{"issuer": i + "x", "token_endpoint": i + "/oauth/token"} }, nil, false, "", "names issuer"},
		{"no token endpoint", func(i string) doc { return doc{"issuer": i} }, nil, false, "", "no token_endpoint"},
		{"http token endpoint elsewhere", func(i string) doc { return doc{"issuer": i, "token_endpoint": "http://sts.example.com/token"} }, nil, false, "", "https"},
		{"mTLS alias", func(i string) doc {
			return doc{"issuer": i, "token_endpoint": i + "/oauth/token", "mtls_endpoint_aliases": doc{"token_endpoint": i + "/mtls/token"}}
		}, nil, true, "/tenant/mtls/token", ""},
		{"no mTLS alias without mTLS", func(i string) doc {
			return doc{"issuer": i, "token_endpoint": i + "/oauth/token", "mtls_endpoint_aliases": doc{"token_endpoint": i + "/mtls/token"}}
		}, nil, false, "/tenant/oauth/token", ""},
		{"nothing", nil, nil, false, "", "no authorization server metadata"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var issuer string
			var posted atomic.Value
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				var d doc
				switch {
				case r.URL.Path == "/.well-known/oauth-authorization-server/tenant" && tt.rfc8414 != nil:
					d = tt.rfc8414(issuer)
				case r.URL.Path == "/tenant/.well-known/openid-configuration" && tt.oidc != nil:
					d = tt.oidc(issuer)
				case r.Method == http.MethodPost:
					posted.Store(r.URL.Path)
					r.ParseForm()
					issue(w, &stsCall{form: r.PostForm}, "at")
					return
				default:
					http.NotFound(w, r)
					return
				}
				writeJSON(w, 200, d)
			}))
			defer srv.Close()
			issuer = srv.URL + "/tenant"
			opts := Options{Issuer: issuer, ClientID: "c", ClientSecret: "s"}
			if tt.mtls {
				// The test server is plain HTTP: the "certificate" is never asked for.
				opts.ClientSecret, opts.AuthMethod = "", AuthTLSClient
				opts.HTTPClient = &http.Client{Transport: roundTripper{http.DefaultTransport}}
			}
			c, err := New(opts)
			if err != nil {
				t.Fatal(err)
			}
			_, err = c.Exchange(context.Background(), &Request{SubjectToken: "subj"})
			if tt.wantPath == "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one about %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got, _ := posted.Load().(string); got != tt.wantPath {
				t.Errorf("posted to %q, want %q", got, tt.wantPath)
			}
			if ep, err := c.Endpoint(context.Background()); err != nil || !strings.HasSuffix(ep, tt.wantPath) {
				t.Errorf("Endpoint = %q, %v", ep, err)
			}
		})
	}
}

// TestDiscoveryRetried: a discovery that failed is tried again by the
// next call; one that succeeded is not repeated.
func TestDiscoveryRetried(t *testing.T) {
	var up atomic.Bool
	var fetches atomic.Int32
	var issuer string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet {
			fetches.Add(1)
			if !up.Load() || r.URL.Path != "/.well-known/oauth-authorization-server" {
				http.Error(w, "down", http.StatusServiceUnavailable)
				return
			}
			json.NewEncoder(w).Encode(map[string]any{"issuer": issuer, "token_endpoint": issuer + "/token"})
			return
		}
		r.ParseForm()
		issue(w, &stsCall{form: r.PostForm}, "at")
	}))
	defer srv.Close()
	issuer = srv.URL
	c, err := New(Options{Issuer: issuer, ClientID: "c", ClientSecret: "s", CacheSize: -1})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := c.Endpoint(ctx); err == nil {
		t.Fatal("discovery of a server that is down succeeded")
	}
	up.Store(true)
	for range 3 {
		if _, err := c.Exchange(ctx, &Request{SubjectToken: "subj"}); err != nil {
			t.Fatal(err)
		}
	}
	if n := fetches.Load(); n != 3 { // two failed, one succeeded
		t.Errorf("%d metadata fetches, want 3", n)
	}
}

// TestSubjectFromRequest: the bearer token of an MCP request's HTTP
// headers, and nothing else.
func TestSubjectFromRequest(t *testing.T) {
	withAuth := func(v string) *mcp.CallToolRequest {
		h := http.Header{}
		if v != "" {
			h.Set("Authorization", v)
		}
		return &mcp.CallToolRequest{Extra: &mcp.RequestExtra{Header: h}}
	}
	tests := []struct {
		name string
		req  mcp.Request
		want string
	}{
		{"Bearer", withAuth("Bearer abc.def-ghi"), "abc.def-ghi"},
		{"bearer, extra spaces", withAuth("bearer   abc"), "abc"},
		{"BEARER", withAuth("BEARER abc"), "abc"},
		{"no header", withAuth(""), ""},
		{"Basic", withAuth("Basic YTpi"), ""},
		{"DPoP", withAuth("DPoP abc"), ""},
		{"Bearer without a token", withAuth("Bearer "), ""},
		{"a space inside", withAuth("Bearer abc def"), ""},
		{"a control character", withAuth("Bearer abc\x01"), ""},
		{"no Extra", &mcp.CallToolRequest{}, ""},
		{"no Header", &mcp.CallToolRequest{Extra: &mcp.RequestExtra{}}, ""},
		{"nil", nil, ""},
		{"a client request", &mcp.CreateMessageRequest{}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := SubjectFromRequest(tt.req)
			if got != tt.want || ok != (tt.want != "") {
				t.Errorf("SubjectFromRequest = %q, %v; want %q", got, ok, tt.want)
			}
		})
	}
}
