package mcpauth

import (
	"context"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	oauth "github.com/mcp-oauth/oauth"
	"github.com/mcp-oauth/oauth/internal/redirect"
	"github.com/mcp-oauth/oauth/internal/replay"
)

// Token type identifiers of RFC 8693 §3 and SEP-990.
const (
	// TokenTypeAccessToken identifies an OAuth 2.0 access token.
	TokenTypeAccessToken = "urn:ietf:params:oauth:token-type:access_token"
	// TokenTypeIDJAG is the JOSE typ of an identity assertion JWT
	// authorization grant (ID-JAG, SEP-990), which an AssertionVerifier
	// for an enterprise identity provider must require.
	TokenTypeIDJAG = "oauth-id-jag+jwt"
)

// AssertionVerifier verifies the JWT authorization grants of one trusted
// issuer (RFC 7523 §3): for MCP's Enterprise-Managed Authorization
// (SEP-990), the identity assertion JWT authorization grants (ID-JAG) of
// an enterprise identity provider. An *extauth.Verifier is one, made with
// the IdP as Issuer, this server's issuer as the only Audience,
// TokenTypes {TokenTypeIDJAG} and Claims {"resource"}: it checks the
// signature by the IdP's JWK Set, iss, aud, exp, nbf and iat. The token
// endpoint then requires jti (and refuses it twice), client_id equal to
// the authenticated client, and resource one of this server's.
type AssertionVerifier interface {
	// Issuer is the issuer whose assertions Verify accepts.
	Issuer() string
	// Verify verifies an assertion and returns its claims: Subject,
	// ClientID (client_id), Scopes (scope), ID (jti), ExpiresAt, and
	// Claims["resource"].
	Verify(ctx context.Context, assertion string) (*oauth.AccessToken, error)
}

// maxAssertionLifetime bounds how far in the future an assertion's exp may
// be, and so how long its jti is remembered.
const maxAssertionLifetime = 10 * time.Minute

// maxAssertionsInFlight bounds the jti values remembered: assertions
// accepted and not yet expired. Beyond it the grant answers
// temporarily_unavailable rather than forget one.
const maxAssertionsInFlight = 100_000

// exchangeClientCredentials serves the client credentials grant (RFC 6749
// §4.4, MCP's SEP-1046) for a confidential client configured with it.
func (s *AuthorizationServer) exchangeClientCredentials(r *http.Request, client *oauth.Client, form url.Values) (*oauth.TokenResponse, error) {
	ti, e := s.issuer(client, oauth.GrantTypeClientCredentials)
	if e != nil {
		return nil, e
	}
	if client.Public() {
		return nil, oauth.ErrUnauthorizedClient.WithDescription("client_credentials needs client authentication")
	}
	resource, scopes, e := s.machineAccess(client, form.Get("resource"), form.Get("scope"), nil)
	if e != nil {
		return nil, e
	}
	return ti.IssueToken(r.Context(), client, &oauth.IssueRequest{
		GrantType: oauth.GrantTypeClientCredentials, Subject: client.ID, Scopes: scopes, Resource: resource,
	})
}

// exchangeAssertion serves the JWT authorization grant (RFC 7523 §2.1)
// with an ID-JAG from a trusted identity provider (SEP-990): the token's
// scopes are those requested and asserted (all asserted when none are
// requested), and it is bound to the assertion's resource.
func (s *AuthorizationServer) exchangeAssertion(r *http.Request, client *oauth.Client, form url.Values) (*oauth.TokenResponse, error) {
	ti, e := s.issuer(client, oauth.GrantTypeJWTBearer)
	if e != nil {
		return nil, e
	}
	assertion := form.Get("assertion")
	if assertion == "" {
		return nil, oauth.ErrInvalidRequest.WithDescription("assertion is required")
	}
	var at *oauth.AccessToken
	var from AssertionVerifier
	var firstErr error
	for _, v := range s.opts.Assertions {
		a, err := v.Verify(r.Context(), assertion)
		if err == nil {
			at, from = a, v
			break
		}
		if firstErr == nil {
			firstErr = err
		}
	}
	if at == nil {
		s.log.Info("mcpauth: assertion refused", "client_id", client.ID, "reason", firstErr)
		return nil, oauth.ErrInvalidGrant.WithDescription("the assertion is not valid").WithCause(firstErr)
	}
	now := time.Now()
	switch {
	case at.ClientID != client.ID:
		return nil, oauth.ErrInvalidGrant.WithDescription("the assertion was issued for another client")
	case at.ID == "":
		return nil, oauth.ErrInvalidGrant.WithDescription("the assertion has no jti")
	case at.ExpiresAt.After(now.Add(maxAssertionLifetime)):
		return nil, oauth.ErrInvalidGrant.WithDescription("the assertion expires too far in the future")
	}
	res, _ := at.Claims["resource"].(string)
	if res == "" {
		return nil, oauth.ErrInvalidGrant.WithDescription("the assertion names no resource")
	}
	if p := form.Get("resource"); p != "" && p != res {
		return nil, oauth.ErrInvalidTarget.WithDescription("resource differs from the assertion's")
	}
	resource, scopes, e := s.machineAccess(client, res, form.Get("scope"), at.Scopes)
	if e != nil {
		return nil, e
	}
	switch s.replays.Use(from.Issuer()+"\x00"+at.ID, at.ExpiresAt, now) {
	case replay.Replayed:
		s.log.Warn("mcpauth: assertion replayed", "client_id", client.ID, "issuer", from.Issuer())
		return nil, oauth.ErrInvalidGrant.WithDescription("the assertion was used before")
	case replay.Full:
		return nil, oauth.ErrTemporarilyUnavailable.WithDescription("too many assertions in flight; try again")
	}
	subject := at.Subject
	if s.opts.AssertionSubject != nil {
		if subject = s.opts.AssertionSubject(from.Issuer(), at.Subject); subject == "" {
			return nil, oauth.ErrAccessDenied.WithDescription("this identity may not use this server")
		}
	}
	return ti.IssueToken(r.Context(), client, &oauth.IssueRequest{
		GrantType: oauth.GrantTypeJWTBearer, Subject: subject, Scopes: scopes, Resource: resource,
	})
}

// exchangeToken serves the token exchange grant (RFC 8693 §2.1) for a
// confidential client configured with it: one of this server's access
// tokens for a token for another (or the same) of its resources, with
// scopes narrowed, and the client named as the actor.
func (s *AuthorizationServer) exchangeToken(r *http.Request, client *oauth.Client, form url.Values) (*oauth.TokenResponse, error) {
	ti, e := s.issuer(client, oauth.GrantTypeTokenExchange)
	if e != nil {
		return nil, e
	}
	if client.Public() {
		return nil, oauth.ErrUnauthorizedClient.WithDescription("token exchange needs client authentication")
	}
	switch {
	case form.Get("subject_token") == "":
		return nil, oauth.ErrInvalidRequest.WithDescription("subject_token is required")
	case form.Get("subject_token_type") != TokenTypeAccessToken:
		return nil, oauth.ErrInvalidRequest.WithDescription("subject_token_type must be " + TokenTypeAccessToken)
	case form.Has("actor_token") || form.Has("actor_token_type"):
		return nil, oauth.ErrInvalidRequest.WithDescription("actor_token is not supported; the authenticated client is the actor")
	}
	if rt := form.Get("requested_token_type"); rt != "" && rt != TokenTypeAccessToken {
		return nil, oauth.ErrInvalidRequest.WithDescription("requested_token_type must be " + TokenTypeAccessToken)
	}
	target := form.Get("resource")
	if a := form.Get("audience"); a != "" {
		if target != "" && target != a {
			return nil, oauth.ErrInvalidTarget.WithDescription("audience and resource name different resources")
		}
		target = a // RFC 8693 §2.1: this server's resources are its audiences
	}
	subject, err := s.p.LoadAccessToken(r.Context(), form.Get("subject_token"))
	if err != nil {
		if oauth.AsError(err).Code == oauth.ErrServerError.Code {
			return nil, err // the store failed: not the client's fault
		}
		return nil, oauth.ErrInvalidGrant.WithDescription("subject_token is invalid, expired or revoked")
	}
	resource, known, e := s.resourceScopes(target, subject.Resource)
	if e != nil {
		return nil, e
	}
	var scopes []string
	if sc := form.Get("scope"); sc != "" {
		for _, x := range strings.Fields(sc) {
			if !slices.Contains(subject.Scopes, x) || !slices.Contains(known, x) {
				return nil, oauth.ErrInvalidScope.WithDescription("scope " + x + " is not in the subject token or not offered for the resource")
			}
			if !slices.Contains(scopes, x) {
				scopes = append(scopes, x)
			}
		}
	} else {
		for _, x := range subject.Scopes {
			if slices.Contains(known, x) {
				scopes = append(scopes, x)
			}
		}
		if len(scopes) == 0 && len(known) > 0 {
			return nil, oauth.ErrInvalidScope.WithDescription("none of the subject token's scopes is offered for the resource")
		}
	}
	return ti.ExchangeToken(r.Context(), client, subject, scopes, resource)
}

// issuer returns the Provider as an oauth.TokenIssuer if client may use
// grant type gt: it was configured with it (clients registered at
// /register cannot have client_credentials or token exchange) and, for
// the JWT grant, a trusted issuer is configured.
func (s *AuthorizationServer) issuer(client *oauth.Client, gt string) (oauth.TokenIssuer, *oauth.Error) {
	ti, ok := s.p.(oauth.TokenIssuer)
	if !ok || (gt == oauth.GrantTypeJWTBearer && len(s.opts.Assertions) == 0) {
		return nil, oauth.ErrUnsupportedGrantType.WithDescription("supported grant types: " + strings.Join(s.meta.GrantTypesSupported, ", "))
	}
	if !slices.Contains(client.GrantTypes, gt) {
		return nil, oauth.ErrUnauthorizedClient.WithDescription("client is not configured for " + gt)
	}
	return ti, nil
}

// resourceScopes resolves a requested resource (RFC 8707 §2; def when
// empty) to the canonical URL of one this server protects, and its scopes.
func (s *AuthorizationServer) resourceScopes(resource, def string) (string, []string, *oauth.Error) {
	if resource == "" {
		resource = def
	}
	if resource == "" {
		return s.resources[0].URL, s.resources[0].Scopes, nil
	}
	for _, r := range s.resources {
		if redirect.SameResource(r.URL, resource) {
			return r.URL, r.Scopes, nil
		}
	}
	return "", nil, oauth.ErrInvalidTarget.WithDescription("unknown resource; this server protects " + s.resourceList())
}

// machineAccess resolves the resource and scopes of a grant without an
// owner: of the requested scopes, those offered for the resource, allowed
// to the client (its registered scope, when it has one) and, when
// asserted is not nil, asserted; none requested means all that are. The
// others are left out, as RFC 6749 §3.3 allows (the response's scope
// says what was granted: go-sdk's client asks for every scope the
// resource offers); invalid_scope if none is left.
func (s *AuthorizationServer) machineAccess(client *oauth.Client, resource, scope string, asserted []string) (string, []string, *oauth.Error) {
	if len(scope) > MaxParamLen {
		return "", nil, oauth.ErrInvalidScope.WithDescription("scope is too long")
	}
	canonical, known, e := s.resourceScopes(resource, "")
	if e != nil {
		return "", nil, e
	}
	allowed := func(x string) bool {
		return slices.Contains(known, x) &&
			(client.Scope == "" || slices.Contains(strings.Fields(client.Scope), x)) &&
			(asserted == nil || slices.Contains(asserted, x))
	}
	requested := strings.Fields(scope)
	if scope == "" {
		requested = known
	}
	var out []string
	for _, x := range requested {
		if allowed(x) && !slices.Contains(out, x) {
			out = append(out, x)
		}
	}
	if len(out) == 0 && len(known) > 0 {
		return "", nil, oauth.ErrInvalidScope.WithDescription("none of the requested scopes is allowed to this client")
	}
	return canonical, out, nil
}
