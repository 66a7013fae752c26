package extauth_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	oauth "github.com/mcp-oauth/oauth"
	"github.com/mcp-oauth/oauth/extauth"
)

// New discovers the issuer and fetches its keys; Verify then checks each
// token and says why it refuses one. Here the issuer is a stand-in on
// httptest with an EdDSA key, shaped like an Auth0 tenant (its issuer ends
// in a slash, its tokens carry permissions).
func ExampleNew() {
	issuer, sign := standInIssuer()
	defer issuer.Close()
	ctx := context.Background()
	v, err := extauth.New(ctx, extauth.Options{
		Issuer:    issuer.URL + "/",
		Audiences: []string{"https://notes.example.com/mcp"},
		Roles:     extauth.RoleOptions{Claims: []extauth.RoleClaim{{Path: "permissions"}}},
		Claims:    []string{"email"},
	})
	if err != nil {
		log.Fatal(err)
	}
	claims := map[string]any{
		"iss": issuer.URL + "/", "sub": "auth0|alice", "azp": "notes-app", "aud": []string{"https://notes.example.com/mcp"},
		"exp": time.Now().Add(time.Hour).Unix(), "scope": "notes:read", "permissions": []string{"notes:read", "notes:write"},
		"email": "alice@example.com",
	}
	at, err := v.Verify(ctx, sign(claims))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(at.Subject, at.ClientID, at.Scopes, at.Roles, at.Claims["email"])

	claims["exp"] = time.Now().Add(-time.Hour).Unix()
	_, err = v.Verify(ctx, sign(claims))
	fmt.Println(errors.Is(err, extauth.ErrExpired), errors.Is(err, oauth.ErrInvalidToken))
	claims["exp"], claims["aud"] = time.Now().Add(time.Hour).Unix(), "https://other.example.com/mcp"
	_, err = v.Verify(ctx, sign(claims))
	fmt.Println(errors.Is(err, extauth.ErrWrongAudience))
	fmt.Println("refused:", v.Stats().Rejected["expired"], "expired,", v.Stats().Rejected["wrong_audience"], "for another audience")
	// Output:
	// auth0|alice notes-app [notes:read] [notes:read notes:write] alice@example.com
	// true true
	// true
	// refused: 1 expired, 1 for another audience
}

// ByShape takes the issuer's JWTs and the host's own API keys on one
// endpoint, each checked only by its own verifier.
func ExampleByShape() {
	issuer, sign := standInIssuer()
	defer issuer.Close()
	ctx := context.Background()
	v, err := extauth.New(ctx, extauth.Options{Issuer: issuer.URL + "/", Audiences: []string{"https://notes.example.com/mcp"}})
	if err != nil {
		log.Fatal(err)
	}
	apiKeys := func(ctx context.Context, key string) (*oauth.AccessToken, error) {
		if key != "nk_live_42" { // a real host looks up the key's SHA-256
			return nil, oauth.ErrInvalidToken.WithDescription("unknown API key")
		}
		return &oauth.AccessToken{Subject: "build-bot", ExpiresAt: time.Now().Add(time.Minute)}, nil
	}
	verify := extauth.ByShape(v.Verify, apiKeys, "nk_live_", "nk_test_")
	// mcpauth.RequireBearer(verify, ...) or mcpauth.ProtectOptions{Verify: verify, Verifier: v}

	jwtTok := sign(map[string]any{"iss": issuer.URL + "/", "sub": "alice", "aud": "https://notes.example.com/mcp", "exp": time.Now().Add(time.Hour).Unix()})
	for _, tok := range []string{jwtTok, "nk_live_42", "nk_test_wrong", "ghp_something_else"} {
		at, err := verify(ctx, tok)
		if err != nil {
			fmt.Println("refused:", oauth.AsError(err).Description)
			continue
		}
		fmt.Println("caller:", at.Subject)
	}
	// Output:
	// caller: alice
	// caller: build-bot
	// refused: unknown API key
	// refused: the access token is malformed
}

// standInIssuer serves RFC 8414 metadata for issuer URL + "/" and a JWK Set
// with one Ed25519 key; sign returns an access token signed with it.
func standInIssuer() (*httptest.Server, func(map[string]any) string) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		log.Fatal(err)
	}
	jwks, _ := json.Marshal(map[string]any{"keys": []any{map[string]any{
		"kty": "OKP", "crv": "Ed25519", "kid": "ed-1", "use": "sig", "x": base64.RawURLEncoding.EncodeToString(pub)}}})
	var srv *httptest.Server
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/.well-known/oauth-authorization-server":
			json.NewEncoder(w).Encode(map[string]string{"issuer": srv.URL + "/", "jwks_uri": srv.URL + "/jwks"})
		case strings.HasSuffix(r.URL.Path, "/jwks"):
			w.Write(jwks)
		default:
			http.NotFound(w, r)
		}
	}))
	return srv, func(claims map[string]any) string {
		t := jwt.NewWithClaims(jwt.SigningMethodEdDSA, jwt.MapClaims(claims))
		t.Header["kid"], t.Header["typ"] = "ed-1", "at+jwt"
		s, err := t.SignedString(priv)
		if err != nil {
			log.Fatal(err)
		}
		return s
	}
}
