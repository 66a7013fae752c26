package storetest

import (
	"cmp"
	"fmt"
	"slices"
	"testing"
	"time"

	oauth "github.com/mcp-oauth/oauth"
	"github.com/mcp-oauth/oauth/storage"
)

// The tests of what ends with a grant: RevokeGrant, DeleteClient and Sweep
// delete a grant's data key and data in the transaction that ends it, and
// return the grants that were active until then with their data key and
// the values still unexpired, so that the Provider can tell the host once.

// ended returns what the store should return for is when it ends: the
// grant as it was, its data key and the values data (those unexpired).
func ended(is issued, data ...*storage.GrantDataRecord) *storage.GrantRecord {
	r := clone(is.rec)
	r.Data = nil
	for _, d := range data {
		r.Data = append(r.Data, clone(d))
	}
	return r
}

// byName returns a copy of data ordered by name: stores may return a
// grant's values in any order.
func byName(data []*storage.GrantDataRecord) []*storage.GrantDataRecord {
	out := slices.Clone(data)
	slices.SortFunc(out, func(a, b *storage.GrantDataRecord) int { return cmp.Compare(a.Name, b.Name) })
	return out
}

// checkRecord reports every way got differs from want, taking want's Data
// as a set of values.
func checkRecord(t *testing.T, what string, got, want *storage.GrantRecord) {
	t.Helper()
	if got == nil {
		t.Errorf("%s: no grant returned, want grant %s", what, want.ID)
		return
	}
	g, w := *got, *want
	g.Data, w.Data = byName(got.Data), byName(want.Data)
	checkEqual(t, what, &g, &w)
}

// checkEnded reports an error unless got holds exactly the grants of want,
// each once, in any order, each as checkRecord wants it.
func checkEnded(t *testing.T, what string, got, want []*storage.GrantRecord) {
	t.Helper()
	seen := map[string]int{}
	for _, g := range got {
		if g == nil {
			t.Errorf("%s: a nil grant", what)
			continue
		}
		seen[g.ID]++
		if seen[g.ID] == 2 {
			t.Errorf("%s: grant %s returned more than once", what, g.ID)
		}
	}
	for _, w := range want {
		i := slices.IndexFunc(got, func(g *storage.GrantRecord) bool { return g != nil && g.ID == w.ID })
		if i < 0 {
			t.Errorf("%s: grant %s missing", what, w.ID)
			continue
		}
		checkRecord(t, fmt.Sprintf("%s: grant %s", what, w.ID), got[i], w)
		delete(seen, w.ID)
	}
	for id := range seen {
		t.Errorf("%s: grant %s returned, but it was not active until then", what, id)
	}
}

// dataGone checks that nothing of grant g's data can be read or written
// any more: neither its values (looked up at at, when they were live), nor
// its key, nor a new value.
func (f *fixture) dataGone(what, grantID string, at time.Time, names ...string) {
	f.t.Helper()
	for _, name := range names {
		f.grantDataGone(grantID, name, at)
	}
	_, err := f.s.GetGrantKey(f.ctx, grantID)
	wantErr(f.t, err, storage.ErrNotFound, "%s: GetGrantKey", what)
	wantErr(f.t, f.s.PutGrantData(f.ctx, newValue(grantID, "new", time.Time{}), 1000, at), storage.ErrNotFound, "%s: PutGrantData", what)
}

// dataKept checks that grant is's key and the values data are intact.
func (f *fixture) dataKept(what string, is issued, at time.Time, data ...*storage.GrantDataRecord) {
	f.t.Helper()
	for _, d := range data {
		key, got := f.grantData(is.grant.ID, d.Name, at)
		checkEqual(f.t, what+": data key", key, is.rec.DataKey)
		checkEqual(f.t, what+": value "+d.Name, got, d)
	}
}

// testGrantRevokeReturns: RevokeGrant returns the grant as it was before
// (RevokedAt zero, LastUsedAt as last recorded, claims), its data key and
// the values unexpired at now, initial or stored later, not the expired
// ones.
func testGrantRevokeReturns(t *testing.T, f *fixture) {
	c := f.createClient(base, time.Time{})
	long := base.Add(24 * time.Hour)
	now := base.Add(time.Hour)
	keep := newValue("", "keep", time.Time{})
	later := newValue("", "later", now.Add(time.Millisecond))
	atNow := newValue("", "at-now", now)
	gone := newValue("", "gone", base.Add(time.Minute))
	is := f.issueData(c.ID, base, long, keep, later, atNow, gone)
	f.redeem(is, base.Add(2*time.Minute), long)
	put := f.put(is.grant.ID, "put", now.Add(time.Hour), base.Add(3*time.Minute))
	other := f.issue(c.ID, base, long, "keep")

	rec, err := f.s.RevokeGrant(f.ctx, is.grant.ID, now)
	f.must(err, "RevokeGrant")
	checkRecord(t, "RevokeGrant's grant", rec, ended(is, keep, later, put))
	if rec != nil && !rec.RevokedAt.IsZero() {
		t.Errorf("RevokeGrant's grant has RevokedAt %s, want the grant as it was (zero)", fmtTime(rec.RevokedAt))
	}

	// A grant without data key or values ends with neither.
	p := f.createPending(c.ID, base, base.Add(pendingTTL))
	f.must(f.s.DecidePending(f.ctx, p.ID, oauth.PendingApproved, "bob", nil, base), "DecidePending")
	bare, code := f.newGrantAndCode(p, "bob", base, long)
	bare.DataKey = nil
	f.must(f.s.CompletePending(f.ctx, p.ID, bare, code, base), "CompletePending")
	key, err := f.s.GetGrantKey(f.ctx, bare.ID)
	f.must(err, "GetGrantKey of a grant without a data key")
	if len(key) != 0 {
		t.Errorf("GetGrantKey of a grant without a data key = %x, want empty", key)
	}
	rec, err = f.s.RevokeGrant(f.ctx, bare.ID, now)
	f.must(err, "RevokeGrant")
	checkRecord(t, "RevokeGrant's grant without data", rec, &storage.GrantRecord{Grant: bare.Grant})
	f.dataKept("the other grant", other, now, other.rec.Data...)
}

// testGrantRevokeDeletesData: after RevokeGrant, the grant's values, key
// and writes are gone, while other grants' data are intact; a later sweep
// finds only the grant row itself to delete, nothing of its data.
func testGrantRevokeDeletesData(t *testing.T, f *fixture) {
	c := f.createClient(base, time.Time{})
	long := base.Add(24 * time.Hour)
	victim := f.issueData(c.ID, base, long, newValue("", "a", time.Time{}), newValue("", "b", long))
	f.put(victim.grant.ID, "c", long, base)
	other := f.issue(c.ID, base, long, "a", "b")
	o := f.put(other.grant.ID, "c", long, base)

	f.must(errOf(f.s.RevokeGrant(f.ctx, victim.grant.ID, base.Add(time.Minute))), "RevokeGrant")
	f.dataGone("revoked grant", victim.grant.ID, base, "a", "b", "c")
	f.dataKept("other grant", other, base, append(slices.Clone(other.rec.Data), o)...)

	// Before anything expires (the requests at base+pendingTTL): only the
	// revoked grant is dead, and nothing of its data is left to delete.
	res := f.sweep(base.Add(5 * time.Minute))
	if res.Rows != 1 {
		t.Errorf("Sweep after RevokeGrant = %d rows, want 1 (the revoked grant; its data went with the revocation)", res.Rows)
	}
	checkEnded(t, "Sweep's ended grants", res.Ended, nil)
	f.dataKept("other grant after Sweep", other, base, append(slices.Clone(other.rec.Data), o)...)
}

// testClientDeleteReturnsGrants: DeleteClient returns the grants of the
// client that were active, each as it was with its data key and its
// unexpired values; not its revoked grants, nor other clients' grants.
func testClientDeleteReturnsGrants(t *testing.T, f *fixture) {
	a := f.createClient(base, time.Time{})
	b := f.createClient(base, time.Time{})
	long := base.Add(24 * time.Hour)
	now := base.Add(time.Hour)
	x := newValue("", "x", time.Time{})
	lapsed := newValue("", "lapsed", now)
	a1 := f.issueData(a.ID, base, long, x, lapsed)
	f.redeem(a1, base.Add(time.Minute), long)
	y := f.put(a1.grant.ID, "y", long, base.Add(2*time.Minute))
	a2 := f.issue(a.ID, base, long) // no values
	a3 := f.issue(a.ID, base, long, "z")
	f.must(errOf(f.s.RevokeGrant(f.ctx, a3.grant.ID, base.Add(time.Minute))), "RevokeGrant")
	b1 := f.issue(b.ID, base, long, "x")

	got, err := f.s.DeleteClient(f.ctx, a.ID, now)
	f.must(err, "DeleteClient")
	checkEnded(t, "DeleteClient's grants", got, []*storage.GrantRecord{ended(a1, x, y), ended(a2)})
	for _, g := range got {
		if g != nil && !g.RevokedAt.IsZero() {
			t.Errorf("DeleteClient's grant %s has RevokedAt %s, want the grant as it was (zero)", g.ID, fmtTime(g.RevokedAt))
		}
	}
	f.dataKept("other client's grant", b1, now, b1.rec.Data...)

	got, err = f.s.DeleteClient(f.ctx, b.ID, now)
	f.must(err, "DeleteClient")
	checkEnded(t, "DeleteClient's grants", got, []*storage.GrantRecord{ended(b1, b1.rec.Data...)})
}

// testClientDeleteDeletesData: after DeleteClient, nothing of its grants'
// data can be read or written, and a later sweep finds only the revoked
// grant rows to delete.
func testClientDeleteDeletesData(t *testing.T, f *fixture) {
	a := f.createClient(base, time.Time{})
	b := f.createClient(base, time.Time{})
	long := base.Add(24 * time.Hour)
	a1 := f.issueData(a.ID, base, long, newValue("", "x", time.Time{}), newValue("", "y", long))
	f.put(a1.grant.ID, "z", time.Time{}, base)
	a2 := f.issue(a.ID, base, long, "x")
	b1 := f.issue(b.ID, base, long, "x", "y")

	f.must(errOf(f.s.DeleteClient(f.ctx, a.ID, base.Add(time.Minute))), "DeleteClient")
	f.dataGone("grant of the deleted client", a1.grant.ID, base, "x", "y", "z")
	f.dataGone("grant of the deleted client", a2.grant.ID, base, "x")
	f.dataKept("other client's grant", b1, base, b1.rec.Data...)

	res := f.sweep(base.Add(5 * time.Minute))
	if res.Rows != 2 {
		t.Errorf("Sweep after DeleteClient = %d rows, want 2 (the two revoked grants; their data went with the client)", res.Rows)
	}
	checkEnded(t, "Sweep's ended grants", res.Ended, nil)
}

// testSweepDeletesExpiredData: Sweep deletes the values expired at now,
// counting each, and keeps the live ones; the grant and its key stay.
func testSweepDeletesExpiredData(t *testing.T, f *fixture) {
	c := f.createClient(base, time.Time{})
	long := base.Add(24 * time.Hour)
	now := base.Add(5 * time.Minute) // before the requests expire
	is := f.issueData(c.ID, base, long, newValue("", "initial-lapsed", base.Add(time.Minute)), newValue("", "initial-live", time.Time{}))
	f.put(is.grant.ID, "lapsed", base.Add(2*time.Minute), base)
	f.put(is.grant.ID, "at-now", now, base)
	later := f.put(is.grant.ID, "later", now.Add(time.Millisecond), base)
	never := f.put(is.grant.ID, "never", time.Time{}, base)
	other := f.issue(c.ID, base, long, "x")
	o := f.put(other.grant.ID, "lapsed", base.Add(time.Minute), base)

	res := f.sweep(now)
	if res.Rows != 4 {
		t.Errorf("Sweep = %d rows, want 4 (the expired values)", res.Rows)
	}
	checkEnded(t, "Sweep's ended grants", res.Ended, nil)
	// Looked up when they were live, so that only deletion explains
	// ErrNotFound.
	for _, name := range []string{"initial-lapsed", "lapsed", "at-now"} {
		f.grantDataGone(is.grant.ID, name, base)
	}
	f.grantDataGone(other.grant.ID, o.Name, base)
	f.dataKept("live values", is, base, is.rec.Data[1], later, never)
	f.dataKept("other grant's live value", other, base, other.rec.Data...)
	if res := f.sweep(now); res.Rows != 0 {
		t.Errorf("second Sweep at the same time = %d rows, want 0", res.Rows)
	}
}

// testSweepEndedGrants: Sweep returns each grant it deleted that was
// active until then (of a lapsed client, or left with neither code nor
// token), as it was, with its data key and the values unexpired at now,
// and deletes their data.
func testSweepEndedGrants(t *testing.T, f *fixture) {
	long := base.Add(24 * time.Hour)
	now := base.Add(time.Hour)
	k := f.createClient(base, time.Time{})
	lapsing := f.createClient(base, base.Add(30*time.Minute))

	x, xLapsed := newValue("", "x", time.Time{}), newValue("", "x-lapsed", base.Add(time.Minute))
	ofLapsed := f.issueData(lapsing.ID, base, long, x, xLapsed)
	f.redeem(ofLapsed, base.Add(time.Minute), long)
	y, yLater := newValue("", "y", time.Time{}), newValue("", "y-later", now.Add(time.Minute))
	unredeemed := f.issueData(k.ID, base, base.Add(10*time.Minute), y, yLater)
	z := f.put(unredeemed.grant.ID, "z", time.Time{}, base)
	lastToken := f.issue(k.ID, base, base.Add(10*time.Minute))
	f.redeem(lastToken, base.Add(time.Minute), base.Add(30*time.Minute))
	live := f.issue(k.ID, base, long, "w")

	res := f.sweep(now)
	checkEnded(t, "Sweep's ended grants", res.Ended, []*storage.GrantRecord{
		ended(ofLapsed, x), ended(unredeemed, y, yLater, z), ended(lastToken),
	})
	for _, g := range res.Ended {
		if g != nil && !g.RevokedAt.IsZero() {
			t.Errorf("Sweep's ended grant %s has RevokedAt %s, want the grant as it was (zero)", g.ID, fmtTime(g.RevokedAt))
		}
	}
	f.grantGone(ofLapsed.grant.ID)
	f.grantGone(unredeemed.grant.ID)
	f.grantGone(lastToken.grant.ID)
	f.dataGone("grant of a lapsed client", ofLapsed.grant.ID, base, "x", "x-lapsed")
	f.dataGone("grant whose code lapsed", unredeemed.grant.ID, base, "y", "y-later", "z")
	f.dataKept("live grant", live, now, live.rec.Data...)
	if res := f.sweep(now); len(res.Ended) != 0 {
		t.Errorf("second Sweep ended %d grants, want 0", len(res.Ended))
	}
}

// testSweepEndedExcludesRevoked: grants that were revoked (by RevokeGrant
// or DeleteClient) before a sweep deletes them did not end in it.
func testSweepEndedExcludesRevoked(t *testing.T, f *fixture) {
	long := base.Add(24 * time.Hour)
	k := f.createClient(base, time.Time{})
	deleted := f.createClient(base, time.Time{})
	lapsing := f.createClient(base, base.Add(30*time.Minute))
	revoked := f.issue(k.ID, base, long, "a")
	revokedOfLapsed := f.issue(lapsing.ID, base, long, "a")
	revokedUnredeemed := f.issue(k.ID, base, base.Add(10*time.Minute), "a")
	for _, is := range []issued{revoked, revokedOfLapsed, revokedUnredeemed} {
		f.must(errOf(f.s.RevokeGrant(f.ctx, is.grant.ID, base.Add(time.Minute))), "RevokeGrant")
	}
	ofDeleted := f.issue(deleted.ID, base, long, "a")
	f.must(errOf(f.s.DeleteClient(f.ctx, deleted.ID, base.Add(time.Minute))), "DeleteClient")

	res := f.sweep(base.Add(time.Hour))
	checkEnded(t, "Sweep's ended grants", res.Ended, nil)
	for _, is := range []issued{revoked, revokedOfLapsed, revokedUnredeemed, ofDeleted} {
		f.grantGone(is.grant.ID)
	}
}

// testSweepEndedOnce: of concurrent sweeps, each grant that ends is
// returned by exactly one, with its data, and the rows they delete add up
// to the dead ones.
func testSweepEndedOnce(t *testing.T, f *fixture) {
	c := f.createClient(base, time.Time{})
	const grants, sweepers = 20, 10
	want := make([]*storage.GrantRecord, grants)
	for i := range want {
		v := newValue("", "v", time.Time{})
		want[i] = ended(f.issueData(c.ID, base, base.Add(time.Minute), v), v)
	}
	results := make([]*storage.SweepResult, sweepers)
	errs := race(sweepers, func(i int) error {
		var err error
		results[i], err = f.s.Sweep(f.ctx, base.Add(time.Hour))
		return err
	})
	var all []*storage.GrantRecord
	var rows int64
	for i, err := range errs {
		f.must(err, "Sweep #%d", i)
		all = append(all, results[i].Ended...)
		rows += results[i].Rows
	}
	checkEnded(t, "ended grants of concurrent sweeps", all, want)
	// Each grant, its request and its code; its value may or may not be
	// counted when it goes with the grant.
	if least, most := int64(3*grants), int64(4*grants); rows < least || rows > most {
		t.Errorf("concurrent sweeps deleted %d rows in all, want %d to %d", rows, least, most)
	}
}
