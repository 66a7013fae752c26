package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/mcp-oauth/oauth/storage"
)

var (
	qGetRefresh = `SELECT ` + refreshCols + ` FROM refresh_tokens WHERE hash = ? AND ` + live
	// qRotate is RotateRefreshToken's compare-and-set.
	qRotate = `UPDATE refresh_tokens SET successor = ?
WHERE hash = ? AND successor = ? AND spent = 0 AND ` + live + `
RETURNING grant_id, parent`
	qRefreshLive = `SELECT 1 FROM refresh_tokens WHERE hash = ? AND ` + live
	qSpend       = `UPDATE refresh_tokens SET spent = 1 WHERE hash IN (?, ?) AND hash != ''`
)

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
