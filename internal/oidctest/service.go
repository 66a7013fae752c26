package oidctest

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/zitadel/oidc/v3/example/server/exampleop"
	"github.com/zitadel/oidc/v3/example/server/storage"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
)

// Service is a machine client of the provider: it obtains access tokens
// for itself with the client_credentials grant (RFC 6749 §4.4), and
// authenticates with client_secret_basic at the token, introspection and
// revocation endpoints.
type Service struct {
	ID, Secret string
	// JWT makes its access tokens JWTs (RS256, typ "JWT", as zitadel
	// signs them) instead of the provider's opaque Bearer tokens.
	JWT bool
	// Audience is the aud of its tokens; empty means {ID}.
	Audience []string
	// Claims are added to its JWT access tokens and to introspection
	// answers about its tokens (roles, for instance).
	Claims map[string]any
}

// Options configure [Start].
type Options struct {
	// Clients are web clients, as for New.
	Clients []Client
	// Services are machine clients.
	Services []Service
	// Apps are web clients with JWT access tokens for an audience.
	Apps []App
}

// Provider is a running OpenID Provider whose signing keys rotate on
// demand and which knows machine clients. Its JWT access tokens carry
// the granted scopes in scope (zitadel's own carry none) and the
// Service's Claims; introspection (RFC 7662) answers about a Service's
// tokens with sub, client_id, scope, aud, iss, exp, iat and its Claims,
// to any client it authenticates; revocation (RFC 7009) by the Service
// makes its token inactive.
type Provider struct {
	*Server
	st *serviceStorage
}

// Start starts a provider for t; it stops when the test ends.
func Start(t testing.TB, opts Options) *Provider {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	issuer := "http://" + ln.Addr().String() + "/"
	reg := make(map[string]*storage.Client, len(opts.Clients))
	for _, c := range opts.Clients {
		reg[c.ID] = storage.WebClient(c.ID, c.Secret, c.RedirectURIs...)
	}
	apps := map[string]*App{}
	for _, a := range opts.Apps {
		reg[a.ID] = storage.WebClient(a.ID, a.Secret, a.RedirectURIs...)
		a.Audience, a.Claims = slices.Clone(a.Audience), maps.Clone(a.Claims)
		apps[a.ID] = &a
	}
	st := &serviceStorage{
		apps:     apps,
		Storage:  storage.NewStorageWithClients(storage.NewUserStore(issuer), reg),
		issuer:   issuer,
		services: map[string]*Service{},
		tokens:   map[string]*serviceToken{},
	}
	for _, s := range opts.Services {
		s.Audience = slices.Clone(s.Audience)
		if len(s.Audience) == 0 {
			s.Audience = []string{s.ID}
		}
		s.Claims = maps.Clone(s.Claims)
		st.services[s.ID] = &s
	}
	if err := st.RotateKey(); err != nil {
		t.Fatal(err)
	}
	// The example server logs every request to the default logger.
	slog.SetDefault(slog.New(slog.DiscardHandler))
	router := exampleop.SetupServer(issuer, st, nil, false)
	srv := &httptest.Server{Listener: ln, Config: &http.Server{Handler: router}}
	srv.Start()
	t.Cleanup(srv.Close)
	return &Provider{Server: &Server{Issuer: issuer, srv: srv}, st: st}
}

// RotateKey makes a new RS256 key the signing key; the old keys stay in
// the JWK Set, so tokens they signed still verify.
func (p *Provider) RotateKey() error { return p.st.RotateKey() }

// DropOldKeys removes every key but the signing key from the JWK Set.
func (p *Provider) DropOldKeys() { p.st.dropOldKeys() }

// SigningKeyID returns the kid of the current signing key.
func (p *Provider) SigningKeyID() string {
	p.st.mu.Lock()
	defer p.st.mu.Unlock()
	return p.st.keys[len(p.st.keys)-1].id
}

// ServiceToken obtains an access token for a Service with the
// client_credentials grant at the token endpoint.
func (p *Provider) ServiceToken(ctx context.Context, id, secret string, scopes ...string) (string, error) {
	form := url.Values{"grant_type": {"client_credentials"}}
	if len(scopes) > 0 {
		form.Set("scope", strings.Join(scopes, " "))
	}
	var out struct {
		AccessToken string `json:"access_token"`
	}
	if err := p.post(ctx, "oauth/token", id, secret, form, &out); err != nil {
		return "", err
	}
	if out.AccessToken == "" {
		return "", errors.New("oidctest: the token response has no access_token")
	}
	return out.AccessToken, nil
}

// Revoke revokes a Service's access token at the revocation endpoint.
func (p *Provider) Revoke(ctx context.Context, id, secret, token string) error {
	return p.post(ctx, "revoke", id, secret, url.Values{"token": {token}, "token_type_hint": {"access_token"}}, nil)
}

func (p *Provider) post(ctx context.Context, path, id, secret string, form url.Values, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.Issuer+path, strings.NewReader(form.Encode()))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(url.QueryEscape(id), url.QueryEscape(secret))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("oidctest: POST %s: status %d", path, resp.StatusCode)
	}
	if out == nil {
		return nil
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

// serviceStorage is the example storage with machine clients, JWT access
// tokens for them, and rotating keys.
type serviceStorage struct {
	*storage.Storage
	issuer   string
	services map[string]*Service // never modified after Start
	apps     map[string]*App     // never modified after Start

	mu     sync.Mutex
	keys   []*rsaKey // the last signs
	tokens map[string]*serviceToken
}

type serviceToken struct {
	service *Service
	scopes  []string
	exp     time.Time
	iat     time.Time
	revoked bool
}

// RotateKey implements Provider.RotateKey.
func (s *serviceStorage) RotateKey() error {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.keys = append(s.keys, &rsaKey{id: fmt.Sprintf("key-%d-%s", len(s.keys)+1, rand.Text()[:8]), key: k})
	return nil
}

func (s *serviceStorage) dropOldKeys() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.keys = s.keys[len(s.keys)-1:]
}

// SigningKey implements op.Storage.
func (s *serviceStorage) SigningKey(context.Context) (op.SigningKey, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.keys[len(s.keys)-1], nil
}

// SignatureAlgorithms implements op.Storage.
func (s *serviceStorage) SignatureAlgorithms(context.Context) ([]jose.SignatureAlgorithm, error) {
	return []jose.SignatureAlgorithm{jose.RS256}, nil
}

// KeySet implements op.Storage.
func (s *serviceStorage) KeySet(context.Context) ([]op.Key, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]op.Key, len(s.keys))
	for i, k := range s.keys {
		out[i] = publicKey{k}
	}
	return out, nil
}

// GetClientByClientID implements op.Storage.
func (s *serviceStorage) GetClientByClientID(ctx context.Context, id string) (op.Client, error) {
	if svc := s.services[id]; svc != nil {
		return serviceClient{svc}, nil
	}
	if s.app(id) != nil {
		c, err := s.Storage.GetClientByClientID(ctx, id)
		if err != nil {
			return nil, err
		}
		return appClient{c}, nil
	}
	return s.Storage.GetClientByClientID(ctx, id)
}

// AuthorizeClientIDSecret implements op.Storage.
func (s *serviceStorage) AuthorizeClientIDSecret(ctx context.Context, id, secret string) error {
	if svc := s.services[id]; svc != nil {
		if svc.Secret != secret {
			return errors.New("invalid secret")
		}
		return nil
	}
	return s.Storage.AuthorizeClientIDSecret(ctx, id, secret)
}

// ClientCredentials implements op.ClientCredentialsStorage.
func (s *serviceStorage) ClientCredentials(ctx context.Context, id, secret string) (op.Client, error) {
	if svc := s.services[id]; svc != nil {
		if svc.Secret != secret {
			return nil, errors.New("wrong service user or password")
		}
		return serviceClient{svc}, nil
	}
	return s.Storage.ClientCredentials(ctx, id, secret)
}

// ClientCredentialsTokenRequest implements op.ClientCredentialsStorage.
func (s *serviceStorage) ClientCredentialsTokenRequest(ctx context.Context, id string, scopes []string) (op.TokenRequest, error) {
	if svc := s.services[id]; svc != nil {
		return &oidc.JWTTokenRequest{Subject: svc.ID, Audience: slices.Clone(svc.Audience), Scopes: scopes}, nil
	}
	return s.Storage.ClientCredentialsTokenRequest(ctx, id, scopes)
}

// CreateAccessToken implements op.Storage, recording a Service's tokens.
func (s *serviceStorage) CreateAccessToken(ctx context.Context, req op.TokenRequest) (string, time.Time, error) {
	req = unwrapApp(req)
	id, exp, err := s.Storage.CreateAccessToken(ctx, req)
	if svc := s.services[req.GetSubject()]; err == nil && svc != nil {
		s.mu.Lock()
		s.tokens[id] = &serviceToken{service: svc, scopes: slices.Clone(req.GetScopes()), exp: exp, iat: time.Now()}
		s.mu.Unlock()
	}
	return id, exp, err
}

// GetPrivateClaimsFromScopes implements op.Storage: a Service's JWTs
// carry scope and its Claims.
func (s *serviceStorage) GetPrivateClaimsFromScopes(ctx context.Context, userID, clientID string, scopes []string) (map[string]any, error) {
	if a := s.app(clientID); a != nil {
		return s.appClaims(ctx, a, userID, scopes)
	}
	svc := s.services[clientID]
	if svc == nil {
		return s.Storage.GetPrivateClaimsFromScopes(ctx, userID, clientID, scopes)
	}
	claims := maps.Clone(svc.Claims)
	if claims == nil {
		claims = map[string]any{}
	}
	if len(scopes) > 0 {
		claims["scope"] = strings.Join(scopes, " ")
	}
	return claims, nil
}

// SetIntrospectionFromToken implements op.Storage.
func (s *serviceStorage) SetIntrospectionFromToken(ctx context.Context, resp *oidc.IntrospectionResponse, tokenID, subject, clientID string) error {
	s.mu.Lock()
	t := s.tokens[tokenID]
	s.mu.Unlock()
	if t == nil {
		err := s.Storage.SetIntrospectionFromToken(ctx, resp, tokenID, subject, clientID)
		if err == nil {
			s.appIntrospection(resp)
		}
		return err
	}
	if t.revoked || !time.Now().Before(t.exp) {
		return errors.New("token is not active")
	}
	resp.Subject, resp.ClientID, resp.Scope = t.service.ID, t.service.ID, t.scopes
	resp.Audience, resp.Issuer, resp.JWTID = slices.Clone(t.service.Audience), s.issuer, tokenID
	resp.Expiration, resp.IssuedAt = oidc.FromTime(t.exp), oidc.FromTime(t.iat)
	resp.TokenType = oidc.BearerToken
	resp.Claims = maps.Clone(t.service.Claims)
	return nil
}

// RevokeToken implements op.Storage.
func (s *serviceStorage) RevokeToken(ctx context.Context, tokenIDOrToken, userID, clientID string) *oidc.Error {
	s.mu.Lock()
	t := s.tokens[tokenIDOrToken]
	if t != nil && t.service.ID == clientID {
		t.revoked = true
	}
	s.mu.Unlock()
	if t != nil {
		if t.service.ID != clientID {
			return oidc.ErrInvalidClient().WithDescription("token was not issued for this client")
		}
		return nil
	}
	return s.Storage.RevokeToken(ctx, tokenIDOrToken, userID, clientID)
}

// rsaKey is a signing key (op.SigningKey).
type rsaKey struct {
	id  string
	key *rsa.PrivateKey
}

func (k *rsaKey) SignatureAlgorithm() jose.SignatureAlgorithm { return jose.RS256 }
func (k *rsaKey) Key() any                                    { return k.key }
func (k *rsaKey) ID() string                                  { return k.id }

// publicKey is the public part of an rsaKey (op.Key).
type publicKey struct{ k *rsaKey }

func (p publicKey) ID() string                         { return p.k.id }
func (p publicKey) Algorithm() jose.SignatureAlgorithm { return jose.RS256 }
func (p publicKey) Use() string                        { return "sig" }
func (p publicKey) Key() any                           { return &p.k.key.PublicKey }

// serviceClient is a Service as an op.Client.
type serviceClient struct{ s *Service }

func (c serviceClient) GetID() string                       { return c.s.ID }
func (c serviceClient) RedirectURIs() []string              { return nil }
func (c serviceClient) PostLogoutRedirectURIs() []string    { return nil }
func (c serviceClient) ApplicationType() op.ApplicationType { return op.ApplicationTypeWeb }
func (c serviceClient) AuthMethod() oidc.AuthMethod         { return oidc.AuthMethodBasic }
func (c serviceClient) ResponseTypes() []oidc.ResponseType  { return nil }
func (c serviceClient) GrantTypes() []oidc.GrantType {
	return []oidc.GrantType{oidc.GrantTypeClientCredentials}
}
func (c serviceClient) LoginURL(string) string { return "" }
func (c serviceClient) AccessTokenType() op.AccessTokenType {
	if c.s.JWT {
		return op.AccessTokenTypeJWT
	}
	return op.AccessTokenTypeBearer
}
func (c serviceClient) IDTokenLifetime() time.Duration { return time.Hour }
func (c serviceClient) DevMode() bool                  { return true }
func (c serviceClient) RestrictAdditionalIdTokenScopes() func([]string) []string {
	return func(s []string) []string { return s }
}
func (c serviceClient) RestrictAdditionalAccessTokenScopes() func([]string) []string {
	return func(s []string) []string { return s }
}
func (c serviceClient) IsScopeAllowed(string) bool           { return true }
func (c serviceClient) IDTokenUserinfoClaimsAssertion() bool { return false }
func (c serviceClient) ClockSkew() time.Duration             { return 0 }
