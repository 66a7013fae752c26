package storetest

import (
	"testing"
	"time"

	oauth "github.com/mcp-oauth/oauth"
	"github.com/mcp-oauth/oauth/storage"
)

// machineTests cover grants that no owner approved: CreateGrant,
// ExtendGrant, and how Sweep treats a grant that issues access tokens
// only.
var machineTests = []test{
	{"RoundTrip", testMachineRoundTrip},
	{"CreateTaken", testMachineCreateTaken},
	{"Extend", testMachineExtend},
	{"ExtendRefused", testMachineExtendRefused},
	{"SweepKeepsUntilExpiry", testMachineSweep},
	{"Revoke", testMachineRevoke},
}

// newMachineGrant returns a client-credentials grant of clientID made at
// now that lives until expiresAt.
func (f *fixture) newMachineGrant(clientID string, now, expiresAt time.Time) *storage.GrantRecord {
	return &storage.GrantRecord{
		Grant: oauth.Grant{
			ID: f.id("grant"), ClientID: clientID, Subject: clientID,
			Scopes: []string{"notes:read"}, Resource: "https://mcp.example.com/mcp",
			CreatedAt: now, LastUsedAt: now, GrantType: oauth.GrantTypeClientCredentials,
			ExpiresAt: expiresAt, Claims: sampleClaims(),
		},
		DataKey: randomBytes(40),
	}
}

// createMachineGrant stores newMachineGrant's grant.
func (f *fixture) createMachineGrant(clientID string, now, expiresAt time.Time) *storage.GrantRecord {
	f.t.Helper()
	g := f.newMachineGrant(clientID, now, expiresAt)
	f.must(f.s.CreateGrant(f.ctx, clone(g)), "CreateGrant")
	return g
}

// testMachineRoundTrip: GetGrant, ListGrants and ListSubjectGrants return
// every field CreateGrant stored, GrantType and ExpiresAt included, and
// GetGrantKey its data key.
func testMachineRoundTrip(t *testing.T, f *fixture) {
	c := f.createClient(base, time.Time{})
	g := f.newMachineGrant(c.ID, base.Add(fine), base.Add(time.Hour+fine))
	g.RedirectURI = "https://unused.example.com/cb"
	checkAllSet(t, "grant", &g.Grant, "RevokedAt")
	f.must(f.s.CreateGrant(f.ctx, clone(g)), "CreateGrant")
	checkEqual(t, "GetGrant", f.grant(g.ID), &g.Grant)
	list, err := f.s.ListSubjectGrants(f.ctx, c.ID)
	f.must(err, "ListSubjectGrants")
	checkEqual(t, "ListSubjectGrants", list, []*oauth.Grant{&g.Grant})
	key, err := f.s.GetGrantKey(f.ctx, g.ID)
	f.must(err, "GetGrantKey")
	checkEqual(t, "GetGrantKey", key, g.DataKey)
}

// testMachineCreateTaken: CreateGrant with a taken ID is ErrConflict and
// leaves the first grant as it was.
func testMachineCreateTaken(t *testing.T, f *fixture) {
	c := f.createClient(base, time.Time{})
	g := f.createMachineGrant(c.ID, base, base.Add(time.Hour))
	dup := f.newMachineGrant(c.ID, base, base.Add(2*time.Hour))
	dup.ID = g.ID
	wantErr(t, f.s.CreateGrant(f.ctx, dup), storage.ErrConflict, "CreateGrant with a taken ID")
	checkEqual(t, "the first grant", f.grant(g.ID), &g.Grant)
}

// testMachineExtend: ExtendGrant records the use and moves ExpiresAt
// forward, never back.
func testMachineExtend(t *testing.T, f *fixture) {
	c := f.createClient(base, time.Time{})
	g := f.createMachineGrant(c.ID, base, base.Add(time.Hour))
	at := base.Add(10*time.Minute + fine)
	f.must(f.s.ExtendGrant(f.ctx, g.ID, at.Add(time.Hour), at), "ExtendGrant")
	want := g.Grant
	want.LastUsedAt, want.ExpiresAt = at, at.Add(time.Hour)
	checkEqual(t, "grant after ExtendGrant", f.grant(g.ID), &want)
	later := at.Add(time.Minute)
	f.must(f.s.ExtendGrant(f.ctx, g.ID, base.Add(30*time.Minute), later), "ExtendGrant to an earlier time")
	want.LastUsedAt = later
	checkEqual(t, "grant after ExtendGrant to an earlier time", f.grant(g.ID), &want)
}

// testMachineExtendRefused: ExtendGrant is ErrNotFound for an absent,
// revoked or expired grant and for one that lives by its codes and
// refresh tokens (ExpiresAt zero), and changes none of them.
func testMachineExtendRefused(t *testing.T, f *fixture) {
	c := f.createClient(base, time.Time{})
	now := base.Add(time.Hour)
	expired := f.createMachineGrant(c.ID, base, now)
	revoked := f.createMachineGrant(c.ID, base, now.Add(time.Hour))
	_, err := f.s.RevokeGrant(f.ctx, revoked.ID, base.Add(time.Minute))
	f.must(err, "RevokeGrant")
	approved := f.issue(c.ID, base, now.Add(time.Hour))
	wantErr(t, f.s.ExtendGrant(f.ctx, "absent", now.Add(time.Hour), now), storage.ErrNotFound, "ExtendGrant of an absent grant")
	for _, tc := range []struct {
		name string
		id   string
	}{{"an expired grant", expired.ID}, {"a revoked grant", revoked.ID}, {"an approved grant", approved.grant.ID}} {
		before := f.grant(tc.id)
		wantErr(t, f.s.ExtendGrant(f.ctx, tc.id, now.Add(time.Hour), now), storage.ErrNotFound, "ExtendGrant of %s", tc.name)
		checkEqual(t, tc.name+" after a refused ExtendGrant", f.grant(tc.id), before)
	}
}

// testMachineSweep: Sweep keeps a grant that issues access tokens only
// until its ExpiresAt, then deletes it and its data and reports it ended.
func testMachineSweep(t *testing.T, f *fixture) {
	c := f.createClient(base, time.Time{})
	g := f.newMachineGrant(c.ID, base, base.Add(time.Hour))
	g.Data = []*storage.GrantDataRecord{{GrantID: g.ID, Name: "token", Sealed: randomBytes(20)}}
	f.must(f.s.CreateGrant(f.ctx, clone(g)), "CreateGrant")
	if res := f.sweep(base.Add(time.Hour - time.Millisecond)); res.Rows != 0 || len(res.Ended) != 0 {
		t.Errorf("Sweep before ExpiresAt = %d rows and %d ended, want 0 and 0", res.Rows, len(res.Ended))
	}
	checkEqual(t, "grant before its ExpiresAt", f.grant(g.ID), &g.Grant)
	f.grantData(g.ID, "token", base.Add(time.Minute))
	res := f.sweep(base.Add(time.Hour))
	if res.Rows != 2 {
		t.Errorf("Sweep at ExpiresAt = %d rows, want 2 (the grant and its value)", res.Rows)
	}
	checkEnded(t, "Sweep's ended grants", res.Ended, []*storage.GrantRecord{g})
	f.grantGone(g.ID)
}

// testMachineRevoke: RevokeGrant ends a grant that issues access tokens
// only like any other, returning it with its data key.
func testMachineRevoke(t *testing.T, f *fixture) {
	c := f.createClient(base, time.Time{})
	g := f.createMachineGrant(c.ID, base, base.Add(time.Hour))
	rec, err := f.s.RevokeGrant(f.ctx, g.ID, base.Add(time.Minute))
	f.must(err, "RevokeGrant")
	checkEqual(t, "RevokeGrant's record", rec, g)
	if got := f.grant(g.ID); got.RevokedAt.IsZero() {
		t.Error("grant still active after RevokeGrant")
	}
}
