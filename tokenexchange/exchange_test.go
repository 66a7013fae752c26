package tokenexchange

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	oauth "github.com/mcp-oauth/oauth"
)

// TestRequestForm: every field of a Request reaches the STS as the
// parameter RFC 8693 §2.1 names, with the defaults filled in, in a POST
// form to the token endpoint that asks for JSON.
func TestRequestForm(t *testing.T) {
	base := url.Values{"grant_type": {GrantType}, "subject_token": {"subj"}, "subject_token_type": {TokenTypeAccessToken}}
	with := func(kv ...string) url.Values {
		v := url.Values{}
		for k, vs := range base {
			v[k] = slices.Clone(vs)
		}
		for i := 0; i < len(kv); i += 2 {
			v.Add(kv[i], kv[i+1])
		}
		return v
	}
	tests := []struct {
		name string
		req  Request
		want url.Values
	}{
		{"subject only", Request{SubjectToken: "subj"}, base},
		{"subject type", Request{SubjectToken: "subj", SubjectTokenType: TokenTypeIDToken},
			url.Values{"grant_type": {GrantType}, "subject_token": {"subj"}, "subject_token_type": {TokenTypeIDToken}}},
		{"actor, default type", Request{SubjectToken: "subj", ActorToken: "act"},
			with("actor_token", "act", "actor_token_type", TokenTypeAccessToken)},
		{"actor with type", Request{SubjectToken: "subj", ActorToken: "act", ActorTokenType: TokenTypeJWT},
			with("actor_token", "act", "actor_token_type", TokenTypeJWT)},
		{"audiences", Request{SubjectToken: "subj", Audience: []string{"calendar", "mail"}},
			with("audience", "calendar", "audience", "mail")},
		{"resources", Request{SubjectToken: "subj", Resource: []string{"https://a.example.com/api", "urn:example:b"}},
			with("resource", "https://a.example.com/api", "resource", "urn:example:b")},
		{"scopes", Request{SubjectToken: "subj", Scopes: []string{"read", "write:all"}}, with("scope", "read write:all")},
		{"requested type", Request{SubjectToken: "subj", RequestedTokenType: TokenTypeJWT}, with("requested_token_type", TokenTypeJWT)},
		{"everything", Request{
			SubjectToken: "subj", ActorToken: "act", Audience: []string{"cal"}, Resource: []string{"https://cal.example.com"},
			Scopes: []string{"r"}, RequestedTokenType: TokenTypeAccessToken,
		}, with("actor_token", "act", "actor_token_type", TokenTypeAccessToken, "audience", "cal",
			"resource", "https://cal.example.com", "scope", "r", "requested_token_type", TokenTypeAccessToken)},
	}
	s := newSTS(t)
	c := secretClient(t, s, func(o *Options) { o.CacheSize = -1 })
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := c.Exchange(context.Background(), &tt.req); err != nil {
				t.Fatal(err)
			}
			got := s.last(t)
			if got.method != http.MethodPost || got.path != "/token" {
				t.Errorf("%s %s, want POST /token", got.method, got.path)
			}
			if ct := got.header.Get("Content-Type"); ct != "application/x-www-form-urlencoded" {
				t.Errorf("Content-Type %q", ct)
			}
			if a := got.header.Get("Accept"); a != "application/json" {
				t.Errorf("Accept %q", a)
			}
			if f := formOnly(got.form); !reflect.DeepEqual(f, tt.want) {
				t.Errorf("form\n got %v\nwant %v", f, tt.want)
			}
		})
	}
}

// TestRequestRefused: a request that breaks RFC 8693 §2.1 is refused
// before any I/O.
func TestRequestRefused(t *testing.T) {
	tests := []struct {
		name string
		req  *Request
	}{
		{"nil", nil},
		{"no subject", &Request{}},
		{"oversized subject", &Request{SubjectToken: strings.Repeat("a", MaxTokenBytes+1)}},
		{"oversized actor", &Request{SubjectToken: "s", ActorToken: strings.Repeat("a", MaxTokenBytes+1)}},
		{"actor type without actor", &Request{SubjectToken: "s", ActorTokenType: TokenTypeJWT}},
		{"subject type not a URI", &Request{SubjectToken: "s", SubjectTokenType: "access_token"}},
		{"requested type with a space", &Request{SubjectToken: "s", RequestedTokenType: "urn:x y"}},
		{"relative resource", &Request{SubjectToken: "s", Resource: []string{"/api"}}},
		{"resource with fragment", &Request{SubjectToken: "s", Resource: []string{"https://a.example.com/#x"}}},
		{"resource with empty fragment", &Request{SubjectToken: "s", Resource: []string{"https://a.example.com/#"}}},
		{"empty audience", &Request{SubjectToken: "s", Audience: []string{""}}},
		{"scope with a space", &Request{SubjectToken: "s", Scopes: []string{"a b"}}},
		{"scope with a quote", &Request{SubjectToken: "s", Scopes: []string{`a"`}}},
		{"empty scope", &Request{SubjectToken: "s", Scopes: []string{""}}},
		{"non-ASCII scope", &Request{SubjectToken: "s", Scopes: []string{"é"}}},
	}
	s := newSTS(t)
	c := secretClient(t, s, nil)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := c.Exchange(context.Background(), tt.req); err == nil {
				t.Fatal("accepted")
			}
		})
	}
	if n := s.calls.Load(); n != 0 {
		t.Errorf("the STS received %d requests", n)
	}
}

// TestErrorResponses: each error code of RFC 6749 §5.2 and RFC 8693
// §2.2.2 comes back as an *Error with its code, description, URI and
// status, matching the root package's sentinel with errors.Is, but never
// taken for an *oauth.Error of this server.
func TestErrorResponses(t *testing.T) {
	tests := []struct {
		code     string
		status   int
		sentinel *oauth.Error
	}{
		{"invalid_request", 400, oauth.ErrInvalidRequest},
		{"invalid_client", 401, oauth.ErrInvalidClient},
		{"invalid_grant", 400, oauth.ErrInvalidGrant},
		{"unauthorized_client", 400, oauth.ErrUnauthorizedClient},
		{"unsupported_grant_type", 400, oauth.ErrUnsupportedGrantType},
		{"invalid_scope", 400, oauth.ErrInvalidScope},
		{"invalid_target", 400, oauth.ErrInvalidTarget},
		{"temporarily_unavailable", 503, oauth.ErrTemporarilyUnavailable},
		{"server_error", 500, oauth.ErrServerError},
		{"invalid_grant", 200, oauth.ErrInvalidGrant}, // an error object under 200
	}
	s := newSTS(t)
	c := secretClient(t, s, nil)
	for _, tt := range tests {
		t.Run(tt.code, func(t *testing.T) {
			s.setRespond(func(w http.ResponseWriter, _ *stsCall) {
				writeJSON(w, tt.status, map[string]string{"error": tt.code, "error_description": "because\nreasons", "error_uri": "https://sts.example.com/e"})
			})
			_, err := c.Exchange(context.Background(), &Request{SubjectToken: "subj"})
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("err = %v, not an *Error", err)
			}
			if e.Code != tt.code || e.Status != tt.status || e.Description != "because reasons" || e.URI != "https://sts.example.com/e" {
				t.Errorf("%+v", e)
			}
			if !errors.Is(err, tt.sentinel) || errors.Is(err, oauth.ErrAccessDenied) {
				t.Errorf("errors.Is does not match by code")
			}
			var oe *oauth.Error
			if errors.As(err, &oe) || oauth.AsError(err).Code != "server_error" {
				t.Errorf("an STS's error passes for this server's own")
			}
		})
	}
}

// TestUnusableResponses: answers that are neither a token exchange
// response nor an error object are refused with a *ResponseError that
// carries the status.
func TestUnusableResponses(t *testing.T) {
	raw := func(status int, ct, body string) func(http.ResponseWriter, *stsCall) {
		return func(w http.ResponseWriter, _ *stsCall) {
			if ct != "" {
				w.Header().Set("Content-Type", ct)
			}
			w.WriteHeader(status)
			w.Write([]byte(body))
		}
	}
	const ok = `"access_token":"at","issued_token_type":"urn:ietf:params:oauth:token-type:access_token","token_type":"Bearer"`
	tests := []struct {
		name    string
		respond func(http.ResponseWriter, *stsCall)
		status  int
	}{
		{"HTML under 200", raw(200, "text/html", "<html>hello</html>"), 200},
		{"JSON labelled text/plain", raw(200, "text/plain", "{"+ok+"}"), 200},
		{"no Content-Type", raw(200, "", "{"+ok+"}"), 200},
		{"not JSON", raw(200, "application/json", "{"+ok), 200},
		{"an array", raw(200, "application/json", "[1]"), 200},
		{"a string", raw(200, "application/json", `"x"`), 200},
		{"trailing garbage", raw(200, "application/json", "{"+ok+"} {}"), 200},
		{"no access_token", raw(200, "application/json", `{"issued_token_type":"urn:x","token_type":"Bearer"}`), 200},
		{"empty access_token", raw(200, "application/json", `{"access_token":"","issued_token_type":"urn:x","token_type":"Bearer"}`), 200},
		{"access_token a number", raw(200, "application/json", `{"access_token":1,"issued_token_type":"urn:x","token_type":"Bearer"}`), 200},
		{"no issued_token_type", raw(200, "application/json", `{"access_token":"at","token_type":"Bearer"}`), 200},
		{"no token_type", raw(200, "application/json", `{"access_token":"at","issued_token_type":"urn:x"}`), 200},
		{"DPoP token_type", raw(200, "application/json", `{"access_token":"at","issued_token_type":"urn:x","token_type":"DPoP"}`), 200},
		{"negative expires_in", raw(200, "application/json", "{"+ok+`,"expires_in":-1}`), 200},
		{"huge expires_in", raw(200, "application/json", "{"+ok+`,"expires_in":1e300}`), 200},
		{"boolean expires_in", raw(200, "application/json", "{"+ok+`,"expires_in":true}`), 200},
		{"NaN expires_in", raw(200, "application/json", "{"+ok+`,"expires_in":"NaN"}`), 200},
		{"scope a list", raw(200, "application/json", "{"+ok+`,"scope":["a"]}`), 200},
		{"oversized", raw(200, "application/json", `{"access_token":"`+strings.Repeat("a", MaxResponseBytes)+`"}`), 200},
		{"500 HTML", raw(500, "text/html", "<h1>oops</h1>"), 500},
		{"502 empty", raw(502, "", ""), 502},
		{"400 without error", raw(400, "application/json", `{"message":"no"}`), 400},
		{"400 error not a string", raw(400, "application/json", `{"error":3}`), 400},
		{"400 error with a quote", raw(400, "application/json", `{"error":"a\"b"}`), 400},
		{"302 not followed", func(w http.ResponseWriter, c *stsCall) {
			http.Redirect(w, c.r, "/elsewhere", http.StatusTemporaryRedirect)
		}, 307},
	}
	s := newSTS(t)
	c := secretClient(t, s, nil)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s.setRespond(tt.respond)
			before := s.calls.Load()
			tok, err := c.Exchange(context.Background(), &Request{SubjectToken: "subj"})
			var re *ResponseError
			if !errors.As(err, &re) {
				t.Fatalf("Exchange = %+v, %v; want a *ResponseError", tok, err)
			}
			if re.Status != tt.status {
				t.Errorf("Status %d, want %d", re.Status, tt.status)
			}
			if strings.Contains(err.Error(), "<h1>") || len(err.Error()) > 300 {
				t.Errorf("the error quotes the body: %v", err)
			}
			if n := s.calls.Load() - before; n != 1 {
				t.Errorf("%d requests, want 1 (redirects are not followed)", n)
			}
		})
	}
}

// TestTokenResponses: what a Token says of each member of a successful
// answer (RFC 8693 §2.2.1).
func TestTokenResponses(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	jwtExp := now.Add(42 * time.Minute).Truncate(time.Second)
	issuedJWT := unsignedJWT(map[string]any{"exp": jwtExp.Unix()})
	tests := []struct {
		name string
		body map[string]any
		want Token
	}{
		{"lower-case bearer", map[string]any{"access_token": "at", "issued_token_type": TokenTypeAccessToken, "token_type": "bearer", "expires_in": 60},
			Token{AccessToken: "at", IssuedTokenType: TokenTypeAccessToken, TokenType: "Bearer", ExpiresAt: now.Add(time.Minute), Scopes: []string{"a", "b"}}},
		{"N_A in any case", map[string]any{"access_token": "id", "issued_token_type": TokenTypeIDToken, "token_type": "n_a", "expires_in": 60},
			Token{AccessToken: "id", IssuedTokenType: TokenTypeIDToken, TokenType: "N_A", ExpiresAt: now.Add(time.Minute), Scopes: []string{"a", "b"}}},
		{"expires_in a string, scope narrowed, refresh token", map[string]any{"access_token": "at", "issued_token_type": TokenTypeAccessToken, "token_type": "Bearer", "expires_in": "3600", "scope": "a", "refresh_token": "rt"},
			Token{AccessToken: "at", IssuedTokenType: TokenTypeAccessToken, TokenType: "Bearer", ExpiresAt: now.Add(time.Hour), Scopes: []string{"a"}, RefreshToken: "rt"}},
		{"no expires_in, opaque", map[string]any{"access_token": "at", "issued_token_type": TokenTypeAccessToken, "token_type": "Bearer"},
			Token{AccessToken: "at", IssuedTokenType: TokenTypeAccessToken, TokenType: "Bearer", Scopes: []string{"a", "b"}}},
		{"no expires_in, a JWT", map[string]any{"access_token": issuedJWT, "issued_token_type": TokenTypeJWT, "token_type": "Bearer"},
			Token{AccessToken: issuedJWT, IssuedTokenType: TokenTypeJWT, TokenType: "Bearer", ExpiresAt: jwtExp, Scopes: []string{"a", "b"}}},
		{"empty scope", map[string]any{"access_token": "at", "issued_token_type": TokenTypeAccessToken, "token_type": "Bearer", "scope": "", "expires_in": 1.5},
			Token{AccessToken: "at", IssuedTokenType: TokenTypeAccessToken, TokenType: "Bearer", Scopes: []string{}, ExpiresAt: now.Add(time.Second)}},
	}
	s := newSTS(t)
	c := secretClient(t, s, func(o *Options) { o.Now = func() time.Time { return now }; o.CacheSize = -1 })
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s.setRespond(func(w http.ResponseWriter, _ *stsCall) { writeJSON(w, 200, tt.body) })
			tok, err := c.Exchange(context.Background(), &Request{SubjectToken: "subj", Scopes: []string{"a", "b"}})
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(*tok, tt.want) {
				t.Errorf("\n got %+v\nwant %+v", *tok, tt.want)
			}
		})
	}
}

// TestContextTimeout: a caller's deadline ends its Exchange at once, and
// the request to the STS with it.
func TestContextTimeout(t *testing.T) {
	s := newSTS(t)
	s.gate = make(chan struct{})
	defer close(s.gate)
	c := secretClient(t, s, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := c.Exchange(ctx, &Request{SubjectToken: "subj"})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want DeadlineExceeded", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %v", d)
	}
	deadline := time.Now().Add(5 * time.Second)
	for s.canceled.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if s.canceled.Load() != 1 {
		t.Error("the request to the STS was not canceled")
	}
}

// TestNothingSecretLogged: with a debug logger, successes and failures
// are logged with a fingerprint of the subject token, never a token, a
// secret or an assertion.
func TestNothingSecretLogged(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	s := newSTS(t)
	c := secretClient(t, s, func(o *Options) { o.Logger = log; o.ClientSecret = "the-client-secret" })
	ctx := context.Background()
	req := &Request{SubjectToken: "the-subject-token", ActorToken: "the-actor-token"}
	if _, err := c.Exchange(ctx, req); err != nil {
		t.Fatal(err)
	}
	c.Exchange(ctx, req) // a cache hit
	s.setRespond(func(w http.ResponseWriter, _ *stsCall) {
		writeJSON(w, 401, map[string]string{"error": "invalid_client"})
	})
	c.Exchange(ctx, &Request{SubjectToken: "the-subject-token", Scopes: []string{"x"}})
	out := buf.String()
	for _, secret := range []string{"the-subject-token", "the-actor-token", "the-client-secret", "issued-1"} {
		if strings.Contains(out, secret) {
			t.Errorf("the log holds %q:\n%s", secret, out)
		}
	}
	if !strings.Contains(out, fingerprint("the-subject-token")) || !strings.Contains(out, "level=WARN") {
		t.Errorf("the log lacks the fingerprint or the warning:\n%s", out)
	}
}

// BenchmarkExchangeCached is the path of every tool call after the
// first with the same caller token: a cache hit.
func BenchmarkExchangeCached(b *testing.B) {
	s := newSTS(b)
	c := secretClient(b, s, nil)
	req := &Request{SubjectToken: strings.Repeat("t", 800), Audience: []string{"calendar"}, Resource: []string{"https://calendar.example.com"}, Scopes: []string{"calendar.read"}}
	ctx := context.Background()
	if _, err := c.Exchange(ctx, req); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Exchange(ctx, req); err != nil {
			b.Fatal(err)
		}
	}
}
