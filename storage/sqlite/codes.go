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
	qGetCode = `SELECT ` + codeCols + ` FROM codes WHERE hash = ? AND ` + live
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
