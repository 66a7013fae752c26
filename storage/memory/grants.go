package memory

import (
	"context"
	"slices"
	"time"

	oauth "github.com/mcp-oauth/oauth"
	"github.com/mcp-oauth/oauth/storage"
)

// GetGrant returns a copy of the grant, revoked or not; storage.ErrNotFound
// if absent.
func (s *Store) GetGrant(ctx context.Context, id string) (*oauth.Grant, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.grants[id]
	if !ok {
		return nil, storage.ErrNotFound
	}
	return copyGrant(r.Grant), nil
}

// ListGrants returns copies of the active (unrevoked) grants, oldest (by
// CreatedAt) first.
func (s *Store) ListGrants(ctx context.Context) ([]*oauth.Grant, error) {
	return s.listGrants(func(*grantRow) bool { return true }), nil
}

// listGrants returns copies of the active grants that keep accepts, oldest
// first.
func (s *Store) listGrants(keep func(*grantRow) bool) []*oauth.Grant {
	s.mu.Lock()
	defer s.mu.Unlock()
	var rows []*grantRow
	for _, r := range s.grants {
		if r.RevokedAt.IsZero() && keep(r) {
			rows = append(rows, r)
		}
	}
	slices.SortFunc(rows, func(a, b *grantRow) int { return byTime(a.CreatedAt, b.CreatedAt, a.seq, b.seq) })
	out := make([]*oauth.Grant, len(rows))
	for i, r := range rows {
		out[i] = copyGrant(r.Grant)
	}
	return out
}

// ListSubjectGrants implements storage.GrantStore.
func (s *Store) ListSubjectGrants(ctx context.Context, subject string) ([]*oauth.Grant, error) {
	return s.listGrants(func(r *grantRow) bool { return r.Subject == subject }), nil
}

// RevokeGrant marks the grant revoked at now and deletes its codes and
// refresh tokens. Revoking a revoked grant succeeds and keeps the first
// revocation time; storage.ErrNotFound if absent.
func (s *Store) RevokeGrant(ctx context.Context, id string, now time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.grants[id]
	if !ok {
		return storage.ErrNotFound
	}
	s.revokeLocked(r.Grant, now)
	return nil
}

// revokeLocked marks g revoked (unless it already is) and deletes its codes
// and refresh tokens, returning how many it deleted.
func (s *Store) revokeLocked(g *oauth.Grant, now time.Time) int64 {
	if g.RevokedAt.IsZero() {
		g.RevokedAt = now
		s.revocations++
	}
	var n int64
	for h, c := range s.codes {
		if c.GrantID == g.ID {
			delete(s.codes, h)
			n++
		}
	}
	for h, r := range s.refresh {
		if r.GrantID == g.ID {
			delete(s.refresh, h)
			n++
		}
	}
	return n
}

// grantActiveLocked reports whether the grant exists and is not revoked.
func (s *Store) grantActiveLocked(id string) bool {
	r, ok := s.grants[id]
	return ok && r.RevokedAt.IsZero()
}

// RevocationCount implements storage.GrantStore.
func (s *Store) RevocationCount(ctx context.Context) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.revocations, nil
}
