// Package oauth defines the contract between the HTTP layer of an OAuth 2.1
// authorization server for MCP and the component that decides and remembers:
// the [Provider]. It holds the domain types (clients, authorization requests,
// codes, grants, tokens) and the RFC 6749 error type. It contains no HTTP
// handlers; package mcpauth serves these types over HTTP, and package provider
// implements Provider on a storage.Store.
//
// Beside Provider, the package names the contracts that the rest of the
// library builds on, each optional for a Provider: [DeviceProvider] (the RFC
// 8628 device grant), [Approver] (the approval page and the console: the
// owner approves a request by its user code), [Administrator] (the console's
// lists of grants and clients), [GrantDataProvider] (values kept with a
// grant, which a setup step collects and tools read), [KeySetProvider] (a
// JWK Set at /jwks.json) and [ClientAuthenticator] (how client secrets are
// checked). A Provider
// that implements none of them still serves every OAuth endpoint; package
// mcpauth says at construction which features it then lacks.
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

// Approver is implemented by a Provider whose Authorize sends the browser to
// an approval page where it waits while the owner approves the request
// elsewhere, by its short user code (the manner of RFC 8628 §3.3, applied to
// the authorization code flow). Package approval serves that page and the
// owner's console on any Approver; mcpauth.Handler.Approve approves from Go.
//
// Requests are identified to the owner by the user code, and to the browser
// that made them by a secret handle and the same code (both in the approval
// page's URL, as its "request" and "user_code" parameters, of at most 128
// and 32 bytes). The format of codes is the Approver's: the pages pass
// them on as the owner typed them. The default Provider's are eight
// consonants shown as KXWT-BMRD, matched case-insensitively with or
// without the hyphen, which the pages also show in that form. Errors are ErrUnknownRequest for a code or handle that matches
// no live request, ErrAlreadyDecided, or an error the caller logs.
type Approver interface {
	// PendingByUserCode returns the live request with the given user code
	// (case-insensitive, hyphen optional), decided or not.
	PendingByUserCode(ctx context.Context, userCode string) (*PendingRequest, error)
	// ListPending returns the requests still waiting for a decision,
	// oldest first.
	ListPending(ctx context.Context) ([]*PendingRequest, error)
	// Approve approves the waiting request with the given user code on
	// behalf of subject, the resource owner (1 to 255 bytes), and returns
	// it. ErrAlreadyDecided if it was approved or denied already. setup,
	// when not nil, is what a setup step completed with (for a device
	// request, whose step runs where the owner approves); the grant keeps
	// it. An Approver that cannot keep what a setup holds (values, claims)
	// refuses it with an error, here and in Poll.
	Approve(ctx context.Context, userCode, subject string, setup *GrantSetup) (*PendingRequest, error)
	// Deny denies the waiting request with the given user code; its
	// browser is sent back to the client with error=access_denied (RFC
	// 6749 §4.1.2.1).
	Deny(ctx context.Context, userCode string) (*PendingRequest, error)
	// Poll answers one load of the approval page: it returns the request
	// that the browser holding req.Handle made (provided req.UserCode is
	// its code) and, once the request is decided, where to send that
	// browser: for an approved request the client's redirect URI with a
	// new single-use authorization code, state and iss (RFC 6749 §4.1.2,
	// RFC 9207), for a denied one the redirect URI with
	// error=access_denied. redirectTo is empty while the request waits,
	// when req.Hold is set, and once the request is completed (a reload
	// of a finished page: its code was issued already). While the request
	// waits, Poll reads it once.
	Poll(ctx context.Context, req *PollRequest) (p *PendingRequest, redirectTo string, err error)
}

// PollRequest is the argument of [Approver.Poll]: which request, and how to
// answer once it is decided. It is a struct so that fields can be added.
type PollRequest struct {
	// Handle is the secret handle of the browser tab that made the
	// request (the approval page URL's "request" parameter).
	Handle string
	// UserCode is the request's user code, as shown in that tab.
	UserCode string
	// Hold leaves an approved request approved instead of completing it,
	// so that a setup step can run first: Poll then returns the request
	// and no redirect.
	Hold bool
	// Setup, when not nil and the request is approved, is what the setup
	// step completed with; the grant created on completion keeps it (see
	// [Approver.Approve]). Ignored with Hold.
	Setup *GrantSetup
}

// Administrator is implemented by a Provider that lets the owner see and
// end what was granted: the console's lists and buttons, and the example's
// terminal commands.
type Administrator interface {
	// ListGrants returns the active grants, oldest first.
	ListGrants(ctx context.Context) ([]*Grant, error)
	// RevokeGrant revokes a grant: its refresh tokens and codes stop
	// working at once and its access tokens from the next request on.
	RevokeGrant(ctx context.Context, grantID string) error
	// ListClients returns the live registered clients, oldest first.
	ListClients(ctx context.Context) ([]*Client, error)
	// DeleteClient deletes a registered client (RFC 7592 §2.3 in effect)
	// and revokes all of its grants.
	DeleteClient(ctx context.Context, clientID string) error
}

// GrantDataProvider is implemented by a Provider that keeps data with
// grants: what a setup step collected ([GrantSetup.Values]) and what tools
// store later, sealed at rest and deleted when the grant ends. Package
// mcpauth gives tools typed access (mcpauth.GrantData).
type GrantDataProvider interface {
	// GrantData returns the value name of the active grant grantID, or
	// ErrNoGrantData when there is none (absent, expired, or the grant
	// ended).
	GrantData(ctx context.Context, grantID, name string) ([]byte, error)
	// SetGrantData stores value under name, replacing any value of that
	// name; ttl, when positive, bounds its life. ErrGrantNotActive if the
	// grant ended, ErrGrantDataLimit over the size limits.
	SetGrantData(ctx context.Context, grantID, name string, value []byte, ttl time.Duration) error
	// DeleteGrantData deletes the value; deleting an absent one is not an
	// error.
	DeleteGrantData(ctx context.Context, grantID, name string) error
}

// TokenIssuer is implemented by a Provider that issues access tokens
// without an owner's approval at the time: on the client credentials
// grant (RFC 6749 §4.4, MCP's SEP-1046), on a JWT authorization grant
// such as an enterprise identity provider's ID-JAG (RFC 7523 §2.1, MCP's
// SEP-990), and by token exchange of its own access tokens (RFC 8693).
// The HTTP layer authenticates the client and checks the request (an
// assertion's signature, issuer, audience, lifetime and replay; the
// scopes and resource) before calling it; none of these grants issues a
// refresh token.
type TokenIssuer interface {
	// IssuedGrantTypes returns which of GrantTypeClientCredentials and
	// GrantTypeTokenExchange some client may use (GrantTypeJWTBearer is
	// on when the HTTP layer has a trusted assertion issuer): the HTTP
	// layer advertises these in its metadata (RFC 8414 §2).
	IssuedGrantTypes() []string
	// IssueToken issues an access token on a grant of req.GrantType
	// (GrantTypeClientCredentials or GrantTypeJWTBearer) for client.
	IssueToken(ctx context.Context, client *Client, req *IssueRequest) (*TokenResponse, error)
	// ExchangeToken issues, for subject, an access token of this Provider
	// that LoadAccessToken verified, a token for resource with scopes (a
	// subset of subject's) on behalf of the same owner, with client as the
	// actor (RFC 8693 §2.2, §4.1). The new token lives no longer than
	// subject and stops working when subject's grant ends.
	ExchangeToken(ctx context.Context, client *Client, subject *AccessToken, scopes []string, resource string) (*TokenResponse, error)
}

// IssueRequest is the argument of [TokenIssuer.IssueToken].
type IssueRequest struct {
	// GrantType is GrantTypeClientCredentials or GrantTypeJWTBearer.
	GrantType string
	// Subject is the token's sub: the client's ID for client credentials
	// (RFC 9068 §2.2), the asserted user for a JWT grant.
	Subject string
	// Scopes are the scopes granted, already checked.
	Scopes []string
	// Resource is the canonical resource the token is bound to (RFC 8707).
	Resource string
	// Claims are custom claims for the token, as [GrantSetup.Claims].
	Claims map[string]any
}

// KeySetProvider is implemented by a Provider that signs its access tokens
// with asymmetric keys and publishes them: the HTTP layer then serves the
// set at /jwks.json and names it in the metadata's jwks_uri (RFC 8414 §2).
type KeySetProvider interface {
	// JWKS returns the JWK Set (RFC 7517 §5) of every key that may still
	// verify a live token, as JSON.
	JWKS(ctx context.Context) ([]byte, error)
}

// ClientAuthenticator is implemented by a Provider that checks client
// secrets itself (RFC 6749 §2.3.1), for instance because it stores them
// with another hash. Without it the HTTP layer compares the SHA-256 of the
// presented secret with Client.SecretHash in constant time.
type ClientAuthenticator interface {
	// AuthenticateClient reports whether secret is c's client secret. It
	// must take the same time whatever the answer.
	AuthenticateClient(c *Client, secret string) bool
}
