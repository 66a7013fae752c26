package approval_test

import (
	"bytes"
	"fmt"
	"html"
	"html/template"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"reflect"
	"regexp"
	"strings"
	"sync"
	"testing"

	oauth "github.com/mcp-oauth/oauth"
	"github.com/mcp-oauth/oauth/approval"
)

const (
	tabCode   = "KXWT-BMRD"
	tabHandle = "mcp_req_0123456789abcdefghijklmnopqrstuvwxyzAB"
	devCode   = "BCDF-GHJK"
	secretKey = "sk-good-0123456789" // the value the test step accepts; never logged
)

// goodSetup is what the test step completes with.
var goodSetup = &oauth.GrantSetup{
	Values: []oauth.GrantValue{{Name: "api_key", Value: []byte(secretKey)}},
	Claims: map[string]any{"tenant": "acme"},
}

// testStep is one setup step that serves both the tab and the console,
// as a host's would: it shows a form of html/template, refuses a wrong
// key by showing the form again with an error, and completes with
// goodSetup for the right one.
type testStep struct {
	mu    sync.Mutex
	calls []stepCall
	// mode: "" as described; "now" completes at once; "both" completes
	// and writes; "silent" does neither for a GET.
	mode string
}

type stepCall struct{ Method, RequestID, Subject string }

var stepForm = template.Must(template.New("step").Parse(`<!doctype html><title>Set up</title>
<form method="post" data-step>{{.Fields}}{{with .Error}}<p data-step-error>{{.}}</p>{{end}}
<p data-client>{{.Client}}</p><input name="api_key"><button>Save</button></form>`))

func (s *testStep) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p := approval.StepRequest(r)
	if p == nil {
		http.Error(w, "not a step request", http.StatusTeapot)
		return
	}
	s.mu.Lock()
	s.calls = append(s.calls, stepCall{r.Method, p.ID, p.Subject})
	mode := s.mode
	s.mu.Unlock()
	var problem string
	switch {
	case mode == "now":
		approval.Complete(r, goodSetup)
		return
	case r.Method == http.MethodPost:
		if r.PostForm.Get("api_key") == secretKey {
			approval.Complete(r, goodSetup)
			if mode == "both" {
				io.WriteString(w, "oops")
			}
			return
		}
		problem = "That key is not valid."
	case mode == "silent":
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	stepForm.Execute(w, map[string]any{"Fields": approval.StepFields(r), "Error": problem, "Client": p.Client.ClientName})
}

func (s *testStep) called() []stepCall {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]stepCall(nil), s.calls...)
}

func (s *testStep) reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = nil
}

func (a *fakeApprover) reset() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.polls, a.approves, a.denies = nil, nil, nil
}

// logBuf is a log sink safe for a test server's goroutines.
type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

var hiddenRE = regexp.MustCompile(`<input type="hidden" name="([^"]+)" value="([^"]*)">`)

// hidden returns the hidden inputs of a page.
func hidden(body string) url.Values {
	v := url.Values{}
	for _, m := range hiddenRE.FindAllStringSubmatch(body, -1) {
		v.Set(html.UnescapeString(m[1]), html.UnescapeString(m[2]))
	}
	return v
}

// tabFixture is an approval page with a setup step and one browser
// request, approved by alice.
type tabFixture struct {
	a    *fakeApprover
	step *testStep
	page *approval.Page
	log  *logBuf
}

const tabRedirect = "https://client.example/cb"

func newTab(t *testing.T, redirect string) *tabFixture {
	t.Helper()
	f := &tabFixture{a: &fakeApprover{}, step: &testStep{}, log: &logBuf{}}
	f.a.add(tabCode, tabHandle, redirect)
	f.a.set(tabCode, oauth.PendingApproved, "alice")
	f.page = approval.NewPage(f.a, approval.PageOptions{Step: f.step, Logger: slog.New(slog.NewTextHandler(f.log, nil))})
	return f
}

var tabURL = "/device?" + url.Values{"request": {tabHandle}, "user_code": {tabCode}}.Encode()

func (f *tabFixture) get() *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	f.page.ServeHTTP(w, httptest.NewRequest("GET", tabURL, nil))
	return w
}

func (f *tabFixture) post(form url.Values, hdr map[string]string) *httptest.ResponseRecorder {
	r := httptest.NewRequest("POST", tabURL, strings.NewReader(form.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for k, v := range hdr {
		r.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	f.page.ServeHTTP(w, r)
	return w
}

// fields shows the step once and returns the hidden fields of its form,
// then forgets the calls that took.
func (f *tabFixture) fields(t *testing.T) url.Values {
	t.Helper()
	w := f.get()
	v := hidden(w.Body.String())
	if w.Code != 200 || v.Get(approval.StepField) == "" || v.Get("mcpauth_csrf") == "" {
		t.Fatalf("the step's form: %d %s", w.Code, w.Body)
	}
	f.a.reset()
	f.step.reset()
	return v
}

// TestTabStepNotBeforeApproval: the step never runs for a request that
// is not approved, whether the tab loads or posts.
func TestTabStepNotBeforeApproval(t *testing.T) {
	for _, tc := range []struct {
		name   string
		status oauth.PendingStatus
		handle string // "" means the tab's own
		// want* are the GET's answer.
		wantCode int
		wantBody string
		wantTo   string
	}{
		{"waiting", oauth.PendingWaiting, "", 200, "Waiting for approval", ""},
		{"denied", oauth.PendingDenied, "", 303, "", "error=access_denied"},
		{"completed", oauth.PendingCompleted, "", 200, "This request was completed", ""},
		{"unknown", oauth.PendingApproved, "mcp_req_another", 404, "expired", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newTab(t, tabRedirect)
			form := f.fields(t) // a real token, taken while it was approved
			f.a.set(tabCode, tc.status, "alice")
			target := tabURL
			if tc.handle != "" {
				target = "/device?" + url.Values{"request": {tc.handle}, "user_code": {tabCode}}.Encode()
			}
			w := httptest.NewRecorder()
			f.page.ServeHTTP(w, httptest.NewRequest("GET", target, nil))
			if w.Code != tc.wantCode || !strings.Contains(w.Body.String(), tc.wantBody) || !strings.Contains(w.Header().Get("Location"), tc.wantTo) {
				t.Errorf("GET: %d %q %s", w.Code, w.Header().Get("Location"), w.Body)
			}
			if tc.handle == "" {
				form.Set("api_key", secretKey)
				if w := f.post(form, nil); w.Code != 200 || !strings.Contains(w.Body.String(), `http-equiv="refresh" content="0;url=/device?request=`) {
					t.Errorf("POST: %d %s, want a page moving on to the tab", w.Code, w.Body)
				}
			}
			if calls := f.step.called(); len(calls) != 0 {
				t.Errorf("the step ran: %v", calls)
			}
			if c := f.a.completions(); len(c) != 0 {
				t.Errorf("completed: %+v", c)
			}
		})
	}
}

// TestTabStepShows: once approved, the tab's GET shows the step's page,
// with its fields, under the pages' headers, and completes nothing.
func TestTabStepShows(t *testing.T) {
	f := newTab(t, tabRedirect)
	w := f.get()
	body := w.Body.String()
	if w.Code != 200 || !strings.Contains(body, "data-step") || !strings.Contains(body, "Notes &lt;CLI&gt;") {
		t.Fatalf("GET: %d %s", w.Code, body)
	}
	for k, want := range map[string]string{"X-Frame-Options": "DENY", "Cache-Control": "no-store", "Content-Type": "text/html; charset=utf-8"} {
		if got := w.Header().Get(k); got != want {
			t.Errorf("%s: %q, want %q", k, got, want)
		}
	}
	if csp := w.Header().Get("Content-Security-Policy"); !strings.Contains(csp, "form-action 'self'") || strings.Contains(csp, "script-src") {
		t.Errorf("CSP %q", csp)
	}
	if v := hidden(body); v.Get(approval.StepField) == "" || len(v.Get("mcpauth_csrf")) < 40 {
		t.Errorf("the form's fields: %v", v)
	}
	if calls := f.step.called(); !reflect.DeepEqual(calls, []stepCall{{"GET", "req-" + tabCode, "alice"}}) {
		t.Errorf("step calls %v", calls)
	}
	polls, approves, _ := f.a.calls()
	for _, p := range polls {
		if !p.Hold || p.Setup != nil {
			t.Errorf("poll %+v, want only holding ones", p)
		}
	}
	if len(approves) != 0 {
		t.Errorf("approves %v", approves)
	}
}

// TestTabStepPost: a post of the step's form reaches the step only with
// the tab's CSRF token, from this site, within the body limit; the step
// decides whether what was typed does, and completing leads to the
// client with the exact setup.
func TestTabStepPost(t *testing.T) {
	big := strings.Repeat("x", 65<<10)
	for _, tc := range []struct {
		name     string
		edit     func(url.Values)
		hdr      map[string]string
		wantCode int
		wantBody string
		reached  bool // the step saw the post
		complete bool
	}{
		{"no CSRF token", func(v url.Values) { v.Del("mcpauth_csrf") }, nil, 403, "", false, false},
		{"wrong CSRF token", func(v url.Values) { v.Set("mcpauth_csrf", v.Get("mcpauth_csrf")[1:]+"A") }, nil, 403, "", false, false},
		{"cross-site", nil, map[string]string{"Sec-Fetch-Site": "cross-site"}, 403, "", false, false},
		{"other origin", nil, map[string]string{"Origin": "https://evil.example"}, 403, "", false, false},
		{"over 64 KiB", func(v url.Values) { v.Set("pad", big) }, nil, 400, "", false, false},
		{"over quick authorize's 16 KiB", func(v url.Values) { v.Set("pad", big[:32<<10]); v.Set("api_key", "nope") }, nil, 200, "data-step-error", true, false},
		{"wrong value: the form again, with the error", func(v url.Values) { v.Set("api_key", "nope") }, nil, 200, "That key is not valid.", true, false},
		{"right value", nil, nil, 200, `<meta http-equiv="refresh" content="0;url=https://client.example/cb?code=c0de&amp;state=xyz">`, true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newTab(t, tabRedirect)
			form := f.fields(t)
			form.Set("api_key", secretKey)
			if tc.edit != nil {
				tc.edit(form)
			}
			w := f.post(form, tc.hdr)
			if w.Code != tc.wantCode || !strings.Contains(w.Body.String(), tc.wantBody) {
				t.Errorf("POST: %d %s", w.Code, w.Body)
			}
			calls := f.step.called()
			if reached := len(calls) == 1 && calls[0].Method == "POST"; reached != tc.reached || len(calls) > 1 {
				t.Errorf("step calls %v, want reached %v", calls, tc.reached)
			}
			c := f.a.completions()
			if !tc.complete {
				if len(c) != 0 {
					t.Errorf("completed: %+v", c)
				}
				return
			}
			if len(c) != 1 || c[0].Setup != goodSetup || c[0].Handle != tabHandle || c[0].UserCode != tabCode {
				t.Fatalf("completions %+v, want one with the step's setup", c)
			}
			if !reflect.DeepEqual(*c[0].Setup, *goodSetup) {
				t.Errorf("setup %+v", c[0].Setup)
			}
		})
	}
}

// TestTabStepCompletesOnGET: a step that completes at once (say, nothing
// to ask of this client) sends the tab's GET on to the client with a 303.
func TestTabStepCompletesOnGET(t *testing.T) {
	f := newTab(t, tabRedirect)
	f.step.mode = "now"
	w := f.get()
	if w.Code != http.StatusSeeOther || w.Header().Get("Location") != tabRedirect+"?code=c0de&state=xyz" {
		t.Errorf("GET: %d %q", w.Code, w.Header().Get("Location"))
	}
	if c := f.a.completions(); len(c) != 1 || c[0].Setup != goodSetup {
		t.Errorf("completions %+v", c)
	}
}

// TestTabStepReturnsToAppScheme: after a post, the page moving on to the
// client keeps a private-use scheme (html/template would filter it as an
// unsafe URL).
func TestTabStepReturnsToAppScheme(t *testing.T) {
	f := newTab(t, "cursor://anysphere.cursor-mcp/oauth/callback")
	form := f.fields(t)
	form.Set("api_key", secretKey)
	w := f.post(form, nil)
	if want := `content="0;url=cursor://anysphere.cursor-mcp/oauth/callback?code=c0de&amp;state=xyz"`; !strings.Contains(w.Body.String(), want) {
		t.Errorf("POST: %d %s, want %s", w.Code, w.Body, want)
	}
}

// TestStepCompletionFails: a Provider refusing the setup (a reserved
// claim, data over its limits) gives an error page with 500 and a log
// line, in the tab and on the console, and neither shows nor logs the
// values.
func TestStepCompletionFails(t *testing.T) {
	for _, sentinel := range []error{oauth.ErrReservedClaim, oauth.ErrGrantDataLimit} {
		t.Run(sentinel.Error(), func(t *testing.T) {
			fail := fmt.Errorf("provider: claim %q: %w", "sub", sentinel)
			f := newTab(t, tabRedirect)
			f.a.failSetup = fail
			form := f.fields(t)
			form.Set("api_key", secretKey)
			w := f.post(form, nil)
			if w.Code != 500 || !strings.Contains(w.Body.String(), "could not be set up") || strings.Contains(w.Body.String(), secretKey) {
				t.Errorf("tab: %d %s", w.Code, w.Body)
			}
			if l := f.log.String(); !strings.Contains(l, sentinel.Error()) || !strings.Contains(l, "req-"+tabCode) || strings.Contains(l, secretKey) || strings.Contains(l, "acme") {
				t.Errorf("tab log: %s", l)
			}

			c := newConsole(t)
			c.a.failSetup = fail
			fields := c.showStep(t)
			fields.Set("api_key", secretKey)
			st, body, _ := c.post(t, fields, nil)
			if st != 500 || strings.Contains(body, secretKey) {
				t.Errorf("console: %d %s", st, body)
			}
			if l := c.log.String(); !strings.Contains(l, sentinel.Error()) || strings.Contains(l, secretKey) || strings.Contains(l, "acme") {
				t.Errorf("console log: %s", l)
			}
			if p, _ := c.a.PendingByUserCode(t.Context(), devCode); p.Status != oauth.PendingWaiting {
				t.Errorf("after a failed approval the request is %s", p.Status)
			}
		})
	}
}

// TestTabStepMisbehaves: a step that completes and also writes, or does
// neither, completes nothing and shows an error page.
func TestTabStepMisbehaves(t *testing.T) {
	for _, mode := range []string{"both", "silent"} {
		t.Run(mode, func(t *testing.T) {
			f := newTab(t, tabRedirect)
			var w *httptest.ResponseRecorder
			if mode == "both" {
				form := f.fields(t)
				form.Set("api_key", secretKey)
				f.step.mode = mode
				w = f.post(form, nil)
			} else {
				f.step.mode = mode
				w = f.get()
			}
			if w.Code != 500 || strings.Contains(w.Body.String(), "oops") {
				t.Errorf("%d %s", w.Code, w.Body)
			}
			if c := f.a.completions(); len(c) != 0 {
				t.Errorf("completed: %+v", c)
			}
			if !strings.Contains(f.log.String(), "setup step") {
				t.Errorf("log: %s", f.log)
			}
		})
	}
}

// TestStepHelpersOutsideAStep: the helpers do nothing for a request that
// is not a step's.
func TestStepHelpersOutsideAStep(t *testing.T) {
	r := httptest.NewRequest("GET", "/", nil)
	approval.Complete(r, goodSetup) // no panic
	if approval.StepRequest(r) != nil || approval.StepFields(r) != "" {
		t.Error("a step outside a step")
	}
}

// consoleFixture is a console (signed in through a host Identity, as
// "owner") with a setup step, a waiting device request (devCode) and a
// waiting browser request (tabCode).
type consoleFixture struct {
	a    *fakeApprover
	step *testStep
	srv  *httptest.Server
	hc   *http.Client
	log  *logBuf
}

func newConsole(t *testing.T) *consoleFixture {
	t.Helper()
	f := &consoleFixture{a: &fakeApprover{}, step: &testStep{}, log: &logBuf{}}
	f.a.add(devCode, "", "")
	f.a.add(tabCode, tabHandle, tabRedirect)
	c := approval.NewConsole(f.a, "/console", approval.ConsoleOptions{
		Identity: approval.IdentityFunc(func(*http.Request) (string, error) { return "owner", nil }),
		Step:     f.step, Logger: slog.New(slog.NewTextHandler(f.log, nil)),
	})
	f.srv = httptest.NewServer(c)
	t.Cleanup(f.srv.Close)
	jar, _ := cookiejar.New(nil)
	f.hc = &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	return f
}

func (f *consoleFixture) do(t *testing.T, req *http.Request) (int, string, string) {
	t.Helper()
	resp, err := f.hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header.Get("Location")
}

// confirm opens the confirmation page of code and returns its decide
// form's fields.
func (f *consoleFixture) confirm(t *testing.T, code string) url.Values {
	t.Helper()
	req, _ := http.NewRequest("GET", f.srv.URL+"/console/approve?user_code="+code, nil)
	st, body, _ := f.do(t, req)
	v := hidden(body)
	if st != 200 || v.Get("confirm") == "" || v.Get("csrf") == "" {
		t.Fatalf("confirmation page: %d %s", st, body)
	}
	return v
}

// post posts form to the console's decide endpoint.
func (f *consoleFixture) post(t *testing.T, form url.Values, hdr map[string]string) (int, string, string) {
	t.Helper()
	req, _ := http.NewRequest("POST", f.srv.URL+"/console/decide", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	return f.do(t, req)
}

// showStep clicks Approve on the device request's confirmation page and
// returns the fields of the step's form it shows, then forgets the calls
// that took.
func (f *consoleFixture) showStep(t *testing.T) url.Values {
	t.Helper()
	form := f.confirm(t, devCode)
	form.Set("action", "approve")
	st, body, _ := f.post(t, form, nil)
	v := hidden(body)
	if st != 200 || !strings.Contains(body, "data-step") || v.Get(approval.StepField) == "" {
		t.Fatalf("Approve: %d %s, want the step", st, body)
	}
	f.a.reset()
	f.step.reset()
	return v
}

// TestConsoleStep: on the console, approving a device request runs the
// step first; its completion approves with the setup, as the signed-in
// user.
func TestConsoleStep(t *testing.T) {
	f := newConsole(t)
	form := f.confirm(t, devCode)
	form.Set("action", "approve")
	st, body, _ := f.post(t, form, nil)
	if st != 200 || !strings.Contains(body, "data-step") || !strings.Contains(body, "Notes &lt;CLI&gt;") {
		t.Fatalf("Approve: %d %s, want the step", st, body)
	}
	if calls := f.step.called(); !reflect.DeepEqual(calls, []stepCall{{"GET", "req-" + devCode, "owner"}}) {
		t.Errorf("step calls %v, want one GET seeing the approving owner", calls)
	}
	fields := hidden(body)
	for _, k := range []string{approval.StepField, "mcpauth_csrf", "mcpauth_user_code", "mcpauth_confirm"} {
		if fields.Get(k) == "" {
			t.Errorf("the step's form lacks %s: %v", k, fields)
		}
	}
	if _, approves, _ := f.a.calls(); len(approves) != 0 {
		t.Fatalf("approved before the step: %v", approves)
	}

	// Abandoned here, the request would still wait.
	if p, _ := f.a.PendingByUserCode(t.Context(), devCode); p.Status != oauth.PendingWaiting {
		t.Errorf("during the step the request is %s", p.Status)
	}

	fields.Set("api_key", "nope")
	if st, body, _ := f.post(t, fields, nil); st != 200 || !strings.Contains(body, "That key is not valid.") {
		t.Errorf("a wrong key: %d %s, want the form with the error", st, body)
	}
	if _, approves, _ := f.a.calls(); len(approves) != 0 {
		t.Fatalf("approved by a wrong key: %v", approves)
	}

	fields.Set("api_key", secretKey)
	st, _, loc := f.post(t, fields, nil)
	if st != http.StatusSeeOther || loc != "/console/?done=approved" {
		t.Errorf("the right key: %d %q", st, loc)
	}
	_, approves, _ := f.a.calls()
	if len(approves) != 1 || approves[0].Subject != "owner" || norm(approves[0].UserCode) != norm(devCode) || approves[0].Setup != goodSetup {
		t.Fatalf("approves %+v, want one by owner with the step's setup", approves)
	}
	if calls := f.step.called(); len(calls) != 3 || calls[2] != (stepCall{"POST", "req-" + devCode, "owner"}) {
		t.Errorf("step calls %v", calls)
	}
}

// TestConsoleStepSkipped: denying never runs the step, nor does approving
// a browser request (whose step runs in its tab).
func TestConsoleStepSkipped(t *testing.T) {
	f := newConsole(t)
	form := f.confirm(t, devCode)
	form.Set("action", "deny")
	if st, _, loc := f.post(t, form, nil); st != http.StatusSeeOther || loc != "/console/?done=denied" {
		t.Errorf("Deny: %d %q", st, loc)
	}
	form = f.confirm(t, tabCode)
	form.Set("action", "approve")
	if st, _, loc := f.post(t, form, nil); st != http.StatusSeeOther || loc != "/console/?done=approved" {
		t.Errorf("approving a browser request: %d %q", st, loc)
	}
	if calls := f.step.called(); len(calls) != 0 {
		t.Errorf("the step ran: %v", calls)
	}
	_, approves, denies := f.a.calls()
	if len(denies) != 1 || norm(denies[0]) != norm(devCode) {
		t.Errorf("denies %v", denies)
	}
	if len(approves) != 1 || norm(approves[0].UserCode) != norm(tabCode) || approves[0].Subject != "owner" || approves[0].Setup != nil {
		t.Errorf("approves %+v, want the browser request's, with no setup", approves)
	}
}

// TestConsoleStepPostRefused: a post of the step's form on the console
// needs the session's CSRF token, this site, a body within the limit, and
// a device request still waiting.
func TestConsoleStepPostRefused(t *testing.T) {
	for _, tc := range []struct {
		name     string
		edit     func(*fakeApprover, url.Values)
		hdr      map[string]string
		wantCode int
	}{
		{"no CSRF token", func(_ *fakeApprover, v url.Values) { v.Del("mcpauth_csrf") }, nil, 403},
		{"the decide form's token is not the step's field", func(_ *fakeApprover, v url.Values) { v.Set("csrf", v.Get("mcpauth_csrf")); v.Del("mcpauth_csrf") }, nil, 403},
		{"wrong CSRF token", func(_ *fakeApprover, v url.Values) { v.Set("mcpauth_csrf", "AAAA") }, nil, 403},
		{"cross-site", nil, map[string]string{"Sec-Fetch-Site": "cross-site"}, 403},
		{"over 64 KiB", func(_ *fakeApprover, v url.Values) { v.Set("pad", strings.Repeat("x", 65<<10)) }, nil, 400},
		{"decided meanwhile", func(a *fakeApprover, _ url.Values) { a.set(devCode, oauth.PendingDenied, "") }, nil, 409},
		{"unknown code", func(_ *fakeApprover, v url.Values) { v.Set("mcpauth_user_code", "ZZZZ-ZZZZ") }, nil, 409},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newConsole(t)
			fields := f.showStep(t)
			fields.Set("api_key", secretKey)
			if tc.edit != nil {
				tc.edit(f.a, fields)
			}
			if st, body, _ := f.post(t, fields, tc.hdr); st != tc.wantCode {
				t.Errorf("POST: %d %s, want %d", st, body, tc.wantCode)
			}
			if calls := f.step.called(); len(calls) != 0 {
				t.Errorf("the step ran: %v", calls)
			}
			if _, approves, _ := f.a.calls(); len(approves) != 0 {
				t.Errorf("approved: %+v", approves)
			}
		})
	}
}
