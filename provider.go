// Package oauth defines the contract between the HTTP layer of an OAuth 2.1
// authorization server for MCP and the component that decides and remembers:
// the [Provider]. It holds the domain types (clients, authorization requests,
// codes, grants, tokens) and the RFC 6749 error type. It contains no HTTP
// handlers; package mcpauth serves these types over HTTP, and package provider
// implements Provider on a storage.Store.
//
// The contract mirrors the authorization-server provider of the MCP SDKs
// (TypeScript OAuthServerProvider, Python OAuthAuthorizationServerProvider),
// in Go style: context first, errors last, and errors that are *Error values
// (or wrap one) so that the HTTP layer can answer with the right RFC shape.
package oauth

import (
	"context"
	"time"

	"github.com/modelcontextprotocol/go-sdk/oauthex"
)

// Provider is what an authorization server needs from its backend. The HTTP
// layer (package mcpauth) parses and validates requests, authenticates clients,
// verifies PKCE, redirect URIs and resources, and then calls these methods.
//
// Every method returns an *Error (or an error wrapping one) for an outcome the
// client should see; any other error is answered as server_error with no
// detail. Implementations must be safe for concurrent use.
type Provider interface {
	// GetClient returns the registered client with the given client_id, or
	// ErrInvalidClient when there is none (RFC 6749 §5.2; MCP clients such as
	// Claude re-register on that answer).
	GetClient(ctx context.Context, clientID string) (*Client, error)

	// RegisterClient stores a new client (RFC 7591 §3.1) whose metadata the
	// HTTP layer has already validated, and returns it with its client_id and,
	// for a confidential client, the plaintext client_secret, which is shown
	// this once and stored only as a hash.
	RegisterClient(ctx context.Context, md *oauthex.ClientRegistrationMetadata) (*oauthex.ClientRegistrationResponse, error)

	// Authorize records a validated authorization request (OAuth 2.1 §4.1.1)
	// and returns the URL the user's browser is sent to next: an approval
	// page, a login page, or the client's redirect URI with a code.
	Authorize(ctx context.Context, client *Client, params *AuthorizationParams) (redirectTo string, err error)

	// LoadAuthorizationCode returns the code's record without consuming it,
	// or ErrInvalidGrant when it is unknown, expired or already redeemed (in
	// which case the implementation revokes what the first redemption issued,
	// OAuth 2.1 §4.1.3). The HTTP layer checks client, redirect URI, PKCE and
	// resource before calling ExchangeAuthorizationCode.
	LoadAuthorizationCode(ctx context.Context, code string) (*AuthorizationCode, error)

	// ExchangeAuthorizationCode consumes the code atomically (exactly one of
	// any number of concurrent calls succeeds; a loser gets ErrInvalidGrant
	// and the grant is revoked) and issues tokens (OAuth 2.1 §4.1.3).
	ExchangeAuthorizationCode(ctx context.Context, client *Client, code *AuthorizationCode) (*TokenResponse, error)

	// LoadRefreshToken returns the refresh token's record, or ErrInvalidGrant
	// when it is unknown, expired or revoked. Presenting a refresh token that
	// was already rotated and whose successor has been used revokes the whole
	// grant (OAuth 2.1 §4.3.1, RFC 9700 §4.14.2).
	LoadRefreshToken(ctx context.Context, token string) (*RefreshToken, error)

	// ExchangeRefreshToken rotates the refresh token and issues a new access
	// token. scopes, when non-empty, is a subset of rt.Scopes already checked
	// by the HTTP layer (RFC 6749 §6: scopes may only narrow).
	ExchangeRefreshToken(ctx context.Context, client *Client, rt *RefreshToken, scopes []string) (*TokenResponse, error)

	// LoadAccessToken verifies an access token and returns what it grants,
	// or ErrInvalidToken when it is malformed, forged, expired, for another
	// audience, or its grant was revoked (RFC 6750 §3.1).
	LoadAccessToken(ctx context.Context, token string) (*AccessToken, error)

	// RevokeToken revokes token if it is an access or refresh token issued to
	// client (RFC 7009 §2.1); revoking either revokes its grant. Unknown
	// tokens and tokens of other clients are ignored without error.
	RevokeToken(ctx context.Context, client *Client, token, tokenTypeHint string) error
}

// Token endpoint authentication methods (RFC 7591 §2).
const (
	AuthMethodNone              = "none"
	AuthMethodClientSecretBasic = "client_secret_basic"
	AuthMethodClientSecretPost  = "client_secret_post"
)

// Grant types (RFC 6749 §4, RFC 7591 §2).
const (
	GrantTypeAuthorizationCode = "authorization_code"
	GrantTypeRefreshToken      = "refresh_token"
	// GrantTypeDeviceCode is the RFC 8628 §3.4 device authorization grant.
	GrantTypeDeviceCode = "urn:ietf:params:oauth:grant-type:device_code"
)

// DeviceAuthorization is the device authorization response of RFC 8628
// §3.2.
type DeviceAuthorization struct {
	// DeviceCode is what the device presents at the token endpoint.
	DeviceCode string `json:"device_code"`
	// UserCode is what the owner enters (or confirms) where they approve.
	UserCode string `json:"user_code"`
	// VerificationURI is where the owner goes to approve.
	VerificationURI string `json:"verification_uri"`
	// VerificationURIComplete also carries the user code.
	VerificationURIComplete string `json:"verification_uri_complete,omitempty"`
	// ExpiresIn is the lifetime of both codes, in seconds.
	ExpiresIn int64 `json:"expires_in"`
	// Interval is the minimum number of seconds between polls.
	Interval int64 `json:"interval,omitempty"`
}

// DeviceProvider is implemented by a Provider that supports the RFC 8628
// device authorization grant, for clients without a browser (CLIs, TVs,
// headless agents). The HTTP layer serves /device_authorization and the
// device_code grant only for a Provider that implements it.
type DeviceProvider interface {
	// AuthorizeDevice records a device authorization request of an
	// authenticated client (RFC 8628 §3.1) and returns the §3.2 response.
	AuthorizeDevice(ctx context.Context, client *Client, params *AuthorizationParams) (*DeviceAuthorization, error)
	// ExchangeDeviceCode answers one poll of the token endpoint (§3.4):
	// tokens once the owner approved, or an *Error with
	// ErrAuthorizationPending, ErrSlowDown, ErrAccessDenied,
	// ErrExpiredToken or ErrInvalidGrant (§3.5).
	ExchangeDeviceCode(ctx context.Context, client *Client, deviceCode string) (*TokenResponse, error)
}

// Client is a registered OAuth client (RFC 7591 §2). The registration
// metadata is go-sdk's oauthex type, so the JSON shape is the RFC's.
type Client struct {
	oauthex.ClientRegistrationMetadata

	// ID (client_id) identifies the client. Required.
	ID string
	// SecretHash is the hex SHA-256 of the client secret; empty for a public
	// client (token_endpoint_auth_method "none").
	SecretHash string
	// IssuedAt (client_id_issued_at) is when the client was registered.
	IssuedAt time.Time
	// ExpiresAt is when an unused registration lapses; each use renews it.
	// Zero means never.
	ExpiresAt time.Time
}

// Public reports whether the client authenticates with "none" (RFC 6749 §2.1).
func (c *Client) Public() bool {
	return c.TokenEndpointAuthMethod == AuthMethodNone
}

// AuthorizationParams is a validated authorization request (OAuth 2.1 §4.1.1,
// RFC 7636 §4.3, RFC 8707 §2).
type AuthorizationParams struct {
	// ClientID (client_id) of the requesting client.
	ClientID string
	// RedirectURI (redirect_uri) the response goes to: the one the client
	// sent, or its only registered one when it sent none.
	RedirectURI string
	// RedirectURIExplicit records whether redirect_uri was in the request;
	// if so, the token request must repeat it (RFC 6749 §4.1.3).
	RedirectURIExplicit bool
	// State (state) is returned unchanged to the client.
	State string
	// Scopes granted if the owner approves: the requested scopes the server
	// knows, or the default scopes when none were requested.
	Scopes []string
	// CodeChallenge (code_challenge) for PKCE; the method is always S256.
	CodeChallenge string
	// Resource (resource) is the canonical resource the tokens are bound to.
	Resource string
}

// AuthorizationCode is an issued authorization code (OAuth 2.1 §4.1.2).
type AuthorizationCode struct {
	// Code is the value as presented; implementations store only its hash.
	Code string
	// GrantID identifies the grant the code belongs to.
	GrantID string
	// Subject is the resource owner who approved.
	Subject string
	// ExpiresAt bounds the code's lifetime (10 minutes by default).
	ExpiresAt time.Time
	AuthorizationParams
}

// Grant is an owner's consent for one client: the scopes and resource it may
// access. Codes, refresh tokens and access tokens all carry the grant's ID,
// and revoking the grant stops every one of them.
type Grant struct {
	ID       string
	ClientID string
	Subject  string
	Scopes   []string
	Resource string
	// RedirectURI is the redirect URI the grant was approved for. Clients
	// identified by a metadata document are shared by many installations
	// (one ChatGPT document for every user), which only their redirect
	// URIs tell apart.
	RedirectURI string
	CreatedAt   time.Time
	LastUsedAt  time.Time
	// RevokedAt is zero while the grant is active.
	RevokedAt time.Time
}

// RefreshToken is an issued refresh token (OAuth 2.1 §4.3).
type RefreshToken struct {
	// Token is the value as presented; implementations store only its hash.
	Token     string
	ClientID  string
	GrantID   string
	Subject   string
	Scopes    []string
	Resource  string
	ExpiresAt time.Time
	// Rotation is opaque provider state carried from LoadRefreshToken to
	// ExchangeRefreshToken, so that of concurrent exchanges of one token
	// exactly one rotates it (optimistic concurrency).
	Rotation string
}

// AccessToken is what a verified access token grants (RFC 9068 claims).
type AccessToken struct {
	// Token is the value as presented.
	Token string
	// ID is the token's unique identifier (jti).
	ID       string
	ClientID string
	GrantID  string
	Subject  string
	Scopes   []string
	// Resource is the audience (aud) the token is bound to (RFC 8707).
	Resource  string
	IssuedAt  time.Time
	ExpiresAt time.Time
}

// TokenResponse is a successful token response (RFC 6749 §5.1).
type TokenResponse struct {
	AccessToken  string `json:"access_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int64  `json:"expires_in,omitempty"`
	RefreshToken string `json:"refresh_token,omitempty"`
	Scope        string `json:"scope,omitempty"`
}
