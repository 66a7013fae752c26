package mcpauth

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	oauth "github.com/mcp-oauth/oauth"
)

func TestRemoteVerifier(t *testing.T) {
	f := newFixture(t, nil)
	c, tok := f.tokens()
	rs := f.register(`{"redirect_uris":["https://rs.example/cb"],"token_endpoint_auth_method":"client_secret_basic"}`)

	newRS := func(o RemoteVerifierOptions) *httptest.Server {
		v, err := NewRemoteVerifier(o)
		if err != nil {
			t.Fatal(err)
		}
		mw := RequireBearer(v.Verify, BearerOptions{ResourceMetadataURL: f.base + "/.well-known/oauth-protected-resource/mcp"})
		s := httptest.NewServer(mw(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Write([]byte("hello"))
		})))
		t.Cleanup(s.Close)
		return s
	}
	call := func(s *httptest.Server, at string) *http.Response {
		req, _ := http.NewRequest("GET", s.URL, nil)
		req.Header.Set("Authorization", "Bearer "+at)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	plain := newRS(RemoteVerifierOptions{Issuer: f.base, Resource: f.base + "/mcp", KeysMinInterval: time.Nanosecond})
	checked := newRS(RemoteVerifierOptions{Issuer: f.base, Resource: f.base + "/mcp",
		IntrospectionClientID: rs.id, IntrospectionClientSecret: rs.secret, IntrospectionMaxAge: time.Millisecond})
	wrongAud := newRS(RemoteVerifierOptions{Issuer: f.base, Resource: f.base + "/other"})

	at := tok.str("access_token")
	for name, s := range map[string]*httptest.Server{"plain": plain, "introspecting": checked} {
		if r := call(s, at); r.StatusCode != 200 {
			t.Fatalf("%s: valid token: %d", name, r.StatusCode)
		}
	}
	if r := call(wrongAud, at); r.StatusCode != 401 || !strings.Contains(r.Header.Get("WWW-Authenticate"), "invalid_token") {
		t.Fatalf("wrong audience: %d", r.StatusCode)
	}
	if r := call(plain, at[:len(at)-2]+"xx"); r.StatusCode != 401 {
		t.Fatalf("tampered: %d", r.StatusCode)
	}
	// Keys rotated at the issuer are picked up on the first token that names one.
	if err := f.h.DefaultProvider().RotateKeys(context.Background()); err != nil {
		t.Fatal(err)
	}
	_, tok2 := f.tokens()
	if r := call(plain, tok2.str("access_token")); r.StatusCode != 200 {
		t.Fatalf("token signed by a rotated-in key: %d", r.StatusCode)
	}

	f.post("/revoke", url.Values{"token": {tok.str("refresh_token")}, "client_id": {c.id}}, nil)
	time.Sleep(5 * time.Millisecond) // let the 1 ms introspection cache entry age out
	if r := call(checked, at); r.StatusCode != 401 {
		t.Fatalf("introspecting verifier accepted a revoked token: %d", r.StatusCode)
	}
	// Without introspection a JWT stays valid until it expires; that is the
	// documented trade-off of verifying apart from the authorization server.
	if r := call(plain, at); r.StatusCode != 200 {
		t.Fatalf("plain verifier: %d", r.StatusCode)
	}
}

// TestRemoteVerifierOutage: when the issuer's JWKS fails, cached keys keep
// verifying and fetches stay rate-limited; with no keys at all the verifier
// answers server_error, not invalid_token.
func TestRemoteVerifierOutage(t *testing.T) {
	f := newFixture(t, nil)
	_, tok := f.tokens()
	jwks := f.get("/jwks.json").body
	var fetches atomic.Int32
	var down atomic.Bool
	js := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fetches.Add(1)
		if down.Load() {
			http.Error(w, "unavailable", http.StatusServiceUnavailable)
			return
		}
		w.Write(jwks)
	}))
	defer js.Close()
	v, err := NewRemoteVerifier(RemoteVerifierOptions{Issuer: f.base, Resource: f.base + "/mcp", JWKSURL: js.URL,
		KeysMaxAge: time.Nanosecond, KeysMinInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := v.Verify(ctx, tok.str("access_token")); err != nil {
		t.Fatal(err)
	}
	down.Store(true)
	for i := 0; i < 20; i++ {
		if _, err := v.Verify(ctx, tok.str("access_token")); err != nil {
			t.Fatalf("verify during JWKS outage: %v", err)
		}
		if _, err := v.Verify(ctx, "eyJhbGciOiJFUzI1NiIsImtpZCI6Im5ldyIsInR5cCI6ImF0K2p3dCJ9.e30.AAAA"); err == nil {
			t.Fatal("junk token verified")
		}
	}
	if n := fetches.Load(); n != 1 {
		t.Fatalf("%d JWKS fetches, want 1 (rate-limited)", n)
	}
	cold, _ := NewRemoteVerifier(RemoteVerifierOptions{Issuer: f.base, Resource: f.base + "/mcp", JWKSURL: js.URL})
	_, err = cold.Verify(ctx, tok.str("access_token"))
	if e := oauth.AsError(err); e == nil || e.Code != "server_error" {
		t.Fatalf("verifier without keys: %v, want server_error", err)
	}
}
