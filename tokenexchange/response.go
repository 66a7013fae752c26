package tokenexchange

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"slices"
	"strconv"
	"strings"
	"time"

	oauth "github.com/mcp-oauth/oauth"
)

// Token is a token the STS issued (RFC 8693 §2.2.1). A Token Exchange
// returns is the caller's own copy.
type Token struct {
	// AccessToken (access_token) is the issued token: an access token,
	// or whatever IssuedTokenType says (RFC 8693 §2.2.1 names the member
	// access_token whatever the token's type).
	AccessToken string
	// IssuedTokenType (issued_token_type) is the issued token's type
	// identifier (RFC 8693 §3). It may differ from the
	// RequestedTokenType asked for; the caller decides whether that will
	// do.
	IssuedTokenType string
	// TokenType (token_type) is "Bearer" for a bearer access token (RFC
	// 6750) or "N_A" for a token that is not an access token, written so
	// whatever case the STS used (RFC 8693 §2.2.1). Other types (DPoP,
	// MAC) are refused: this client sends no proof of possession.
	TokenType string
	// ExpiresAt is when the token expires: now plus expires_in, or, when
	// the STS sent no expires_in, the exp of the token if it is a JWT;
	// zero when unknown (such a token is not cached).
	ExpiresAt time.Time
	// Scopes (scope) are the scopes of the issued token; when the STS
	// sent none they are the scopes requested, as RFC 8693 §2.2.1 has the
	// STS omit scope only when it granted exactly those.
	Scopes []string
	// RefreshToken (refresh_token) is a refresh token, if the STS issued
	// one (RFC 8693 §2.2.1 discourages it for short-lived exchanges).
	RefreshToken string
}

func (t *Token) clone() *Token {
	c := *t
	c.Scopes = slices.Clone(t.Scopes)
	return &c
}

// Error is an error response of the STS (RFC 8693 §2.2.2, RFC 6749
// §5.2): invalid_request, invalid_client, invalid_grant,
// unauthorized_client, unsupported_grant_type, invalid_scope, or RFC
// 8693's invalid_target (the STS will not issue a token for the audience
// or resource asked for). Reach it with errors.As; errors.Is matches it
// against the sentinels of the root package by code, as in
// errors.Is(err, oauth.ErrInvalidTarget). It does not unwrap to an
// *oauth.Error, so that an STS's answer is never taken for this server's
// own (oauth.AsError turns it into server_error).
type Error struct {
	// Code (error) is the error code. Never empty.
	Code string
	// Description (error_description) is the STS's text for the
	// developer, if any. It comes from a remote server: log it, do not
	// show it to end users unescaped.
	Description string
	// URI (error_uri) is a page about the error, if any.
	URI string
	// Status is the HTTP status of the response.
	Status int
}

// Error implements error.
func (e *Error) Error() string {
	s := fmt.Sprintf("tokenexchange: the STS answered %s (status %d)", e.Code, e.Status)
	if e.Description != "" {
		s += ": " + e.Description
	}
	return s
}

// Is matches an *oauth.Error or an *Error with the same Code.
func (e *Error) Is(target error) bool {
	switch t := target.(type) {
	case *oauth.Error:
		return t.Code == e.Code
	case *Error:
		return t.Code == e.Code
	}
	return false
}

// ResponseError is an answer of the STS that is neither a token exchange
// response nor an RFC 6749 §5.2 error: a status other than 200 without an
// error object (a proxy's 502 page, for instance), a body that is not
// JSON or not application/json, over MaxResponseBytes, or missing a
// required member. Reach it with errors.As.
type ResponseError struct {
	// Status is the HTTP status of the response.
	Status int
	// Reason says what is wrong with it. It never quotes the body.
	Reason string
}

// Error implements error.
func (e *ResponseError) Error() string {
	return fmt.Sprintf("tokenexchange: unusable answer from the STS (status %d): %s", e.Status, e.Reason)
}

// wireResponse is the JSON of RFC 8693 §2.2.1 and RFC 6749 §5.2.
type wireResponse struct {
	AccessToken     *string         `json:"access_token"`
	IssuedTokenType *string         `json:"issued_token_type"`
	TokenType       *string         `json:"token_type"`
	ExpiresIn       json.RawMessage `json:"expires_in"`
	Scope           *string         `json:"scope"`
	RefreshToken    *string         `json:"refresh_token"`

	Error            *string `json:"error"`
	ErrorDescription *string `json:"error_description"`
	ErrorURI         *string `json:"error_uri"`
}

// maxExpiresIn bounds expires_in (about 136 years) so that the time
// arithmetic cannot overflow.
const maxExpiresIn = 1 << 32

// parseResponse reads an answer of the STS to req (normalized) received at
// now.
func parseResponse(status int, contentType string, body []byte, req *Request, now time.Time) (*Token, error) {
	bad := func(format string, args ...any) error {
		return &ResponseError{Status: status, Reason: fmt.Sprintf(format, args...)}
	}
	var w wireResponse
	jsonErr := json.Unmarshal(body, &w)
	if jsonErr == nil && !bytes.HasPrefix(bytes.TrimLeft(body, " \t\r\n"), []byte("{")) {
		jsonErr = errors.New("not a JSON object")
	}
	if status != 200 {
		// Error bodies are read whatever their Content-Type: some STSes
		// label them text/plain.
		if jsonErr == nil && w.Error != nil {
			return nil, errorResponse(&w, status)
		}
		return nil, bad("no RFC 6749 §5.2 error object")
	}
	if mt, _, err := mime.ParseMediaType(contentType); err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
		return nil, bad("Content-Type %q, not application/json (RFC 6749 §5.1)", contentType)
	}
	if jsonErr != nil {
		return nil, bad("not a JSON object: %v", jsonErr)
	}
	if w.Error != nil && w.AccessToken == nil {
		// An error object under 200, as some servers send.
		return nil, errorResponse(&w, status)
	}
	if w.AccessToken == nil || *w.AccessToken == "" {
		return nil, bad("no access_token (RFC 8693 §2.2.1)")
	}
	if w.IssuedTokenType == nil || *w.IssuedTokenType == "" {
		return nil, bad("no issued_token_type (RFC 8693 §2.2.1)")
	}
	if w.TokenType == nil {
		return nil, bad("no token_type (RFC 8693 §2.2.1)")
	}
	t := &Token{AccessToken: *w.AccessToken, IssuedTokenType: *w.IssuedTokenType}
	switch {
	case strings.EqualFold(*w.TokenType, "Bearer"):
		t.TokenType = "Bearer"
	case strings.EqualFold(*w.TokenType, "N_A"):
		t.TokenType = "N_A"
	default:
		return nil, bad("token_type %q: want Bearer or N_A (no proof of possession is sent)", clip(*w.TokenType))
	}
	if w.RefreshToken != nil {
		t.RefreshToken = *w.RefreshToken
	}
	if w.Scope != nil {
		t.Scopes = strings.Fields(*w.Scope)
	} else {
		t.Scopes = slices.Clone(req.Scopes)
	}
	secs, ok, err := expiresIn(w.ExpiresIn)
	switch {
	case err != nil:
		return nil, bad("expires_in: %v", err)
	case ok:
		t.ExpiresAt = now.Add(time.Duration(secs) * time.Second)
	default:
		t.ExpiresAt, _ = jwtExpiry(t.AccessToken)
	}
	return t, nil
}

// errorResponse is the *Error of an error object.
func errorResponse(w *wireResponse, status int) error {
	e := &Error{Code: *w.Error, Status: status}
	if !isErrorCode(e.Code) {
		return &ResponseError{Status: status, Reason: "an error code outside RFC 6749 §5.2's characters"}
	}
	if w.ErrorDescription != nil {
		e.Description = clip(*w.ErrorDescription)
	}
	if w.ErrorURI != nil {
		e.URI = clip(*w.ErrorURI)
	}
	return e
}

// isErrorCode: 1*( %x20-21 / %x23-5B / %x5D-7E ) (RFC 6749 §5.2).
func isErrorCode(s string) bool {
	if s == "" || len(s) > 256 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == 0x22 || c == 0x5c || c > 0x7e {
			return false
		}
	}
	return true
}

// clip bounds a string of the STS that goes into an error, and drops
// control characters so that it cannot forge log lines.
func clip(s string) string {
	const max = 512
	if len(s) > max {
		s = s[:max] + "..."
	}
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
}

// expiresIn reads expires_in: a non-negative number of seconds, or a
// string of digits (as Entra ID v1 and some others send it). ok is false
// when it is absent or null.
func expiresIn(raw json.RawMessage) (secs int64, ok bool, err error) {
	if len(raw) == 0 || string(raw) == "null" {
		return 0, false, nil
	}
	var n json.Number
	if raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return 0, false, err
		}
		n = json.Number(s)
	} else if err := json.Unmarshal(raw, &n); err != nil {
		return 0, false, errors.New("not a number")
	}
	if i, err := strconv.ParseInt(string(n), 10, 64); err == nil {
		if i < 0 || i > maxExpiresIn {
			return 0, false, errors.New("out of range")
		}
		return i, true, nil
	}
	f, err := strconv.ParseFloat(string(n), 64)
	if err != nil || !(f >= 0 && f <= maxExpiresIn) { // NaN fails too
		return 0, false, errors.New("not a number of seconds in range")
	}
	return int64(f), true, nil
}
