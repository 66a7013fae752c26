package memory

import (
	"context"
	"fmt"
	"time"

	"github.com/mcp-oauth/oauth/storage"
)

// GetRefreshToken returns a copy of the token, spent or not, or
// storage.ErrNotFound if it does not exist or has expired.
func (s *Store) GetRefreshToken(ctx context.Context, hash string, now time.Time) (*storage.RefreshRecord, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.refresh[hash]
	if !ok || expired(r.ExpiresAt, now) {
		return nil, storage.ErrNotFound
	}
	return copyRefresh(r), nil
}

// RotateRefreshToken replaces oldHash by next under one lock, as
// storage.RefreshTokenStore describes. storage.ErrNotFound if oldHash does
// not exist or has expired; storage.ErrConflict if it is spent, its
// Successor is not expectedSuccessor, its grant is revoked or missing, or a
// token with next's hash already exists.
func (s *Store) RotateRefreshToken(ctx context.Context, oldHash, expectedSuccessor string, next *storage.RefreshRecord, now time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	old, ok := s.refresh[oldHash]
	if !ok || expired(old.ExpiresAt, now) {
		return storage.ErrNotFound
	}
	switch {
	case old.Spent:
		return fmt.Errorf("memory: refresh token spent: %w", storage.ErrConflict)
	case old.Successor != expectedSuccessor:
		return fmt.Errorf("memory: refresh token already rotated: %w", storage.ErrConflict)
	case !s.grantActiveLocked(old.GrantID):
		return fmt.Errorf("memory: grant %q of refresh token is not active: %w", old.GrantID, storage.ErrConflict)
	}
	if _, dup := s.refresh[next.Hash]; dup {
		return fmt.Errorf("memory: refresh token already stored: %w", storage.ErrConflict)
	}
	if expectedSuccessor != "" {
		if prev, ok := s.refresh[expectedSuccessor]; ok {
			prev.Spent = true
		}
	}
	if old.Parent != "" {
		if parent, ok := s.refresh[old.Parent]; ok {
			parent.Spent = true
		}
	}
	old.Successor = next.Hash
	s.refresh[next.Hash] = copyRefresh(next)
	s.grants[old.GrantID].LastUsedAt = now
	return nil
}
