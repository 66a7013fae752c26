package postgres

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/mcp-oauth/oauth/storage"
)

const userCols = `name, password_hash, created_at, failures, locked_until`

var (
	qCreateUser         = `INSERT INTO users (` + userCols + `) VALUES (` + placeholders(1, 5) + `)`
	qGetUser            = `SELECT ` + userCols + ` FROM users WHERE name = $1`
	qListUsers          = `SELECT ` + userCols + ` FROM users ORDER BY created_at NULLS FIRST, seq`
	qSetPassword        = `UPDATE users SET password_hash = $2, failures = 0, locked_until = NULL WHERE name = $1`
	qRecordSignIn       = `UPDATE users SET failures = $2, locked_until = $3 WHERE name = $1 AND failures = $4`
	qUserExists         = `SELECT 1 FROM users WHERE name = $1`
	qDeleteUser         = `DELETE FROM users WHERE name = $1`
	qDeleteUserSessions = `DELETE FROM sessions WHERE user_name = $1`
)

const sessionCols = `hash, user_name, created_at, idle_expires_at, expires_at`

var (
	qCreateSession = `INSERT INTO sessions (` + sessionCols + `) VALUES (` + placeholders(1, 5) + `)`
	qGetSession    = `SELECT ` + sessionCols + ` FROM sessions WHERE hash = $1 AND idle_expires_at > $2 AND expires_at > $2`
	qTouchSession  = `UPDATE sessions SET idle_expires_at = $2 WHERE hash = $1`
	qDeleteSession = `DELETE FROM sessions WHERE hash = $1`
)

func scanUser(row pgx.Row) (*storage.UserRecord, error) {
	var u storage.UserRecord
	var created, locked pgtype.Timestamptz
	if err := row.Scan(&u.Name, &u.PasswordHash, &created, &u.Failures, &locked); err != nil {
		return nil, err
	}
	u.CreatedAt, u.LockedUntil = fromTS(created), fromTS(locked)
	return &u, nil
}

// CreateUser implements storage.UserStore.
func (s *Store) CreateUser(ctx context.Context, u *storage.UserRecord) error {
	_, err := s.pool.Exec(ctx, qCreateUser, u.Name, u.PasswordHash, ts(u.CreatedAt), u.Failures, ts(u.LockedUntil))
	return wrap("create user", err)
}

// GetUser implements storage.UserStore.
func (s *Store) GetUser(ctx context.Context, name string) (*storage.UserRecord, error) {
	u, err := scanUser(s.pool.QueryRow(ctx, qGetUser, name))
	return u, wrap("get user", err)
}

// ListUsers implements storage.UserStore, by CreatedAt, then insertion.
func (s *Store) ListUsers(ctx context.Context) ([]*storage.UserRecord, error) {
	out, err := list(ctx, s.pool, scanUser, qListUsers)
	return out, wrap("list users", err)
}

// SetPassword implements storage.UserStore.
func (s *Store) SetPassword(ctx context.Context, name, passwordHash string) error {
	return wrap("set password", s.tx(ctx, func(tx pgx.Tx) error {
		if err := affected(tx.Exec(ctx, qSetPassword, name, passwordHash)); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, qDeleteUserSessions, name)
		return err
	}))
}

// RecordSignIn implements storage.UserStore: one conditional UPDATE, and
// on no match a look whether the user exists at all.
func (s *Store) RecordSignIn(ctx context.Context, name string, prevFailures, failures int, lockedUntil time.Time) error {
	tag, err := s.pool.Exec(ctx, qRecordSignIn, name, failures, ts(lockedUntil), prevFailures)
	if err != nil || tag.RowsAffected() == 1 {
		return wrap("record sign-in", err)
	}
	var one int
	if err := s.pool.QueryRow(ctx, qUserExists, name).Scan(&one); err != nil {
		return wrap("record sign-in", err) // pgx.ErrNoRows: absent
	}
	return wrap("record sign-in", storage.ErrConflict)
}

// DeleteUser implements storage.UserStore in one transaction.
func (s *Store) DeleteUser(ctx context.Context, name string) error {
	return wrap("delete user", s.tx(ctx, func(tx pgx.Tx) error {
		if err := affected(tx.Exec(ctx, qDeleteUser, name)); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, qDeleteUserSessions, name)
		return err
	}))
}

func scanSession(row pgx.Row) (*storage.SessionRecord, error) {
	var ss storage.SessionRecord
	var created, idle, exp pgtype.Timestamptz
	if err := row.Scan(&ss.Hash, &ss.User, &created, &idle, &exp); err != nil {
		return nil, err
	}
	ss.CreatedAt, ss.IdleExpiresAt, ss.ExpiresAt = fromTS(created), fromTS(idle), fromTS(exp)
	return &ss, nil
}

// CreateSession implements storage.SessionStore.
func (s *Store) CreateSession(ctx context.Context, ss *storage.SessionRecord) error {
	_, err := s.pool.Exec(ctx, qCreateSession, ss.Hash, ss.User, ts(ss.CreatedAt), ts(ss.IdleExpiresAt), ts(ss.ExpiresAt))
	return wrap("create session", err)
}

// GetSession implements storage.SessionStore.
func (s *Store) GetSession(ctx context.Context, hash string, now time.Time) (*storage.SessionRecord, error) {
	ss, err := scanSession(s.pool.QueryRow(ctx, qGetSession, hash, now))
	return ss, wrap("get session", err)
}

// TouchSession implements storage.SessionStore.
func (s *Store) TouchSession(ctx context.Context, hash string, idleExpiresAt time.Time) error {
	return wrap("touch session", affected(s.pool.Exec(ctx, qTouchSession, hash, ts(idleExpiresAt))))
}

// DeleteSession implements storage.SessionStore.
func (s *Store) DeleteSession(ctx context.Context, hash string) error {
	_, err := s.pool.Exec(ctx, qDeleteSession, hash)
	return wrap("delete session", err)
}
