package provider

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	oauth "github.com/mcp-oauth/oauth"
	"github.com/mcp-oauth/oauth/internal/jwtkeys"
	"github.com/mcp-oauth/oauth/internal/secret"
	"github.com/mcp-oauth/oauth/internal/tokencache"
	"github.com/mcp-oauth/oauth/storage"
)

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
		e := verifiedOf(c)
		at := &e.at
		at.Token = token
		return at, p.checkGrant(ctx, at.GrantID, e.grantClient)
	}
	if len(token) > maxTokenLength {
		return nil, errInvalidAccessToken
	}
	key := tokencache.KeyOf(token)
	now := p.now().UnixNano()
	e, ok := p.tokens.Get(key, now)
	if !ok {
		c, err := p.verify(ctx, token)
		if err != nil {
			return nil, errInvalidAccessToken.WithCause(err)
		}
		e = verifiedOf(c) // Token empty: the cache never holds it
		p.tokens.Put(key, e, e.at.ExpiresAt.UnixNano(), now)
	}
	if err := p.checkGrant(ctx, e.at.GrantID, e.grantClient); err != nil {
		return nil, err
	}
	at := e.at
	at.Token = token
	at.Scopes = slices.Clone(at.Scopes)
	at.Claims = maps.Clone(at.Claims)
	at.Act = maps.Clone(at.Act)
	return &at, nil
}

// verified is a verified access token as the cache holds it: without the
// token itself, and with the client of its grant, which for an exchanged
// token is not the client it was issued to.
type verified struct {
	at          oauth.AccessToken
	grantClient string
}

func verifiedOf(c *jwtkeys.Claims) *verified {
	e := &verified{at: *c.AccessToken(""), grantClient: c.ClientID}
	if c.GrantClient != "" {
		e.grantClient = c.GrantClient
	}
	return e
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
// client's. Anything else is ignored, and so is an access token obtained
// by token exchange, which lives on the grant of the token it was
// exchanged for and expires with it.
func (p *Provider) RevokeToken(ctx context.Context, client *oauth.Client, token, hint string) error {
	grantID := ""
	if secret.WellFormed(secret.PrefixRefreshToken, token) {
		rec, err := p.store.GetRefreshToken(ctx, secret.Hash(token), p.now())
		if err == nil && rec.ClientID == client.ID {
			grantID = rec.GrantID
		} else if err != nil && !errors.Is(err, storage.ErrNotFound) {
			return fmt.Errorf("provider: revoke: %w", err)
		}
	} else if c, err := p.verify(ctx, token); err == nil && c.ClientID == client.ID && c.GrantClient == "" {
		// An exchanged token (GrantClient set) lives on the grant of the
		// token it was exchanged for, which is not its client's to end.
		grantID = c.GrantID
	}
	if grantID == "" {
		return nil
	}
	if err := p.revokeGrant(ctx, grantID, EndRevoked); err != nil && !errors.Is(err, storage.ErrNotFound) {
		return fmt.Errorf("provider: revoke: %w", err)
	}
	p.log.Info("mcpauth: grant revoked by client", "grant_id", grantID, "client_id", client.ID)
	return nil
}
