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
	"github.com/chromedp/chromedp/kb"

	"github.com/mcp-oauth/oauth/internal/browsertest"
)

// focusInfo is what testdata/a11y-focus.js reports about the focused
// element.
type focusInfo struct {
	Index, Count int
	Ring         bool
	Contrast     float64
	What         string
}

// TestBrowserAccessibility audits every page, signed out and signed in, in
// light and dark mode at a phone's width, with testdata/a11y-audit.js
// (contrast of text, placeholders, control boundaries; names of controls;
// target sizes; lang, title, one h1, main; no sideways scrolling), and walks
// each page with the Tab key: focus must visit every control in document
// order, each with a visible focus ring.
func TestBrowserAccessibility(t *testing.T) {
	audit, focus := a11yScript(t, "a11y-audit.js"), a11yScript(t, "a11y-focus.js")
	f := newFixture(t, func(o *Options) { o.ApprovalPage.ProductName = "Notes" })
	addOwner(t, f)
	// Lists with long entries, as a phone must show them.
	f.register(`{"redirect_uris":["http://127.0.0.1:33418/a/rather/long/callback/path/that/a/phone/must/wrap/somewhere"],"token_endpoint_auth_method":"none","client_name":"A client with a rather long name that must wrap too"}`)
	f.tokens()
	cl := f.register(`{"redirect_uris":["http://127.0.0.1:33418/callback"],"token_endpoint_auth_method":"none","client_name":"Claude Code"}`)
	tabURL := func() string {
		return f.get("/authorize?" + authParams(cl).Encode()).header.Get("Location")
	}
	type page struct {
		name  string
		steps chromedp.Action[chromedp.Void]
		wait  string
	}
	for _, scheme := range []string{"light", "dark"} {
		pending := tabURL()
		code := extractParam(pending, "user_code")
		pages := []page{
			{"authorize tab", chromedp.Navigate(pending), `[data-user-code]`},
			{"device verification", chromedp.Navigate(f.base + PathDevice + "?user_code=" + url.QueryEscape(code)), `[data-user-code]`},
			{"expired request", chromedp.Navigate(f.base + PathDevice + "?request=gone&user_code=BBBB-BBBB"), `[data-message]`},
			{"console sign-in", chromedp.Navigate(f.base + "/console"), `form[data-signin]`},
			{"sign-in error", browsertest.ConsoleSignIn("owner", "not the password"), `[data-error]`},
			{"console home", signInSteps(f.base), `table[data-grants]`},
			{"unknown code", chromedp.Navigate(f.base + "/console/approve?user_code=BBBB-BBBB"), `[data-error]`},
			{"confirmation", chromedp.Navigate(f.base + "/console/approve?user_code=" + url.QueryEscape(code)), `[data-approve]`},
			{"decided", chromedp.Click(`[data-deny]`), `[data-notice]`},
			{"authorize tab, quick authorize", chromedp.Navigate(tabURL()), `[data-quick-approve]`},
		}
		tab := browsertest.New(t)
		ctx, cancel := context.WithTimeout(tab, 90*time.Second)
		if _, err := chromedp.Call(ctx, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
			Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: scheme}}}); err != nil {
			t.Fatal(err)
		}
		if err := chromedp.Do(ctx, chromedp.EmulateViewport(375, 740, chromedp.EmulateMobile)); err != nil {
			t.Fatal(err)
		}
		for _, p := range pages {
			name := p.name + " (" + scheme + ")"
			if err := chromedp.Do(ctx, p.steps, chromedp.WaitVisible(p.wait)); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			problems, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](audit))
			if err != nil {
				t.Fatalf("%s: audit: %v", name, err)
			}
			for _, pr := range problems {
				t.Errorf("%s: %s", name, pr)
			}
			checkFocusOrder(t, ctx, name, focus)
		}
		cancel()
	}
}

// a11yScript returns testdata/a11y-lib.js and the check in file as one
// expression for chromedp.Evaluate.
func a11yScript(t *testing.T, file string) string {
	t.Helper()
	lib, err := os.ReadFile("testdata/a11y-lib.js")
	if err != nil {
		t.Fatal(err)
	}
	check, err := os.ReadFile(filepath.Join("testdata", file))
	if err != nil {
		t.Fatal(err)
	}
	return "(() => {\n" + string(lib) + "\n" + string(check) + "\n})()"
}

// checkFocusOrder presses Tab until every control has had focus, and
// checks that focus moved through them in document order (wrapping at the
// end, possibly through the page itself) with a visible ring each time.
func checkFocusOrder(t *testing.T, ctx context.Context, name, script string) {
	t.Helper()
	var order []int
	count := -1
	for i := 0; count < 0 || i < count+3; i++ {
		if err := chromedp.Do(ctx, chromedp.KeyEvent(kb.Tab)); err != nil {
			t.Fatalf("%s: Tab: %v", name, err)
		}
		fi, err := chromedp.Run(ctx, chromedp.Evaluate[focusInfo](script))
		if err != nil {
			t.Fatalf("%s: focus: %v", name, err)
		}
		count = fi.Count
		order = append(order, fi.Index)
		if fi.Index >= 0 && !fi.Ring {
			t.Errorf("%s: no visible focus ring on %s (outline contrast %.2f)", name, fi.What, fi.Contrast)
		}
	}
	t.Logf("%s: focus order %v of %d", name, order, count)
	seen := make([]bool, count)
	prev := -1
	for _, i := range order {
		if i >= 0 {
			seen[i] = true
			if prev >= 0 && i != prev+1 && !(prev == count-1 && i == 0) {
				t.Errorf("%s: focus went from control %d to %d (order %v)", name, prev, i, order)
			}
		}
		prev = i
	}
	for i, ok := range seen {
		if !ok {
			t.Errorf("%s: control %d of %d never had focus (order %v)", name, i, count, order)
		}
	}
}
