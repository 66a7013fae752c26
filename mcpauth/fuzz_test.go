package mcpauth

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/oauthex"
	sdkjson "github.com/segmentio/encoding/json" // the decoder go-sdk v1 uses

	oauth "github.com/mcp-oauth/oauth"
	"github.com/mcp-oauth/oauth/internal/redirect"
	"github.com/mcp-oauth/oauth/provider"
	"github.com/mcp-oauth/oauth/storage/memory"
)

const fuzzIssuer = "https://as.example"

// fuzzServer is an in-process authorization server with one public client
// (redirect https://app.example/cb and a loopback one) for fuzz targets.
func fuzzServer(f *testing.F) (*AuthorizationServer, string) {
	p, err := provider.New(context.Background(), memory.New(), provider.Options{Issuer: fuzzIssuer, Resource: fuzzIssuer + "/mcp"})
	if err != nil {
		f.Fatal(err)
	}
	// No rate limits: httptest requests come from 192.0.2.1, and the
	// fuzzer is after the parsers, not the 31st registration's 429.
	s, err := NewAuthorizationServer(p, ServerOptions{Issuer: fuzzIssuer, Resource: fuzzIssuer + "/mcp",
		Limits: RateLimits{Registrations: -1, Authorizations: -1}})
	if err != nil {
		f.Fatal(err)
	}
	resp, err := p.RegisterClient(context.Background(), &oauthex.ClientRegistrationMetadata{
		RedirectURIs: []string{"https://app.example/cb", "http://127.0.0.1:3000/cb"}, TokenEndpointAuthMethod: "none"})
	if err != nil {
		f.Fatal(err)
	}
	return s, resp.ClientID
}

func serve(s http.Handler, req *http.Request) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	s.ServeHTTP(w, req)
	return w
}

// FuzzAuthorize: whatever the query, /authorize answers 400/414 pages or a
// redirect, and every redirect goes to the approval page or to a redirect
// URI the client registered (no open redirect).
func FuzzAuthorize(f *testing.F) {
	s, id := fuzzServer(f)
	ok := authParams(client{id: id, redirect: "https://app.example/cb"})
	f.Add(ok.Encode())
	ok.Set("redirect_uri", "http://127.0.0.1:9999/cb")
	f.Add(ok.Encode())
	ok.Set("redirect_uri", "https://evil.example/cb")
	f.Add(ok.Encode())
	ok.Set("redirect_uri", "https://app.example/cb")
	ok.Set("code_challenge_method", "plain")
	f.Add(ok.Encode())
	f.Add("client_id=" + id + "&redirect_uri=https%3A%2F%2Fapp.example%2Fcb&response_type=token&state=%00")
	f.Add("client_id=" + id + "&client_id=x")
	f.Add("%zz")
	f.Fuzz(func(t *testing.T, q string) {
		req := httptest.NewRequest("GET", "/authorize", nil)
		req.URL.RawQuery = q
		w := serve(s, req)
		switch w.Code {
		case http.StatusBadRequest, http.StatusRequestURITooLong:
			if w.Header().Get("Location") != "" {
				t.Fatal("error page with a Location")
			}
		case http.StatusFound:
			loc := w.Header().Get("Location")
			if strings.HasPrefix(loc, fuzzIssuer+PathDevice+"?") {
				return
			}
			u, err := url.Parse(loc)
			if err != nil {
				t.Fatalf("bad Location %q", loc)
			}
			target := u.Scheme + "://" + u.Host + u.Path
			if target != "https://app.example/cb" && !(u.Scheme == "http" && u.Hostname() == "127.0.0.1" && u.Path == "/cb") {
				t.Fatalf("redirect to unregistered URI %q", loc)
			}
			if u.Query().Get("error") == "" || u.Query().Get("iss") != fuzzIssuer {
				t.Fatalf("error redirect without error/iss: %q", loc)
			}
		default:
			t.Fatalf("status %d", w.Code)
		}
	})
}

// FuzzToken: any body, content type and Authorization header get, at the
// token, revocation, introspection and device authorization endpoints, an
// RFC 6749 JSON error (never a 500) with no-store.
func FuzzToken(f *testing.F) {
	s, id := fuzzServer(f)
	f.Add("grant_type=authorization_code&code=mcp_code_x&code_verifier="+verifier+"&client_id="+id, "application/x-www-form-urlencoded", "")
	f.Add("grant_type=refresh_token&refresh_token=mcp_rt_x&client_id="+id, "application/x-www-form-urlencoded", "")
	f.Add("grant_type=refresh_token&refresh_token=x", "application/x-www-form-urlencoded", "Basic "+"Zm9vOmJhcg==")
	f.Add("grant_type=client_credentials", "application/x-www-form-urlencoded", "Basic %%%")
	f.Add(`{"grant_type":"authorization_code"}`, "application/json", "")
	f.Add("a=%zz", "application/x-www-form-urlencoded", "Bearer x")
	f.Add("grant_type=urn:ietf:params:oauth:grant-type:device_code&device_code=mcp_dc_x&client_id="+id, "application/x-www-form-urlencoded", "")
	f.Add("client_id="+id+"&scope=mcp&resource=https://x", "application/x-www-form-urlencoded", "")
	f.Fuzz(func(t *testing.T, body, ct, authz string) {
		for _, path := range []string{PathToken, PathRevoke, PathIntrospect, PathDeviceAuthorization} {
			req := httptest.NewRequest("POST", path, strings.NewReader(body))
			req.Header.Set("Content-Type", ct)
			if authz != "" {
				req.Header.Set("Authorization", authz)
			}
			w := serve(s, req)
			if w.Header().Get("Cache-Control") != "no-store" {
				t.Fatalf("%s: no Cache-Control: no-store", path)
			}
			if w.Code == http.StatusOK {
				continue // revoke of anything, or introspection
			}
			if w.Code >= 500 {
				t.Fatalf("%s: status %d: %s", path, w.Code, w.Body)
			}
			var e struct {
				Error string `json:"error"`
			}
			if err := json.Unmarshal(w.Body.Bytes(), &e); err != nil || e.Error == "" {
				t.Fatalf("%s: %d with non-RFC body %q", path, w.Code, w.Body)
			}
		}
	})
}

// FuzzRegister: any registration body is either refused with an RFC 7591
// error or registers only acceptable redirect URIs.
func FuzzRegister(f *testing.F) {
	s, _ := fuzzServer(f)
	for _, b := range []string{
		`{"redirect_uris":["https://a.example/cb"],"token_endpoint_auth_method":"none"}`,
		`{"redirect_uris":["cursor://anysphere.cursor-mcp/oauth/callback","http://127.0.0.1:3/cb"]}`,
		`{"redirect_uris":["javascript:alert(1)"]}`,
		`{"redirect_uris":["http://[::1]:80/x"],"grant_types":["x"],"response_types":["code","token"]}`,
		`{"redirect_uris":null}`, `[]`, `{`, ``,
	} {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, body string) {
		req := httptest.NewRequest("POST", PathRegister, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		w := serve(s, req)
		switch w.Code {
		case http.StatusCreated:
			var resp oauthex.ClientRegistrationResponse
			if err := json.Unmarshal(w.Body.Bytes(), &resp); err != nil || resp.ClientID == "" {
				t.Fatalf("201 with %q", w.Body)
			}
			for _, u := range resp.RedirectURIs {
				if e := redirect.Check(u); e != nil {
					t.Fatalf("registered unacceptable redirect URI %q: %v", u, e)
				}
			}
		case http.StatusBadRequest, http.StatusRequestEntityTooLarge:
			var e struct{ Error string }
			if json.Unmarshal(w.Body.Bytes(), &e) != nil || e.Error == "" {
				t.Fatalf("%d with %q", w.Code, w.Body)
			}
		default:
			t.Fatalf("status %d", w.Code)
		}
	})
}

// FuzzRedirectURI: an accepted redirect URI parses, uses no dangerous
// scheme, uses http only on loopback, and matches itself.
func FuzzRedirectURI(f *testing.F) {
	for _, s := range []string{"https://a.example/cb", "http://127.0.0.1:8/cb", "http://localhost/x", "cursor://a/b",
		"javascript:alert(1)", "http://a.example/", "HTTP://127.0.0.1/", "https://", "com.app:/cb", "x:y#z", "http://[::1]/"} {
		f.Add(s, "http://127.0.0.1:9/cb")
	}
	f.Fuzz(func(t *testing.T, s, req string) {
		if redirect.Check(s) != nil {
			return
		}
		u, err := url.Parse(s)
		if err != nil {
			t.Fatalf("accepted unparsable %q", s)
		}
		sc := strings.ToLower(u.Scheme)
		if redirect.ForbiddenScheme(sc) || (sc == "http" && !redirect.IsLoopbackHost(u.Hostname())) || u.Fragment != "" {
			t.Fatalf("accepted %q", s)
		}
		if !redirect.Match([]string{s}, s) {
			t.Fatalf("%q does not match itself", s)
		}
		if redirect.Match([]string{s}, req) && req != s {
			r, err := url.Parse(req)
			if err != nil || r.Scheme != "http" || !redirect.IsLoopbackHost(r.Hostname()) || r.Hostname() != u.Hostname() || r.Path != u.Path {
				t.Fatalf("%q matched registered %q", req, s)
			}
		}
	})
}

// FuzzBearer: any Authorization header and body give a 400/401 challenge
// (never a panic or 500), and the body reaches the next handler intact.
func FuzzBearer(f *testing.F) {
	mw := RequireBearer(func(ctx context.Context, tok string) (*oauth.AccessToken, error) {
		return nil, oauth.ErrInvalidToken
	}, BearerOptions{ResourceMetadataURL: fuzzIssuer + "/.well-known/oauth-protected-resource/mcp", ToolScopes: map[string][]string{"t": {"x"}}})
	h := mw(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	f.Add("Bearer abc", `{"jsonrpc":"2.0","method":"tools/call","params":{"name":"t"}}`)
	f.Add("bearer  ", `[{"method":"tools/call"}]`)
	f.Add("Basic eA==", "")
	f.Add("Bearer a,b", "\x00")
	f.Fuzz(func(t *testing.T, authz, body string) {
		req := httptest.NewRequest("POST", "/mcp", strings.NewReader(body))
		req.Header.Set("Authorization", authz)
		w := serve(h, req)
		if w.Code != 400 && w.Code != 401 {
			t.Fatalf("status %d for %q", w.Code, authz)
		}
		if !strings.HasPrefix(w.Header().Get("WWW-Authenticate"), "Bearer resource_metadata=") {
			t.Fatalf("challenge %q", w.Header().Get("WWW-Authenticate"))
		}
	})
}

// FuzzPeekToolCalls: the body is handed on byte for byte.
func FuzzPeekToolCalls(f *testing.F) {
	f.Add([]byte(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x"}}`))
	f.Add([]byte(`[{"method":"tools/call","params":{"name":"a"}},{"method":"ping"}]`))
	f.Add([]byte(` [`))
	f.Add([]byte(`{"method":"tools/call","params":{"name":"a","NAME":"b"}}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		req := httptest.NewRequest("POST", "/mcp", bytes.NewReader(body))
		names, err := peekToolCalls(req, 1<<20)
		got, _ := io.ReadAll(req.Body)
		if !bytes.Equal(got, body) {
			t.Fatal("body changed")
		}
		if err != nil {
			return
		}
		// Whatever was accepted must read the same to go-sdk's decoder
		// (segmentio/encoding with case-insensitive matching off): a single
		// tools/call names exactly the tool we found.
		var one struct {
			Method string `json:"method"`
			Params struct {
				Name string `json:"name"`
			} `json:"params"`
		}
		if len(names) == 1 && bytes.HasPrefix(bytes.TrimSpace(body), []byte("{")) {
			dec := sdkjson.NewDecoder(bytes.NewReader(body))
			dec.DontMatchCaseInsensitiveStructFields()
			if dec.Decode(&one) != nil || one.Method != "tools/call" || one.Params.Name != names[0] {
				t.Fatalf("accepted %q as tool %q; go-sdk reads %q", body, names[0], one.Params.Name)
			}
		}
	})
}
