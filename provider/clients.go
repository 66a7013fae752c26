package provider

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/modelcontextprotocol/go-sdk/oauthex"

	oauth "github.com/mcp-oauth/oauth"
	"github.com/mcp-oauth/oauth/internal/secret"
	"github.com/mcp-oauth/oauth/storage"
)

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
	if c := p.static[clientID]; c != nil {
		return c, nil
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
	if md.TokenEndpointAuthMethod != oauth.AuthMethodNone && md.TokenEndpointAuthMethod != oauth.AuthMethodPrivateKeyJWT {
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
