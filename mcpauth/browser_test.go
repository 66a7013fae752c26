package mcpauth

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	oauth "github.com/mcp-oauth/oauth"
	"github.com/mcp-oauth/oauth/approval"
	"github.com/mcp-oauth/oauth/internal/browsertest"
)

// callbackServer is a client's redirect URI on loopback; it records the
// query of the first request.
func callbackServer(t *testing.T) (string, <-chan url.Values) {
	t.Helper()
	landed := make(chan url.Values, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case landed <- r.URL.Query():
		default:
		}
		fmt.Fprint(w, "back in the application")
	}))
	t.Cleanup(srv.Close)
	return srv.URL + "/cb", landed
}

// openAuthorizeTab registers a public client whose redirect URI is a
// callback server, opens its authorization request in a new browser, and
// returns the tab, the user code the page shows, and the callback's channel.
func openAuthorizeTab(t *testing.T, f *fixture) (context.Context, string, <-chan url.Values) {
	t.Helper()
	tab := browsertest.New(t)
	cb, landed := callbackServer(t)
	c := f.register(`{"redirect_uris":["` + cb + `"],"token_endpoint_auth_method":"none","client_name":"Browser test"}`)
	if err := chromedp.Do(tab, chromedp.Navigate(f.base+"/authorize?"+authParams(c).Encode()), chromedp.WaitVisible(`[data-user-code]`)); err != nil {
		t.Fatal(err)
	}
	code, err := chromedp.Run(tab, chromedp.AttributeValue(`[data-user-code]`, "data-user-code"))
	if err != nil {
		t.Fatal(err)
	}
	return tab, code.Value, landed
}

func waitLanded(t *testing.T, landed <-chan url.Values) url.Values {
	t.Helper()
	select {
	case q := <-landed:
		return q
	case <-time.After(20 * time.Second):
		t.Fatal("the tab did not return to the client within 20 s")
		return nil
	}
}

// TestBrowserApprovedTabMovesOn: once approved, the page's script notices
// and the tab returns to the client with code, state and iss; the
// countdown runs meanwhile.
func TestBrowserApprovedTabMovesOn(t *testing.T) {
	f := newFixture(t, nil)
	tab, code, landed := openAuthorizeTab(t, f)
	cd, err := chromedp.Run(tab, chromedp.Text(`[data-countdown]`))
	if err != nil || !regexp.MustCompile(`^\(\d+:\d\d left\)$`).MatchString(cd) {
		t.Errorf("countdown %q (%v), want (m:ss left)", cd, err)
	}
	if _, err := f.h.Approve(context.Background(), code, "alice"); err != nil {
		t.Fatal(err)
	}
	q := waitLanded(t, landed)
	if q.Get("code") == "" || q.Get("state") != "xyz" || q.Get("iss") != f.base {
		t.Errorf("redirect query %v, want code, state xyz and iss", q)
	}
}

// TestBrowserDeniedTab: after a denial the page says so, then returns the
// browser to the client with error=access_denied.
func TestBrowserDeniedTab(t *testing.T) {
	f := newFixture(t, nil)
	tab, code, landed := openAuthorizeTab(t, f)
	if _, err := f.h.DefaultProvider().Deny(context.Background(), code); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(tab, 15*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.WaitVisible(`body[data-state="denied"]`)); err != nil {
		t.Fatalf("the page did not show the denial: %v", err)
	}
	if q := waitLanded(t, landed); q.Get("error") != "access_denied" || q.Get("state") != "xyz" {
		t.Errorf("redirect query %v, want error=access_denied and state", q)
	}
}

// TestBrowserExpiredTab: when the request expires the page says so and
// stays (no redirect).
func TestBrowserExpiredTab(t *testing.T) {
	f := newFixture(t, func(o *Options) { o.ProviderOptions.PendingTTL = 3 * time.Second })
	tab, _, landed := openAuthorizeTab(t, f)
	ctx, cancel := context.WithTimeout(tab, 15*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.WaitVisible(`body[data-state="expired"]`)); err != nil {
		t.Fatalf("the page did not show the expiry: %v", err)
	}
	msg, err := chromedp.Run(tab, chromedp.Text(`[data-status]`))
	if err != nil || !strings.Contains(msg, "expired") {
		t.Errorf("status text %q (%v)", msg, err)
	}
	select {
	case q := <-landed:
		t.Errorf("an expired request returned to the client: %v", q)
	case <-time.After(2 * time.Second):
	}
}

// TestWaitingPageScriptIsNonced: the waiting page's only script carries
// the nonce that its Content-Security-Policy allows, the policy allows no
// other script, and pages without a script allow none at all; the status
// endpoint answers only the holder of the handle and code.
func TestWaitingPageScriptIsNonced(t *testing.T) {
	f := newFixture(t, nil)
	c := f.publicClient()
	r := f.get("/authorize?" + authParams(c).Encode())
	loc, _ := url.Parse(r.header.Get("Location"))
	page := f.getURL(loc)
	policy := page.header.Get("Content-Security-Policy")
	m := regexp.MustCompile(`script-src 'nonce-([A-Za-z0-9_-]{22})'`).FindStringSubmatch(policy)
	if m == nil || strings.Count(policy, "script-src") != 1 || !strings.Contains(policy, "frame-ancestors 'none'") {
		t.Fatalf("waiting page CSP %q", policy)
	}
	if n := strings.Count(string(page.body), "<script"); n != 1 || !strings.Contains(string(page.body), `<script nonce="`+m[1]+`">`) {
		t.Errorf("waiting page has %d scripts, want one with the policy's nonce", n)
	}
	if again := f.getURL(loc).header.Get("Content-Security-Policy"); again == policy {
		t.Error("the nonce is the same on two loads")
	}
	if p := f.get("/device").header.Get("Content-Security-Policy"); strings.Contains(p, "script-src") {
		t.Errorf("a page without script allows scripts: %q", p)
	}

	status := func(q url.Values) string {
		r := f.get("/device/status?" + q.Encode())
		if r.status != 200 || r.header.Get("Cache-Control") != "no-store" {
			t.Fatalf("status: %d %v", r.status, r.header)
		}
		return r.str("status")
	}
	q := loc.Query()
	if s := status(q); s != "pending" {
		t.Errorf("status of a waiting request = %q", s)
	}
	wrong := url.Values{"request": {q.Get("request")}, "user_code": {"BBBB-BBBB"}}
	if s := status(wrong); s != "expired" {
		t.Errorf("status with the wrong code = %q, want expired (tells nothing)", s)
	}
	if _, err := f.h.Approve(context.Background(), q.Get("user_code"), "alice"); err != nil {
		t.Fatal(err)
	}
	if s := status(q); s != "approved" {
		t.Errorf("status after approval = %q", s)
	}
}

// TestBrowserQuickAuthorize: a browser already signed in to the console
// sees an Approve button on the authorize tab itself; nothing is approved
// until it is clicked, and the click approves as the signed-in user and
// returns the tab to the client.
func TestBrowserQuickAuthorize(t *testing.T) {
	f := newFixture(t, nil)
	addOwner(t, f)
	tab := browsertest.New(t)
	ctx, cancel := context.WithTimeout(tab, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx,
		signInSteps(f.base),
	); err != nil {
		t.Fatalf("sign in: %v", err)
	}
	cb, landed := callbackServer(t)
	c := f.register(`{"redirect_uris":["` + cb + `"],"token_endpoint_auth_method":"none","client_name":"Quick"}`)
	if err := chromedp.Do(ctx, chromedp.Navigate(f.base+"/authorize?"+authParams(c).Encode()), chromedp.WaitVisible(`[data-quick-approve]`)); err != nil {
		t.Fatalf("the authorize tab offers no quick approval: %v", err)
	}
	code, err := chromedp.Run(ctx, chromedp.AttributeValue(`[data-user-code]`, "data-user-code"))
	if err != nil {
		t.Fatal(err)
	}
	if p, err := f.h.DefaultProvider().PendingByUserCode(context.Background(), code.Value); err != nil || p.Status != "pending" {
		t.Fatalf("before the click the request is %+v, %v; want pending", p, err)
	}
	if err := chromedp.Do(ctx, chromedp.Click(`[data-quick-approve]`)); err != nil {
		t.Fatal(err)
	}
	if q := waitLanded(t, landed); q.Get("code") == "" || q.Get("iss") != f.base {
		t.Errorf("redirect query %v", q)
	}
	if gs, _ := f.h.DefaultProvider().ListGrants(context.Background()); len(gs) != 1 || gs[0].Subject != "owner" {
		t.Errorf("grants after quick approval: %+v", gs)
	}
}

// TestBrowserForgedCrossSitePost: a page on another site that a signed-in
// owner visits cannot make the browser delete a client through the
// console, even with a guessed form: the post is refused (and the session
// cookie, SameSite=Lax, is not even sent).
func TestBrowserForgedCrossSitePost(t *testing.T) {
	f := newFixture(t, nil)
	addOwner(t, f)
	victim := f.publicClient()
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, `<!doctype html><form id="f" method="post" action="%s/console/clients/delete">
<input name="client_id" value="%s"><input name="csrf" value="guess"></form>
<script>document.getElementById("f").submit()</script>`, f.base, victim.id)
	}))
	defer evil.Close()
	tab := browsertest.New(t)
	ctx, cancel := context.WithTimeout(tab, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx,
		signInSteps(f.base),
		// 127.0.0.1 and localhost are different sites to the browser.
		chromedp.Navigate(strings.Replace(evil.URL, "127.0.0.1", "localhost", 1)),
	); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		loc, err := chromedp.Run(ctx, chromedp.Location())
		if err == nil && strings.HasPrefix(loc, f.base) {
			break // the forged form was submitted
		}
		if time.Now().After(deadline) {
			t.Fatalf("the forged form was never submitted (at %q, %v)", loc, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	body, err := chromedp.Run(ctx, chromedp.Text(`body`))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(body, "refused") && !strings.Contains(body, "sign in") {
		t.Errorf("the forged post was answered with %q", body)
	}
	if _, err := f.h.DefaultProvider().GetClient(context.Background(), victim.id); err != nil {
		t.Errorf("a cross-site form deleted the client: %v", err)
	}
}

// signInSteps signs the browser in to the console as owner (the password
// the tests give that user).
func signInSteps(base string) chromedp.Action[chromedp.Void] {
	return chromedp.Steps(
		chromedp.Navigate(base+"/console"),
		browsertest.ConsoleSignIn("owner", "correct horse battery"),
		chromedp.WaitVisible(`form[data-enter-code]`),
	)
}

// TestBrowserDeviceFlow: RFC 8628 end to end with a real browser on the
// console. A device (here, plain HTTP) gets a code; the owner opens
// verification_uri_complete signed out, signs in, lands on that code's
// confirmation and approves; the device's polls go from
// authorization_pending to tokens that work at the MCP endpoint. A second
// device's code is typed by hand at verification_uri (lower case, no
// hyphen) and denied, and that device gets access_denied.
func TestBrowserDeviceFlow(t *testing.T) {
	f := newFixture(t, nil)
	addOwner(t, f)
	reg := f.postJSON("/register", `{"grant_types":["urn:ietf:params:oauth:grant-type:device_code"],"token_endpoint_auth_method":"none","client_name":"Device CLI"}`, nil)
	cid := reg.str("client_id")
	poll := func(deviceCode string) *response {
		return f.post(PathToken, url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:device_code"}, "device_code": {deviceCode}, "client_id": {cid}}, nil)
	}
	da := f.post(PathDeviceAuthorization, url.Values{"client_id": {cid}}, nil)
	if da.status != 200 {
		t.Fatalf("device authorization: %d %s", da.status, da.body)
	}
	if r := poll(da.str("device_code")); r.status != 400 || r.str("error") != "authorization_pending" {
		t.Fatalf("first poll: %d %s", r.status, r.body)
	}
	// The device must wait its interval (5 s, with a second's leeway for
	// network delay) before the next poll, or it gets slow_down.
	nextPoll := time.Now().Add(4200 * time.Millisecond)
	tab := browsertest.New(t)
	ctx, cancel := context.WithTimeout(tab, 60*time.Second)
	defer cancel()
	uc := da.str("user_code")
	if err := chromedp.Do(ctx,
		chromedp.Navigate(da.str("verification_uri_complete")),
		browsertest.ConsoleSignIn("owner", "correct horse battery"),
		chromedp.WaitVisible(`[data-approve]`),
	); err != nil {
		t.Fatalf("verification_uri_complete through sign-in: %v", err)
	}
	shown, err := chromedp.Run(ctx, chromedp.AttributeValue(`[data-user-code]`, "data-user-code"))
	if err != nil || shown.Value != uc {
		t.Fatalf("confirmation shows code %q (%v), want %q", shown.Value, err, uc)
	}
	kind, err := chromedp.Run(ctx, chromedp.Text(`dl`))
	if err != nil || !strings.Contains(kind, "Device CLI") || !strings.Contains(kind, "A device or command-line application") {
		t.Errorf("confirmation details %q (%v)", kind, err)
	}
	if err := chromedp.Do(ctx, chromedp.Click(`[data-approve]`), chromedp.WaitVisible(`[data-notice]`)); err != nil {
		t.Fatalf("approve: %v", err)
	}
	time.Sleep(time.Until(nextPoll))
	tok := poll(da.str("device_code"))
	if tok.status != 200 || tok.str("access_token") == "" {
		t.Fatalf("poll after approval: %d %s", tok.status, tok.body)
	}
	if r := f.mcpCall(tok.str("access_token"), initialize); r.status != 200 {
		t.Errorf("MCP call with the device's token: %d", r.status)
	}

	// A second device, code typed by hand, denied.
	da2 := f.post(PathDeviceAuthorization, url.Values{"client_id": {cid}}, nil)
	typed := strings.ToLower(strings.ReplaceAll(da2.str("user_code"), "-", ""))
	if err := chromedp.Do(ctx,
		chromedp.Navigate(da2.str("verification_uri")),
		chromedp.WaitVisible(`form[data-enter-code]`),
		chromedp.SendKeys(`#user_code`, typed),
		chromedp.Submit(`form[data-enter-code]`),
		chromedp.WaitVisible(`[data-deny]`),
		chromedp.Click(`[data-deny]`),
		chromedp.WaitVisible(`[data-notice]`),
	); err != nil {
		t.Fatalf("typed code and deny: %v", err)
	}
	if r := poll(da2.str("device_code")); r.status != 400 || r.str("error") != "access_denied" {
		t.Errorf("poll after denial: %d %s", r.status, r.body)
	}
}

// TestBrowserWrongCSRFToken: a console form whose CSRF token was altered
// (as a same-site injected form would have it) changes nothing, and the
// answer is a console page saying so; the page's own form then works.
func TestBrowserWrongCSRFToken(t *testing.T) {
	f := newFixture(t, nil)
	addOwner(t, f)
	c := f.register(`{"redirect_uris":["http://127.0.0.1:3000/cb"],"token_endpoint_auth_method":"none","client_name":"Tampered"}`)
	r := f.get("/authorize?" + authParams(c).Encode())
	loc, _ := url.Parse(r.header.Get("Location"))
	code := loc.Query().Get("user_code")
	tab := browsertest.New(t)
	ctx, cancel := context.WithTimeout(tab, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx,
		signInSteps(f.base),
		chromedp.Navigate(f.base+"/console/approve?user_code="+url.QueryEscape(code)),
		chromedp.WaitVisible(`[data-approve]`),
		chromedp.SetValue(`form[action$="/decide"] input[name=csrf]`, "t1.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
		chromedp.Click(`[data-approve]`),
		chromedp.WaitVisible(`[data-error]`),
	); err != nil {
		t.Fatalf("post with an altered token: %v", err)
	}
	msg, err := chromedp.Run(ctx, chromedp.Text(`[data-error]`))
	if err != nil || !strings.Contains(msg, "nothing was changed") {
		t.Errorf("error shown %q (%v)", msg, err)
	}
	if p, err := f.h.DefaultProvider().PendingByUserCode(context.Background(), code); err != nil || p.Status != "pending" {
		t.Fatalf("after a post with a wrong token the request is %+v, %v; want pending", p, err)
	}
	if err := chromedp.Do(ctx,
		chromedp.Navigate(f.base+"/console/approve?user_code="+url.QueryEscape(code)),
		chromedp.WaitVisible(`[data-approve]`),
		chromedp.Click(`[data-approve]`),
		chromedp.WaitVisible(`[data-notice]`),
	); err != nil {
		t.Fatalf("approve with the page's own token: %v", err)
	}
	if p, err := f.h.DefaultProvider().PendingByUserCode(context.Background(), code); err != nil || p.Status != "approved" {
		t.Errorf("after the real form the request is %+v, %v; want approved", p, err)
	}
}

// TestBrowserSetupStep: a host's setup step runs in the real tab between
// approval and the return to the client: the page's script reloads into
// the step's form once approved, the form posts (under the pages' CSP),
// and the tab then returns to the client with a code.
func TestBrowserSetupStep(t *testing.T) {
	var mu sync.Mutex
	var got []string // what the step collected
	f := newFixture(t, func(o *Options) {
		o.ApprovalPage.Step = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodPost && r.PostFormValue("api_key") != "" {
				mu.Lock()
				got = append(got, r.PostFormValue("api_key"))
				mu.Unlock()
				approval.Complete(r, &oauth.GrantSetup{Values: []oauth.GrantValue{{Name: "api_key", Value: []byte(r.PostFormValue("api_key"))}}})
				return
			}
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			io.WriteString(w, `<!doctype html><title>Setup</title><form method="post" data-step>`+string(approval.StepFields(r))+
				`<label for="k">API key</label><input id="k" name="api_key"><button type="submit">Save</button></form>`)
		})
	})
	tab, code, landed := openAuthorizeTab(t, f)
	ctx, cancel := context.WithTimeout(tab, 30*time.Second)
	defer cancel()
	if _, err := f.h.Approve(context.Background(), code, "alice"); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(ctx,
		chromedp.WaitVisible(`form[data-step]`),
		chromedp.SendKeys(`#k`, "sk-test-123"),
		chromedp.Submit(`form[data-step]`),
	); err != nil {
		t.Fatalf("the step's form: %v", err)
	}
	if q := waitLanded(t, landed); q.Get("code") == "" || q.Get("state") != "xyz" {
		t.Errorf("redirect query %v, want a code and the state", q)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 1 || got[0] != "sk-test-123" {
		t.Fatalf("the step collected %v, want one request's key", got)
	}
}
