package mcpauth

import (
	"context"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"

	"github.com/mcp-oauth/oauth/internal/browsertest"
)

// TestScreenshots renders every page in light and dark mode, at a phone's
// width, into the directory named by MCPAUTH_SCREENSHOTS (the README's
// images live in docs/screenshots):
//
//	MCPAUTH_SCREENSHOTS=$PWD/docs/screenshots go test -run TestScreenshots ./mcpauth/
//
// Without the variable it only checks that every page renders in both
// schemes.
func TestScreenshots(t *testing.T) {
	dir := os.Getenv("MCPAUTH_SCREENSHOTS")
	f := newFixture(t, func(o *Options) { o.ApprovalPage.ProductName = "Notes" })
	addOwner(t, f)
	cl := f.register(`{"redirect_uris":["http://127.0.0.1:33418/callback"],"token_endpoint_auth_method":"none","client_name":"Claude Code"}`)
	// One grant, so that the console's lists have something to show.
	if code := f.code(cl); f.exchange(cl, code).status != 200 {
		t.Fatal("could not create a grant")
	}
	r := f.get("/authorize?" + authParams(cl).Encode())
	tabURL := r.header.Get("Location")
	code := extractParam(tabURL, "user_code")

	for _, scheme := range []string{"light", "dark"} {
		tab := browsertest.New(t)
		ctx, cancel := context.WithTimeout(tab, 60*time.Second)
		if _, err := chromedp.Call(ctx, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
			Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: scheme}}}); err != nil {
			t.Fatal(err)
		}
		if err := chromedp.Do(ctx, chromedp.EmulateViewport(420, 900)); err != nil {
			t.Fatal(err)
		}
		shot := func(name, wait string) {
			t.Helper()
			if err := chromedp.Do(ctx, chromedp.WaitVisible(wait)); err != nil {
				t.Fatalf("%s (%s): %v", name, scheme, err)
			}
			png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
			if err != nil {
				t.Fatal(err)
			}
			if dir != "" {
				if err := os.WriteFile(filepath.Join(dir, name+"-"+scheme+".png"), png, 0o644); err != nil {
					t.Fatal(err)
				}
			}
		}
		if err := chromedp.Do(ctx, chromedp.Navigate(tabURL)); err != nil {
			t.Fatal(err)
		}
		shot("authorize-tab", `[data-user-code]`)
		if err := chromedp.Do(ctx, chromedp.Navigate(f.base+PathDevice+"?user_code="+code)); err != nil {
			t.Fatal(err)
		}
		shot("device-verification", `[data-user-code]`)
		if err := chromedp.Do(ctx, chromedp.Navigate(f.base+PathDevice+"?request=gone&user_code=BBBB-BBBB")); err != nil {
			t.Fatal(err)
		}
		shot("authorize-tab-expired", `[data-message]`)
		if err := chromedp.Do(ctx, chromedp.Navigate(f.base+"/console")); err != nil {
			t.Fatal(err)
		}
		shot("console-sign-in", `form[data-signin]`)
		if err := chromedp.Do(ctx, browsertest.ConsoleSignIn("owner", "correct horse battery")); err != nil {
			t.Fatal(err)
		}
		shot("console-home", `form[data-enter-code]`)
		if err := chromedp.Do(ctx, chromedp.Navigate(f.base+"/console/approve?user_code="+code)); err != nil {
			t.Fatal(err)
		}
		shot("console-confirm", `[data-approve]`)
		if err := chromedp.Do(ctx, chromedp.Navigate(f.base+"/console/approve?user_code=BBBB-BBBB")); err != nil {
			t.Fatal(err)
		}
		shot("console-unknown-code", `[data-error]`)
		if err := chromedp.Do(ctx, chromedp.Navigate(tabURL)); err != nil {
			t.Fatal(err)
		}
		shot("authorize-tab-quick", `[data-quick-approve]`)
		cancel()
	}
}

func extractParam(raw, name string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return ""
	}
	return u.Query().Get(name)
}
