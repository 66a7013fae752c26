package mcpauth

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcp-oauth/oauth/internal/secret"
)

func TestAuthorizeErrorsShownNotRedirected(t *testing.T) {
	f := newFixture(t, nil)
	c := f.publicClient()
	multi := f.register(`{"redirect_uris":["https://a.example/cb","https://b.example/cb"],"token_endpoint_auth_method":"none"}`)
	for name, q := range map[string]url.Values{
		"no client_id":        {"response_type": {"code"}},
		"unknown client":      {"client_id": {"nope"}, "redirect_uri": {c.redirect}},
		"unregistered uri":    {"client_id": {c.id}, "redirect_uri": {"https://evil.example/cb"}},
		"other loopback path": {"client_id": {c.id}, "redirect_uri": {"http://127.0.0.1:3000/other"}},
		"repeated client_id":  {"client_id": {c.id, c.id}, "redirect_uri": {c.redirect}},
		"ambiguous default":   {"client_id": {multi.id}, "response_type": {"code"}},
	} {
		q.Set("state", "s1")
		r := f.get("/authorize?" + q.Encode())
		if r.status != 400 || r.header.Get("Location") != "" || !strings.Contains(string(r.body), "<html") {
			t.Errorf("%s: %d Location=%q", name, r.status, r.header.Get("Location"))
		}
		if r.header.Get("X-Frame-Options") != "DENY" || !strings.Contains(r.header.Get("Content-Security-Policy"), "frame-ancestors 'none'") {
			t.Errorf("%s: error page can be framed", name)
		}
	}
}

func TestAuthorizeErrorsRedirected(t *testing.T) {
	f := newFixture(t, nil)
	c := f.publicClient()
	for _, tc := range []struct {
		name string
		mut  func(url.Values)
		want string
	}{
		{"no response_type", func(q url.Values) { q.Del("response_type") }, "invalid_request"},
		{"implicit", func(q url.Values) { q.Set("response_type", "token") }, "unsupported_response_type"},
		{"no challenge", func(q url.Values) { q.Del("code_challenge") }, "invalid_request"},
		{"plain", func(q url.Values) { q.Set("code_challenge_method", "plain") }, "invalid_request"},
		{"no method (defaults to plain)", func(q url.Values) { q.Del("code_challenge_method") }, "invalid_request"},
		{"unknown method", func(q url.Values) { q.Set("code_challenge_method", "S512") }, "invalid_request"},
		{"short challenge", func(q url.Values) { q.Set("code_challenge", "abc") }, "invalid_request"},
		{"bad challenge chars", func(q url.Values) { q.Set("code_challenge", strings.Repeat("+", 43)) }, "invalid_request"},
		{"other resource", func(q url.Values) { q.Set("resource", "https://evil.example/mcp") }, "invalid_target"},
		{"resource other path", func(q url.Values) { q.Set("resource", f.base+"/mcp2") }, "invalid_target"},
	} {
		q := authParams(c)
		tc.mut(q)
		r := f.get("/authorize?" + q.Encode())
		loc, _ := url.Parse(r.header.Get("Location"))
		if r.status != http.StatusFound || loc == nil || !strings.HasPrefix(loc.String(), c.redirect) {
			t.Errorf("%s: %d %q", tc.name, r.status, r.header.Get("Location"))
			continue
		}
		got := loc.Query()
		if got.Get("error") != tc.want || got.Get("state") != "xyz" || got.Get("iss") != f.base || got.Get("code") != "" {
			t.Errorf("%s: redirect %s, want error=%s with state and iss", tc.name, loc, tc.want)
		}
	}
}

func TestAuthorizeAcceptsVariants(t *testing.T) {
	f := newFixture(t, nil)
	c := f.publicClient()
	for name, mut := range map[string]func(url.Values){
		"loopback on another port":   func(q url.Values) { q.Set("redirect_uri", "http://127.0.0.1:54321/cb") },
		"resource with slash":        func(q url.Values) { q.Set("resource", f.base+"/mcp/") },
		"exact resource":             func(q url.Values) { q.Set("resource", f.base+"/mcp") },
		"redirect omitted (one reg)": func(q url.Values) { q.Del("redirect_uri") },
		"unknown scope ignored":      func(q url.Values) { q.Set("scope", "mcp openid") },
	} {
		q := authParams(c)
		mut(q)
		u := f.authorize(q, f.approve("alice"))
		code := u.Query().Get("code")
		if code == "" || u.Query().Get("iss") != f.base || u.Query().Get("state") != "xyz" {
			t.Errorf("%s: redirect %s", name, u)
			continue
		}
		ru := q.Get("redirect_uri")
		form := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "code_verifier": {verifier}, "client_id": {c.id}, "resource": {f.base + "/mcp/"}}
		if ru != "" {
			form.Set("redirect_uri", ru)
		}
		r := f.post("/token", form, nil)
		if r.status != 200 {
			t.Errorf("%s: token %d %s", name, r.status, r.body)
		}
	}
}

func TestSecondRegisteredRedirectURI(t *testing.T) {
	f := newFixture(t, nil)
	c := f.register(`{"redirect_uris":["cursor://anysphere.cursor-mcp/oauth/callback","https://app.example/cb","http://127.0.0.1:3000/cb"],"token_endpoint_auth_method":"none"}`)
	for _, ru := range []string{"https://app.example/cb", "cursor://anysphere.cursor-mcp/oauth/callback", "http://127.0.0.1:5555/cb"} {
		q := authParams(c)
		q.Set("redirect_uri", ru)
		u := f.authorize(q, f.approve("alice"))
		if u.Query().Get("code") == "" || !strings.HasPrefix(u.String(), strings.Split(ru, "?")[0]) {
			t.Errorf("%s: redirect %s", ru, u)
			continue
		}
		form := url.Values{"grant_type": {"authorization_code"}, "code": {u.Query().Get("code")}, "code_verifier": {verifier}, "redirect_uri": {ru}, "client_id": {c.id}}
		if r := f.post("/token", form, nil); r.status != 200 {
			t.Errorf("%s: token %d %s", ru, r.status, r.body)
		}
	}
}

func TestDenyAndReload(t *testing.T) {
	f := newFixture(t, nil)
	c := f.register(`{"redirect_uris":["http://127.0.0.1:3000/cb"],"token_endpoint_auth_method":"none","client_name":"<script>alert(1)</script>"}`)
	r := f.get("/authorize?" + authParams(c).Encode())
	loc, _ := url.Parse(r.header.Get("Location"))
	page := f.getURL(loc)
	if strings.Contains(string(page.body), "<script>alert") || !strings.Contains(string(page.body), "&lt;script&gt;alert(1)&lt;/script&gt;") {
		t.Fatal("client_name is not escaped on the device page")
	}
	if page.header.Get("Cache-Control") != "no-store" || page.header.Get("X-Frame-Options") != "DENY" {
		t.Fatal("device page headers")
	}
	m := userCodeRE.FindSubmatch(page.body)
	if _, err := f.h.DefaultProvider().Deny(context.Background(), strings.ToLower(string(m[1]))); err != nil {
		t.Fatal(err)
	}
	if _, err := f.h.Approve(context.Background(), string(m[1]), "alice"); err == nil {
		t.Fatal("approved a denied request")
	}
	r = f.getURL(loc)
	to, _ := url.Parse(r.header.Get("Location"))
	if r.status != 303 || to.Query().Get("error") != "access_denied" || to.Query().Get("state") != "xyz" || to.Query().Get("iss") != f.base {
		t.Fatalf("denied: %d %s", r.status, to)
	}

	// An approved request yields exactly one code, however often the page is loaded.
	u := f.authorize(authParams(c), f.approve("alice"))
	if u.Query().Get("code") == "" {
		t.Fatal("no code")
	}
	r = f.get("/authorize?" + authParams(c).Encode())
	loc2, _ := url.Parse(r.header.Get("Location"))
	page = f.getURL(loc2)
	m = userCodeRE.FindSubmatch(page.body)
	f.approve("alice")(string(m[1]))
	var wg sync.WaitGroup
	codes := make(chan string, 10)
	for i := 0; i < 10; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := f.getURL(loc2)
			if r.status == 303 {
				to, _ := url.Parse(r.header.Get("Location"))
				codes <- to.Query().Get("code")
			}
		}()
	}
	wg.Wait()
	close(codes)
	if n := len(codes); n != 1 {
		t.Fatalf("%d codes from concurrent reloads, want 1", n)
	}
	if r := f.getURL(loc2); r.status != 200 || !strings.Contains(string(r.body), "completed") {
		t.Fatalf("reload after completion: %d", r.status)
	}
	// A wrong user code with a valid handle does not reveal the request.
	q := loc2.Query()
	q.Set("user_code", "BCDF-GHJK")
	if r := f.get(loc2.Path + "?" + q.Encode()); r.status != 404 {
		t.Fatalf("wrong user code: %d", r.status)
	}
}

func TestTokenErrors(t *testing.T) {
	f := newFixture(t, nil)
	pub := f.publicClient()
	conf := f.register(`{"redirect_uris":["https://app.example/cb"],"token_endpoint_auth_method":"client_secret_post"}`)
	other := f.publicClient()
	code := f.code(pub)
	base := func() url.Values {
		return url.Values{"grant_type": {"authorization_code"}, "code": {code}, "code_verifier": {verifier}, "redirect_uri": {pub.redirect}, "client_id": {pub.id}}
	}
	with := func(k, v string) url.Values { q := base(); q.Set(k, v); return q }
	without := func(k string) url.Values { q := base(); q.Del(k); return q }
	for _, tc := range []struct {
		name   string
		form   url.Values
		basic  []string
		status int
		err    string
	}{
		{"no grant_type", without("grant_type"), nil, 400, "invalid_request"},
		{"password grant", with("grant_type", "password"), nil, 400, "unsupported_grant_type"},
		{"unknown client", with("client_id", "nope"), nil, 401, "invalid_client"},
		{"no client", without("client_id"), nil, 401, "invalid_client"},
		{"confidential without secret", url.Values{"grant_type": {"authorization_code"}, "code": {code}, "client_id": {conf.id}}, nil, 401, "invalid_client"},
		{"confidential wrong secret", url.Values{"grant_type": {"authorization_code"}, "code": {code}, "client_id": {conf.id}, "client_secret": {"mcp_cs_wrong"}}, nil, 401, "invalid_client"},
		{"basic wrong secret", url.Values{"grant_type": {"authorization_code"}, "code": {code}}, []string{conf.id, "wrong"}, 401, "invalid_client"},
		{"basic and post", url.Values{"grant_type": {"authorization_code"}, "client_secret": {conf.secret}}, []string{conf.id, conf.secret}, 400, "invalid_request"},
		{"public with secret", with("client_secret", "x"), nil, 401, "invalid_client"},
		{"no code", without("code"), nil, 400, "invalid_request"},
		{"no verifier", without("code_verifier"), nil, 400, "invalid_request"},
		{"short verifier", with("code_verifier", "abc"), nil, 400, "invalid_request"},
		{"wrong verifier", with("code_verifier", strings.Repeat("a", 43)), nil, 400, "invalid_grant"},
		{"wrong redirect", with("redirect_uri", "http://127.0.0.1:3000/other"), nil, 400, "invalid_grant"},
		{"missing explicit redirect", without("redirect_uri"), nil, 400, "invalid_grant"},
		{"other client's code", with("client_id", other.id), nil, 400, "invalid_grant"},
		{"confidential other's code", url.Values{"grant_type": {"authorization_code"}, "code": {code}, "code_verifier": {verifier}, "redirect_uri": {pub.redirect}}, []string{conf.id, conf.secret}, 400, "invalid_grant"},
		{"wrong resource", with("resource", "https://evil.example/mcp"), nil, 400, "invalid_target"},
		{"junk code", with("code", "junk"), nil, 400, "invalid_grant"},
		{"repeated param", func() url.Values { q := base(); q.Add("code", code); return q }(), nil, 400, "invalid_request"},
		{"huge param", with("state", strings.Repeat("a", MaxParamLen+1)), nil, 400, "invalid_request"},
	} {
		r := f.post("/token", tc.form, tc.basic)
		if r.status != tc.status || r.str("error") != tc.err {
			t.Errorf("%s: %d %s, want %d %s", tc.name, r.status, r.body, tc.status, tc.err)
		}
		if r.header.Get("Cache-Control") != "no-store" || r.header.Get("Pragma") != "no-cache" {
			t.Errorf("%s: missing no-store", tc.name)
		}
		if tc.status == 401 && r.header.Get("WWW-Authenticate") == "" {
			t.Errorf("%s: 401 without WWW-Authenticate", tc.name)
		}
	}
	// None of the failures above consumed the code.
	r := f.exchange(pub, code)
	if r.status != 200 || r.str("token_type") != "Bearer" || r.str("access_token") == "" || r.str("refresh_token") == "" || r.header.Get("Cache-Control") != "no-store" {
		t.Fatalf("exchange after failures: %d %s", r.status, r.body)
	}
	// Wrong content type and query-string parameters.
	req, _ := http.NewRequest("POST", f.base+"/token", strings.NewReader(`{"grant_type":"authorization_code"}`))
	req.Header.Set("Content-Type", "application/json")
	if r := f.do(req); r.status != 400 || r.str("error") != "invalid_request" {
		t.Errorf("json body: %d %s", r.status, r.body)
	}
	req, _ = http.NewRequest("POST", f.base+"/token?code=x", strings.NewReader(base().Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if r := f.do(req); r.status != 400 {
		t.Errorf("query params: %d", r.status)
	}
	req, _ = http.NewRequest("POST", f.base+"/token", strings.NewReader("a="+strings.Repeat("b", MaxFormBytes)))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if r := f.do(req); r.status != 413 {
		t.Errorf("oversized body: %d", r.status)
	}
}

func TestConfidentialClientBothMethods(t *testing.T) {
	f := newFixture(t, nil)
	for _, method := range []string{"client_secret_post", "client_secret_basic"} {
		c := f.register(`{"redirect_uris":["https://claude.ai/api/mcp/auth_callback"],"token_endpoint_auth_method":"` + method + `"}`)
		if !strings.HasPrefix(c.secret, "mcp_cs_") {
			t.Fatalf("%s: no secret", method)
		}
		code := f.code(c)
		form := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "code_verifier": {verifier}, "redirect_uri": {c.redirect}}
		var r *response
		if method == "client_secret_basic" {
			r = f.post("/token", form, []string{c.id, c.secret})
		} else {
			form.Set("client_id", c.id)
			form.Set("client_secret", c.secret)
			r = f.post("/token", form, nil)
		}
		if r.status != 200 {
			t.Fatalf("%s: %d %s", method, r.status, r.body)
		}
	}
}

func TestCodeReplayRevokes(t *testing.T) {
	f := newFixture(t, nil)
	c := f.publicClient()
	code := f.code(c)
	first := f.exchange(c, code)
	if first.status != 200 {
		t.Fatal(first.status)
	}
	second := f.exchange(c, code)
	if second.status != 400 || second.str("error") != "invalid_grant" {
		t.Fatalf("replay: %d %s", second.status, second.body)
	}
	if r := f.mcpCall(first.str("access_token"), initialize); r.status != 401 {
		t.Errorf("access token of a replayed code still works: %d", r.status)
	}
	r := f.post("/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {first.str("refresh_token")}, "client_id": {c.id}}, nil)
	if r.status != 400 {
		t.Errorf("refresh token of a replayed code still works: %d", r.status)
	}
}

func TestConcurrentCodeRedemption(t *testing.T) {
	f := newFixture(t, nil)
	c := f.publicClient()
	code := f.code(c)
	var wg sync.WaitGroup
	var mu sync.Mutex
	ok := 0
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if r := f.exchange(c, code); r.status == 200 {
				mu.Lock()
				ok++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if ok != 1 {
		t.Fatalf("%d successful redemptions of one code, want 1", ok)
	}
}

func TestRefreshRotation(t *testing.T) {
	f := newFixture(t, nil)
	c, tok := f.tokens()
	refresh := func(rt string) *response {
		return f.post("/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}, "client_id": {c.id}}, nil)
	}
	rt0 := tok.str("refresh_token")
	r1 := refresh(rt0)
	if r1.status != 200 || r1.str("refresh_token") == rt0 || r1.header.Get("Cache-Control") != "no-store" {
		t.Fatalf("first refresh: %d %s", r1.status, r1.body)
	}
	// The response was "lost": the client retries with rt0, which still works
	// because its successor was never used.
	r2 := refresh(rt0)
	if r2.status != 200 {
		t.Fatalf("retry with the previous token: %d %s", r2.status, r2.body)
	}
	// The superseded successor from the lost response is dead, and presenting it is replay.
	if r := refresh(r1.str("refresh_token")); r.status != 400 || r.str("error") != "invalid_grant" {
		t.Fatalf("superseded successor: %d %s", r.status, r.body)
	}
	if r := f.mcpCall(r2.str("access_token"), initialize); r.status != 401 {
		t.Fatalf("replay did not revoke the grant: %d", r.status)
	}

	// Normal chain: once the successor is used, the previous token is spent.
	c, tok = f.tokens()
	a := refresh(tok.str("refresh_token"))
	b := f.post("/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {a.str("refresh_token")}, "client_id": {c.id}}, nil)
	if a.status != 200 || b.status != 200 {
		t.Fatalf("chain: %d %d", a.status, b.status)
	}
	r := f.post("/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.str("refresh_token")}, "client_id": {c.id}}, nil)
	if r.status != 400 || r.str("error") != "invalid_grant" {
		t.Fatalf("spent token: %d %s", r.status, r.body)
	}
	if r := f.mcpCall(b.str("access_token"), initialize); r.status != 401 {
		t.Fatalf("spent refresh token did not revoke the grant: %d", r.status)
	}

	// Another client cannot use the token.
	c, tok = f.tokens()
	other := f.publicClient()
	r = f.post("/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.str("refresh_token")}, "client_id": {other.id}}, nil)
	if r.status != 400 || r.str("error") != "invalid_grant" {
		t.Fatalf("other client's refresh token: %d %s", r.status, r.body)
	}
	if r := f.post("/token", url.Values{"grant_type": {"refresh_token"}, "client_id": {c.id}}, nil); r.str("error") != "invalid_request" {
		t.Fatalf("missing refresh_token: %s", r.body)
	}
	if r := f.post("/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.str("refresh_token")}, "client_id": {c.id}, "resource": {"https://evil.example"}}, nil); r.str("error") != "invalid_target" {
		t.Fatalf("refresh for another resource: %s", r.body)
	}
}

func TestConcurrentRefresh(t *testing.T) {
	f := newFixture(t, nil)
	c, tok := f.tokens()
	var wg sync.WaitGroup
	var mu sync.Mutex
	var issued []string
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := f.post("/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.str("refresh_token")}, "client_id": {c.id}}, nil)
			if r.status == 200 {
				mu.Lock()
				issued = append(issued, r.str("refresh_token"))
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	// Presentations that raced the first rotation lose (one rotation per
	// observed state); later ones are retries that supersede the unused
	// successor. Either way the chain must end with exactly one live token.
	if len(issued) == 0 {
		t.Fatal("no refresh succeeded")
	}
	live := 0
	for _, rt := range issued {
		rec, err := f.store.GetRefreshToken(context.Background(), secret.Hash(rt), time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if rec.Successor == "" && !rec.Spent {
			live++
		}
	}
	if live != 1 {
		t.Fatalf("%d live refresh tokens after %d concurrent refreshes, want 1", live, len(issued))
	}
}

// TestDeletedClient: a deleted client gets 401 invalid_client at /token
// (Claude re-registers on that), and its grants stop working.
func TestDeletedClient(t *testing.T) {
	f := newFixture(t, nil)
	c, tok := f.tokens()
	code := f.code(c)
	if err := f.h.DefaultProvider().DeleteClient(context.Background(), c.id); err != nil {
		t.Fatal(err)
	}
	for name, r := range map[string]*response{
		"code":    f.exchange(c, code),
		"refresh": f.post("/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.str("refresh_token")}, "client_id": {c.id}}, nil),
	} {
		if r.status != 401 || r.str("error") != "invalid_client" || r.header.Get("WWW-Authenticate") == "" {
			t.Errorf("%s: %d %s", name, r.status, r.body)
		}
	}
	if r := f.mcpCall(tok.str("access_token"), initialize); r.status != 401 {
		t.Errorf("access token of a deleted client: %d", r.status)
	}
	if r := f.get("/authorize?" + authParams(c).Encode()); r.status != 400 || r.header.Get("Location") != "" {
		t.Errorf("authorize for a deleted client: %d", r.status)
	}
}
