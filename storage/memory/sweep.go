package memory

import (
	"context"
	"time"
)

// Sweep deletes every row that can no longer be used at now: expired codes,
// pending requests and refresh tokens; lapsed clients with their grants and
// those grants' codes and refresh tokens; and revoked grants. It returns the
// number of rows deleted, counting every row of every kind.
func (s *Store) Sweep(ctx context.Context, now time.Time) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var n int64
	for id, c := range s.clients {
		if !expired(c.ExpiresAt, now) {
			continue
		}
		for gid, g := range s.grants {
			if g.ClientID == id {
				n += s.revokeLocked(g.Grant, now)
				delete(s.grants, gid)
				n++
			}
		}
		delete(s.clients, id)
		s.revocations++
		n++
	}
	for gid, g := range s.grants {
		if !g.RevokedAt.IsZero() {
			n += s.revokeLocked(g.Grant, now) // none left, unless a caller stored some
			delete(s.grants, gid)
			n++
		}
	}
	for h, c := range s.codes {
		if expired(c.ExpiresAt, now) {
			delete(s.codes, h)
			n++
		}
	}
	for h, r := range s.refresh {
		if expired(r.ExpiresAt, now) {
			delete(s.refresh, h)
			n++
		}
	}
	for id, p := range s.pending {
		if expired(p.ExpiresAt, now) {
			delete(s.pending, id)
			delete(s.pendingByHandle, p.HandleHash)
			delete(s.pendingByUserCode, p.UserCodeHash)
			delete(s.pendingByDevice, p.DeviceCodeHash)
			n++
		}
	}
	n += s.sweepSessionsLocked(now)
	// Grants with neither a code nor a refresh token left can issue nothing.
	used := make(map[string]bool, len(s.codes)+len(s.refresh))
	for _, c := range s.codes {
		used[c.GrantID] = true
	}
	for _, r := range s.refresh {
		used[r.GrantID] = true
	}
	for gid, g := range s.grants {
		if !used[gid] {
			if g.RevokedAt.IsZero() {
				s.revocations++
			}
			delete(s.grants, gid)
			n++
		}
	}
	return n, nil
}
