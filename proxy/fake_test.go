package proxy

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcp-oauth/oauth/internal/testclock"
)

// fakeIssuer is the facade's issuer in tests that call the Facade as a
// handler, without a listener.
const (
	fakeIssuer   = "http://127.0.0.1:9/"
	fakeResource = "http://127.0.0.1:10/mcp"
)

// fake is an upstream authorization server that records what reaches
// it and answers as a test says; and a facade in front of it.
type fake struct {
	srv   *httptest.Server
	f     *Facade
	clock *testclock.Clock

	mu     sync.Mutex
	last   url.Values  // the last form posted to an endpoint
	header http.Header // and its headers
	answer func(w http.ResponseWriter, endpoint string, form url.Values)
}

// newFake starts the upstream with metadata changed by meta, and a
// facade on it configured by opts.
func newFake(t testing.TB, meta func(m map[string]any), opts func(o *Options)) *fake {
	t.Helper()
	fk := &fake{clock: testclock.New(time.Unix(1_800_000_000, 0))}
	fk.answer = func(w http.ResponseWriter, endpoint string, _ url.Values) {
		w.Header().Set("Content-Type", "application/json")
		switch endpoint {
		case "/token":
			io.WriteString(w, `{"access_token":"at-1","token_type":"Bearer","expires_in":300,"refresh_token":"rt-1","scope":"openid","id_token":"x.y.z"}`)
		case "/introspect":
			io.WriteString(w, `{"active":true,"aud":["`+fakeResource+`"],"sub":"u1"}`)
		default:
			io.WriteString(w, `{}`)
		}
	}
	mux := http.NewServeMux()
	fk.srv = httptest.NewServer(mux)
	t.Cleanup(fk.srv.Close)
	issuer := fk.srv.URL
	mux.HandleFunc("GET /.well-known/oauth-authorization-server", func(w http.ResponseWriter, r *http.Request) {
		m := map[string]any{
			"issuer": issuer, "authorization_endpoint": issuer + "/auth?tenant=t1", "token_endpoint": issuer + "/token",
			"revocation_endpoint": issuer + "/revoke", "introspection_endpoint": issuer + "/introspect",
			"jwks_uri": issuer + "/keys", "code_challenge_methods_supported": []string{"S256"},
			"response_types_supported": []string{"code"},
		}
		if meta != nil {
			meta(m)
		}
		json.NewEncoder(w).Encode(m)
	})
	for _, p := range []string{"/token", "/revoke", "/introspect"} {
		mux.HandleFunc("POST "+p, func(w http.ResponseWriter, r *http.Request) {
			r.ParseForm()
			fk.mu.Lock()
			fk.last, fk.header = r.PostForm, r.Header.Clone()
			answer := fk.answer
			fk.mu.Unlock()
			answer(w, p, r.PostForm)
		})
	}
	o := Options{
		Issuer: fakeIssuer, Upstream: issuer, ClientID: upstreamClient, ClientSecret: upstreamSecret,
		Scopes: []string{"openid", "notes", "offline_access"}, Resource: fakeResource,
		Keys:            [][]byte{bytes.Repeat([]byte{1}, 32)},
		ResourceServers: []ResourceServer{{ClientID: rsID, ClientSecret: rsSecret}},
		Now:             fk.clock.Now,
	}
	if opts != nil {
		opts(&o)
	}
	f, err := New(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	fk.f = f
	return fk
}

// setAnswer replaces how the upstream answers.
func (fk *fake) setAnswer(a func(w http.ResponseWriter, endpoint string, form url.Values)) {
	fk.mu.Lock()
	fk.answer = a
	fk.mu.Unlock()
}

// lastForm returns the last form the upstream received.
func (fk *fake) lastForm() (url.Values, http.Header) {
	fk.mu.Lock()
	defer fk.mu.Unlock()
	return fk.last, fk.header
}

// serve sends a request to the facade.
func (fk *fake) serve(method, target, contentType, body string, header http.Header) *httptest.ResponseRecorder {
	r := httptest.NewRequest(method, target, strings.NewReader(body))
	for k, v := range header {
		r.Header[k] = v
	}
	if contentType != "" {
		r.Header.Set("Content-Type", contentType)
	}
	w := httptest.NewRecorder()
	fk.f.ServeHTTP(w, r)
	return w
}

// serveQuery sends a GET with a raw query, whatever its bytes.
func (fk *fake) serveQuery(path, rawQuery string) *httptest.ResponseRecorder {
	r := httptest.NewRequest("GET", path, nil)
	r.URL.RawQuery = rawQuery
	w := httptest.NewRecorder()
	fk.f.ServeHTTP(w, r)
	return w
}

// post sends a form and decodes the JSON answer.
func (fk *fake) post(path string, form url.Values, header http.Header) (int, map[string]any) {
	w := fk.serve("POST", path, "application/x-www-form-urlencoded", form.Encode(), header)
	var m map[string]any
	_ = json.Unmarshal(w.Body.Bytes(), &m)
	return w.Code, m
}

// register registers a client and returns its ID.
func (fk *fake) register(t testing.TB, redirects ...string) string {
	t.Helper()
	w := fk.serve("POST", RegisterPath, "application/json", mustJSON(map[string]any{"redirect_uris": redirects}), nil)
	var m map[string]any
	json.Unmarshal(w.Body.Bytes(), &m)
	id, _ := m["client_id"].(string)
	if w.Code != http.StatusCreated || id == "" {
		t.Fatalf("register: %d %s", w.Code, w.Body)
	}
	return id
}

// code seals a facade code for client and redirectURI around the
// upstream code "up-code".
func (fk *fake) code(client, redirectURI string, ttl time.Duration) string {
	return fk.f.keys.seal(prefixCode, codeRecord{Client: clientDigest(client), Redirect: digest("redirect", redirectURI),
		Code: "up-code", Expires: fk.clock.Now().Add(ttl).Unix()})
}

// refresh seals a facade refresh token for client around "up-rt".
func (fk *fake) refresh(client string) string {
	return fk.f.keys.seal(prefixRefresh, refreshRecord{Client: clientDigest(client), Token: "up-rt"})
}

// state seals a facade state for client and redirectURI.
func (fk *fake) state(client, redirectURI string, ttl time.Duration) string {
	return fk.f.keys.seal(prefixState, stateRecord{Client: clientDigest(client), RedirectURI: redirectURI, State: "client-state",
		Expires: fk.clock.Now().Add(ttl).Unix()})
}

// newFakeMetaOnly serves the metadata of an upstream, changed by meta,
// and returns its issuer.
func newFakeMetaOnly(t testing.TB, meta func(m map[string]any)) string {
	t.Helper()
	var issuer string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m := map[string]any{"issuer": issuer, "authorization_endpoint": issuer + "/auth", "token_endpoint": issuer + "/token"}
		meta(m)
		json.NewEncoder(w).Encode(m)
	}))
	t.Cleanup(srv.Close)
	issuer = srv.URL
	return issuer
}
