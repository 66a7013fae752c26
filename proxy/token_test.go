package proxy

import (
	"encoding/base64"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// TestTokenForwarding: what reaches the upstream's token endpoint, and
// what the client gets back.
func TestTokenForwarding(t *testing.T) {
	fk := newFake(t, nil, func(o *Options) { o.TokenParams = map[string]string{"audience": "notes", "code": "evil"} })
	client := fk.register(t, clientRedirect)
	status, body := fk.post(TokenPath, url.Values{"grant_type": {"authorization_code"}, "client_id": {client},
		"code": {fk.code(client, clientRedirect, time.Minute)}, "redirect_uri": {clientRedirect}, "code_verifier": {verifier}, "resource": {fakeResource + "/"}}, nil)
	if status != 200 || body["access_token"] != "at-1" || body["token_type"] != "Bearer" || body["expires_in"] != 300.0 || body["scope"] != "openid" {
		t.Fatalf("token: %d %v", status, body)
	}
	if _, ok := body["id_token"]; ok {
		t.Error("the upstream's id_token was relayed")
	}
	rt, _ := body["refresh_token"].(string)
	var rec refreshRecord
	if err := fk.f.keys.open(prefixRefresh, rt, &rec); err != nil || rec.Token != "rt-1" || rec.Client != clientDigest(client) {
		t.Fatalf("refresh token %+v %v", rec, err)
	}
	form, header := fk.lastForm()
	want := url.Values{"grant_type": {"authorization_code"}, "code": {"up-code"}, "redirect_uri": {"http://127.0.0.1:9" + CallbackPath},
		"code_verifier": {verifier}, "resource": {fakeResource}, "audience": {"notes"}}
	if form.Encode() != want.Encode() {
		t.Errorf("the upstream got %v, want %v", form, want)
	}
	if header.Get("Authorization") != "Basic "+base64.StdEncoding.EncodeToString([]byte(upstreamClient+":"+upstreamSecret)) {
		t.Errorf("the upstream got Authorization %q", header.Get("Authorization"))
	}

	// Refresh, narrowed to an offered scope; the unoffered is dropped.
	status, body = fk.post(TokenPath, url.Values{"grant_type": {"refresh_token"}, "client_id": {client}, "refresh_token": {rt}, "scope": {"notes evil"}}, nil)
	if status != 200 || body["access_token"] != "at-1" {
		t.Fatalf("refresh: %d %v", status, body)
	}
	form, _ = fk.lastForm()
	if form.Get("refresh_token") != "rt-1" || form.Get("scope") != "notes" || form.Get("grant_type") != "refresh_token" {
		t.Errorf("the upstream got %v", form)
	}
	fk.post(TokenPath, url.Values{"grant_type": {"refresh_token"}, "client_id": {client}, "refresh_token": {rt}, "scope": {"evil"}}, nil)
	if form, _ = fk.lastForm(); form.Has("scope") {
		t.Errorf("nothing offered was asked, yet the upstream got scope %q", form.Get("scope"))
	}
}

// TestTokenUpstreamAnswers: how each upstream answer reaches the client.
func TestTokenUpstreamAnswers(t *testing.T) {
	fk := newFake(t, func(m map[string]any) { m["token_endpoint_auth_methods_supported"] = []string{"client_secret_post"} }, func(o *Options) { o.OmitResource = true })
	client := fk.register(t, clientRedirect)
	for _, tc := range []struct {
		name   string
		status int
		ctype  string
		body   string
		want   int
		error  string
		check  func(t *testing.T, body map[string]any)
	}{
		{"expires_in as a string", 200, "application/json", `{"access_token":"a","token_type":"Bearer","expires_in":"3599"}`, 200, "", func(t *testing.T, b map[string]any) {
			if b["expires_in"] != 3599.0 || b["refresh_token"] != nil {
				t.Errorf("%v", b)
			}
		}},
		{"no access token", 200, "application/json", `{"token_type":"Bearer"}`, 502, "server_error", nil},
		{"not JSON", 200, "text/html", `<html>`, 502, "server_error", nil},
		{"oversized answer", 200, "application/json", `{"access_token":"` + strings.Repeat("a", maxUpstreamBytes) + `","token_type":"Bearer"}`, 502, "server_error", nil},
		{"oversized refresh token", 200, "application/json", `{"access_token":"a","token_type":"Bearer","refresh_token":"` + strings.Repeat("r", maxUpstreamRefresh+1) + `"}`, 200, "", func(t *testing.T, b map[string]any) {
			if b["refresh_token"] != nil {
				t.Error("an oversized refresh token was sealed")
			}
		}},
		{"invalid_grant", 400, "application/json", `{"error":"invalid_grant","error_description":"code expired"}`, 400, "invalid_grant", func(t *testing.T, b map[string]any) {
			if b["error_description"] != "refused by the identity provider: code expired" {
				t.Errorf("%v", b)
			}
		}},
		{"invalid_client is ours", 401, "application/json", `{"error":"invalid_client"}`, 502, "server_error", nil},
		{"unauthorized_client is ours", 400, "application/json", `{"error":"unauthorized_client"}`, 502, "server_error", nil},
		{"upstream down", 503, "text/plain", `down`, 502, "server_error", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fk.setAnswer(func(w http.ResponseWriter, _ string, _ url.Values) {
				w.Header().Set("Content-Type", tc.ctype)
				w.WriteHeader(tc.status)
				io.WriteString(w, tc.body)
			})
			status, body := fk.post(TokenPath, url.Values{"grant_type": {"authorization_code"}, "client_id": {client},
				"code": {fk.code(client, clientRedirect, time.Minute)}, "code_verifier": {verifier}}, nil)
			if status != tc.want || (tc.error != "" && body["error"] != tc.error) {
				t.Fatalf("%d %v, want %d %s", status, body, tc.want, tc.error)
			}
			if tc.check != nil {
				tc.check(t, body)
			}
		})
	}
	// client_secret_post, and no resource (OmitResource).
	form, header := fk.lastForm()
	if form.Get("client_id") != upstreamClient || form.Get("client_secret") != upstreamSecret || header.Get("Authorization") != "" || form.Has("resource") {
		t.Errorf("the upstream got %v, Authorization %q", form, header.Get("Authorization"))
	}
}

// TestTokenRefusals: requests refused before anything reaches the
// upstream, each with its RFC 6749 §5.2 error and no-store.
func TestTokenRefusals(t *testing.T) {
	fk := newFake(t, nil, nil)
	client := fk.register(t, clientRedirect)
	other := fk.register(t, clientRedirect)
	code := fk.code(client, clientRedirect, time.Minute)
	base := url.Values{"grant_type": {"authorization_code"}, "client_id": {client}, "code": {code}, "redirect_uri": {clientRedirect}, "code_verifier": {verifier}}
	with := func(k, v string) url.Values {
		f := url.Values{}
		for key, vs := range base {
			f[key] = vs
		}
		if v == "" {
			delete(f, k)
		} else {
			f.Set(k, v)
		}
		return f
	}
	tampered := []byte(code)
	tampered[len(tampered)-4] ^= 1
	basic := http.Header{"Authorization": {"Basic " + base64.StdEncoding.EncodeToString([]byte(client+":"))}}
	for _, tc := range []struct {
		name   string
		form   url.Values
		raw    string // the body instead of form
		ctype  string
		header http.Header
		status int
		error  string
	}{
		{"no client_id", with("client_id", ""), "", "", nil, 400, "invalid_request"},
		{"unknown client", with("client_id", "mcpp_cid_x"), "", "", nil, 401, "invalid_client"},
		{"a secret", with("client_secret", "s"), "", "", nil, 401, "invalid_client"},
		{"basic authentication", base, "", "", basic, 401, "invalid_client"},
		{"no grant_type", with("grant_type", ""), "", "", nil, 400, "invalid_request"},
		{"password grant", with("grant_type", "password"), "", "", nil, 400, "unsupported_grant_type"},
		{"client_credentials", with("grant_type", "client_credentials"), "", "", nil, 400, "unsupported_grant_type"},
		{"forged code", with("code", "mcpp_code_forged"), "", "", nil, 400, "invalid_grant"},
		{"tampered code", with("code", string(tampered)), "", "", nil, 400, "invalid_grant"},
		{"a state as code", with("code", fk.state(client, clientRedirect, time.Minute)), "", "", nil, 400, "invalid_grant"},
		{"expired code", with("code", fk.code(client, clientRedirect, -time.Second)), "", "", nil, 400, "invalid_grant"},
		{"another client's code", with("client_id", other), "", "", nil, 400, "invalid_grant"},
		{"another redirect_uri", with("redirect_uri", "http://127.0.0.1:8765/other"), "", "", nil, 400, "invalid_grant"},
		{"no code_verifier", with("code_verifier", ""), "", "", nil, 400, "invalid_request"},
		{"short code_verifier", with("code_verifier", "abc"), "", "", nil, 400, "invalid_request"},
		{"another resource", with("resource", "https://other.example/mcp"), "", "", nil, 400, "invalid_target"},
		{"forged refresh token", url.Values{"grant_type": {"refresh_token"}, "client_id": {client}, "refresh_token": {"mcpp_rt_x"}}, "", "", nil, 400, "invalid_grant"},
		{"the upstream's raw refresh token", url.Values{"grant_type": {"refresh_token"}, "client_id": {client}, "refresh_token": {"up-rt"}}, "", "", nil, 400, "invalid_grant"},
		{"another client's refresh token", url.Values{"grant_type": {"refresh_token"}, "client_id": {other}, "refresh_token": {fk.refresh(client)}}, "", "", nil, 400, "invalid_grant"},
		{"repeated code", nil, base.Encode() + "&code=x", "", nil, 400, "invalid_request"},
		{"repeated client_id", nil, base.Encode() + "&client_id=" + url.QueryEscape(other), "", nil, 400, "invalid_request"},
		{"oversized body", nil, base.Encode() + "&x=" + strings.Repeat("a", MaxFormBytes), "", nil, 413, "invalid_request"},
		{"oversized parameter", with("scope", strings.Repeat("s", MaxParamLen+1)), "", "", nil, 400, "invalid_request"},
		{"JSON body", nil, `{"grant_type":"authorization_code"}`, "application/json", nil, 400, "invalid_request"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body, ctype := tc.raw, tc.ctype
			if tc.form != nil {
				body = tc.form.Encode()
			}
			if ctype == "" {
				ctype = "application/x-www-form-urlencoded"
			}
			fk.setAnswer(func(w http.ResponseWriter, _ string, _ url.Values) { t.Error("the request reached the upstream") })
			w := fk.serve("POST", TokenPath, ctype, body, tc.header)
			if w.Code != tc.status || !strings.Contains(w.Body.String(), `"error":"`+tc.error+`"`) {
				t.Fatalf("%d %s, want %d %s", w.Code, w.Body, tc.status, tc.error)
			}
			if w.Header().Get("Cache-Control") != "no-store" || w.Header().Get("Content-Type") != "application/json" {
				t.Errorf("headers %v", w.Header())
			}
			if tc.status == 401 && w.Header().Get("WWW-Authenticate") == "" {
				t.Error("a 401 without WWW-Authenticate")
			}
		})
	}
	if w := fk.serve("GET", TokenPath, "", "", nil); w.Code != http.StatusMethodNotAllowed {
		t.Errorf("GET: %d", w.Code)
	}
}

// TestRevokeAndIntrospect: what reaches the upstream's revocation and
// introspection endpoints, and the answers the facade gives.
func TestRevokeAndIntrospect(t *testing.T) {
	fk := newFake(t, nil, nil)
	client := fk.register(t, clientRedirect)
	if status, _ := fk.post(RevokePath, url.Values{"client_id": {client}, "token": {fk.refresh(client)}}, nil); status != 200 {
		t.Fatalf("revoke: %d", status)
	}
	if form, _ := fk.lastForm(); form.Get("token") != "up-rt" || form.Get("token_type_hint") != "refresh_token" {
		t.Errorf("the upstream got %v", form)
	}
	if status, _ := fk.post(RevokePath, url.Values{"client_id": {client}, "token": {"an-access-token"}}, nil); status != 200 {
		t.Fatalf("revoke an access token: %d", status)
	}
	if form, _ := fk.lastForm(); form.Get("token") != "an-access-token" || form.Get("token_type_hint") != "access_token" {
		t.Errorf("the upstream got %v", form)
	}
	for _, tc := range []struct {
		name   string
		form   url.Values
		answer int
		status int
		error  string
	}{
		{"no client", url.Values{"token": {"t"}}, 200, 401, "invalid_client"},
		{"no token", url.Values{"client_id": {client}}, 200, 400, "invalid_request"},
		{"upstream refuses the token", url.Values{"client_id": {client}, "token": {"t"}}, 400, 200, ""},
		{"upstream down", url.Values{"client_id": {client}, "token": {"t"}}, 500, 503, "temporarily_unavailable"},
		{"our code is no token", url.Values{"client_id": {client}, "token": {fk.code(client, clientRedirect, time.Minute)}}, 500, 200, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fk.setAnswer(func(w http.ResponseWriter, _ string, _ url.Values) { w.WriteHeader(tc.answer) })
			status, body := fk.post(RevokePath, tc.form, nil)
			if status != tc.status || (tc.error != "" && body["error"] != tc.error) {
				t.Fatalf("%d %v, want %d %s", status, body, tc.status, tc.error)
			}
		})
	}

	rs := http.Header{"Authorization": {"Basic " + base64.StdEncoding.EncodeToString([]byte(rsID+":"+rsSecret))}}
	for _, tc := range []struct {
		name   string
		answer string
		active bool
	}{
		{"for us", `{"active":true,"aud":"` + fakeResource + `","sub":"u"}`, true},
		{"for us among others", `{"active":true,"aud":["x","` + fakeResource + `"]}`, true},
		{"for another API", `{"active":true,"aud":["https://other.example"]}`, false},
		{"no aud", `{"active":true}`, false},
		{"another issuer", `{"active":true,"aud":"` + fakeResource + `","iss":"https://evil.example"}`, false},
		{"inactive", `{"active":false}`, false},
		{"active as a string", `{"active":"true","aud":"` + fakeResource + `"}`, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fk.setAnswer(func(w http.ResponseWriter, _ string, _ url.Values) {
				w.Header().Set("Content-Type", "application/json")
				io.WriteString(w, tc.answer)
			})
			status, body := fk.post(IntrospectPath, url.Values{"token": {"t"}}, rs)
			if status != 200 || body["active"] != tc.active {
				t.Fatalf("%d %v", status, body)
			}
		})
	}
	fk.setAnswer(func(w http.ResponseWriter, _ string, _ url.Values) { w.WriteHeader(500) })
	if status, body := fk.post(IntrospectPath, url.Values{"token": {"t"}}, rs); status != 502 || body["error"] != "server_error" {
		t.Errorf("upstream down: %d %v", status, body)
	}
	if status, _ := fk.post(IntrospectPath, url.Values{"token": {"t"}, "client_id": {client}}, nil); status != 401 {
		t.Errorf("an MCP client introspected: %d", status)
	}
}
