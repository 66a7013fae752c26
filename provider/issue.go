package provider

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"

	oauth "github.com/mcp-oauth/oauth"
	"github.com/mcp-oauth/oauth/internal/jwtkeys"
	"github.com/mcp-oauth/oauth/storage"
)

// TokenTypeAccessToken is the RFC 8693 §3 token type identifier of an
// OAuth 2.0 access token.
const TokenTypeAccessToken = "urn:ietf:params:oauth:token-type:access_token"

// MaxActDepth bounds how many exchanges a token may have been through (the
// nesting of its act claim, RFC 8693 §4.1), and so its size.
const MaxActDepth = 4

// IssuedGrantTypes implements oauth.TokenIssuer: client credentials and
// token exchange if one of Options.Clients is configured with them.
func (p *Provider) IssuedGrantTypes() []string {
	var out []string
	for _, gt := range []string{oauth.GrantTypeClientCredentials, oauth.GrantTypeTokenExchange} {
		for _, c := range p.static {
			if slices.Contains(c.GrantTypes, gt) {
				out = append(out, gt)
				break
			}
		}
	}
	return out
}

// IssueToken implements oauth.TokenIssuer. The token lives on a grant of
// req.GrantType for client, subject, resource and scopes that lives until
// the token expires: an active one made by an earlier issue is extended
// (a service that asks every minute keeps one grant), else a new one is
// made. Such grants are listed with the owner's (Grant.GrantType tells
// them apart); revoking one stops its tokens at once.
func (p *Provider) IssueToken(ctx context.Context, client *oauth.Client, req *oauth.IssueRequest) (*oauth.TokenResponse, error) {
	switch req.GrantType {
	case oauth.GrantTypeClientCredentials, oauth.GrantTypeJWTBearer:
	default:
		return nil, fmt.Errorf("provider: IssueToken: grant type %q is not one of client credentials and JWT bearer", req.GrantType)
	}
	if req.Subject == "" || len(req.Subject) > maxSubjectLen {
		return nil, fmt.Errorf("provider: IssueToken: subject must be 1 to %d bytes", maxSubjectLen)
	}
	if !p.servesResource(req.Resource) {
		return nil, oauth.ErrInvalidTarget.WithDescription("unknown resource")
	}
	now := p.now()
	exp := now.Add(p.opts.AccessTokenTTL)
	g, err := p.machineGrant(ctx, client, req, exp, now)
	if err != nil {
		return nil, err
	}
	resp, err := p.tokenResponse(ctx, client.ID, g.ID, g.Subject, req.Scopes, req.Resource)
	if err != nil {
		return nil, err
	}
	p.touch(ctx, client)
	return resp, nil
}

// maxSubjectLen bounds a subject, as Approve does.
const maxSubjectLen = 255

// servesResource reports whether r is one of the Provider's resources.
func (p *Provider) servesResource(r string) bool {
	return r == p.opts.Resource || slices.Contains(p.opts.Resources, r)
}

// machineGrant returns the grant an IssueToken's token lives on, extended
// or created to last until exp.
func (p *Provider) machineGrant(ctx context.Context, client *oauth.Client, req *oauth.IssueRequest, exp, now time.Time) (*oauth.Grant, error) {
	scopes := slices.Clone(req.Scopes)
	slices.Sort(scopes)
	if len(req.Claims) == 0 {
		grants, err := p.store.ListSubjectGrants(ctx, req.Subject)
		if err != nil {
			return nil, fmt.Errorf("provider: list grants: %w", err)
		}
		for _, o := range grants {
			os := slices.Clone(o.Scopes)
			slices.Sort(os)
			if o.ClientID != client.ID || o.GrantType != req.GrantType || o.Resource != req.Resource ||
				!slices.Equal(os, scopes) || len(o.Claims) != 0 || !o.ExpiresAt.After(now) {
				continue
			}
			switch err := p.store.ExtendGrant(ctx, o.ID, exp, now); {
			case err == nil:
				return o, nil
			case !errors.Is(err, storage.ErrNotFound):
				return nil, fmt.Errorf("provider: extend grant: %w", err)
			}
		}
	}
	claims, sealed, err := p.checkSetup(&oauth.GrantSetup{Claims: req.Claims})
	if err != nil {
		return nil, err
	}
	g := &oauth.Grant{
		ID: uuid.NewString(), ClientID: client.ID, Subject: req.Subject, Scopes: scopes, Resource: req.Resource,
		CreatedAt: now, LastUsedAt: now, GrantType: req.GrantType, ExpiresAt: exp,
	}
	if g.Claims, err = p.storeSealedClaims(g.ID, claims, sealed); err != nil {
		return nil, err
	}
	rec, err := p.newGrantRecord(g, nil, now)
	if err != nil {
		return nil, err
	}
	if err := p.store.CreateGrant(ctx, rec); err != nil {
		return nil, fmt.Errorf("provider: create grant: %w", err)
	}
	p.created.put(g)
	p.log.Info("mcpauth: grant made", "grant_id", g.ID, "client_id", client.ID, "grant_type", g.GrantType)
	return g, nil
}

// ExchangeToken implements oauth.TokenIssuer (RFC 8693 §2.2). The new
// token belongs to subject's grant, so revoking that grant stops it; its
// client_id is client, its act claim names client as the actor (with
// subject's act nested, RFC 8693 §4.1), and it carries the grant's custom
// claims. It expires with subject, or sooner.
func (p *Provider) ExchangeToken(ctx context.Context, client *oauth.Client, subject *oauth.AccessToken, scopes []string, resource string) (*oauth.TokenResponse, error) {
	if !p.servesResource(resource) {
		return nil, oauth.ErrInvalidTarget.WithDescription("unknown resource")
	}
	for _, s := range scopes {
		if !slices.Contains(subject.Scopes, s) {
			return nil, oauth.ErrInvalidScope.WithDescription("requested scope exceeds the subject token's")
		}
	}
	if actDepth(subject.Act) >= MaxActDepth {
		return nil, oauth.ErrInvalidRequest.WithDescription(fmt.Sprintf("the subject token has been exchanged %d times already", MaxActDepth))
	}
	g := p.created.get(subject.GrantID)
	if g == nil {
		var err error
		switch g, err = p.store.GetGrant(ctx, subject.GrantID); {
		case errors.Is(err, storage.ErrNotFound):
			return nil, oauth.ErrInvalidGrant.WithDescription("the subject token's grant has ended")
		case err != nil:
			return nil, fmt.Errorf("provider: get grant: %w", err)
		}
		p.created.put(g)
	}
	if !g.RevokedAt.IsZero() {
		return nil, oauth.ErrInvalidGrant.WithDescription("the subject token's grant has ended")
	}
	extra, sealed, err := p.customClaimsOf(ctx, g)
	if err != nil {
		return nil, err
	}
	now := p.now()
	ttl := p.opts.AccessTokenTTL
	if left := subject.ExpiresAt.Sub(now).Truncate(time.Second); !subject.ExpiresAt.IsZero() && left < ttl {
		ttl = left
	}
	if ttl <= 0 {
		return nil, oauth.ErrInvalidGrant.WithDescription("the subject token has expired")
	}
	rc := registeredClaims(p.opts.Issuer, subject.Subject, resource, now, ttl)
	act := map[string]any{"sub": client.ID}
	if subject.Act != nil {
		act["act"] = subject.Act
	}
	resp, err := p.sign(ctx, &jwtkeys.Claims{
		RegisteredClaims: rc,
		ClientID:         client.ID,
		Scope:            strings.Join(scopes, " "),
		GrantID:          g.ID,
		GrantClient:      g.ClientID,
		Act:              act,
		Extra:            extra,
		SealedExtra:      sealed,
	}, ttl)
	if err != nil {
		return nil, err
	}
	resp.IssuedTokenType = TokenTypeAccessToken
	p.log.Info("mcpauth: token exchanged", "grant_id", g.ID, "client_id", client.ID, "resource", resource)
	return resp, nil
}

// actDepth returns how many actors act names, following its nested act.
func actDepth(act map[string]any) int {
	n := 0
	for act != nil && n <= MaxActDepth {
		n++
		act, _ = act["act"].(map[string]any)
	}
	return n
}

var _ oauth.TokenIssuer = (*Provider)(nil)
