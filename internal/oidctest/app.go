package oidctest

import (
	"context"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
)

// App is a confidential web client of the provider (client_secret_basic;
// authorization code with PKCE, and refresh_token) whose access tokens are
// JWTs (RS256, typ "JWT", as zitadel signs them) carrying the granted
// scopes in scope, Claims, and an aud of its choice: ID, then Audience.
// It stands for an identity provider configured to issue tokens for an
// API, as Keycloak's audience mappers, Entra ID's application ID URIs or
// Auth0's APIs do. Its ID tokens name the same audiences (zitadel derives
// both from the request), with azp ID.
type App struct {
	ID, Secret   string
	RedirectURIs []string
	// Audience is added to the aud of its tokens, after ID.
	Audience []string
	// Claims are added to its JWT access tokens.
	Claims map[string]any
}

// app returns the App of a client ID, or nil.
func (s *serviceStorage) app(id string) *App { return s.apps[id] }

// appClient is an App as an op.Client: the example web client, with JWT
// access tokens.
type appClient struct{ op.Client }

func (appClient) AccessTokenType() op.AccessTokenType { return op.AccessTokenTypeJWT }

// appAuthRequest is an App's authorization request at the token
// endpoint, with the App's audience.
type appAuthRequest struct {
	op.AuthRequest
	aud []string
}

func (r appAuthRequest) GetAudience() []string {
	return append(r.AuthRequest.GetAudience(), r.aud...)
}

// appRefreshRequest is a refresh of an App's tokens, with its audience.
type appRefreshRequest struct {
	op.RefreshTokenRequest
	aud []string
}

func (r appRefreshRequest) GetAudience() []string {
	return append(r.RefreshTokenRequest.GetAudience(), r.aud...)
}

// unwrapApp returns the example storage's own request behind an App's,
// whose concrete type that storage switches on (and which keeps the
// audience {ID}, so that the provider's introspection, which wants its
// caller in aud, still answers the App).
func unwrapApp(req op.TokenRequest) op.TokenRequest {
	switch r := req.(type) {
	case appAuthRequest:
		return r.AuthRequest
	case appRefreshRequest:
		return r.RefreshTokenRequest
	}
	return req
}

// AuthRequestByCode implements op.Storage: an App's request carries its
// audience.
func (s *serviceStorage) AuthRequestByCode(ctx context.Context, code string) (op.AuthRequest, error) {
	req, err := s.Storage.AuthRequestByCode(ctx, code)
	if err != nil {
		return nil, err
	}
	if a := s.app(req.GetClientID()); a != nil {
		return appAuthRequest{req, slices.Clone(a.Audience)}, nil
	}
	return req, nil
}

// TokenRequestByRefreshToken implements op.Storage: an App's refresh
// carries its audience.
func (s *serviceStorage) TokenRequestByRefreshToken(ctx context.Context, token string) (op.RefreshTokenRequest, error) {
	req, err := s.Storage.TokenRequestByRefreshToken(ctx, token)
	if err != nil {
		return nil, err
	}
	if a := s.app(req.GetClientID()); a != nil {
		return appRefreshRequest{req, slices.Clone(a.Audience)}, nil
	}
	return req, nil
}

// CreateAccessAndRefreshTokens implements op.Storage.
func (s *serviceStorage) CreateAccessAndRefreshTokens(ctx context.Context, req op.TokenRequest, current string) (string, string, time.Time, error) {
	return s.Storage.CreateAccessAndRefreshTokens(ctx, unwrapApp(req), current)
}

// appClaims are the private claims of an App's JWT access tokens.
func (s *serviceStorage) appClaims(ctx context.Context, a *App, userID string, scopes []string) (map[string]any, error) {
	claims, err := s.Storage.GetPrivateClaimsFromScopes(ctx, userID, a.ID, scopes)
	if err != nil {
		return nil, err
	}
	if claims == nil {
		claims = map[string]any{}
	}
	maps.Copy(claims, a.Claims)
	if len(scopes) > 0 {
		claims["scope"] = strings.Join(scopes, " ")
	}
	return claims, nil
}

// appIntrospection adds an App's audience and the issuer to an
// introspection answer about one of its tokens.
func (s *serviceStorage) appIntrospection(resp *oidc.IntrospectionResponse) {
	if a := s.app(resp.ClientID); a != nil {
		resp.Audience = append(oidc.Audience{a.ID}, a.Audience...)
		resp.Issuer = s.issuer
	}
}
