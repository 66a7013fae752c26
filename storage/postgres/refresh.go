package postgres

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/mcp-oauth/oauth/storage"
)

var (
	qGetRefresh = `SELECT ` + refreshCols + ` FROM refresh_tokens WHERE hash = $1 AND ` + live(2)
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
	qTouchGrant  = `UPDATE grants SET last_used_at = $2 WHERE id = $1`
)

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
