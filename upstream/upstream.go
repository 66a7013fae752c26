// Package upstream signs owners in through an existing OpenID Connect
// identity provider (Keycloak, Entra ID, Okta, Auth0, Google, ...): the
// federated mode. The authorization server of package mcpauth stays what
// MCP clients talk to (registration, PKCE, its own audience-bound tokens,
// refresh rotation, the console); only the owner's sign-in moves to the
// company's identity provider.
//
// An [IdP] is an approval.Identity: a browser signed in through it is a
// console user, named by the upstream subject, and may approve its own
// requests on the approval page with one explicit click (quick authorize:
// never a silent approval). The upstream access and refresh tokens of the
// sign-in are kept with each grant it approves, sealed (as grant data),
// refreshed on demand for tools ([IdP.Token]; mcpauth.UpstreamToken) and
// revoked at the upstream (RFC 7009) when the grant ends ([IdP.Revoke]).
//
// The sign-in is the authorization code flow with PKCE (RFC 7636), state
// and nonce, the response's iss checked (RFC 9207), the ID token verified
// by github.com/coreos/go-oidc, and an allow-list [Policy] on the identity.
package upstream

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	oauth "github.com/mcp-oauth/oauth"
	"github.com/mcp-oauth/oauth/internal/sealbox"
)

// ValueName names the grant value that keeps a grant's upstream tokens.
const ValueName = "mcpauth.upstream"

// Defaults.
const (
	// DefaultSessionTTL is how long a browser stays signed in.
	DefaultSessionTTL = 8 * time.Hour
	loginTTL          = 10 * time.Minute
)

// Options configure an IdP.
type Options struct {
	// Issuer is the upstream's issuer identifier; its OpenID Connect
	// discovery document is read from Issuer +
	// /.well-known/openid-configuration and must name the same issuer.
	// Required.
	Issuer string
	// ClientID and ClientSecret are this server's client registration at
	// the upstream (a confidential web client). ClientID is required.
	ClientID, ClientSecret string
	// RedirectURL is the callback registered at the upstream: the URL
	// where the Handler serves /callback. mcpauth.Wrap sets it to Issuer +
	// "/upstream/callback".
	RedirectURL string
	// Scopes requested at the upstream besides "openid"; nil means
	// "email" and "profile". Add "offline_access" (or what the upstream
	// wants) to get a refresh token.
	Scopes []string
	// AuthParams are extra parameters of the authorization request, for
	// upstreams that want them: Google gives a refresh token only with
	// access_type=offline (and prompt=consent). The library's own
	// (state, nonce, PKCE, redirect_uri, ...) cannot be replaced.
	AuthParams map[string]string
	// Name is the upstream's name on the sign-in button ("Sign in with
	// Name"); empty means "your identity provider".
	Name string
	// Allow decides who may sign in. Required: its zero value refuses
	// everyone.
	Allow Policy
	// Subject returns the subject (our grants' owner, 1 to 255 bytes) of
	// an upstream identity from its ID token claims. Nil means the
	// upstream "sub", which never changes; an e-mail address can change
	// hands, so map from it only when the upstream guarantees it cannot.
	Subject func(claims map[string]any) (string, error)
	// CookieKey seals the sign-in cookies (AES-256-GCM, 32 bytes). Give
	// every replica the same key; nil means a random key per process,
	// which is right for one process only.
	CookieKey []byte
	// Secure marks the cookies Secure; mcpauth.Wrap sets it when its
	// issuer is https.
	Secure bool
	// SessionTTL is how long a browser stays signed in; zero means
	// DefaultSessionTTL.
	SessionTTL time.Duration
	// HTTPClient is used for discovery, the token endpoint, the JWKS and
	// revocation; nil means http.DefaultClient.
	HTTPClient *http.Client
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Logger receives sign-in events; nil discards them. Tokens and codes
	// are never logged.
	Logger *slog.Logger
}

// Policy is the allow-list of upstream identities. An identity passes
// if it matches any rule given; AllowAnyone lets every identity the
// upstream signs in pass.
type Policy struct {
	// AllowAnyone admits every identity the upstream authenticates.
	AllowAnyone bool
	// Emails admits these addresses (case-insensitive), when the upstream
	// says the address is verified (email_verified).
	Emails []string
	// Domains admits verified addresses in these domains ("example.com").
	Domains []string
	// Claim and Values admit identities whose claim (a string or an array
	// of strings, such as "groups"; a dotted path reaches into objects)
	// holds one of Values.
	Claim  string
	Values []string
}

func (p Policy) empty() bool {
	return !p.AllowAnyone && len(p.Emails) == 0 && len(p.Domains) == 0 && (p.Claim == "" || len(p.Values) == 0)
}

// ErrNotAllowed is returned (and shown) when a signed-in identity does not
// pass the Policy.
var ErrNotAllowed = errors.New("upstream: this identity may not sign in here")

// allows reports whether claims pass the policy.
func (p Policy) allows(claims map[string]any) bool {
	if p.AllowAnyone {
		return true
	}
	email, _ := claims["email"].(string)
	verified, _ := claims["email_verified"].(bool)
	if email != "" && verified {
		for _, e := range p.Emails {
			if strings.EqualFold(e, email) {
				return true
			}
		}
		if at := strings.LastIndexByte(email, '@'); at >= 0 {
			for _, d := range p.Domains {
				if strings.EqualFold(strings.TrimPrefix(d, "@"), email[at+1:]) {
					return true
				}
			}
		}
	}
	if p.Claim != "" {
		switch v := claimAt(claims, p.Claim).(type) {
		case string:
			return slices.Contains(p.Values, v)
		case []any:
			for _, x := range v {
				if s, ok := x.(string); ok && slices.Contains(p.Values, s) {
					return true
				}
			}
		}
	}
	return false
}

// claimAt returns the value at a dotted path of claims, or nil.
func claimAt(claims map[string]any, path string) any {
	var cur any = claims
	for _, part := range strings.Split(path, ".") {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = m[part]
	}
	return cur
}

// IdP is an upstream identity provider. Create it with New.
type IdP struct {
	opts     Options
	oidc     *oidc.Provider
	verifier *oidc.IDTokenVerifier
	oauth    *oauth2.Config
	meta     struct {
		Revocation   string `json:"revocation_endpoint"`
		IssParameter bool   `json:"authorization_response_iss_parameter_supported"`
	}
	cookies       *sealbox.Box
	log           *slog.Logger
	defaultReturn string

	mu       sync.Mutex
	inFlight map[string]*sync.Mutex // by grant ID: one refresh at a time
}

// New reads the upstream's discovery document and returns the IdP.
func New(ctx context.Context, opts Options) (*IdP, error) {
	if opts.Issuer == "" || opts.ClientID == "" {
		return nil, errors.New("upstream: Issuer and ClientID are required")
	}
	if opts.Allow.empty() {
		return nil, errors.New("upstream: Allow admits nobody; list Emails, Domains or a Claim's Values, or set AllowAnyone")
	}
	if opts.Scopes == nil {
		opts.Scopes = []string{"email", "profile"}
	}
	if opts.SessionTTL <= 0 {
		opts.SessionTTL = DefaultSessionTTL
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Name == "" {
		opts.Name = "your identity provider"
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	key := opts.CookieKey
	if key == nil {
		key = make([]byte, 32)
		rand.Read(key)
	}
	s, err := sealbox.New(key)
	if err != nil {
		return nil, fmt.Errorf("upstream: CookieKey: %w", err)
	}
	p := &IdP{opts: opts, cookies: s, log: log, inFlight: map[string]*sync.Mutex{}, defaultReturn: "/"}
	op, err := oidc.NewProvider(p.client(ctx), opts.Issuer)
	if err != nil {
		return nil, fmt.Errorf("upstream: discovery of %s: %w", opts.Issuer, err)
	}
	if err := op.Claims(&p.meta); err != nil {
		return nil, fmt.Errorf("upstream: discovery of %s: %w", opts.Issuer, err)
	}
	p.oidc = op
	p.verifier = op.VerifierContext(p.client(ctx), &oidc.Config{ClientID: opts.ClientID, Now: opts.Now})
	p.oauth = &oauth2.Config{ClientID: opts.ClientID, ClientSecret: opts.ClientSecret, Endpoint: op.Endpoint(),
		RedirectURL: opts.RedirectURL, Scopes: append([]string{oidc.ScopeOpenID}, opts.Scopes...)}
	return p, nil
}

// SetRedirectURL sets Options.RedirectURL once the callback's URL is known
// (mcpauth.Wrap calls it); call it before the IdP serves.
func (p *IdP) SetRedirectURL(u string) {
	p.opts.RedirectURL, p.oauth.RedirectURL = u, u
}

// SetSecure sets Options.Secure (mcpauth.Wrap calls it for an https
// issuer); call it before the IdP serves.
func (p *IdP) SetSecure(secure bool) { p.opts.Secure = secure }

// SetDefaultReturn sets where a sign-in started without ?return= comes
// back to (mcpauth.Wrap: its console); call it before the IdP serves.
func (p *IdP) SetDefaultReturn(path string) {
	if localPath(path) {
		p.defaultReturn = path
	}
}

// Name returns the upstream's name for the sign-in button.
func (p *IdP) Name() string { return p.opts.Name }

func (p *IdP) client(ctx context.Context) context.Context {
	if p.opts.HTTPClient != nil {
		return oidc.ClientContext(ctx, p.opts.HTTPClient)
	}
	return ctx
}

// ConsoleUser implements approval.Identity: the subject the browser
// signed in as, or "" when it has not (or its session lapsed).
func (p *IdP) ConsoleUser(r *http.Request) (string, error) {
	s := p.session(r)
	if s == nil {
		return "", nil
	}
	return s.Subject, nil
}

// ApprovalSetup implements approval.SetupIdentity: what a grant approved
// by the signed-in browser keeps, its upstream tokens.
func (p *IdP) ApprovalSetup(r *http.Request) (*oauth.GrantSetup, error) {
	s := p.session(r)
	if s == nil || s.Token == nil {
		return nil, nil
	}
	b, err := json.Marshal(s.Token)
	if err != nil {
		return nil, fmt.Errorf("upstream: %w", err)
	}
	return &oauth.GrantSetup{Values: []oauth.GrantValue{{Name: ValueName, Value: b}}}, nil
}

// storedToken is an upstream token as a grant keeps it.
type storedToken struct {
	AccessToken  string    `json:"access_token"`
	TokenType    string    `json:"token_type,omitempty"`
	RefreshToken string    `json:"refresh_token,omitempty"`
	Expiry       time.Time `json:"expiry,omitzero"`
}

func (t *storedToken) oauth2() *oauth2.Token {
	return &oauth2.Token{AccessToken: t.AccessToken, TokenType: t.TokenType, RefreshToken: t.RefreshToken, Expiry: t.Expiry}
}

// ErrNoUpstreamToken is returned by Token for a grant that keeps no
// upstream token (approved by code, not by an upstream sign-in).
var ErrNoUpstreamToken = errors.New("upstream: this grant keeps no upstream token")

// Token returns the upstream access token kept with grant grantID of gd,
// refreshed first (and the refreshed tokens kept) when it has expired and
// a refresh token was issued. Concurrent calls for one grant refresh
// once.
func (p *IdP) Token(ctx context.Context, gd oauth.GrantDataProvider, grantID string) (*oauth2.Token, error) {
	mu := p.grantLock(grantID)
	mu.Lock()
	defer mu.Unlock()
	b, err := gd.GrantData(ctx, grantID, ValueName)
	if errors.Is(err, oauth.ErrNoGrantData) {
		return nil, ErrNoUpstreamToken
	}
	if err != nil {
		return nil, err
	}
	var st storedToken
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("upstream: stored token: %w", err)
	}
	tok := st.oauth2()
	if !st.Expiry.IsZero() && st.Expiry.After(p.opts.Now().Add(30*time.Second)) || st.Expiry.IsZero() {
		return tok, nil
	}
	if st.RefreshToken == "" {
		return nil, errors.New("upstream: the upstream access token expired and no refresh token was issued; sign in again")
	}
	fresh, err := p.oauth.TokenSource(p.client(ctx), &oauth2.Token{RefreshToken: st.RefreshToken}).Token()
	if err != nil {
		return nil, fmt.Errorf("upstream: refresh the upstream token: %w", err)
	}
	next := storedToken{AccessToken: fresh.AccessToken, TokenType: fresh.TokenType, RefreshToken: fresh.RefreshToken, Expiry: fresh.Expiry}
	if next.RefreshToken == "" {
		next.RefreshToken = st.RefreshToken // not rotated
	}
	nb, _ := json.Marshal(next)
	if err := gd.SetGrantData(ctx, grantID, ValueName, nb, 0); err != nil {
		return nil, fmt.Errorf("upstream: keep the refreshed token: %w", err)
	}
	p.log.Info("upstream: token refreshed", "grant_id", grantID)
	return next.oauth2(), nil
}

func (p *IdP) grantLock(id string) *sync.Mutex {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.inFlight) > 10000 {
		p.inFlight = map[string]*sync.Mutex{} // forgetting only allows a second refresh
	}
	mu := p.inFlight[id]
	if mu == nil {
		mu = new(sync.Mutex)
		p.inFlight[id] = mu
	}
	return mu
}

// Revoke revokes at the upstream (RFC 7009 §2.1) the tokens that an ended
// grant kept, given its values (oauth.GrantEnd.Values): the refresh token,
// which revokes the grant there, else the access token. An upstream
// without a revocation endpoint is left alone (its tokens lapse).
func (p *IdP) Revoke(ctx context.Context, values map[string][]byte) error {
	b, ok := values[ValueName]
	if !ok || p.meta.Revocation == "" {
		return nil
	}
	var st storedToken
	if err := json.Unmarshal(b, &st); err != nil {
		return fmt.Errorf("upstream: stored token: %w", err)
	}
	form := url.Values{"token": {st.RefreshToken}, "token_type_hint": {"refresh_token"}}
	if st.RefreshToken == "" {
		form = url.Values{"token": {st.AccessToken}, "token_type_hint": {"access_token"}}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.meta.Revocation, strings.NewReader(form.Encode()))
	if err != nil {
		return fmt.Errorf("upstream: revoke: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(url.QueryEscape(p.opts.ClientID), url.QueryEscape(p.opts.ClientSecret))
	hc := p.opts.HTTPClient
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("upstream: revoke: %w", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("upstream: revoke: the upstream answered %d", resp.StatusCode)
	}
	return nil
}
