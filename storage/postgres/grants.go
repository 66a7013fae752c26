package postgres

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	oauth "github.com/mcp-oauth/oauth"
)

var (
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
