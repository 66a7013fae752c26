package oidctest

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"

	"golang.org/x/oauth2"
)

// TestAppTokens: an App signs a user in with the authorization code flow
// and PKCE; its access tokens, fresh and refreshed, are JWTs with the
// App's audience, scope and claims; introspection by the App names the
// audience too.
func TestAppTokens(t *testing.T) {
	ctx := context.Background()
	const redirect = "http://127.0.0.1:7/cb"
	p := Start(t, Options{Apps: []App{{ID: "app", Secret: "s", RedirectURIs: []string{redirect},
		Audience: []string{"http://127.0.0.1/mcp"}, Claims: map[string]any{"roles": []string{"r"}}}}})
	var meta struct {
		Auth          string `json:"authorization_endpoint"`
		Token         string `json:"token_endpoint"`
		Introspection string `json:"introspection_endpoint"`
	}
	resp, err := http.Get(p.Issuer + ".well-known/openid-configuration")
	if err != nil {
		t.Fatal(err)
	}
	json.NewDecoder(resp.Body).Decode(&meta)
	resp.Body.Close()
	cfg := &oauth2.Config{ClientID: "app", ClientSecret: "s", RedirectURL: redirect, Scopes: []string{"openid", "offline_access"},
		Endpoint: oauth2.Endpoint{AuthURL: meta.Auth, TokenURL: meta.Token, AuthStyle: oauth2.AuthStyleInHeader}}
	verifier := oauth2.GenerateVerifier()
	code := signInForCode(t, p.Issuer, cfg.AuthCodeURL("st", oauth2.S256ChallengeOption(verifier)), redirect)
	tok, err := cfg.Exchange(ctx, code, oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatal(err)
	}
	wantAud := []any{"app", "http://127.0.0.1/mcp"}
	check := func(access string) {
		t.Helper()
		header, claims := decodeJWT(t, access)
		aud, _ := claims["aud"].([]any)
		if header["typ"] != "JWT" || claims["sub"] != Subject || !slices.Equal(aud, wantAud) ||
			claims["scope"] != "openid offline_access" || claims["client_id"] != "app" || claims["roles"] == nil {
			t.Errorf("header %v claims %v", header, claims)
		}
	}
	check(tok.AccessToken)
	if tok.RefreshToken == "" {
		t.Fatal("no refresh token")
	}
	fresh, err := cfg.TokenSource(ctx, &oauth2.Token{RefreshToken: tok.RefreshToken}).Token()
	if err != nil {
		t.Fatal(err)
	}
	check(fresh.AccessToken)

	form := url.Values{"token": {fresh.AccessToken}}
	req, _ := http.NewRequest("POST", meta.Introspection, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth("app", "s")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var in map[string]any
	json.NewDecoder(resp.Body).Decode(&in)
	if aud, _ := in["aud"].([]any); in["active"] != true || !slices.Equal(aud, wantAud) || in["iss"] != p.Issuer {
		t.Errorf("introspection %v", in)
	}
}

var loginID = regexp.MustCompile(`name="id" value="([^"]+)"`)

// signInForCode follows authURL through the login page, signing in, and
// returns the code sent to redirect.
func signInForCode(t *testing.T, issuer, authURL, redirect string) string {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	hc := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for u, hops := authURL, 0; hops < 10; hops++ {
		resp, err := hc.Get(u)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			m := loginID.FindSubmatch(body)
			if m == nil {
				t.Fatalf("the login page: %s", body)
			}
			resp, err = hc.PostForm(issuer+"login/username", url.Values{"id": {string(m[1])}, "username": {Username}, "password": {Password}})
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
		}
		next, err := resp.Location()
		if err != nil {
			t.Fatalf("stopped at %d", resp.StatusCode)
		}
		if strings.HasPrefix(next.String(), redirect) {
			return next.Query().Get("code")
		}
		u = next.String()
	}
	t.Fatal("too many redirects")
	return ""
}
