package approval_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	oauth "github.com/mcp-oauth/oauth"
	"github.com/mcp-oauth/oauth/approval"
	"github.com/mcp-oauth/oauth/internal/browsertest"
)

// TestBrowserTabStep: in a real browser, under the pages' CSP, the step's
// form in the authorize tab shows its error for a wrong key, and the right
// one sends the tab on to the client (of another origin) with its code.
func TestBrowserTabStep(t *testing.T) {
	tab := browsertest.New(t)
	landed := make(chan url.Values, 1)
	client := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case landed <- r.URL.Query():
		default:
		}
		fmt.Fprint(w, "back in the application")
	}))
	t.Cleanup(client.Close)
	a, step := &fakeApprover{}, &testStep{}
	a.add(tabCode, tabHandle, client.URL+"/cb")
	a.set(tabCode, oauth.PendingApproved, "alice")
	srv := httptest.NewServer(approval.NewPage(a, approval.PageOptions{Step: step}))
	t.Cleanup(srv.Close)

	ctx, cancel := context.WithTimeout(tab, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx,
		chromedp.Navigate(srv.URL+tabURL),
		chromedp.WaitVisible(`form[data-step]`),
		chromedp.SendKeys(`input[name=api_key]`, "nope"),
		chromedp.Submit(`form[data-step]`),
		chromedp.WaitVisible(`[data-step-error]`),
		chromedp.SendKeys(`input[name=api_key]`, secretKey),
		chromedp.Submit(`form[data-step]`),
	); err != nil {
		t.Fatalf("the step's form: %v", err)
	}
	select {
	case q := <-landed:
		if q.Get("code") != "c0de" || q.Get("state") != "xyz" {
			t.Errorf("the client got %v", q)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the tab did not return to the client")
	}
	if c := a.completions(); len(c) != 1 || c[0].Setup != goodSetup {
		t.Errorf("completions %+v", c)
	}
}

// TestBrowserConsoleStep: in a real browser, the owner's Approve click on
// the console shows the step for a device request, and its form approves
// the request with the setup.
func TestBrowserConsoleStep(t *testing.T) {
	tab := browsertest.New(t)
	a, step := &fakeApprover{}, &testStep{}
	a.add(devCode, "", "")
	srv := httptest.NewServer(approval.NewConsole(a, "/console", approval.ConsoleOptions{
		Identity: approval.IdentityFunc(func(*http.Request) (string, error) { return "owner", nil }),
		Step:     step, Logger: slog.New(slog.DiscardHandler),
	}))
	t.Cleanup(srv.Close)

	ctx, cancel := context.WithTimeout(tab, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx,
		chromedp.Navigate(srv.URL+"/console/approve?user_code="+devCode),
		chromedp.Click(`[data-approve]`),
		chromedp.WaitVisible(`form[data-step]`),
		chromedp.SendKeys(`input[name=api_key]`, secretKey),
		chromedp.Submit(`form[data-step]`),
		chromedp.WaitVisible(`[data-notice]`),
	); err != nil {
		t.Fatalf("the console's step: %v", err)
	}
	_, approves, _ := a.calls()
	if len(approves) != 1 || approves[0].Subject != "owner" || approves[0].Setup != goodSetup {
		t.Errorf("approves %+v", approves)
	}
}
