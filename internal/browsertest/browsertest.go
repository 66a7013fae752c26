// Package browsertest starts headless Chromium for tests of the pages, in
// the manner of net/http/httptest: a test asks for a browser context and
// drives it with chromedp. Chromium comes from the system (Debian's
// chromium package; .ci/run installs it): the tests never download one.
//
// A test that needs a browser skips, with a message saying how to get one,
// when no Chromium is found, unless MCPAUTH_REQUIRE_BROWSER is set (CI sets
// it), in which case it fails.
package browsertest

import (
	"context"
	"os"
	"os/exec"
	"testing"

	"github.com/chromedp/chromedp"
)

// EnvPath names the environment variable that may hold Chromium's path.
const EnvPath = "MCPAUTH_CHROMIUM"

// EnvRequire names the environment variable that makes a missing browser a
// test failure rather than a skip.
const EnvRequire = "MCPAUTH_REQUIRE_BROWSER"

// Path returns the Chromium executable: $MCPAUTH_CHROMIUM, or chromium,
// chromium-browser or google-chrome on PATH; "" if there is none.
func Path() string {
	if p := os.Getenv(EnvPath); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// New starts a headless browser for t and returns the context of its first
// tab, cancelled (browser closed) when the test ends. Each call starts a
// separate browser, so two calls give two independent profiles (cookies
// and all), as two people's browsers.
func New(t testing.TB) context.Context {
	t.Helper()
	path := Path()
	if path == "" {
		if os.Getenv(EnvRequire) != "" {
			t.Fatalf("no Chromium found and %s is set; install Debian's chromium package or set %s", EnvRequire, EnvPath)
		}
		t.Skipf("no Chromium found: skipping the browser test (apt-get install chromium, or set %s)", EnvPath)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.Flag("headless", true),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true),
		chromedp.UserDataDir(t.TempDir()),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	// The first Run starts the browser; its context must be the tab's own,
	// since cancelling it would close the browser.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start Chromium (%s): %v", path, err)
	}
	return ctx
}

// ConsoleSignIn fills and submits the console's sign-in form (which the
// browser must be on, or be about to show) with name and password. The
// caller waits for what should follow.
func ConsoleSignIn(name, password string) chromedp.Action[chromedp.Void] {
	return chromedp.Steps(
		chromedp.WaitVisible(`form[data-signin]`),
		chromedp.SendKeys(`#name`, name),
		chromedp.SendKeys(`#password`, password),
		chromedp.Submit(`form[data-signin]`),
	)
}
