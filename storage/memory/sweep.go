package memory

import (
	"context"
	"time"

	"github.com/mcp-oauth/oauth/storage"
)

// Sweep deletes every row that can no longer be used at now: expired codes,
// pending requests, refresh tokens and grant data values; lapsed clients
// with their grants and those grants' codes, refresh tokens and data;
// revoked grants; and grants left with neither a code nor a refresh token
// whose ExpiresAt is zero or not after now, with their data. It returns the number of rows deleted, counting every
// row of every kind, and the grants that were active until this sweep
// deleted them, each as it was, with its data key and the values
// unexpired at now.
func (s *Store) Sweep(ctx context.Context, now time.Time) (*storage.SweepResult, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	res := &storage.SweepResult{}
	// Ended records are taken before anything of theirs is deleted.
	for id, c := range s.clients {
		if !expired(c.ExpiresAt, now) {
			continue
		}
		for gid, g := range s.grants {
			if g.ClientID == id {
				rec, n := s.revokeLocked(g, now)
				if rec != nil {
					res.Ended = append(res.Ended, rec)
				}
				delete(s.grants, gid)
				res.Rows += n + 1
			}
		}
		delete(s.clients, id)
		s.revocations++
		res.Rows++
	}
	for gid, g := range s.grants {
		if !g.RevokedAt.IsZero() {
			// Nothing is left of it, unless a caller stored a grant that
			// was revoked already.
			res.Rows += s.deleteGrantRowsLocked(g) + 1
			delete(s.grants, gid)
		}
	}
	for h, c := range s.codes {
		if expired(c.ExpiresAt, now) {
			delete(s.codes, h)
			res.Rows++
		}
	}
	for h, r := range s.refresh {
		if expired(r.ExpiresAt, now) {
			delete(s.refresh, h)
			res.Rows++
		}
	}
	for gid, values := range s.data {
		for name, d := range values {
			if expired(d.ExpiresAt, now) {
				delete(values, name)
				res.Rows++
			}
		}
		if len(values) == 0 {
			delete(s.data, gid)
		}
	}
	for id, p := range s.pending {
		if expired(p.ExpiresAt, now) {
			delete(s.pending, id)
			delete(s.pendingByHandle, p.HandleHash)
			delete(s.pendingByUserCode, p.UserCodeHash)
			delete(s.pendingByDevice, p.DeviceCodeHash)
			res.Rows++
		}
	}
	res.Rows += s.sweepSessionsLocked(now)
	// Grants with neither a code nor a refresh token left can issue nothing
	// (unless they issue access tokens only and have not expired).
	used := make(map[string]bool, len(s.codes)+len(s.refresh))
	for _, c := range s.codes {
		used[c.GrantID] = true
	}
	for _, r := range s.refresh {
		used[r.GrantID] = true
	}
	for gid, g := range s.grants {
		if used[gid] || g.ExpiresAt.After(now) {
			continue
		}
		rec, n := s.revokeLocked(g, now)
		if rec != nil {
			res.Ended = append(res.Ended, rec)
		}
		delete(s.grants, gid)
		res.Rows += n + 1
	}
	return res, nil
}
