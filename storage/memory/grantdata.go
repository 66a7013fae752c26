package memory

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/mcp-oauth/oauth/storage"
)

// GetGrantData returns a copy of the data key of the active grant grantID
// and of its value name if it is unexpired at now, under one lock;
// storage.ErrNotFound otherwise.
func (s *Store) GetGrantData(ctx context.Context, grantID, name string, now time.Time) ([]byte, *storage.GrantDataRecord, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.activeGrantLocked(grantID)
	if !ok {
		return nil, nil, storage.ErrNotFound
	}
	d, ok := s.data[grantID][name]
	if !ok || expired(d.ExpiresAt, now) {
		return nil, nil, storage.ErrNotFound
	}
	return slices.Clone(r.dataKey), copyGrantData(d), nil
}

// GetGrantKey returns a copy of the data key of the active grant (nil if
// it has none); storage.ErrNotFound if the grant is absent or revoked.
func (s *Store) GetGrantKey(ctx context.Context, grantID string) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.activeGrantLocked(grantID)
	if !ok {
		return nil, storage.ErrNotFound
	}
	return slices.Clone(r.dataKey), nil
}

// PutGrantData stores a copy of rec, replacing the grant's value of the
// same name, under one lock: storage.ErrNotFound if the grant is absent or
// revoked, storage.ErrLimit if the grant's values unexpired at now, other
// than one named rec.Name, number maxValues or more.
func (s *Store) PutGrantData(ctx context.Context, rec *storage.GrantDataRecord, maxValues int, now time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.activeGrantLocked(rec.GrantID); !ok {
		return storage.ErrNotFound
	}
	values := s.data[rec.GrantID]
	n := 1 // rec
	for name, d := range values {
		if name != rec.Name && !expired(d.ExpiresAt, now) {
			n++
		}
	}
	if n > maxValues {
		return fmt.Errorf("memory: grant would have %d values, more than %d: %w", n, maxValues, storage.ErrLimit)
	}
	if values == nil {
		values = map[string]*storage.GrantDataRecord{}
		s.data[rec.GrantID] = values
	}
	values[rec.Name] = copyGrantData(rec)
	return nil
}

// DeleteGrantData deletes the value; deleting an absent one is not an
// error.
func (s *Store) DeleteGrantData(ctx context.Context, grantID, name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if values, ok := s.data[grantID]; ok {
		delete(values, name)
		if len(values) == 0 {
			delete(s.data, grantID)
		}
	}
	return nil
}
