package proxy

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mcp-oauth/oauth/internal/redirect"
)

// FuzzOpen: whatever a client sends as a client_id, state, code or
// refresh token never panics and opens only as what this facade sealed,
// of that kind.
func FuzzOpen(f *testing.F) {
	ring, _ := newKeyRing([][]byte{make([]byte, 32)})
	records := [...]any{
		clientRecord{RedirectURIs: []string{clientRedirect}, IssuedAt: 1},
		stateRecord{Client: "c", RedirectURI: clientRedirect, State: "s", Expires: 2},
		codeRecord{Client: "c", Redirect: "r", Code: "up", Expires: 3},
		refreshRecord{Client: "c", Token: "up-rt"},
	}
	sealed := map[string]string{}
	for i, p := range []string{prefixClient, prefixState, prefixCode, prefixRefresh} {
		sealed[p] = ring.seal(p, records[i])
	}
	for _, s := range sealed {
		f.Add(s)
		f.Add(s[:len(s)-1])
		f.Add(s + "A")
		f.Add(strings.Replace(s, "_", "-", 2))
	}
	f.Add("")
	f.Add(prefixClient)
	f.Add(prefixState + "e30")
	f.Add(prefixCode + strings.Repeat("A", maxSealedLen))
	f.Fuzz(func(t *testing.T, v string) {
		// Only these records were ever sealed under this key (seeds come
		// from other processes, whose nonces differ: compare records).
		var c clientRecord
		if ring.open(prefixClient, v, &c) == nil && mustJSON(c) != mustJSON(records[0]) {
			t.Fatalf("%q opened as a client %+v", v, c)
		}
		var st stateRecord
		if ring.open(prefixState, v, &st) == nil && st != records[1] {
			t.Fatalf("%q opened as a state %+v", v, st)
		}
		var cr codeRecord
		if ring.open(prefixCode, v, &cr) == nil && cr != records[2] {
			t.Fatalf("%q opened as a code %+v", v, cr)
		}
		var rt refreshRecord
		if ring.open(prefixRefresh, v, &rt) == nil && rt != records[3] {
			t.Fatalf("%q opened as a refresh token %+v", v, rt)
		}
	})
}

// FuzzAuthorize: whatever the query of /authorize, the facade never
// panics or fails, and redirects only to the upstream or to the
// registered client's redirect URI (no open redirect).
func FuzzAuthorize(f *testing.F) {
	fk := newFake(f, nil, nil)
	client := fk.register(f, clientRedirect, "https://app.example/cb")
	f.Add(authQuery(client, nil))
	f.Add(authQuery(client, url.Values{"redirect_uri": {"http://127.0.0.1:1/callback"}}))
	f.Add(authQuery(client, url.Values{"redirect_uri": {"https://evil.example/cb"}}))
	f.Add(authQuery(client, url.Values{"code_challenge": {""}}))
	f.Add(authQuery(client, nil) + "&redirect_uri=x")
	f.Add("client_id=" + client + "&redirect_uri=https%3A%2F%2Fapp.example%2Fcb%2F..%2F..%2Fevil")
	f.Add("%")
	f.Fuzz(func(t *testing.T, query string) {
		w := fk.serveQuery(AuthorizePath, query)
		if w.Code >= 500 {
			t.Fatalf("%d for %q", w.Code, query)
		}
		if loc := w.Header().Get("Location"); loc != "" {
			u, err := url.Parse(loc)
			if err != nil {
				t.Fatalf("Location %q", loc)
			}
			u.RawQuery, u.Fragment = "", ""
			to := u.String()
			if !strings.HasPrefix(loc, fk.srv.URL+"/auth?") && !redirect.Match([]string{clientRedirect, "https://app.example/cb"}, to) {
				t.Fatalf("redirected to %q for %q", loc, query)
			}
		}
	})
}

// FuzzCallback: whatever the upstream (or an attacker) sends to
// /callback, the facade never panics and redirects only to the redirect
// URI a state it sealed names.
func FuzzCallback(f *testing.F) {
	fk := newFake(f, nil, nil)
	client := fk.register(f, clientRedirect)
	st := fk.state(client, clientRedirect, time.Hour)
	f.Add(url.Values{"code": {"c"}, "state": {st}}.Encode())
	f.Add(url.Values{"code": {"c"}, "state": {st}, "iss": {fk.srv.URL}}.Encode())
	f.Add(url.Values{"error": {"access_denied"}, "state": {st}}.Encode())
	f.Add("state=" + st[:len(st)-2])
	f.Add("state=" + prefixState)
	f.Fuzz(func(t *testing.T, query string) {
		w := fk.serveQuery(CallbackPath, query)
		if w.Code >= 500 {
			t.Fatalf("%d for %q", w.Code, query)
		}
		if loc := w.Header().Get("Location"); loc != "" && !strings.HasPrefix(loc, clientRedirect+"?") {
			t.Fatalf("redirected to %q", loc)
		}
	})
}

// FuzzToken: whatever the body of /token, the facade never panics, and
// reaches the upstream only with a code or refresh token it sealed.
func FuzzToken(f *testing.F) {
	fk := newFake(f, nil, nil)
	client := fk.register(f, clientRedirect)
	var forged atomic.Bool
	fk.setAnswer(func(w http.ResponseWriter, _ string, form url.Values) {
		if form.Get("code") != "up-code" && form.Get("refresh_token") != "up-rt" {
			forged.Store(true)
		}
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"access_token":"a","token_type":"Bearer"}`)
	})
	f.Add(url.Values{"grant_type": {"authorization_code"}, "client_id": {client}, "code": {fk.code(client, clientRedirect, time.Hour)}, "code_verifier": {verifier}}.Encode())
	f.Add(url.Values{"grant_type": {"refresh_token"}, "client_id": {client}, "refresh_token": {fk.refresh(client)}}.Encode())
	f.Add(url.Values{"grant_type": {"refresh_token"}, "client_id": {client}, "refresh_token": {"up-rt"}}.Encode())
	f.Add("grant_type=authorization_code&code=%00")
	f.Fuzz(func(t *testing.T, body string) {
		w := fk.serve("POST", TokenPath, "application/x-www-form-urlencoded", body, nil)
		if w.Code >= 500 || forged.Load() {
			t.Fatalf("%d, upstream reached with a forged value: %v, for %q", w.Code, forged.Load(), body)
		}
		if !json.Valid(w.Body.Bytes()) {
			t.Fatalf("not JSON: %s", w.Body)
		}
	})
}

// FuzzRegister: whatever the registration body, the facade never panics,
// and registers only redirect URIs a real authorization server accepts.
func FuzzRegister(f *testing.F) {
	fk := newFake(f, nil, nil)
	f.Add(`{"redirect_uris":["http://127.0.0.1/cb"]}`)
	f.Add(`{"redirect_uris":["https://a.example/cb","cursor://x/cb"],"grant_types":["authorization_code","refresh_token"]}`)
	f.Add(`{"redirect_uris":["javascript:x"]}`)
	f.Add(`{"redirect_uris":null}`)
	f.Add(`[]`)
	f.Fuzz(func(t *testing.T, body string) {
		w := fk.serve("POST", RegisterPath, "application/json", body, nil)
		if w.Code >= 500 {
			t.Fatalf("%d for %q", w.Code, body)
		}
		if w.Code != http.StatusCreated {
			return
		}
		var resp struct {
			ClientID string `json:"client_id"`
		}
		json.Unmarshal(w.Body.Bytes(), &resp)
		c, err := fk.f.client(resp.ClientID)
		if err != nil {
			t.Fatalf("the client_id issued does not open: %v", err)
		}
		for _, u := range c.RedirectURIs {
			if e := redirect.Check(u); e != nil {
				t.Fatalf("registered %q: %v", u, e)
			}
		}
	})
}

// FuzzUpstreamTokenAnswer: whatever the upstream's token endpoint
// answers, the client gets a well-formed answer: a token response with an
// access token, or an RFC 6749 §5.2 error whose description is printable.
func FuzzUpstreamTokenAnswer(f *testing.F) {
	fk := newFake(f, nil, nil)
	client := fk.register(f, clientRedirect)
	f.Add(200, `{"access_token":"a","token_type":"Bearer","expires_in":1e99}`)
	f.Add(400, `{"error":"invalid_grant","error_description":"\u0000"}`)
	f.Add(400, `{"error":"invalid_grant","error_description":"`+strings.Repeat("x", 400)+`"}`)
	f.Add(200, `{"access_token":"a","token_type":"Bearer","expires_in":"-5","refresh_token":7}`)
	f.Add(302, ``)
	f.Fuzz(func(t *testing.T, status int, body string) {
		if status < 200 || status > 599 {
			return
		}
		fk.setAnswer(func(w http.ResponseWriter, _ string, _ url.Values) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(status)
			io.WriteString(w, body)
		})
		code, out := fk.post(TokenPath, url.Values{"grant_type": {"authorization_code"}, "client_id": {client},
			"code": {fk.code(client, clientRedirect, time.Hour)}, "code_verifier": {verifier}}, nil)
		switch {
		case code == 200:
			if s, _ := out["access_token"].(string); s == "" {
				t.Fatalf("200 without an access token: %v", out)
			}
			if n, ok := out["expires_in"].(float64); ok && n <= 0 {
				t.Fatalf("expires_in %v", n)
			}
		default:
			d, _ := out["error_description"].(string)
			if e, _ := out["error"].(string); e == "" || !validErrorText(d) {
				t.Fatalf("%d %v", code, out)
			}
		}
	})
}
