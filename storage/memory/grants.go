package memory

import (
	"cmp"
	"context"
	"fmt"
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

// prepareGrant copies what a grant record holds for storing: the grant
// (its claims normalized as a JSON column would hold them) and its values,
// under the grant's ID. ErrConflict if two values share a name.
func prepareGrant(grant *storage.GrantRecord) (*oauth.Grant, map[string]*storage.GrantDataRecord, error) {
	claims, err := normalizeClaims(grant.Claims)
	if err != nil {
		return nil, nil, err
	}
	g := grant.Grant
	g.Claims = nil
	g = *copyGrant(&g)
	g.Claims = claims
	data := make(map[string]*storage.GrantDataRecord, len(grant.Data))
	for _, d := range grant.Data {
		if _, dup := data[d.Name]; dup {
			return nil, nil, fmt.Errorf("grant data %q given twice: %w", d.Name, storage.ErrConflict)
		}
		c := copyGrantData(d)
		c.GrantID = grant.ID
		data[d.Name] = c
	}
	return &g, data, nil
}

// putGrantLocked stores g, prepared from grant, with its data key and data.
func (s *Store) putGrantLocked(grant *storage.GrantRecord, g *oauth.Grant, data map[string]*storage.GrantDataRecord) {
	s.grants[grant.ID] = &grantRow{Grant: g, dataKey: slices.Clone(grant.DataKey), seq: s.next()}
	if len(data) > 0 {
		s.data[grant.ID] = data
	}
}

// CreateGrant implements storage.GrantStore.
func (s *Store) CreateGrant(ctx context.Context, grant *storage.GrantRecord) error {
	g, data, err := prepareGrant(grant)
	if err != nil {
		return fmt.Errorf("memory: create grant: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, dup := s.grants[grant.ID]; dup {
		return fmt.Errorf("memory: grant %q exists: %w", grant.ID, storage.ErrConflict)
	}
	s.putGrantLocked(grant, g, data)
	return nil
}

// ExtendGrant implements storage.GrantStore.
func (s *Store) ExtendGrant(ctx context.Context, id string, expiresAt, now time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.grants[id]
	if !ok || !r.RevokedAt.IsZero() || !r.ExpiresAt.After(now) {
		return storage.ErrNotFound
	}
	r.LastUsedAt = now
	if expiresAt.After(r.ExpiresAt) {
		r.ExpiresAt = expiresAt
	}
	return nil
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

// RevokeGrant marks the grant revoked at now and deletes its codes,
// refresh tokens, data key and data, under one lock. If the grant was
// active it returns it as it was (RevokedAt zero), with its data key and
// the values unexpired at now; revoking a revoked grant returns nil and
// keeps the first revocation time. storage.ErrNotFound if absent.
func (s *Store) RevokeGrant(ctx context.Context, id string, now time.Time) (*storage.GrantRecord, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.grants[id]
	if !ok {
		return nil, storage.ErrNotFound
	}
	rec, _ := s.revokeLocked(r, now)
	return rec, nil
}

// revokeLocked marks r revoked (unless it already is) and deletes its
// codes, refresh tokens, data key and data. It returns the number of rows
// it deleted and, if r was active, r as it was with its data key and the
// values unexpired at now.
func (s *Store) revokeLocked(r *grantRow, now time.Time) (*storage.GrantRecord, int64) {
	var rec *storage.GrantRecord
	if r.RevokedAt.IsZero() {
		rec = s.recordLocked(r, now)
		r.RevokedAt = now
		s.revocations++
	}
	return rec, s.deleteGrantRowsLocked(r)
}

// deleteGrantRowsLocked deletes r's codes, refresh tokens, data key and
// data, returning how many rows it deleted (the key is no row of its own).
func (s *Store) deleteGrantRowsLocked(r *grantRow) int64 {
	var n int64
	for h, c := range s.codes {
		if c.GrantID == r.ID {
			delete(s.codes, h)
			n++
		}
	}
	for h, t := range s.refresh {
		if t.GrantID == r.ID {
			delete(s.refresh, h)
			n++
		}
	}
	r.dataKey = nil
	n += int64(len(s.data[r.ID]))
	delete(s.data, r.ID)
	return n
}

// recordLocked returns a copy of r with its data key and its values
// unexpired at now, ordered by name.
func (s *Store) recordLocked(r *grantRow, now time.Time) *storage.GrantRecord {
	rec := &storage.GrantRecord{Grant: *copyGrant(r.Grant), DataKey: slices.Clone(r.dataKey)}
	for _, d := range s.data[r.ID] {
		if !expired(d.ExpiresAt, now) {
			rec.Data = append(rec.Data, copyGrantData(d))
		}
	}
	slices.SortFunc(rec.Data, func(a, b *storage.GrantDataRecord) int { return cmp.Compare(a.Name, b.Name) })
	return rec
}

// grantActiveLocked reports whether the grant exists and is not revoked.
func (s *Store) grantActiveLocked(id string) bool {
	_, ok := s.activeGrantLocked(id)
	return ok
}

// activeGrantLocked returns the grant if it exists and is not revoked.
func (s *Store) activeGrantLocked(id string) (*grantRow, bool) {
	r, ok := s.grants[id]
	if !ok || !r.RevokedAt.IsZero() {
		return nil, false
	}
	return r, true
}

// RevocationCount implements storage.GrantStore.
func (s *Store) RevocationCount(ctx context.Context) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.revocations, nil
}
