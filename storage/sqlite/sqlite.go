// Package sqlite is the embedded default storage.Store: one SQLite file,
// accessed through the pure-Go driver modernc.org/sqlite (no cgo).
//
// # Concurrency
//
// The database runs in WAL mode (journal_mode=WAL, synchronous=NORMAL), so
// readers never block the writer nor the writer readers, and other processes
// (such as an admin command) can use the file while a server runs. A Store
// holds two connection pools:
//
//   - a writer pool of exactly one connection, through which every write
//     goes, run by one goroutine. Its transactions begin with BEGIN
//     IMMEDIATE (_txlock=immediate), taking SQLite's write lock up front, so
//     a read-modify-write transaction can never fail half-way with
//     SQLITE_BUSY on lock upgrade. Writes of one process queue for that
//     goroutine, which runs those waiting together in one transaction
//     (group commit), each inside a savepoint of its own, so that each
//     still succeeds or fails alone and none is reported done before its
//     transaction has committed;
//   - a reader pool of a few query_only connections for plain reads.
//
// A 5 s busy timeout covers contention with other processes.
//
// Every multi-row operation (revoking, deleting a client, adding a key,
// sweeping) is one transaction on the writer. Those that must pick one
// winner among concurrent callers (redeeming a code, rotating a refresh
// token, deciding or completing a pending request) hinge on a conditional
// UPDATE (compare-and-set) inside that transaction, so the database itself,
// not Go code, guarantees that exactly one of them succeeds, even across
// processes sharing the file.
//
// # Files
//
// Open creates the database file with mode 0600, since it holds signing
// keys; SQLite gives the -wal and -shm files it creates next to it the same
// mode. Schema migrations are embedded in the binary and applied in order
// at Open, each in its own transaction, recorded in table schema_migrations.
//
// # Encoding
//
// Times are stored as INTEGER Unix milliseconds (UTC), so they round-trip
// with millisecond precision and come back in UTC; the zero time.Time is
// stored as 0 and comes back as the zero time. An expiry of 0 never expires.
// Scope lists are JSON arrays; an empty list comes back as nil.
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
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	oauth "github.com/mcp-oauth/oauth"
	"github.com/mcp-oauth/oauth/storage"
	"github.com/mcp-oauth/oauth/storage/internal/migrate"
)

//go:embed migrations/*.sql
var migrations embed.FS

// readers is the size of the read-only connection pool.
const readers = 4

// Store implements storage.Store on one SQLite database file. Create it
// with Open and release it with Close. A Store is safe for concurrent use.
type Store struct {
	w  *sql.DB // exactly one connection: every write
	r  *sql.DB // query_only connections: plain reads
	ws stmts   // writer statements
	rs stmts   // reader statements

	// The writer goroutine (batch.go).
	ops        chan *writeOp
	quit       chan struct{}
	writerDone chan struct{}
	closeOnce  sync.Once
	batches    atomic.Int64 // transactions run by the writer

	// The checkpoint goroutine (checkpoint.go) and its connection.
	ckpt     *sql.DB
	ckptDone chan struct{}
}

var _ storage.Store = (*Store)(nil)

// Open opens the SQLite database at path, creating the file with mode 0600
// if it does not exist, and applies the embedded schema migrations it has
// not applied yet. path is a file-system path; SQLite URIs and in-memory
// databases are not supported.
func Open(ctx context.Context, path string) (*Store, error) {
	if path == "" || strings.Contains(path, "?") || strings.HasPrefix(path, "file:") || strings.HasPrefix(path, ":memory:") {
		return nil, fmt.Errorf("sqlite: invalid database path %q: want a file path without '?'", path)
	}
	// Create the file ourselves so that it never exists with a wider mode.
	// An existing file keeps its mode.
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	switch {
	case err == nil:
		if err := f.Close(); err != nil {
			return nil, fmt.Errorf("sqlite: create database file: %w", err)
		}
	case !errors.Is(err, fs.ErrExist):
		return nil, fmt.Errorf("sqlite: create database file: %w", err)
	}

	// A path without the "file:" prefix reaches sqlite3_open_v2 verbatim;
	// the driver strips and interprets the query.
	pragma := func(p string) string { return "_pragma=" + url.QueryEscape(p) }
	wdsn := path + "?" + strings.Join([]string{
		pragma("busy_timeout(5000)"),
		pragma("journal_mode(WAL)"),
		pragma("synchronous(NORMAL)"),
		pragma("foreign_keys(ON)"),
		pragma("wal_autocheckpoint(" + strconv.Itoa(walAutoCheckpoint) + ")"),
		"_txlock=immediate",
	}, "&")
	cdsn := path + "?" + strings.Join([]string{
		pragma("busy_timeout(5000)"),
		pragma("synchronous(NORMAL)"),
	}, "&")
	rdsn := path + "?" + strings.Join([]string{
		pragma("busy_timeout(5000)"),
		pragma("foreign_keys(ON)"),
		pragma("query_only(1)"),
	}, "&")

	w, err := sql.Open("sqlite", wdsn)
	if err != nil {
		return nil, fmt.Errorf("sqlite: open: %w", err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	w.SetConnMaxIdleTime(0)
	r, err := sql.Open("sqlite", rdsn)
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("sqlite: open: %w", err)
	}
	r.SetMaxOpenConns(readers)
	r.SetMaxIdleConns(readers)
	r.SetConnMaxLifetime(0)
	r.SetConnMaxIdleTime(0)
	c, err := sql.Open("sqlite", cdsn)
	if err != nil {
		w.Close()
		r.Close()
		return nil, fmt.Errorf("sqlite: open: %w", err)
	}
	c.SetMaxOpenConns(1)
	c.SetMaxIdleConns(1)
	s := &Store{w: w, r: r, ckpt: c}
	if err := s.init(ctx); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// init checks the journal mode, migrates the schema and prepares the
// statements.
func (s *Store) init(ctx context.Context) error {
	var mode string
	if err := s.w.QueryRowContext(ctx, `PRAGMA journal_mode`).Scan(&mode); err != nil {
		return fmt.Errorf("sqlite: open: %w", err)
	}
	if !strings.EqualFold(mode, "wal") {
		return fmt.Errorf("sqlite: open: journal mode is %q, not WAL (is the file on a network file system?)", mode)
	}
	if err := s.migrate(ctx); err != nil {
		return err
	}
	var err error
	if s.ws, err = prepare(ctx, s.w, writerQueries); err != nil {
		return err
	}
	if s.rs, err = prepare(ctx, s.r, readerQueries); err != nil {
		return err
	}
	s.startWriter()
	s.startCheckpointer(s.ckpt)
	return nil
}

// Close closes both connection pools. The Store must not be used after.
func (s *Store) Close() error {
	s.stopWriter()
	if s.ckptDone != nil {
		<-s.ckptDone
	}
	return errors.Join(s.ckpt.Close(), s.rs.close(), s.ws.close(), s.r.Close(), s.w.Close())
}

// ---- migrations ----

// embedded returns the embedded migrations in version order.
func embedded() ([]migrate.Migration, error) {
	ms, err := migrate.Load(migrations, "migrations")
	if err != nil {
		return nil, fmt.Errorf("sqlite: %w", err)
	}
	return ms, nil
}

// migrate applies, each in its own write transaction, the embedded
// migrations that schema_migrations does not list. Another process
// migrating the same file at the same time waits for the write lock and
// then finds the migration applied.
func (s *Store) migrate(ctx context.Context) error {
	ms, err := embedded()
	if err != nil {
		return err
	}
	if _, err := s.w.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
    version    INTEGER PRIMARY KEY,
    applied_at INTEGER NOT NULL -- Unix milliseconds
)`); err != nil {
		return fmt.Errorf("sqlite: create schema_migrations: %w", err)
	}
	for _, m := range ms {
		err := s.tx(ctx, func(tx *sql.Tx) error {
			var applied bool
			if err := tx.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM schema_migrations WHERE version = ?)`, m.Version).Scan(&applied); err != nil {
				return err
			}
			if applied {
				return nil
			}
			if _, err := tx.ExecContext(ctx, m.Body); err != nil {
				return err
			}
			_, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)`, m.Version, time.Now().UnixMilli())
			return err
		})
		if err != nil {
			return fmt.Errorf("sqlite: apply migration %s: %w", m.Name, err)
		}
	}
	var latest int
	if err := s.w.QueryRowContext(ctx, `SELECT coalesce(max(version), 0) FROM schema_migrations`).Scan(&latest); err != nil {
		return fmt.Errorf("sqlite: read schema version: %w", err)
	}
	if known := ms[len(ms)-1].Version; latest > known {
		return fmt.Errorf("sqlite: database schema version %d is newer than this program's (%d)", latest, known)
	}
	return nil
}

// ---- plumbing ----

// stmts holds a pool's prepared statements by query text. It is filled at
// Open and only read after, so it needs no lock. A *sql.Stmt of a pool is
// re-prepared by database/sql on each connection it first runs on.
//
// Statements are prepared eagerly: preparing lazily on the writer pool from
// inside a transaction would wait for the pool's only connection, which
// that transaction holds.
type stmts map[string]*sql.Stmt

func prepare(ctx context.Context, db *sql.DB, queries []string) (stmts, error) {
	m := make(stmts, len(queries))
	for _, q := range queries {
		if _, ok := m[q]; ok {
			continue
		}
		st, err := db.PrepareContext(ctx, q)
		if err != nil {
			m.close()
			return nil, fmt.Errorf("sqlite: prepare: %w", err)
		}
		m[q] = st
	}
	return m, nil
}

func (m stmts) close() error {
	var errs []error
	for _, st := range m {
		errs = append(errs, st.Close())
	}
	return errors.Join(errs...)
}

// row runs a single-row query on the reader pool.
func (s *Store) row(ctx context.Context, query string, args ...any) *sql.Row {
	if st, ok := s.rs[query]; ok {
		return st.QueryRowContext(ctx, args...)
	}
	return s.r.QueryRowContext(ctx, query, args...)
}

// rows runs a query on the reader pool.
func (s *Store) rows(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	if st, ok := s.rs[query]; ok {
		return st.QueryContext(ctx, args...)
	}
	return s.r.QueryContext(ctx, query, args...)
}

// exec runs one statement as a write operation of its own (update).
func (s *Store) exec(ctx context.Context, query string, args ...any) (sql.Result, error) {
	var res sql.Result
	err := s.update(ctx, func(t wtx) error {
		var err error
		res, err = t.exec(query, args...)
		return err
	})
	return res, err
}

// wtx is a write transaction that runs the writer's prepared statements.
type wtx struct {
	ctx context.Context
	tx  *sql.Tx
	s   *Store
}

func (t wtx) exec(query string, args ...any) (sql.Result, error) {
	if st, ok := t.s.ws[query]; ok {
		return t.tx.StmtContext(t.ctx, st).ExecContext(t.ctx, args...)
	}
	return t.tx.ExecContext(t.ctx, query, args...)
}

// execN runs a statement and returns the number of rows it changed.
func (t wtx) execN(query string, args ...any) (int64, error) {
	res, err := t.exec(query, args...)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

func (t wtx) row(query string, args ...any) *sql.Row {
	if st, ok := t.s.ws[query]; ok {
		return t.tx.StmtContext(t.ctx, st).QueryRowContext(t.ctx, args...)
	}
	return t.tx.QueryRowContext(t.ctx, query, args...)
}

// exists reports whether query (SELECT 1 …) yields a row.
func (t wtx) exists(query string, args ...any) (bool, error) {
	var one int
	err := t.row(query, args...).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	return err == nil, err
}

// tx runs f in a write transaction (BEGIN IMMEDIATE), committing if f
// returns nil and rolling back otherwise.
func (s *Store) tx(ctx context.Context, f func(*sql.Tx) error) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := f(tx); err != nil {
		if rerr := tx.Rollback(); rerr != nil && !errors.Is(rerr, sql.ErrTxDone) {
			return errors.Join(err, rerr)
		}
		return err
	}
	return tx.Commit()
}

// Reasons for storage.ErrConflict. They name no hash, secret or ID.
var (
	errCodeRedeemed  = fmt.Errorf("code already redeemed: %w", storage.ErrConflict)
	errGrantInactive = fmt.Errorf("grant revoked or missing: %w", storage.ErrConflict)
	errTokenRotated  = fmt.Errorf("refresh token spent or already rotated: %w", storage.ErrConflict)
	errPendingState  = fmt.Errorf("pending request not in the expected state: %w", storage.ErrConflict)
)

// wrap maps err for the operation op: sql.ErrNoRows becomes
// storage.ErrNotFound, a violated PRIMARY KEY or UNIQUE constraint
// storage.ErrConflict, and anything else an error naming op.
func wrap(op string, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, sql.ErrNoRows), errors.Is(err, storage.ErrNotFound):
		return storage.ErrNotFound
	case errors.Is(err, storage.ErrConflict):
		return fmt.Errorf("sqlite: %s: %w", op, err)
	case isUniqueViolation(err):
		// SQLite's message names the table and column, never a value.
		return fmt.Errorf("sqlite: %s: %w: %w", op, storage.ErrConflict, err)
	}
	return fmt.Errorf("sqlite: %s: %w", op, err)
}

func isUniqueViolation(err error) bool {
	var e *sqlite.Error
	if !errors.As(err, &e) {
		return false
	}
	switch e.Code() {
	case sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY, sqlite3.SQLITE_CONSTRAINT_UNIQUE:
		return true
	}
	return false
}

// affected turns "no row changed" into storage.ErrNotFound.
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

// ms encodes a time as Unix milliseconds, the zero time as 0.
func ms(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

// fromMS decodes ms: 0 is the zero time, anything else a UTC time.
func fromMS(v int64) time.Time {
	if v == 0 {
		return time.Time{}
	}
	return time.UnixMilli(v).UTC()
}

// live is the SQL condition, with one argument (now), that a row's
// expires_at has not passed; 0 never expires.
const live = `(expires_at = 0 OR expires_at > ?)`

// lapsed is the SQL condition, with one argument (now), that a row's
// expires_at has passed.
const lapsed = `(expires_at > 0 AND expires_at <= ?)`

func encodeList(l []string) (string, error) {
	if len(l) == 0 {
		return "[]", nil
	}
	b, err := json.Marshal(l)
	return string(b), err
}

func decodeList(s string) ([]string, error) {
	if s == "" || s == "[]" {
		return nil, nil
	}
	var l []string
	if err := json.Unmarshal([]byte(s), &l); err != nil {
		return nil, fmt.Errorf("decode scopes: %w", err)
	}
	if len(l) == 0 {
		return nil, nil
	}
	return l, nil
}

type scanner interface{ Scan(...any) error }

// paramCols are the columns of oauth.AuthorizationParams in codes and
// pending, in the order of paramArgs and paramDest.
const paramCols = `client_id, redirect_uri, redirect_uri_explicit, state, scopes, code_challenge, resource`

func paramArgs(p *oauth.AuthorizationParams) ([]any, error) {
	scopes, err := encodeList(p.Scopes)
	if err != nil {
		return nil, err
	}
	return []any{p.ClientID, p.RedirectURI, p.RedirectURIExplicit, p.State, scopes, p.CodeChallenge, p.Resource}, nil
}

// paramDest returns scan destinations for paramCols; the scopes land in
// *scopes for decodeList.
func paramDest(p *oauth.AuthorizationParams, scopes *string) []any {
	return []any{&p.ClientID, &p.RedirectURI, &p.RedirectURIExplicit, &p.State, scopes, &p.CodeChallenge, &p.Resource}
}

// placeholders returns n comma-separated question marks.
func placeholders(n int) string {
	return strings.TrimSuffix(strings.Repeat("?, ", n), ", ")
}

// ---- clients ----

const clientCols = `id, secret_hash, metadata, issued_at, expires_at`

var (
	qCreateClient = `INSERT INTO clients (` + clientCols + `) VALUES (` + placeholders(5) + `)`
	qGetClient    = `SELECT ` + clientCols + ` FROM clients WHERE id = ? AND ` + live
	qListClients  = `SELECT ` + clientCols + ` FROM clients WHERE ` + live + ` ORDER BY issued_at, rowid`
)

var (
	qTouchClient        = `UPDATE clients SET expires_at = ? WHERE id = ?`
	qDeleteClientCodes  = `DELETE FROM codes WHERE grant_id IN (SELECT id FROM grants WHERE client_id = ?)`
	qDeleteClientTokens = `DELETE FROM refresh_tokens WHERE grant_id IN (SELECT id FROM grants WHERE client_id = ?)`
	qRevokeClientGrants = `UPDATE grants SET revoked_at = ? WHERE client_id = ? AND revoked_at = 0`
	qDeleteClient       = `DELETE FROM clients WHERE id = ?`
)

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

// CreateClient implements storage.ClientStore. The registration metadata is
// stored as its RFC 7591 JSON.
func (s *Store) CreateClient(ctx context.Context, c *oauth.Client) error {
	md, err := json.Marshal(&c.ClientRegistrationMetadata)
	if err != nil {
		return fmt.Errorf("sqlite: create client: encode metadata: %w", err)
	}
	_, err = s.exec(ctx, qCreateClient, c.ID, c.SecretHash, string(md), ms(c.IssuedAt), ms(c.ExpiresAt))
	return wrap("create client", err)
}

// GetClient implements storage.ClientStore.
func (s *Store) GetClient(ctx context.Context, id string, now time.Time) (*oauth.Client, error) {
	c, err := scanClient(s.row(ctx, qGetClient, id, ms(now)))
	return c, wrap("get client", err)
}

// TouchClient implements storage.ClientStore; storage.ErrNotFound if there
// is no such client.
func (s *Store) TouchClient(ctx context.Context, id string, expiresAt time.Time) error {
	return wrap("touch client", affected(s.exec(ctx, qTouchClient, ms(expiresAt), id)))
}

// DeleteClient implements storage.ClientStore in one transaction: the
// client's grants are revoked as by RevokeGrant, then the client is deleted.
func (s *Store) DeleteClient(ctx context.Context, id string, now time.Time) error {
	return wrap("delete client", s.update(ctx, func(t wtx) error {
		if _, err := t.exec(qDeleteClientCodes, id); err != nil {
			return err
		}
		if _, err := t.exec(qDeleteClientTokens, id); err != nil {
			return err
		}
		n, err := t.execN(qRevokeClientGrants, ms(now), id)
		if err != nil {
			return err
		}
		if err := affected(t.exec(qDeleteClient, id)); err != nil {
			return err
		}
		return t.countRevocations(n + 1) // the grants and the client
	}))
}

// ListClients implements storage.ClientStore, ordering by IssuedAt, then
// by insertion.
func (s *Store) ListClients(ctx context.Context, now time.Time) ([]*oauth.Client, error) {
	out, err := list(s, ctx, scanClient, qListClients, ms(now))
	return out, wrap("list clients", err)
}

// list runs a query on the reader pool and scans every row with scan.
func list[T any](s *Store, ctx context.Context, scan func(scanner) (*T, error), query string, args ...any) ([]*T, error) {
	rows, err := s.rows(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

// ---- grants ----

const grantCols = `id, client_id, subject, scopes, resource, created_at, last_used_at, revoked_at, redirect_uri`

var (
	qInsertGrant       = `INSERT INTO grants (` + grantCols + `) VALUES (` + placeholders(9) + `)`
	qGetGrant          = `SELECT ` + grantCols + ` FROM grants WHERE id = ?`
	qListGrants        = `SELECT ` + grantCols + ` FROM grants WHERE revoked_at = 0 ORDER BY created_at, rowid`
	qListSubjectGrants = `SELECT ` + grantCols + ` FROM grants WHERE subject = ? AND revoked_at = 0 ORDER BY created_at, rowid`
)

var (
	// qRevokeGrant revokes an active grant; a revoked one keeps its first
	// RevokedAt.
	qRevokeGrant       = `UPDATE grants SET revoked_at = ? WHERE id = ? AND revoked_at = 0`
	qGrantExists       = `SELECT 1 FROM grants WHERE id = ?`
	qCountRevocations  = `UPDATE revocation_count SET n = n + ? WHERE id = 1`
	qRevocationCount   = `SELECT n FROM revocation_count WHERE id = 1`
	qDeleteGrantCodes  = `DELETE FROM codes WHERE grant_id = ?`
	qDeleteGrantTokens = `DELETE FROM refresh_tokens WHERE grant_id = ?`
	qTouchGrant        = `UPDATE grants SET last_used_at = ? WHERE id = ?`
	qTouchActiveGrant  = `UPDATE grants SET last_used_at = ? WHERE id = ? AND revoked_at = 0`
)

func scanGrant(row scanner) (*oauth.Grant, error) {
	var g oauth.Grant
	var scopes string
	var created, used, revoked int64
	if err := row.Scan(&g.ID, &g.ClientID, &g.Subject, &scopes, &g.Resource, &created, &used, &revoked, &g.RedirectURI); err != nil {
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
	g, err := scanGrant(s.row(ctx, qGetGrant, id))
	return g, wrap("get grant", err)
}

// ListGrants implements storage.GrantStore, ordering by CreatedAt, then by
// insertion.
func (s *Store) ListGrants(ctx context.Context) ([]*oauth.Grant, error) {
	out, err := list(s, ctx, scanGrant, qListGrants)
	return out, wrap("list grants", err)
}

// ListSubjectGrants implements storage.GrantStore.
func (s *Store) ListSubjectGrants(ctx context.Context, subject string) ([]*oauth.Grant, error) {
	out, err := list(s, ctx, scanGrant, qListSubjectGrants, subject)
	return out, wrap("list subject grants", err)
}

// RevokeGrant implements storage.GrantStore in one transaction. A grant
// that is already revoked keeps its first RevokedAt.
func (s *Store) RevokeGrant(ctx context.Context, id string, now time.Time) error {
	return wrap("revoke grant", s.update(ctx, func(t wtx) error {
		n, err := t.execN(qRevokeGrant, ms(now), id)
		if err != nil {
			return err
		}
		if n == 0 {
			if ok, err := t.exists(qGrantExists, id); err != nil {
				return err
			} else if !ok {
				return sql.ErrNoRows
			}
		}
		if err := t.countRevocations(n); err != nil {
			return err
		}
		if _, err := t.exec(qDeleteGrantCodes, id); err != nil {
			return err
		}
		_, err = t.exec(qDeleteGrantTokens, id)
		return err
	}))
}

// touchActiveGrant records the use of grant id at now if it is active, and
// fails with errGrantInactive if it is not: one statement instead of a
// check and an update.
func (t wtx) touchActiveGrant(id string, now time.Time) error {
	n, err := t.execN(qTouchActiveGrant, ms(now), id)
	if err != nil {
		return err
	}
	if n == 0 {
		return errGrantInactive
	}
	return nil
}

// countRevocations adds n grants that stopped being active to the
// revocation count, in the transaction that revoked them.
func (t wtx) countRevocations(n int64) error {
	if n == 0 {
		return nil
	}
	_, err := t.exec(qCountRevocations, n)
	return err
}

// RevocationCount implements storage.GrantStore.
func (s *Store) RevocationCount(ctx context.Context) (int64, error) {
	var n int64
	err := s.row(ctx, qRevocationCount).Scan(&n)
	return n, wrap("revocation count", err)
}

// ---- codes ----

const codeCols = `hash, grant_id, subject, ` + paramCols + `, expires_at, consumed_at`

var (
	qInsertCode = `INSERT INTO codes (` + codeCols + `) VALUES (` + placeholders(12) + `)`
	qGetCode    = `SELECT ` + codeCols + ` FROM codes WHERE hash = ? AND ` + live
	// qConsumeCode is RedeemCode's compare-and-set.
	qConsumeCode = `UPDATE codes SET consumed_at = ? WHERE hash = ? AND consumed_at = 0 AND ` + live + ` RETURNING grant_id`
	qCodeLive    = `SELECT 1 FROM codes WHERE hash = ? AND ` + live
)

func scanCode(row scanner) (*storage.CodeRecord, error) {
	var c storage.CodeRecord
	var scopes string
	var exp, consumed int64
	dest := append([]any{&c.Hash, &c.GrantID, &c.Subject}, paramDest(&c.AuthorizationParams, &scopes)...)
	if err := row.Scan(append(dest, &exp, &consumed)...); err != nil {
		return nil, err
	}
	var err error
	if c.Scopes, err = decodeList(scopes); err != nil {
		return nil, err
	}
	c.ExpiresAt, c.ConsumedAt = fromMS(exp), fromMS(consumed)
	return &c, nil
}

// GetCode implements storage.CodeStore. The returned record's Code (the
// plaintext) is empty.
func (s *Store) GetCode(ctx context.Context, hash string, now time.Time) (*storage.CodeRecord, error) {
	c, err := scanCode(s.row(ctx, qGetCode, hash, ms(now)))
	return c, wrap("get code", err)
}

// RedeemCode implements storage.CodeStore in one write transaction:
//
//	UPDATE codes SET consumed_at = now
//	WHERE hash = ? AND consumed_at = 0 AND (expires_at = 0 OR expires_at > now)
//	RETURNING grant_id
//
// consumes the code only if nobody has, then the grant must be active and
// rt is inserted. If the UPDATE matched no row, the code is either missing
// or expired (storage.ErrNotFound) or already consumed (storage.ErrConflict).
// Any failure rolls the whole step back.
func (s *Store) RedeemCode(ctx context.Context, hash string, now time.Time, rt *storage.RefreshRecord) error {
	args, err := refreshArgs(rt)
	if err != nil {
		return fmt.Errorf("sqlite: redeem code: %w", err)
	}
	return wrap("redeem code", s.update(ctx, func(t wtx) error {
		var grantID string
		err := t.row(qConsumeCode, ms(now), hash, ms(now)).Scan(&grantID)
		if errors.Is(err, sql.ErrNoRows) {
			switch ok, err := t.exists(qCodeLive, hash, ms(now)); {
			case err != nil:
				return err
			case ok:
				return errCodeRedeemed
			}
			return storage.ErrNotFound
		}
		if err != nil {
			return err
		}
		if err := t.touchActiveGrant(grantID, now); err != nil {
			return err
		}
		_, err = t.exec(qInsertRefresh, args...)
		return err
	}))
}

// ---- refresh tokens ----

const refreshCols = `hash, client_id, grant_id, subject, scopes, resource, created_at, expires_at, parent, successor, spent`

var (
	qInsertRefresh = `INSERT INTO refresh_tokens (` + refreshCols + `) VALUES (` + placeholders(11) + `)`
	qGetRefresh    = `SELECT ` + refreshCols + ` FROM refresh_tokens WHERE hash = ? AND ` + live
	// qRotate is RotateRefreshToken's compare-and-set.
	qRotate = `UPDATE refresh_tokens SET successor = ?
WHERE hash = ? AND successor = ? AND spent = 0 AND ` + live + `
RETURNING grant_id, parent`
	qRefreshLive = `SELECT 1 FROM refresh_tokens WHERE hash = ? AND ` + live
	qSpend       = `UPDATE refresh_tokens SET spent = 1 WHERE hash IN (?, ?) AND hash != ''`
)

func refreshArgs(r *storage.RefreshRecord) ([]any, error) {
	scopes, err := encodeList(r.Scopes)
	if err != nil {
		return nil, err
	}
	return []any{r.Hash, r.ClientID, r.GrantID, r.Subject, scopes, r.Resource,
		ms(r.CreatedAt), ms(r.ExpiresAt), r.Parent, r.Successor, r.Spent}, nil
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
	r, err := scanRefresh(s.row(ctx, qGetRefresh, hash, ms(now)))
	return r, wrap("get refresh token", err)
}

// RotateRefreshToken implements storage.RefreshTokenStore in one write
// transaction:
//
//	UPDATE refresh_tokens SET successor = next
//	WHERE hash = old AND successor = expected AND spent = 0
//	  AND (expires_at = 0 OR expires_at > now)
//	RETURNING grant_id, parent
//
// is the compare-and-set; then the grant must be active, the previous
// successor and old's parent are marked spent, and next is inserted. If the
// UPDATE matched no row, old is either missing or expired
// (storage.ErrNotFound) or spent or already rotated (storage.ErrConflict).
// Any failure rolls the whole step back.
func (s *Store) RotateRefreshToken(ctx context.Context, oldHash, expectedSuccessor string, next *storage.RefreshRecord, now time.Time) error {
	args, err := refreshArgs(next)
	if err != nil {
		return fmt.Errorf("sqlite: rotate refresh token: %w", err)
	}
	return wrap("rotate refresh token", s.update(ctx, func(t wtx) error {
		var grantID, parent string
		err := t.row(qRotate, next.Hash, oldHash, expectedSuccessor, ms(now)).Scan(&grantID, &parent)
		if errors.Is(err, sql.ErrNoRows) {
			switch ok, err := t.exists(qRefreshLive, oldHash, ms(now)); {
			case err != nil:
				return err
			case ok:
				return errTokenRotated
			}
			return storage.ErrNotFound
		}
		if err != nil {
			return err
		}
		if err := t.touchActiveGrant(grantID, now); err != nil {
			return err
		}
		if expectedSuccessor != "" || parent != "" {
			if _, err := t.exec(qSpend, expectedSuccessor, parent); err != nil {
				return err
			}
		}
		_, err = t.exec(qInsertRefresh, args...)
		return err
	}))
}

// ---- pending requests ----

const pendingCols = `id, handle_hash, user_code_hash, ` + paramCols + `, status, subject, created_at, expires_at, device_code_hash`

var (
	qCreatePending   = `INSERT INTO pending (` + pendingCols + `) VALUES (` + placeholders(15) + `)`
	qPendingByDevice = `SELECT ` + pendingCols + ` FROM pending WHERE device_code_hash = ? AND device_code_hash <> ''`
	qPendingByHandle = `SELECT ` + pendingCols + ` FROM pending WHERE handle_hash = ? AND ` + live
	qPendingByCode   = `SELECT ` + pendingCols + ` FROM pending WHERE user_code_hash = ? AND ` + live
	qListPending     = `SELECT ` + pendingCols + ` FROM pending WHERE status = ? AND ` + live + ` ORDER BY created_at, rowid`
	// qDecide and qComplete are the compare-and-sets on status.
	qDecide      = `UPDATE pending SET status = ?, subject = ? WHERE id = ? AND status = ? AND ` + live
	qComplete    = `UPDATE pending SET status = ? WHERE id = ? AND status = ? AND ` + live
	qPendingLive = `SELECT 1 FROM pending WHERE id = ? AND ` + live
)

func scanPending(row scanner) (*storage.PendingRecord, error) {
	var p storage.PendingRecord
	var scopes string
	var created, exp int64
	dest := append([]any{&p.ID, &p.HandleHash, &p.UserCodeHash}, paramDest(&p.AuthorizationParams, &scopes)...)
	if err := row.Scan(append(dest, &p.Status, &p.Subject, &created, &exp, &p.DeviceCodeHash)...); err != nil {
		return nil, err
	}
	var err error
	if p.Scopes, err = decodeList(scopes); err != nil {
		return nil, err
	}
	p.CreatedAt, p.ExpiresAt = fromMS(created), fromMS(exp)
	return &p, nil
}

// CreatePending implements storage.PendingStore. IDs, handles and user
// codes stay taken until Sweep deletes the expired request.
func (s *Store) CreatePending(ctx context.Context, p *storage.PendingRecord) error {
	params, err := paramArgs(&p.AuthorizationParams)
	if err != nil {
		return fmt.Errorf("sqlite: create pending: %w", err)
	}
	args := append([]any{p.ID, p.HandleHash, p.UserCodeHash}, params...)
	args = append(args, p.Status, p.Subject, ms(p.CreatedAt), ms(p.ExpiresAt), p.DeviceCodeHash)
	_, err = s.exec(ctx, qCreatePending, args...)
	return wrap("create pending", err)
}

// GetPendingByDeviceCode implements storage.PendingStore.
func (s *Store) GetPendingByDeviceCode(ctx context.Context, deviceCodeHash string) (*storage.PendingRecord, error) {
	p, err := scanPending(s.row(ctx, qPendingByDevice, deviceCodeHash))
	return p, wrap("get pending by device code", err)
}

// GetPendingByHandle implements storage.PendingStore.
func (s *Store) GetPendingByHandle(ctx context.Context, handleHash string, now time.Time) (*storage.PendingRecord, error) {
	p, err := scanPending(s.row(ctx, qPendingByHandle, handleHash, ms(now)))
	return p, wrap("get pending by handle", err)
}

// GetPendingByUserCode implements storage.PendingStore.
func (s *Store) GetPendingByUserCode(ctx context.Context, userCodeHash string, now time.Time) (*storage.PendingRecord, error) {
	p, err := scanPending(s.row(ctx, qPendingByCode, userCodeHash, ms(now)))
	return p, wrap("get pending by user code", err)
}

// casPending runs a compare-and-set UPDATE on a request's status. If it
// changed no row, the request is missing or expired (storage.ErrNotFound)
// or in another state (storage.ErrConflict).
func casPending(t wtx, id string, now time.Time, query string, args ...any) error {
	n, err := t.execN(query, args...)
	switch {
	case err != nil:
		return err
	case n > 0:
		return nil
	}
	switch ok, err := t.exists(qPendingLive, id, ms(now)); {
	case err != nil:
		return err
	case ok:
		return errPendingState
	}
	return storage.ErrNotFound
}

// DecidePending implements storage.PendingStore with a compare-and-set on
// the request's status. A status other than oauth.PendingApproved or
// oauth.PendingDenied is an error.
func (s *Store) DecidePending(ctx context.Context, id string, status oauth.PendingStatus, subject string, now time.Time) error {
	if status != oauth.PendingApproved && status != oauth.PendingDenied {
		return fmt.Errorf("sqlite: decide pending: invalid status %q", status)
	}
	return wrap("decide pending", s.update(ctx, func(t wtx) error {
		return casPending(t, id, now, qDecide, status, subject, id, oauth.PendingWaiting, ms(now))
	}))
}

// CompletePending implements storage.PendingStore in one write transaction:
// a compare-and-set of the request's status from approved to completed,
// then the grant and the code are inserted. storage.ErrNotFound if the
// request is missing or expired; storage.ErrConflict if it is not approved
// or the grant's ID or the code's hash is taken.
func (s *Store) CompletePending(ctx context.Context, id string, grant *oauth.Grant, code *storage.CodeRecord, now time.Time) error {
	gScopes, err := encodeList(grant.Scopes)
	if err != nil {
		return fmt.Errorf("sqlite: complete pending: %w", err)
	}
	params, err := paramArgs(&code.AuthorizationParams)
	if err != nil {
		return fmt.Errorf("sqlite: complete pending: %w", err)
	}
	codeArgs := append([]any{code.Hash, code.GrantID, code.Subject}, params...)
	codeArgs = append(codeArgs, ms(code.ExpiresAt), ms(code.ConsumedAt))
	return wrap("complete pending", s.update(ctx, func(t wtx) error {
		err := casPending(t, id, now, qComplete, oauth.PendingCompleted, id, oauth.PendingApproved, ms(now))
		if err != nil {
			return err
		}
		if _, err := t.exec(qInsertGrant, grant.ID, grant.ClientID, grant.Subject, gScopes, grant.Resource,
			ms(grant.CreatedAt), ms(grant.LastUsedAt), ms(grant.RevokedAt), grant.RedirectURI); err != nil {
			return err
		}
		_, err = t.exec(qInsertCode, codeArgs...)
		return err
	}))
}

// ListPending implements storage.PendingStore, ordering by CreatedAt, then
// by insertion.
func (s *Store) ListPending(ctx context.Context, now time.Time) ([]*storage.PendingRecord, error) {
	out, err := list(s, ctx, scanPending, qListPending, oauth.PendingWaiting, ms(now))
	return out, wrap("list pending", err)
}

// ---- signing keys ----

var (
	qListKeys   = `SELECT id, alg, private, created_at, retired_at FROM signing_keys ORDER BY created_at DESC, rowid DESC`
	qRetireKeys = `UPDATE signing_keys SET retired_at = ? WHERE retired_at = 0`
	qInsertKey  = `INSERT INTO signing_keys (id, alg, private, created_at, retired_at) VALUES (?, ?, ?, ?, 0)`
	qDeleteKey  = `DELETE FROM signing_keys WHERE id = ?`
)

func scanKey(row scanner) (*storage.KeyRecord, error) {
	var k storage.KeyRecord
	var created, retired int64
	if err := row.Scan(&k.ID, &k.Algorithm, &k.Private, &created, &retired); err != nil {
		return nil, err
	}
	k.CreatedAt, k.RetiredAt = fromMS(created), fromMS(retired)
	return &k, nil
}

// ListKeys implements storage.KeyStore, ordering by CreatedAt, newest
// first.
func (s *Store) ListKeys(ctx context.Context) ([]*storage.KeyRecord, error) {
	out, err := list(s, ctx, scanKey, qListKeys)
	return out, wrap("list keys", err)
}

// AddKey implements storage.KeyStore in one write transaction. k is stored
// as active (its RetiredAt is ignored); storage.ErrConflict if its ID is
// taken.
func (s *Store) AddKey(ctx context.Context, k *storage.KeyRecord) error {
	return wrap("add key", s.update(ctx, func(t wtx) error {
		if _, err := t.exec(qRetireKeys, ms(k.CreatedAt)); err != nil {
			return err
		}
		private := k.Private
		if private == nil {
			private = []byte{} // NOT NULL
		}
		_, err := t.exec(qInsertKey,
			k.ID, k.Algorithm, private, ms(k.CreatedAt))
		return err
	}))
}

// DeleteKey implements storage.KeyStore.
func (s *Store) DeleteKey(ctx context.Context, id string) error {
	return wrap("delete key", affected(s.exec(ctx, qDeleteKey, id)))
}

// ---- housekeeping ----

// deadGrants selects, with one argument (now), the grants Sweep deletes:
// revoked ones and those of lapsed clients.
const deadGrants = `SELECT id FROM grants WHERE revoked_at > 0
  OR client_id IN (SELECT id FROM clients WHERE ` + lapsed + `)`

// sweeps are Sweep's statements, in order; each takes now twice at most.
// The rows a statement changes count as deleted rows (Sweep's result), as
// revocations (RevocationCount), or both: active grants about to be
// deleted are revoked first, so that they count as revocations, and a
// deleted client counts as both.
var sweeps = []struct {
	query            string
	nows             int
	deleted, revoked bool
}{
	{`UPDATE grants SET revoked_at = ? WHERE revoked_at = 0
  AND client_id IN (SELECT id FROM clients WHERE ` + lapsed + `)`, 2, false, true},
	{`DELETE FROM codes WHERE ` + lapsed + ` OR grant_id IN (` + deadGrants + `)`, 2, true, false},
	{`DELETE FROM refresh_tokens WHERE ` + lapsed + ` OR grant_id IN (` + deadGrants + `)`, 2, true, false},
	{`DELETE FROM grants WHERE id IN (` + deadGrants + `)`, 1, true, false},
	{`DELETE FROM clients WHERE ` + lapsed, 1, true, true},
	{`DELETE FROM pending WHERE ` + lapsed, 1, true, false},
	{`DELETE FROM sessions WHERE idle_expires_at <= ? OR expires_at <= ?`, 2, true, false},
	// Grants left with neither a code nor a refresh token can issue nothing.
	{`UPDATE grants SET revoked_at = ? WHERE revoked_at = 0
  AND NOT EXISTS (SELECT 1 FROM codes WHERE grant_id = grants.id)
  AND NOT EXISTS (SELECT 1 FROM refresh_tokens WHERE grant_id = grants.id)`, 1, false, true},
	{`DELETE FROM grants WHERE NOT EXISTS (SELECT 1 FROM codes WHERE grant_id = grants.id)
  AND NOT EXISTS (SELECT 1 FROM refresh_tokens WHERE grant_id = grants.id)`, 0, true, false},
}

// Sweep implements storage.Store in one write transaction. It deletes
// expired codes, refresh tokens and pending requests; lapsed clients with
// their grants and those grants' codes and refresh tokens; revoked grants
// (with any code or token left of them). It returns the number of rows
// deleted, of all kinds.
func (s *Store) Sweep(ctx context.Context, now time.Time) (int64, error) {
	var total int64
	err := s.update(ctx, func(t wtx) error {
		total = 0
		var revoked int64
		for _, sw := range sweeps {
			args := []any{ms(now), ms(now)}[:sw.nows]
			n, err := t.execN(sw.query, args...)
			if err != nil {
				return err
			}
			if sw.deleted {
				total += n
			}
			if sw.revoked {
				revoked += n
			}
		}
		return t.countRevocations(revoked)
	})
	if err != nil {
		return 0, wrap("sweep", err)
	}
	return total, nil
}

// readerQueries and writerQueries are prepared at Open, on the reader and
// the writer pool.
var (
	readerQueries = []string{
		qGetClient, qListClients, qGetGrant, qListGrants, qListSubjectGrants, qRevocationCount, qGetCode, qGetRefresh,
		qPendingByHandle, qPendingByCode, qPendingByDevice, qListPending, qListKeys,
		qGetUser, qListUsers, qGetSession,
	}
	writerQueries = func() []string {
		q := []string{
			qCreateClient, qTouchClient, qDeleteClientCodes, qDeleteClientTokens, qRevokeClientGrants, qDeleteClient,
			qInsertGrant, qRevokeGrant, qGrantExists, qCountRevocations, qDeleteGrantCodes, qDeleteGrantTokens, qTouchGrant, qTouchActiveGrant,
			qInsertCode, qConsumeCode, qCodeLive,
			qInsertRefresh, qRotate, qRefreshLive, qSpend,
			qCreatePending, qDecide, qComplete, qPendingLive,
			qRetireKeys, qInsertKey, qDeleteKey,
			qSavepoint, qRollbackTo, qRelease,
			qCreateUser, qSetPassword, qRecordSignIn, qDeleteUser, qDeleteUserSessions,
			qCreateSession, qTouchSession, qDeleteSession,
		}
		for _, sw := range sweeps {
			q = append(q, sw.query)
		}
		return q
	}()
)
