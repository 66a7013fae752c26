package storetest

import (
	"testing"
	"time"

	oauth "github.com/mcp-oauth/oauth"
	"github.com/mcp-oauth/oauth/storage"
)

var grantTests = []test{
	{"RoundTrip", testGrantRoundTrip},
	{"CopiesInAndOut", testGrantCopies},
	{"GetAbsent", testGrantGetAbsent},
	{"List", testGrantList},
	{"ListSubject", testGrantListSubject},
	{"ListOrderIsByCreatedAt", testGrantListOrder},
	{"Revoke", testGrantRevoke},
	{"RevokeTwice", testGrantRevokeTwice},
	{"RevokeAbsent", testGrantRevokeAbsent},
	{"Claims", testGrantClaims},
	{"ClaimsWithoutJSON", testGrantClaimsWithoutJSON},
	{"RevokeReturnsGrant", testGrantRevokeReturns},
	{"RevokeDeletesData", testGrantRevokeDeletesData},
}

func grantID(g *oauth.Grant) string { return g.ID }

// testGrantRoundTrip: GetGrant returns every field of the grant that
// CompletePending stored.
func testGrantRoundTrip(t *testing.T, f *fixture) {
	c := f.createClient(base, time.Time{})
	p := f.createPending(c.ID, base, base.Add(pendingTTL))
	f.must(f.s.DecidePending(f.ctx, p.ID, oauth.PendingApproved, "alice", nil, base), "DecidePending")
	g, code := f.newGrantAndCode(p, "alice", base, base.Add(time.Minute))
	g.CreatedAt = base.Add(fine)
	g.LastUsedAt = base.Add(time.Second + fine)
	checkAllSet(t, "grant", &g.Grant, "RevokedAt", "GrantType", "ExpiresAt")
	want := clone(g)
	f.must(f.s.CompletePending(f.ctx, p.ID, g, code, base), "CompletePending")
	checkEqual(t, "GetGrant", f.grant(g.ID), &want.Grant)
}

// testGrantCopies: neither the caller's grant nor a returned grant aliases
// stored state.
func testGrantCopies(t *testing.T, f *fixture) {
	c := f.createClient(base, time.Time{})
	p := f.createPending(c.ID, base, base.Add(pendingTTL))
	f.must(f.s.DecidePending(f.ctx, p.ID, oauth.PendingApproved, "alice", nil, base), "DecidePending")
	g, code := f.newGrantAndCode(p, "alice", base, base.Add(time.Minute))
	want := clone(g)
	f.must(f.s.CompletePending(f.ctx, p.ID, g, code, base), "CompletePending")
	if scribble(g) == 0 {
		t.Fatal("fixture grant has no slice elements to scribble on")
	}
	got := f.grant(want.ID)
	checkEqual(t, "GetGrant after the caller changed its grant", got, &want.Grant)
	scribble(got)
	checkEqual(t, "GetGrant after the caller changed a returned grant", f.grant(want.ID), &want.Grant)
	list, err := f.s.ListGrants(f.ctx)
	f.must(err, "ListGrants")
	for _, g := range list {
		scribble(g)
	}
	checkEqual(t, "GetGrant after the caller changed a listed grant", f.grant(want.ID), &want.Grant)
	list, err = f.s.ListSubjectGrants(f.ctx, want.Subject)
	f.must(err, "ListSubjectGrants")
	for _, g := range list {
		scribble(g)
	}
	checkEqual(t, "GetGrant after the caller changed a subject's listed grant", f.grant(want.ID), &want.Grant)
	key, err := f.s.GetGrantKey(f.ctx, want.ID)
	f.must(err, "GetGrantKey")
	scribble(&struct{ DataKey []byte }{key})
	key, err = f.s.GetGrantKey(f.ctx, want.ID)
	f.must(err, "GetGrantKey")
	checkEqual(t, "GetGrantKey after the caller changed the caller's key and a returned one", key, want.DataKey)
}

// testGrantGetAbsent: GetGrant of an unknown ID is ErrNotFound.
func testGrantGetAbsent(t *testing.T, f *fixture) {
	c := f.createClient(base, time.Time{})
	f.issue(c.ID, base, base.Add(time.Minute))
	f.grantGone("no-such-grant")
}

// testGrantList: ListGrants returns the active grants, oldest first, and
// omits revoked ones.
func testGrantList(t *testing.T, f *fixture) {
	list, err := f.s.ListGrants(f.ctx)
	f.must(err, "ListGrants of an empty store")
	if len(list) != 0 {
		t.Fatalf("ListGrants of an empty store = %d grants, want 0", len(list))
	}
	c := f.createClient(base, time.Time{})
	exp := base.Add(time.Hour)
	g1 := f.issue(c.ID, base.Add(1*time.Second), exp).grant
	revoked := f.issue(c.ID, base.Add(2*time.Second), exp).grant
	g2 := f.issue(c.ID, base.Add(3*time.Second), exp).grant
	g3 := f.issue(c.ID, base.Add(4*time.Second), exp).grant
	f.must(errOf(f.s.RevokeGrant(f.ctx, revoked.ID, base.Add(time.Minute))), "RevokeGrant")

	list, err = f.s.ListGrants(f.ctx)
	f.must(err, "ListGrants")
	checkIDs(t, "ListGrants", ids(list, grantID), []string{g1.ID, g2.ID, g3.ID})
	if len(list) == 3 {
		for i, want := range []*oauth.Grant{g1, g2, g3} {
			checkEqual(t, "listed grant "+want.ID, list[i], want)
		}
	}
}

// testGrantListOrder: "oldest first" orders by CreatedAt, not by insertion.
func testGrantListOrder(t *testing.T, f *fixture) {
	c := f.createClient(base, time.Time{})
	exp := base.Add(time.Hour)
	g3 := f.issue(c.ID, base.Add(3*time.Second), exp).grant
	g1 := f.issue(c.ID, base.Add(1*time.Second), exp).grant
	g2 := f.issue(c.ID, base.Add(2*time.Second), exp).grant
	list, err := f.s.ListGrants(f.ctx)
	f.must(err, "ListGrants")
	checkIDs(t, "ListGrants of grants inserted out of CreatedAt order", ids(list, grantID), []string{g1.ID, g2.ID, g3.ID})
}

// testGrantRevoke: RevokeGrant marks the grant revoked at now (GetGrant
// still returns it) and deletes its codes and refresh tokens, and only its.
func testGrantRevoke(t *testing.T, f *fixture) {
	c := f.createClient(base, time.Time{})
	long := base.Add(24 * time.Hour)
	victim := f.issue(c.ID, base, long)
	r1 := f.redeem(victim, base.Add(time.Minute), long)
	r2 := f.rotate(victim.grant, r1, "", base.Add(2*time.Minute), long)
	r3 := f.rotate(victim.grant, r2, "", base.Add(3*time.Minute), long)
	unredeemed := f.issue(c.ID, base, long) // same client, other grant
	other := f.issue(c.ID, base, long)
	ro := f.redeem(other, base.Add(time.Minute), long)

	at := base.Add(10*time.Minute + fine)
	f.must(errOf(f.s.RevokeGrant(f.ctx, victim.grant.ID, at)), "RevokeGrant")

	want := clone(victim.grant)
	want.RevokedAt = at
	checkEqual(t, "GetGrant of the revoked grant", f.grant(victim.grant.ID), want)
	f.codeGone(victim.code.Hash, base)
	for _, r := range []*storage.RefreshRecord{r1, r2, r3} {
		f.refreshGone(r.Hash, base)
	}

	checkEqual(t, "GetGrant of an unrevoked grant", f.grant(unredeemed.grant.ID), unredeemed.grant)
	checkEqual(t, "GetCode of an unrevoked grant's code", f.code(unredeemed.code.Hash, base), unredeemed.code)
	checkEqual(t, "GetGrant of an unrevoked grant", f.grant(other.grant.ID), other.grant)
	checkEqual(t, "GetRefreshToken of an unrevoked grant's token", f.refresh(ro.Hash, base), ro)
	if f.code(other.code.Hash, base).ConsumedAt.IsZero() {
		t.Error("an unrevoked grant's redeemed code lost its ConsumedAt")
	}
}

// testGrantRevokeTwice: revoking a revoked grant is not an error and
// returns no grant, and the grant stays revoked as of the first
// revocation.
func testGrantRevokeTwice(t *testing.T, f *fixture) {
	c := f.createClient(base, time.Time{})
	g := f.issue(c.ID, base, base.Add(time.Hour)).grant
	first, second := base.Add(time.Minute), base.Add(2*time.Minute)
	rec, err := f.s.RevokeGrant(f.ctx, g.ID, first)
	f.must(err, "RevokeGrant")
	if rec == nil {
		t.Error("RevokeGrant of an active grant returned no grant")
	}
	rec, err = f.s.RevokeGrant(f.ctx, g.ID, second)
	f.must(err, "RevokeGrant of a revoked grant")
	if rec != nil {
		t.Errorf("RevokeGrant of a revoked grant returned grant %s, want nil: only the call that revokes it returns it", rec.ID)
	}
	checkTime(t, "RevokedAt after revoking twice", f.grant(g.ID).RevokedAt, first)
	list, err := f.s.ListGrants(f.ctx)
	f.must(err, "ListGrants")
	if len(list) != 0 {
		t.Errorf("ListGrants lists %d grants after the only one was revoked, want 0", len(list))
	}
}

// testGrantRevokeAbsent: RevokeGrant of an unknown grant is ErrNotFound.
func testGrantRevokeAbsent(t *testing.T, f *fixture) {
	rec, err := f.s.RevokeGrant(f.ctx, "no-such-grant", base)
	wantErr(t, err, storage.ErrNotFound, "RevokeGrant of an unknown grant")
	if rec != nil {
		t.Error("RevokeGrant of an unknown grant returned a grant")
	}
	f.grantGone("no-such-grant")
}

// testGrantListSubject: ListSubjectGrants returns exactly the subject's
// active grants, oldest first.
func testGrantListSubject(t *testing.T, f *fixture) {
	c := f.createClient(base, time.Time{})
	long := base.Add(24 * time.Hour)
	a1 := f.issue(c.ID, base, long)
	f.issue(c.ID, base, long) // another subject
	p := f.createPending(c.ID, base.Add(time.Minute), long)
	f.must(f.s.DecidePending(f.ctx, p.ID, oauth.PendingApproved, a1.grant.Subject, nil, base.Add(time.Minute)), "DecidePending")
	g2, code2 := f.newGrantAndCode(p, a1.grant.Subject, base.Add(time.Minute), long)
	f.must(f.s.CompletePending(f.ctx, p.ID, g2, code2, base.Add(time.Minute)), "CompletePending")
	a3 := f.issue(c.ID, base, long)
	f.must(errOf(f.s.RevokeGrant(f.ctx, a3.grant.ID, base)), "RevokeGrant")

	got, err := f.s.ListSubjectGrants(f.ctx, a1.grant.Subject)
	f.must(err, "ListSubjectGrants")
	checkIDs(t, "ListSubjectGrants", ids(got, grantID), []string{a1.grant.ID, g2.ID})
	if len(got) == 2 {
		checkEqual(t, "listed grant "+a1.grant.ID, got[0], a1.grant)
		checkEqual(t, "listed grant "+g2.ID, got[1], &g2.Grant)
	}
	none, err := f.s.ListSubjectGrants(f.ctx, a3.grant.Subject)
	f.must(err, "ListSubjectGrants")
	checkIDs(t, "ListSubjectGrants of a subject whose only grant is revoked", ids(none, grantID), nil)
}
