// Package provider is the batteries-included [oauth.Provider]: it keeps its
// state in a [storage.Store], issues ES256 (or EdDSA) JWT access tokens with
// keys it generates and persists, and approves authorization requests by a
// short user code that the owner confirms out of band (a console, a terminal
// command, or [Provider.Approve] from Go), in the manner of the RFC 8628
// device flow.
//
// A user who wants a different backend replaces exactly this package: the
// HTTP layer (package mcpauth) only needs an oauth.Provider.
package provider

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/modelcontextprotocol/go-sdk/oauthex"

	oauth "github.com/mcp-oauth/oauth"
	"github.com/mcp-oauth/oauth/internal/jwtkeys"
	"github.com/mcp-oauth/oauth/internal/keywrap"
	"github.com/mcp-oauth/oauth/internal/redirect"
	"github.com/mcp-oauth/oauth/internal/secret"
	"github.com/mcp-oauth/oauth/storage"
)

// Default lifetimes.
const (
	DefaultAccessTokenTTL  = time.Hour
	DefaultRefreshTokenTTL = 30 * 24 * time.Hour
	DefaultCodeTTL         = 10 * time.Minute
	DefaultPendingTTL      = 10 * time.Minute
	DefaultClientTTL       = 90 * 24 * time.Hour
	// DefaultApprovalPath is where Authorize sends the user's browser.
	DefaultApprovalPath = "/device"
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
	// KeyEncryptionKeys, when set, encrypt private signing keys at rest
	// with AES-256-GCM: each key is 32 bytes; the first encrypts new keys
	// and all of them decrypt. To rotate: give every replica the new KEK
	// (second, after the old one), then make it first everywhere, call
	// RotateKeys, and drop the old KEK once the keys it sealed are gone
	// (an access-token lifetime plus 5 minutes after they retire). Keys
	// stored before a KEK was configured stay readable.
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
	tokens    *verifiedTokens
	grants    *grantStates
	elapsed   func() time.Duration // monotonic clock of the grant states
	stopWatch func()

	devices devicePolls // poll times of device requests (device.go)
}

var _ oauth.Provider = (*Provider)(nil)

type keySet struct {
	active *jwtkeys.Key
	byID   map[string]*jwtkeys.Key
	all    []*jwtkeys.Key
}

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
	if opts.ApprovalPath == "" {
		opts.ApprovalPath = DefaultApprovalPath
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
		kek:        ring,
		store:      store,
		opts:       opts,
		approveURL: strings.TrimSuffix(opts.Issuer, "/") + opts.ApprovalPath,
		log:        log,
	}
	p.verifier = jwtkeys.Verifier{
		Issuer:   opts.Issuer,
		Audience: opts.Resource,
		Lookup:   p.lookupKey,
		Leeway:   5 * time.Second,
		Now:      opts.Now,
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
		p.tokens = newVerifiedTokens(opts.VerifiedTokenCacheSize)
		p.grants = newGrantStates()
		start := time.Now()
		p.elapsed = func() time.Duration { return time.Since(start) }
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

// Store returns the provider's store.
func (p *Provider) Store() storage.Store { return p.store }

func (p *Provider) now() time.Time { return p.opts.Now() }

// ---- keys ----

// reloadKeys rereads the key set from the store. Reloads are serialized, so
// a slow read can never replace the result of a later one (such as the
// reload that follows RotateKeys).
func (p *Provider) reloadKeys(ctx context.Context) error {
	p.keysMu.Lock()
	defer p.keysMu.Unlock()
	return p.reloadKeysLocked(ctx)
}

func (p *Provider) reloadKeysLocked(ctx context.Context) error {
	recs, err := p.store.ListKeys(ctx)
	if err != nil {
		return fmt.Errorf("provider: load keys: %w", err)
	}
	ks := &keySet{byID: make(map[string]*jwtkeys.Key, len(recs))}
	for _, r := range recs {
		der, err := p.kek.Open(r.ID, r.Private)
		if err != nil && !r.RetiredAt.IsZero() {
			// A retired key sealed with a KEK this replica lacks (during a
			// KEK rollout) only verifies old tokens; go on without it.
			p.log.Warn("mcpauth: skipping a retired signing key that does not decrypt", "kid", r.ID, "err", err)
			continue
		}
		if err != nil {
			return fmt.Errorf("provider: %w", err)
		}
		plain := *r
		plain.Private = der
		k, err := jwtkeys.Parse(&plain)
		if err != nil {
			return fmt.Errorf("provider: %w", err)
		}
		ks.byID[k.ID] = k
		ks.all = append(ks.all, k)
		if k.RetiredAt.IsZero() && (ks.active == nil) {
			ks.active = k
		}
	}
	if old := p.keys.Load(); old != nil && p.tokens != nil {
		for id := range old.byID {
			if ks.byID[id] == nil {
				// Tokens signed with a deleted key must not outlive it in
				// the cache.
				p.tokens.clear()
				break
			}
		}
	}
	p.keys.Store(ks)
	p.keysAt.Store(p.now().UnixNano())
	return nil
}

// freshKeys returns the key set, rereading it first when it is older than
// keyRefreshInterval, so that a rotation made by another replica sharing
// the store is used for signing and published in the JWKS within that
// interval. One caller rereads while the others wait and then reuse its
// result; a failed reread keeps the current set.
func (p *Provider) freshKeys(ctx context.Context) *keySet {
	stale := func() bool { return p.now().UnixNano()-p.keysAt.Load() > int64(keyRefreshInterval) }
	if stale() {
		p.keysMu.Lock()
		if stale() {
			if err := p.reloadKeysLocked(ctx); err != nil {
				p.log.Error("mcpauth: reload signing keys", "err", err)
				p.keysAt.Store(p.now().UnixNano()) // do not retry on every request
			}
		}
		p.keysMu.Unlock()
	}
	return p.keys.Load()
}

func (p *Provider) lookupKey(kid string) *jwtkeys.Key {
	return p.keys.Load().byID[kid]
}

// RotateKeys generates a new signing key and makes it the active one. Older
// keys keep verifying the tokens they signed; [Provider.Sweep] deletes a
// retired key once every token it signed has expired.
func (p *Provider) RotateKeys(ctx context.Context) error {
	rec, err := jwtkeys.Generate(p.opts.SigningAlgorithm, p.now())
	if err != nil {
		return fmt.Errorf("provider: %w", err)
	}
	if rec.Private, err = p.kek.Seal(rec.ID, rec.Private); err != nil {
		return fmt.Errorf("provider: seal key: %w", err)
	}
	if err := p.store.AddKey(ctx, rec); err != nil {
		return fmt.Errorf("provider: store key: %w", err)
	}
	p.log.Info("mcpauth: new signing key active", "kid", rec.ID, "alg", rec.Algorithm)
	return p.reloadKeys(ctx)
}

// JWKS returns the JWK Set (RFC 7517 §5) of every key that may still verify
// a live token.
func (p *Provider) JWKS(ctx context.Context) ([]byte, error) {
	return jwtkeys.MarshalJWKS(p.freshKeys(ctx).all)
}

// ---- clients ----

// GetClient implements oauth.Provider.
//
// A client_id that is an https URL names a Client ID Metadata Document; it
// is resolved with Options.ClientMetadata, or refused when that is nil.
//
// Registered clients are remembered like grant states (see
// LoadAccessToken): a deletion through another Provider or process
// sharing the store is seen within 750 ms. The slices of the Client
// returned are shared with that memory and must not be modified.
func (p *Provider) GetClient(ctx context.Context, clientID string) (*oauth.Client, error) {
	if strings.HasPrefix(clientID, "https://") {
		if p.opts.ClientMetadata == nil {
			return nil, oauth.ErrInvalidClient.WithDescription("this server does not accept client ID metadata documents")
		}
		return p.opts.ClientMetadata(ctx, clientID)
	}
	if clientID == "" || len(clientID) > 256 {
		return nil, oauth.ErrInvalidClient.WithDescription("unknown client")
	}
	now := p.now()
	var gen uint64
	if p.grants != nil {
		elapsed := p.elapsed()
		c := p.grants.client(clientID, elapsed, now)
		p.maybePoll(elapsed, false)
		if c != nil {
			return c, nil
		}
		gen = p.grants.generation()
	}
	c, err := p.store.GetClient(ctx, clientID, now)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, oauth.ErrInvalidClient.WithDescription("unknown client")
	}
	if err != nil {
		return nil, fmt.Errorf("provider: get client: %w", err)
	}
	if p.grants != nil {
		cp := *c
		p.grants.setClient(&cp, gen)
	}
	return c, nil
}

// RegisterClient implements oauth.Provider. A client with
// token_endpoint_auth_method "none" is public; any other method receives a
// 256-bit secret, returned once and stored as its SHA-256.
func (p *Provider) RegisterClient(ctx context.Context, md *oauthex.ClientRegistrationMetadata) (*oauthex.ClientRegistrationResponse, error) {
	p.maybeSweep()
	now := p.now()
	c := &oauth.Client{
		ClientRegistrationMetadata: *md,
		ID:                         uuid.NewString(),
		IssuedAt:                   now.Truncate(time.Second),
	}
	if p.opts.ClientTTL > 0 {
		c.ExpiresAt = now.Add(p.opts.ClientTTL)
	}
	var plain string
	if md.TokenEndpointAuthMethod != oauth.AuthMethodNone {
		plain = secret.New(secret.PrefixClientSecret)
		c.SecretHash = secret.Hash(plain)
	}
	if err := p.store.CreateClient(ctx, c); err != nil {
		return nil, fmt.Errorf("provider: register client: %w", err)
	}
	p.log.Info("mcpauth: client registered", "client_id", c.ID, "client_name", md.ClientName, "auth_method", md.TokenEndpointAuthMethod)
	return &oauthex.ClientRegistrationResponse{
		ClientRegistrationMetadata: *md,
		ClientID:                   c.ID,
		ClientSecret:               plain,
		ClientIDIssuedAt:           c.IssuedAt,
	}, nil
}

// AuthenticateClient checks a presented client secret against the stored
// hash in constant time.
func AuthenticateClient(c *oauth.Client, presented string) bool {
	if c.SecretHash == "" {
		return false
	}
	return secret.Equal(secret.Hash(presented), c.SecretHash)
}

// ListClients returns the live registered clients, oldest first.
func (p *Provider) ListClients(ctx context.Context) ([]*oauth.Client, error) {
	return p.store.ListClients(ctx, p.now())
}

// DeleteClient deletes a client and revokes all of its grants.
func (p *Provider) DeleteClient(ctx context.Context, clientID string) error {
	err := p.store.DeleteClient(ctx, clientID, p.now())
	if p.grants != nil {
		p.grants.forgetActive() // whatever err says, grants may have gone
	}
	if err != nil {
		return fmt.Errorf("provider: delete client: %w", err)
	}
	p.log.Info("mcpauth: client deleted", "client_id", clientID)
	return nil
}

// ---- authorization and approval ----

// Authorize implements oauth.Provider: it records the request as pending
// and returns the approval page's URL, which carries a secret handle for this
// browser and the user code to show.
func (p *Provider) Authorize(ctx context.Context, client *oauth.Client, params *oauth.AuthorizationParams) (string, error) {
	handle := secret.New(secret.PrefixHandle)
	rec, code, err := p.createPending(ctx, params, secret.Hash(handle), "")
	if err != nil {
		return "", err
	}
	p.log.Info("mcpauth: authorization pending", "request_id", rec.ID, "client_id", client.ID)
	return p.approveURL + "?" + url.Values{"request": {handle}, "user_code": {code}}.Encode(), nil
}

// createPending stores a new waiting request with a fresh user code,
// drawing again (up to three times) when the code collides with a live
// one, and returns it with the code in display form.
func (p *Provider) createPending(ctx context.Context, params *oauth.AuthorizationParams, handleHash, deviceCodeHash string) (*storage.PendingRecord, string, error) {
	p.maybeSweep()
	now := p.now()
	for attempt := 0; ; attempt++ {
		code := secret.NewUserCode()
		rec := &storage.PendingRecord{
			ID:                  uuid.NewString(),
			HandleHash:          handleHash,
			UserCodeHash:        secret.Hash(secret.NormalizeUserCode(code)),
			DeviceCodeHash:      deviceCodeHash,
			AuthorizationParams: *params,
			Status:              oauth.PendingWaiting,
			CreatedAt:           now,
			ExpiresAt:           now.Add(p.opts.PendingTTL),
		}
		err := p.store.CreatePending(ctx, rec)
		if errors.Is(err, storage.ErrConflict) && attempt < 3 {
			continue // a user code collision among live requests; draw again
		}
		if err != nil {
			return nil, "", fmt.Errorf("provider: store pending request: %w", err)
		}
		return rec, code, nil
	}
}

// Pending is an authorization request as the approval UX shows it.
type Pending struct {
	// ID is the request's public identifier.
	ID string
	// UserCode is the code in display form (four letters, a hyphen, four
	// letters, e.g. KXWT-BMRD); set only when the request was looked up by
	// its handle and code.
	UserCode string
	Client   *oauth.Client
	oauth.AuthorizationParams
	// Status is oauth.PendingWaiting, PendingApproved, PendingDenied or
	// PendingCompleted.
	Status    string
	Subject   string
	CreatedAt time.Time
	ExpiresAt time.Time
}

// ErrUnknownRequest is returned for a handle or user code that matches no
// live request.
var ErrUnknownRequest = errors.New("provider: no such pending request (unknown or expired)")

// ErrAlreadyDecided is returned when approving or denying a request that
// was already approved or denied.
var ErrAlreadyDecided = errors.New("provider: request already decided")

func (p *Provider) pendingView(ctx context.Context, rec *storage.PendingRecord) (*Pending, error) {
	c, err := p.GetClient(ctx, rec.ClientID)
	if err != nil && strings.HasPrefix(rec.ClientID, "https://") {
		// The document could not be fetched just now (or this process has
		// no resolver, like the example's terminal commands): the request
		// was validated when it was made, so show it by its URL alone.
		c, err = &oauth.Client{ID: rec.ClientID}, nil
	}
	if errors.Is(err, oauth.ErrInvalidClient) {
		return nil, ErrUnknownRequest
	}
	if err != nil {
		return nil, fmt.Errorf("provider: %w", err)
	}
	return &Pending{ID: rec.ID, Client: c, AuthorizationParams: rec.AuthorizationParams, Status: rec.Status,
		Subject: rec.Subject, CreatedAt: rec.CreatedAt, ExpiresAt: rec.ExpiresAt}, nil
}

// PendingByHandle returns the request that the browser holding handle made,
// provided userCode is the code issued with it.
func (p *Provider) PendingByHandle(ctx context.Context, handle, userCode string) (*Pending, error) {
	norm := secret.NormalizeUserCode(userCode)
	if !secret.WellFormed(secret.PrefixHandle, handle) || norm == "" {
		return nil, ErrUnknownRequest
	}
	rec, err := p.store.GetPendingByHandle(ctx, secret.Hash(handle), p.now())
	if errors.Is(err, storage.ErrNotFound) {
		return nil, ErrUnknownRequest
	}
	if err != nil {
		return nil, fmt.Errorf("provider: %w", err)
	}
	if !secret.Equal(secret.Hash(norm), rec.UserCodeHash) {
		return nil, ErrUnknownRequest
	}
	v, err := p.pendingView(ctx, rec)
	if err != nil {
		return nil, err
	}
	v.UserCode = secret.DisplayUserCode(norm)
	return v, nil
}

// PendingByUserCode returns the live request with the given user code
// (case-insensitive, hyphen optional).
func (p *Provider) PendingByUserCode(ctx context.Context, userCode string) (*Pending, error) {
	norm := secret.NormalizeUserCode(userCode)
	if norm == "" {
		return nil, ErrUnknownRequest
	}
	rec, err := p.store.GetPendingByUserCode(ctx, secret.Hash(norm), p.now())
	if errors.Is(err, storage.ErrNotFound) {
		return nil, ErrUnknownRequest
	}
	if err != nil {
		return nil, fmt.Errorf("provider: %w", err)
	}
	return p.pendingView(ctx, rec)
}

// ListPending returns the requests waiting for a decision, oldest first.
func (p *Provider) ListPending(ctx context.Context) ([]*Pending, error) {
	recs, err := p.store.ListPending(ctx, p.now())
	if err != nil {
		return nil, fmt.Errorf("provider: %w", err)
	}
	out := make([]*Pending, 0, len(recs))
	for _, r := range recs {
		v, err := p.pendingView(ctx, r)
		if errors.Is(err, ErrUnknownRequest) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

// Approve approves the waiting request with the given user code on behalf
// of subject, the resource owner. The browser that made the request then
// receives an authorization code. It returns the approved request.
func (p *Provider) Approve(ctx context.Context, userCode, subject string) (*Pending, error) {
	if subject == "" || len(subject) > 255 {
		return nil, errors.New("provider: approve: subject must be 1 to 255 bytes")
	}
	return p.decide(ctx, userCode, oauth.PendingApproved, subject)
}

// Deny denies the waiting request with the given user code; the browser
// that made it is sent back to the client with error=access_denied.
func (p *Provider) Deny(ctx context.Context, userCode string) (*Pending, error) {
	return p.decide(ctx, userCode, oauth.PendingDenied, "")
}

func (p *Provider) decide(ctx context.Context, userCode, status, subject string) (*Pending, error) {
	v, err := p.PendingByUserCode(ctx, userCode)
	if err != nil {
		return nil, err
	}
	switch err := p.store.DecidePending(ctx, v.ID, status, subject, p.now()); {
	case errors.Is(err, storage.ErrConflict):
		return nil, ErrAlreadyDecided
	case errors.Is(err, storage.ErrNotFound):
		return nil, ErrUnknownRequest
	case err != nil:
		return nil, fmt.Errorf("provider: decide: %w", err)
	}
	v.Status, v.Subject = status, subject
	p.log.Info("mcpauth: authorization "+status, "request_id", v.ID, "client_id", v.ClientID, "subject", subject)
	return v, nil
}

// ErrNotDecided is returned by Complete while the request still waits.
var ErrNotDecided = errors.New("provider: request not yet decided")

// ErrCompleted is returned by Complete when the request already produced
// its authorization response (a reload of a finished page).
var ErrCompleted = errors.New("provider: request already completed")

// Complete finishes the request that the browser holding handle made, once
// it is decided: for an approved request it creates the grant and a
// single-use authorization code and returns the client's redirect URI with
// code, state and iss (RFC 9207); for a denied one, the redirect URI with
// error=access_denied. It returns ErrNotDecided while the request waits and
// ErrCompleted if a code was already issued for it.
func (p *Provider) Complete(ctx context.Context, handle, userCode string) (string, error) {
	v, err := p.PendingByHandle(ctx, handle, userCode)
	if err != nil {
		return "", err
	}
	resp := url.Values{"state": {v.State}, "iss": {p.opts.Issuer}}
	switch v.Status {
	case oauth.PendingWaiting:
		return "", ErrNotDecided
	case oauth.PendingCompleted:
		return "", ErrCompleted
	case oauth.PendingDenied:
		resp.Set("error", oauth.ErrAccessDenied.Code)
		resp.Set("error_description", "the owner denied the request")
		return redirect.With(v.RedirectURI, resp)
	}
	ac, grant, err := p.completePending(ctx, v.ID, v.Subject, v.AuthorizationParams, p.now())
	switch {
	case errors.Is(err, storage.ErrConflict):
		return "", ErrCompleted
	case errors.Is(err, storage.ErrNotFound):
		return "", ErrUnknownRequest
	case err != nil:
		return "", fmt.Errorf("provider: complete: %w", err)
	}
	p.log.Info("mcpauth: authorization code issued", "request_id", v.ID, "client_id", v.ClientID, "grant_id", grant.ID)
	resp.Set("code", ac.Code)
	return redirect.With(v.RedirectURI, resp)
}

// completePending turns an approved request into its grant and an
// authorization code, stored (hashed) in one CompletePending, and returns
// the code with its value and the grant. Errors are the store's.
func (p *Provider) completePending(ctx context.Context, id, subject string, params oauth.AuthorizationParams, now time.Time) (*oauth.AuthorizationCode, *oauth.Grant, error) {
	code := secret.New(secret.PrefixCode)
	grant := &oauth.Grant{
		ID: uuid.NewString(), ClientID: params.ClientID, Subject: subject,
		Scopes: params.Scopes, Resource: params.Resource, RedirectURI: params.RedirectURI, CreatedAt: now, LastUsedAt: now,
	}
	rec := &storage.CodeRecord{
		Hash: secret.Hash(code),
		AuthorizationCode: oauth.AuthorizationCode{
			GrantID: grant.ID, Subject: subject, ExpiresAt: now.Add(p.opts.CodeTTL),
			AuthorizationParams: params,
		},
	}
	if err := p.store.CompletePending(ctx, id, grant, rec, now); err != nil {
		return nil, nil, err
	}
	ac := rec.AuthorizationCode
	ac.Code = code
	return &ac, grant, nil
}

// replaceOlderGrants revokes, once the new grant's code has been redeemed,
// the subject's other active grants for the
// same application, so that clients that register again and re-authorize
// (Claude does, on invalid_client) do not pile up grants. The same
// application is: the same client_id, or a registered client with the same
// client_name and redirect URIs (a re-registration). For a client identified
// by a metadata document, which many installations share, only grants for
// the same redirect URI are replaced. Grants whose codes are not redeemed
// yet count too: of two authorizations in flight, the later redemption
// wins. Failures are logged: the new grant stands either way.
func (p *Provider) replaceOlderGrants(ctx context.Context, g *oauth.Grant, c *oauth.Client) {
	grants, err := p.store.ListSubjectGrants(ctx, g.Subject)
	if err != nil {
		p.log.Error("mcpauth: list grants to replace", "err", err)
		return
	}
	cimd := strings.HasPrefix(g.ClientID, "https://")
	for _, o := range grants {
		if o.ID == g.ID || o.Subject != g.Subject {
			continue
		}
		same := o.ClientID == g.ClientID
		if cimd {
			same = same && sameInstallation(o.RedirectURI, g.RedirectURI)
		} else if !same && !strings.HasPrefix(o.ClientID, "https://") {
			oc, err := p.store.GetClient(ctx, o.ClientID, p.now())
			same = err == nil && oc.ClientName == c.ClientName && slices.Equal(oc.RedirectURIs, c.RedirectURIs)
		}
		if !same {
			continue
		}
		if err := p.revokeGrant(ctx, o.ID); err != nil && !errors.Is(err, storage.ErrNotFound) {
			p.log.Error("mcpauth: revoke replaced grant", "grant_id", o.ID, "err", err)
			continue
		}
		p.log.Info("mcpauth: grant replaced by a new authorization", "grant_id", o.ID, "new_grant_id", g.ID, "client_id", g.ClientID)
	}
}

// sameInstallation compares the redirect URIs of two grants of one
// metadata-document client; loopback URIs match whatever their ports, since
// native apps pick a new port each time (RFC 8252 §7.3).
func sameInstallation(a, b string) bool {
	if a == b {
		return true
	}
	return redirect.Match([]string{a}, b)
}

// ---- codes and tokens ----

// LoadAuthorizationCode implements oauth.Provider. A code that was already
// redeemed revokes its grant (OAuth 2.1 §4.1.3).
func (p *Provider) LoadAuthorizationCode(ctx context.Context, code string) (*oauth.AuthorizationCode, error) {
	if !secret.WellFormed(secret.PrefixCode, code) {
		return nil, oauth.ErrInvalidGrant.WithDescription("invalid authorization code")
	}
	rec, err := p.store.GetCode(ctx, secret.Hash(code), p.now())
	if errors.Is(err, storage.ErrNotFound) {
		return nil, oauth.ErrInvalidGrant.WithDescription("invalid or expired authorization code")
	}
	if err != nil {
		return nil, fmt.Errorf("provider: get code: %w", err)
	}
	if !rec.ConsumedAt.IsZero() {
		p.revokeForReplay(ctx, rec.GrantID, "authorization code replayed")
		return nil, oauth.ErrInvalidGrant.WithDescription("authorization code already used")
	}
	ac := rec.AuthorizationCode
	ac.Code = code
	return &ac, nil
}

func (p *Provider) revokeForReplay(ctx context.Context, grantID, why string) {
	if err := p.revokeGrant(ctx, grantID); err != nil && !errors.Is(err, storage.ErrNotFound) {
		p.log.Error("mcpauth: revoking grant after replay failed", "grant_id", grantID, "err", err)
		return
	}
	p.log.Warn("mcpauth: grant revoked: "+why, "grant_id", grantID)
}

// ExchangeAuthorizationCode implements oauth.Provider.
func (p *Provider) ExchangeAuthorizationCode(ctx context.Context, client *oauth.Client, code *oauth.AuthorizationCode) (*oauth.TokenResponse, error) {
	now := p.now()
	rt := secret.New(secret.PrefixRefreshToken)
	rec := &storage.RefreshRecord{
		Hash: secret.Hash(rt), ClientID: client.ID, GrantID: code.GrantID, Subject: code.Subject,
		Scopes: code.Scopes, Resource: code.Resource, CreatedAt: now, ExpiresAt: now.Add(p.opts.RefreshTokenTTL),
	}
	switch err := p.store.RedeemCode(ctx, secret.Hash(code.Code), now, rec); {
	case errors.Is(err, storage.ErrConflict):
		p.revokeForReplay(ctx, code.GrantID, "authorization code redeemed twice")
		return nil, oauth.ErrInvalidGrant.WithDescription("authorization code already used")
	case errors.Is(err, storage.ErrNotFound):
		return nil, oauth.ErrInvalidGrant.WithDescription("invalid or expired authorization code")
	case err != nil:
		return nil, fmt.Errorf("provider: redeem code: %w", err)
	}
	p.touch(ctx, client)
	// Only a redeemed code replaces older grants: a look-alike registration
	// whose code is never redeemed must not revoke the real client's grant.
	p.replaceOlderGrants(ctx, &oauth.Grant{ID: code.GrantID, ClientID: client.ID, Subject: code.Subject, RedirectURI: code.RedirectURI}, client)
	return p.tokenResponse(ctx, client.ID, code.GrantID, code.Subject, code.Scopes, code.Resource, rt)
}

// touch renews the client registration (about once a day per client); a
// failure is logged, not returned, since the exchange has succeeded. The
// grant's last use is recorded by the redemption or rotation itself, in
// the same transaction.
func (p *Provider) touch(ctx context.Context, client *oauth.Client) {
	now := p.now()
	// Only stored registrations lapse; metadata-document clients and
	// registrations that never expire have no ExpiresAt to renew.
	if p.opts.ClientTTL > 0 && !client.ExpiresAt.IsZero() && client.ExpiresAt.Sub(now) < p.opts.ClientTTL-24*time.Hour {
		exp := now.Add(p.opts.ClientTTL)
		if err := p.store.TouchClient(ctx, client.ID, exp); err != nil {
			p.log.Error("mcpauth: renew client", "client_id", client.ID, "err", err)
		} else if p.grants != nil {
			p.grants.renewClient(client.ID, exp)
		}
	}
}

func (p *Provider) tokenResponse(ctx context.Context, clientID, grantID, subject string, scopes []string, resource, refresh string) (*oauth.TokenResponse, error) {
	now := p.now()
	k := p.freshKeys(ctx).active
	scope := strings.Join(scopes, " ")
	at, err := k.Sign(&jwtkeys.Claims{
		RegisteredClaims: registeredClaims(p.opts.Issuer, subject, resource, now, p.opts.AccessTokenTTL),
		ClientID:         clientID,
		Scope:            scope,
		GrantID:          grantID,
	})
	if err != nil {
		return nil, fmt.Errorf("provider: %w", err)
	}
	return &oauth.TokenResponse{
		AccessToken:  at,
		TokenType:    "Bearer",
		ExpiresIn:    int64(p.opts.AccessTokenTTL / time.Second),
		RefreshToken: refresh,
		Scope:        scope,
	}, nil
}

// LoadRefreshToken implements oauth.Provider. Presenting a spent token
// (one whose successor was already used) revokes the whole grant.
func (p *Provider) LoadRefreshToken(ctx context.Context, token string) (*oauth.RefreshToken, error) {
	if !secret.WellFormed(secret.PrefixRefreshToken, token) {
		return nil, oauth.ErrInvalidGrant.WithDescription("invalid refresh token")
	}
	rec, err := p.store.GetRefreshToken(ctx, secret.Hash(token), p.now())
	if errors.Is(err, storage.ErrNotFound) {
		return nil, oauth.ErrInvalidGrant.WithDescription("invalid, expired or revoked refresh token")
	}
	if err != nil {
		return nil, fmt.Errorf("provider: get refresh token: %w", err)
	}
	if rec.Spent {
		p.revokeForReplay(ctx, rec.GrantID, "spent refresh token presented")
		return nil, oauth.ErrInvalidGrant.WithDescription("refresh token already used")
	}
	return &oauth.RefreshToken{
		Token: token, ClientID: rec.ClientID, GrantID: rec.GrantID, Subject: rec.Subject,
		Scopes: rec.Scopes, Resource: rec.Resource, ExpiresAt: rec.ExpiresAt, Rotation: rec.Successor,
	}, nil
}

// ExchangeRefreshToken implements oauth.Provider. The presented token stays
// usable until its successor is first used, so a client that lost the
// response can retry; each retry supersedes the unused successor.
func (p *Provider) ExchangeRefreshToken(ctx context.Context, client *oauth.Client, rt *oauth.RefreshToken, scopes []string) (*oauth.TokenResponse, error) {
	now := p.now()
	next := secret.New(secret.PrefixRefreshToken)
	rec := &storage.RefreshRecord{
		Hash: secret.Hash(next), ClientID: client.ID, GrantID: rt.GrantID, Subject: rt.Subject,
		Scopes: rt.Scopes, Resource: rt.Resource, CreatedAt: now, ExpiresAt: now.Add(p.opts.RefreshTokenTTL),
		Parent: secret.Hash(rt.Token),
	}
	switch err := p.store.RotateRefreshToken(ctx, rec.Parent, rt.Rotation, rec, now); {
	case errors.Is(err, storage.ErrConflict), errors.Is(err, storage.ErrNotFound):
		return nil, oauth.ErrInvalidGrant.WithDescription("refresh token already used or revoked")
	case err != nil:
		return nil, fmt.Errorf("provider: rotate refresh token: %w", err)
	}
	p.touch(ctx, client)
	if len(scopes) == 0 {
		scopes = rt.Scopes
	}
	return p.tokenResponse(ctx, client.ID, rt.GrantID, rt.Subject, scopes, rt.Resource, next)
}

// LoadAccessToken implements oauth.Provider: signature, typ, iss, aud and
// exp are checked, then the grant must still be active.
//
// A token verified before is answered from memory, and so is the state of
// its grant while it is known to be current (see the VerifiedTokenCacheSize
// option): a revocation through this Provider takes effect at once, one
// made by another Provider or process sharing the store within 750 ms
// (within milliseconds on a store that signals revocations, such as
// PostgreSQL). The returned AccessToken is the caller's to modify.
func (p *Provider) LoadAccessToken(ctx context.Context, token string) (*oauth.AccessToken, error) {
	if p.tokens == nil {
		c, err := p.verify(ctx, token)
		if err != nil {
			return nil, errInvalidAccessToken.WithCause(err)
		}
		at := c.AccessToken(token)
		return at, p.checkGrant(ctx, at.GrantID, at.ClientID)
	}
	if len(token) > maxTokenLength {
		return nil, errInvalidAccessToken
	}
	key := tokenKey(sha256.Sum256([]byte(token)))
	now := p.now().UnixNano()
	e := p.tokens.get(key, now)
	if e == nil {
		c, err := p.verify(ctx, token)
		if err != nil {
			return nil, errInvalidAccessToken.WithCause(err)
		}
		e = &cachedToken{at: *c.AccessToken("")}
		e.exp = e.at.ExpiresAt.UnixNano()
		if now < e.exp {
			p.tokens.put(key, e, now)
		}
	}
	if err := p.checkGrant(ctx, e.at.GrantID, e.at.ClientID); err != nil {
		return nil, err
	}
	at := e.at
	at.Token = token
	at.Scopes = slices.Clone(at.Scopes)
	return &at, nil
}

// maxTokenLength bounds the access tokens LoadAccessToken considers;
// this Provider's are well under 1 KiB.
const maxTokenLength = 4096

var (
	errInvalidAccessToken = oauth.ErrInvalidToken.WithDescription("the access token is invalid or expired")
	errRevokedAccessToken = oauth.ErrInvalidToken.WithDescription("the access token was revoked")
)

// checkGrant checks that grant id is active and belongs to clientID, from
// memory when its state is known (cache.go), else by reading the store.
func (p *Provider) checkGrant(ctx context.Context, id, clientID string) error {
	var gen uint64
	if p.grants != nil {
		elapsed := p.elapsed()
		ok, revoked := p.grants.lookup(id, clientID, elapsed)
		p.maybePoll(elapsed, false)
		switch {
		case ok:
			return nil
		case revoked:
			return errRevokedAccessToken
		}
		gen = p.grants.generation()
	}
	g, err := p.store.GetGrant(ctx, id)
	switch {
	case errors.Is(err, storage.ErrNotFound) || (err == nil && !g.RevokedAt.IsZero()):
		if p.grants != nil {
			p.grants.setRevoked(id)
		}
		return errRevokedAccessToken
	case err != nil:
		return fmt.Errorf("provider: get grant: %w", err)
	case g.ClientID != clientID:
		return errRevokedAccessToken
	}
	if p.grants != nil {
		p.grants.setActive(id, clientID, gen)
	}
	return nil
}

// verify checks a JWT against the key set, reloading it (rate-limited) when
// the token names a kid this replica has not seen.
func (p *Provider) verify(ctx context.Context, token string) (*jwtkeys.Claims, error) {
	if len(token) > maxTokenLength {
		return nil, errors.New("token too long")
	}
	c, err := p.verifier.Verify(token)
	if errors.Is(err, jwtkeys.ErrUnknownKey) && p.reloadAllowed() {
		if rerr := p.reloadKeys(ctx); rerr != nil {
			return nil, rerr
		}
		c, err = p.verifier.Verify(token)
	}
	return c, err
}

func (p *Provider) reloadAllowed() bool {
	p.reloadMu.Lock()
	defer p.reloadMu.Unlock()
	now := time.Now()
	if now.Sub(p.lastReload) < keyReloadInterval {
		return false
	}
	p.lastReload = now
	return true
}

// RevokeToken implements oauth.Provider (RFC 7009 §2.1): revoking a refresh
// or access token revokes the grant it belongs to, if the grant is the
// client's. Anything else is ignored.
func (p *Provider) RevokeToken(ctx context.Context, client *oauth.Client, token, hint string) error {
	grantID := ""
	if secret.WellFormed(secret.PrefixRefreshToken, token) {
		rec, err := p.store.GetRefreshToken(ctx, secret.Hash(token), p.now())
		if err == nil && rec.ClientID == client.ID {
			grantID = rec.GrantID
		} else if err != nil && !errors.Is(err, storage.ErrNotFound) {
			return fmt.Errorf("provider: revoke: %w", err)
		}
	} else if c, err := p.verify(ctx, token); err == nil && c.ClientID == client.ID {
		grantID = c.GrantID
	}
	if grantID == "" {
		return nil
	}
	if err := p.revokeGrant(ctx, grantID); err != nil && !errors.Is(err, storage.ErrNotFound) {
		return fmt.Errorf("provider: revoke: %w", err)
	}
	p.log.Info("mcpauth: grant revoked by client", "grant_id", grantID, "client_id", client.ID)
	return nil
}

// ---- grants ----

// ListGrants returns the active grants, oldest first.
func (p *Provider) ListGrants(ctx context.Context) ([]*oauth.Grant, error) {
	return p.store.ListGrants(ctx)
}

// RevokeGrant revokes a grant: its refresh tokens and codes are deleted and
// its access tokens are refused from the next request on.
func (p *Provider) RevokeGrant(ctx context.Context, grantID string) error {
	if err := p.revokeGrant(ctx, grantID); err != nil {
		return fmt.Errorf("provider: revoke grant: %w", err)
	}
	p.log.Info("mcpauth: grant revoked", "grant_id", grantID)
	return nil
}

// revokeGrant revokes a grant in the store and, once the store has it (or
// has no such grant), in the Provider's memory, so that its access tokens
// are refused from the next request on.
func (p *Provider) revokeGrant(ctx context.Context, id string) error {
	err := p.store.RevokeGrant(ctx, id, p.now())
	if p.grants != nil && (err == nil || errors.Is(err, storage.ErrNotFound)) {
		p.grants.setRevoked(id)
	}
	return err
}

// ---- housekeeping ----

// Sweep deletes expired rows, and signing keys retired longer ago than the
// access-token lifetime plus a margin (so no live token needs them). Keys
// are judged by a fresh read of the store, so a replica whose cached set is
// stale never deletes the key another replica made active.
func (p *Provider) Sweep(ctx context.Context) error {
	now := p.now()
	p.lastSweep.Store(now.UnixNano())
	n, err := p.store.Sweep(ctx, now)
	if err != nil {
		return fmt.Errorf("provider: sweep: %w", err)
	}
	if err := p.reloadKeys(ctx); err != nil {
		return err
	}
	deleted := 0
	for _, k := range p.keys.Load().all {
		if !k.RetiredAt.IsZero() && now.Sub(k.RetiredAt) > p.opts.AccessTokenTTL+keyRetireMargin {
			if err := p.store.DeleteKey(ctx, k.ID); err != nil && !errors.Is(err, storage.ErrNotFound) {
				return fmt.Errorf("provider: delete retired key: %w", err)
			}
			deleted++
		}
	}
	if deleted > 0 {
		if err := p.reloadKeys(ctx); err != nil {
			return err
		}
	}
	if n > 0 || deleted > 0 {
		p.log.Debug("mcpauth: swept expired rows", "rows", n, "keys", deleted)
	}
	return nil
}

// maybeSweep runs Sweep in the background at most every sweepInterval.
func (p *Provider) maybeSweep() {
	last := p.lastSweep.Load()
	now := p.now().UnixNano()
	if now-last < int64(sweepInterval) || !p.lastSweep.CompareAndSwap(last, now) {
		return
	}
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := p.Sweep(ctx); err != nil {
			p.log.Error("mcpauth: sweep failed", "err", err)
		}
	}()
}
