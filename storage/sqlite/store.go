// Package sqlite is the embedded default storage.Store and
// storage.AccountStore: one SQLite file, accessed through the pure-Go driver
// modernc.org/sqlite (no cgo).
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
// storing a grant data value under its grant's limit, sweeping) is one
// transaction on the writer. Those that must pick one
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
// Scope lists are JSON arrays; an empty list comes back as nil. A grant's
// custom claims are a JSON object, NULL for none (which comes back as nil);
// data keys, values and setups are BLOBs.
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

// query runs a query in the transaction.
func (t wtx) query(query string, args ...any) (*sql.Rows, error) {
	if st, ok := t.s.ws[query]; ok {
		return t.tx.StmtContext(t.ctx, st).QueryContext(t.ctx, args...)
	}
	return t.tx.QueryContext(t.ctx, query, args...)
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

// placeholders returns n comma-separated question marks.
func placeholders(n int) string {
	return strings.TrimSuffix(strings.Repeat("?, ", n), ", ")
}

// ---- columns and statements that several files use ----

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

// grantCols are the columns of oauth.Grant, in the order of scanGrant.
const grantCols = `id, client_id, subject, scopes, resource, created_at, last_used_at, revoked_at, redirect_uri, claims, grant_type, expires_at`

const codeCols = `hash, grant_id, subject, ` + paramCols + `, expires_at, consumed_at`

const refreshCols = `hash, client_id, grant_id, subject, scopes, resource, created_at, expires_at, parent, successor, spent`

var qInsertRefresh = `INSERT INTO refresh_tokens (` + refreshCols + `) VALUES (` + placeholders(11) + `)`

func refreshArgs(r *storage.RefreshRecord) ([]any, error) {
	scopes, err := encodeList(r.Scopes)
	if err != nil {
		return nil, err
	}
	return []any{r.Hash, r.ClientID, r.GrantID, r.Subject, scopes, r.Resource,
		ms(r.CreatedAt), ms(r.ExpiresAt), r.Parent, r.Successor, r.Spent}, nil
}

// ---- prepared statements ----

// readerQueries and writerQueries are prepared at Open, on the reader and
// the writer pool.
var (
	readerQueries = []string{
		qGetClient, qListClients, qGetGrant, qListGrants, qListSubjectGrants, qRevocationCount, qGetCode, qGetRefresh,
		qPendingByHandle, qPendingByCode, qPendingByDevice, qListPending, qListKeys,
		qGetUser, qListUsers, qGetSession, qGetGrantData, qGetGrantKey,
	}
	writerQueries = func() []string {
		q := []string{
			qCreateClient, qTouchClient, qDeleteClientCodes, qDeleteClientTokens, qRevokeClientGrants, qDeleteClient,
			qInsertGrant, qRevokeGrant, qGrantExists, qCountRevocations, qDeleteGrantCodes, qDeleteGrantTokens, qTouchActiveGrant,
			qInsertData, qPutData, qGrantActive, qCountData, qDeleteData, qDeleteGrantData, qDeleteClientData,
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
		for _, rq := range []recordQueries{rqGrant, rqClient, rqLapsed, rqOrphan} {
			q = append(q, rq.grants, rq.data)
		}
		return q
	}()
)
