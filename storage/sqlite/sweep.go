package sqlite

import (
	"context"
	"time"
)

// lapsed is the SQL condition, with one argument (now), that a row's
// expires_at has passed.
const lapsed = `(expires_at > 0 AND expires_at <= ?)`

// deadGrants selects, with one argument (now), the grants Sweep deletes:
// revoked ones and those of lapsed clients.
const deadGrants = `SELECT id FROM grants WHERE revoked_at > 0
  OR client_id IN (SELECT id FROM clients WHERE ` + lapsed + `)`

// sweeps are Sweep's statements, in order; each takes now twice at most.
// The rows a statement changes count as deleted rows (Sweep's result), as
// revocations (RevocationCount), or both: active grants about to be
// deleted are revoked first, so that they count as revocations, and a
// deleted client counts as both.
var sweeps = []struct {
	query            string
	nows             int
	deleted, revoked bool
}{
	{`UPDATE grants SET revoked_at = ? WHERE revoked_at = 0
  AND client_id IN (SELECT id FROM clients WHERE ` + lapsed + `)`, 2, false, true},
	{`DELETE FROM codes WHERE ` + lapsed + ` OR grant_id IN (` + deadGrants + `)`, 2, true, false},
	{`DELETE FROM refresh_tokens WHERE ` + lapsed + ` OR grant_id IN (` + deadGrants + `)`, 2, true, false},
	{`DELETE FROM grants WHERE id IN (` + deadGrants + `)`, 1, true, false},
	{`DELETE FROM clients WHERE ` + lapsed, 1, true, true},
	{`DELETE FROM pending WHERE ` + lapsed, 1, true, false},
	{`DELETE FROM sessions WHERE idle_expires_at <= ? OR expires_at <= ?`, 2, true, false},
	// Grants left with neither a code nor a refresh token can issue nothing.
	{`UPDATE grants SET revoked_at = ? WHERE revoked_at = 0
  AND NOT EXISTS (SELECT 1 FROM codes WHERE grant_id = grants.id)
  AND NOT EXISTS (SELECT 1 FROM refresh_tokens WHERE grant_id = grants.id)`, 1, false, true},
	{`DELETE FROM grants WHERE NOT EXISTS (SELECT 1 FROM codes WHERE grant_id = grants.id)
  AND NOT EXISTS (SELECT 1 FROM refresh_tokens WHERE grant_id = grants.id)`, 0, true, false},
}

// Sweep implements storage.Store in one write transaction. It deletes
// expired codes, refresh tokens and pending requests; lapsed clients with
// their grants and those grants' codes and refresh tokens; revoked grants
// (with any code or token left of them). It returns the number of rows
// deleted, of all kinds.
func (s *Store) Sweep(ctx context.Context, now time.Time) (int64, error) {
	var total int64
	err := s.update(ctx, func(t wtx) error {
		total = 0
		var revoked int64
		for _, sw := range sweeps {
			args := []any{ms(now), ms(now)}[:sw.nows]
			n, err := t.execN(sw.query, args...)
			if err != nil {
				return err
			}
			if sw.deleted {
				total += n
			}
			if sw.revoked {
				revoked += n
			}
		}
		return t.countRevocations(revoked)
	})
	if err != nil {
		return 0, wrap("sweep", err)
	}
	return total, nil
}
