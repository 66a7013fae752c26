package mcpauth_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	sdkext "github.com/modelcontextprotocol/go-sdk/auth/extauth"
	"github.com/modelcontextprotocol/go-sdk/oauthex"
	"golang.org/x/oauth2"

	oauth "github.com/mcp-oauth/oauth"
	"github.com/mcp-oauth/oauth/extauth"
	"github.com/mcp-oauth/oauth/mcpauth"
	"github.com/mcp-oauth/oauth/storage/memory"
)

// enterpriseIdP is an enterprise identity provider for SEP-990: it
// exchanges an ID token (any value it issued, here "id-token-of-<user>")
// for an ID-JAG signed RS256 with typ oauth-id-jag+jwt (RFC 8693 §2 with
// requested_token_type id-jag), and publishes its metadata and keys.
type enterpriseIdP struct {
	srv      *httptest.Server
	key      *rsa.PrivateKey
	clientID string // the MCP client the ID-JAGs are for

	mu        sync.Mutex
	exchanges int
}

func newEnterpriseIdP(t *testing.T, clientID string) *enterpriseIdP {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	p := &enterpriseIdP{key: key, clientID: clientID}
	p.srv = httptest.NewServer(http.HandlerFunc(p.serve))
	t.Cleanup(p.srv.Close)
	return p
}

func (p *enterpriseIdP) serve(w http.ResponseWriter, r *http.Request) {
	b64 := base64.RawURLEncoding
	w.Header().Set("Content-Type", "application/json")
	switch r.URL.Path {
	case "/.well-known/oauth-authorization-server":
		json.NewEncoder(w).Encode(map[string]any{"issuer": p.srv.URL, "jwks_uri": p.srv.URL + "/jwks", "token_endpoint": p.srv.URL + "/token",
			"grant_types_supported": []string{oauth.GrantTypeTokenExchange}, "code_challenge_methods_supported": []string{"S256"}})
	case "/jwks":
		json.NewEncoder(w).Encode(map[string]any{"keys": []any{map[string]any{"kty": "RSA", "kid": "idp1", "use": "sig", "alg": "RS256",
			"n": b64.EncodeToString(p.key.N.Bytes()), "e": b64.EncodeToString(big.NewInt(int64(p.key.E)).Bytes())}}})
	case "/token":
		r.ParseForm()
		user, ok := strings.CutPrefix(r.PostForm.Get("subject_token"), "id-token-of-")
		if r.PostForm.Get("grant_type") != oauth.GrantTypeTokenExchange || !ok ||
			r.PostForm.Get("requested_token_type") != oauthex.TokenTypeIDJAG || r.PostForm.Get("subject_token_type") != oauthex.TokenTypeIDToken {
			w.WriteHeader(400)
			json.NewEncoder(w).Encode(map[string]string{"error": "invalid_request"})
			return
		}
		p.mu.Lock()
		p.exchanges++
		p.mu.Unlock()
		jag := p.sign(map[string]any{"sub": user, "aud": r.PostForm.Get("audience"), "resource": r.PostForm.Get("resource"),
			"scope": r.PostForm.Get("scope"), "client_id": p.clientID})
		json.NewEncoder(w).Encode(map[string]any{"access_token": jag, "issued_token_type": oauthex.TokenTypeIDJAG, "token_type": "N_A", "expires_in": 300})
	default:
		http.NotFound(w, r)
	}
}

// sign returns an ID-JAG with claims over defaults for iss, jti, iat and
// exp; a claim set to nil is left out.
func (p *enterpriseIdP) sign(claims map[string]any) string {
	now := time.Now()
	c := jwt.MapClaims{"iss": p.srv.URL, "jti": rand.Text(), "iat": now.Unix(), "exp": now.Add(5 * time.Minute).Unix()}
	for k, v := range claims {
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
	}
	typ := "oauth-id-jag+jwt"
	if s, ok := c["typ"].(string); ok {
		typ = s
		delete(c, "typ")
	}
	t := jwt.NewWithClaims(jwt.SigningMethodRS256, c)
	t.Header["kid"], t.Header["typ"] = "idp1", typ
	s, err := t.SignedString(p.key)
	if err != nil {
		panic(err)
	}
	return s
}

// TestEnterpriseManagedAuthorization: go-sdk's EnterpriseHandler (SEP-990)
// signs in at an enterprise IdP, exchanges the ID token there for an
// ID-JAG and the ID-JAG here for an access token (RFC 7523 §2.1); the tool
// sees the IdP's user, and the token is bound to the asserted resource.
func TestEnterpriseManagedAuthorization(t *testing.T) {
	srv := httptest.NewUnstartedServer(nil)
	base := "http://" + srv.Listener.Addr().String()
	store := memory.New()
	// The agent registers, as a confidential client, for the JWT grant.
	idp := newEnterpriseIdP(t, "")
	jag, err := extauth.New(t.Context(), extauth.Options{Issuer: idp.srv.URL, Audiences: []string{base},
		TokenTypes: []string{mcpauth.TokenTypeIDJAG}, Claims: []string{"resource"}})
	if err != nil {
		t.Fatal(err)
	}
	h, err := mcpauth.Wrap(whoamiServer(), mcpauth.Options{Issuer: base, Store: store, Scopes: []string{"notes", "notes.write"},
		Assertions: []mcpauth.AssertionVerifier{jag}})
	if err != nil {
		t.Fatal(err)
	}
	srv.Config.Handler = h
	srv.Start()
	t.Cleanup(srv.Close)
	meta := getJSON(t, base+"/.well-known/oauth-authorization-server")
	if !strings.Contains(strings.Join(anyStrings(meta["grant_types_supported"]), " "), oauth.GrantTypeJWTBearer) {
		t.Errorf("grant_types_supported = %v", meta["grant_types_supported"])
	}
	reg := postJSON(t, base+"/register", `{"client_name":"Agent","redirect_uris":["https://agent.example.com/cb"],"grant_types":["authorization_code","`+oauth.GrantTypeJWTBearer+`"]}`)
	clientID, clientSecret := reg["client_id"].(string), reg["client_secret"].(string)
	idp.clientID = clientID

	eh, err := sdkext.NewEnterpriseHandler(&sdkext.EnterpriseHandlerConfig{
		IdPIssuerURL:     idp.srv.URL,
		IdPCredentials:   &oauthex.ClientCredentials{ClientID: "agent-at-idp"},
		MCPAuthServerURL: base,
		MCPResourceURI:   base + "/mcp",
		MCPScopes:        []string{"notes"},
		MCPCredentials:   &oauthex.ClientCredentials{ClientID: clientID, ClientSecretAuth: &oauthex.ClientSecretAuth{ClientSecret: clientSecret}},
		IDTokenFetcher: func(context.Context) (*oauth2.Token, error) {
			return (&oauth2.Token{AccessToken: "x"}).WithExtra(map[string]any{"id_token": "id-token-of-bob@acme.example"}), nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	got, err := callToolWithHandler(t.Context(), base+"/mcp", eh, "whoami")
	if err != nil {
		t.Fatal(err)
	}
	if want := "bob@acme.example via " + clientID + ", roles []"; got != want {
		t.Errorf("whoami = %q, want %q", got, want)
	}
	if idp.exchanges != 1 {
		t.Errorf("%d exchanges at the IdP, want 1", idp.exchanges)
	}
	grants, _ := h.DefaultProvider().ListGrants(t.Context())
	if len(grants) != 1 || grants[0].GrantType != oauth.GrantTypeJWTBearer || grants[0].Subject != "bob@acme.example" || strings.Join(grants[0].Scopes, " ") != "notes" {
		t.Errorf("grants = %+v", grants)
	}

	// Refusals, each invalid_grant unless said otherwise.
	token := func(assertion string, kv ...string) map[string]any {
		form := url.Values{"grant_type": {oauth.GrantTypeJWTBearer}, "assertion": {assertion}}
		for i := 0; i+1 < len(kv); i += 2 {
			form.Set(kv[i], kv[i+1])
		}
		req, _ := http.NewRequest("POST", base+"/token", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth(clientID, clientSecret)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]any
		json.NewDecoder(resp.Body).Decode(&out)
		out["status"] = resp.StatusCode
		return out
	}
	good := map[string]any{"sub": "carol", "aud": base, "resource": base + "/mcp", "scope": "notes notes.write", "client_id": clientID}
	with := func(kv ...any) map[string]any {
		c := map[string]any{}
		for k, v := range good {
			c[k] = v
		}
		for i := 0; i+1 < len(kv); i += 2 {
			c[kv[i].(string)] = kv[i+1]
		}
		return c
	}
	replayed := idp.sign(good)
	if r := token(replayed, "scope", "notes"); r["status"] != 200 || r["scope"] != "notes" {
		t.Fatalf("a valid assertion with a narrower scope: %v", r)
	}
	for _, tc := range []struct {
		name      string
		assertion string
		kv        []string
		code      string
	}{
		{"replayed jti", replayed, nil, "invalid_grant"},
		{"another client's", idp.sign(with("client_id", "someone-else")), nil, "invalid_grant"},
		{"no jti", idp.sign(with("jti", nil)), nil, "invalid_grant"},
		{"no resource", idp.sign(with("resource", nil)), nil, "invalid_grant"},
		{"for another resource", idp.sign(with("resource", "https://elsewhere.example.com/mcp")), nil, "invalid_target"},
		{"resource parameter differs", idp.sign(good), []string{"resource", base + "/other"}, "invalid_target"},
		{"for another audience", idp.sign(with("aud", "https://other-as.example.com")), nil, "invalid_grant"},
		{"expired", idp.sign(with("exp", time.Now().Add(-time.Hour).Unix())), nil, "invalid_grant"},
		{"lives too long", idp.sign(with("exp", time.Now().Add(time.Hour).Unix())), nil, "invalid_grant"},
		{"an access token, not an ID-JAG", idp.sign(with("typ", "at+jwt")), nil, "invalid_grant"},
		{"unsigned", strings.Join(strings.Split(idp.sign(good), ".")[:2], ".") + ".", nil, "invalid_grant"},
		{"scope not asserted", idp.sign(with("scope", "notes")), []string{"scope", "notes.write"}, "invalid_scope"},
		{"no assertion", "", nil, "invalid_request"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if r := token(tc.assertion, tc.kv...); r["error"] != tc.code {
				t.Errorf("got %v, want %s", r, tc.code)
			}
		})
	}
}

func getJSON(t *testing.T, u string) map[string]any {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	return out
}

func postJSON(t *testing.T, u, body string) map[string]any {
	t.Helper()
	resp, err := http.Post(u, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != 201 {
		t.Fatalf("POST %s: %d %v %v", u, resp.StatusCode, out, err)
	}
	return out
}

func anyStrings(v any) []string {
	var out []string
	for _, x := range v.([]any) {
		out = append(out, x.(string))
	}
	return out
}
