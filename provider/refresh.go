package provider

import (
	"context"
	"errors"
	"fmt"

	oauth "github.com/mcp-oauth/oauth"
	"github.com/mcp-oauth/oauth/internal/secret"
	"github.com/mcp-oauth/oauth/storage"
)

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
	if len(scopes) == 0 {
		scopes = rt.Scopes
	}
	// The access token is made first: a failure to make it (a hook's
	// error, a reserved claim) must not spend the refresh token.
	resp, err := p.tokenResponse(ctx, client.ID, rt.GrantID, rt.Subject, scopes, rt.Resource)
	if err != nil {
		return nil, err
	}
	switch err := p.store.RotateRefreshToken(ctx, rec.Parent, rt.Rotation, rec, now); {
	case errors.Is(err, storage.ErrConflict), errors.Is(err, storage.ErrNotFound):
		return nil, oauth.ErrInvalidGrant.WithDescription("refresh token already used or revoked")
	case err != nil:
		return nil, fmt.Errorf("provider: rotate refresh token: %w", err)
	}
	p.touch(ctx, client)
	resp.RefreshToken = next
	return resp, nil
}
