package provider

import (
	"context"
	"errors"
	"fmt"

	oauth "github.com/mcp-oauth/oauth"
	"github.com/mcp-oauth/oauth/storage"
)

// What the console and the terminal commands manage (oauth.Administrator).

var _ oauth.Administrator = (*Provider)(nil)

// ListClients returns the live registered clients, oldest first.
func (p *Provider) ListClients(ctx context.Context) ([]*oauth.Client, error) {
	list, err := p.store.ListClients(ctx, p.now())
	if err != nil {
		return nil, err
	}
	var static []*oauth.Client
	for _, sc := range p.opts.Clients {
		static = append(static, p.static[sc.ID])
	}
	return append(static, list...), nil
}

// DeleteClient deletes a client and revokes all of its grants, deleting
// their data; Options.OnGrantEnd hears of each.
func (p *Provider) DeleteClient(ctx context.Context, clientID string) error {
	if p.static[clientID] != nil {
		return oauth.ErrInvalidRequest.WithDescription("client " + clientID + " is configured in code (Options.Clients), not registered")
	}
	ended, err := p.store.DeleteClient(ctx, clientID, p.now())
	if p.grants != nil {
		p.grants.forgetActive() // whatever err says, grants may have gone
	}
	if err != nil {
		return fmt.Errorf("provider: delete client: %w", err)
	}
	p.log.Info("mcpauth: client deleted", "client_id", clientID, "grants_revoked", len(ended))
	for _, g := range ended {
		p.grantEnded(ctx, g, EndClientDeleted)
	}
	return nil
}

// RevokeSubjectGrants revokes every active grant that subject approved,
// deleting their data, and returns how many it revoked: for when an owner
// is removed (the example's "users delete" calls it). Options.OnGrantEnd
// hears of each.
func (p *Provider) RevokeSubjectGrants(ctx context.Context, subject string) (int, error) {
	grants, err := p.store.ListSubjectGrants(ctx, subject)
	if err != nil {
		return 0, fmt.Errorf("provider: list grants of subject: %w", err)
	}
	n := 0
	for _, g := range grants {
		switch err := p.revokeGrant(ctx, g.ID, EndSubjectRemoved); {
		case errors.Is(err, storage.ErrNotFound):
		case err != nil:
			return n, fmt.Errorf("provider: revoke grant of subject: %w", err)
		default:
			n++
		}
	}
	p.log.Info("mcpauth: grants of a removed subject revoked", "subject", subject, "grants", n)
	return n, nil
}

// ListGrants returns the active grants, oldest first.
func (p *Provider) ListGrants(ctx context.Context) ([]*oauth.Grant, error) {
	gs, err := p.store.ListGrants(ctx)
	for i, g := range gs {
		gs[i] = public(g)
	}
	return gs, err
}

// RevokeGrant revokes a grant: its refresh tokens and codes are deleted and
// its access tokens are refused from the next request on.
func (p *Provider) RevokeGrant(ctx context.Context, grantID string) error {
	if err := p.revokeGrant(ctx, grantID, EndRevoked); err != nil {
		return fmt.Errorf("provider: revoke grant: %w", err)
	}
	p.log.Info("mcpauth: grant revoked", "grant_id", grantID)
	return nil
}

// revokeGrant revokes a grant in the store (deleting its data) and, once
// the store has it (or has no such grant), in the Provider's memory, so
// that its access tokens are refused from the next request on; if this
// call ended the grant, Options.OnGrantEnd hears of it with reason.
func (p *Provider) revokeGrant(ctx context.Context, id, reason string) error {
	ended, err := p.store.RevokeGrant(ctx, id, p.now())
	if p.grants != nil && (err == nil || errors.Is(err, storage.ErrNotFound)) {
		p.grants.setRevoked(id)
	}
	if err == nil && ended != nil {
		p.grantEnded(ctx, ended, reason)
	}
	return err
}
