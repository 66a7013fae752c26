// Package provider is the batteries-included [oauth.Provider]: it keeps its
// state in a [storage.Store], issues ES256 (or EdDSA) JWT access tokens with
// keys it generates and persists, and approves authorization requests by a
// short user code that the owner confirms out of band (a console, a terminal
// command, or [Provider.Approve] from Go), in the manner of the RFC 8628
// device flow. Besides oauth.Provider it implements every optional contract
// of the root package: oauth.DeviceProvider, oauth.Approver,
// oauth.Administrator and oauth.KeySetProvider.
//
// A user who wants a different backend replaces exactly this package: the
// HTTP layer (package mcpauth) only needs an oauth.Provider, and serves the
// approval page and the console for any Provider that is also an
// oauth.Approver.
package provider

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	oauth "github.com/mcp-oauth/oauth"
	"github.com/mcp-oauth/oauth/internal/jwtkeys"
	"github.com/mcp-oauth/oauth/internal/keywrap"
	"github.com/mcp-oauth/oauth/internal/tokencache"
	"github.com/mcp-oauth/oauth/storage"
)

// Default lifetimes.
const (
	DefaultAccessTokenTTL  = time.Hour
	DefaultRefreshTokenTTL = 30 * 24 * time.Hour
	DefaultCodeTTL         = 10 * time.Minute
	DefaultPendingTTL      = 10 * time.Minute
	DefaultClientTTL       = 90 * 24 * time.Hour
	// defaultApprovalPath is where Authorize sends the user's browser.
	defaultApprovalPath = "/device"
	// DefaultSigningAlgorithm is the JWS algorithm of new signing keys.
	DefaultSigningAlgorithm = jwtkeys.ES256
	// sweepInterval is how often expired rows are deleted, lazily.
	sweepInterval = 10 * time.Minute
	// keyReloadInterval bounds how often an unknown kid reloads the key set.
	keyReloadInterval = 10 * time.Second
	// keyRefreshInterval is how often a provider rereads the key set before
	// signing, so that a rotation made by another replica sharing the store
	// takes effect everywhere within it.
	keyRefreshInterval = 30 * time.Second
	// keyRetireMargin is added to the access-token lifetime before a retired
	// key is deleted: it covers replicas that signed with the key for up to
	// keyRefreshInterval after it was retired, and clock skew.
	keyRetireMargin = 5 * time.Minute
)

// Options configure a Provider. Only Issuer and Resource are required; every
// other zero value selects the documented default.
type Options struct {
	// Issuer is the authorization server's issuer identifier (RFC 8414 §2):
	// its public https (or loopback http) base URL, without query or fragment.
	// It is the "iss" of tokens and of authorization responses (RFC 9207).
	Issuer string
	// Resource is the canonical URL of the protected MCP endpoint (RFC 8707,
	// RFC 9728 "resource"); access tokens carry it as their audience.
	Resource string
	// Resources are the canonical URLs of further MCP endpoints that this
	// authorization server issues tokens for: each token carries the one
	// its authorization asked for as its audience, and LoadAccessToken
	// accepts any of Resource and Resources (the resource server compares
	// AccessToken.Resource with its own; mcpauth does).
	Resources []string
	// Clients are clients configured in code rather than registered: the
	// only ones that may use the client_credentials grant (RFC 6749 §4.4)
	// or token exchange (RFC 8693), which open registration refuses. See
	// StaticClient.
	Clients []StaticClient
	// AccessTokenTTL is the lifetime of access tokens; zero means 1 hour.
	AccessTokenTTL time.Duration
	// RefreshTokenTTL is the lifetime of each refresh token; zero means 30 days.
	RefreshTokenTTL time.Duration
	// CodeTTL is the lifetime of authorization codes; zero means 10 minutes.
	CodeTTL time.Duration
	// PendingTTL is how long a request waits for approval; zero means 10 minutes.
	PendingTTL time.Duration
	// ClientTTL is how long an unused client registration lives; each use
	// renews it. Zero means 90 days; negative means forever.
	ClientTTL time.Duration
	// SigningAlgorithm is "ES256" (the default) or "EdDSA" for new keys.
	SigningAlgorithm string
	// KeyEncryptionKeys, when set, encrypt private signing keys, the data
	// keys and sealed claims of grants, and the setups of pending requests
	// at rest with AES-256-GCM: each key is 32 bytes; the first encrypts new keys
	// and all of them decrypt. To rotate: give every replica the new KEK
	// (second, after the old one), then make it first everywhere, call
	// RotateKeys, and drop the old KEK once the keys it sealed are gone
	// (an access-token lifetime plus 5 minutes after they retire), and the
	// grants it sealed are gone: a grant keeps the KEK that sealed its data
	// key for its whole life, which refresh extends, and nothing re-wraps
	// it yet. Keys stored before a KEK was configured stay readable.
	KeyEncryptionKeys [][]byte
	// ClientMetadata resolves a client_id that is an https URL: a Client ID
	// Metadata Document (draft-ietf-oauth-client-id-metadata-document). It
	// returns the public client the document describes, or an error
	// wrapping oauth.ErrInvalidClient. Nil means such client IDs are
	// refused. mcpauth.Wrap sets an SSRF-safe, caching fetcher.
	ClientMetadata func(ctx context.Context, clientID string) (*oauth.Client, error)
	// DeviceVerification returns the RFC 8628 verification_uri and
	// verification_uri_complete of a device request with the given user
	// code: where the owner approves it. Nil means the approval page
	// (ApprovalPath), with ?user_code= for the complete URI. mcpauth.Wrap
	// points them at its console.
	DeviceVerification func(userCode string) (uri, complete string)
	// ApprovalPath is the path of the page that shows the user code,
	// relative to Issuer (appended to it, path included); zero means "/device".
	ApprovalPath string
	// VerifiedTokenCacheSize bounds how many verified access tokens the
	// Provider remembers, so that a token presented again costs a map
	// lookup instead of a signature check and a store read; zero means
	// DefaultVerifiedTokenCacheSize and a negative value turns the cache
	// off. With the cache, a revocation made through another Provider or
	// process sharing the store is honoured within 750 ms (see
	// LoadAccessToken).
	VerifiedTokenCacheSize int
	// TokenClaims, when set, returns custom claims for each access token
	// of grant g, issued or refreshed (a tenant, a role); g is the grant
	// as it was created (its LastUsedAt is not current). They are added
	// after the claims its setup step returned (g.Claims), and replace
	// those of the same name. A reserved name (see oauth.ErrReservedClaim)
	// or JSON over MaxCustomClaimsSize fails the token request with
	// server_error and a logged error naming the claim. An error fails it
	// the same way.
	TokenClaims func(ctx context.Context, g *oauth.Grant) (map[string]any, error)
	// OnGrantEnd, when set, is called once a grant has ended (revoked,
	// replaced, its client deleted, its subject removed, or swept as
	// expired), after the store has deleted its data, with what it kept:
	// for instance to revoke an upstream key. Delivery is at most once:
	// by the Provider that ended the grant (another process sharing the
	// store, such as a terminal command built on its own Provider, calls
	// its own hook, if it has one), after the change is committed, with a
	// context that is not cancelled; a crash in between loses the call.
	// It must not block for long (a sweep waits for it).
	OnGrantEnd func(ctx context.Context, e *oauth.GrantEnd)
	// MaxGrantValueSize bounds each value kept with a grant, in bytes;
	// zero means DefaultMaxGrantValueSize (16 KiB).
	MaxGrantValueSize int
	// MaxGrantValues bounds how many values a grant keeps; zero means
	// DefaultMaxGrantValues (16).
	MaxGrantValues int
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Logger receives operational events; nil means no logging. Tokens,
	// codes and secrets are never logged.
	Logger *slog.Logger
}

// Provider implements oauth.Provider on a storage.Store. Create it with New.
type Provider struct {
	store      storage.Store
	opts       Options
	approveURL string
	log        *slog.Logger

	keys       atomic.Pointer[keySet]
	keysAt     atomic.Int64 // p.now() of the last reload, UnixNano
	keysMu     sync.Mutex   // serializes reloads of keys
	reloadMu   sync.Mutex
	lastReload time.Time
	verifier   jwtkeys.Verifier
	lastSweep  atomic.Int64
	kek        *keywrap.Ring

	// The fast path of LoadAccessToken (cache.go); nil when
	// Options.VerifiedTokenCacheSize is negative.
	tokens    *tokencache.Cache[*verified] // verified tokens, Token empty
	grants    *grantStates
	start     time.Time // when New ran; the grant states' clock, elapsed, counts from it
	stopWatch func()

	static  map[string]*oauth.Client // Options.Clients, by ID (clients.go)
	devices devicePolls              // poll times of device requests (device.go)
	created createdGrants            // grants as created, for their claims (cache.go)
}

var (
	_ oauth.Provider       = (*Provider)(nil)
	_ oauth.KeySetProvider = (*Provider)(nil)
)

// New returns a Provider on store. It loads the signing keys, generating and
// persisting a first key when the store has none.
func New(ctx context.Context, store storage.Store, opts Options) (*Provider, error) {
	if store == nil {
		return nil, errors.New("provider: nil store")
	}
	if err := checkBaseURL("Issuer", opts.Issuer); err != nil {
		return nil, err
	}
	if err := checkBaseURL("Resource", opts.Resource); err != nil {
		return nil, err
	}
	opts.Resources = slices.Clone(opts.Resources)
	for i, r := range opts.Resources {
		if err := checkBaseURL(fmt.Sprintf("Resources[%d]", i), r); err != nil {
			return nil, err
		}
		if r == opts.Resource || slices.Index(opts.Resources, r) < i {
			return nil, fmt.Errorf("provider: Resources[%d] %q is named twice", i, r)
		}
	}
	static, err := staticClients(opts.Clients)
	if err != nil {
		return nil, err
	}
	setDefault(&opts.AccessTokenTTL, DefaultAccessTokenTTL)
	setDefault(&opts.RefreshTokenTTL, DefaultRefreshTokenTTL)
	setDefault(&opts.CodeTTL, DefaultCodeTTL)
	setDefault(&opts.PendingTTL, DefaultPendingTTL)
	setDefault(&opts.ClientTTL, DefaultClientTTL)
	if opts.SigningAlgorithm == "" {
		opts.SigningAlgorithm = DefaultSigningAlgorithm
	}
	if opts.SigningAlgorithm != jwtkeys.ES256 && opts.SigningAlgorithm != jwtkeys.EdDSA {
		return nil, fmt.Errorf("provider: unsupported SigningAlgorithm %q (want ES256 or EdDSA)", opts.SigningAlgorithm)
	}
	if opts.MaxGrantValueSize <= 0 {
		opts.MaxGrantValueSize = DefaultMaxGrantValueSize
	}
	if opts.MaxGrantValues <= 0 {
		opts.MaxGrantValues = DefaultMaxGrantValues
	}
	if opts.ApprovalPath == "" {
		opts.ApprovalPath = defaultApprovalPath
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ring, err := keywrap.NewRing(opts.KeyEncryptionKeys)
	if err != nil {
		return nil, fmt.Errorf("provider: %w", err)
	}
	p := &Provider{
		static:     static,
		kek:        ring,
		store:      store,
		opts:       opts,
		approveURL: strings.TrimSuffix(opts.Issuer, "/") + opts.ApprovalPath,
		log:        log,
	}
	p.verifier = jwtkeys.Verifier{
		Issuer:    opts.Issuer,
		Audiences: append([]string{opts.Resource}, opts.Resources...),
		Lookup:    p.lookupKey,
		Leeway:    5 * time.Second,
		Now:       opts.Now,
	}
	if err := p.reloadKeys(ctx); err != nil {
		return nil, err
	}
	if p.keys.Load().active == nil {
		if err := p.RotateKeys(ctx); err != nil {
			return nil, err
		}
	}
	if opts.VerifiedTokenCacheSize == 0 {
		opts.VerifiedTokenCacheSize = DefaultVerifiedTokenCacheSize
		p.opts.VerifiedTokenCacheSize = opts.VerifiedTokenCacheSize
	}
	if opts.VerifiedTokenCacheSize > 0 {
		p.tokens = tokencache.New[*verified](opts.VerifiedTokenCacheSize)
		p.grants = newGrantStates()
		p.start = time.Now()
		if err := p.pollOnce(p.elapsed()); err != nil {
			return nil, fmt.Errorf("provider: read revocation count: %w", err)
		}
		if w, ok := store.(storage.RevocationWatcher); ok {
			p.stopWatch = w.WatchRevocations(func() { p.maybePoll(p.elapsed(), true) })
		}
	}
	return p, nil
}

// Close stops the Provider's watch of the store for revocations, if it
// has one (storage.RevocationWatcher). It does not close the store. The
// Provider stays usable; revocations made elsewhere then reach it by
// polling only.
func (p *Provider) Close() error {
	if p.stopWatch != nil {
		p.stopWatch()
	}
	return nil
}

func setDefault(d *time.Duration, def time.Duration) {
	if *d == 0 {
		*d = def
	}
}

func checkBaseURL(name, s string) error {
	u, err := url.Parse(s)
	if err != nil || s == "" || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("provider: %s %q must be an absolute http(s) URL without query or fragment", name, s)
	}
	return nil
}

// Options returns the effective options, defaults filled in.
func (p *Provider) Options() Options { return p.opts }

func (p *Provider) now() time.Time { return p.opts.Now() }
