package provider_test

import (
	"errors"
	"sync"
	"testing"
	"time"

	oauth "github.com/mcp-oauth/oauth"
	"github.com/mcp-oauth/oauth/provider"
)

// deviceEnv starts a device authorization for a new public client.
func (e *env) device(t *testing.T) (*oauth.Client, *oauth.DeviceAuthorization) {
	t.Helper()
	c, _ := e.client(t, "none")
	da, err := e.p.AuthorizeDevice(ctx, c, &oauth.AuthorizationParams{ClientID: c.ID, Scopes: []string{"mcp"},
		Resource: "https://as.example/mcp"})
	must(t, err)
	return c, da
}

func wantOAuthError(t *testing.T, err, want error, what string) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("%s: %v, want %v", what, err, want)
	}
}

// TestDeviceFlow walks the RFC 8628 state machine: pending, slow_down for
// a poll inside the interval (which then grows by 5 s), approval, tokens
// exactly once, invalid_grant after.
func TestDeviceFlow(t *testing.T) {
	e := newEnv(t, nil)
	c, da := e.device(t)
	if da.Interval != 5 || da.ExpiresIn != 600 || da.VerificationURI != "https://as.example/device" ||
		da.VerificationURIComplete != "https://as.example/device?user_code="+da.UserCode {
		t.Fatalf("device authorization %+v", da)
	}
	poll := func() (*oauth.TokenResponse, error) { return e.p.ExchangeDeviceCode(ctx, c, da.DeviceCode) }

	_, err := poll()
	wantOAuthError(t, err, oauth.ErrAuthorizationPending, "first poll")
	e.clk.Advance(time.Second)
	_, err = poll()
	wantOAuthError(t, err, oauth.ErrSlowDown, "poll after 1 s")
	e.clk.Advance(5 * time.Second) // the interval is now 10 s
	_, err = poll()
	wantOAuthError(t, err, oauth.ErrSlowDown, "poll 5 s after a slow_down")
	e.clk.Advance(15 * time.Second)
	_, err = poll()
	wantOAuthError(t, err, oauth.ErrAuthorizationPending, "poll after the longer interval")

	if _, err := e.p.Approve(ctx, da.UserCode, "alice", nil); err != nil {
		t.Fatal(err)
	}
	e.clk.Advance(15 * time.Second)
	tok, err := poll()
	must(t, err)
	at, err := e.p.LoadAccessToken(ctx, tok.AccessToken)
	must(t, err)
	if at.Subject != "alice" || at.ClientID != c.ID || at.Resource != "https://as.example/mcp" || tok.RefreshToken == "" {
		t.Errorf("token %+v, access token %+v", tok, at)
	}
	e.clk.Advance(15 * time.Second)
	_, err = poll()
	wantOAuthError(t, err, oauth.ErrInvalidGrant, "poll after the tokens were issued")
	if _, err := e.p.LoadAccessToken(ctx, tok.AccessToken); err != nil {
		t.Errorf("a late poll revoked the grant: %v", err)
	}
}

// TestDeviceDenied: after a denial the device hears access_denied (as a
// 400 token error, RFC 8628 §3.5), and nothing is granted.
func TestDeviceDenied(t *testing.T) {
	e := newEnv(t, nil)
	c, da := e.device(t)
	if _, err := e.p.Deny(ctx, da.UserCode); err != nil {
		t.Fatal(err)
	}
	_, err := e.p.ExchangeDeviceCode(ctx, c, da.DeviceCode)
	wantOAuthError(t, err, oauth.ErrAccessDenied, "poll after denial")
	if e := oauth.AsError(err); e.Status != 400 {
		t.Errorf("access_denied status %d, want 400", e.Status)
	}
	if gs, _ := e.p.ListGrants(ctx); len(gs) != 0 {
		t.Errorf("%d grants after a denial", len(gs))
	}
}

// TestDeviceExpired: once the request expires the device hears
// expired_token, and the owner can no longer approve it.
func TestDeviceExpired(t *testing.T) {
	e := newEnv(t, nil)
	c, da := e.device(t)
	e.clk.Advance(provider.DefaultPendingTTL)
	_, err := e.p.ExchangeDeviceCode(ctx, c, da.DeviceCode)
	wantOAuthError(t, err, oauth.ErrExpiredToken, "poll after expiry")
	if _, err := e.p.Approve(ctx, da.UserCode, "alice", nil); !errors.Is(err, oauth.ErrUnknownRequest) {
		t.Errorf("approving an expired device request: %v", err)
	}
}

// TestDeviceCodeChecks: a malformed or unknown device code, or one issued
// to another client, is invalid_grant; so is a browser request's handle.
func TestDeviceCodeChecks(t *testing.T) {
	e := newEnv(t, nil)
	_, da := e.device(t)
	other, _ := e.client(t, "none")
	for name, code := range map[string]string{
		"malformed":    "abc",
		"unknown":      "mcp_dc_" + "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
		"other client": da.DeviceCode,
	} {
		_, err := e.p.ExchangeDeviceCode(ctx, other, code)
		wantOAuthError(t, err, oauth.ErrInvalidGrant, name)
	}
}

// TestDeviceRacingPolls: of polls racing after approval, exactly one gets
// tokens; the others get slow_down or invalid_grant.
func TestDeviceRacingPolls(t *testing.T) {
	e := newEnv(t, nil)
	c, da := e.device(t)
	if _, err := e.p.Approve(ctx, da.UserCode, "alice", nil); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	wins := 0
	for range 20 {
		wg.Go(func() {
			_, err := e.p.ExchangeDeviceCode(ctx, c, da.DeviceCode)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				wins++
			case errors.Is(err, oauth.ErrSlowDown), errors.Is(err, oauth.ErrInvalidGrant):
			default:
				t.Errorf("racing poll: %v", err)
			}
		})
	}
	wg.Wait()
	if wins != 1 {
		t.Fatalf("%d polls got tokens, want 1", wins)
	}
	if gs, _ := e.p.ListGrants(ctx); len(gs) != 1 {
		t.Errorf("%d grants, want 1", len(gs))
	}
}
