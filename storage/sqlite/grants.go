package sqlite

import (
	"context"
	"database/sql"
	"time"

	oauth "github.com/mcp-oauth/oauth"
)

var (
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
