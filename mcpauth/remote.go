package mcpauth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/modelcontextprotocol/go-sdk/oauthex"

	oauth "github.com/mcp-oauth/oauth"
	"github.com/mcp-oauth/oauth/internal/jwtkeys"
)

// maxKeyStaleness bounds how long a RemoteVerifier keeps trusting cached
// keys while the issuer's JWKS cannot be fetched: a key the issuer has
// withdrawn must not stay valid indefinitely.
const maxKeyStaleness = 24 * time.Hour

// RemoteVerifierOptions configure a [RemoteVerifier].
type RemoteVerifierOptions struct {
	// Issuer is the authorization server's issuer; tokens must carry it as
	// "iss". Required.
	Issuer string
	// Resource is this resource server's canonical URL; tokens must carry
	// it in "aud" (RFC 8707). Required.
	Resource string
	// JWKSURL is where the signing keys are published. Empty means the
	// jwks_uri of the issuer's RFC 8414 metadata.
	JWKSURL string
	// KeysMaxAge is how long fetched keys are used before they are fetched
	// again; zero means 5 minutes.
	KeysMaxAge time.Duration
	// KeysMinInterval bounds how often a token naming an unknown key (kid)
	// triggers a fetch, so junk tokens cannot drive traffic to the issuer;
	// zero means 10 seconds.
	KeysMinInterval time.Duration
	// IntrospectionClientID and IntrospectionClientSecret, when set, make
	// the verifier also ask the issuer's introspection endpoint (RFC 7662)
	// whether a token is still active, so that revocation takes effect
	// within IntrospectionMaxAge instead of at the token's expiry.
	IntrospectionClientID, IntrospectionClientSecret string
	// IntrospectionMaxAge is how long an introspection answer is reused;
	// zero means 5 seconds.
	IntrospectionMaxAge time.Duration
	// HTTPClient fetches keys, metadata and introspection answers; nil
	// means a client with a 10 second timeout.
	HTTPClient *http.Client
}

// RemoteVerifier validates access tokens for a resource server that runs
// apart from the authorization server: JWT signatures against the issuer's
// JWK Set (cached), iss, aud and exp, and optionally activity through
// introspection. Its Verify method is a TokenVerifier for RequireBearer.
type RemoteVerifier struct {
	opts     RemoteVerifierOptions
	verifier jwtkeys.Verifier

	mu        sync.Mutex
	keys      map[string]*jwtkeys.Key
	fetchedAt time.Time
	lastTry   time.Time
	jwksURL   string
	introURL  string
	active    map[string]activeEntry
}

type activeEntry struct {
	active bool
	at     time.Time
}

// NewRemoteVerifier returns a verifier; keys are fetched on first use.
func NewRemoteVerifier(opts RemoteVerifierOptions) (*RemoteVerifier, error) {
	if _, err := checkIssuer(opts.Issuer); err != nil {
		return nil, fmt.Errorf("mcpauth: RemoteVerifier Issuer: %w", err)
	}
	if _, err := checkIssuer(opts.Resource); err != nil {
		return nil, fmt.Errorf("mcpauth: RemoteVerifier Resource: %w", err)
	}
	if opts.KeysMaxAge <= 0 {
		opts.KeysMaxAge = 5 * time.Minute
	}
	if opts.KeysMinInterval <= 0 {
		opts.KeysMinInterval = 10 * time.Second
	}
	if opts.IntrospectionMaxAge <= 0 {
		opts.IntrospectionMaxAge = 5 * time.Second
	}
	if opts.HTTPClient == nil {
		opts.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	v := &RemoteVerifier{opts: opts, jwksURL: opts.JWKSURL, active: map[string]activeEntry{}}
	v.verifier = jwtkeys.Verifier{Issuer: opts.Issuer, Audiences: []string{opts.Resource}, Leeway: 5 * time.Second, Lookup: v.lookup}
	return v, nil
}

func (v *RemoteVerifier) lookup(kid string) *jwtkeys.Key {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.keys[kid]
}

// Verify implements TokenVerifier.
func (v *RemoteVerifier) Verify(ctx context.Context, token string) (*oauth.AccessToken, error) {
	if len(token) > 4096 {
		return nil, oauth.ErrInvalidToken.WithDescription("the access token is invalid")
	}
	v.mu.Lock()
	stale := time.Since(v.fetchedAt) > v.opts.KeysMaxAge
	v.mu.Unlock()
	if stale {
		if err := v.refresh(ctx); err != nil {
			return nil, err
		}
	}
	c, err := v.verifier.Verify(token)
	if errors.Is(err, jwtkeys.ErrUnknownKey) {
		if rerr := v.refresh(ctx); rerr != nil {
			return nil, rerr
		}
		c, err = v.verifier.Verify(token)
	}
	if err != nil {
		return nil, oauth.ErrInvalidToken.WithDescription("the access token is invalid or expired").WithCause(err)
	}
	if v.opts.IntrospectionClientID != "" {
		ok, err := v.introspect(ctx, token, c.ID)
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, oauth.ErrInvalidToken.WithDescription("the access token was revoked")
		}
	}
	return c.AccessToken(token), nil
}

// refresh fetches the JWK Set. Every fetch, whether the keys are stale or a
// token names an unknown kid, is limited to one per KeysMinInterval, so that
// junk tokens or an outage cannot drive traffic to the issuer. When a fetch
// fails, keys already cached stay in use for up to maxKeyStaleness; after
// that, or without any keys, verification answers server_error.
func (v *RemoteVerifier) refresh(ctx context.Context) error {
	v.mu.Lock()
	have := len(v.keys) > 0
	if time.Since(v.lastTry) < v.opts.KeysMinInterval {
		v.mu.Unlock()
		if have {
			return nil
		}
		return oauth.ErrServerError.WithCause(errors.New("mcpauth: no signing keys fetched yet"))
	}
	v.lastTry = time.Now()
	jwksURL := v.jwksURL
	v.mu.Unlock()
	keys, err := v.fetchKeys(ctx, jwksURL)
	if err != nil {
		v.mu.Lock()
		usable := have && time.Since(v.fetchedAt) < maxKeyStaleness
		if !usable {
			v.keys = nil
		}
		v.mu.Unlock()
		if usable {
			return nil
		}
		return oauth.ErrServerError.WithCause(err)
	}
	m := make(map[string]*jwtkeys.Key, len(keys))
	for _, k := range keys {
		m[k.ID] = k
	}
	v.mu.Lock()
	v.keys, v.fetchedAt = m, time.Now()
	v.mu.Unlock()
	return nil
}

func (v *RemoteVerifier) fetchKeys(ctx context.Context, jwksURL string) ([]*jwtkeys.Key, error) {
	if jwksURL == "" {
		u, intro, err := v.discover(ctx)
		if err != nil {
			return nil, err
		}
		jwksURL = u
		v.mu.Lock()
		v.jwksURL, v.introURL = u, intro
		v.mu.Unlock()
	}
	body, err := v.get(ctx, jwksURL, jwtkeys.MaxJWKSBytes)
	if err != nil {
		return nil, fmt.Errorf("mcpauth: fetch JWKS: %w", err)
	}
	return jwtkeys.ParseJWKS(body)
}

func (v *RemoteVerifier) discover(ctx context.Context) (jwks, intro string, err error) {
	u, _ := url.Parse(v.opts.Issuer)
	u.Path = wellKnownAS + strings.TrimSuffix(u.Path, "/")
	body, err := v.get(ctx, u.String(), 1<<20)
	if err != nil {
		return "", "", fmt.Errorf("mcpauth: fetch authorization server metadata: %w", err)
	}
	var m oauthex.AuthServerMeta
	if err := json.Unmarshal(body, &m); err != nil {
		return "", "", fmt.Errorf("mcpauth: decode authorization server metadata: %w", err)
	}
	if m.Issuer != v.opts.Issuer || m.JWKSURI == "" {
		return "", "", errors.New("mcpauth: authorization server metadata: issuer mismatch or no jwks_uri")
	}
	return m.JWKSURI, m.IntrospectionEndpoint, nil
}

func (v *RemoteVerifier) get(ctx context.Context, u string, max int64) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", u, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := v.opts.HTTPClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: status %d", u, resp.StatusCode)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > max {
		return nil, fmt.Errorf("GET %s: response too large", u)
	}
	return b, nil
}

// introspect asks the issuer whether the token is active, caching answers
// by jti for IntrospectionMaxAge.
func (v *RemoteVerifier) introspect(ctx context.Context, token, jti string) (bool, error) {
	v.mu.Lock()
	if e, ok := v.active[jti]; ok && time.Since(e.at) < v.opts.IntrospectionMaxAge {
		v.mu.Unlock()
		return e.active, nil
	}
	introURL := v.introURL
	v.mu.Unlock()
	if introURL == "" {
		introURL = strings.TrimSuffix(v.opts.Issuer, "/") + PathIntrospect
	}
	req, err := http.NewRequestWithContext(ctx, "POST", introURL, strings.NewReader(url.Values{"token": {token}}.Encode()))
	if err != nil {
		return false, oauth.ErrServerError.WithCause(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(url.QueryEscape(v.opts.IntrospectionClientID), url.QueryEscape(v.opts.IntrospectionClientSecret))
	resp, err := v.opts.HTTPClient.Do(req)
	if err != nil {
		return false, oauth.ErrServerError.WithCause(fmt.Errorf("mcpauth: introspect: %w", err))
	}
	defer resp.Body.Close()
	var out struct {
		Active bool `json:"active"`
	}
	if resp.StatusCode != http.StatusOK || json.NewDecoder(io.LimitReader(resp.Body, 64<<10)).Decode(&out) != nil {
		return false, oauth.ErrServerError.WithCause(fmt.Errorf("mcpauth: introspect: status %d", resp.StatusCode))
	}
	v.mu.Lock()
	if len(v.active) > 10000 {
		clear(v.active) // bound memory; answers are cheap to refetch
	}
	v.active[jti] = activeEntry{active: out.Active, at: time.Now()}
	v.mu.Unlock()
	return out.Active, nil
}
