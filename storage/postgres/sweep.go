package postgres

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/mcp-oauth/oauth/storage"
)

// sweepLockKey is the key of the advisory lock a Sweep holds, so that of
// replicas sweeping at once only one does the work.
const sweepLockKey int32 = 0x4d435357 // "MCSW"

// Sweep's statements, in lock order. Grants die with their lapsed client
// or once revoked; codes, refresh tokens and values with their grant or on
// expiry. The grants deleted are returned, as they were, with their data
// keys, and the values deleted with them too, so that the active ones can
// be reported with their values.
var (
	qSweepClients = `DELETE FROM clients WHERE expires_at <= $1 RETURNING id`
	qSweepGrants  = `DELETE FROM grants WHERE revoked_at IS NOT NULL OR client_id = ANY ($1) RETURNING ` + grantCols + `, data_key`
	qSweepCodes   = `DELETE FROM codes WHERE expires_at <= $1 OR grant_id = ANY ($2)`
	qSweepTokens  = `DELETE FROM refresh_tokens WHERE expires_at <= $1 OR grant_id = ANY ($2)`
	// qSweepGrantData deletes the values of the grants deleted.
	qSweepGrantData = `DELETE FROM grant_data WHERE grant_id = ANY ($1) RETURNING ` + dataCols
	qSweepPending   = `DELETE FROM pending WHERE expires_at <= $1`
	qSweepSessions  = `DELETE FROM sessions WHERE idle_expires_at <= $1 OR expires_at <= $1`
	// qSweepOrphans deletes grants left with neither a code nor a refresh
	// token, unless they issue access tokens only and have not expired:
	// they can issue nothing. A grant and its code are inserted in one
	// transaction and redemption keeps the code row, so a live grant is
	// never without one of them.
	qSweepOrphans = `DELETE FROM grants WHERE NOT EXISTS (SELECT 1 FROM codes WHERE grant_id = grants.id)
  AND NOT EXISTS (SELECT 1 FROM refresh_tokens WHERE grant_id = grants.id)
  AND (expires_at IS NULL OR expires_at <= $1) RETURNING ` + grantCols + `, data_key`
	// qSweepExpiredData deletes expired values, last: it locks no grant
	// row, so it cannot hold a value that a put, which locks its grant
	// first, waits for while this sweep waits for that grant.
	qSweepExpiredData = `DELETE FROM grant_data WHERE expires_at <= $1`
)

// Sweep implements storage.Store in one transaction. It deletes lapsed
// clients with their grants and those grants' codes, refresh tokens and
// values; revoked grants (with anything left of them); grants left with
// neither a code nor a refresh token, with their values; and expired
// codes, refresh tokens, values and pending requests. It returns the
// number of rows deleted, of all kinds, and the grants that were active
// until it deleted them.
//
// Concurrent sweeps count and return each row once: a DELETE that reaches
// a row another transaction is deleting waits for it and, once it commits,
// finds the row gone and neither deletes nor returns it.
func (s *Store) Sweep(ctx context.Context, now time.Time) (*storage.SweepResult, error) {
	var res *storage.SweepResult
	err := s.tx(ctx, func(tx pgx.Tx) error {
		res = &storage.SweepResult{}
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
		res.Rows = int64(len(clients))
		revoked := int64(len(clients)) // deleted registrations count too
		dead, err := list(ctx, tx, scanGrantRecord, qSweepGrants, encodeList(clients))
		if err != nil {
			return err
		}
		res.Rows += int64(len(dead))
		ids := grantIDs(dead)
		for _, st := range []struct {
			query string
			args  []any
		}{
			{qSweepCodes, []any{now, ids}},
			{qSweepTokens, []any{now, ids}},
		} {
			tag, err := tx.Exec(ctx, st.query, st.args...)
			if err != nil {
				return err
			}
			res.Rows += tag.RowsAffected()
		}
		if err := endGrants(ctx, tx, res, now, dead); err != nil {
			return err
		}
		for _, q := range []string{qSweepPending, qSweepSessions} {
			tag, err := tx.Exec(ctx, q, now)
			if err != nil {
				return err
			}
			res.Rows += tag.RowsAffected()
		}
		orphans, err := list(ctx, tx, scanGrantRecord, qSweepOrphans, now)
		if err != nil {
			return err
		}
		res.Rows += int64(len(orphans))
		if err := endGrants(ctx, tx, res, now, orphans); err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, qSweepExpiredData, now)
		if err != nil {
			return err
		}
		res.Rows += tag.RowsAffected()
		revoked += int64(len(res.Ended)) // active grants deleted
		return countRevocations(ctx, tx, revoked)
	})
	if err != nil {
		return nil, wrap("sweep", err)
	}
	return res, nil
}

// endGrants deletes the values of the grants deleted, counting them in
// res.Rows, and adds those of the grants that were active to res.Ended
// with their values live at now.
func endGrants(ctx context.Context, tx pgx.Tx, res *storage.SweepResult, now time.Time, deleted []*storage.GrantRecord) error {
	if len(deleted) == 0 {
		return nil
	}
	data, n, err := deleteData(ctx, tx, now, qSweepGrantData, grantIDs(deleted))
	if err != nil {
		return err
	}
	res.Rows += n
	var active []*storage.GrantRecord
	for _, g := range deleted {
		if g.RevokedAt.IsZero() {
			active = append(active, g)
		}
	}
	attachData(active, data)
	res.Ended = append(res.Ended, active...)
	return nil
}

// grantIDs returns the IDs of grants, for an = ANY (…) parameter.
func grantIDs(grants []*storage.GrantRecord) []string {
	ids := make([]string, len(grants))
	for i, g := range grants {
		ids[i] = g.ID
	}
	return ids
}
