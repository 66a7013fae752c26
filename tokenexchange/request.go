package tokenexchange

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"
)

// Request is a token exchange request (RFC 8693 §2.1). SubjectToken is
// required; the other fields are optional.
type Request struct {
	// SubjectToken (subject_token) is the token that represents the party
	// on whose behalf the request is made: usually the caller's access
	// token, as SubjectFromRequest returns it. Required.
	SubjectToken string
	// SubjectTokenType (subject_token_type) is SubjectToken's type
	// identifier (RFC 8693 §3); empty means TokenTypeAccessToken.
	SubjectTokenType string
	// ActorToken (actor_token) represents the party that acts on the
	// subject's behalf (delegation, RFC 8693 §1.1): this server's own
	// token, if the STS wants one.
	ActorToken string
	// ActorTokenType (actor_token_type) is ActorToken's type identifier;
	// empty means TokenTypeAccessToken when ActorToken is set. It must be
	// empty when ActorToken is (RFC 8693 §2.1).
	ActorTokenType string
	// Audience (audience) are the logical names of the services the token
	// is for (client IDs, API identifiers), one parameter each.
	Audience []string
	// Resource (resource) are the absolute URIs, without fragment, of the
	// resources the token is for (RFC 8707 §2, RFC 8693 §2.1), one
	// parameter each.
	Resource []string
	// Scopes (scope) are the scopes requested, sent space-separated (RFC
	// 6749 §3.3); each must be a non-empty scope-token.
	Scopes []string
	// RequestedTokenType (requested_token_type) is the type identifier of
	// the token wanted; empty leaves it to the STS, which says what it
	// issued in Token.IssuedTokenType.
	RequestedTokenType string
}

// normalize checks r and returns a copy with the defaults filled in.
func (r *Request) normalize() (*Request, error) {
	if r == nil {
		return nil, errors.New("tokenexchange: nil Request")
	}
	n := *r
	// The call to the STS may outlive the caller (see Exchange): it
	// must not share the caller's slices.
	n.Audience, n.Resource, n.Scopes = slices.Clone(n.Audience), slices.Clone(n.Resource), slices.Clone(n.Scopes)
	if n.SubjectToken == "" {
		return nil, errors.New("tokenexchange: SubjectToken is required")
	}
	if len(n.SubjectToken) > MaxTokenBytes || len(n.ActorToken) > MaxTokenBytes {
		return nil, fmt.Errorf("tokenexchange: a subject or actor token over %d bytes", MaxTokenBytes)
	}
	if n.SubjectTokenType == "" {
		n.SubjectTokenType = TokenTypeAccessToken
	}
	switch {
	case n.ActorToken != "" && n.ActorTokenType == "":
		n.ActorTokenType = TokenTypeAccessToken
	case n.ActorToken == "" && n.ActorTokenType != "":
		return nil, errors.New("tokenexchange: ActorTokenType without ActorToken (RFC 8693 §2.1)")
	}
	for _, t := range []struct{ name, v string }{
		{"SubjectTokenType", n.SubjectTokenType}, {"ActorTokenType", n.ActorTokenType}, {"RequestedTokenType", n.RequestedTokenType},
	} {
		if t.v != "" && !isTokenTypeURI(t.v) {
			return nil, fmt.Errorf("tokenexchange: %s %q is not a token type identifier (a URI, RFC 8693 §3)", t.name, t.v)
		}
	}
	for _, a := range n.Audience {
		if a == "" {
			return nil, errors.New("tokenexchange: an empty Audience")
		}
	}
	for _, res := range n.Resource {
		u, err := url.Parse(res)
		if err != nil || !u.IsAbs() || u.Fragment != "" || strings.Contains(res, "#") {
			return nil, fmt.Errorf("tokenexchange: Resource %q is not an absolute URI without fragment (RFC 8707 §2)", res)
		}
	}
	for _, s := range n.Scopes {
		if !isScopeToken(s) {
			return nil, fmt.Errorf("tokenexchange: Scope %q is not a scope-token (RFC 6749 §3.3)", s)
		}
	}
	return &n, nil
}

// isTokenTypeURI is a loose check that s is a URI: a scheme, a colon,
// and no white space.
func isTokenTypeURI(s string) bool {
	switch s {
	case TokenTypeAccessToken, TokenTypeRefreshToken, TokenTypeIDToken, TokenTypeJWT, TokenTypeSAML1, TokenTypeSAML2:
		return true
	}
	u, err := url.Parse(s)
	return err == nil && u.Scheme != "" && !strings.ContainsAny(s, " \t\r\n")
}

// isScopeToken: 1*( %x21 / %x23-5B / %x5D-7E ) (RFC 6749 §3.3).
func isScopeToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x21 || c == 0x22 || c == 0x5c || c > 0x7e {
			return false
		}
	}
	return true
}

// form is the body of the request (RFC 8693 §2.1), before client
// authentication.
func (r *Request) form() url.Values {
	f := url.Values{
		"grant_type":         {GrantType},
		"subject_token":      {r.SubjectToken},
		"subject_token_type": {r.SubjectTokenType},
	}
	if r.ActorToken != "" {
		f.Set("actor_token", r.ActorToken)
		f.Set("actor_token_type", r.ActorTokenType)
	}
	if len(r.Audience) > 0 {
		f["audience"] = append([]string(nil), r.Audience...)
	}
	if len(r.Resource) > 0 {
		f["resource"] = append([]string(nil), r.Resource...)
	}
	if len(r.Scopes) > 0 {
		f.Set("scope", strings.Join(r.Scopes, " "))
	}
	if r.RequestedTokenType != "" {
		f.Set("requested_token_type", r.RequestedTokenType)
	}
	return f
}

// flightKey is the SHA-256 of every parameter of a normalized request,
// each length-prefixed so that no two requests share a key: the cache and
// the single-flight map are keyed by it, so that neither holds a token.
// Lists are keyed in the order given (the order sent).
type flightKey [sha256.Size]byte

func (r *Request) key() flightKey {
	h := sha256.New()
	var n [8]byte
	put := func(tag byte, s string) {
		binary.BigEndian.PutUint64(n[:], uint64(len(s)))
		h.Write([]byte{tag})
		h.Write(n[:])
		h.Write([]byte(s))
	}
	put('s', r.SubjectToken)
	put('t', r.SubjectTokenType)
	put('a', r.ActorToken)
	put('u', r.ActorTokenType)
	put('r', r.RequestedTokenType)
	for _, v := range r.Audience {
		put('A', v)
	}
	for _, v := range r.Resource {
		put('R', v)
	}
	for _, v := range r.Scopes {
		put('S', v)
	}
	var k flightKey
	h.Sum(k[:0])
	return k
}

// jwtExpiry returns the exp of token if it is a JWS in compact
// serialization (RFC 7515 §7.1) whose payload carries a numeric exp. The
// signature is not checked: the time only shortens how long a token
// derived from this one is cached.
func jwtExpiry(token string) (time.Time, bool) {
	first := strings.IndexByte(token, '.')
	if first < 0 {
		return time.Time{}, false
	}
	rest := token[first+1:]
	second := strings.IndexByte(rest, '.')
	if second < 0 || strings.IndexByte(rest[second+1:], '.') >= 0 {
		return time.Time{}, false
	}
	payload, err := base64.RawURLEncoding.DecodeString(rest[:second])
	if err != nil {
		return time.Time{}, false
	}
	var c struct {
		Exp *json.Number `json:"exp"`
	}
	if json.Unmarshal(payload, &c) != nil || c.Exp == nil {
		return time.Time{}, false
	}
	f, err := c.Exp.Float64()
	if err != nil || f <= 0 || f > 1<<40 {
		return time.Time{}, false
	}
	return time.Unix(int64(f), 0), true
}
