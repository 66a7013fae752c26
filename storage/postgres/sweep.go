package postgres

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
)

// sweepLockKey is the key of the advisory lock a Sweep holds, so that of
// replicas sweeping at once only one does the work.
const sweepLockKey int32 = 0x4d435357 // "MCSW"

// Sweep's statements, in lock order. Grants die with their lapsed client
// or once revoked; codes and refresh tokens with their grant or on expiry.
var (
	qSweepClients  = `DELETE FROM clients WHERE expires_at <= $1 RETURNING id`
	qSweepGrants   = `DELETE FROM grants WHERE revoked_at IS NOT NULL OR client_id = ANY ($1) RETURNING id, revoked_at IS NULL`
	qSweepCodes    = `DELETE FROM codes WHERE expires_at <= $1 OR grant_id = ANY ($2)`
	qSweepTokens   = `DELETE FROM refresh_tokens WHERE expires_at <= $1 OR grant_id = ANY ($2)`
	qSweepPending  = `DELETE FROM pending WHERE expires_at <= $1`
	qSweepSessions = `DELETE FROM sessions WHERE idle_expires_at <= $1 OR expires_at <= $1`
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
