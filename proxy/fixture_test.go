package proxy

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/oauthex"

	"github.com/mcp-oauth/oauth/internal/oidctest"
	"github.com/mcp-oauth/oauth/internal/testclock"
)

// Test constants: the facade's client at the upstream, a resource server
// allowed at /introspect, and the redirect URI test clients register (no
// one listens there: the fetcher reads the code off the redirect).
const (
	upstreamClient = "mcp-facade"
	upstreamSecret = "facade-s3cret"
	rsID, rsSecret = "notes-rs", "rs-s3cret"
	clientRedirect = "http://127.0.0.1:8765/callback"
)

// env is a facade on 127.0.0.1 in front of the real OpenID Provider of
// internal/oidctest, whose App (the facade's client) issues JWT access
// tokens for resource.
type env struct {
	idp      *oidctest.Provider
	f        *Facade
	base     string           // the facade's issuer
	resource string           // the MCP server's URL (served by newMCP)
	mcpSrv   *httptest.Server // nil when the MCP server shares the facade's origin
	mcp      http.Handler     // set by serveMCP
	clock    *testclock.Clock
}

func newEnv(t *testing.T, mutate func(*Options)) *env { return newEnvOrigin(t, false, mutate) }

// newEnvOrigin is newEnv; with sameOrigin, the MCP server is served on
// the facade's origin, mounted as README.md shows.
func newEnvOrigin(t *testing.T, sameOrigin bool, mutate func(*Options)) *env {
	t.Helper()
	fsrv := httptest.NewUnstartedServer(nil)
	base := "http://" + fsrv.Listener.Addr().String()
	var msrv *httptest.Server
	resource := base + "/mcp"
	if !sameOrigin {
		msrv = httptest.NewUnstartedServer(nil)
		resource = "http://" + msrv.Listener.Addr().String() + "/mcp"
		t.Cleanup(func() { msrv.Close() })
	}
	idp := oidctest.Start(t, oidctest.Options{
		Apps: []oidctest.App{{ID: upstreamClient, Secret: upstreamSecret, RedirectURIs: []string{base + CallbackPath},
			Audience: []string{resource}, Claims: map[string]any{"roles": []string{"notes-user"}}}},
		Services: []oidctest.Service{{ID: "svc-other", Secret: "s", JWT: true, Audience: []string{"https://other.example/mcp"}}},
	})
	clock := testclock.New(time.Now())
	opts := Options{
		Issuer: base, Upstream: idp.Issuer, ClientID: upstreamClient, ClientSecret: upstreamSecret,
		Scopes: []string{"openid", "offline_access"}, Resource: resource,
		Keys:            [][]byte{bytes.Repeat([]byte{7}, 32)},
		ResourceServers: []ResourceServer{{ClientID: rsID, ClientSecret: rsSecret}},
		Now:             clock.Now,
	}
	if mutate != nil {
		mutate(&opts)
	}
	f, err := New(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	e := &env{idp: idp, f: f, base: base, resource: resource, mcpSrv: msrv, clock: clock}
	fsrv.Config.Handler = f
	if sameOrigin {
		mcp := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { e.mcp.ServeHTTP(w, r) })
		mux := http.NewServeMux()
		mux.Handle("/mcp", mcp)
		mux.Handle("/.well-known/oauth-protected-resource/", mcp)
		mux.Handle("/", f)
		fsrv.Config.Handler = mux
	}
	fsrv.Start()
	t.Cleanup(fsrv.Close)
	return e
}

// register registers a client with redirect URIs and returns its ID.
func (e *env) register(t *testing.T, redirects ...string) string {
	t.Helper()
	status, body := do(t, "POST", e.base+RegisterPath, "application/json", mustJSON(oauthex.ClientRegistrationMetadata{RedirectURIs: redirects}), nil)
	if status != http.StatusCreated {
		t.Fatalf("register: %d %s", status, body)
	}
	var resp oauthex.ClientRegistrationResponse
	if err := json.Unmarshal([]byte(body), &resp); err != nil {
		t.Fatal(err)
	}
	return resp.ClientID
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// noRedirects is an HTTP client that returns redirects instead of
// following them.
var noRedirects = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// do sends a request and returns the status and body; a 3xx answer's body
// is its Location.
func do(t testing.TB, method, u, contentType, body string, header http.Header) (int, string) {
	t.Helper()
	resp := doResp(t, method, u, contentType, body, header)
	if resp.StatusCode/100 == 3 {
		return resp.StatusCode, resp.Header.Get("Location")
	}
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func doResp(t testing.TB, method, u, contentType, body string, header http.Header) *http.Response {
	t.Helper()
	req, err := http.NewRequest(method, u, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := noRedirects.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

// postForm posts a form and decodes a JSON answer.
func postForm(t testing.TB, u string, form url.Values, header http.Header) (int, map[string]any, http.Header) {
	t.Helper()
	resp := doResp(t, "POST", u, "application/x-www-form-urlencoded", form.Encode(), header)
	var m map[string]any
	b, _ := io.ReadAll(resp.Body)
	_ = json.Unmarshal(b, &m)
	return resp.StatusCode, m, resp.Header
}

var authRequestID = regexp.MustCompile(`name="id" value="([^"]+)"`)

// signIn plays the browser: it opens authURL (the facade's /authorize),
// follows the redirects, signs in at the provider's login page over plain
// HTTP, and returns the first redirect that leaves for stopAt (the
// client's redirect URI, or the facade's callback), not yet visited.
func signIn(t testing.TB, issuer, authURL, stopAt string) (*url.URL, error) {
	jar, _ := cookiejar.New(nil)
	hc := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	get := func(method, u string, form url.Values) (*http.Response, string, error) {
		req, err := http.NewRequest(method, u, strings.NewReader(form.Encode()))
		if err != nil {
			return nil, "", err
		}
		if form != nil {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
		resp, err := hc.Do(req)
		if err != nil {
			return nil, "", err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b), nil
	}
	for u, hops := authURL, 0; hops < 20; hops++ {
		resp, body, err := get("GET", u, nil)
		if err != nil {
			return nil, err
		}
		if resp.StatusCode == http.StatusOK {
			m := authRequestID.FindStringSubmatch(body)
			if m == nil {
				return nil, &pageError{resp.StatusCode, body}
			}
			if resp, _, err = get("POST", strings.TrimSuffix(issuer, "/")+"/login/username",
				url.Values{"id": {m[1]}, "username": {oidctest.Username}, "password": {oidctest.Password}}); err != nil {
				return nil, err
			}
		}
		next, err := resp.Location()
		if err != nil {
			return nil, &pageError{resp.StatusCode, body}
		}
		if strings.HasPrefix(next.String(), stopAt) {
			return next, nil
		}
		u = next.String()
	}
	return nil, &pageError{0, "too many redirects"}
}

// pageError is a sign-in that stopped on a page.
type pageError struct {
	status int
	body   string
}

func (e *pageError) Error() string { return "the sign-in stopped at a page: " + e.body }

// authorizeURL is an authorization request of client for redirectURI,
// with extra parameters set (an empty value removes one).
func (e *env) authorizeURL(client, redirectURI string, extra url.Values) string {
	q := url.Values{
		"response_type": {"code"}, "client_id": {client}, "redirect_uri": {redirectURI},
		"code_challenge": {challenge}, "code_challenge_method": {"S256"}, "state": {"client-state"},
		"scope": {"openid offline_access"}, "resource": {e.resource},
	}
	for k, v := range extra {
		q[k] = v
		if len(v) == 1 && v[0] == "" {
			delete(q, k)
		}
	}
	return e.base + AuthorizePath + "?" + q.Encode()
}

// verifier and challenge are an RFC 7636 pair (Appendix B).
const (
	verifier  = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
	challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
)
