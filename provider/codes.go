package provider

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	oauth "github.com/mcp-oauth/oauth"
	"github.com/mcp-oauth/oauth/internal/jwtkeys"
	"github.com/mcp-oauth/oauth/internal/redirect"
	"github.com/mcp-oauth/oauth/internal/secret"
	"github.com/mcp-oauth/oauth/storage"
)

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
		if err := p.revokeGrant(ctx, o.ID, EndReplaced); err != nil && !errors.Is(err, storage.ErrNotFound) {
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
	if err := p.revokeGrant(ctx, grantID, EndRevoked); err != nil && !errors.Is(err, storage.ErrNotFound) {
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
	// The access token is made first: a failure to make it (a hook's
	// error, a reserved claim) must not consume the code.
	resp, err := p.tokenResponse(ctx, client.ID, code.GrantID, code.Subject, code.Scopes, code.Resource)
	if err != nil {
		return nil, err
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
	resp.RefreshToken = rt
	return resp, nil
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

// tokenResponse makes the token response of a grant without its refresh
// token: a signed access token with the grant's custom claims.
func (p *Provider) tokenResponse(ctx context.Context, clientID, grantID, subject string, scopes []string, resource string) (*oauth.TokenResponse, error) {
	extra, sealed, err := p.customClaims(ctx, grantID)
	if err != nil {
		return nil, err
	}
	now := p.now()
	return p.sign(ctx, &jwtkeys.Claims{
		RegisteredClaims: registeredClaims(p.opts.Issuer, subject, resource, now, p.opts.AccessTokenTTL),
		ClientID:         clientID,
		Scope:            strings.Join(scopes, " "),
		GrantID:          grantID,
		Extra:            extra,
		SealedExtra:      sealed,
	}, p.opts.AccessTokenTTL)
}

// sign signs c, which expires in ttl, with the active key and returns the
// token response.
func (p *Provider) sign(ctx context.Context, c *jwtkeys.Claims, ttl time.Duration) (*oauth.TokenResponse, error) {
	at, err := p.freshKeys(ctx).active.Sign(c)
	if err != nil {
		return nil, fmt.Errorf("provider: %w", err)
	}
	if len(at) > maxTokenLength {
		// LoadAccessToken would refuse it: fail here, loudly, not at use.
		return nil, fmt.Errorf("provider: the custom claims of grant %s make its access token %d bytes, over %d: %w", c.GrantID, len(at), maxTokenLength, oauth.ErrGrantDataLimit)
	}
	return &oauth.TokenResponse{
		AccessToken: at,
		TokenType:   "Bearer",
		ExpiresIn:   int64(ttl / time.Second),
		Scope:       c.Scope,
	}, nil
}

// customClaims returns the custom claims of the grant's next access token,
// plain and sealed: its setup step's (Grant.Claims, with the sealed ones
// kept there encrypted), then Options.TokenClaims's, which replace those
// of the same name, all checked by checkClaims. It reads the grant unless
// this process made or read it before (its claims never change); a grant
// that is gone has none (the redemption or rotation that follows then
// fails).
func (p *Provider) customClaims(ctx context.Context, grantID string) (plain, sealed map[string]any, err error) {
	g := p.created.get(grantID)
	if g == nil {
		switch g, err = p.store.GetGrant(ctx, grantID); {
		case errors.Is(err, storage.ErrNotFound):
			return nil, nil, nil
		case err != nil:
			return nil, nil, fmt.Errorf("provider: get grant: %w", err)
		}
		p.created.put(g)
	}
	return p.customClaimsOf(ctx, g)
}

// customClaimsOf is customClaims for grant g at hand.
func (p *Provider) customClaimsOf(ctx context.Context, g *oauth.Grant) (plain, sealed map[string]any, err error) {
	grantID := g.ID
	stored, storedSealed, err := p.splitStoredClaims(g)
	if err != nil {
		return nil, nil, err
	}
	claims := maps.Clone(stored)
	if claims == nil {
		claims = map[string]any{}
	}
	for name, v := range storedSealed {
		claims[name] = oauth.Sealed{Value: v}
	}
	if p.opts.TokenClaims != nil {
		// The hook gets its own copy: g is shared by the grants cache.
		hg := *public(g)
		hg.Claims, hg.Scopes = maps.Clone(hg.Claims), slices.Clone(hg.Scopes)
		more, err := p.opts.TokenClaims(ctx, &hg)
		if err != nil {
			return nil, nil, fmt.Errorf("provider: TokenClaims of grant %s: %w", grantID, err)
		}
		maps.Copy(claims, more)
	}
	plain, sealed, err = checkClaims(claims)
	if err != nil {
		return nil, nil, fmt.Errorf("provider: access token of grant %s: %w", grantID, err)
	}
	return plain, sealed, nil
}
