package tokenexchange

import (
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"
)

// FuzzParseResponse: no answer of an STS makes the parser panic; what it
// accepts has the members RFC 8693 §2.2.1 requires, and what it refuses
// is an *Error or a *ResponseError.
func FuzzParseResponse(f *testing.F) {
	const ct = "application/json"
	for _, s := range []struct {
		status int
		ct     string
		body   string
	}{
		{200, ct, `{"access_token":"at","issued_token_type":"urn:ietf:params:oauth:token-type:access_token","token_type":"Bearer","expires_in":300,"scope":"a b"}`},
		{200, ct + "; charset=utf-8", `{"access_token":"at","issued_token_type":"urn:x","token_type":"n_a","expires_in":"60","refresh_token":"rt"}`},
		{200, ct, `{"access_token":"a.eyJleHAiOjE4MDAwMDAwMDB9.c","issued_token_type":"urn:x","token_type":"bearer"}`},
		{200, ct, `{"access_token":"at","issued_token_type":"urn:x","token_type":"Bearer","expires_in":1e400}`},
		{200, ct, `{"error":"invalid_grant"}`},
		{400, ct, `{"error":"invalid_target","error_description":"no","error_uri":"https://x"}`},
		{401, "text/plain", `{"error":"invalid_client"}`},
		{500, "text/html", `<html>`},
		{200, ct, `[]`},
		{200, ct, `null`},
		{200, "application/jwt", `e30.e30.e30`},
	} {
		f.Add(s.status, s.ct, []byte(s.body))
	}
	now := time.Unix(1_800_000_000, 0)
	req := &Request{SubjectToken: "s", Scopes: []string{"a"}}
	f.Fuzz(func(t *testing.T, status int, contentType string, body []byte) {
		tok, err := parseResponse(status, contentType, body, req, now)
		if err != nil {
			var e *Error
			var re *ResponseError
			switch {
			case errors.As(err, &e):
				if !isErrorCode(e.Code) || e.Status != status {
					t.Fatalf("*Error %+v", e)
				}
			case errors.As(err, &re):
				if re.Status != status {
					t.Fatalf("*ResponseError %+v", re)
				}
			default:
				t.Fatalf("an error of type %T", err)
			}
			if tok != nil {
				t.Fatal("a token and an error")
			}
			return
		}
		if status != http.StatusOK || tok.AccessToken == "" || tok.IssuedTokenType == "" || (tok.TokenType != "Bearer" && tok.TokenType != "N_A") {
			t.Fatalf("accepted %+v under %d", tok, status)
		}
	})
}

// FuzzJWTExpiry: reading exp from any string does not panic, and a time
// it finds is after the epoch.
func FuzzJWTExpiry(f *testing.F) {
	for _, s := range []string{
		unsignedJWT(map[string]any{"exp": 1_800_000_000}),
		unsignedJWT(map[string]any{"exp": 1.8e9}),
		unsignedJWT(map[string]any{"exp": "1800000000"}),
		unsignedJWT(map[string]any{"exp": -1}),
		unsignedJWT(map[string]any{"exp": 1e300}),
		"a.b.c", "a.b", "a.b.c.d.e", "..", "opaque",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, token string) {
		if exp, ok := jwtExpiry(token); ok && exp.Unix() <= 0 {
			t.Fatalf("exp %v", exp)
		}
	})
}

// FuzzSubjectFromHeader: a token taken from a header is non-empty,
// without white space or control characters, and what followed the
// Bearer scheme.
func FuzzSubjectFromHeader(f *testing.F) {
	for _, s := range []string{"Bearer abc", "bearer  abc", "Basic abc", "Bearer", "Bearer a b", "Bearer \x00", "DPoP x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		h := http.Header{}
		h.Set("Authorization", v)
		tok, ok := SubjectFromHeader(h)
		if !ok {
			return
		}
		if tok == "" || strings.ContainsFunc(tok, func(r rune) bool { return r <= ' ' || r >= 0x7f }) || !strings.HasSuffix(h.Get("Authorization"), tok) {
			t.Fatalf("%q from %q", tok, v)
		}
	})
}
