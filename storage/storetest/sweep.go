package storetest

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	oauth "github.com/mcp-oauth/oauth"
	"github.com/mcp-oauth/oauth/storage"
)

var sweepTests = []test{
	{"Empty", testSweepEmpty},
	{"KeepsLiveRows", testSweepKeepsLive},
	{"DeletesDeadRows", testSweepDeletesDead},
	{"Concurrent", testSweepConcurrent},
	{"DeletesGrantsThatCanIssueNothing", testSweepOrphanGrants},
	{"DeletesExpiredData", testSweepDeletesExpiredData},
	{"EndedGrants", testSweepEndedGrants},
	{"EndedExcludesRevoked", testSweepEndedExcludesRevoked},
	{"EndedOnce", testSweepEndedOnce},
}

// testSweepEmpty: sweeping an empty store deletes nothing.
func testSweepEmpty(t *testing.T, f *fixture) {
	res := f.sweep(base)
	if res.Rows != 0 || len(res.Ended) != 0 {
		t.Errorf("Sweep of an empty store = %d rows and %d ended grants, want 0 and 0", res.Rows, len(res.Ended))
	}
}

// testSweepKeepsLive: rows still usable at now survive a sweep, including
// redeemed codes and spent tokens that have not expired (they are how
// replay is detected), and the count is 0.
func testSweepKeepsLive(t *testing.T, f *fixture) {
	long := base.Add(24 * time.Hour)
	forever := f.createClient(base, time.Time{})
	renewable := f.createClient(base, long)
	redeemed := f.issue(forever.ID, base, long)
	r0 := f.redeem(redeemed, base.Add(time.Minute), long)
	r1 := f.rotate(redeemed.grant, r0, "", base.Add(2*time.Minute), long)
	f.rotate(redeemed.grant, r1, "", base.Add(3*time.Minute), long) // spends r0
	unredeemed := f.issue(renewable.ID, base, long)
	waiting := f.createPending(forever.ID, base, long)
	key := newKey("ES256", base)
	f.must(f.s.AddKey(f.ctx, key), "AddKey")

	value := f.put(unredeemed.grant.ID, "value", base.Add(6*time.Minute), base)

	now := base.Add(5 * time.Minute) // before any expiry
	res := f.sweep(now)
	if res.Rows != 0 || len(res.Ended) != 0 {
		t.Errorf("Sweep with no dead rows = %d rows and %d ended grants, want 0 and 0", res.Rows, len(res.Ended))
	}
	checkEqual(t, "client that never lapses", f.client(forever.ID, now), forever)
	checkEqual(t, "client that lapses later", f.client(renewable.ID, now), renewable)
	checkEqual(t, "grant", f.grant(redeemed.grant.ID), redeemed.grant)
	checkEqual(t, "grant", f.grant(unredeemed.grant.ID), unredeemed.grant)
	if f.code(redeemed.code.Hash, now).ConsumedAt.IsZero() {
		t.Error("redeemed code lost its ConsumedAt")
	}
	checkEqual(t, "unredeemed code", f.code(unredeemed.code.Hash, now), unredeemed.code)
	if !f.refresh(r0.Hash, now).Spent {
		t.Error("spent token lost Spent")
	}
	f.refresh(r1.Hash, now)
	checkEqual(t, "waiting request", f.pendingByHandle(waiting.HandleHash, now), waiting)
	checkEqual(t, "completed request", f.pendingByHandle(redeemed.pending.HandleHash, now), redeemed.pending)
	checkIDs(t, "ListKeys", ids(f.keys(), keyID), []string{key.ID})
	f.dataKept("grant data value", unredeemed, now, value)
}

// testSweepDeletesDead: Sweep deletes expired codes, pending requests and
// refresh tokens, lapsed clients with their grants (and those grants'
// codes and tokens), and revoked grants; counts them; and keeps the rest.
func testSweepDeletesDead(t *testing.T, f *fixture) {
	now := base.Add(time.Hour)
	long := base.Add(24 * time.Hour)

	// Live clients, and lapsed ones (one lapsing exactly at now).
	k := f.createClient(base, time.Time{})
	m := f.createClient(base, long)
	lapsed := f.createClient(base, base.Add(30*time.Minute))
	lapsedAtNow := f.createClient(base, now)

	// The requests issue creates expire at base+pendingTTL, before now.
	g1 := f.issue(k.ID, base, base.Add(10*time.Minute)) // code expires before now
	r1 := f.redeem(g1, base.Add(time.Minute), base.Add(30*time.Minute))
	r2 := f.rotate(g1.grant, r1, "", base.Add(2*time.Minute), long)
	g2 := f.issue(k.ID, base, long)
	f.must(errOf(f.s.RevokeGrant(f.ctx, g2.grant.ID, base.Add(5*time.Minute))), "RevokeGrant")
	g3 := f.issue(m.ID, base, long)
	gl := f.issue(lapsed.ID, base, long) // live grant, code and token of a lapsed client
	rl := f.redeem(gl, base.Add(time.Minute), long)

	pExpired := f.createPending(k.ID, base, base.Add(10*time.Minute))
	pAtNow := f.createPending(k.ID, base, now)
	pLive := f.createPending(k.ID, base, long)
	pApproved := f.createPending(m.ID, base, long)
	f.must(f.s.DecidePending(f.ctx, pApproved.ID, oauth.PendingApproved, "alice", nil, base), "DecidePending")
	key := newKey("ES256", base)
	f.must(f.s.AddKey(f.ctx, key), "AddKey")

	// Rows dead in their own right: 6 requests, 1 code, 1 token, 2
	// clients, 1 revoked grant. Rows dead because their client lapsed: a
	// grant, its code and its token. A backend may or may not count the
	// latter (for instance if it deletes them by ON DELETE CASCADE).
	const least, most = 11, 14

	res := f.sweep(now)
	if res.Rows < least || res.Rows > most {
		t.Errorf("Sweep = %d rows, want %d to %d", res.Rows, least, most)
	}
	// Of the grants deleted, only the lapsed client's was active.
	checkEnded(t, "Sweep's ended grants", res.Ended, []*storage.GrantRecord{ended(gl)})

	// Dead rows are gone: looked up at a time at which they were live, so
	// that only deletion explains ErrNotFound.
	early, later := base, base.Add(time.Minute)
	f.clientGone(lapsed.ID, early)
	f.clientGone(lapsedAtNow.ID, early)
	f.grantGone(g2.grant.ID)
	f.grantGone(gl.grant.ID)
	f.codeGone(g1.code.Hash, early)
	f.codeGone(gl.code.Hash, later)
	f.refreshGone(r1.Hash, later)
	f.refreshGone(rl.Hash, later)
	for _, p := range []*storage.PendingRecord{g1.pending, g2.pending, g3.pending, gl.pending, pExpired, pAtNow} {
		f.pendingGone(p, early)
	}
	clients, err := f.s.ListClients(f.ctx, early)
	f.must(err, "ListClients")
	checkIDs(t, "ListClients after Sweep", ids(clients, clientID), []string{k.ID, m.ID})
	pending, err := f.s.ListPending(f.ctx, early)
	f.must(err, "ListPending")
	checkIDs(t, "ListPending after Sweep", ids(pending, pendingID), []string{pLive.ID})

	// Live rows survive.
	checkEqual(t, "live client", f.client(k.ID, now), k)
	checkEqual(t, "live client", f.client(m.ID, now), m)
	checkEqual(t, "active grant", f.grant(g1.grant.ID), g1.grant)
	checkEqual(t, "active grant", f.grant(g3.grant.ID), g3.grant)
	grants, err := f.s.ListGrants(f.ctx)
	f.must(err, "ListGrants")
	checkIDs(t, "ListGrants after Sweep", ids(grants, grantID), []string{g1.grant.ID, g3.grant.ID})
	checkEqual(t, "live code", f.code(g3.code.Hash, now), g3.code)
	checkEqual(t, "live token", f.refresh(r2.Hash, now), r2)
	checkEqual(t, "live waiting request", f.pendingByHandle(pLive.HandleHash, now), pLive)
	if got := f.pendingByHandle(pApproved.HandleHash, now); got.Status != oauth.PendingApproved {
		t.Errorf("live approved request: Status %q, want %q", got.Status, oauth.PendingApproved)
	}
	checkIDs(t, "ListKeys after Sweep", ids(f.keys(), keyID), []string{key.ID})

	res = f.sweep(now)
	if res.Rows != 0 || len(res.Ended) != 0 {
		t.Errorf("second Sweep at the same time = %d rows and %d ended grants, want 0 and 0", res.Rows, len(res.Ended))
	}
}

// testSweepConcurrent: Sweep runs safely alongside the other operations:
// every row it deletes is counted once across concurrent sweeps, and it
// deletes nothing live.
func testSweepConcurrent(t *testing.T, f *fixture) {
	c := f.createClient(base, time.Time{})
	const dead = 10
	for range dead {
		f.createPending(c.ID, base, base.Add(2*time.Minute))
	}
	sweepAt := base.Add(5 * time.Minute)
	live := base.Add(time.Hour)

	const workers, sweepers, sweeps = 20, 5, 5
	type result struct {
		grant *oauth.Grant
		code  *storage.CodeRecord
		r0    *storage.RefreshRecord
		r1    *storage.RefreshRecord
	}
	results := make([]result, workers)
	var swept atomic.Int64
	var mu sync.Mutex
	var problems []string
	fail := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		problems = append(problems, fmt.Sprintf(format, args...))
	}
	// work runs one request from creation to a rotated refresh token, the
	// way the provider does, with times before sweepAt.
	work := func(i int) error {
		at := base.Add(3 * time.Minute)
		p := f.newPending(c.ID, at, live)
		if err := f.s.CreatePending(f.ctx, p); err != nil {
			return fmt.Errorf("CreatePending: %w", err)
		}
		if err := f.s.DecidePending(f.ctx, p.ID, oauth.PendingApproved, "alice", nil, at); err != nil {
			return fmt.Errorf("DecidePending: %w", err)
		}
		g, code := f.newGrantAndCode(p, "alice", at, live)
		if err := f.s.CompletePending(f.ctx, p.ID, g, code, at); err != nil {
			return fmt.Errorf("CompletePending: %w", err)
		}
		r0 := newRefresh(&g.Grant, "", at, live)
		if err := f.s.RedeemCode(f.ctx, code.Hash, at, r0); err != nil {
			return fmt.Errorf("RedeemCode: %w", err)
		}
		r1 := newRefresh(&g.Grant, r0.Hash, at, live)
		if err := f.s.RotateRefreshToken(f.ctx, r0.Hash, "", r1, at); err != nil {
			return fmt.Errorf("RotateRefreshToken: %w", err)
		}
		results[i] = result{&g.Grant, code, r0, r1}
		return nil
	}
	errs := race(workers+sweepers, func(i int) error {
		if i < workers {
			return work(i)
		}
		for range sweeps {
			res, err := f.s.Sweep(f.ctx, sweepAt)
			if err != nil {
				return fmt.Errorf("Sweep: %w", err)
			}
			if res.Rows < 0 {
				fail("Sweep returned a negative count %d", res.Rows)
			}
			if len(res.Ended) != 0 {
				fail("Sweep ended %d grants, want none: every grant was live", len(res.Ended))
			}
			swept.Add(res.Rows)
		}
		return nil
	})
	for i, err := range errs {
		if err != nil {
			t.Errorf("goroutine %d: %v", i, err)
		}
	}
	for _, p := range problems {
		t.Error(p)
	}
	if got := swept.Load(); got != dead {
		t.Errorf("concurrent sweeps deleted %d rows in all, want exactly the %d dead ones", got, dead)
	}
	for i, r := range results {
		if r.grant == nil {
			continue // its error is reported above
		}
		if _, err := f.s.GetGrant(f.ctx, r.grant.ID); err != nil {
			t.Errorf("worker %d: GetGrant after concurrent sweeps: %v", i, err)
		}
		for _, h := range []string{r.r0.Hash, r.r1.Hash} {
			if _, err := f.s.GetRefreshToken(f.ctx, h, sweepAt); err != nil {
				t.Errorf("worker %d: GetRefreshToken after concurrent sweeps: %v", i, err)
			}
		}
		if _, err := f.s.GetCode(f.ctx, r.code.Hash, sweepAt); err != nil {
			t.Errorf("worker %d: GetCode after concurrent sweeps: %v", i, err)
		}
	}
	pending, err := f.s.ListPending(f.ctx, base)
	f.must(err, "ListPending")
	if len(pending) != 0 {
		t.Errorf("ListPending at creation time = %d requests after the sweeps, want 0 (the dead ones deleted, the rest completed)", len(pending))
	}
}

// testSweepOrphanGrants: a grant left with neither a code nor a refresh
// token (its code expired unredeemed, or its last refresh token expired) is
// deleted; a grant with a live code or token is kept.
func testSweepOrphanGrants(t *testing.T, f *fixture) {
	c := f.createClient(base, time.Time{})
	long := base.Add(24 * time.Hour)
	unredeemed := f.issue(c.ID, base, base.Add(10*time.Minute))
	lapsedToken := f.issue(c.ID, base, base.Add(10*time.Minute))
	f.redeem(lapsedToken, base.Add(time.Minute), base.Add(30*time.Minute))
	liveToken := f.issue(c.ID, base, base.Add(10*time.Minute))
	rt := f.redeem(liveToken, base.Add(time.Minute), long)
	liveCode := f.issue(c.ID, base, long)

	res := f.sweep(base.Add(time.Hour))
	// Dead: 4 pending requests, 3 expired codes, 1 expired token, 2 grants.
	if res.Rows != 10 {
		t.Errorf("Sweep = %d rows, want 10", res.Rows)
	}
	checkEnded(t, "Sweep's ended grants", res.Ended, []*storage.GrantRecord{ended(unredeemed), ended(lapsedToken)})
	f.grantGone(unredeemed.grant.ID)
	f.grantGone(lapsedToken.grant.ID)
	checkEqual(t, "grant with a live refresh token", f.grant(liveToken.grant.ID), liveToken.grant)
	checkEqual(t, "grant with a live code", f.grant(liveCode.grant.ID), liveCode.grant)
	f.refresh(rt.Hash, base.Add(time.Hour))
}
