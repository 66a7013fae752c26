package memory

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/mcp-oauth/oauth/storage"
)

type userRow struct {
	*storage.UserRecord
	seq int64
}

// CreateUser implements storage.UserStore.
func (s *Store) CreateUser(ctx context.Context, u *storage.UserRecord) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.users[u.Name]; ok {
		return fmt.Errorf("memory: user name taken: %w", storage.ErrConflict)
	}
	c := *u
	s.users[u.Name] = &userRow{UserRecord: &c, seq: s.next()}
	return nil
}

// GetUser implements storage.UserStore.
func (s *Store) GetUser(ctx context.Context, name string) (*storage.UserRecord, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.users[name]
	if !ok {
		return nil, storage.ErrNotFound
	}
	c := *r.UserRecord
	return &c, nil
}

// ListUsers implements storage.UserStore, oldest (by CreatedAt) first.
func (s *Store) ListUsers(ctx context.Context) ([]*storage.UserRecord, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rows := make([]*userRow, 0, len(s.users))
	for _, r := range s.users {
		rows = append(rows, r)
	}
	slices.SortFunc(rows, func(a, b *userRow) int { return byTime(a.CreatedAt, b.CreatedAt, a.seq, b.seq) })
	out := make([]*storage.UserRecord, len(rows))
	for i, r := range rows {
		c := *r.UserRecord
		out[i] = &c
	}
	return out, nil
}

// SetPassword implements storage.UserStore.
func (s *Store) SetPassword(ctx context.Context, name, passwordHash string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.users[name]
	if !ok {
		return storage.ErrNotFound
	}
	r.PasswordHash, r.Failures, r.LockedUntil = passwordHash, 0, time.Time{}
	s.deleteSessionsLocked(name)
	return nil
}

// RecordSignIn implements storage.UserStore.
func (s *Store) RecordSignIn(ctx context.Context, name string, prevFailures, failures int, lockedUntil time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.users[name]
	if !ok {
		return storage.ErrNotFound
	}
	if r.Failures != prevFailures {
		return storage.ErrConflict
	}
	r.Failures, r.LockedUntil = failures, lockedUntil
	return nil
}

// DeleteUser implements storage.UserStore.
func (s *Store) DeleteUser(ctx context.Context, name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.users[name]; !ok {
		return storage.ErrNotFound
	}
	delete(s.users, name)
	s.deleteSessionsLocked(name)
	return nil
}

// CreateSession implements storage.SessionStore.
func (s *Store) CreateSession(ctx context.Context, ss *storage.SessionRecord) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.sessions[ss.Hash]; ok {
		return fmt.Errorf("memory: session hash taken: %w", storage.ErrConflict)
	}
	c := *ss
	s.sessions[ss.Hash] = &c
	return nil
}

// sessionLive reports whether a session is usable at now.
func sessionLive(ss *storage.SessionRecord, now time.Time) bool {
	return !expired(ss.IdleExpiresAt, now) && !expired(ss.ExpiresAt, now)
}

// GetSession implements storage.SessionStore.
func (s *Store) GetSession(ctx context.Context, hash string, now time.Time) (*storage.SessionRecord, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ss, ok := s.sessions[hash]
	if !ok || !sessionLive(ss, now) {
		return nil, storage.ErrNotFound
	}
	c := *ss
	return &c, nil
}

// TouchSession implements storage.SessionStore.
func (s *Store) TouchSession(ctx context.Context, hash string, idleExpiresAt time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	ss, ok := s.sessions[hash]
	if !ok {
		return storage.ErrNotFound
	}
	ss.IdleExpiresAt = idleExpiresAt
	return nil
}

// DeleteSession implements storage.SessionStore.
func (s *Store) DeleteSession(ctx context.Context, hash string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.sessions, hash)
	return nil
}

// sweepSessionsLocked deletes the sessions expired at now.
func (s *Store) sweepSessionsLocked(now time.Time) int64 {
	var n int64
	for h, ss := range s.sessions {
		if !sessionLive(ss, now) {
			delete(s.sessions, h)
			n++
		}
	}
	return n
}

// deleteSessionsLocked deletes the sessions of user name; s.mu is held.
func (s *Store) deleteSessionsLocked(name string) {
	for h, ss := range s.sessions {
		if ss.User == name {
			delete(s.sessions, h)
		}
	}
}
