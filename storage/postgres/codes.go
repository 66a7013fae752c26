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
	qGetCode = `SELECT ` + codeCols + ` FROM codes WHERE hash = $1 AND ` + live(2)
	// qConsumeCode is RedeemCode's compare-and-set. It also reports
	// whether the code's grant is active, as of the statement's snapshot.
	qConsumeCode = `UPDATE codes SET consumed_at = $2
WHERE hash = $1 AND consumed_at IS NULL AND ` + live(3) + `
RETURNING EXISTS (SELECT 1 FROM grants WHERE id = codes.grant_id AND revoked_at IS NULL)`
	qCodeLive = `SELECT EXISTS (SELECT 1 FROM codes WHERE hash = $1 AND ` + live(2) + `)`
	// qTouchGrantOfCode records a redemption's use of the code's active grant.
	qTouchGrantOfCode = `UPDATE grants SET last_used_at = $2
WHERE id = (SELECT grant_id FROM codes WHERE hash = $1) AND revoked_at IS NULL`
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
