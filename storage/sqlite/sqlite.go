// Package sqlite is the embedded default storage.Store: a single SQLite file,
// through the pure-Go driver modernc.org/sqlite (no cgo).
//
// The database runs in WAL mode with synchronous=NORMAL and a 5 s busy
// timeout, so that readers never block the writer and the example's terminal
// commands can use the file while the server runs. Writes go through one
// connection whose transactions start with BEGIN IMMEDIATE: every atomic
// operation of the storage contract (redeeming a code, rotating a refresh
// token, deciding or completing a request) is one serialized transaction.
// Plain reads use a separate pool of read-only connections.
//
// The file is created with mode 0600: it holds signing keys. Schema
// migrations are embedded and applied in order at Open.
package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	oauth "github.com/mcp-oauth/oauth"
	"github.com/mcp-oauth/oauth/storage"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Store implements storage.Store on SQLite. Create it with Open.
type Store struct {
	w *sql.DB // one connection: all writes
	r *sql.DB // read-only pool
}

var _ storage.Store = (*Store)(nil)

// Open opens (creating with mode 0600 if needed) the database at path and
// applies pending migrations.
func Open(ctx context.Context, path string) (*Store, error) {
	if path == "" || strings.ContainsAny(path, "?#") {
		return nil, fmt.Errorf("sqlite: invalid database path %q", path)
	}
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil && !errors.Is(err, fs.ErrExist) {
			return nil, fmt.Errorf("sqlite: create %s: %w", path, err)
		}
		if f != nil {
			f.Close()
		}
	}
	pragmas := "_pragma=" + url.QueryEscape("busy_timeout(5000)") +
		"&_pragma=" + url.QueryEscape("journal_mode(WAL)") +
		"&_pragma=" + url.QueryEscape("synchronous(NORMAL)") +
		"&_pragma=" + url.QueryEscape("foreign_keys(ON)")
	dsn := "file:" + path + "?" + pragmas
	w, err := sql.Open("sqlite", dsn+"&_txlock=immediate")
	if err != nil {
		return nil, fmt.Errorf("sqlite: open: %w", err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	s := &Store{w: w}
	if err := s.migrate(ctx); err != nil {
		w.Close()
		return nil, err
	}
	r, err := sql.Open("sqlite", dsn+"&_pragma="+url.QueryEscape("query_only(1)"))
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("sqlite: open: %w", err)
	}
	r.SetMaxOpenConns(4)
	r.SetMaxIdleConns(4)
	s.r = r
	return s, nil
}

// Close closes both connection pools.
func (s *Store) Close() error {
	return errors.Join(s.r.Close(), s.w.Close())
}

func (s *Store) migrate(ctx context.Context) error {
	if _, err := s.w.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)`); err != nil {
		return fmt.Errorf("sqlite: migrations table: %w", err)
	}
	names, err := fs.Glob(migrations, "migrations/*.sql")
	if err != nil {
		return err
	}
	sort.Strings(names)
	for _, name := range names {
		base := strings.TrimPrefix(name, "migrations/")
		v, err := strconv.Atoi(strings.SplitN(base, "_", 2)[0])
		if err != nil {
			return fmt.Errorf("sqlite: migration %s: bad version", name)
		}
		body, err := migrations.ReadFile(name)
		if err != nil {
			return err
		}
		err = s.tx(ctx, func(tx *sql.Tx) error {
			var n int
			if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM schema_migrations WHERE version = ?`, v).Scan(&n); err != nil {
				return err
			}
			if n > 0 {
				return nil
			}
			if _, err := tx.ExecContext(ctx, string(body)); err != nil {
				return err
			}
			_, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)`, v, time.Now().UnixMilli())
			return err
		})
		if err != nil {
			return fmt.Errorf("sqlite: migration %s: %w", name, err)
		}
	}
	return nil
}

// tx runs f in a write transaction (BEGIN IMMEDIATE), committing if f
// returns nil and rolling back otherwise.
func (s *Store) tx(ctx context.Context, f func(*sql.Tx) error) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := f(tx); err != nil {
		tx.Rollback()
		return err
	}
	return tx.Commit()
}

func ms(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

func fromMS(v int64) time.Time {
	if v == 0 {
		return time.Time{}
	}
	return time.UnixMilli(v).UTC()
}

func isConstraint(err error) bool {
	var e *sqlite.Error
	return errors.As(err, &e) && e.Code()&0xff == sqlite3.SQLITE_CONSTRAINT
}

func wrap(op string, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, sql.ErrNoRows):
		return storage.ErrNotFound
	case errors.Is(err, storage.ErrNotFound), errors.Is(err, storage.ErrConflict):
		return err
	case isConstraint(err):
		return storage.ErrConflict
	}
	return fmt.Errorf("sqlite: %s: %w", op, err)
}

func encodeList(l []string) string {
	if len(l) == 0 {
		return "[]"
	}
	b, _ := json.Marshal(l)
	return string(b)
}

func decodeList(s string) ([]string, error) {
	var l []string
	if err := json.Unmarshal([]byte(s), &l); err != nil {
		return nil, err
	}
	if len(l) == 0 {
		return nil, nil
	}
	return l, nil
}

func encodeParams(p oauth.AuthorizationParams) (string, error) {
	b, err := json.Marshal(p)
	return string(b), err
}

func decodeParams(s string) (oauth.AuthorizationParams, error) {
	var p oauth.AuthorizationParams
	err := json.Unmarshal([]byte(s), &p)
	if len(p.Scopes) == 0 {
		p.Scopes = nil
	}
	return p, err
}

type scanner interface{ Scan(...any) error }

// ---- clients ----

const clientCols = `id, secret_hash, metadata, issued_at, expires_at`

func scanClient(row scanner) (*oauth.Client, error) {
	var c oauth.Client
	var md string
	var issued, expires int64
	if err := row.Scan(&c.ID, &c.SecretHash, &md, &issued, &expires); err != nil {
		return nil, err
	}
	if err := json.Unmarshal([]byte(md), &c.ClientRegistrationMetadata); err != nil {
		return nil, fmt.Errorf("decode client metadata: %w", err)
	}
	c.IssuedAt, c.ExpiresAt = fromMS(issued), fromMS(expires)
	return &c, nil
}

// CreateClient implements storage.ClientStore.
func (s *Store) CreateClient(ctx context.Context, c *oauth.Client) error {
	md, err := json.Marshal(c.ClientRegistrationMetadata)
	if err != nil {
		return fmt.Errorf("sqlite: encode client metadata: %w", err)
	}
	_, err = s.w.ExecContext(ctx, `INSERT INTO clients (`+clientCols+`) VALUES (?, ?, ?, ?, ?)`,
		c.ID, c.SecretHash, string(md), ms(c.IssuedAt), ms(c.ExpiresAt))
	return wrap("create client", err)
}

// GetClient implements storage.ClientStore.
func (s *Store) GetClient(ctx context.Context, id string, now time.Time) (*oauth.Client, error) {
	c, err := scanClient(s.r.QueryRowContext(ctx, `SELECT `+clientCols+` FROM clients WHERE id = ? AND (expires_at = 0 OR expires_at > ?)`, id, ms(now)))
	return c, wrap("get client", err)
}

// TouchClient implements storage.ClientStore.
func (s *Store) TouchClient(ctx context.Context, id string, expiresAt time.Time) error {
	res, err := s.w.ExecContext(ctx, `UPDATE clients SET expires_at = ? WHERE id = ?`, ms(expiresAt), id)
	return wrap("touch client", affected(res, err))
}

func affected(res sql.Result, err error) error {
	if err != nil {
		return err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n == 0 {
		return storage.ErrNotFound
	}
	return nil
}

// DeleteClient implements storage.ClientStore.
func (s *Store) DeleteClient(ctx context.Context, id string, now time.Time) error {
	return wrap("delete client", s.tx(ctx, func(tx *sql.Tx) error {
		if err := revokeWhere(ctx, tx, `client_id = ?`, id, now); err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, `DELETE FROM clients WHERE id = ?`, id)
		return affected(res, err)
	}))
}

// ListClients implements storage.ClientStore.
func (s *Store) ListClients(ctx context.Context, now time.Time) ([]*oauth.Client, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT `+clientCols+` FROM clients WHERE expires_at = 0 OR expires_at > ? ORDER BY rowid`, ms(now))
	if err != nil {
		return nil, wrap("list clients", err)
	}
	defer rows.Close()
	var out []*oauth.Client
	for rows.Next() {
		c, err := scanClient(rows)
		if err != nil {
			return nil, wrap("list clients", err)
		}
		out = append(out, c)
	}
	return out, wrap("list clients", rows.Err())
}

// ---- grants ----

const grantCols = `id, client_id, subject, scopes, resource, created_at, last_used_at, revoked_at`

func scanGrant(row scanner) (*oauth.Grant, error) {
	var g oauth.Grant
	var scopes string
	var created, used, revoked int64
	if err := row.Scan(&g.ID, &g.ClientID, &g.Subject, &scopes, &g.Resource, &created, &used, &revoked); err != nil {
		return nil, err
	}
	var err error
	if g.Scopes, err = decodeList(scopes); err != nil {
		return nil, err
	}
	g.CreatedAt, g.LastUsedAt, g.RevokedAt = fromMS(created), fromMS(used), fromMS(revoked)
	return &g, nil
}

// GetGrant implements storage.GrantStore.
func (s *Store) GetGrant(ctx context.Context, id string) (*oauth.Grant, error) {
	g, err := scanGrant(s.r.QueryRowContext(ctx, `SELECT `+grantCols+` FROM grants WHERE id = ?`, id))
	return g, wrap("get grant", err)
}

// ListGrants implements storage.GrantStore.
func (s *Store) ListGrants(ctx context.Context) ([]*oauth.Grant, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT `+grantCols+` FROM grants WHERE revoked_at = 0 ORDER BY rowid`)
	if err != nil {
		return nil, wrap("list grants", err)
	}
	defer rows.Close()
	var out []*oauth.Grant
	for rows.Next() {
		g, err := scanGrant(rows)
		if err != nil {
			return nil, wrap("list grants", err)
		}
		out = append(out, g)
	}
	return out, wrap("list grants", rows.Err())
}

// revokeWhere revokes the grants matching cond (with one argument) and
// deletes their codes and refresh tokens.
func revokeWhere(ctx context.Context, tx *sql.Tx, cond string, arg any, now time.Time) error {
	sub := `SELECT id FROM grants WHERE ` + cond
	if _, err := tx.ExecContext(ctx, `DELETE FROM codes WHERE grant_id IN (`+sub+`)`, arg); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM refresh_tokens WHERE grant_id IN (`+sub+`)`, arg); err != nil {
		return err
	}
	_, err := tx.ExecContext(ctx, `UPDATE grants SET revoked_at = ? WHERE revoked_at = 0 AND `+cond, ms(now), arg)
	return err
}

// RevokeGrant implements storage.GrantStore.
func (s *Store) RevokeGrant(ctx context.Context, id string, now time.Time) error {
	return wrap("revoke grant", s.tx(ctx, func(tx *sql.Tx) error {
		var one int
		if err := tx.QueryRowContext(ctx, `SELECT 1 FROM grants WHERE id = ?`, id).Scan(&one); err != nil {
			return err
		}
		return revokeWhere(ctx, tx, `id = ?`, id, now)
	}))
}

// TouchGrant implements storage.GrantStore.
func (s *Store) TouchGrant(ctx context.Context, id string, now time.Time) error {
	res, err := s.w.ExecContext(ctx, `UPDATE grants SET last_used_at = ? WHERE id = ?`, ms(now), id)
	return wrap("touch grant", affected(res, err))
}

func grantActive(ctx context.Context, tx *sql.Tx, id string) error {
	var revoked int64
	err := tx.QueryRowContext(ctx, `SELECT revoked_at FROM grants WHERE id = ?`, id).Scan(&revoked)
	if errors.Is(err, sql.ErrNoRows) || (err == nil && revoked != 0) {
		return storage.ErrConflict
	}
	return err
}

// ---- codes ----

// GetCode implements storage.CodeStore.
func (s *Store) GetCode(ctx context.Context, hash string, now time.Time) (*storage.CodeRecord, error) {
	var c storage.CodeRecord
	var params string
	var exp, consumed int64
	err := s.r.QueryRowContext(ctx, `SELECT hash, grant_id, subject, params, expires_at, consumed_at FROM codes WHERE hash = ? AND expires_at > ?`, hash, ms(now)).
		Scan(&c.Hash, &c.GrantID, &c.Subject, &params, &exp, &consumed)
	if err != nil {
		return nil, wrap("get code", err)
	}
	if c.AuthorizationParams, err = decodeParams(params); err != nil {
		return nil, wrap("get code", err)
	}
	c.ExpiresAt, c.ConsumedAt = fromMS(exp), fromMS(consumed)
	return &c, nil
}

// RedeemCode implements storage.CodeStore: one transaction that consumes
// the code with a conditional UPDATE … RETURNING and stores the refresh token.
func (s *Store) RedeemCode(ctx context.Context, hash string, now time.Time, rt *storage.RefreshRecord) error {
	return wrap("redeem code", s.tx(ctx, func(tx *sql.Tx) error {
		var grantID string
		err := tx.QueryRowContext(ctx, `UPDATE codes SET consumed_at = ? WHERE hash = ? AND consumed_at = 0 AND expires_at > ? RETURNING grant_id`,
			ms(now), hash, ms(now)).Scan(&grantID)
		if errors.Is(err, sql.ErrNoRows) {
			var consumed int64
			err := tx.QueryRowContext(ctx, `SELECT consumed_at FROM codes WHERE hash = ? AND expires_at > ?`, hash, ms(now)).Scan(&consumed)
			if errors.Is(err, sql.ErrNoRows) {
				return storage.ErrNotFound
			}
			if err != nil {
				return err
			}
			return storage.ErrConflict
		}
		if err != nil {
			return err
		}
		if err := grantActive(ctx, tx, grantID); err != nil {
			return err
		}
		return insertRefresh(ctx, tx, rt)
	}))
}

// ---- refresh tokens ----

const refreshCols = `hash, client_id, grant_id, subject, scopes, resource, created_at, expires_at, parent, successor, spent`

func insertRefresh(ctx context.Context, tx *sql.Tx, r *storage.RefreshRecord) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO refresh_tokens (`+refreshCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		r.Hash, r.ClientID, r.GrantID, r.Subject, encodeList(r.Scopes), r.Resource, ms(r.CreatedAt), ms(r.ExpiresAt), r.Parent, r.Successor, r.Spent)
	return err
}

func scanRefresh(row scanner) (*storage.RefreshRecord, error) {
	var r storage.RefreshRecord
	var scopes string
	var created, exp int64
	if err := row.Scan(&r.Hash, &r.ClientID, &r.GrantID, &r.Subject, &scopes, &r.Resource, &created, &exp, &r.Parent, &r.Successor, &r.Spent); err != nil {
		return nil, err
	}
	var err error
	if r.Scopes, err = decodeList(scopes); err != nil {
		return nil, err
	}
	r.CreatedAt, r.ExpiresAt = fromMS(created), fromMS(exp)
	return &r, nil
}

// GetRefreshToken implements storage.RefreshTokenStore.
func (s *Store) GetRefreshToken(ctx context.Context, hash string, now time.Time) (*storage.RefreshRecord, error) {
	r, err := scanRefresh(s.r.QueryRowContext(ctx, `SELECT `+refreshCols+` FROM refresh_tokens WHERE hash = ? AND expires_at > ?`, hash, ms(now)))
	return r, wrap("get refresh token", err)
}

// RotateRefreshToken implements storage.RefreshTokenStore. The transaction
// holds SQLite's write lock from its first statement (BEGIN IMMEDIATE), so
// the compare and the set cannot interleave with another rotation.
func (s *Store) RotateRefreshToken(ctx context.Context, oldHash, expectedSuccessor string, next *storage.RefreshRecord, now time.Time) error {
	return wrap("rotate refresh token", s.tx(ctx, func(tx *sql.Tx) error {
		old, err := scanRefresh(tx.QueryRowContext(ctx, `SELECT `+refreshCols+` FROM refresh_tokens WHERE hash = ? AND expires_at > ?`, oldHash, ms(now)))
		if err != nil {
			return err
		}
		if old.Spent || old.Successor != expectedSuccessor {
			return storage.ErrConflict
		}
		if err := grantActive(ctx, tx, old.GrantID); err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, `UPDATE refresh_tokens SET successor = ? WHERE hash = ? AND successor = ? AND spent = 0`, next.Hash, oldHash, expectedSuccessor)
		if err := affected(res, err); err != nil {
			if errors.Is(err, storage.ErrNotFound) {
				return storage.ErrConflict
			}
			return err
		}
		for _, h := range []string{expectedSuccessor, old.Parent} {
			if h == "" {
				continue
			}
			if _, err := tx.ExecContext(ctx, `UPDATE refresh_tokens SET spent = 1 WHERE hash = ?`, h); err != nil {
				return err
			}
		}
		return insertRefresh(ctx, tx, next)
	}))
}

// ---- pending requests ----

const pendingCols = `id, handle_hash, user_code_hash, params, status, subject, created_at, expires_at`

func scanPending(row scanner) (*storage.PendingRecord, error) {
	var p storage.PendingRecord
	var params string
	var created, exp int64
	if err := row.Scan(&p.ID, &p.HandleHash, &p.UserCodeHash, &params, &p.Status, &p.Subject, &created, &exp); err != nil {
		return nil, err
	}
	var err error
	if p.AuthorizationParams, err = decodeParams(params); err != nil {
		return nil, err
	}
	p.CreatedAt, p.ExpiresAt = fromMS(created), fromMS(exp)
	return &p, nil
}

// CreatePending implements storage.PendingStore.
func (s *Store) CreatePending(ctx context.Context, p *storage.PendingRecord) error {
	params, err := encodeParams(p.AuthorizationParams)
	if err != nil {
		return fmt.Errorf("sqlite: encode params: %w", err)
	}
	_, err = s.w.ExecContext(ctx, `INSERT INTO pending (`+pendingCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
		p.ID, p.HandleHash, p.UserCodeHash, params, p.Status, p.Subject, ms(p.CreatedAt), ms(p.ExpiresAt))
	return wrap("create pending", err)
}

// GetPendingByHandle implements storage.PendingStore.
func (s *Store) GetPendingByHandle(ctx context.Context, handleHash string, now time.Time) (*storage.PendingRecord, error) {
	p, err := scanPending(s.r.QueryRowContext(ctx, `SELECT `+pendingCols+` FROM pending WHERE handle_hash = ? AND expires_at > ?`, handleHash, ms(now)))
	return p, wrap("get pending", err)
}

// GetPendingByUserCode implements storage.PendingStore.
func (s *Store) GetPendingByUserCode(ctx context.Context, userCodeHash string, now time.Time) (*storage.PendingRecord, error) {
	p, err := scanPending(s.r.QueryRowContext(ctx, `SELECT `+pendingCols+` FROM pending WHERE user_code_hash = ? AND expires_at > ?`, userCodeHash, ms(now)))
	return p, wrap("get pending", err)
}

// pendingCAS moves a live request from one status to another, telling a
// missing or expired request (ErrNotFound) from one in another state
// (ErrConflict).
func pendingCAS(ctx context.Context, tx *sql.Tx, id, from, to, subject string, now time.Time) error {
	res, err := tx.ExecContext(ctx, `UPDATE pending SET status = ?, subject = CASE WHEN ? = '' THEN subject ELSE ? END WHERE id = ? AND status = ? AND expires_at > ?`,
		to, subject, subject, id, from, ms(now))
	err = affected(res, err)
	if !errors.Is(err, storage.ErrNotFound) {
		return err
	}
	var one int
	if err := tx.QueryRowContext(ctx, `SELECT 1 FROM pending WHERE id = ? AND expires_at > ?`, id, ms(now)).Scan(&one); err != nil {
		return err // sql.ErrNoRows → ErrNotFound
	}
	return storage.ErrConflict
}

// DecidePending implements storage.PendingStore.
func (s *Store) DecidePending(ctx context.Context, id, status, subject string, now time.Time) error {
	return wrap("decide pending", s.tx(ctx, func(tx *sql.Tx) error {
		return pendingCAS(ctx, tx, id, storage.PendingWaiting, status, subject, now)
	}))
}

// CompletePending implements storage.PendingStore.
func (s *Store) CompletePending(ctx context.Context, id string, g *oauth.Grant, code *storage.CodeRecord, now time.Time) error {
	params, err := encodeParams(code.AuthorizationParams)
	if err != nil {
		return fmt.Errorf("sqlite: encode params: %w", err)
	}
	return wrap("complete pending", s.tx(ctx, func(tx *sql.Tx) error {
		if err := pendingCAS(ctx, tx, id, storage.PendingApproved, storage.PendingCompleted, "", now); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO grants (`+grantCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
			g.ID, g.ClientID, g.Subject, encodeList(g.Scopes), g.Resource, ms(g.CreatedAt), ms(g.LastUsedAt), ms(g.RevokedAt)); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO codes (hash, grant_id, subject, params, expires_at, consumed_at) VALUES (?, ?, ?, ?, ?, ?)`,
			code.Hash, code.GrantID, code.Subject, params, ms(code.ExpiresAt), ms(code.ConsumedAt))
		return err
	}))
}

// ListPending implements storage.PendingStore.
func (s *Store) ListPending(ctx context.Context, now time.Time) ([]*storage.PendingRecord, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT `+pendingCols+` FROM pending WHERE status = ? AND expires_at > ? ORDER BY rowid`, storage.PendingWaiting, ms(now))
	if err != nil {
		return nil, wrap("list pending", err)
	}
	defer rows.Close()
	var out []*storage.PendingRecord
	for rows.Next() {
		p, err := scanPending(rows)
		if err != nil {
			return nil, wrap("list pending", err)
		}
		out = append(out, p)
	}
	return out, wrap("list pending", rows.Err())
}

// ---- keys ----

// ListKeys implements storage.KeyStore.
func (s *Store) ListKeys(ctx context.Context) ([]*storage.KeyRecord, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT id, alg, private, created_at, retired_at FROM signing_keys ORDER BY created_at DESC, rowid DESC`)
	if err != nil {
		return nil, wrap("list keys", err)
	}
	defer rows.Close()
	var out []*storage.KeyRecord
	for rows.Next() {
		var k storage.KeyRecord
		var created, retired int64
		if err := rows.Scan(&k.ID, &k.Algorithm, &k.Private, &created, &retired); err != nil {
			return nil, wrap("list keys", err)
		}
		k.CreatedAt, k.RetiredAt = fromMS(created), fromMS(retired)
		out = append(out, &k)
	}
	return out, wrap("list keys", rows.Err())
}

// AddKey implements storage.KeyStore.
func (s *Store) AddKey(ctx context.Context, k *storage.KeyRecord) error {
	return wrap("add key", s.tx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `UPDATE signing_keys SET retired_at = ? WHERE retired_at = 0`, ms(k.CreatedAt)); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO signing_keys (id, alg, private, created_at, retired_at) VALUES (?, ?, ?, ?, 0)`,
			k.ID, k.Algorithm, k.Private, ms(k.CreatedAt))
		return err
	}))
}

// DeleteKey implements storage.KeyStore.
func (s *Store) DeleteKey(ctx context.Context, id string) error {
	res, err := s.w.ExecContext(ctx, `DELETE FROM signing_keys WHERE id = ?`, id)
	return wrap("delete key", affected(res, err))
}

// ---- housekeeping ----

// Sweep implements storage.Store in one transaction.
func (s *Store) Sweep(ctx context.Context, now time.Time) (int64, error) {
	var total int64
	err := s.tx(ctx, func(tx *sql.Tx) error {
		t := ms(now)
		lapsed := `client_id IN (SELECT id FROM clients WHERE expires_at > 0 AND expires_at <= ?)`
		for _, st := range []struct {
			q    string
			args []any
		}{
			{`DELETE FROM codes WHERE expires_at <= ? OR grant_id IN (SELECT id FROM grants WHERE ` + lapsed + `)`, []any{t, t}},
			{`DELETE FROM refresh_tokens WHERE expires_at <= ? OR ` + lapsed, []any{t, t}},
			{`DELETE FROM grants WHERE revoked_at > 0 OR ` + lapsed, []any{t}},
			{`DELETE FROM clients WHERE expires_at > 0 AND expires_at <= ?`, []any{t}},
			{`DELETE FROM pending WHERE expires_at <= ?`, []any{t}},
		} {
			res, err := tx.ExecContext(ctx, st.q, st.args...)
			if err != nil {
				return err
			}
			n, err := res.RowsAffected()
			if err != nil {
				return err
			}
			total += n
		}
		return nil
	})
	return total, wrap("sweep", err)
}
