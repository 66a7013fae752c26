package sqlite

import (
	"context"
	"time"

	"github.com/mcp-oauth/oauth/storage"
)

const userCols = `name, password_hash, created_at, failures, locked_until`

var (
	qCreateUser         = `INSERT INTO users (` + userCols + `) VALUES (` + placeholders(5) + `)`
	qGetUser            = `SELECT ` + userCols + ` FROM users WHERE name = ?`
	qListUsers          = `SELECT ` + userCols + ` FROM users ORDER BY created_at, rowid`
	qSetPassword        = `UPDATE users SET password_hash = ?, failures = 0, locked_until = 0 WHERE name = ?`
	qRecordSignIn       = `UPDATE users SET failures = ?, locked_until = ? WHERE name = ? AND failures = ?`
	qUserExists         = `SELECT 1 FROM users WHERE name = ?`
	qDeleteUser         = `DELETE FROM users WHERE name = ?`
	qDeleteUserSessions = `DELETE FROM sessions WHERE user_name = ?`
)

const sessionCols = `hash, user_name, created_at, idle_expires_at, expires_at`

var (
	qCreateSession = `INSERT INTO sessions (` + sessionCols + `) VALUES (` + placeholders(5) + `)`
	qGetSession    = `SELECT ` + sessionCols + ` FROM sessions WHERE hash = ? AND idle_expires_at > ? AND expires_at > ?`
	qTouchSession  = `UPDATE sessions SET idle_expires_at = ? WHERE hash = ?`
	qDeleteSession = `DELETE FROM sessions WHERE hash = ?`
)

func scanUser(row scanner) (*storage.UserRecord, error) {
	var u storage.UserRecord
	var created, locked int64
	if err := row.Scan(&u.Name, &u.PasswordHash, &created, &u.Failures, &locked); err != nil {
		return nil, err
	}
	u.CreatedAt, u.LockedUntil = fromMS(created), fromMS(locked)
	return &u, nil
}

// CreateUser implements storage.UserStore.
func (s *Store) CreateUser(ctx context.Context, u *storage.UserRecord) error {
	_, err := s.exec(ctx, qCreateUser, u.Name, u.PasswordHash, ms(u.CreatedAt), u.Failures, ms(u.LockedUntil))
	return wrap("create user", err)
}

// GetUser implements storage.UserStore.
func (s *Store) GetUser(ctx context.Context, name string) (*storage.UserRecord, error) {
	u, err := scanUser(s.row(ctx, qGetUser, name))
	return u, wrap("get user", err)
}

// ListUsers implements storage.UserStore, by CreatedAt, then insertion.
func (s *Store) ListUsers(ctx context.Context) ([]*storage.UserRecord, error) {
	out, err := list(s, ctx, scanUser, qListUsers)
	return out, wrap("list users", err)
}

// SetPassword implements storage.UserStore.
func (s *Store) SetPassword(ctx context.Context, name, passwordHash string) error {
	return wrap("set password", s.update(ctx, func(t wtx) error {
		if err := affected(t.exec(qSetPassword, passwordHash, name)); err != nil {
			return err
		}
		_, err := t.exec(qDeleteUserSessions, name)
		return err
	}))
}

// RecordSignIn implements storage.UserStore in one transaction.
func (s *Store) RecordSignIn(ctx context.Context, name string, prevFailures, failures int, lockedUntil time.Time) error {
	return wrap("record sign-in", s.update(ctx, func(t wtx) error {
		n, err := t.execN(qRecordSignIn, failures, ms(lockedUntil), name, prevFailures)
		if err != nil || n == 1 {
			return err
		}
		var one int
		if err := t.tx.QueryRowContext(t.ctx, qUserExists, name).Scan(&one); err != nil {
			return err // sql.ErrNoRows: absent; wrap makes it ErrNotFound
		}
		return storage.ErrConflict // present with another count
	}))
}

// DeleteUser implements storage.UserStore in one transaction.
func (s *Store) DeleteUser(ctx context.Context, name string) error {
	return wrap("delete user", s.update(ctx, func(t wtx) error {
		if _, err := t.exec(qDeleteUserSessions, name); err != nil {
			return err
		}
		return affected(t.exec(qDeleteUser, name))
	}))
}

func scanSession(row scanner) (*storage.SessionRecord, error) {
	var ss storage.SessionRecord
	var created, idle, exp int64
	if err := row.Scan(&ss.Hash, &ss.User, &created, &idle, &exp); err != nil {
		return nil, err
	}
	ss.CreatedAt, ss.IdleExpiresAt, ss.ExpiresAt = fromMS(created), fromMS(idle), fromMS(exp)
	return &ss, nil
}

// CreateSession implements storage.SessionStore.
func (s *Store) CreateSession(ctx context.Context, ss *storage.SessionRecord) error {
	_, err := s.exec(ctx, qCreateSession, ss.Hash, ss.User, ms(ss.CreatedAt), ms(ss.IdleExpiresAt), ms(ss.ExpiresAt))
	return wrap("create session", err)
}

// GetSession implements storage.SessionStore.
func (s *Store) GetSession(ctx context.Context, hash string, now time.Time) (*storage.SessionRecord, error) {
	ss, err := scanSession(s.row(ctx, qGetSession, hash, ms(now), ms(now)))
	return ss, wrap("get session", err)
}

// TouchSession implements storage.SessionStore.
func (s *Store) TouchSession(ctx context.Context, hash string, idleExpiresAt time.Time) error {
	return wrap("touch session", affected(s.exec(ctx, qTouchSession, ms(idleExpiresAt), hash)))
}

// DeleteSession implements storage.SessionStore.
func (s *Store) DeleteSession(ctx context.Context, hash string) error {
	_, err := s.exec(ctx, qDeleteSession, hash)
	return wrap("delete session", err)
}
