package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	oauth "github.com/mcp-oauth/oauth"
	"github.com/mcp-oauth/oauth/storage"
)

var (
	qGetGrant          = `SELECT ` + grantCols + ` FROM grants WHERE id = $1`
	qListGrants        = `SELECT ` + grantCols + ` FROM grants WHERE revoked_at IS NULL ORDER BY created_at NULLS FIRST, seq`
	qListSubjectGrants = `SELECT ` + grantCols + ` FROM grants WHERE subject = $1 AND revoked_at IS NULL ORDER BY created_at NULLS FIRST, seq`
	// qLockGrant locks the grant row, revoked or not, and reads it with
	// its data key; qRevokeGrant then revokes it, if it is active, and
	// deletes its data key.
	qLockGrant       = `SELECT ` + grantCols + `, data_key FROM grants WHERE id = $1 FOR NO KEY UPDATE`
	qRevokeGrant     = `UPDATE grants SET revoked_at = $2, data_key = NULL WHERE id = $1`
	qRevocationCount = `SELECT n FROM revocation_count WHERE id = 1`
	// qCountRevocations adds to the revocation count and signals the
	// listeners of WatchRevocations, both when the transaction commits.
	qCountRevocations = `WITH c AS (UPDATE revocation_count SET n = n + $1 WHERE id = 1 RETURNING n)
SELECT pg_notify('` + revocationChannel + `', current_schema()) FROM c`
	qDeleteGrantCodes  = `DELETE FROM codes WHERE grant_id = $1`
	qDeleteGrantTokens = `DELETE FROM refresh_tokens WHERE grant_id = $1`
	// qDeleteGrantData deletes the grant's values and returns them.
	qDeleteGrantData = `DELETE FROM grant_data WHERE grant_id = $1 RETURNING ` + dataCols
	qExtendGrant     = `UPDATE grants SET last_used_at = $2, expires_at = GREATEST(expires_at, $3)
WHERE id = $1 AND revoked_at IS NULL AND expires_at > $2`
)

// insertGrant stores grant, whose qInsertGrant arguments are args, and
// its data, in tx.
func insertGrant(ctx context.Context, tx pgx.Tx, grant *storage.GrantRecord, args []any) error {
	if _, err := tx.Exec(ctx, qInsertGrant, args...); err != nil {
		return err
	}
	for _, d := range grant.Data {
		if _, err := tx.Exec(ctx, qInsertData, dataArgs(grant.ID, d)...); err != nil {
			return err
		}
	}
	return nil
}

// CreateGrant implements storage.GrantStore.
func (s *Store) CreateGrant(ctx context.Context, g *storage.GrantRecord) error {
	args, err := grantArgs(g)
	if err != nil {
		return fmt.Errorf("postgres: create grant: %w", err)
	}
	return wrap("create grant", s.tx(ctx, func(tx pgx.Tx) error { return insertGrant(ctx, tx, g, args) }))
}

// ExtendGrant implements storage.GrantStore in one statement.
func (s *Store) ExtendGrant(ctx context.Context, id string, expiresAt, now time.Time) error {
	tag, err := s.pool.Exec(ctx, qExtendGrant, id, now, expiresAt)
	if err == nil && tag.RowsAffected() == 0 {
		err = pgx.ErrNoRows
	}
	return wrap("extend grant", err)
}

func scanGrant(row pgx.Row) (*oauth.Grant, error) {
	var g oauth.Grant
	if err := scanGrantInto(row, &g); err != nil {
		return nil, err
	}
	return &g, nil
}

// scanGrantInto scans grantCols, then the columns of extra, into g and
// extra.
func scanGrantInto(row pgx.Row, g *oauth.Grant, extra ...any) error {
	var created, used, revoked, exp pgtype.Timestamptz
	var claims []byte
	dest := []any{&g.ID, &g.ClientID, &g.Subject, &g.Scopes, &g.Resource, &created, &used, &revoked, &g.RedirectURI, &claims, &g.GrantType, &exp}
	if err := row.Scan(append(dest, extra...)...); err != nil {
		return err
	}
	g.Scopes = decodeList(g.Scopes)
	var err error
	if g.Claims, err = decodeClaims(claims); err != nil {
		return err
	}
	g.CreatedAt, g.LastUsedAt, g.RevokedAt, g.ExpiresAt = fromTS(created), fromTS(used), fromTS(revoked), fromTS(exp)
	return nil
}

// scanGrantRecord scans grantCols and data_key.
func scanGrantRecord(row pgx.Row) (*storage.GrantRecord, error) {
	r := new(storage.GrantRecord)
	if err := scanGrantInto(row, &r.Grant, &r.DataKey); err != nil {
		return nil, err
	}
	return r, nil
}

// encodeClaims returns the claims column: a JSON object, NULL for none.
func encodeClaims(claims map[string]any) (any, error) {
	if len(claims) == 0 {
		return nil, nil
	}
	b, err := json.Marshal(claims)
	if err != nil {
		return nil, fmt.Errorf("encode claims: %w", err)
	}
	return string(b), nil
}

// decodeClaims decodes the claims column; NULL, null and {} are nil.
func decodeClaims(b []byte) (map[string]any, error) {
	if b == nil {
		return nil, nil
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("decode claims: %w", err)
	}
	if len(m) == 0 {
		return nil, nil
	}
	return m, nil
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
// row is locked and read first, then revoked (its data key deleted), then
// its codes, refresh tokens and values are deleted, the values returned
// with the grant. A grant that is already revoked keeps its first
// RevokedAt, and nil is returned.
func (s *Store) RevokeGrant(ctx context.Context, id string, now time.Time) (*storage.GrantRecord, error) {
	var rec *storage.GrantRecord
	err := s.tx(ctx, func(tx pgx.Tx) error {
		rec = nil
		g, err := scanGrantRecord(tx.QueryRow(ctx, qLockGrant, id))
		if err != nil {
			return err
		}
		active := g.RevokedAt.IsZero()
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
		data, _, err := deleteData(ctx, tx, now, qDeleteGrantData, id)
		if err != nil {
			return err
		}
		if !active {
			return nil
		}
		g.Data = data
		rec = g
		return countRevocations(ctx, tx, 1)
	})
	if err != nil {
		return nil, wrap("revoke grant", err)
	}
	return rec, nil
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
