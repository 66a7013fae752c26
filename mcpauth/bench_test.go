package mcpauth

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/auth"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/modelcontextprotocol/go-sdk/oauthex"

	oauth "github.com/mcp-oauth/oauth"
	"github.com/mcp-oauth/oauth/provider"
	"github.com/mcp-oauth/oauth/storage"
	"github.com/mcp-oauth/oauth/storage/memory"
	"github.com/mcp-oauth/oauth/storage/sqlite"
)

// benchEnv is an authorization server over a real store, driven in-process.
type benchEnv struct {
	n      int // codes prepared
	p      *provider.Provider
	as     *AuthorizationServer
	client *oauth.Client
}

// newBenchEnv returns a provider on backend "memory" or "sqlite"; a
// "-nocache" suffix turns its verified-token cache off.
func newBenchEnv(b *testing.B, backend string) *benchEnv {
	return newBenchEnvWith(b, backend, nil)
}

// newBenchEnvWith is newBenchEnv with the provider options changed by mut.
func newBenchEnvWith(b *testing.B, backend string, mut func(*provider.Options)) *benchEnv {
	b.Helper()
	cache := 0
	if base, ok := strings.CutSuffix(backend, "-nocache"); ok {
		backend, cache = base, -1
	}
	var store storage.Store = memory.New()
	if backend == "sqlite" {
		s, err := sqlite.Open(context.Background(), filepath.Join(b.TempDir(), "bench.db"))
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { s.Close() })
		store = s
	}
	po := provider.Options{Issuer: fuzzIssuer, Resource: fuzzIssuer + "/mcp", VerifiedTokenCacheSize: cache}
	if mut != nil {
		mut(&po)
	}
	p, err := provider.New(context.Background(), store, po)
	if err != nil {
		b.Fatal(err)
	}
	as, err := NewAuthorizationServer(p, ServerOptions{Issuer: fuzzIssuer, Resource: fuzzIssuer + "/mcp"})
	if err != nil {
		b.Fatal(err)
	}
	resp, err := p.RegisterClient(context.Background(), &oauthex.ClientRegistrationMetadata{RedirectURIs: []string{"http://127.0.0.1:3000/cb"}, TokenEndpointAuthMethod: "none"})
	if err != nil {
		b.Fatal(err)
	}
	c, _ := p.GetClient(context.Background(), resp.ClientID)
	return &benchEnv{p: p, as: as, client: c}
}

// code runs an authorization to completion and returns a fresh code.
func (e *benchEnv) code(b *testing.B) string { return e.codeWith(b, nil) }

// codeWith is code, the request completed with a setup step's setup.
func (e *benchEnv) codeWith(b *testing.B, setup *oauth.GrantSetup) string {
	ctx := context.Background()
	to, err := e.p.Authorize(ctx, e.client, &oauth.AuthorizationParams{ClientID: e.client.ID, RedirectURI: e.client.RedirectURIs[0],
		RedirectURIExplicit: true, Scopes: []string{"mcp"}, CodeChallenge: challengeOf(verifier), Resource: fuzzIssuer + "/mcp"})
	if err != nil {
		b.Fatal(err)
	}
	u, _ := url.Parse(to)
	// A subject per code: redeeming a code replaces the subject's other
	// grants for the same client, which would kill the prepared codes.
	e.n++
	if _, err := e.p.Approve(ctx, u.Query().Get("user_code"), fmt.Sprintf("user%d", e.n), nil); err != nil {
		b.Fatal(err)
	}
	_, back, err := e.p.Poll(ctx, &oauth.PollRequest{Handle: u.Query().Get("request"), UserCode: u.Query().Get("user_code"), Setup: setup})
	if err != nil || back == "" {
		b.Fatal("poll of an approved request:", back, err)
	}
	bu, _ := url.Parse(back)
	return bu.Query().Get("code")
}

func (e *benchEnv) post(form url.Values) *httptest.ResponseRecorder {
	return e.postBasic(form, "", "")
}

// postBasic is post with HTTP Basic client credentials, unless id is "".
func (e *benchEnv) postBasic(form url.Values, id, secret string) *httptest.ResponseRecorder {
	req := httptest.NewRequest("POST", PathToken, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if id != "" {
		req.SetBasicAuth(id, secret)
	}
	w := httptest.NewRecorder()
	e.as.ServeHTTP(w, req)
	return w
}

// BenchmarkTokenExchange measures POST /token with grant_type
// authorization_code: parse, client lookup, code load, PKCE, atomic
// redemption with the refresh-token insert, JWT signing.
func BenchmarkTokenExchange(b *testing.B) {
	for _, backend := range []string{"memory", "sqlite"} {
		b.Run(backend, func(b *testing.B) {
			e := newBenchEnv(b, backend)
			codes := make([]string, b.N)
			for i := range codes {
				codes[i] = e.code(b)
			}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				w := e.post(url.Values{"grant_type": {"authorization_code"}, "code": {codes[i]}, "code_verifier": {verifier},
					"redirect_uri": {e.client.RedirectURIs[0]}, "client_id": {e.client.ID}})
				if w.Code != http.StatusOK {
					b.Fatalf("%d %s", w.Code, w.Body)
				}
			}
		})
	}
}

// BenchmarkRefreshRotation measures POST /token with grant_type
// refresh_token, each iteration rotating the previous iteration's token.
func BenchmarkRefreshRotation(b *testing.B) {
	for _, backend := range []string{"memory", "sqlite"} {
		b.Run(backend, func(b *testing.B) {
			e := newBenchEnv(b, backend)
			w := e.post(url.Values{"grant_type": {"authorization_code"}, "code": {e.code(b)}, "code_verifier": {verifier},
				"redirect_uri": {e.client.RedirectURIs[0]}, "client_id": {e.client.ID}})
			rt := extractJSON(w.Body.String(), "refresh_token")
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				w := e.post(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}, "client_id": {e.client.ID}})
				if w.Code != http.StatusOK {
					b.Fatalf("%d %s", w.Code, w.Body)
				}
				rt = extractJSON(w.Body.String(), "refresh_token")
			}
		})
	}
}

func extractJSON(body, key string) string {
	_, after, _ := strings.Cut(body, `"`+key+`":"`)
	v, _, _ := strings.Cut(after, `"`)
	return v
}

// BenchmarkBearerVerify measures in-process verification of a valid access
// token presented again and again: from the verified-token cache, and with
// the cache off (ES256 signature, claims, and the grant read from the store
// every time).
func BenchmarkBearerVerify(b *testing.B) {
	for _, backend := range []string{"memory", "sqlite", "memory-nocache", "sqlite-nocache"} {
		b.Run(backend, func(b *testing.B) {
			e := newBenchEnv(b, backend)
			w := e.post(url.Values{"grant_type": {"authorization_code"}, "code": {e.code(b)}, "code_verifier": {verifier},
				"redirect_uri": {e.client.RedirectURIs[0]}, "client_id": {e.client.ID}})
			at := extractJSON(w.Body.String(), "access_token")
			ctx := context.Background()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := e.p.LoadAccessToken(ctx, at); err != nil {
						b.Fatal(err)
					}
				}
			})
		})
	}
}

// BenchmarkBearerMiddleware measures a whole request through RequireBearer
// and go-sdk's RequireBearerToken to a no-op handler.
func BenchmarkBearerMiddleware(b *testing.B) {
	e := newBenchEnv(b, "sqlite")
	w := e.post(url.Values{"grant_type": {"authorization_code"}, "code": {e.code(b)}, "code_verifier": {verifier},
		"redirect_uri": {e.client.RedirectURIs[0]}, "client_id": {e.client.ID}})
	at := extractJSON(w.Body.String(), "access_token")
	h := RequireBearer(e.p.LoadAccessToken, BearerOptions{ResourceMetadataURL: fuzzIssuer + "/.well-known/oauth-protected-resource/mcp"})(
		http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req := httptest.NewRequest("POST", "/mcp", nil)
			req.Header.Set("Authorization", "Bearer "+at)
			w := httptest.NewRecorder()
			h.ServeHTTP(w, req)
			if w.Code != 200 {
				b.Fatal(w.Code)
			}
		}
	})
}

// benchSetup is what a typical setup step keeps: a JSON value and two
// claims.
var benchSetup = &oauth.GrantSetup{
	Values: []oauth.GrantValue{{Name: "profile", Value: []byte(`{"display_name":"Ada Lovelace","workspace":"team-alpha"}`)}},
	Claims: map[string]any{"workspace": "team-alpha", "plan": "pro"},
}

// BenchmarkTokenExchangeSetup is BenchmarkTokenExchange for grants made
// by a setup step (a sealed value, two claims) with a TokenClaims hook
// adding a third: the /token cost of the step (the grant read for its
// claims, their checks, a larger JWT).
func BenchmarkTokenExchangeSetup(b *testing.B) {
	for _, backend := range []string{"memory", "sqlite"} {
		b.Run(backend, func(b *testing.B) {
			e := newBenchEnvWith(b, backend, func(o *provider.Options) {
				o.KeyEncryptionKeys = [][]byte{[]byte("0123456789abcdef0123456789abcdef")}
				o.TokenClaims = func(ctx context.Context, g *oauth.Grant) (map[string]any, error) {
					return map[string]any{"role": "editor"}, nil
				}
			})
			codes := make([]string, b.N)
			for i := range codes {
				codes[i] = e.codeWith(b, benchSetup)
			}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				w := e.post(url.Values{"grant_type": {"authorization_code"}, "code": {codes[i]}, "code_verifier": {verifier},
					"redirect_uri": {e.client.RedirectURIs[0]}, "client_id": {e.client.ID}})
				if w.Code != http.StatusOK {
					b.Fatalf("%d %s", w.Code, w.Body)
				}
			}
		})
	}
}

// BenchmarkGrantDataRead measures a warm bearer check through
// RequireBearer followed by what a tool does with grant data: nothing
// ("bearer only", the same middleware with GrantData configured, which
// must cost no store read), or one GrantData read of a sealed value
// ("bearer + GrantData": one store read, the data key unwrapped with the
// KEK, the value opened, JSON decoded).
func BenchmarkGrantDataRead(b *testing.B) {
	for _, backend := range []string{"memory", "sqlite"} {
		e := newBenchEnvWith(b, backend, func(o *provider.Options) {
			o.KeyEncryptionKeys = [][]byte{[]byte("0123456789abcdef0123456789abcdef")}
		})
		w := e.post(url.Values{"grant_type": {"authorization_code"}, "code": {e.codeWith(b, benchSetup)}, "code_verifier": {verifier},
			"redirect_uri": {e.client.RedirectURIs[0]}, "client_id": {e.client.ID}})
		at := extractJSON(w.Body.String(), "access_token")
		type profile struct{ DisplayName, Workspace string }
		for _, tc := range []struct {
			name string
			read bool
		}{{"bearer only", false}, {"bearer + GrantData", true}} {
			b.Run(backend+"/"+tc.name, func(b *testing.B) {
				read := tc.read
				h := RequireBearer(e.p.LoadAccessToken, BearerOptions{ResourceMetadataURL: fuzzIssuer + "/.well-known/oauth-protected-resource/mcp", GrantData: e.p})(
					http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
						if !read {
							return
						}
						req := &mcp.CallToolRequest{Extra: &mcp.RequestExtra{TokenInfo: auth.TokenInfoFromContext(r.Context())}}
						if p, err := GrantData[profile](r.Context(), req, "profile"); err != nil || p.Workspace != "team-alpha" {
							http.Error(w, fmt.Sprint(err), 500)
						}
					}))
				b.ResetTimer()
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						req := httptest.NewRequest("POST", "/mcp", nil)
						req.Header.Set("Authorization", "Bearer "+at)
						w := httptest.NewRecorder()
						h.ServeHTTP(w, req)
						if w.Code != 200 {
							b.Fatal(w.Code, w.Body.String())
						}
					}
				})
			})
		}
	}
}
