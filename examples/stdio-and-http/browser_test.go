package main

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"github.com/modelcontextprotocol/go-sdk/auth"
	"github.com/modelcontextprotocol/go-sdk/oauthex"
	"golang.org/x/crypto/bcrypt"

	"github.com/mcp-oauth/oauth/approval"
	"github.com/mcp-oauth/oauth/internal/browsertest"
)

// TestBrowserAuthorizeTab drives the authorize tab in real headless
// Chromium, as an MCP client opens it: go-sdk's OAuth client opens the
// authorization URL in the browser; the page shows the user code; the
// owner approves it (here through the Go API); the tab moves on by itself
// to the client's redirect URI with code, state and iss; and go-sdk
// finishes the connection with them. The client's name, which is hostile
// markup, renders as text and runs no script.
func TestBrowserAuthorizeTab(t *testing.T) {
	base, _, h := startExample(t)
	// The browser starts after the server, so that it is closed before the
	// server shuts down: its open connections would hold the shutdown.
	tab := browsertest.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	dialogs := make(chan string, 1)
	if err := chromedp.Listen(tab, func(ev any) {
		if d, ok := ev.(*page.EventJavascriptDialogOpening); ok {
			select {
			case dialogs <- d.Message:
			default:
			}
		}
	}); err != nil {
		t.Fatal(err)
	}

	// The client's redirect URI: a local server, as a desktop client runs.
	cb, landed := clientCallback(t)

	const hostile = `<script>alert(1)</script>`
	fetcher := func(ctx context.Context, args *auth.AuthorizationArgs) (*auth.AuthorizationResult, error) {
		if err := chromedp.Do(tab, chromedp.Navigate(args.URL), chromedp.WaitVisible(`[data-user-code]`)); err != nil {
			return nil, err
		}
		attr, err := chromedp.Run(tab, chromedp.AttributeValue(`[data-user-code]`, "data-user-code"))
		if err != nil {
			return nil, err
		}
		code := attr.Value
		name, err := chromedp.Run(tab, chromedp.Text(`[data-client-name]`))
		if err != nil {
			return nil, err
		}
		if name != hostile {
			t.Errorf("client name shown as %q, want the literal text %q", name, hostile)
		}
		if _, err := h.Approve(ctx, code, "alice"); err != nil {
			return nil, err
		}
		return awaitCallback(ctx, landed)
	}
	cs, _ := connect(t, ctx, base, &oauthex.ClientRegistrationMetadata{
		RedirectURIs: []string{cb.URL + "/callback"}, ClientName: hostile, TokenEndpointAuthMethod: "none"}, fetcher)
	defer cs.Close()
	if who := callWhoami(t, ctx, cs); who.Subject != "alice" {
		t.Errorf("whoami = %+v, want alice", who)
	}
	loc, err := chromedp.Run(tab, chromedp.Location())
	if err != nil {
		t.Fatal(err)
	}
	if u, _ := url.Parse(loc); u == nil || u.Host != mustHost(cb.URL) || u.Query().Get("code") == "" || u.Query().Get("iss") != base {
		t.Errorf("the tab ended at %q, want the redirect URI with code and iss", loc)
	}
	select {
	case msg := <-dialogs:
		t.Errorf("a script ran in the page: dialog %q", msg)
	default:
	}
}

func mustHost(raw string) string {
	u, _ := url.Parse(raw)
	return u.Host
}

// TestBrowserConsoleApproval is the whole experience in two browsers: the
// MCP client's tab (go-sdk's OAuth client drives it) shows a code; the
// owner, in another browser, signs in to the console, enters the code,
// checks what is asked and approves; the first tab moves on by itself to
// the client's redirect URI, and go-sdk finishes the connection. No
// password is typed into the tab the client opened.
func TestBrowserConsoleApproval(t *testing.T) {
	base, db, _ := startExample(t)
	clientTab := browsertest.New(t) // after the server: closed before it
	ownerTab := browsertest.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()

	store, err := openStore(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	accounts := approval.NewAccounts(store, approval.AccountsOptions{BcryptCost: bcrypt.MinCost})
	if err := accounts.AddUser(ctx, "owner", "correct horse battery"); err != nil {
		t.Fatal(err)
	}

	cb, landed := clientCallback(t)

	fetcher := func(ctx context.Context, args *auth.AuthorizationArgs) (*auth.AuthorizationResult, error) {
		if err := chromedp.Do(clientTab, chromedp.Navigate(args.URL), chromedp.WaitVisible(`[data-user-code]`)); err != nil {
			return nil, err
		}
		attr, err := chromedp.Run(clientTab, chromedp.AttributeValue(`[data-user-code]`, "data-user-code"))
		if err != nil {
			return nil, err
		}
		// The owner, elsewhere: sign in, enter the code, approve.
		octx, ocancel := context.WithTimeout(ownerTab, 30*time.Second)
		defer ocancel()
		if err := chromedp.Do(octx,
			chromedp.Navigate(base+"/console"),
			browsertest.ConsoleSignIn("owner", "correct horse battery"),
			chromedp.WaitVisible(`form[data-enter-code]`),
			chromedp.SendKeys(`#user_code`, strings.ToLower(strings.ReplaceAll(attr.Value, "-", ""))),
			chromedp.Submit(`form[data-enter-code]`),
			chromedp.WaitVisible(`[data-approve]`),
		); err != nil {
			return nil, fmt.Errorf("owner's console: %w", err)
		}
		host, err := chromedp.Run(octx, chromedp.Text(`[data-redirect-host]`))
		if err != nil {
			return nil, err
		}
		if host != mustHost(cb.URL) {
			t.Errorf("the console shows redirect host %q, want %q", host, mustHost(cb.URL))
		}
		if err := chromedp.Do(octx, chromedp.Click(`[data-approve]`), chromedp.WaitVisible(`[data-notice]`)); err != nil {
			return nil, fmt.Errorf("approve in the console: %w", err)
		}
		return awaitCallback(ctx, landed)
	}
	cs, oh := connect(t, ctx, base, &oauthex.ClientRegistrationMetadata{
		RedirectURIs: []string{cb.URL + "/callback"}, ClientName: "Console test", TokenEndpointAuthMethod: "none"}, fetcher)
	defer cs.Close()
	if who := callWhoami(t, ctx, cs); who.Subject != "owner" {
		t.Errorf("whoami = %+v, want the console user owner", who)
	}
	ts, err := oh.TokenSource(ctx)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := ts.Token()
	if err != nil {
		t.Fatal(err)
	}
	// The grant is listed in the console, with a Revoke button that works.
	if err := chromedp.Do(ownerTab, chromedp.Navigate(base+"/console"), chromedp.WaitVisible(`[data-grants] button[data-revoke]`),
		chromedp.Click(`[data-grants] button[data-revoke]`), chromedp.WaitVisible(`[data-notice]`)); err != nil {
		t.Fatalf("revoke in the console: %v", err)
	}
	if st, _ := ping(t, base, tok.AccessToken); st != http.StatusUnauthorized {
		t.Errorf("the access token after its grant was revoked in the console: status %d, want 401", st)
	}
}

// awaitCallback returns the authorization response that reached the
// client's callback.
func awaitCallback(ctx context.Context, landed <-chan url.Values) (*auth.AuthorizationResult, error) {
	select {
	case q := <-landed:
		return &auth.AuthorizationResult{Code: q.Get("code"), State: q.Get("state"), Iss: q.Get("iss")}, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// clientCallback is a client's redirect URI on loopback, as a desktop
// client runs one; the channel receives the query of its first request.
func clientCallback(t *testing.T) (*httptest.Server, <-chan url.Values) {
	t.Helper()
	landed := make(chan url.Values, 1)
	cb := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case landed <- r.URL.Query():
		default:
		}
		w.Write([]byte("You can close this tab."))
	}))
	t.Cleanup(cb.Close)
	return cb, landed
}
