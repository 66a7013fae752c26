package memory

import (
	"context"
	"fmt"
	"time"

	"github.com/mcp-oauth/oauth/storage"
)

// GetCode returns a copy of the code, redeemed or not, or
// storage.ErrNotFound if it does not exist or has expired.
func (s *Store) GetCode(ctx context.Context, hash string, now time.Time) (*storage.CodeRecord, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.codes[hash]
	if !ok || expired(c.ExpiresAt, now) {
		return nil, storage.ErrNotFound
	}
	return copyCode(c), nil
}

// RedeemCode marks the code consumed at now and stores a copy of rt, under
// one lock. storage.ErrNotFound if the code does not exist or has expired;
// storage.ErrConflict if it was already redeemed, its grant is revoked or
// missing, or a refresh token with rt's hash already exists.
func (s *Store) RedeemCode(ctx context.Context, hash string, now time.Time, rt *storage.RefreshRecord) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.codes[hash]
	if !ok || expired(c.ExpiresAt, now) {
		return storage.ErrNotFound
	}
	switch {
	case !c.ConsumedAt.IsZero():
		return fmt.Errorf("memory: code already redeemed: %w", storage.ErrConflict)
	case !s.grantActiveLocked(c.GrantID):
		return fmt.Errorf("memory: grant %q of code is not active: %w", c.GrantID, storage.ErrConflict)
	}
	if _, dup := s.refresh[rt.Hash]; dup {
		return fmt.Errorf("memory: refresh token already stored: %w", storage.ErrConflict)
	}
	c.ConsumedAt = now
	s.grants[c.GrantID].LastUsedAt = now
	s.refresh[rt.Hash] = copyRefresh(rt)
	return nil
}
