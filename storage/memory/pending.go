package memory

import (
	"context"
	"fmt"
	"slices"
	"time"

	oauth "github.com/mcp-oauth/oauth"
	"github.com/mcp-oauth/oauth/storage"
)

// CreatePending stores a copy of p; storage.ErrConflict if its ID, handle
// or user code is taken, even by an expired request that Sweep has not yet
// deleted.
func (s *Store) CreatePending(ctx context.Context, p *storage.PendingRecord) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.pending[p.ID]; ok {
		return fmt.Errorf("memory: pending request ID taken: %w", storage.ErrConflict)
	}
	if _, ok := s.pendingByHandle[p.HandleHash]; ok {
		return fmt.Errorf("memory: pending request handle taken: %w", storage.ErrConflict)
	}
	if _, ok := s.pendingByUserCode[p.UserCodeHash]; ok {
		return fmt.Errorf("memory: pending request user code taken: %w", storage.ErrConflict)
	}
	if _, ok := s.pendingByDevice[p.DeviceCodeHash]; ok && p.DeviceCodeHash != "" {
		return fmt.Errorf("memory: pending request device code taken: %w", storage.ErrConflict)
	}
	s.pending[p.ID] = &pendingRow{PendingRecord: copyPending(p), seq: s.next()}
	s.pendingByHandle[p.HandleHash] = p.ID
	s.pendingByUserCode[p.UserCodeHash] = p.ID
	if p.DeviceCodeHash != "" {
		s.pendingByDevice[p.DeviceCodeHash] = p.ID
	}
	return nil
}

// GetPendingByDeviceCode returns a copy of the request, expired or not,
// whose device code hash is deviceCodeHash, or storage.ErrNotFound.
func (s *Store) GetPendingByDeviceCode(ctx context.Context, deviceCodeHash string) (*storage.PendingRecord, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	id, ok := s.pendingByDevice[deviceCodeHash]
	if !ok || deviceCodeHash == "" {
		return nil, storage.ErrNotFound
	}
	return copyPending(s.pending[id].PendingRecord), nil
}

// livePendingLocked returns the request with the given ID if it exists and
// has not expired at now.
func (s *Store) livePendingLocked(id string, now time.Time) (*pendingRow, bool) {
	r, ok := s.pending[id]
	if !ok || expired(r.ExpiresAt, now) {
		return nil, false
	}
	return r, true
}

// GetPendingByHandle returns a copy of the unexpired request whose handle
// hash is handleHash, or storage.ErrNotFound.
func (s *Store) GetPendingByHandle(ctx context.Context, handleHash string, now time.Time) (*storage.PendingRecord, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	id, ok := s.pendingByHandle[handleHash]
	if !ok {
		return nil, storage.ErrNotFound
	}
	r, ok := s.livePendingLocked(id, now)
	if !ok {
		return nil, storage.ErrNotFound
	}
	return copyPending(r.PendingRecord), nil
}

// GetPendingByUserCode returns a copy of the unexpired request whose user
// code hash is userCodeHash, or storage.ErrNotFound.
func (s *Store) GetPendingByUserCode(ctx context.Context, userCodeHash string, now time.Time) (*storage.PendingRecord, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	id, ok := s.pendingByUserCode[userCodeHash]
	if !ok {
		return nil, storage.ErrNotFound
	}
	r, ok := s.livePendingLocked(id, now)
	if !ok {
		return nil, storage.ErrNotFound
	}
	return copyPending(r.PendingRecord), nil
}

// DecidePending moves a waiting, unexpired request to status
// (oauth.PendingApproved or oauth.PendingDenied) with subject and a copy
// of setup. storage.ErrNotFound if absent or expired, storage.ErrConflict
// if it is no longer waiting; any other status is an error.
func (s *Store) DecidePending(ctx context.Context, id string, status oauth.PendingStatus, subject string, setup []byte, now time.Time) error {
	if status != oauth.PendingApproved && status != oauth.PendingDenied {
		return fmt.Errorf("memory: decide pending request: invalid status %q", status)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.livePendingLocked(id, now)
	if !ok {
		return storage.ErrNotFound
	}
	if r.Status != oauth.PendingWaiting {
		return fmt.Errorf("memory: pending request is %s: %w", r.Status, storage.ErrConflict)
	}
	r.Status, r.Subject, r.Setup = status, subject, slices.Clone(setup)
	return nil
}

// CompletePending moves an approved, unexpired request to completed,
// clears its Setup, and stores copies of grant (with its data key and
// data) and code, under one lock. The values are stored under grant's ID,
// whatever their GrantID.
// storage.ErrNotFound if the request is absent or expired;
// storage.ErrConflict if it is not approved, a grant with grant's ID or a
// code with code's hash already exists, or two values share a name; an
// error if the claims have no JSON encoding.
func (s *Store) CompletePending(ctx context.Context, id string, grant *storage.GrantRecord, code *storage.CodeRecord, now time.Time) error {
	g, data, err := prepareGrant(grant)
	if err != nil {
		return fmt.Errorf("memory: complete pending: %w", err)
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.livePendingLocked(id, now)
	if !ok {
		return storage.ErrNotFound
	}
	if r.Status != oauth.PendingApproved {
		return fmt.Errorf("memory: pending request is %s: %w", r.Status, storage.ErrConflict)
	}
	if _, dup := s.grants[grant.ID]; dup {
		return fmt.Errorf("memory: grant %q exists: %w", grant.ID, storage.ErrConflict)
	}
	if _, dup := s.codes[code.Hash]; dup {
		return fmt.Errorf("memory: code exists: %w", storage.ErrConflict)
	}
	r.Status, r.Setup = oauth.PendingCompleted, nil
	s.putGrantLocked(grant, g, data)
	s.codes[code.Hash] = copyCode(code)
	return nil
}

// ListPending returns copies of the unexpired requests still waiting,
// oldest (by CreatedAt) first.
func (s *Store) ListPending(ctx context.Context, now time.Time) ([]*storage.PendingRecord, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rows := make([]*pendingRow, 0, len(s.pending))
	for _, r := range s.pending {
		if r.Status == oauth.PendingWaiting && !expired(r.ExpiresAt, now) {
			rows = append(rows, r)
		}
	}
	slices.SortFunc(rows, func(a, b *pendingRow) int { return byTime(a.CreatedAt, b.CreatedAt, a.seq, b.seq) })
	out := make([]*storage.PendingRecord, len(rows))
	for i, r := range rows {
		out[i] = copyPending(r.PendingRecord)
	}
	return out, nil
}
