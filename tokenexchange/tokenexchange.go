// Package tokenexchange is the client side of OAuth 2.0 Token Exchange
// (RFC 8693): an MCP server that must call a downstream API on behalf of
// its caller exchanges the caller's access token (the subject token) for
// a token the downstream API accepts, at an external security token
// service (STS: Keycloak, Entra ID's on-behalf-of, Okta, zitadel, or this
// module's own authorization server):
//
//	te, err := tokenexchange.New(tokenexchange.Options{
//		TokenURL:     "https://sts.example.com/oauth/token",
//		ClientID:     "notes-mcp",
//		ClientSecret: os.Getenv("STS_SECRET"),
//	})
//	...
//	subject, _ := tokenexchange.SubjectFromRequest(req) // in a tool handler
//	tok, err := te.Exchange(ctx, &tokenexchange.Request{
//		SubjectToken: subject,
//		Audience:     []string{"https://calendar.example.com"},
//		Scopes:       []string{"calendar.read"},
//	})
//	// call the downstream API with "Authorization: Bearer " + tok.AccessToken
//
// What it does:
//
//   - the request of RFC 8693 §2.1, form-encoded, with the client
//     authenticated by exactly one of client_secret_basic or
//     client_secret_post (RFC 6749 §2.3.1), private_key_jwt (RFC 7523
//     §2.2, OpenID Connect Core 1.0 §9), or an mTLS client certificate
//     (RFC 8705 §2);
//   - the response of RFC 8693 §2.2.1, checked (a JSON object with
//     access_token, issued_token_type and token_type Bearer or N_A) and
//     read within MaxResponseBytes; error responses (RFC 8693 §2.2.2,
//     RFC 6749 §5.2) come back as an *Error;
//   - a cache of issued tokens, keyed by the SHA-256 of every request
//     parameter (the subject token included), kept until the issued
//     token's expiry less a margin, never past the subject token's own exp;
//     identical concurrent requests share one call to the STS.
//
// Tokens, secrets and assertions are never logged: log lines carry a short
// SHA-256 fingerprint of the subject token.
package tokenexchange

import (
	"crypto"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/mcp-oauth/oauth/internal/tokencache"
)

// GrantType is the grant_type of a token exchange request (RFC 8693 §2.1).
const GrantType = "urn:ietf:params:oauth:grant-type:token-exchange"

// Token type identifiers (RFC 8693 §3), the values of subject_token_type,
// actor_token_type, requested_token_type and issued_token_type.
const (
	// TokenTypeAccessToken: an OAuth 2.0 access token.
	TokenTypeAccessToken = "urn:ietf:params:oauth:token-type:access_token"
	// TokenTypeRefreshToken: an OAuth 2.0 refresh token.
	TokenTypeRefreshToken = "urn:ietf:params:oauth:token-type:refresh_token"
	// TokenTypeIDToken: an OpenID Connect ID Token.
	TokenTypeIDToken = "urn:ietf:params:oauth:token-type:id_token"
	// TokenTypeJWT: a JWT (RFC 7519), of whatever use.
	TokenTypeJWT = "urn:ietf:params:oauth:token-type:jwt"
	// TokenTypeSAML1 and TokenTypeSAML2: base64url-encoded SAML assertions.
	TokenTypeSAML1 = "urn:ietf:params:oauth:token-type:saml1"
	TokenTypeSAML2 = "urn:ietf:params:oauth:token-type:saml2"
)

// Client authentication methods (the token_endpoint_auth_method values of
// RFC 7591 §2 and RFC 8705 §2.1.1, §2.2.1), for Options.AuthMethod.
const (
	// AuthClientSecretBasic: client_id and client_secret in an HTTP Basic
	// Authorization header, each form-urlencoded first (RFC 6749 §2.3.1).
	AuthClientSecretBasic = "client_secret_basic"
	// AuthClientSecretPost: client_id and client_secret in the form body
	// (RFC 6749 §2.3.1).
	AuthClientSecretPost = "client_secret_post"
	// AuthPrivateKeyJWT: a JWT signed by the client's private key in
	// client_assertion (RFC 7523 §2.2, OpenID Connect Core 1.0 §9).
	AuthPrivateKeyJWT = "private_key_jwt"
	// AuthTLSClient: a PKI-issued TLS client certificate (RFC 8705 §2.1).
	AuthTLSClient = "tls_client_auth"
	// AuthSelfSignedTLSClient: a self-signed TLS client certificate
	// registered with the STS (RFC 8705 §2.2).
	AuthSelfSignedTLSClient = "self_signed_tls_client_auth"
)

// Defaults and bounds.
const (
	// DefaultCacheSize bounds the cache of issued tokens.
	DefaultCacheSize = 1000
	// DefaultExpiryMargin is how long before its expiry an issued token
	// stops being served from the cache, so that a caller does not send a
	// token that expires on the way to the downstream API.
	DefaultExpiryMargin = 30 * time.Second
	// DefaultAssertionLifetime is the lifetime of a private_key_jwt
	// client assertion (its exp less its iat).
	DefaultAssertionLifetime = 60 * time.Second
	// DefaultTimeout is the timeout of the HTTP client used when
	// Options.HTTPClient is nil.
	DefaultTimeout = 10 * time.Second
	// MaxResponseBytes bounds a response of the STS (and a discovery
	// document); a longer one is refused with a *ResponseError.
	MaxResponseBytes = 256 << 10
	// MaxTokenBytes bounds a subject or actor token this client sends.
	MaxTokenBytes = 64 << 10
)

// Options configure [New]. ClientID, one of TokenURL and Issuer, and
// exactly one client credential (ClientSecret, PrivateKey, or an AuthMethod
// of AuthTLSClient or AuthSelfSignedTLSClient) are required; every other
// zero value selects the documented default.
type Options struct {
	// TokenURL is the STS's token endpoint (RFC 6749 §3.2), to which the
	// exchange is posted. It must be https, except on a loopback host.
	// Set it or Issuer.
	TokenURL string
	// Issuer, when TokenURL is empty, is the STS's issuer identifier; the
	// token endpoint is then the token_endpoint of its RFC 8414 metadata
	// (/.well-known/oauth-authorization-server), else of its OpenID
	// Connect Discovery 1.0 document (/.well-known/openid-configuration),
	// whose issuer must equal Issuer (RFC 8414 §3.3). With a TLS client
	// AuthMethod, mtls_endpoint_aliases.token_endpoint (RFC 8705 §5) is
	// preferred. Discovery happens on the first Exchange (or
	// [Client.Endpoint]) and its answer is kept; a failure is not, so the
	// next call tries again.
	Issuer string
	// ClientID (client_id) identifies this server to the STS. Required.
	ClientID string
	// ClientSecret is the client's secret, for client_secret_basic (the
	// default) or client_secret_post (RFC 6749 §2.3.1).
	ClientSecret string
	// PrivateKey signs private_key_jwt client assertions (RFC 7523 §2.2,
	// OpenID Connect Core 1.0 §9): an *rsa.PrivateKey (2048 bits or more),
	// an *ecdsa.PrivateKey on P-256, an ed25519.PrivateKey, or any
	// crypto.Signer whose Public() is one of those (a KMS or HSM key).
	// Each request carries a fresh assertion: header alg, kid (KeyID)
	// and typ "JWT"; claims iss and sub the ClientID, aud
	// (AssertionAudience), a random jti, iat now and exp
	// AssertionLifetime later.
	PrivateKey crypto.Signer
	// KeyID is the kid header of client assertions: the key's kid in the
	// JWK Set registered with the STS. Empty sends no kid.
	KeyID string
	// Algorithm is the JWS alg of client assertions: "RS256", "PS256",
	// "ES256" or "EdDSA". Empty means RS256 for an RSA key, ES256 for a
	// P-256 key and EdDSA for an Ed25519 key.
	Algorithm string
	// AssertionLifetime is how long a client assertion is valid; zero
	// means DefaultAssertionLifetime. Each request signs a fresh one.
	AssertionLifetime time.Duration
	// AssertionAudience is the aud of client assertions; empty means the
	// token endpoint URL, as RFC 7523 §3 and OpenID Connect Core 1.0 §9
	// have it. Set it to the STS's issuer identifier for an STS that
	// wants that (as draft-ietf-oauth-rfc7523bis recommends).
	AssertionAudience string
	// AuthMethod selects the client authentication: AuthClientSecretBasic
	// (the default with ClientSecret) or AuthClientSecretPost;
	// AuthPrivateKeyJWT (the default, and only choice, with PrivateKey);
	// AuthTLSClient or AuthSelfSignedTLSClient for mutual TLS (RFC 8705
	// §2), which need no secret or key here: HTTPClient's transport
	// presents the client certificate in the TLS handshake, and the form
	// carries client_id (RFC 8705 §2, as the RFC requires).
	AuthMethod string
	// HTTPClient sends the requests; nil means a client with
	// DefaultTimeout. With mutual TLS it is required, and its transport's
	// TLSClientConfig must carry the certificate (Certificates or
	// GetClientCertificate).
	HTTPClient *http.Client
	// Now is the clock of assertions and of the cache; nil means
	// time.Now.
	Now func() time.Time
	// Logger receives exchanges (debug) and failures (warn); nil discards
	// them. Tokens, secrets and assertions are never logged.
	Logger *slog.Logger
	// CacheSize bounds the number of issued tokens kept; zero means
	// DefaultCacheSize, negative turns the cache off (every Exchange calls
	// the STS; identical concurrent calls still share one).
	CacheSize int
	// ExpiryMargin is how long before its expiry a cached token stops
	// being served; zero means DefaultExpiryMargin, negative means none.
	ExpiryMargin time.Duration
}

// Client exchanges tokens at one STS as one client. It is safe for
// concurrent use.
type Client struct {
	opts   Options
	auth   authenticator
	hc     *http.Client // discovery
	now    func() time.Time
	log    *slog.Logger
	margin time.Duration
	cache  *tokencache.Cache[*Token] // nil when off
	// noRedirect is hc refusing redirects: a token endpoint has no
	// reason to redirect, and following a 307 would post the subject
	// token and the client's credentials elsewhere.
	noRedirect *http.Client

	mu       sync.Mutex
	endpoint string                // the token endpoint, once known
	flights  map[flightKey]*flight // guarded by mu
	discover chan struct{}         // a 1-slot semaphore: one discovery at a time
}

// New checks opts and returns a Client, or an error naming what is
// misconfigured: a server that cannot authenticate to its STS must not
// start. New does no I/O; with Issuer, call [Client.Endpoint] to discover
// the token endpoint at startup.
func New(opts Options) (*Client, error) {
	if opts.ClientID == "" {
		return nil, errors.New("tokenexchange: ClientID is required")
	}
	c := &Client{opts: opts, flights: map[flightKey]*flight{}, discover: make(chan struct{}, 1)}
	switch {
	case opts.TokenURL != "" && opts.Issuer != "":
		return nil, errors.New("tokenexchange: set TokenURL or Issuer, not both")
	case opts.TokenURL != "":
		if err := checkURL(opts.TokenURL); err != nil {
			return nil, fmt.Errorf("tokenexchange: TokenURL: %w", err)
		}
		c.endpoint = opts.TokenURL
	case opts.Issuer != "":
		if err := checkIssuer(opts.Issuer); err != nil {
			return nil, fmt.Errorf("tokenexchange: Issuer: %w", err)
		}
	default:
		return nil, errors.New("tokenexchange: TokenURL or Issuer is required")
	}
	if opts.AssertionAudience != "" && opts.PrivateKey == nil {
		return nil, errors.New("tokenexchange: AssertionAudience is for private_key_jwt; PrivateKey is not set")
	}
	var err error
	if c.auth, err = newAuthenticator(&opts); err != nil {
		return nil, fmt.Errorf("tokenexchange: %w", err)
	}
	if c.hc = opts.HTTPClient; c.hc == nil {
		c.hc = &http.Client{Timeout: DefaultTimeout}
	}
	nr := *c.hc
	nr.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	c.noRedirect = &nr
	if c.now = opts.Now; c.now == nil {
		c.now = time.Now
	}
	if c.log = opts.Logger; c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	switch m := opts.ExpiryMargin; {
	case m == 0:
		c.margin = DefaultExpiryMargin
	case m > 0:
		c.margin = m
	}
	switch n := opts.CacheSize; {
	case n == 0:
		c.cache = tokencache.New[*Token](DefaultCacheSize)
	case n > 0:
		c.cache = tokencache.New[*Token](n)
	}
	return c, nil
}

// checkURL requires an absolute https URL without fragment or userinfo,
// or http on a loopback host (tests, development).
func checkURL(s string) error {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" || u.Fragment != "" || u.User != nil {
		return fmt.Errorf("%q is not an absolute URL without fragment or userinfo", s)
	}
	switch {
	case u.Scheme == "https":
		return nil
	case u.Scheme == "http" && isLoopback(u.Hostname()):
		return nil
	}
	return fmt.Errorf("%q is not an https URL (http is for loopback hosts only)", s)
}

// fingerprint is what log lines say of a token: the first 6 bytes of its
// SHA-256, in hex.
func fingerprint(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:6])
}
