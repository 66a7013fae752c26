package provider

import (
	"context"
	"fmt"

	"github.com/mcp-oauth/oauth/internal/jwtkeys"
)

type keySet struct {
	active *jwtkeys.Key
	byID   map[string]*jwtkeys.Key
	all    []*jwtkeys.Key
}

// reloadKeys rereads the key set from the store. Reloads are serialized, so
// a slow read can never replace the result of a later one (such as the
// reload that follows RotateKeys).
func (p *Provider) reloadKeys(ctx context.Context) error {
	p.keysMu.Lock()
	defer p.keysMu.Unlock()
	return p.reloadKeysLocked(ctx)
}

func (p *Provider) reloadKeysLocked(ctx context.Context) error {
	recs, err := p.store.ListKeys(ctx)
	if err != nil {
		return fmt.Errorf("provider: load keys: %w", err)
	}
	ks := &keySet{byID: make(map[string]*jwtkeys.Key, len(recs))}
	for _, r := range recs {
		der, err := p.kek.Open(r.ID, r.Private)
		if err != nil && !r.RetiredAt.IsZero() {
			// A retired key sealed with a KEK this replica lacks (during a
			// KEK rollout) only verifies old tokens; go on without it.
			p.log.Warn("mcpauth: skipping a retired signing key that does not decrypt", "kid", r.ID, "err", err)
			continue
		}
		if err != nil {
			return fmt.Errorf("provider: %w", err)
		}
		plain := *r
		plain.Private = der
		k, err := jwtkeys.Parse(&plain)
		if err != nil {
			return fmt.Errorf("provider: %w", err)
		}
		ks.byID[k.ID] = k
		ks.all = append(ks.all, k)
		if k.RetiredAt.IsZero() && (ks.active == nil) {
			ks.active = k
		}
	}
	if old := p.keys.Load(); old != nil && p.tokens != nil {
		for id := range old.byID {
			if ks.byID[id] == nil {
				// Tokens signed with a deleted key must not outlive it in
				// the cache.
				p.tokens.Clear()
				break
			}
		}
	}
	p.keys.Store(ks)
	p.keysAt.Store(p.now().UnixNano())
	return nil
}

// freshKeys returns the key set, rereading it first when it is older than
// keyRefreshInterval, so that a rotation made by another replica sharing
// the store is used for signing and published in the JWKS within that
// interval. One caller rereads while the others wait and then reuse its
// result; a failed reread keeps the current set.
func (p *Provider) freshKeys(ctx context.Context) *keySet {
	stale := func() bool { return p.now().UnixNano()-p.keysAt.Load() > int64(keyRefreshInterval) }
	if stale() {
		p.keysMu.Lock()
		if stale() {
			if err := p.reloadKeysLocked(ctx); err != nil {
				p.log.Error("mcpauth: reload signing keys", "err", err)
				p.keysAt.Store(p.now().UnixNano()) // do not retry on every request
			}
		}
		p.keysMu.Unlock()
	}
	return p.keys.Load()
}

func (p *Provider) lookupKey(kid string) *jwtkeys.Key {
	return p.keys.Load().byID[kid]
}

// RotateKeys generates a new signing key and makes it the active one. Older
// keys keep verifying the tokens they signed; [Provider.Sweep] deletes a
// retired key once every token it signed has expired.
func (p *Provider) RotateKeys(ctx context.Context) error {
	rec, err := jwtkeys.Generate(p.opts.SigningAlgorithm, p.now())
	if err != nil {
		return fmt.Errorf("provider: %w", err)
	}
	if rec.Private, err = p.kek.Seal(rec.ID, rec.Private); err != nil {
		return fmt.Errorf("provider: seal key: %w", err)
	}
	if err := p.store.AddKey(ctx, rec); err != nil {
		return fmt.Errorf("provider: store key: %w", err)
	}
	p.log.Info("mcpauth: new signing key active", "kid", rec.ID, "alg", rec.Algorithm)
	return p.reloadKeys(ctx)
}

// JWKS returns the JWK Set (RFC 7517 §5) of every key that may still verify
// a live token.
func (p *Provider) JWKS(ctx context.Context) ([]byte, error) {
	return jwtkeys.MarshalJWKS(p.freshKeys(ctx).all)
}
