package storetest

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mcp-oauth/oauth/storage"
)

var grantDataTests = []test{
	{"StoredByCompletePending", testDataInitial},
	{"RoundTrip", testDataRoundTrip},
	{"CopiesInAndOut", testDataCopies},
	{"GetAbsent", testDataGetAbsent},
	{"Expiry", testDataExpiry},
	{"GetKey", testDataGetKey},
	{"PutReplaces", testDataPutReplaces},
	{"PutInactiveGrant", testDataPutInactive},
	{"Limit", testDataLimit},
	{"LimitConcurrent", testDataLimitConcurrent},
	{"PutRacesRevoke", testDataPutRacesRevoke},
	{"Delete", testDataDelete},
}

// testDataInitial: CompletePending stores the grant's data key and initial
// values, which GetGrantData returns with the key, each until it expires.
func testDataInitial(t *testing.T, f *fixture) {
	c := f.createClient(base, time.Time{})
	long := base.Add(24 * time.Hour)
	never := newValue("", "never", time.Time{})
	later := newValue("", "later", base.Add(time.Hour+fine))
	soon := newValue("", "soon", base.Add(time.Minute))
	is := f.issueData(c.ID, base, long, never, later, soon)
	for _, d := range []*storage.GrantDataRecord{never, later, soon} {
		key, got := f.grantData(is.grant.ID, d.Name, base)
		checkEqual(t, "data key with value "+d.Name, key, is.rec.DataKey)
		checkEqual(t, "value "+d.Name, got, d)
	}
	key, err := f.s.GetGrantKey(f.ctx, is.grant.ID)
	f.must(err, "GetGrantKey")
	checkEqual(t, "GetGrantKey", key, is.rec.DataKey)
	f.grantDataGone(is.grant.ID, soon.Name, base.Add(time.Minute))
	f.grantData(is.grant.ID, later.Name, base.Add(time.Minute))
}

// testDataRoundTrip: GetGrantData returns every field PutGrantData stored,
// for names up to 64 bytes and ciphertexts of any bytes and length.
func testDataRoundTrip(t *testing.T, f *fixture) {
	c := f.createClient(base, time.Time{})
	is := f.issue(c.ID, base, base.Add(time.Hour))
	every := make([]byte, 256)
	for i := range every {
		every[i] = byte(i)
	}
	for _, tc := range []struct {
		name      string
		sealed    []byte
		expiresAt time.Time
	}{
		{"a", randomBytes(1), base.Add(time.Hour + fine)},
		{strings.Repeat("n", 64), randomBytes(4096), time.Time{}},
		{"with.dots_and-dashes", every, base.Add(fine)},
		{"empty", nil, time.Time{}},
	} {
		d := &storage.GrantDataRecord{GrantID: is.grant.ID, Name: tc.name, Sealed: tc.sealed, ExpiresAt: tc.expiresAt}
		if tc.name == "a" {
			checkAllSet(t, "grant data value", d)
		}
		want := clone(d)
		f.must(f.s.PutGrantData(f.ctx, d, 10, base), "PutGrantData(%s)", tc.name)
		key, got := f.grantData(is.grant.ID, tc.name, base)
		checkEqual(t, "data key", key, is.rec.DataKey)
		checkEqual(t, "value "+tc.name, got, want)
	}
}

// testDataCopies: neither the caller's value nor a returned value or key
// aliases stored state.
func testDataCopies(t *testing.T, f *fixture) {
	c := f.createClient(base, time.Time{})
	is := f.issue(c.ID, base, base.Add(time.Hour), "initial")
	wantKey := clone(&struct{ K []byte }{is.rec.DataKey}).K
	d := newValue(is.grant.ID, "v", time.Time{})
	want := clone(d)
	f.must(f.s.PutGrantData(f.ctx, d, 10, base), "PutGrantData")
	scribble(d)
	scribble(is.rec) // the key and the initial value passed to CompletePending
	key, got := f.grantData(is.grant.ID, "v", base)
	checkEqual(t, "value after the caller changed its value", got, want)
	checkEqual(t, "data key after the caller changed its key", key, wantKey)
	scribble(got)
	scribble(&struct{ K []byte }{key})
	key, got = f.grantData(is.grant.ID, "v", base)
	checkEqual(t, "value after the caller changed a returned value", got, want)
	checkEqual(t, "data key after the caller changed a returned key", key, wantKey)
	if _, got := f.grantData(is.grant.ID, "initial", base); slices.Equal(got.Sealed, is.rec.Data[0].Sealed) {
		t.Error("the initial value changed with the caller's record passed to CompletePending")
	}
}

// testDataGetAbsent: GetGrantData is ErrNotFound for an unknown grant or
// name, a name of another grant, and the grants that ended.
func testDataGetAbsent(t *testing.T, f *fixture) {
	c := f.createClient(base, time.Time{})
	gone := f.createClient(base, time.Time{})
	long := base.Add(24 * time.Hour)
	a := f.issue(c.ID, base, long, "mine")
	b := f.issue(c.ID, base, long, "theirs")
	revoked := f.issue(c.ID, base, long, "mine")
	f.must(errOf(f.s.RevokeGrant(f.ctx, revoked.grant.ID, base)), "RevokeGrant")
	deleted := f.issue(gone.ID, base, long, "mine")
	f.must(errOf(f.s.DeleteClient(f.ctx, gone.ID, base)), "DeleteClient")
	for _, tc := range []struct{ name, grant, value string }{
		{"UnknownGrant", "no-such-grant", "mine"},
		{"UnknownName", a.grant.ID, "other"},
		{"EmptyName", a.grant.ID, ""},
		{"NameOfAnotherGrant", a.grant.ID, "theirs"},
		{"RevokedGrant", revoked.grant.ID, "mine"},
		{"GrantOfDeletedClient", deleted.grant.ID, "mine"},
	} {
		t.Run(tc.name, func(t *testing.T) { f.sub(t).grantDataGone(tc.grant, tc.value, base) })
	}
	f.grantData(a.grant.ID, "mine", base)
	f.grantData(b.grant.ID, "theirs", base)
}

// testDataExpiry: a value is returned strictly before its ExpiresAt and
// never at or after it; a zero ExpiresAt never lapses (the value lives as
// long as the grant).
func testDataExpiry(t *testing.T, f *fixture) {
	c := f.createClient(base, time.Time{})
	is := f.issue(c.ID, base, base.Add(time.Hour))
	exp := base.Add(10 * time.Minute)
	f.put(is.grant.ID, "lapsing", exp, base)
	f.put(is.grant.ID, "forever", time.Time{}, base)
	for _, tc := range []struct {
		name  string
		value string
		now   time.Time
		live  bool
	}{
		{"BeforeExpiry", "lapsing", exp.Add(-time.Millisecond), true},
		{"AtExpiry", "lapsing", exp, false},
		{"AfterExpiry", "lapsing", exp.Add(time.Millisecond), false},
		{"LongAfterExpiry", "lapsing", exp.Add(24 * time.Hour), false},
		{"ZeroNeverLapses", "forever", base.AddDate(100, 0, 0), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := f.sub(t)
			if tc.live {
				f.grantData(is.grant.ID, tc.value, tc.now)
			} else {
				f.grantDataGone(is.grant.ID, tc.value, tc.now)
			}
		})
	}
}

// testDataGetKey: GetGrantKey returns the data key of an active grant
// (empty for a grant without one) and ErrNotFound for a grant that is
// absent or revoked.
func testDataGetKey(t *testing.T, f *fixture) {
	c := f.createClient(base, time.Time{})
	is := f.issue(c.ID, base, base.Add(time.Hour))
	f.put(is.grant.ID, "v", time.Time{}, base)
	key, err := f.s.GetGrantKey(f.ctx, is.grant.ID)
	f.must(err, "GetGrantKey")
	checkEqual(t, "GetGrantKey", key, is.rec.DataKey)
	_, err = f.s.GetGrantKey(f.ctx, "no-such-grant")
	wantErr(t, err, storage.ErrNotFound, "GetGrantKey of an unknown grant")
	f.must(errOf(f.s.RevokeGrant(f.ctx, is.grant.ID, base)), "RevokeGrant")
	_, err = f.s.GetGrantKey(f.ctx, is.grant.ID)
	wantErr(t, err, storage.ErrNotFound, "GetGrantKey of a revoked grant")
}

// testDataPutReplaces: PutGrantData replaces the value of the same name,
// its expiry included, whether the old one was initial, live or expired.
func testDataPutReplaces(t *testing.T, f *fixture) {
	c := f.createClient(base, time.Time{})
	is := f.issue(c.ID, base, base.Add(time.Hour), "initial")
	f.put(is.grant.ID, "v", base.Add(time.Minute), base)
	v2 := f.put(is.grant.ID, "v", time.Time{}, base) // no longer lapses
	f.put(is.grant.ID, "w", time.Time{}, base)
	w2 := f.put(is.grant.ID, "w", base.Add(2*time.Minute+fine), base)
	f.put(is.grant.ID, "x", base.Add(time.Minute), base)
	x2 := f.put(is.grant.ID, "x", base.Add(time.Hour), base.Add(2*time.Minute)) // over an expired value
	i2 := f.put(is.grant.ID, "initial", time.Time{}, base)
	at := base.Add(2 * time.Minute)
	for _, want := range []*storage.GrantDataRecord{v2, w2, x2, i2} {
		_, got := f.grantData(is.grant.ID, want.Name, at)
		checkEqual(t, "replaced value "+want.Name, got, want)
	}
	f.grantDataGone(is.grant.ID, "w", base.Add(2*time.Minute+fine))
}

// testDataPutInactive: PutGrantData is ErrNotFound for a grant that is
// absent or no longer active, and stores nothing.
func testDataPutInactive(t *testing.T, f *fixture) {
	c := f.createClient(base, time.Time{})
	gone := f.createClient(base, time.Time{})
	long := base.Add(24 * time.Hour)
	revoked := f.issue(c.ID, base, long)
	f.must(errOf(f.s.RevokeGrant(f.ctx, revoked.grant.ID, base)), "RevokeGrant")
	deleted := f.issue(gone.ID, base, long)
	f.must(errOf(f.s.DeleteClient(f.ctx, gone.ID, base)), "DeleteClient")
	swept := f.issue(c.ID, base, base.Add(time.Minute)) // its code lapses unredeemed
	f.sweep(base.Add(time.Hour))
	for _, tc := range []struct{ name, grant string }{
		{"UnknownGrant", "no-such-grant"},
		{"RevokedGrant", revoked.grant.ID},
		{"GrantOfDeletedClient", deleted.grant.ID},
		{"SweptGrant", swept.grant.ID},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := f.sub(t)
			err := f.s.PutGrantData(f.ctx, newValue(tc.grant, "v", time.Time{}), 10, base)
			wantErr(t, err, storage.ErrNotFound, "PutGrantData")
			f.grantDataGone(tc.grant, "v", base)
		})
	}
}

// testDataLimit: PutGrantData stores a value only if the grant would then
// have at most maxValues unexpired values, counting the new one once and
// not the one it replaces, nor expired ones; ErrLimit otherwise, storing
// nothing.
func testDataLimit(t *testing.T, f *fixture) {
	c := f.createClient(base, time.Time{})
	now := base.Add(time.Hour)
	for _, tc := range []struct {
		name     string
		existing map[string]time.Time // values stored before, by expiry
		max      int
		put      string
		want     error
	}{
		{"UnderLimit", map[string]time.Time{"a": {}}, 3, "b", nil},
		{"ReachingLimit", map[string]time.Time{"a": {}, "b": {}}, 3, "c", nil},
		{"OverLimit", map[string]time.Time{"a": {}, "b": {}}, 2, "c", storage.ErrLimit},
		{"OverLimitByMany", map[string]time.Time{"a": {}, "b": {}, "c": {}}, 1, "d", storage.ErrLimit},
		{"ReplaceAtLimit", map[string]time.Time{"a": {}, "b": {}}, 2, "b", nil},
		{"ReplaceInitialAtLimit", map[string]time.Time{"initial": {}, "b": {}}, 2, "initial", nil},
		{"ReplaceExpiredAtLimit", map[string]time.Time{"a": {}, "b": now}, 2, "b", nil},
		{"ExpiredDoNotCount", map[string]time.Time{"a": {}, "b": now, "c": base}, 2, "d", nil},
		{"LaterExpiryCounts", map[string]time.Time{"a": {}, "b": now.Add(time.Millisecond)}, 2, "c", storage.ErrLimit},
		{"MaxOneFirst", nil, 1, "a", nil},
		{"MaxOneSecond", map[string]time.Time{"a": {}}, 1, "b", storage.ErrLimit},
		{"MaxOneReplace", map[string]time.Time{"a": {}}, 1, "a", nil},
		{"MaxZero", nil, 0, "a", storage.ErrLimit},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := f.sub(t)
			var initial []*storage.GrantDataRecord
			if exp, ok := tc.existing["initial"]; ok {
				initial = append(initial, newValue("", "initial", exp))
			}
			is := f.issueData(c.ID, base, now.Add(time.Hour), initial...)
			for name, exp := range tc.existing {
				if name != "initial" {
					f.put(is.grant.ID, name, exp, base)
				}
			}
			d := newValue(is.grant.ID, tc.put, time.Time{})
			err := f.s.PutGrantData(f.ctx, clone(d), tc.max, now)
			if tc.want == nil {
				f.must(err, "PutGrantData(%s) with %d values and maxValues %d", tc.put, len(tc.existing), tc.max)
				_, got := f.grantData(is.grant.ID, tc.put, now)
				checkEqual(t, "stored value", got, d)
				return
			}
			wantErr(t, err, tc.want, "PutGrantData(%s) with %d values and maxValues %d", tc.put, len(tc.existing), tc.max)
			f.grantDataGone(is.grant.ID, tc.put, now)
			for name, exp := range tc.existing {
				if exp.IsZero() || exp.After(now) {
					f.grantData(is.grant.ID, name, now)
				}
			}
		})
	}

	// Deleting a value makes room.
	is := f.issue(c.ID, base, now.Add(time.Hour), "a", "b")
	wantErr(t, f.s.PutGrantData(f.ctx, newValue(is.grant.ID, "c", time.Time{}), 2, now), storage.ErrLimit, "PutGrantData at the limit")
	f.must(f.s.DeleteGrantData(f.ctx, is.grant.ID, "a"), "DeleteGrantData")
	f.must(f.s.PutGrantData(f.ctx, newValue(is.grant.ID, "c", time.Time{}), 2, now), "PutGrantData after a DeleteGrantData")
}

// testDataLimitConcurrent: concurrent puts of different names never take a
// grant over maxValues: exactly maxValues of them succeed, the others get
// ErrLimit, and exactly the winners' values are stored; concurrent puts of
// one name all succeed.
func testDataLimitConcurrent(t *testing.T, f *fixture) {
	c := f.createClient(base, time.Time{})
	for _, tc := range []struct {
		name     string
		max      int
		sameName bool
	}{
		{"MaxOne", 1, false},
		{"MaxFive", 5, false},
		{"OneNameMaxOne", 1, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := f.sub(t)
			is := f.issue(c.ID, base, base.Add(time.Hour))
			values := make([]*storage.GrantDataRecord, concurrency)
			for i := range values {
				name := fmt.Sprintf("v%d", i)
				if tc.sameName {
					name = "v"
				}
				values[i] = newValue(is.grant.ID, name, time.Time{})
			}
			errs := race(concurrency, func(i int) error {
				return f.s.PutGrantData(f.ctx, values[i], tc.max, base)
			})
			wins := 0
			for i, err := range errs {
				switch {
				case err == nil:
					wins++
				case !errors.Is(err, storage.ErrLimit):
					t.Errorf("PutGrantData #%d: got error %v, want nil or %v", i, err, storage.ErrLimit)
				}
			}
			want := tc.max
			if tc.sameName {
				want = concurrency
			}
			if wins != want {
				t.Errorf("%d concurrent PutGrantData with maxValues %d: %d succeeded, want %d", concurrency, tc.max, wins, want)
			}
			if tc.sameName {
				_, got := f.grantData(is.grant.ID, "v", base)
				if !slices.ContainsFunc(values, func(v *storage.GrantDataRecord) bool { return slices.Equal(v.Sealed, got.Sealed) }) {
					t.Error("the stored value is none of those put")
				}
				return
			}
			for i, v := range values {
				_, _, err := f.s.GetGrantData(f.ctx, is.grant.ID, v.Name, base)
				if (err == nil) != (errs[i] == nil) {
					t.Errorf("value %s: PutGrantData returned %v, but GetGrantData returns %v", v.Name, errs[i], err)
				}
			}
		})
	}
}

// testDataPutRacesRevoke: PutGrantData racing RevokeGrant either stores
// the value before the revocation, which then returns and deletes it, or
// fails with ErrNotFound: no value outlives its grant unreported.
func testDataPutRacesRevoke(t *testing.T, f *fixture) {
	c := f.createClient(base, time.Time{})
	const puts = 10
	for round := range 10 {
		is := f.issue(c.ID, base, base.Add(time.Hour))
		values := make([]*storage.GrantDataRecord, puts)
		for i := range values {
			values[i] = newValue(is.grant.ID, fmt.Sprintf("v%d", i), time.Time{})
		}
		var rec *storage.GrantRecord
		errs := race(puts+1, func(i int) error {
			if i == puts {
				var err error
				rec, err = f.s.RevokeGrant(f.ctx, is.grant.ID, base)
				return err
			}
			return f.s.PutGrantData(f.ctx, values[i], puts, base)
		})
		if errs[puts] != nil || rec == nil {
			t.Fatalf("round %d: RevokeGrant = %v, %v; want the grant", round, rec, errs[puts])
		}
		for i, v := range values {
			reported := slices.ContainsFunc(rec.Data, func(d *storage.GrantDataRecord) bool {
				return d.Name == v.Name && slices.Equal(d.Sealed, v.Sealed)
			})
			switch err := errs[i]; {
			case err == nil && !reported:
				t.Errorf("round %d: value %s was stored, but RevokeGrant did not return it", round, v.Name)
			case errors.Is(err, storage.ErrNotFound) && reported:
				t.Errorf("round %d: value %s was refused, but RevokeGrant returned it", round, v.Name)
			case err != nil && !errors.Is(err, storage.ErrNotFound):
				t.Errorf("round %d: PutGrantData racing RevokeGrant: %v, want nil or %v", round, err, storage.ErrNotFound)
			}
			f.grantDataGone(is.grant.ID, v.Name, base)
		}
	}
}

// testDataDelete: DeleteGrantData deletes one value, initial or not, and
// deleting an absent value, or a value of an unknown or revoked grant, is
// not an error.
func testDataDelete(t *testing.T, f *fixture) {
	c := f.createClient(base, time.Time{})
	is := f.issue(c.ID, base, base.Add(time.Hour), "initial")
	a := f.put(is.grant.ID, "a", time.Time{}, base)
	b := f.put(is.grant.ID, "b", time.Time{}, base)
	f.must(f.s.DeleteGrantData(f.ctx, is.grant.ID, "a"), "DeleteGrantData")
	f.grantDataGone(is.grant.ID, a.Name, base)
	_, got := f.grantData(is.grant.ID, b.Name, base)
	checkEqual(t, "the other value", got, b)
	f.must(f.s.DeleteGrantData(f.ctx, is.grant.ID, "initial"), "DeleteGrantData of an initial value")
	f.grantDataGone(is.grant.ID, "initial", base)
	f.must(f.s.DeleteGrantData(f.ctx, is.grant.ID, "a"), "DeleteGrantData of a deleted value")
	f.must(f.s.DeleteGrantData(f.ctx, is.grant.ID, "never-stored"), "DeleteGrantData of an absent value")
	f.must(f.s.DeleteGrantData(f.ctx, "no-such-grant", "a"), "DeleteGrantData of an unknown grant")
	f.must(errOf(f.s.RevokeGrant(f.ctx, is.grant.ID, base)), "RevokeGrant")
	f.must(f.s.DeleteGrantData(f.ctx, is.grant.ID, "b"), "DeleteGrantData of a revoked grant's value")
}
