package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"

	oauth "github.com/mcp-oauth/oauth"
	"github.com/mcp-oauth/oauth/storage"
)

var (
	qGetGrant          = `SELECT ` + grantCols + ` FROM grants WHERE id = ?`
	qListGrants        = `SELECT ` + grantCols + ` FROM grants WHERE revoked_at = 0 ORDER BY created_at, rowid`
	qListSubjectGrants = `SELECT ` + grantCols + ` FROM grants WHERE subject = ? AND revoked_at = 0 ORDER BY created_at, rowid`
)

var (
	// qRevokeGrant revokes an active grant and deletes its data key; a
	// revoked one keeps its first RevokedAt.
	qRevokeGrant       = `UPDATE grants SET revoked_at = ?, data_key = NULL WHERE id = ? AND revoked_at = 0`
	qGrantExists       = `SELECT 1 FROM grants WHERE id = ?`
	qCountRevocations  = `UPDATE revocation_count SET n = n + ? WHERE id = 1`
	qRevocationCount   = `SELECT n FROM revocation_count WHERE id = 1`
	qDeleteGrantCodes  = `DELETE FROM codes WHERE grant_id = ?`
	qDeleteGrantTokens = `DELETE FROM refresh_tokens WHERE grant_id = ?`
	qDeleteGrantData   = `DELETE FROM grant_data WHERE grant_id = ?`
	qTouchActiveGrant  = `UPDATE grants SET last_used_at = ? WHERE id = ? AND revoked_at = 0`
	qExtendGrant       = `UPDATE grants SET last_used_at = ?, expires_at = max(expires_at, ?)
WHERE id = ? AND revoked_at = 0 AND expires_at > ?`
)

func scanGrant(row scanner) (*oauth.Grant, error) {
	var g oauth.Grant
	if err := scanGrantInto(row, &g); err != nil {
		return nil, err
	}
	return &g, nil
}

// scanGrantInto scans grantCols, then the columns of extra, into g and
// extra.
func scanGrantInto(row scanner, g *oauth.Grant, extra ...any) error {
	var scopes string
	var created, used, revoked, exp int64
	var claims sql.NullString
	dest := []any{&g.ID, &g.ClientID, &g.Subject, &scopes, &g.Resource, &created, &used, &revoked, &g.RedirectURI, &claims, &g.GrantType, &exp}
	if err := row.Scan(append(dest, extra...)...); err != nil {
		return err
	}
	var err error
	if g.Scopes, err = decodeList(scopes); err != nil {
		return err
	}
	if g.Claims, err = decodeClaims(claims); err != nil {
		return err
	}
	g.CreatedAt, g.LastUsedAt, g.RevokedAt, g.ExpiresAt = fromMS(created), fromMS(used), fromMS(revoked), fromMS(exp)
	return nil
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

// decodeClaims decodes the claims column; NULL and {} are nil.
func decodeClaims(s sql.NullString) (map[string]any, error) {
	if !s.Valid {
		return nil, nil
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(s.String), &m); err != nil {
		return nil, fmt.Errorf("decode claims: %w", err)
	}
	if len(m) == 0 {
		return nil, nil
	}
	return m, nil
}

// insertGrant stores grant with its data key and data, in t.
func (t wtx) insertGrant(grant *storage.GrantRecord) error {
	gScopes, err := encodeList(grant.Scopes)
	if err != nil {
		return err
	}
	claims, err := encodeClaims(grant.Claims)
	if err != nil {
		return err
	}
	if _, err := t.exec(qInsertGrant, grant.ID, grant.ClientID, grant.Subject, gScopes, grant.Resource,
		ms(grant.CreatedAt), ms(grant.LastUsedAt), ms(grant.RevokedAt), grant.RedirectURI, claims,
		grant.GrantType, ms(grant.ExpiresAt), nullBlob(grant.DataKey)); err != nil {
		return err
	}
	for _, d := range grant.Data {
		if _, err := t.exec(qInsertData, dataArgs(grant.ID, d)...); err != nil {
			return err
		}
	}
	return nil
}

// CreateGrant implements storage.GrantStore.
func (s *Store) CreateGrant(ctx context.Context, g *storage.GrantRecord) error {
	return wrap("create grant", s.update(ctx, func(t wtx) error { return t.insertGrant(g) }))
}

// ExtendGrant implements storage.GrantStore in one statement.
func (s *Store) ExtendGrant(ctx context.Context, id string, expiresAt, now time.Time) error {
	err := s.update(ctx, func(t wtx) error {
		n, err := t.execN(qExtendGrant, ms(now), ms(expiresAt), id, ms(now))
		if err == nil && n == 0 {
			err = sql.ErrNoRows
		}
		return err
	})
	return wrap("extend grant", err)
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

// RevokeGrant implements storage.GrantStore in one transaction: the grant
// is read with its data key and live values, revoked (its key deleted),
// and its codes, refresh tokens and values are deleted. A grant that is
// already revoked keeps its first RevokedAt, and nil is returned.
func (s *Store) RevokeGrant(ctx context.Context, id string, now time.Time) (*storage.GrantRecord, error) {
	var rec *storage.GrantRecord
	err := s.update(ctx, func(t wtx) error {
		rec = nil
		recs, err := t.records(rqGrant, now, id)
		if err != nil {
			return err
		}
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
		for _, q := range []string{qDeleteGrantCodes, qDeleteGrantTokens, qDeleteGrantData} {
			if _, err := t.exec(q, id); err != nil {
				return err
			}
		}
		if n == 1 && len(recs) == 1 {
			rec = recs[0]
		}
		return nil
	})
	if err != nil {
		return nil, wrap("revoke grant", err)
	}
	return rec, nil
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
