package mcpauth

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	oauth "github.com/mcp-oauth/oauth"
)

// TestRequireBearerNeedsExpiry: a verifier's token without ExpiresAt is
// refused with the full RFC 6750 challenge (go-sdk alone would answer a
// bare 401), and one with it passes.
func TestRequireBearerNeedsExpiry(t *testing.T) {
	for name, tc := range map[string]struct {
		exp  time.Time
		want int
	}{
		"no expiry": {time.Time{}, http.StatusUnauthorized},
		"expiry":    {time.Now().Add(time.Hour), http.StatusOK},
	} {
		t.Run(name, func(t *testing.T) {
			verify := func(ctx context.Context, tok string) (*oauth.AccessToken, error) {
				return &oauth.AccessToken{Token: tok, Subject: "alice", Scopes: []string{"mcp"}, ExpiresAt: tc.exp}, nil
			}
			h := RequireBearer(verify, BearerOptions{ResourceMetadataURL: "https://rs.example/.well-known/oauth-protected-resource"})(
				http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					if c, ok := CallerFromRequest(r); !ok || c.Subject != "alice" {
						t.Errorf("CallerFromRequest = %+v, %v", c, ok)
					}
					w.WriteHeader(http.StatusOK)
				}))
			req := httptest.NewRequest("GET", "/", nil)
			req.Header.Set("Authorization", "Bearer t")
			w := httptest.NewRecorder()
			h.ServeHTTP(w, req)
			if w.Code != tc.want {
				t.Fatalf("status %d, want %d", w.Code, tc.want)
			}
			if ch := w.Header().Get("WWW-Authenticate"); tc.want == http.StatusUnauthorized && !strings.Contains(ch, `error="invalid_token"`) {
				t.Errorf("challenge %q lacks error=\"invalid_token\"", ch)
			}
		})
	}
}
