package oauth

import (
	"errors"
	"time"

	"github.com/modelcontextprotocol/go-sdk/oauthex"
)

// Token endpoint authentication methods (RFC 7591 §2).
const (
	AuthMethodNone              = "none"
	AuthMethodClientSecretBasic = "client_secret_basic"
	AuthMethodClientSecretPost  = "client_secret_post"
	// AuthMethodPrivateKeyJWT is a JWT client assertion signed with the
	// client's key (RFC 7523 §2.2, OpenID Connect Core §9), whose public
	// keys the client registered as jwks or jwks_uri (RFC 7591 §2).
	AuthMethodPrivateKeyJWT = "private_key_jwt"
)

// Grant types (RFC 6749 §4, RFC 7591 §2).
const (
	GrantTypeAuthorizationCode = "authorization_code"
	GrantTypeRefreshToken      = "refresh_token"
	// GrantTypeDeviceCode is the RFC 8628 §3.4 device authorization grant.
	GrantTypeDeviceCode = "urn:ietf:params:oauth:grant-type:device_code"
	// GrantTypeClientCredentials is the RFC 6749 §4.4 grant of a
	// confidential client acting for itself (MCP's SEP-1046).
	GrantTypeClientCredentials = "client_credentials"
	// GrantTypeJWTBearer is the RFC 7523 §2.1 JWT authorization grant,
	// which carries an identity assertion JWT authorization grant
	// (ID-JAG) in MCP's Enterprise-Managed Authorization (SEP-990).
	GrantTypeJWTBearer = "urn:ietf:params:oauth:grant-type:jwt-bearer"
	// GrantTypeTokenExchange is the RFC 8693 §2.1 token exchange.
	GrantTypeTokenExchange = "urn:ietf:params:oauth:grant-type:token-exchange"
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
	// Claims are the custom claims the grant's setup step returned
	// ([GrantSetup.Claims]); every access token of the grant carries them.
	// Values are as encoding/json decodes them (numbers are float64).
	Claims map[string]any
	// GrantType is the grant type that made the grant without an owner's
	// approval: GrantTypeClientCredentials or GrantTypeJWTBearer; empty
	// for a grant the owner approved (authorization code, device code).
	GrantType string
	// ExpiresAt is zero for a grant that lives as long as it has a code
	// or refresh token. A grant that issues access tokens only (GrantType
	// set) lives until ExpiresAt, which each issue extends to its token's
	// expiry.
	ExpiresAt time.Time
}

// GrantSetup is what a setup step completes with: values to keep with the
// grant and claims for its access tokens. It is passed with the owner's
// decision ([Approver.Approve]) or with the completion of an approved
// request ([PollRequest.Setup]); a request whose step is abandoned keeps
// nothing.
type GrantSetup struct {
	// Values are kept with the grant, sealed at rest, until it ends; a
	// tool reads them by name ([GrantDataProvider]).
	Values []GrantValue
	// Claims are added to every access token of the grant, also after
	// refresh. A registered claim or one of the library's own is refused
	// with ErrReservedClaim. A value wrapped in [Sealed] is kept sealed
	// with the grant's data and travels encrypted in the token.
	Claims map[string]any
}

// Sealed marks a custom claim value the client must not read: the access
// token carries it encrypted (AES-256-GCM, under a key derived from the
// signing key, so only the authorization server's Provider opens it) and
// the verified AccessToken (mcpauth.CallerOf) shows it opened. A resource
// server that verifies tokens with public keys alone does not see it.
//
// Only a claim's top-level value may be Sealed (or *Sealed); one nested
// inside another value fails to encode rather than leak.
type Sealed struct {
	Value any
}

// MarshalJSON implements json.Marshaler by failing: a Sealed value is
// never encoded in the clear, so one the Provider did not take out (say,
// nested in another claim's value) is an error, not a leak.
func (Sealed) MarshalJSON() ([]byte, error) {
	return nil, errors.New("oauth: a Sealed claim value can only be a claim's top-level value")
}

// GrantValue is one named value kept with a grant.
type GrantValue struct {
	// Name identifies the value within its grant: 1 to 64 bytes of
	// letters, digits, '.', '_' and '-'.
	Name string
	// Value is the plaintext; the Provider seals it.
	Value []byte
	// TTL, when positive, is how long the value lives; zero means as long
	// as the grant.
	TTL time.Duration
}

// GrantEnd tells the host that a grant ended, with what it kept (see
// provider.Options.OnGrantEnd), so that it can, say, revoke an upstream
// key it held for the grant.
type GrantEnd struct {
	// Grant is the grant as it was before it ended.
	Grant *Grant
	// Reason is why: "revoked" (by the owner, the client or a replay),
	// "replaced" (by a new authorization of the same application),
	// "client_deleted", "subject_removed" or "expired" (swept: nothing
	// could use it any more).
	Reason string
	// Values are the grant's unexpired values, opened; nil when it had
	// none.
	Values map[string][]byte
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
	// Claims are the token's custom claims (see [GrantSetup.Claims]);
	// nil when it has none.
	Claims map[string]any
	// Roles are the roles the token's holder has, for a verifier that maps
	// them from the token (an external identity provider's role claims or
	// scopes); nil otherwise.
	Roles []string
	// Act is the token's RFC 8693 §4.1 act claim: who acts for Subject (a
	// client that exchanged a token, with "sub" its client ID), and
	// nested, who acted before; nil for a token the owner's client holds
	// itself.
	Act map[string]any
}

// TokenResponse is a successful token response (RFC 6749 §5.1).
type TokenResponse struct {
	AccessToken  string `json:"access_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int64  `json:"expires_in,omitempty"`
	RefreshToken string `json:"refresh_token,omitempty"`
	Scope        string `json:"scope,omitempty"`
	// IssuedTokenType is the RFC 8693 §2.2.1 issued_token_type of a token
	// exchange's response; empty otherwise.
	IssuedTokenType string `json:"issued_token_type,omitempty"`
}

// PendingStatus is the state of an authorization request waiting for, or
// given, the owner's decision (see [Approver]).
type PendingStatus string

// The states of a pending request. A request moves from PendingWaiting to
// PendingApproved or PendingDenied once, and from PendingApproved to
// PendingCompleted when its authorization code (or, for a device, its
// tokens) is issued.
const (
	PendingWaiting   PendingStatus = "pending"
	PendingApproved  PendingStatus = "approved"
	PendingDenied    PendingStatus = "denied"
	PendingCompleted PendingStatus = "completed"
)

// PendingRequest is an authorization request as the approval page and the
// console show it (see [Approver]).
type PendingRequest struct {
	// ID is the request's public identifier, safe to show and log.
	ID string
	// UserCode is the code in display form (four letters, a hyphen, four
	// letters, e.g. KXWT-BMRD); set only when the request was looked up by
	// its handle and code ([Approver.Poll]).
	UserCode string
	// Client is the requesting client. For a client identified by a
	// metadata document that could not be fetched just now it has only
	// its ID.
	Client *Client
	// AuthorizationParams are the request's; an RFC 8628 device request
	// has no RedirectURI.
	AuthorizationParams
	Status PendingStatus
	// Subject is the owner who approved; empty until then.
	Subject   string
	CreatedAt time.Time
	ExpiresAt time.Time
}
