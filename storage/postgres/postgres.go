// Package postgres is a storage.Store on PostgreSQL, through
// github.com/jackc/pgx/v5 and its connection pool pgxpool. It is the
// backend for authorization servers that run as several replicas sharing one
// database.
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
// global order (client, grant, code, refresh token, pending request), so
// that they cannot deadlock, and that order also makes revocation
// complete: RevokeGrant and DeleteClient lock the grant row first and
// delete its codes and tokens in later statements, each of which sees
// everything committed before it started. RotateRefreshToken therefore locks the token's grant row (FOR NO KEY
// UPDATE) before its compare-and-set: a revocation either waits for the
// rotation to commit, and then deletes the new token too, or the rotation
// waits for the revocation and finds the grant revoked. That lock also
// serializes the rotations of one grant's chain, whose tokens they lock in
// different orders. RedeemCode does not lock the grant: it locks the code,
// which a revocation deletes before the grant's tokens, so a revocation
// either deletes the code first or waits for the redemption and then
// deletes the token it stored. AddKey serializes with itself through a
// table lock. Transactions that fail with a serialization failure or a
// deadlock anyway are retried a few times.
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
// its RFC 7591 JSON, in a jsonb column. Lists ordered "oldest first" are
// ordered by their timestamp (NULL first), then by insertion.
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
	"encoding/json"
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

// sweepLockKey is the key of the advisory lock a Sweep holds, so that of
// replicas sweeping at once only one does the work.
const sweepLockKey int32 = 0x4d435357 // "MCSW"

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

// placeholders returns $from, …, $(from+n-1), comma-separated.
func placeholders(from, n int) string {
	ps := make([]string, n)
	for i := range ps {
		ps[i] = "$" + strconv.Itoa(from+i)
	}
	return strings.Join(ps, ", ")
}

// ---- clients ----

const clientCols = `id, secret_hash, metadata, issued_at, expires_at`

var (
	qCreateClient = `INSERT INTO clients (` + clientCols + `) VALUES (` + placeholders(1, 5) + `)`
	qGetClient    = `SELECT ` + clientCols + ` FROM clients WHERE id = $1 AND ` + live(2)
	qListClients  = `SELECT ` + clientCols + ` FROM clients WHERE ` + live(1) + ` ORDER BY issued_at NULLS FIRST, seq`
	qTouchClient  = `UPDATE clients SET expires_at = $2 WHERE id = $1`

	// DeleteClient's statements, in lock order: client, grants, codes,
	// tokens.
	qDeleteClient       = `DELETE FROM clients WHERE id = $1`
	qRevokeClientGrants = `UPDATE grants SET revoked_at = $2 WHERE client_id = $1 AND revoked_at IS NULL`
	qDeleteClientCodes  = `DELETE FROM codes WHERE grant_id IN (SELECT id FROM grants WHERE client_id = $1)`
	qDeleteClientTokens = `DELETE FROM refresh_tokens WHERE grant_id IN (SELECT id FROM grants WHERE client_id = $1)`
)

func scanClient(row pgx.Row) (*oauth.Client, error) {
	var c oauth.Client
	var md []byte
	var issued, expires pgtype.Timestamptz
	if err := row.Scan(&c.ID, &c.SecretHash, &md, &issued, &expires); err != nil {
		return nil, err
	}
	if err := json.Unmarshal(md, &c.ClientRegistrationMetadata); err != nil {
		return nil, fmt.Errorf("decode client metadata: %w", err)
	}
	c.IssuedAt, c.ExpiresAt = fromTS(issued), fromTS(expires)
	return &c, nil
}

// CreateClient implements storage.ClientStore. The registration metadata is
// stored as its RFC 7591 JSON.
func (s *Store) CreateClient(ctx context.Context, c *oauth.Client) error {
	md, err := json.Marshal(&c.ClientRegistrationMetadata)
	if err != nil {
		return fmt.Errorf("postgres: create client: encode metadata: %w", err)
	}
	_, err = s.pool.Exec(ctx, qCreateClient, c.ID, c.SecretHash, string(md), ts(c.IssuedAt), ts(c.ExpiresAt))
	return wrap("create client", err)
}

// GetClient implements storage.ClientStore.
func (s *Store) GetClient(ctx context.Context, id string, now time.Time) (*oauth.Client, error) {
	c, err := scanClient(s.pool.QueryRow(ctx, qGetClient, id, now))
	return c, wrap("get client", err)
}

// TouchClient implements storage.ClientStore; storage.ErrNotFound if there
// is no such client.
func (s *Store) TouchClient(ctx context.Context, id string, expiresAt time.Time) error {
	return wrap("touch client", affected(s.pool.Exec(ctx, qTouchClient, id, ts(expiresAt))))
}

// DeleteClient implements storage.ClientStore in one transaction: the
// client is deleted, then its grants are revoked as by RevokeGrant.
func (s *Store) DeleteClient(ctx context.Context, id string, now time.Time) error {
	return wrap("delete client", s.tx(ctx, func(tx pgx.Tx) error {
		if err := affected(tx.Exec(ctx, qDeleteClient, id)); err != nil {
			return err
		}
		// Revoking locks the grant rows before their codes and tokens are
		// deleted; see the package comment.
		tag, err := tx.Exec(ctx, qRevokeClientGrants, id, ts(now))
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, qDeleteClientCodes, id); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, qDeleteClientTokens, id); err != nil {
			return err
		}
		return countRevocations(ctx, tx, tag.RowsAffected()+1) // the grants and the client
	}))
}

// ListClients implements storage.ClientStore, ordering by IssuedAt, then
// by insertion.
func (s *Store) ListClients(ctx context.Context, now time.Time) ([]*oauth.Client, error) {
	out, err := list(ctx, s.pool, scanClient, qListClients, now)
	return out, wrap("list clients", err)
}

// ---- grants ----

const grantCols = `id, client_id, subject, scopes, resource, created_at, last_used_at, revoked_at, redirect_uri`

var (
	qInsertGrant       = `INSERT INTO grants (` + grantCols + `) VALUES (` + placeholders(1, 9) + `)`
	qGetGrant          = `SELECT ` + grantCols + ` FROM grants WHERE id = $1`
	qListGrants        = `SELECT ` + grantCols + ` FROM grants WHERE revoked_at IS NULL ORDER BY created_at NULLS FIRST, seq`
	qListSubjectGrants = `SELECT ` + grantCols + ` FROM grants WHERE subject = $1 AND revoked_at IS NULL ORDER BY created_at NULLS FIRST, seq`
	// qLockGrant locks the grant row, revoked or not, and tells whether it
	// is active; qRevokeGrant then revokes it if it is.
	qLockGrant       = `SELECT revoked_at IS NULL FROM grants WHERE id = $1 FOR NO KEY UPDATE`
	qRevokeGrant     = `UPDATE grants SET revoked_at = $2 WHERE id = $1`
	qRevocationCount = `SELECT n FROM revocation_count WHERE id = 1`
	// qCountRevocations adds to the revocation count and signals the
	// listeners of WatchRevocations, both when the transaction commits.
	qCountRevocations = `WITH c AS (UPDATE revocation_count SET n = n + $1 WHERE id = 1 RETURNING n)
SELECT pg_notify('` + revocationChannel + `', current_schema()) FROM c`
	qDeleteGrantCodes  = `DELETE FROM codes WHERE grant_id = $1`
	qDeleteGrantTokens = `DELETE FROM refresh_tokens WHERE grant_id = $1`
	qTouchGrant        = `UPDATE grants SET last_used_at = $2 WHERE id = $1`
	// qTouchGrantOfCode records a redemption's use of the code's active grant.
	qTouchGrantOfCode = `UPDATE grants SET last_used_at = $2
WHERE id = (SELECT grant_id FROM codes WHERE hash = $1) AND revoked_at IS NULL`
)

func scanGrant(row pgx.Row) (*oauth.Grant, error) {
	var g oauth.Grant
	var created, used, revoked pgtype.Timestamptz
	if err := row.Scan(&g.ID, &g.ClientID, &g.Subject, &g.Scopes, &g.Resource, &created, &used, &revoked, &g.RedirectURI); err != nil {
		return nil, err
	}
	g.Scopes = decodeList(g.Scopes)
	g.CreatedAt, g.LastUsedAt, g.RevokedAt = fromTS(created), fromTS(used), fromTS(revoked)
	return &g, nil
}

func grantArgs(g *oauth.Grant) []any {
	return []any{g.ID, g.ClientID, g.Subject, encodeList(g.Scopes), g.Resource,
		ts(g.CreatedAt), ts(g.LastUsedAt), ts(g.RevokedAt), g.RedirectURI}
}

// GetGrant implements storage.GrantStore.
func (s *Store) GetGrant(ctx context.Context, id string) (*oauth.Grant, error) {
	g, err := scanGrant(s.pool.QueryRow(ctx, qGetGrant, id))
	return g, wrap("get grant", err)
}

// ListGrants implements storage.GrantStore, ordering by CreatedAt, then by
// insertion.
func (s *Store) ListGrants(ctx context.Context) ([]*oauth.Grant, error) {
	out, err := list(ctx, s.pool, scanGrant, qListGrants)
	return out, wrap("list grants", err)
}

// ListSubjectGrants implements storage.GrantStore.
func (s *Store) ListSubjectGrants(ctx context.Context, subject string) ([]*oauth.Grant, error) {
	out, err := list(ctx, s.pool, scanGrant, qListSubjectGrants, subject)
	return out, wrap("list subject grants", err)
}

// RevokeGrant implements storage.GrantStore in one transaction: the grant
// row is updated (and so locked) first, then its codes and refresh tokens
// are deleted. A grant that is already revoked keeps its first RevokedAt.
func (s *Store) RevokeGrant(ctx context.Context, id string, now time.Time) error {
	return wrap("revoke grant", s.tx(ctx, func(tx pgx.Tx) error {
		var active bool
		if err := tx.QueryRow(ctx, qLockGrant, id).Scan(&active); err != nil {
			return err
		}
		if active {
			if _, err := tx.Exec(ctx, qRevokeGrant, id, ts(now)); err != nil {
				return err
			}
		}
		if _, err := tx.Exec(ctx, qDeleteGrantCodes, id); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, qDeleteGrantTokens, id); err != nil {
			return err
		}
		if active {
			return countRevocations(ctx, tx, 1)
		}
		return nil
	}))
}

// countRevocations adds n grants that stopped being active to the
// revocation count, in the transaction that revoked them, and signals the
// watchers when it commits. The counter's row comes last in the lock
// order, so the transactions that update it cannot deadlock on it.
func countRevocations(ctx context.Context, tx pgx.Tx, n int64) error {
	if n == 0 {
		return nil
	}
	_, err := tx.Exec(ctx, qCountRevocations, n)
	return err
}

// RevocationCount implements storage.GrantStore.
func (s *Store) RevocationCount(ctx context.Context) (int64, error) {
	var n int64
	err := s.pool.QueryRow(ctx, qRevocationCount).Scan(&n)
	return n, wrap("revocation count", err)
}

// ---- codes ----

const codeCols = `hash, grant_id, subject, ` + paramCols + `, expires_at, consumed_at`

var (
	qInsertCode = `INSERT INTO codes (` + codeCols + `) VALUES (` + placeholders(1, 12) + `)`
	qGetCode    = `SELECT ` + codeCols + ` FROM codes WHERE hash = $1 AND ` + live(2)
	// qConsumeCode is RedeemCode's compare-and-set. It also reports
	// whether the code's grant is active, as of the statement's snapshot.
	qConsumeCode = `UPDATE codes SET consumed_at = $2
WHERE hash = $1 AND consumed_at IS NULL AND ` + live(3) + `
RETURNING EXISTS (SELECT 1 FROM grants WHERE id = codes.grant_id AND revoked_at IS NULL)`
	qCodeLive = `SELECT EXISTS (SELECT 1 FROM codes WHERE hash = $1 AND ` + live(2) + `)`
)

func scanCode(row pgx.Row) (*storage.CodeRecord, error) {
	var c storage.CodeRecord
	var exp, consumed pgtype.Timestamptz
	dest := append([]any{&c.Hash, &c.GrantID, &c.Subject}, paramDest(&c.AuthorizationParams)...)
	if err := row.Scan(append(dest, &exp, &consumed)...); err != nil {
		return nil, err
	}
	c.Scopes = decodeList(c.Scopes)
	c.ExpiresAt, c.ConsumedAt = fromTS(exp), fromTS(consumed)
	return &c, nil
}

func codeArgs(c *storage.CodeRecord) []any {
	args := append([]any{c.Hash, c.GrantID, c.Subject}, paramArgs(&c.AuthorizationParams)...)
	return append(args, ts(c.ExpiresAt), ts(c.ConsumedAt))
}

// GetCode implements storage.CodeStore. The returned record's Code (the
// plaintext) is empty.
func (s *Store) GetCode(ctx context.Context, hash string, now time.Time) (*storage.CodeRecord, error) {
	c, err := scanCode(s.pool.QueryRow(ctx, qGetCode, hash, now))
	return c, wrap("get code", err)
}

// RedeemCode implements storage.CodeStore in one transaction:
//
//	UPDATE codes SET consumed_at = $now
//	WHERE hash = $1 AND consumed_at IS NULL AND (expires_at IS NULL OR expires_at > $now)
//	RETURNING <the code's grant is active>
//
// consumes the code only if nobody has; of concurrent callers, the others
// wait for the winner's row lock and then match nothing (see the package
// comment). Then the grant must be active and rt is inserted. If the UPDATE
// matched no row, the code is either missing or expired
// (storage.ErrNotFound) or already consumed (storage.ErrConflict). Any
// failure rolls the whole step back.
//
// The grant's last-used time is set first, which locks the grant row before
// the code, in the same order as RevokeGrant (grant, then codes, then
// tokens), so the two cannot deadlock; a failed redemption rolls it back.
func (s *Store) RedeemCode(ctx context.Context, hash string, now time.Time, rt *storage.RefreshRecord) error {
	args := refreshArgs(rt)
	return wrap("redeem code", s.tx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, qTouchGrantOfCode, hash, ts(now)); err != nil {
			return err
		}
		var active bool
		err := tx.QueryRow(ctx, qConsumeCode, hash, ts(now), now).Scan(&active)
		if errors.Is(err, pgx.ErrNoRows) {
			switch ok, err := exists(ctx, tx, qCodeLive, hash, now); {
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
		if !active {
			return errGrantInactive
		}
		_, err = tx.Exec(ctx, qInsertRefresh, args...)
		return err
	}))
}

// ---- refresh tokens ----

const refreshCols = `hash, client_id, grant_id, subject, scopes, resource, created_at, expires_at, parent, successor, spent`

var (
	qInsertRefresh = `INSERT INTO refresh_tokens (` + refreshCols + `) VALUES (` + placeholders(1, 11) + `)`
	qGetRefresh    = `SELECT ` + refreshCols + ` FROM refresh_tokens WHERE hash = $1 AND ` + live(2)
	// qLockGrantOf locks the grant of a refresh token if it is active.
	qLockGrantOf = `SELECT true FROM grants
WHERE id = (SELECT grant_id FROM refresh_tokens WHERE hash = $1) AND revoked_at IS NULL
FOR NO KEY UPDATE`
	// qRotate is RotateRefreshToken's compare-and-set.
	qRotate = `UPDATE refresh_tokens SET successor = $2
WHERE hash = $1 AND successor = $3 AND NOT spent AND ` + live(4) + `
RETURNING parent`
	qRefreshLive = `SELECT EXISTS (SELECT 1 FROM refresh_tokens WHERE hash = $1 AND ` + live(2) + `)`
	qSpend       = `UPDATE refresh_tokens SET spent = true WHERE hash = ANY ($1) AND NOT spent`
)

func refreshArgs(r *storage.RefreshRecord) []any {
	return []any{r.Hash, r.ClientID, r.GrantID, r.Subject, encodeList(r.Scopes), r.Resource,
		ts(r.CreatedAt), ts(r.ExpiresAt), r.Parent, r.Successor, r.Spent}
}

func scanRefresh(row pgx.Row) (*storage.RefreshRecord, error) {
	var r storage.RefreshRecord
	var created, exp pgtype.Timestamptz
	if err := row.Scan(&r.Hash, &r.ClientID, &r.GrantID, &r.Subject, &r.Scopes, &r.Resource, &created, &exp, &r.Parent, &r.Successor, &r.Spent); err != nil {
		return nil, err
	}
	r.Scopes = decodeList(r.Scopes)
	r.CreatedAt, r.ExpiresAt = fromTS(created), fromTS(exp)
	return &r, nil
}

// GetRefreshToken implements storage.RefreshTokenStore.
func (s *Store) GetRefreshToken(ctx context.Context, hash string, now time.Time) (*storage.RefreshRecord, error) {
	r, err := scanRefresh(s.pool.QueryRow(ctx, qGetRefresh, hash, now))
	return r, wrap("get refresh token", err)
}

// RotateRefreshToken implements storage.RefreshTokenStore in one
// transaction. It first locks old's grant row (SELECT … FOR NO KEY UPDATE),
// if the grant is active, so that a concurrent revocation cannot miss next
// and rotations of one grant run one at a time (see the package comment).
// Then
//
//	UPDATE refresh_tokens SET successor = $next
//	WHERE hash = $old AND successor = $expected AND NOT spent
//	  AND (expires_at IS NULL OR expires_at > $now)
//	RETURNING parent
//
// is the compare-and-set; the grant must have been active, the previous
// successor and old's parent are marked spent, and next is inserted. If the
// UPDATE matched no row, old is either missing or expired
// (storage.ErrNotFound) or spent or already rotated (storage.ErrConflict).
// Any failure rolls the whole step back.
func (s *Store) RotateRefreshToken(ctx context.Context, oldHash, expectedSuccessor string, next *storage.RefreshRecord, now time.Time) error {
	args := refreshArgs(next)
	return wrap("rotate refresh token", s.tx(ctx, func(tx pgx.Tx) error {
		var active bool
		err := tx.QueryRow(ctx, qLockGrantOf, oldHash).Scan(&active)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		var parent string
		err = tx.QueryRow(ctx, qRotate, oldHash, next.Hash, expectedSuccessor, now).Scan(&parent)
		if errors.Is(err, pgx.ErrNoRows) {
			switch ok, err := exists(ctx, tx, qRefreshLive, oldHash, now); {
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
		if !active {
			return errGrantInactive
		}
		var spend []string
		for _, h := range []string{expectedSuccessor, parent} {
			if h != "" {
				spend = append(spend, h)
			}
		}
		if len(spend) > 0 {
			if _, err := tx.Exec(ctx, qSpend, spend); err != nil {
				return err
			}
		}
		// The grant row is already locked by qLockGrantOf.
		if _, err := tx.Exec(ctx, qTouchGrant, next.GrantID, ts(now)); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, qInsertRefresh, args...)
		return err
	}))
}

// ---- pending requests ----

const pendingCols = `id, handle_hash, user_code_hash, ` + paramCols + `, status, subject, created_at, expires_at, device_code_hash`

var (
	qCreatePending   = `INSERT INTO pending (` + pendingCols + `) VALUES (` + placeholders(1, 15) + `)`
	qPendingByDevice = `SELECT ` + pendingCols + ` FROM pending WHERE device_code_hash = $1 AND device_code_hash <> ''`
	qPendingByHandle = `SELECT ` + pendingCols + ` FROM pending WHERE handle_hash = $1 AND ` + live(2)
	qPendingByCode   = `SELECT ` + pendingCols + ` FROM pending WHERE user_code_hash = $1 AND ` + live(2)
	qListPending     = `SELECT ` + pendingCols + ` FROM pending WHERE status = $1 AND ` + live(2) + ` ORDER BY created_at NULLS FIRST, seq`
	// qDecide and qComplete are the compare-and-sets on status.
	qDecide      = `UPDATE pending SET status = $2, subject = $3 WHERE id = $1 AND status = $4 AND ` + live(5)
	qComplete    = `UPDATE pending SET status = $2 WHERE id = $1 AND status = $3 AND ` + live(4)
	qPendingLive = `SELECT EXISTS (SELECT 1 FROM pending WHERE id = $1 AND ` + live(2) + `)`
)

func scanPending(row pgx.Row) (*storage.PendingRecord, error) {
	var p storage.PendingRecord
	var created, exp pgtype.Timestamptz
	dest := append([]any{&p.ID, &p.HandleHash, &p.UserCodeHash}, paramDest(&p.AuthorizationParams)...)
	if err := row.Scan(append(dest, &p.Status, &p.Subject, &created, &exp, &p.DeviceCodeHash)...); err != nil {
		return nil, err
	}
	p.Scopes = decodeList(p.Scopes)
	p.CreatedAt, p.ExpiresAt = fromTS(created), fromTS(exp)
	return &p, nil
}

// CreatePending implements storage.PendingStore. IDs, handles and user
// codes stay taken until Sweep deletes the expired request.
func (s *Store) CreatePending(ctx context.Context, p *storage.PendingRecord) error {
	args := append([]any{p.ID, p.HandleHash, p.UserCodeHash}, paramArgs(&p.AuthorizationParams)...)
	args = append(args, p.Status, p.Subject, ts(p.CreatedAt), ts(p.ExpiresAt), p.DeviceCodeHash)
	_, err := s.pool.Exec(ctx, qCreatePending, args...)
	return wrap("create pending", err)
}

// GetPendingByDeviceCode implements storage.PendingStore.
func (s *Store) GetPendingByDeviceCode(ctx context.Context, deviceCodeHash string) (*storage.PendingRecord, error) {
	p, err := scanPending(s.pool.QueryRow(ctx, qPendingByDevice, deviceCodeHash))
	return p, wrap("get pending by device code", err)
}

// GetPendingByHandle implements storage.PendingStore.
func (s *Store) GetPendingByHandle(ctx context.Context, handleHash string, now time.Time) (*storage.PendingRecord, error) {
	p, err := scanPending(s.pool.QueryRow(ctx, qPendingByHandle, handleHash, now))
	return p, wrap("get pending by handle", err)
}

// GetPendingByUserCode implements storage.PendingStore.
func (s *Store) GetPendingByUserCode(ctx context.Context, userCodeHash string, now time.Time) (*storage.PendingRecord, error) {
	p, err := scanPending(s.pool.QueryRow(ctx, qPendingByCode, userCodeHash, now))
	return p, wrap("get pending by user code", err)
}

// casPending runs, in tx, a compare-and-set UPDATE on a request's status.
// If it changed no row, the request is missing or expired
// (storage.ErrNotFound) or in another state (storage.ErrConflict).
func casPending(ctx context.Context, tx pgx.Tx, id string, now time.Time, query string, args ...any) error {
	tag, err := tx.Exec(ctx, query, args...)
	switch {
	case err != nil:
		return err
	case tag.RowsAffected() > 0:
		return nil
	}
	switch ok, err := exists(ctx, tx, qPendingLive, id, now); {
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
		return fmt.Errorf("postgres: decide pending: invalid status %q", status)
	}
	return wrap("decide pending", s.tx(ctx, func(tx pgx.Tx) error {
		return casPending(ctx, tx, id, now, qDecide, id, status, subject, oauth.PendingWaiting, now)
	}))
}

// CompletePending implements storage.PendingStore in one transaction: a
// compare-and-set of the request's status from approved to completed, then
// the grant and the code are inserted. storage.ErrNotFound if the request
// is missing or expired; storage.ErrConflict if it is not approved or the
// grant's ID or the code's hash is taken.
func (s *Store) CompletePending(ctx context.Context, id string, grant *oauth.Grant, code *storage.CodeRecord, now time.Time) error {
	gArgs, cArgs := grantArgs(grant), codeArgs(code)
	return wrap("complete pending", s.tx(ctx, func(tx pgx.Tx) error {
		err := casPending(ctx, tx, id, now, qComplete, id, oauth.PendingCompleted, oauth.PendingApproved, now)
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, qInsertGrant, gArgs...); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, qInsertCode, cArgs...)
		return err
	}))
}

// ListPending implements storage.PendingStore, ordering by CreatedAt, then
// by insertion.
func (s *Store) ListPending(ctx context.Context, now time.Time) ([]*storage.PendingRecord, error) {
	out, err := list(ctx, s.pool, scanPending, qListPending, oauth.PendingWaiting, now)
	return out, wrap("list pending", err)
}

// ---- signing keys ----

var (
	qListKeys = `SELECT id, alg, private, created_at, retired_at FROM signing_keys
ORDER BY created_at DESC NULLS LAST, seq DESC`
	// qLockKeys makes AddKey transactions run one at a time (the mode
	// conflicts with itself and with writers, not with readers), so that
	// each retires the key the previous one added.
	qLockKeys   = `LOCK TABLE signing_keys IN SHARE ROW EXCLUSIVE MODE`
	qRetireKeys = `UPDATE signing_keys SET retired_at = $1 WHERE retired_at IS NULL`
	qInsertKey  = `INSERT INTO signing_keys (id, alg, private, created_at) VALUES ($1, $2, $3, $4)`
	qDeleteKey  = `DELETE FROM signing_keys WHERE id = $1`
)

func scanKey(row pgx.Row) (*storage.KeyRecord, error) {
	var k storage.KeyRecord
	var created, retired pgtype.Timestamptz
	if err := row.Scan(&k.ID, &k.Algorithm, &k.Private, &created, &retired); err != nil {
		return nil, err
	}
	k.CreatedAt, k.RetiredAt = fromTS(created), fromTS(retired)
	return &k, nil
}

// ListKeys implements storage.KeyStore, ordering by CreatedAt, newest
// first.
func (s *Store) ListKeys(ctx context.Context) ([]*storage.KeyRecord, error) {
	out, err := list(ctx, s.pool, scanKey, qListKeys)
	return out, wrap("list keys", err)
}

// AddKey implements storage.KeyStore in one transaction, which first locks
// table signing_keys against other writers. k is stored as active (its
// RetiredAt is ignored); storage.ErrConflict if its ID is taken.
func (s *Store) AddKey(ctx context.Context, k *storage.KeyRecord) error {
	private := k.Private
	if private == nil {
		private = []byte{} // NOT NULL
	}
	return wrap("add key", s.tx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, qLockKeys); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, qRetireKeys, ts(k.CreatedAt)); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, qInsertKey, k.ID, k.Algorithm, private, ts(k.CreatedAt))
		return err
	}))
}

// DeleteKey implements storage.KeyStore.
func (s *Store) DeleteKey(ctx context.Context, id string) error {
	return wrap("delete key", affected(s.pool.Exec(ctx, qDeleteKey, id)))
}

// ---- housekeeping ----

// Sweep's statements, in lock order. Grants die with their lapsed client
// or once revoked; codes and refresh tokens with their grant or on expiry.
var (
	qSweepClients = `DELETE FROM clients WHERE expires_at <= $1 RETURNING id`
	qSweepGrants  = `DELETE FROM grants WHERE revoked_at IS NOT NULL OR client_id = ANY ($1) RETURNING id, revoked_at IS NULL`
	qSweepCodes   = `DELETE FROM codes WHERE expires_at <= $1 OR grant_id = ANY ($2)`
	qSweepTokens  = `DELETE FROM refresh_tokens WHERE expires_at <= $1 OR grant_id = ANY ($2)`
	qSweepPending = `DELETE FROM pending WHERE expires_at <= $1`
	// qSweepOrphans deletes grants left with neither a code nor a refresh
	// token: they can issue nothing. A grant and its code are inserted in
	// one transaction and redemption keeps the code row, so a live grant is
	// never without one of them.
	qSweepOrphans = `DELETE FROM grants WHERE NOT EXISTS (SELECT 1 FROM codes WHERE grant_id = grants.id)
  AND NOT EXISTS (SELECT 1 FROM refresh_tokens WHERE grant_id = grants.id) RETURNING revoked_at IS NULL`
)

// Sweep implements storage.Store in one transaction. It deletes lapsed
// clients with their grants and those grants' codes and refresh tokens;
// revoked grants (with any code or token left of them); and expired codes,
// refresh tokens and pending requests. It returns the number of rows
// deleted, of all kinds.
//
// Concurrent sweeps count each row once: a DELETE that reaches a row
// another transaction is deleting waits for it and, once it commits, finds
// the row gone and neither deletes nor counts it.
func (s *Store) Sweep(ctx context.Context, now time.Time) (int64, error) {
	var total int64
	err := s.tx(ctx, func(tx pgx.Tx) error {
		total = 0
		// One replica sweeps at a time; the others skip rather than queue on
		// the same rows (no double work, no lock storms). The lock ends with
		// the transaction.
		var mine bool
		// Keyed by schema, so stores in different schemas of one database
		// do not skip each other's sweeps.
		if err := tx.QueryRow(ctx, `SELECT pg_try_advisory_xact_lock(hashtext(current_schema()), $1)`, sweepLockKey).Scan(&mine); err != nil {
			return err
		}
		if !mine {
			return nil
		}
		rows, err := tx.Query(ctx, qSweepClients, now)
		if err != nil {
			return err
		}
		clients, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return err
		}
		rows, err = tx.Query(ctx, qSweepGrants, encodeList(clients))
		if err != nil {
			return err
		}
		var grants []string
		var revoked int64 // active grants deleted
		var id string
		var active bool
		if _, err := pgx.ForEachRow(rows, []any{&id, &active}, func() error {
			grants = append(grants, id)
			if active {
				revoked++
			}
			return nil
		}); err != nil {
			return err
		}
		total = int64(len(clients) + len(grants))
		revoked += int64(len(clients))
		for _, st := range []struct {
			query string
			args  []any
		}{
			{qSweepCodes, []any{now, encodeList(grants)}},
			{qSweepTokens, []any{now, encodeList(grants)}},
			{qSweepPending, []any{now}},
			{qSweepSessions, []any{now}},
		} {
			tag, err := tx.Exec(ctx, st.query, st.args...)
			if err != nil {
				return err
			}
			total += tag.RowsAffected()
		}
		rows, err = tx.Query(ctx, qSweepOrphans)
		if err != nil {
			return err
		}
		if _, err := pgx.ForEachRow(rows, []any{&active}, func() error {
			total++
			if active {
				revoked++
			}
			return nil
		}); err != nil {
			return err
		}
		return countRevocations(ctx, tx, revoked)
	})
	if err != nil {
		return 0, wrap("sweep", err)
	}
	return total, nil
}
