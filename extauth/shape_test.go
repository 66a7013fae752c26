package extauth

import (
	"context"
	"errors"
	"testing"
	"time"

	oauth "github.com/mcp-oauth/oauth"
)

// TestByShape: each token reaches exactly the verifier of its shape;
// anything else is refused before either runs.
func TestByShape(t *testing.T) {
	rs := newKey("rs", RS256, 0)
	p := newIdP(t, "", rs)
	jwtTok := sign(t, rs, p.claims())
	var called string
	jwtV := func(ctx context.Context, tok string) (*oauth.AccessToken, error) {
		called = "jwt"
		return &oauth.AccessToken{Subject: "alice", ExpiresAt: time.Now().Add(time.Minute)}, nil
	}
	apiV := func(ctx context.Context, tok string) (*oauth.AccessToken, error) {
		called = "apikey"
		if tok != "sk_live_good" && tok != "plain-key" {
			return nil, oauth.ErrInvalidToken.WithDescription("unknown API key")
		}
		return &oauth.AccessToken{Subject: "svc", ExpiresAt: time.Now().Add(time.Minute)}, nil
	}
	withPrefix := ByShape(jwtV, apiV, "sk_live_", "sk_test_")
	noPrefix := ByShape(jwtV, apiV)
	onlyJWT := ByShape(jwtV, nil, "sk_")
	onlyKeys := ByShape(nil, apiV, "sk_")
	for _, tc := range []struct {
		name   string
		verify func(context.Context, string) (*oauth.AccessToken, error)
		token  string
		called string // "" means refused before any verifier
		ok     bool
	}{
		{"a JWT", withPrefix, jwtTok, "jwt", true},
		{"an API key", withPrefix, "sk_live_good", "apikey", true},
		{"a bad API key", withPrefix, "sk_test_bad", "apikey", false},
		{"neither", withPrefix, "gho_abcdef", "", false},
		{"three dots but no JSON header", withPrefix, "abc.def.ghi", "", false},
		{"a JWT-looking token with an API key prefix", withPrefix, "sk_live_" + jwtTok, "apikey", false},
		{"no prefixes: a non-JWT", noPrefix, "plain-key", "apikey", true},
		{"no prefixes: a JWT", noPrefix, jwtTok, "jwt", true},
		{"no API key verifier", onlyJWT, "sk_x", "", false},
		{"no JWT verifier", onlyKeys, jwtTok, "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			called = ""
			_, err := tc.verify(context.Background(), tc.token)
			if called != tc.called || (err == nil) != tc.ok {
				t.Fatalf("called %q (want %q), err %v", called, tc.called, err)
			}
			if err != nil && !errors.Is(err, oauth.ErrInvalidToken) {
				t.Errorf("err %v is not invalid_token", err)
			}
			if tc.called == "" && !errors.Is(err, ErrMalformed) {
				t.Errorf("err %v is not ErrMalformed", err)
			}
		})
	}
}

func TestLooksLikeJWT(t *testing.T) {
	for tok, want := range map[string]bool{
		"eyJhbGciOiJSUzI1NiJ9.e30.c2ln":   true,
		"eyJhbGciOiJSUzI1NiJ9.e30.":       true,
		"eyJhbGciOiJSUzI1NiJ9.e30":        false,
		"eyJhbGciOiJSUzI1NiJ9..c2ln":      false,
		"eyJhbGciOiJSUzI1NiJ9.e30.c2ln.x": false,
		"YWJj.e30.c2ln":                   false, // header "abc"
		"":                                false,
		"...":                             false,
		"sk_live_abc":                     false,
	} {
		if got := LooksLikeJWT(tok); got != want {
			t.Errorf("LooksLikeJWT(%q) = %v", tok, got)
		}
	}
}
