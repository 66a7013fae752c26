package mcpauth

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"golang.org/x/crypto/bcrypt"

	oauth "github.com/mcp-oauth/oauth"
	"github.com/mcp-oauth/oauth/approval"
	"github.com/mcp-oauth/oauth/internal/page"
)

// consoleClient is a browser-like HTTP client with a cookie jar.
type consoleClient struct {
	t    *testing.T
	f    *fixture
	hc   *http.Client
	csrf string
}

var csrfRE = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func newConsoleClient(t *testing.T, f *fixture) *consoleClient {
	jar, _ := cookiejar.New(nil)
	return &consoleClient{t: t, f: f, hc: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return nil }}}
}

func (c *consoleClient) get(path string) (int, string, http.Header) {
	c.t.Helper()
	return c.getWith(path, nil)
}

// getWith is get with extra request headers.
func (c *consoleClient) getWith(path string, hdr map[string]string) (int, string, http.Header) {
	c.t.Helper()
	req, _ := http.NewRequest("GET", c.f.base+path, nil)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if m := csrfRE.FindSubmatch(b); m != nil {
		c.csrf = string(m[1])
	}
	return resp.StatusCode, string(b), resp.Header
}

func (c *consoleClient) post(path string, form url.Values, hdr map[string]string) (int, string) {
	c.t.Helper()
	req, _ := http.NewRequest("POST", c.f.base+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if m := csrfRE.FindSubmatch(b); m != nil {
		c.csrf = string(m[1])
	}
	return resp.StatusCode, string(b)
}

// signedIn returns a console client signed in as owner.
func signedIn(t *testing.T, f *fixture) *consoleClient {
	t.Helper()
	addOwner(t, f)
	c := newConsoleClient(t, f)
	c.get("/console")
	st, body := c.post("/console/signin", url.Values{"csrf": {c.csrf}, "name": {"owner"}, "password": {"correct horse battery"}}, nil)
	if st != 200 || !strings.Contains(body, "data-enter-code") {
		t.Fatalf("sign in: %d %s", st, body)
	}
	return c
}

// TestConsoleSignIn: the form signs in with the right password only, says
// the same for a wrong password and an unknown name, refuses a post without
// the form's CSRF token, and serves every page with the framing headers.
func TestConsoleSignIn(t *testing.T) {
	f := newFixture(t, nil)
	addOwner(t, f)
	c := newConsoleClient(t, f)
	st, body, hdr := c.get("/console")
	if st != 200 || !strings.Contains(body, "data-signin") {
		t.Fatalf("console signed out: %d %s", st, body)
	}
	if hdr.Get("X-Frame-Options") != "DENY" || !strings.Contains(hdr.Get("Content-Security-Policy"), "frame-ancestors 'none'") ||
		strings.Contains(hdr.Get("Content-Security-Policy"), "script-src") || hdr.Get("Cache-Control") != "no-store" ||
		hdr.Get("X-Content-Type-Options") != "nosniff" || hdr.Get("Referrer-Policy") != "no-referrer" {
		t.Errorf("console headers %v", hdr)
	}
	if st, body := c.post("/console/signin", url.Values{"name": {"owner"}, "password": {"correct horse battery"}}, nil); st != http.StatusForbidden ||
		!strings.Contains(body, "nothing was changed") || !strings.Contains(body, "data-signin") || strings.Contains(body, "data-user>") {
		t.Errorf("sign-in without the CSRF token: %d %s, want 403 and the sign-in form again", st, body)
	}
	c.get("/console")
	_, wrongPw := c.post("/console/signin", url.Values{"csrf": {c.csrf}, "name": {"owner"}, "password": {"wrong password!"}}, nil)
	_, unknown := c.post("/console/signin", url.Values{"csrf": {c.csrf}, "name": {"nobody"}, "password": {"correct horse battery"}}, nil)
	errRE := regexp.MustCompile(`data-error>([^<]*)<`)
	m1, m2 := errRE.FindStringSubmatch(wrongPw), errRE.FindStringSubmatch(unknown)
	if m1 == nil || m2 == nil || m1[1] != m2[1] {
		t.Errorf("sign-in errors differ or are missing: %q vs %q", m1, m2)
	}
	st, body = c.post("/console/signin", url.Values{"csrf": {c.csrf}, "name": {"owner"}, "password": {"correct horse battery"}}, nil)
	if st != 200 || !strings.Contains(body, "data-enter-code") || !strings.Contains(body, `data-user>owner<`) {
		t.Fatalf("sign in: %d %s", st, body)
	}
}

// TestConsoleRefusesForgedPosts: a post without the session's CSRF token,
// with another session's token, or from another site is refused, and
// changes nothing.
func TestConsoleRefusesForgedPosts(t *testing.T) {
	f := newFixture(t, nil)
	c := signedIn(t, f)
	cl := f.publicClient()
	for name, tc := range map[string]struct {
		form url.Values
		hdr  map[string]string
	}{
		"no token":          {url.Values{"client_id": {cl.id}}, nil},
		"wrong token":       {url.Values{"client_id": {cl.id}, "csrf": {page.CSRFToken("mcp_sess_other")}}, nil},
		"cross-site fetch":  {url.Values{"client_id": {cl.id}, "csrf": {c.csrf}}, map[string]string{"Sec-Fetch-Site": "cross-site"}},
		"cross-site origin": {url.Values{"client_id": {cl.id}, "csrf": {c.csrf}}, map[string]string{"Origin": "https://evil.example"}},
	} {
		if st, body := c.post("/console/clients/delete", tc.form, tc.hdr); st != http.StatusForbidden {
			t.Errorf("%s: status %d, want 403", name, st)
		} else if tc.hdr == nil && !strings.Contains(body, "nothing was changed") {
			t.Errorf("%s: the refusal does not say nothing changed: %s", name, body)
		}
	}
	if _, err := f.h.DefaultProvider().GetClient(context.Background(), cl.id); err != nil {
		t.Fatalf("a refused post deleted the client: %v", err)
	}
	if st, _ := c.post("/console/clients/delete", url.Values{"client_id": {cl.id}, "csrf": {c.csrf}}, nil); st != 200 {
		t.Errorf("a genuine delete: status %d", st)
	}
	if _, err := f.h.DefaultProvider().GetClient(context.Background(), cl.id); err == nil {
		t.Error("the genuine delete did not delete the client")
	}
}

// TestConsoleApproveAndLimits: entering a code (any case, hyphen optional)
// shows what is asked, with the client's name escaped; approving decides
// the request; unknown codes are refused and limited per session.
func TestConsoleApproveAndLimits(t *testing.T) {
	f := newFixture(t, nil)
	c := signedIn(t, f)
	cl := f.register(`{"redirect_uris":["http://127.0.0.1:3000/cb"],"token_endpoint_auth_method":"none","client_name":"<script>alert(1)</script>"}`)
	r := f.get("/authorize?" + authParams(cl).Encode())
	loc, _ := url.Parse(r.header.Get("Location"))
	code := loc.Query().Get("user_code")
	st, body, _ := c.get("/console/approve?user_code=" + url.QueryEscape(strings.ToLower(strings.ReplaceAll(code, "-", ""))))
	if st != 200 || !strings.Contains(body, `data-user-code="`+code+`"`) || strings.Contains(body, "<script>alert(1)") ||
		!strings.Contains(body, "&lt;script&gt;alert(1)&lt;/script&gt;") || !strings.Contains(body, "127.0.0.1:3000") {
		t.Fatalf("confirmation: %d %s", st, body)
	}
	if st, body := c.post("/console/decide", url.Values{"csrf": {c.csrf}, "user_code": {code}, "action": {"approve"}}, nil); st != 200 || !strings.Contains(body, "Approved") {
		t.Fatalf("approve: %d %s", st, body)
	}
	if p, err := f.h.DefaultProvider().PendingByUserCode(context.Background(), code); err != nil || p.Status != "approved" || p.Subject != "owner" {
		t.Fatalf("request after approval: %+v, %v", p, err)
	}
	for i := range 10 {
		if st, _, _ := c.get("/console/approve?user_code=BBBB-BBB" + string(rune('B'+i))); st != http.StatusNotFound {
			t.Fatalf("unknown code %d: status %d, want 404", i, st)
		}
	}
	if st, _, _ := c.get("/console/approve?user_code=" + code); st != http.StatusTooManyRequests {
		t.Errorf("after 10 wrong codes in a minute: status %d, want 429", st)
	}
}

// TestQuickAuthorizeRefusals: the authorize tab's Approve button works
// only for a signed-in browser that holds the tab's handle, with the
// session's CSRF token, from this site; a signed-out tab shows no button.
func TestQuickAuthorizeRefusals(t *testing.T) {
	f := newFixture(t, nil)
	cl := f.publicClient()
	r := f.get("/authorize?" + authParams(cl).Encode())
	loc, _ := url.Parse(r.header.Get("Location"))
	if page := f.getURL(loc); strings.Contains(string(page.body), "data-quick-approve") {
		t.Error("a signed-out browser is offered quick approval")
	}
	c := signedIn(t, f)
	_, body, _ := c.get(loc.RequestURI())
	if !strings.Contains(body, "data-quick-approve") {
		t.Fatalf("a signed-in browser is not offered quick approval: %s", body)
	}
	q := loc.Query()
	path := loc.Path + "?" + loc.RawQuery
	for name, tc := range map[string]struct {
		form url.Values
		hdr  map[string]string
	}{
		"no token":    {url.Values{"request": {q.Get("request")}, "user_code": {q.Get("user_code")}}, nil},
		"cross-site":  {url.Values{"request": {q.Get("request")}, "user_code": {q.Get("user_code")}, "csrf": {c.csrf}}, map[string]string{"Sec-Fetch-Site": "cross-site"}},
		"wrong token": {url.Values{"request": {q.Get("request")}, "user_code": {q.Get("user_code")}, "csrf": {page.CSRFToken("mcp_sess_x")}}, nil},
	} {
		if st, _ := c.post(path, tc.form, tc.hdr); st != http.StatusForbidden {
			t.Errorf("%s: status %d, want 403", name, st)
		}
	}
	if st, _ := c.post(path, url.Values{"request": {"mcp_req_forged"}, "user_code": {q.Get("user_code")}, "csrf": {c.csrf}}, nil); st != http.StatusNotFound {
		t.Errorf("quick approval without the tab's handle: status %d, want 404", st)
	}
	if p, _ := f.h.DefaultProvider().PendingByUserCode(context.Background(), q.Get("user_code")); p == nil || p.Status != "pending" {
		t.Fatalf("a refused quick approval decided the request: %+v", p)
	}
}

// TestDeviceCodeThroughConsole: with Wrap's own provider, a device's
// verification URIs point at the console; opening the complete one signed
// out asks to sign in and then shows that code's confirmation, where the
// owner approves, and the device's next poll gets tokens.
func TestDeviceCodeThroughConsole(t *testing.T) {
	f := newFixture(t, nil)
	addOwner(t, f)
	reg := f.postJSON("/register", `{"grant_types":["urn:ietf:params:oauth:grant-type:device_code"],"token_endpoint_auth_method":"none","client_name":"CLI"}`, nil)
	da := f.post(PathDeviceAuthorization, url.Values{"client_id": {reg.str("client_id")}}, nil)
	uc := da.str("user_code")
	complete := da.str("verification_uri_complete")
	if da.str("verification_uri") != f.base+"/console" || complete != f.base+"/console/approve?user_code="+url.QueryEscape(uc) {
		t.Fatalf("verification URIs: %s", da.body)
	}
	c := newConsoleClient(t, f)
	_, body, _ := c.get(strings.TrimPrefix(complete, f.base))
	if !strings.Contains(body, "data-signin") || !strings.Contains(body, `name="user_code" value="`+uc+`"`) {
		t.Fatalf("signed-out verification page: %s", body)
	}
	st, body := c.post("/console/signin", url.Values{"csrf": {c.csrf}, "name": {"owner"}, "password": {"correct horse battery"}, "user_code": {uc}}, nil)
	if st != 200 || !strings.Contains(body, `data-user-code="`+uc+`"`) || !strings.Contains(body, "A device or command-line application") {
		t.Fatalf("after sign-in: %d %s", st, body)
	}
	if st, _ := c.post("/console/decide", url.Values{"csrf": {c.csrf}, "user_code": {uc}, "action": {"approve"}}, nil); st != 200 {
		t.Fatalf("approve: %d", st)
	}
	tok := f.post(PathToken, url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:device_code"}, "device_code": {da.str("device_code")},
		"client_id": {reg.str("client_id")}}, nil)
	if tok.status != 200 || tok.str("access_token") == "" {
		t.Fatalf("device poll after approval in the console: %d %s", tok.status, tok.body)
	}
}

// TestConsoleHostIdentity: with a host-provided Identity the console
// shows no password form; whoever Identity names can approve, with forms
// still protected by a CSRF token; nobody else can.
func TestConsoleHostIdentity(t *testing.T) {
	f := newFixture(t, func(o *Options) {
		o.Console.SignInURL = "https://sso.example/login"
		o.Console.Identity = approval.IdentityFunc(func(r *http.Request) (string, error) { return r.Header.Get("X-Test-User"), nil })
	})
	c := newConsoleClient(t, f)
	st, body, _ := c.get("/console")
	if st != 200 || strings.Contains(body, "data-signin") || !strings.Contains(body, `href="https://sso.example/login"`) {
		t.Fatalf("console without an identity: %d %s", st, body)
	}
	cl := f.publicClient()
	r := f.get("/authorize?" + authParams(cl).Encode())
	loc, _ := url.Parse(r.header.Get("Location"))
	code := loc.Query().Get("user_code")
	asHost := map[string]string{"X-Test-User": "hostuser"}
	st, page, _ := c.getWith("/console/approve?user_code="+code, asHost)
	m := csrfRE.FindStringSubmatch(page)
	if st != 200 || m == nil {
		t.Fatalf("confirmation for the host's user: %d %s", st, page)
	}
	if st, _ := c.post("/console/decide", url.Values{"user_code": {code}, "action": {"approve"}}, asHost); st != http.StatusForbidden {
		t.Errorf("decide without the CSRF token: %d, want 403", st)
	}
	if st, _ := c.post("/console/decide", url.Values{"csrf": {m[1]}, "user_code": {code}, "action": {"approve"}}, nil); st != http.StatusForbidden {
		t.Errorf("decide by nobody: %d, want 403", st)
	}
	if st, _ := c.post("/console/decide", url.Values{"csrf": {m[1]}, "user_code": {code}, "action": {"approve"}}, asHost); st != 200 {
		t.Fatalf("decide as the host's user: %d", st)
	}
	if p, _ := f.h.DefaultProvider().PendingByUserCode(context.Background(), code); p == nil || p.Subject != "hostuser" {
		t.Errorf("request after approval: %+v", p)
	}
}

// TestLogoOnPages: a configured logo appears on the tab and the console,
// and the CSP allows images from its origin and no other.
func TestLogoOnPages(t *testing.T) {
	f := newFixture(t, func(o *Options) { o.ApprovalPage.LogoURL = "https://cdn.example/logo.png" })
	cl := f.publicClient()
	r := f.get("/authorize?" + authParams(cl).Encode())
	loc, _ := url.Parse(r.header.Get("Location"))
	for name, resp := range map[string]*response{"tab": f.getURL(loc), "console": f.get("/console")} {
		if !strings.Contains(string(resp.body), `<img src="https://cdn.example/logo.png"`) ||
			!strings.HasSuffix(resp.header.Get("Content-Security-Policy"), "; img-src https://cdn.example") {
			t.Errorf("%s: logo or CSP missing: %v %s", name, resp.header.Get("Content-Security-Policy"), resp.body)
		}
	}
}

// TestSetupStep: a host's setup step runs in the authorize tab once the
// request is approved (never before), refuses cross-site and CSRF-less
// posts, re-shows its form with an error for a wrong value, and completes
// with data: the grant keeps the value for tools (GrantData) and the claim
// reaches the access token and CallerOf.
func TestSetupStep(t *testing.T) {
	step := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		problem := ""
		if r.Method == http.MethodPost {
			if ws := r.PostFormValue("workspace"); ws == "acme" || ws == "globex" {
				v, err := JSONValue("workspace", ws, 0)
				if err != nil {
					t.Error(err)
				}
				approval.Complete(r, &oauth.GrantSetup{Values: []oauth.GrantValue{v},
					Claims: map[string]any{"tenant": ws, "account": oauth.Sealed{Value: "acct-" + ws}}})
				return
			}
			problem = "unknown workspace"
		}
		io.WriteString(w, `<form method="post" data-step>`+string(approval.StepFields(r))+`<p class="error">`+problem+`</p><input name="workspace"></form>`)
	})
	f := newFixture(t, func(o *Options) { o.ApprovalPage.Step = step })
	mcp.AddTool(f.h.served[0].Server, &mcp.Tool{Name: "whoami"}, func(ctx context.Context, req *mcp.CallToolRequest, _ struct{}) (*mcp.CallToolResult, any, error) {
		ws, err := GrantData[string](ctx, req, "workspace")
		caller, _ := CallerOf(req)
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: fmt.Sprintf("%s %v %v %v", ws, err, caller.Claims["tenant"], caller.Claims["account"])}}}, nil, nil
	})
	cl := f.publicClient()
	r := f.get("/authorize?" + authParams(cl).Encode())
	loc, _ := url.Parse(r.header.Get("Location"))
	if page := f.getURL(loc); strings.Contains(string(page.body), "data-step") {
		t.Fatal("the step ran before approval")
	}
	if _, err := f.h.Approve(context.Background(), loc.Query().Get("user_code"), "alice"); err != nil {
		t.Fatal(err)
	}
	page := f.getURL(loc)
	if page.status != 200 || !strings.Contains(string(page.body), "data-step") {
		t.Fatalf("after approval the tab shows %d %s, want the step's form", page.status, page.body)
	}
	hidden := url.Values{}
	for _, m := range regexp.MustCompile(`name="(mcpauth_[a-z_]+)" value="([^"]*)"`).FindAllStringSubmatch(string(page.body), -1) {
		hidden.Set(m[1], html.UnescapeString(m[2]))
	}
	if hidden.Get(approval.StepField) == "" || len(hidden) < 2 {
		t.Fatalf("the step's form lacks its hidden fields: %v", hidden)
	}
	post := func(workspace string, fields url.Values, hdr map[string]string) *response {
		form := url.Values{"workspace": {workspace}}
		for k, v := range fields {
			form[k] = v
		}
		req, _ := http.NewRequest("POST", loc.String(), strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		return f.do(req)
	}
	if r := post("acme", hidden, map[string]string{"Sec-Fetch-Site": "cross-site"}); r.status != http.StatusForbidden {
		t.Errorf("cross-site step post: %d, want 403", r.status)
	}
	if r := post("acme", url.Values{approval.StepField: {"1"}}, nil); r.status != http.StatusForbidden {
		t.Errorf("step post without the CSRF token: %d, want 403", r.status)
	}
	if r := post("initech", hidden, nil); !strings.Contains(string(r.body), "unknown workspace") || !strings.Contains(string(r.body), "data-step") {
		t.Errorf("a wrong value did not re-show the form with its error: %s", r.body)
	}
	done := post("acme", hidden, nil)
	m := regexp.MustCompile(`http-equiv="refresh" content="0;url=([^"]+)"`).FindSubmatch(done.body)
	if done.status != 200 || m == nil {
		t.Fatalf("completing the step: %d %s", done.status, done.body)
	}
	back, _ := url.Parse(html.UnescapeString(string(m[1])))
	tok := f.exchange(cl, back.Query().Get("code"))
	if tok.status != 200 {
		t.Fatalf("token: %d %s", tok.status, tok.body)
	}
	payload, _ := base64.RawURLEncoding.DecodeString(strings.Split(tok.str("access_token"), ".")[1])
	if !strings.Contains(string(payload), `"tenant":"acme"`) || strings.Contains(string(payload), "acct-acme") {
		t.Errorf("the JWT lacks the step's claim, or shows its sealed one: %s", payload)
	}
	if got := callTool(t, f, tok.str("access_token"), "whoami"); got != "acme <nil> acme acct-acme" {
		t.Errorf("whoami = %q, want the workspace from grant data, the tenant claim and the sealed account claim", got)
	}
	if final := f.getURL(loc); final.status != 200 || !strings.Contains(string(final.body), "completed") {
		t.Errorf("the tab after completion: %d %s", final.status, final.body)
	}
}

// callTool initializes an MCP session with token and calls tool, and
// returns the text of its result.
func callTool(t *testing.T, f *fixture, token, tool string) string {
	t.Helper()
	send := f.mcpSession(token)
	r := send(`{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"` + tool + `","arguments":{}}}`)
	m := regexp.MustCompile(`"text":"((?:[^"\\]|\\.)*)"`).FindSubmatch(r.body)
	if r.status != 200 || m == nil {
		t.Fatalf("tools/call %s: %d %s", tool, r.status, r.body)
	}
	var text string
	if err := json.Unmarshal([]byte(`"`+string(m[1])+`"`), &text); err != nil {
		t.Fatal(err)
	}
	return text
}

// addOwner creates the console user "owner" (password "correct horse
// battery") in f's store, with the cheapest bcrypt cost.
func addOwner(t *testing.T, f *fixture) {
	t.Helper()
	accounts := approval.NewAccounts(f.store, approval.AccountsOptions{BcryptCost: bcrypt.MinCost})
	if err := accounts.AddUser(context.Background(), "owner", "correct horse battery"); err != nil {
		t.Fatal(err)
	}
}

// TestConsoleListsAreBounded: however many clients a flood of
// registrations leaves, the console's home page shows the newest 100 and
// says how many there are.
func TestConsoleListsAreBounded(t *testing.T) {
	f := newFixture(t, nil)
	c := signedIn(t, f)
	var ids []string
	for range 105 {
		ids = append(ids, f.publicClient().id)
	}
	st, body, _ := c.get("/console")
	if st != 200 || strings.Count(body, "data-delete=") != 100 || !strings.Contains(body, "Showing the newest 100 of 105.") {
		t.Fatalf("console home: %d, %d delete buttons", st, strings.Count(body, "data-delete="))
	}
	if !strings.Contains(body, ids[104]) || strings.Contains(body, ids[0]) {
		t.Error("the console does not show the newest clients, or shows the oldest")
	}
}

// TestConsoleCodeGuessing: wrong codes are limited per console user
// however they are tried (the confirmation page, or a direct post to
// /decide, which takes a code too), and concurrent guesses cannot all
// pass the check before any is counted; a live code costs nothing.
func TestConsoleCodeGuessing(t *testing.T) {
	t.Run("decide", func(t *testing.T) {
		f := newFixture(t, nil)
		c := signedIn(t, f)
		for i := range 10 {
			if st, _ := c.post("/console/decide", url.Values{"csrf": {c.csrf}, "user_code": {fmt.Sprintf("BBBB-BBB%c", 'B'+i)}, "action": {"approve"}}, nil); st != http.StatusConflict {
				t.Fatalf("wrong code %d through /decide: status %d, want 409", i, st)
			}
		}
		cl := f.publicClient()
		loc, _ := url.Parse(f.get("/authorize?" + authParams(cl).Encode()).header.Get("Location"))
		live := loc.Query().Get("user_code")
		if st, _ := c.post("/console/decide", url.Values{"csrf": {c.csrf}, "user_code": {live}, "action": {"approve"}}, nil); st != http.StatusTooManyRequests {
			t.Errorf("after 10 wrong codes through /decide: status %d, want 429", st)
		}
		// Another signed-in browser of the same user shares the limit.
		other := newConsoleClient(t, f)
		other.get("/console")
		other.post("/console/signin", url.Values{"csrf": {other.csrf}, "name": {"owner"}, "password": {"correct horse battery"}}, nil)
		if st, _, _ := other.get("/console/approve?user_code=" + live); st != http.StatusTooManyRequests {
			t.Errorf("a second session of the same user: status %d, want 429", st)
		}
	})
	t.Run("concurrent", func(t *testing.T) {
		f := newFixture(t, nil)
		c := signedIn(t, f)
		const n = 40
		var wg sync.WaitGroup
		statuses := make(chan int, n)
		for i := range n {
			wg.Go(func() {
				resp, err := c.hc.Get(f.base + fmt.Sprintf("/console/approve?user_code=CCCC-%04d", i))
				if err != nil {
					t.Error(err)
					return
				}
				resp.Body.Close()
				statuses <- resp.StatusCode
			})
		}
		wg.Wait()
		close(statuses)
		looked := 0
		for st := range statuses {
			if st == http.StatusNotFound {
				looked++
			}
		}
		if looked > 10 {
			t.Errorf("%d of %d concurrent wrong codes were looked up, want at most 10", looked, n)
		}
	})
	t.Run("live codes are free", func(t *testing.T) {
		f := newFixture(t, nil)
		c := signedIn(t, f)
		for i := range 12 {
			cl := f.publicClient()
			loc, _ := url.Parse(f.get("/authorize?" + authParams(cl).Encode()).header.Get("Location"))
			if st, _, _ := c.get("/console/approve?user_code=" + loc.Query().Get("user_code")); st != 200 {
				t.Fatalf("live code %d: status %d", i, st)
			}
		}
	})
}

// TestConsoleSignInBehindProxy: with TrustProxyHeaders, the per-address
// sign-in limit counts the address the proxy forwarded, so one client's
// failures do not lock everyone else out; the sign-in page never repeats
// a link's text that is not a code.
func TestConsoleSignInBehindProxy(t *testing.T) {
	f := newFixture(t, func(o *Options) { o.TrustProxyHeaders = true })
	addOwner(t, f)
	n := 0
	attempt := func(c *consoleClient, from, password string) string {
		n++ // a new name each time, so that no name's lockout plays a part
		c.get("/console")
		_, body := c.post("/console/signin", url.Values{"csrf": {c.csrf}, "name": {fmt.Sprint("someone", n)}, "password": {password}},
			map[string]string{"X-Forwarded-For": "203.0.113.200, " + from})
		return body
	}
	mallory := newConsoleClient(t, f)
	for range 10 {
		if body := attempt(mallory, "198.51.100.66", "not the password"); !strings.Contains(body, "wrong user name or password") {
			t.Fatal("an attempt within the address's budget was not checked")
		}
	}
	if body := attempt(mallory, "198.51.100.66", "not the password"); !strings.Contains(body, "too many sign-in attempts") {
		t.Error("the forwarded address was not limited")
	}
	owner := newConsoleClient(t, f)
	owner.get("/console")
	st, body := owner.post("/console/signin", url.Values{"csrf": {owner.csrf}, "name": {"owner"}, "password": {"correct horse battery"}},
		map[string]string{"X-Forwarded-For": "192.0.2.10"})
	if st != 200 || !strings.Contains(body, "data-enter-code") {
		t.Errorf("the owner from another address behind the same proxy: %d", st)
	}
	_, page, _ := newConsoleClient(t, f).get("/console/approve?user_code=" + url.QueryEscape("CALL +1 555 0100 NOW"))
	if strings.Contains(page, "CALL") || strings.Contains(page, "0100") {
		t.Error("the sign-in page shows a link's arbitrary text")
	}
	_, page, _ = newConsoleClient(t, f).get("/console/approve?user_code=kxwtbmrd")
	if !strings.Contains(page, "<strong>KXWT-BMRD</strong>") {
		t.Error("the sign-in page does not name a code-shaped user_code in display form")
	}
}

// TestQuickAuthorizeWithHostIdentity: with a host Identity, a browser the
// host says is signed in gets the quick Approve button on the tab even if
// it never opened the console, and the button works.
func TestQuickAuthorizeWithHostIdentity(t *testing.T) {
	f := newFixture(t, func(o *Options) {
		o.Console.Identity = approval.IdentityFunc(func(r *http.Request) (string, error) { return r.Header.Get("X-Test-User"), nil })
	})
	cl := f.publicClient()
	loc, _ := url.Parse(f.get("/authorize?" + authParams(cl).Encode()).header.Get("Location"))
	c := newConsoleClient(t, f)
	_, tab, _ := c.getWith(loc.RequestURI(), map[string]string{"X-Test-User": "hostuser"})
	m := csrfRE.FindStringSubmatch(tab)
	if !strings.Contains(tab, "data-quick-approve") || m == nil {
		t.Fatalf("the tab offers no quick approval to the host's user: %s", tab)
	}
	q := loc.Query()
	st, _ := c.post(loc.Path+"?"+loc.RawQuery, url.Values{"csrf": {m[1]}, "request": {q.Get("request")}, "user_code": {q.Get("user_code")}, "action": {"approve"}},
		map[string]string{"X-Test-User": "hostuser"})
	if p, _ := f.h.DefaultProvider().PendingByUserCode(context.Background(), q.Get("user_code")); st != 200 || p == nil || p.Subject != "hostuser" {
		t.Errorf("quick approval as the host's user: %d, %+v", st, p)
	}
}

// TestConsoleConfirmedDecisionIsNotLimited: a decision posted from the
// confirmation page goes through even when the code-entry limits are used
// up (others' guesses cannot stop the owner from approving or denying what
// they have on screen), while a decision with a made-up confirmation is a
// tried code like any other.
func TestConsoleConfirmedDecisionIsNotLimited(t *testing.T) {
	f := newFixture(t, nil)
	c := signedIn(t, f)
	cl := f.publicClient()
	loc, _ := url.Parse(f.get("/authorize?" + authParams(cl).Encode()).header.Get("Location"))
	code := loc.Query().Get("user_code")
	_, page, _ := c.get("/console/approve?user_code=" + code)
	m := regexp.MustCompile(`name="confirm" value="([^"]+)"`).FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("the confirmation page has no confirm field: %s", page)
	}
	for i := range 10 {
		c.post("/console/decide", url.Values{"csrf": {c.csrf}, "user_code": {fmt.Sprintf("DDDD-DDD%c", 'B'+i)}, "action": {"deny"}}, nil)
	}
	forged := url.Values{"csrf": {c.csrf}, "user_code": {code}, "action": {"approve"}, "confirm": {strings.Repeat("A", 43)}}
	if st, _ := c.post("/console/decide", forged, nil); st != http.StatusTooManyRequests {
		t.Errorf("a made-up confirmation with the limits used up: status %d, want 429", st)
	}
	st, body := c.post("/console/decide", url.Values{"csrf": {c.csrf}, "user_code": {code}, "action": {"approve"}, "confirm": {m[1]}}, nil)
	if st != 200 || !strings.Contains(body, "Approved") {
		t.Errorf("the confirmed decision with the limits used up: %d", st)
	}
}
