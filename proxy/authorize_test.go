package proxy

import (
	"bytes"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// authQuery is a valid authorization request of client, with extra
// parameters set (an empty value removes one).
func authQuery(client string, extra url.Values) string {
	q := url.Values{
		"response_type": {"code"}, "client_id": {client}, "redirect_uri": {clientRedirect},
		"code_challenge": {challenge}, "code_challenge_method": {"S256"}, "state": {"client-state"},
		"scope": {"openid notes"}, "resource": {fakeResource},
	}
	for k, v := range extra {
		q[k] = v
		if len(v) == 1 && v[0] == "" {
			delete(q, k)
		}
	}
	return q.Encode()
}

// TestAuthorize: a valid request goes on to the upstream with the
// facade's client and callback, the client's challenge unchanged, a
// sealed state, the canonical resource and only the scopes offered; the
// upstream endpoint's own query is kept.
func TestAuthorize(t *testing.T) {
	fk := newFake(t, nil, func(o *Options) {
		o.AuthParams = map[string]string{"audience": "notes", "client_id": "evil", "prompt": "login"}
	})
	client := fk.register(t, "http://127.0.0.1/callback", "https://app.example/cb")
	// RFC 8252 §7.3: a loopback redirect URI may change its port.
	w := fk.serve("GET", AuthorizePath+"?"+authQuery(client, url.Values{"redirect_uri": {"http://127.0.0.1:8765/callback"}, "scope": {"openid evil notes openid"}}), "", "", nil)
	if w.Code != http.StatusFound {
		t.Fatalf("authorize: %d %s", w.Code, w.Body)
	}
	to, _ := url.Parse(w.Header().Get("Location"))
	q := to.Query()
	want := map[string]string{
		"response_type": "code", "client_id": upstreamClient, "redirect_uri": "http://127.0.0.1:9" + CallbackPath,
		"code_challenge": challenge, "code_challenge_method": "S256", "scope": "openid notes", "resource": fakeResource,
		"tenant": "t1", "audience": "notes", "prompt": "login",
	}
	for k, v := range want {
		if q.Get(k) != v {
			t.Errorf("upstream %s = %q, want %q", k, q.Get(k), v)
		}
	}
	if !strings.HasPrefix(to.String(), fk.srv.URL+"/auth?") || !strings.HasPrefix(q.Get("state"), prefixState) {
		t.Errorf("sent to %s", to)
	}
	if cc := w.Header().Get("Cache-Control"); cc != "no-store" {
		t.Errorf("Cache-Control %q", cc)
	}
	// No scope: all that is offered. No resource: the facade's.
	w = fk.serve("GET", AuthorizePath+"?"+authQuery(client, url.Values{"redirect_uri": {"https://app.example/cb"}, "scope": {""}, "resource": {""}}), "", "", nil)
	to, _ = url.Parse(w.Header().Get("Location"))
	if q := to.Query(); q.Get("scope") != "openid notes offline_access" || q.Get("resource") != fakeResource {
		t.Errorf("defaults: %v", q)
	}
	// POST works too (OAuth 2.1 §4.1.1).
	if w := fk.serve("POST", AuthorizePath, "application/x-www-form-urlencoded", authQuery(client, url.Values{"redirect_uri": {"https://app.example/cb"}}), nil); w.Code != http.StatusFound {
		t.Errorf("POST: %d", w.Code)
	}
}

// TestAuthorizeRefusals: what is wrong before the redirect URI is trusted
// is shown on a page (no open redirect); what is wrong after goes back to
// the client with error, state and iss.
func TestAuthorizeRefusals(t *testing.T) {
	fk := newFake(t, nil, nil)
	client := fk.register(t, clientRedirect)
	other, _ := New(t.Context(), Options{Issuer: fakeIssuer, Upstream: fk.srv.URL, ClientID: "x", Resource: fakeResource, Keys: [][]byte{bytes.Repeat([]byte{2}, 32)}})
	foreign := other.keys.seal(prefixClient, clientRecord{RedirectURIs: []string{"https://evil.example/cb"}})
	tampered := []byte(client)
	tampered[len(tampered)-5] ^= 1
	for _, tc := range []struct {
		name  string
		query string
		page  int    // the status of a page, or 0 for a redirect to the client
		error string // the error redirected to the client
	}{
		{"no client_id", authQuery("", url.Values{"client_id": {""}}), 400, ""},
		{"unknown client", authQuery("mcpp_cid_nope", nil), 400, ""},
		{"client of another key", authQuery(foreign, url.Values{"redirect_uri": {"https://evil.example/cb"}}), 400, ""},
		{"tampered client", authQuery(string(tampered), nil), 400, ""},
		{"unregistered redirect", authQuery(client, url.Values{"redirect_uri": {"https://evil.example/cb"}}), 400, ""},
		{"redirect with another path", authQuery(client, url.Values{"redirect_uri": {"http://127.0.0.1:8765/other"}}), 400, ""},
		{"redirect with a fragment", authQuery(client, url.Values{"redirect_uri": {clientRedirect + "#x"}}), 400, ""},
		{"repeated client_id", authQuery(client, nil) + "&client_id=" + url.QueryEscape(client), 400, ""},
		{"repeated redirect_uri", authQuery(client, nil) + "&redirect_uri=https%3A%2F%2Fevil.example%2Fcb", 400, ""},
		{"repeated scope", authQuery(client, nil) + "&scope=x", 400, ""},
		{"oversized query", authQuery(client, nil) + "&x=" + strings.Repeat("a", MaxFormBytes), http.StatusRequestURITooLong, ""},
		{"oversized parameter", authQuery(client, url.Values{"login_hint": {strings.Repeat("a", MaxParamLen+1)}}), 400, ""},
		{"malformed query", authQuery(client, nil) + "&%zz", 400, ""},
		{"no PKCE", authQuery(client, url.Values{"code_challenge": {""}, "code_challenge_method": {""}}), 0, "invalid_request"},
		{"plain PKCE", authQuery(client, url.Values{"code_challenge_method": {"plain"}}), 0, "invalid_request"},
		{"no PKCE method", authQuery(client, url.Values{"code_challenge_method": {""}}), 0, "invalid_request"},
		{"short challenge", authQuery(client, url.Values{"code_challenge": {"abc"}}), 0, "invalid_request"},
		{"challenge not base64url", authQuery(client, url.Values{"code_challenge": {strings.Repeat("~", 43)}}), 0, "invalid_request"},
		{"token response type", authQuery(client, url.Values{"response_type": {"token"}}), 0, "unsupported_response_type"},
		{"no response type", authQuery(client, url.Values{"response_type": {""}}), 0, "invalid_request"},
		{"another resource", authQuery(client, url.Values{"resource": {"https://other.example/mcp"}}), 0, "invalid_target"},
		{"state too long", authQuery(client, url.Values{"state": {strings.Repeat("s", MaxStateLen+1)}}), 0, "invalid_request"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := fk.serve("GET", AuthorizePath+"?"+tc.query, "", "", nil)
			if tc.page != 0 {
				if w.Code != tc.page || w.Header().Get("Location") != "" || !strings.Contains(w.Body.String(), "data-proxy-error") {
					t.Fatalf("%d %q %s, want a page with %d", w.Code, w.Header().Get("Location"), w.Body, tc.page)
				}
				if w.Header().Get("X-Frame-Options") != "DENY" || w.Header().Get("Content-Security-Policy") == "" {
					t.Error("the page lacks its security headers")
				}
				return
			}
			loc, _ := url.Parse(w.Header().Get("Location"))
			if w.Code != http.StatusFound || !strings.HasPrefix(loc.String(), clientRedirect+"?") {
				t.Fatalf("%d %q, want a redirect to the client", w.Code, loc)
			}
			q := loc.Query()
			wantState := "client-state"
			if tc.name == "state too long" {
				wantState = ""
			}
			if q.Get("error") != tc.error || q.Get("state") != wantState || q.Get("iss") != fakeIssuer || q.Get("code") != "" {
				t.Fatalf("redirected with %v, want error %s", q, tc.error)
			}
		})
	}
	if w := fk.serve("PUT", AuthorizePath+"?"+authQuery(client, nil), "", "", nil); w.Code != http.StatusMethodNotAllowed {
		t.Errorf("PUT: %d", w.Code)
	}
}

// TestCallback: the upstream's answer goes back to the client named in
// the sealed state, its code sealed to that client; a state the facade
// did not seal, or tampered, or repeated parameters, are shown on a page;
// an expired state, a wrong iss or an upstream error go back as errors.
func TestCallback(t *testing.T) {
	fk := newFake(t, nil, nil)
	client := fk.register(t, clientRedirect)
	good := fk.state(client, clientRedirect, time.Minute)
	tampered := []byte(good)
	tampered[len(tampered)-3] ^= 1
	other, _ := newKeyRing([][]byte{bytes.Repeat([]byte{9}, 32)})
	foreign := other.seal(prefixState, stateRecord{Client: clientDigest(client), RedirectURI: "https://evil.example/cb", Expires: fk.clock.Now().Add(time.Hour).Unix()})
	asCode := fk.f.keys.seal(prefixCode, stateRecord{RedirectURI: "https://evil.example/cb", Expires: fk.clock.Now().Add(time.Hour).Unix()})
	asCode = prefixState + strings.TrimPrefix(asCode, prefixCode) // a code's seal passed off as a state
	upstream := fk.srv.URL
	for _, tc := range []struct {
		name  string
		query url.Values
		raw   string // appended to the query
		page  int
		error string
	}{
		{"ok", url.Values{"code": {"up-code"}, "state": {good}, "iss": {upstream}}, "", 0, ""},
		{"ok without iss", url.Values{"code": {"up-code"}, "state": {good}}, "", 0, ""},
		{"no state", url.Values{"code": {"up-code"}}, "", 400, ""},
		{"forged state", url.Values{"code": {"up-code"}, "state": {"mcpp_st_forged"}}, "", 400, ""},
		{"tampered state", url.Values{"code": {"up-code"}, "state": {string(tampered)}}, "", 400, ""},
		{"state of another key", url.Values{"code": {"up-code"}, "state": {foreign}}, "", 400, ""},
		{"a code passed off as a state", url.Values{"code": {"up-code"}, "state": {asCode}}, "", 400, ""},
		{"repeated state", url.Values{"code": {"up-code"}, "state": {good}}, "&state=" + url.QueryEscape(good), 400, ""},
		{"repeated iss", url.Values{"code": {"up-code"}, "state": {good}}, "&iss=a&iss=b", 400, ""},
		{"repeated code", url.Values{"code": {"up-code"}, "state": {good}}, "&code=other", 400, ""},
		{"wrong iss", url.Values{"code": {"up-code"}, "state": {good}, "iss": {"https://evil.example"}}, "", 0, "server_error"},
		{"upstream error", url.Values{"error": {"access_denied"}, "error_description": {"the user said no"}, "state": {good}}, "", 0, "access_denied"},
		{"unknown upstream error", url.Values{"error": {"weird"}, "state": {good}}, "", 0, "server_error"},
		{"no code", url.Values{"state": {good}}, "", 0, "server_error"},
		{"oversized code", url.Values{"code": {strings.Repeat("c", maxUpstreamCode+1)}, "state": {good}}, "", 0, "server_error"},
		{"code with control characters", url.Values{"code": {"a\nb"}, "state": {good}}, "", 0, "server_error"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := fk.serve("GET", CallbackPath+"?"+tc.query.Encode()+tc.raw, "", "", nil)
			if tc.page != 0 {
				if w.Code != tc.page || w.Header().Get("Location") != "" {
					t.Fatalf("%d %q, want a page with %d", w.Code, w.Header().Get("Location"), tc.page)
				}
				return
			}
			loc, _ := url.Parse(w.Header().Get("Location"))
			if w.Code != http.StatusFound || !strings.HasPrefix(loc.String(), clientRedirect+"?") {
				t.Fatalf("%d %q %s, want a redirect to the client", w.Code, loc, w.Body)
			}
			q := loc.Query()
			if q.Get("error") != tc.error || q.Get("state") != "client-state" || q.Get("iss") != fakeIssuer {
				t.Fatalf("redirected with %v", q)
			}
			if tc.error != "" {
				if q.Get("code") != "" {
					t.Fatal("an error with a code")
				}
				return
			}
			var c codeRecord
			if err := fk.f.keys.open(prefixCode, q.Get("code"), &c); err != nil || c.Code != "up-code" || c.Client != clientDigest(client) {
				t.Fatalf("the code %+v, %v", c, err)
			}
		})
	}
	t.Run("upstream error description", func(t *testing.T) {
		w := fk.serve("GET", CallbackPath+"?"+url.Values{"error": {"access_denied"}, "error_description": {"no \"way\""}, "state": {good}}.Encode(), "", "", nil)
		loc, _ := url.Parse(w.Header().Get("Location"))
		if d := loc.Query().Get("error_description"); strings.Contains(d, "way") {
			t.Errorf("an unprintable description was relayed: %q", d)
		}
	})
	t.Run("expired state", func(t *testing.T) {
		st := fk.state(client, clientRedirect, time.Minute)
		fk.clock.Advance(2 * time.Minute)
		w := fk.serve("GET", CallbackPath+"?"+url.Values{"code": {"up-code"}, "state": {st}}.Encode(), "", "", nil)
		loc, _ := url.Parse(w.Header().Get("Location"))
		if q := loc.Query(); q.Get("error") != "access_denied" || q.Get("code") != "" {
			t.Fatalf("an expired state: %d %v", w.Code, q)
		}
	})
}

// TestCallbackIssRequired: an upstream that advertises RFC 9207 must send
// iss (§2.4).
func TestCallbackIssRequired(t *testing.T) {
	fk := newFake(t, func(m map[string]any) { m["authorization_response_iss_parameter_supported"] = true }, nil)
	client := fk.register(t, clientRedirect)
	st := fk.state(client, clientRedirect, time.Minute)
	for iss, want := range map[string]string{"": "server_error", fk.srv.URL: ""} {
		q := url.Values{"code": {"up-code"}, "state": {st}}
		if iss != "" {
			q.Set("iss", iss)
		}
		w := fk.serve("GET", CallbackPath+"?"+q.Encode(), "", "", nil)
		loc, _ := url.Parse(w.Header().Get("Location"))
		if got := loc.Query().Get("error"); got != want {
			t.Errorf("iss %q: error %q, want %q", iss, got, want)
		}
	}
}
