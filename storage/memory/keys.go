package memory

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/mcp-oauth/oauth/storage"
)

// ListKeys returns copies of every key, newest (by CreatedAt) first.
func (s *Store) ListKeys(ctx context.Context) ([]*storage.KeyRecord, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rows := make([]*keyRow, 0, len(s.keys))
	for _, r := range s.keys {
		rows = append(rows, r)
	}
	slices.SortFunc(rows, func(a, b *keyRow) int { return byTime(b.CreatedAt, a.CreatedAt, b.seq, a.seq) })
	out := make([]*storage.KeyRecord, len(rows))
	for i, r := range rows {
		out[i] = copyKey(r.KeyRecord)
	}
	return out, nil
}

// AddKey stores a copy of k as the active key (its RetiredAt is stored as
// zero) and, under the same lock, retires at k.CreatedAt every key that was
// active. storage.ErrConflict if a key with k's ID exists.
func (s *Store) AddKey(ctx context.Context, k *storage.KeyRecord) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.keys[k.ID]; ok {
		return fmt.Errorf("memory: key %q exists: %w", k.ID, storage.ErrConflict)
	}
	for _, r := range s.keys {
		if r.RetiredAt.IsZero() {
			r.RetiredAt = k.CreatedAt
		}
	}
	d := copyKey(k)
	d.RetiredAt = time.Time{}
	s.keys[k.ID] = &keyRow{KeyRecord: d, seq: s.next()}
	return nil
}

// DeleteKey removes a key; storage.ErrNotFound if absent.
func (s *Store) DeleteKey(ctx context.Context, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.keys[id]; !ok {
		return storage.ErrNotFound
	}
	delete(s.keys, id)
	return nil
}
