// Package postgres is a storage.Store and storage.AccountStore on
// PostgreSQL, through github.com/jackc/pgx/v5 and its connection pool
// pgxpool. It is the backend for authorization servers that run as several
// replicas sharing one database.
//
// # Opening
//
// Open takes a postgres:// URL (or a key=value DSN), which may set pool
// parameters such as pool_max_conns and any run-time parameter such as
// search_path; New takes a pool the caller owns. Both apply the schema
// migrations before returning, and the context bounds connecting and
// migrating. Close closes the pool only if Open created it.
//
// The Store holds no session state (the migration lock is
// transaction-scoped), so it works behind a transaction-pooling proxy such
// as PgBouncer, given a query exec mode that does not rely on prepared
// statements (default_query_exec_mode=exec or simple_protocol in the URL).
//
// # Schema
//
// SQL names are unqualified: the Store's tables live in the first existing
// schema of the connection's search_path (current_schema()), so a schema is
// chosen per deployment with search_path in the URL or the pool's
// RuntimeParams. The migrations are embedded in the binary and applied in
// order, all in one transaction that first takes a transaction-scoped
// advisory lock (pg_advisory_xact_lock) with a fixed key, and recorded in
// table schema_migrations; of several replicas starting at once, one
// migrates and the others wait for it and then find nothing to do. A schema
// newer than this program's is refused.
//
// # Concurrency
//
// Atomicity is enforced by PostgreSQL, never by locks in this process, so it
// holds across replicas. Every multi-statement operation is one transaction,
// begun explicitly at READ COMMITTED whatever the server's default (the
// reasoning below depends on it). The operations that must pick one winner
// among concurrent callers (redeeming a code, rotating a refresh token,
// deciding or completing a pending request) hinge on a conditional UPDATE,
// a compare-and-set such as
//
//	UPDATE codes SET consumed_at = $now
//	WHERE hash = $1 AND consumed_at IS NULL AND (expires_at IS NULL OR expires_at > $now)
//	RETURNING …
//
// Under READ COMMITTED this is safe: the UPDATE locks the row it changes
// until the transaction ends, and a concurrent UPDATE of the same row waits
// for that lock and then re-evaluates its WHERE clause against the row as
// the winner committed it (PostgreSQL's EvalPlanQual re-check), so it
// matches nothing and its caller gets storage.ErrConflict. If the winner
// rolls back, a waiter re-checks the unchanged row and may win instead.
//
// Transactions that lock existing rows of several tables lock them in one
// global order (client, grant, code, refresh token, grant data value,
// pending request), so
// that they cannot deadlock, and that order also makes revocation
// complete: RevokeGrant and DeleteClient lock the grant row first and
// delete its codes and tokens in later statements, each of which sees
// everything committed before it started. RotateRefreshToken therefore
// locks the token's grant row (FOR NO KEY UPDATE) before its
// compare-and-set: a revocation either waits for the rotation to commit,
// and then deletes the new token too, or the rotation waits for the
// revocation and finds the grant revoked. That lock also serializes the
// rotations of one grant's chain, whose tokens they lock in different
// orders. RedeemCode likewise locks the code's grant row, if the grant is
// active, before the code, by setting the grant's last-used time first: a
// revocation either waits for the redemption to commit, and then deletes
// the token it stored, or the redemption waits for the revocation and
// finds the code gone. PutGrantData locks its active grant's row (FOR NO
// KEY UPDATE) before it counts and writes the grant's values: the puts of
// one grant run one at a time, so that none exceeds the limit on values,
// and a revocation either waits for a put to commit, and then deletes and
// returns its value, or the put waits for the revocation and finds the
// grant revoked. AddKey serializes with itself through a table lock.
// Transactions that fail with a serialization failure or a deadlock anyway
// are retried a few times.
//
// Every transaction that revokes a grant (RevokeGrant, DeleteClient,
// Sweep) ends by adding to the single row of revocation_count, which is
// thus last in the lock order, and by pg_notify on the channel
// "mcpauth_revocations" with its schema as payload; both take effect at
// commit. RevocationCount reads the row; WatchRevocations listens on the
// channel, so that every replica learns of a revocation within
// milliseconds, and by polling the count otherwise.
//
// # Encoding
//
// Times are timestamptz, stored with microsecond precision and read back in
// UTC; the zero time.Time is stored as NULL and read back as the zero time,
// and an expiry of NULL never expires. Scope lists are text[]; an empty list
// is stored as '{}' and read back as nil. Client registration metadata is
// its RFC 7591 JSON, in a jsonb column; a grant's custom claims are a JSON
// object in a json column, NULL for none (read back as nil). Data keys,
// values and setups are bytea. Lists ordered "oldest first" are ordered by
// their timestamp (NULL first), then by insertion.
//
// # Errors
//
// A violated PRIMARY KEY or UNIQUE constraint is storage.ErrConflict and a
// missing row storage.ErrNotFound; other errors are wrapped with the name
// of the operation. Error texts never contain a hash, a secret or a
// connection string.
package postgres

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"

	oauth "github.com/mcp-oauth/oauth"
	"github.com/mcp-oauth/oauth/storage"
	"github.com/mcp-oauth/oauth/storage/internal/migrate"
)

//go:embed migrations/*.sql
var migrations embed.FS

// migrationLockKey is the key of the advisory lock held while migrating:
// "MCPOAUTH" in ASCII. Advisory locks are database-wide, so Stores of
// different schemas of one database migrate one after the other.
const migrationLockKey int64 = 0x4d43504f41555448

// maxAttempts bounds how many times a transaction that failed with a
// serialization failure or a deadlock is run.
const maxAttempts = 3

// Store implements storage.Store on a PostgreSQL database. Create it with
// Open or New and release it with Close. A Store is safe for concurrent use,
// and any number of Stores, in any number of processes, may share one
// database.
type Store struct {
	pool *pgxpool.Pool
	own  bool // Close closes pool

	// watches are the running WatchRevocations loops; Close stops them.
	watchMu sync.Mutex
	watches map[*watch]struct{}
	closed  bool
}

var _ storage.Store = (*Store)(nil)

// Open connects to the database at url (a postgres:// URL or a key=value
// connection string, parsed by pgxpool.ParseConfig, so it may set pool
// parameters such as pool_max_conns and run-time parameters such as
// search_path), checks the connection and applies the embedded schema
// migrations not applied yet. ctx bounds connecting and migrating only.
func Open(ctx context.Context, url string) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		// The parser's message quotes the URL, password and all in the
		// worst case: say only that it failed.
		return nil, errors.New("postgres: open: cannot parse the connection URL")
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: open: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres: open: %w", err)
	}
	s := &Store{pool: pool, own: true}
	if err := s.migrate(ctx); err != nil {
		pool.Close()
		return nil, err
	}
	return s, nil
}

// New returns a Store on pool, which the caller owns and closes after the
// Store's last use, applying the embedded schema migrations not applied
// yet. ctx bounds migrating only.
func New(ctx context.Context, pool *pgxpool.Pool) (*Store, error) {
	if pool == nil {
		return nil, errors.New("postgres: new: nil pool")
	}
	s := &Store{pool: pool}
	if err := s.migrate(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// Close closes the connection pool if Open created it; a pool passed to
// New is left to its owner. The Store must not be used after.
func (s *Store) Close() error {
	s.stopWatches()
	if s.own {
		s.pool.Close()
	}
	return nil
}

// ---- migrations ----

// embedded returns the embedded migrations in version order.
func embedded() ([]migrate.Migration, error) {
	ms, err := migrate.Load(migrations, "migrations")
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	return ms, nil
}

// migrate applies, in one transaction holding the migration advisory lock,
// the embedded migrations that schema_migrations does not list. Another
// Store migrating the same database at the same time waits for the lock
// and then finds the migrations applied.
func (s *Store) migrate(ctx context.Context) error {
	ms, err := embedded()
	if err != nil {
		return err
	}
	err = pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{IsoLevel: pgx.ReadCommitted}, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, migrationLockKey); err != nil {
			return fmt.Errorf("take the migration lock: %w", err)
		}
		// Look schema_migrations up in current_schema() only, where
		// CREATE TABLE puts it, not in the rest of search_path. Checking
		// first also spares CREATE privilege once the schema exists.
		var schema pgtype.Text
		var exists bool
		if err := tx.QueryRow(ctx, `SELECT current_schema(),
  to_regclass(quote_ident(current_schema()) || '.schema_migrations') IS NOT NULL`).Scan(&schema, &exists); err != nil {
			return err
		}
		if !schema.Valid {
			return errors.New("no schema of search_path exists")
		}
		if !exists {
			if _, err := tx.Exec(ctx, `CREATE TABLE schema_migrations (
    version    integer PRIMARY KEY,
    name       text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)`); err != nil {
				return fmt.Errorf("create schema_migrations: %w", err)
			}
		}
		rows, err := tx.Query(ctx, `SELECT version FROM schema_migrations`)
		if err != nil {
			return fmt.Errorf("read schema_migrations: %w", err)
		}
		versions, err := pgx.CollectRows(rows, pgx.RowTo[int32])
		if err != nil {
			return fmt.Errorf("read schema_migrations: %w", err)
		}
		latest, applied := 0, make(map[int]bool, len(versions))
		for _, v := range versions {
			applied[int(v)] = true
			latest = max(latest, int(v))
		}
		if known := ms[len(ms)-1].Version; latest > known {
			return fmt.Errorf("database schema version %d is newer than this program's (%d)", latest, known)
		}
		for _, m := range ms {
			if applied[m.Version] {
				continue
			}
			// Without arguments, pgx uses the simple protocol, which
			// runs a script of several statements.
			if _, err := tx.Exec(ctx, m.Body); err != nil {
				return fmt.Errorf("apply migration %s: %w", m.Name, err)
			}
			if _, err := tx.Exec(ctx, `INSERT INTO schema_migrations (version, name) VALUES ($1, $2)`, m.Version, m.Name); err != nil {
				return fmt.Errorf("record migration %s: %w", m.Name, err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("postgres: migrate: %w", err)
	}
	return nil
}

// ---- plumbing ----

// querier is what pgxpool.Pool and pgx.Tx have in common.
type querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// tx runs f in a READ COMMITTED transaction, committing if f returns nil
// and rolling back otherwise. A transaction that fails with a serialization
// failure or a deadlock is run again, up to maxAttempts times in all, so f
// must not leave state behind in Go variables on failure.
func (s *Store) tx(ctx context.Context, f func(pgx.Tx) error) error {
	for attempt := 1; ; attempt++ {
		err := pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{IsoLevel: pgx.ReadCommitted}, f)
		if err == nil || attempt == maxAttempts || !retryable(err) || ctx.Err() != nil {
			return err
		}
	}
}

// retryable reports whether err is a serialization failure or a deadlock,
// after which the transaction can simply run again.
func retryable(err error) bool {
	var e *pgconn.PgError
	return errors.As(err, &e) && (e.Code == "40001" || e.Code == "40P01")
}

// Reasons for storage.ErrConflict. They name no hash, secret or ID.
var (
	errCodeRedeemed  = fmt.Errorf("code already redeemed: %w", storage.ErrConflict)
	errGrantInactive = fmt.Errorf("grant revoked or missing: %w", storage.ErrConflict)
	errTokenRotated  = fmt.Errorf("refresh token spent or already rotated: %w", storage.ErrConflict)
	errPendingState  = fmt.Errorf("pending request not in the expected state: %w", storage.ErrConflict)
)

// wrap maps err for the operation op: pgx.ErrNoRows becomes
// storage.ErrNotFound, a violated PRIMARY KEY or UNIQUE constraint
// storage.ErrConflict, and anything else an error naming op.
func wrap(op string, err error) error {
	var pe *pgconn.PgError
	switch {
	case err == nil:
		return nil
	case errors.Is(err, pgx.ErrNoRows):
		return fmt.Errorf("postgres: %s: %w", op, storage.ErrNotFound)
	case errors.As(err, &pe) && pe.Code == "23505": // unique_violation
		// Name the constraint, never the key: the detail holds its value.
		return fmt.Errorf("postgres: %s: %w (unique constraint %s)", op, storage.ErrConflict, pe.ConstraintName)
	}
	return fmt.Errorf("postgres: %s: %w", op, err)
}

// affected turns "no row changed" into storage.ErrNotFound.
func affected(tag pgconn.CommandTag, err error) error {
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 0 {
		return storage.ErrNotFound
	}
	return nil
}

// exists reports whether query (SELECT EXISTS (…)) is true.
func exists(ctx context.Context, q querier, query string, args ...any) (bool, error) {
	var ok bool
	err := q.QueryRow(ctx, query, args...).Scan(&ok)
	return ok, err
}

// ts encodes a time as a nullable timestamptz: the zero time is NULL.
func ts(t time.Time) pgtype.Timestamptz {
	return pgtype.Timestamptz{Time: t, Valid: !t.IsZero()}
}

// fromTS decodes ts: NULL is the zero time, anything else a UTC time.
func fromTS(v pgtype.Timestamptz) time.Time {
	if !v.Valid {
		return time.Time{}
	}
	return v.Time.UTC()
}

// live is the SQL condition that a row's expires_at has not passed at the
// parameter $n (now); NULL never expires.
func live(n int) string {
	return fmt.Sprintf(`(expires_at IS NULL OR expires_at > $%d)`, n)
}

// encodeList returns l for a NOT NULL text[] column: nil would be NULL.
func encodeList(l []string) []string {
	if l == nil {
		return []string{}
	}
	return l
}

// decodeList returns a scanned text[]: an empty list is nil.
func decodeList(l []string) []string {
	if len(l) == 0 {
		return nil
	}
	return l
}

// list runs a query and scans every row with scan.
func list[T any](ctx context.Context, q querier, scan func(pgx.Row) (*T, error), query string, args ...any) ([]*T, error) {
	rows, err := q.Query(ctx, query, args...)
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

// placeholders returns $from, …, $(from+n-1), comma-separated.
func placeholders(from, n int) string {
	ps := make([]string, n)
	for i := range ps {
		ps[i] = "$" + strconv.Itoa(from+i)
	}
	return strings.Join(ps, ", ")
}

// ---- columns and statements that several files use ----

// paramCols are the columns of oauth.AuthorizationParams in codes and
// pending, in the order of paramArgs and paramDest.
const paramCols = `client_id, redirect_uri, redirect_uri_explicit, state, scopes, code_challenge, resource`

func paramArgs(p *oauth.AuthorizationParams) []any {
	return []any{p.ClientID, p.RedirectURI, p.RedirectURIExplicit, p.State, encodeList(p.Scopes), p.CodeChallenge, p.Resource}
}

// paramDest returns scan destinations for paramCols; the caller decodes
// Scopes with decodeList.
func paramDest(p *oauth.AuthorizationParams) []any {
	return []any{&p.ClientID, &p.RedirectURI, &p.RedirectURIExplicit, &p.State, &p.Scopes, &p.CodeChallenge, &p.Resource}
}

// grantCols are the columns of oauth.Grant, in the order of scanGrantInto.
const grantCols = `id, client_id, subject, scopes, resource, created_at, last_used_at, revoked_at, redirect_uri, claims, grant_type, expires_at`

const codeCols = `hash, grant_id, subject, ` + paramCols + `, expires_at, consumed_at`

const refreshCols = `hash, client_id, grant_id, subject, scopes, resource, created_at, expires_at, parent, successor, spent`

var qInsertRefresh = `INSERT INTO refresh_tokens (` + refreshCols + `) VALUES (` + placeholders(1, 11) + `)`

func refreshArgs(r *storage.RefreshRecord) []any {
	return []any{r.Hash, r.ClientID, r.GrantID, r.Subject, encodeList(r.Scopes), r.Resource,
		ts(r.CreatedAt), ts(r.ExpiresAt), r.Parent, r.Successor, r.Spent}
}
