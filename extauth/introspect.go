package extauth

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Defaults of IntrospectionOptions.
const (
	DefaultIntrospectionCacheTTL    = 30 * time.Second
	DefaultIntrospectionInactiveTTL = 5 * time.Second
	DefaultIntrospectionConcurrency = 32
	// MaxIntrospectionBytes bounds an introspection response.
	MaxIntrospectionBytes = 256 << 10
)

// IntrospectionOptions configure RFC 7662 token introspection, which
// verifies opaque access tokens (and, with JWTs set, checks that JWTs
// are still active). Introspection is on when ClientID or Authenticate is
// set.
type IntrospectionOptions struct {
	// Endpoint is the introspection endpoint; empty means the
	// introspection_endpoint of the issuer's metadata.
	Endpoint string
	// ClientID and ClientSecret authenticate this resource server to the
	// endpoint (RFC 7662 §2.1 requires some authentication).
	ClientID, ClientSecret string
	// AuthMethod is how ClientID and ClientSecret are sent:
	// "client_secret_basic" (the default, RFC 6749 §2.3.1, form-encoded
	// before base64) or "client_secret_post".
	AuthMethod string
	// Authenticate, when set, authenticates each introspection request
	// instead (a bearer token, private_key_jwt, ...); it may set headers
	// but must not read or replace the body.
	Authenticate func(req *http.Request) error
	// CacheTTL is how long an "active" answer is reused, never past the
	// token's exp; zero means DefaultIntrospectionCacheTTL, negative
	// means every request introspects. It bounds how late a revocation
	// at the issuer is noticed.
	CacheTTL time.Duration
	// InactiveTTL is how long an "inactive" answer is reused, so that a
	// client retrying a dead token does not reach the issuer each time;
	// zero means DefaultIntrospectionInactiveTTL, negative means never.
	InactiveTTL time.Duration
	// JWTs also introspects JWT access tokens, after their signature and
	// claims check out, so that a revoked JWT is refused within CacheTTL
	// rather than at its exp.
	JWTs bool
	// MaxConcurrent bounds the introspection requests in flight at once,
	// so that a flood of junk opaque tokens cannot turn into a flood at
	// the issuer; a request over the bound waits for a slot (or its
	// context). Zero means DefaultIntrospectionConcurrency.
	MaxConcurrent int
	// AllowMissingAudience accepts an active answer that has no aud
	// (RFC 7662 makes it optional). By default such an answer is refused
	// with ErrWrongAudience: without aud, a token the issuer gave another
	// resource server would pass here.
	AllowMissingAudience bool
}

func (o *IntrospectionOptions) enabled() bool { return o.ClientID != "" || o.Authenticate != nil }

// introspect asks the endpoint about token (RFC 7662 §2.1) and returns the
// claims of an active answer, ErrInactive, or ErrIntrospectionUnavailable.
func (v *Verifier) introspect(ctx context.Context, token string) (*claimSet, error) {
	o := &v.opts.Introspection
	form := url.Values{"token": {token}, "token_type_hint": {"access_token"}}
	if o.Authenticate == nil && o.AuthMethod == "client_secret_post" {
		form.Set("client_id", o.ClientID)
		form.Set("client_secret", o.ClientSecret)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, v.introURL, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, rejectCause(ErrIntrospectionUnavailable, "", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	switch {
	case o.Authenticate != nil:
		if err := o.Authenticate(req); err != nil {
			return nil, rejectCause(ErrIntrospectionUnavailable, "authenticate", err)
		}
	case o.AuthMethod != "client_secret_post":
		req.SetBasicAuth(url.QueryEscape(o.ClientID), url.QueryEscape(o.ClientSecret))
	}
	select {
	case v.introSlots <- struct{}{}:
		defer func() { <-v.introSlots }()
	case <-ctx.Done():
		return nil, rejectCause(ErrIntrospectionUnavailable, "waiting for an introspection slot", ctx.Err())
	}
	v.stats.introspections.Add(1)
	resp, err := v.hc.Do(req)
	if err != nil {
		v.stats.introFailures.Add(1)
		// A *url.Error names the endpoint; the token is in the body only.
		return nil, rejectCause(ErrIntrospectionUnavailable, "", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxIntrospectionBytes+1))
	if err == nil && len(body) > MaxIntrospectionBytes {
		err = errors.New("response too large")
	}
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("status %d", resp.StatusCode)
	}
	var active bool
	var c *claimSet
	if err == nil {
		active, c, err = v.picker.parseIntrospection(body)
	}
	if err != nil {
		v.stats.introFailures.Add(1)
		return nil, rejectCause(ErrIntrospectionUnavailable, "POST "+v.introURL, err)
	}
	if !active {
		return nil, reject(ErrInactive, "")
	}
	if tt, _ := rawString(c.used[cTokenType]); strings.Contains(strings.ToLower(tt), "refresh") {
		return nil, reject(ErrWrongType, "introspection: token_type is not an access token")
	}
	return c, nil
}

// parseIntrospection reads an introspection response (RFC 7662 §2.2): a
// JSON object whose active member is a boolean.
func (p *claimPicker) parseIntrospection(body []byte) (active bool, c *claimSet, err error) {
	if c, err = p.pick(body); err != nil {
		return false, nil, errors.New("the introspection response is not a JSON object")
	}
	switch string(c.used[cActive]) {
	case "true":
		return true, c, nil
	case "false":
		return false, c, nil
	}
	return false, nil, errors.New("the introspection response has no boolean active member")
}
