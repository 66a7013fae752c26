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
