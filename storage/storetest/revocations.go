package storetest

import (
	"testing"
	"time"
)

var revocationTests = []test{
	{"NotChangedByIssuing", testRevocationsQuiet},
	{"RevokeGrant", testRevocationsRevoke},
	{"DeleteClient", testRevocationsDeleteClient},
	{"DeleteClientWithoutGrants", testRevocationsDeleteBareClient},
	{"SweepOfLapsedClientWithoutGrants", testRevocationsSweepBareClient},
	{"SweepOfLapsedClient", testRevocationsSweepLapsed},
	{"SweepOfGrantThatCanIssueNothing", testRevocationsSweepOrphan},
	{"SweepOfRevokedGrant", testRevocationsSweepRevoked},
}

// count returns the store's RevocationCount.
func (f *fixture) count() int64 {
	f.t.Helper()
	n, err := f.s.RevocationCount(f.ctx)
	f.must(err, "RevocationCount")
	return n
}

// wantCount checks how RevocationCount moved from before: by exactly
// delta when exact, else by at least delta.
func (f *fixture) wantCount(what string, before, delta int64, exact bool) int64 {
	f.t.Helper()
	after := f.count()
	switch {
	case after < before:
		f.t.Errorf("%s: RevocationCount went down from %d to %d", what, before, after)
	case exact && after != before+delta:
		f.t.Errorf("%s: RevocationCount went from %d to %d, want +%d", what, before, after, delta)
	case !exact && after < before+delta:
		f.t.Errorf("%s: RevocationCount went from %d to %d, want at least +%d", what, before, after, delta)
	}
	return after
}

// testRevocationsQuiet: operations that revoke nothing (registering,
// issuing, redeeming, rotating, touching, sweeping live rows) leave the
// count as it is; providers flush their caches when it moves.
func testRevocationsQuiet(t *testing.T, f *fixture) {
	n := f.count()
	long := base.Add(24 * time.Hour)
	c := f.createClient(base, long)
	is := f.issue(c.ID, base, long)
	r := f.redeem(is, base.Add(time.Minute), long)
	f.rotate(is.grant, r, "", base.Add(2*time.Minute), long)
	f.must(f.s.TouchClient(f.ctx, c.ID, long), "TouchClient")
	_, err := f.s.Sweep(f.ctx, base.Add(5*time.Minute))
	f.must(err, "Sweep")
	f.wantCount("issuing, redeeming, rotating, touching and sweeping live rows", n, 0, true)
}

// testRevocationsRevoke: revoking an active grant adds one; revoking it
// again, or an unknown grant, does not take the count down.
func testRevocationsRevoke(t *testing.T, f *fixture) {
	c := f.createClient(base, time.Time{})
	g := f.issue(c.ID, base, base.Add(time.Hour)).grant
	n := f.count()
	f.must(errOf(f.s.RevokeGrant(f.ctx, g.ID, base.Add(time.Minute))), "RevokeGrant")
	n = f.wantCount("RevokeGrant of an active grant", n, 1, true)
	f.must(errOf(f.s.RevokeGrant(f.ctx, g.ID, base.Add(2*time.Minute))), "RevokeGrant again")
	n = f.wantCount("RevokeGrant of a revoked grant", n, 0, false)
	_, _ = f.s.RevokeGrant(f.ctx, "no-such-grant", base)
	f.wantCount("RevokeGrant of an unknown grant", n, 0, false)
}

// testRevocationsDeleteClient: deleting a client adds at least one for
// each of its active grants (and one for the client).
func testRevocationsDeleteClient(t *testing.T, f *fixture) {
	c := f.createClient(base, time.Time{})
	f.issue(c.ID, base, base.Add(time.Hour))
	f.issue(c.ID, base, base.Add(time.Hour))
	n := f.count()
	f.must(errOf(f.s.DeleteClient(f.ctx, c.ID, base.Add(time.Minute))), "DeleteClient")
	f.wantCount("DeleteClient with two active grants", n, 2, false)
}

// testRevocationsSweepLapsed: a sweep that deletes a lapsed client's
// active grant counts it as revoked.
func testRevocationsSweepLapsed(t *testing.T, f *fixture) {
	long := base.Add(24 * time.Hour)
	c := f.createClient(base, base.Add(30*time.Minute))
	is := f.issue(c.ID, base, long)
	f.redeem(is, base.Add(time.Minute), long)
	n := f.count()
	_, err := f.s.Sweep(f.ctx, base.Add(time.Hour))
	f.must(err, "Sweep")
	f.grantGone(is.grant.ID)
	f.wantCount("Sweep deleting a lapsed client's active grant", n, 1, false)
}

// testRevocationsSweepOrphan: a sweep that deletes an active grant whose
// code expired unredeemed counts it as revoked.
func testRevocationsSweepOrphan(t *testing.T, f *fixture) {
	c := f.createClient(base, time.Time{})
	is := f.issue(c.ID, base, base.Add(10*time.Minute))
	n := f.count()
	_, err := f.s.Sweep(f.ctx, base.Add(time.Hour))
	f.must(err, "Sweep")
	f.grantGone(is.grant.ID)
	f.wantCount("Sweep deleting an active grant left without code or token", n, 1, false)
}

// testRevocationsSweepRevoked: deleting a grant that was revoked already
// is no new revocation.
func testRevocationsSweepRevoked(t *testing.T, f *fixture) {
	c := f.createClient(base, time.Time{})
	is := f.issue(c.ID, base, base.Add(time.Hour))
	f.must(errOf(f.s.RevokeGrant(f.ctx, is.grant.ID, base.Add(time.Minute))), "RevokeGrant")
	n := f.count()
	_, err := f.s.Sweep(f.ctx, base.Add(2*time.Minute))
	f.must(err, "Sweep")
	f.grantGone(is.grant.ID)
	f.wantCount("Sweep deleting a revoked grant", n, 0, true)
}

// testRevocationsDeleteBareClient: deleting a client counts even when it
// has no grants: providers remember clients too.
func testRevocationsDeleteBareClient(t *testing.T, f *fixture) {
	c := f.createClient(base, time.Time{})
	n := f.count()
	f.must(errOf(f.s.DeleteClient(f.ctx, c.ID, base.Add(time.Minute))), "DeleteClient")
	f.wantCount("DeleteClient of a client without grants", n, 1, false)
}

// testRevocationsSweepBareClient: a sweep that deletes a lapsed
// registration counts it, grants or not.
func testRevocationsSweepBareClient(t *testing.T, f *fixture) {
	c := f.createClient(base, base.Add(30*time.Minute))
	n := f.count()
	_, err := f.s.Sweep(f.ctx, base.Add(time.Hour))
	f.must(err, "Sweep")
	f.clientGone(c.ID, base)
	f.wantCount("Sweep deleting a lapsed client without grants", n, 1, false)
}
