package memory

import (
	"context"
	"fmt"
	"slices"
	"time"

	oauth "github.com/mcp-oauth/oauth"
	"github.com/mcp-oauth/oauth/storage"
)

// CreateClient stores a copy of c; storage.ErrConflict if its ID is taken,
// even by a lapsed registration that Sweep has not yet deleted.
func (s *Store) CreateClient(ctx context.Context, c *oauth.Client) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.clients[c.ID]; ok {
		return fmt.Errorf("memory: client %q: %w", c.ID, storage.ErrConflict)
	}
	s.clients[c.ID] = &clientRow{Client: copyClient(c), seq: s.next()}
	return nil
}

// GetClient returns a copy of the client, or storage.ErrNotFound if it does
// not exist or its registration lapsed (ExpiresAt non-zero and not after
// now).
func (s *Store) GetClient(ctx context.Context, id string, now time.Time) (*oauth.Client, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.clients[id]
	if !ok || expired(r.ExpiresAt, now) {
		return nil, storage.ErrNotFound
	}
	return copyClient(r.Client), nil
}

// TouchClient sets the client's ExpiresAt to expiresAt; storage.ErrNotFound
// if there is no such client.
func (s *Store) TouchClient(ctx context.Context, id string, expiresAt time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.clients[id]
	if !ok {
		return storage.ErrNotFound
	}
	r.ExpiresAt = expiresAt
	return nil
}

// DeleteClient removes the client and revokes all of its grants at now,
// deleting their codes, refresh tokens, data keys and data, under one lock.
// It returns the grants that were active, as they were, with their data
// keys and the values unexpired at now; storage.ErrNotFound if there is no
// such client.
func (s *Store) DeleteClient(ctx context.Context, id string, now time.Time) ([]*storage.GrantRecord, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.clients[id]; !ok {
		return nil, storage.ErrNotFound
	}
	var ended []*storage.GrantRecord
	for _, g := range s.grants {
		if g.ClientID == id {
			if rec, _ := s.revokeLocked(g, now); rec != nil {
				ended = append(ended, rec)
			}
		}
	}
	delete(s.clients, id)
	s.revocations++
	return ended, nil
}

// ListClients returns copies of all live clients, oldest (by IssuedAt)
// first.
func (s *Store) ListClients(ctx context.Context, now time.Time) ([]*oauth.Client, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rows := make([]*clientRow, 0, len(s.clients))
	for _, r := range s.clients {
		if !expired(r.ExpiresAt, now) {
			rows = append(rows, r)
		}
	}
	slices.SortFunc(rows, func(a, b *clientRow) int { return byTime(a.IssuedAt, b.IssuedAt, a.seq, b.seq) })
	out := make([]*oauth.Client, len(rows))
	for i, r := range rows {
		out[i] = copyClient(r.Client)
	}
	return out, nil
}
