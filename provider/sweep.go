package provider

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/mcp-oauth/oauth/storage"
)

// Sweep deletes expired rows, and signing keys retired longer ago than the
// access-token lifetime plus a margin (so no live token needs them). Keys
// are judged by a fresh read of the store, so a replica whose cached set is
// stale never deletes the key another replica made active.
func (p *Provider) Sweep(ctx context.Context) error {
	now := p.now()
	p.lastSweep.Store(now.UnixNano())
	res, err := p.store.Sweep(ctx, now)
	if err != nil {
		return fmt.Errorf("provider: sweep: %w", err)
	}
	n := res.Rows
	for _, g := range res.Ended {
		p.grantEnded(ctx, g, EndExpired)
	}
	if err := p.reloadKeys(ctx); err != nil {
		return err
	}
	deleted := 0
	for _, k := range p.keys.Load().all {
		if !k.RetiredAt.IsZero() && now.Sub(k.RetiredAt) > p.opts.AccessTokenTTL+keyRetireMargin {
			if err := p.store.DeleteKey(ctx, k.ID); err != nil && !errors.Is(err, storage.ErrNotFound) {
				return fmt.Errorf("provider: delete retired key: %w", err)
			}
			deleted++
		}
	}
	if deleted > 0 {
		if err := p.reloadKeys(ctx); err != nil {
			return err
		}
	}
	if n > 0 || deleted > 0 {
		p.log.Debug("mcpauth: swept expired rows", "rows", n, "keys", deleted)
	}
	return nil
}

// maybeSweep runs Sweep in the background at most every sweepInterval.
func (p *Provider) maybeSweep() {
	last := p.lastSweep.Load()
	now := p.now().UnixNano()
	if now-last < int64(sweepInterval) || !p.lastSweep.CompareAndSwap(last, now) {
		return
	}
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := p.Sweep(ctx); err != nil {
			p.log.Error("mcpauth: sweep failed", "err", err)
		}
	}()
}
