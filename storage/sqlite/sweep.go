package sqlite

import (
	"context"
	"time"

	"github.com/mcp-oauth/oauth/storage"
)

// lapsed is the SQL condition, with one argument (now), that a row's
// expires_at has passed.
const lapsed = `(expires_at > 0 AND expires_at <= ?)`

// deadGrants selects, with one argument (now), the grants Sweep deletes:
// revoked ones and those of lapsed clients.
const deadGrants = `SELECT id FROM grants WHERE revoked_at > 0
  OR client_id IN (SELECT id FROM clients WHERE ` + lapsed + `)`

// orphan is the condition on grants, with one argument (now), that a
// grant has neither a code nor a refresh token left and has no ExpiresAt
// in the future: it can issue nothing.
const orphan = `NOT EXISTS (SELECT 1 FROM codes WHERE grant_id = grants.id)
  AND NOT EXISTS (SELECT 1 FROM refresh_tokens WHERE grant_id = grants.id)
  AND grants.expires_at <= ?`

// sweeps are Sweep's statements, in order; each takes now nows times, at
// most twice.
// The rows a statement changes count as deleted rows (Sweep's result), as
// revocations (RevocationCount), or both: active grants about to be
// deleted are revoked first, so that they count as revocations, and a
// deleted client counts as both. Before a statement with ended queries
// runs, the active grants it is about to revoke are read (ended takes now
// endedNows times), with their data keys and live values: they are Sweep's
// ended grants. The writer's lock
// is held from the transaction's start, so no other sweep, of this
// process or another, can read them too.
var sweeps = []struct {
	query            string
	nows             int
	deleted, revoked bool
	ended            *recordQueries
	endedNows        int
}{
	{`UPDATE grants SET revoked_at = ? WHERE revoked_at = 0
  AND client_id IN (SELECT id FROM clients WHERE ` + lapsed + `)`, 2, false, true, &rqLapsed, 1},
	{`DELETE FROM codes WHERE ` + lapsed + ` OR grant_id IN (` + deadGrants + `)`, 2, true, false, nil, 0},
	{`DELETE FROM refresh_tokens WHERE ` + lapsed + ` OR grant_id IN (` + deadGrants + `)`, 2, true, false, nil, 0},
	{`DELETE FROM grant_data WHERE ` + lapsed + ` OR grant_id IN (` + deadGrants + `)`, 2, true, false, nil, 0},
	{`DELETE FROM grants WHERE id IN (` + deadGrants + `)`, 1, true, false, nil, 0},
	{`DELETE FROM clients WHERE ` + lapsed, 1, true, true, nil, 0},
	{`DELETE FROM pending WHERE ` + lapsed, 1, true, false, nil, 0},
	{`DELETE FROM sessions WHERE idle_expires_at <= ? OR expires_at <= ?`, 2, true, false, nil, 0},
	// Grants left with neither a code nor a refresh token can issue nothing
	// (unless they issue access tokens only and have not expired).
	{`UPDATE grants SET revoked_at = ? WHERE revoked_at = 0 AND ` + orphan, 2, false, true, &rqOrphan, 1},
	{`DELETE FROM grant_data WHERE grant_id IN (SELECT id FROM grants WHERE ` + orphan + `)`, 1, true, false, nil, 0},
	{`DELETE FROM grants WHERE ` + orphan, 1, true, false, nil, 0},
}

// Sweep implements storage.Store in one write transaction. It deletes
// expired codes, refresh tokens, grant data values and pending requests;
// lapsed clients with their grants and those grants' codes, refresh tokens
// and values; revoked grants (with anything left of them); and grants left
// with neither a code nor a refresh token, with their values. It returns
// the number of rows deleted, of all kinds, and the grants that were
// active until it deleted them.
func (s *Store) Sweep(ctx context.Context, now time.Time) (*storage.SweepResult, error) {
	var res *storage.SweepResult
	err := s.update(ctx, func(t wtx) error {
		res = &storage.SweepResult{}
		var revoked int64
		for _, sw := range sweeps {
			if sw.ended != nil {
				recs, err := t.records(*sw.ended, now, []any{ms(now)}[:sw.endedNows]...)
				if err != nil {
					return err
				}
				res.Ended = append(res.Ended, recs...)
			}
			args := []any{ms(now), ms(now)}[:sw.nows]
			n, err := t.execN(sw.query, args...)
			if err != nil {
				return err
			}
			if sw.deleted {
				res.Rows += n
			}
			if sw.revoked {
				revoked += n
			}
		}
		return t.countRevocations(revoked)
	})
	if err != nil {
		return nil, wrap("sweep", err)
	}
	return res, nil
}
