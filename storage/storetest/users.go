package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/mcp-oauth/oauth/storage"
)

// RunAccounts runs the conformance suite of storage.AccountStore (the
// console's users and sessions) as subtests of t, as Run does for a Store.
// newStore must return a new, empty store each time it is called. When the
// store also has storage.Store's Sweep, the suite checks that it deletes
// expired sessions.
func RunAccounts(t *testing.T, newStore func(t *testing.T) storage.AccountStore) {
	t.Helper()
	for _, g := range []struct {
		name  string
		tests []test
	}{{"Users", userTests}, {"Sessions", sessionTests}} {
		t.Run(g.name, func(t *testing.T) {
			for _, tc := range g.tests {
				t.Run(tc.name, func(t *testing.T) {
					s := newStore(t)
					if s == nil {
						t.Fatal("newStore returned nil")
					}
					tc.run(t, &fixture{t: t, a: s, ctx: t.Context()})
				})
			}
		})
	}
}

var userTests = []test{
	{"RoundTrip", testUserRoundTrip},
	{"Duplicate", testUserDuplicate},
	{"ListOrderIsByCreatedAt", testUserListOrder},
	{"SetPasswordClearsLockout", testUserSetPassword},
	{"SetPasswordEndsSessions", testUserSetPasswordSessions},
	{"RecordSignIn", testUserRecordSignIn},
	{"RecordSignInComparesCount", testUserRecordSignInCAS},
	{"AbsentUser", testUserAbsent},
	{"DeleteRemovesSessions", testUserDelete},
}

var sessionTests = []test{
	{"RoundTrip", testSessionRoundTrip},
	{"Expiry", testSessionExpiry},
	{"Touch", testSessionTouch},
	{"Delete", testSessionDelete},
	{"Duplicate", testSessionDuplicate},
	{"Sweep", testSessionSweep},
}

func userName(u *storage.UserRecord) string { return u.Name }

func (f *fixture) newUser(at time.Time) *storage.UserRecord {
	return &storage.UserRecord{Name: f.id("user"), PasswordHash: "$2a$10$" + randomHex(26), CreatedAt: at,
		Failures: 2, LockedUntil: at.Add(time.Minute + fine)}
}

func (f *fixture) createUser(at time.Time) *storage.UserRecord {
	f.t.Helper()
	u := f.newUser(at)
	f.must(f.a.CreateUser(f.ctx, u), "CreateUser")
	return u
}

func (f *fixture) user(name string) *storage.UserRecord {
	f.t.Helper()
	u, err := f.a.GetUser(f.ctx, name)
	f.must(err, "GetUser(%s)", name)
	return u
}

func (f *fixture) newSession(user string, at time.Time) *storage.SessionRecord {
	return &storage.SessionRecord{Hash: newHash(), User: user, CreatedAt: at.Add(fine),
		IdleExpiresAt: at.Add(30 * time.Minute), ExpiresAt: at.Add(12 * time.Hour)}
}

// testUserRoundTrip: GetUser and ListUsers return every field stored.
func testUserRoundTrip(t *testing.T, f *fixture) {
	u := f.newUser(base.Add(fine))
	checkAllSet(t, "user", u)
	want := clone(u)
	f.must(f.a.CreateUser(f.ctx, u), "CreateUser")
	checkEqual(t, "GetUser", f.user(want.Name), want)
	list, err := f.a.ListUsers(f.ctx)
	f.must(err, "ListUsers")
	if checkIDs(t, "ListUsers", ids(list, userName), []string{want.Name}); len(list) == 1 {
		checkEqual(t, "listed user", list[0], want)
	}
}

// testUserDuplicate: a taken name is ErrConflict and the first user stays.
func testUserDuplicate(t *testing.T, f *fixture) {
	u := f.createUser(base)
	dup := f.newUser(base.Add(time.Hour))
	dup.Name = u.Name
	wantErr(t, f.a.CreateUser(f.ctx, dup), storage.ErrConflict, "CreateUser with a taken name")
	checkEqual(t, "the first user", f.user(u.Name), u)
}

// testUserListOrder: users are listed by CreatedAt.
func testUserListOrder(t *testing.T, f *fixture) {
	u2 := f.createUser(base.Add(2 * time.Second))
	u1 := f.createUser(base.Add(time.Second))
	list, err := f.a.ListUsers(f.ctx)
	f.must(err, "ListUsers")
	checkIDs(t, "ListUsers of users created out of order", ids(list, userName), []string{u1.Name, u2.Name})
}

// testUserSetPassword: SetPassword replaces the hash and clears Failures
// and LockedUntil, and nothing else.
func testUserSetPassword(t *testing.T, f *fixture) {
	u := f.createUser(base)
	f.must(f.a.SetPassword(f.ctx, u.Name, "$2a$10$new"), "SetPassword")
	want := clone(u)
	want.PasswordHash, want.Failures, want.LockedUntil = "$2a$10$new", 0, time.Time{}
	checkEqual(t, "user after SetPassword", f.user(u.Name), want)
}

// testUserSetPasswordSessions: SetPassword deletes the user's sessions,
// and only theirs.
func testUserSetPasswordSessions(t *testing.T, f *fixture) {
	u, other := f.createUser(base), f.createUser(base)
	mine, theirs := f.newSession(u.Name, base), f.newSession(other.Name, base)
	f.must(f.a.CreateSession(f.ctx, mine), "CreateSession")
	f.must(f.a.CreateSession(f.ctx, theirs), "CreateSession")
	f.must(f.a.SetPassword(f.ctx, u.Name, "$2a$10$new"), "SetPassword")
	_, err := f.a.GetSession(f.ctx, mine.Hash, base)
	wantErr(t, err, storage.ErrNotFound, "GetSession of a session from before the password change")
	if _, err := f.a.GetSession(f.ctx, theirs.Hash, base); err != nil {
		t.Errorf("another user's session after SetPassword: %v", err)
	}
}

// testUserRecordSignIn: RecordSignIn replaces Failures and LockedUntil.
func testUserRecordSignIn(t *testing.T, f *fixture) {
	u := f.createUser(base)
	until := base.Add(time.Hour + fine)
	f.must(f.a.RecordSignIn(f.ctx, u.Name, u.Failures, 7, until), "RecordSignIn")
	want := clone(u)
	want.Failures, want.LockedUntil = 7, until
	checkEqual(t, "user after a failure", f.user(u.Name), want)
	f.must(f.a.RecordSignIn(f.ctx, u.Name, 7, 0, time.Time{}), "RecordSignIn of a success")
	want.Failures, want.LockedUntil = 0, time.Time{}
	checkEqual(t, "user after a success", f.user(u.Name), want)
}

// testUserRecordSignInCAS: RecordSignIn with a stale count is ErrConflict
// and changes nothing, so that of two concurrent attempts that read the
// same count, one must read again; the same count written twice in a row
// works only once.
func testUserRecordSignInCAS(t *testing.T, f *fixture) {
	u := f.createUser(base) // Failures: 2
	want := clone(u)
	wantErr(t, f.a.RecordSignIn(f.ctx, u.Name, 5, 6, base.Add(time.Hour)), storage.ErrConflict, "RecordSignIn with a stale count")
	checkEqual(t, "user after a refused RecordSignIn", f.user(u.Name), want)
	f.must(f.a.RecordSignIn(f.ctx, u.Name, 2, 3, time.Time{}), "RecordSignIn 2→3")
	wantErr(t, f.a.RecordSignIn(f.ctx, u.Name, 2, 3, time.Time{}), storage.ErrConflict, "a second RecordSignIn 2→3")
	want.Failures, want.LockedUntil = 3, time.Time{}
	checkEqual(t, "user after one of two racing attempts", f.user(u.Name), want)
}

// testUserAbsent: every operation on an unknown user is ErrNotFound.
func testUserAbsent(t *testing.T, f *fixture) {
	_, err := f.a.GetUser(f.ctx, "nobody")
	wantErr(t, err, storage.ErrNotFound, "GetUser")
	wantErr(t, f.a.SetPassword(f.ctx, "nobody", "x"), storage.ErrNotFound, "SetPassword")
	wantErr(t, f.a.RecordSignIn(f.ctx, "nobody", 0, 1, base), storage.ErrNotFound, "RecordSignIn")
	wantErr(t, f.a.DeleteUser(f.ctx, "nobody"), storage.ErrNotFound, "DeleteUser")
}

// testUserDelete: DeleteUser removes the user and their sessions only.
func testUserDelete(t *testing.T, f *fixture) {
	u, other := f.createUser(base), f.createUser(base)
	s1, s2, so := f.newSession(u.Name, base), f.newSession(u.Name, base), f.newSession(other.Name, base)
	for _, s := range []*storage.SessionRecord{s1, s2, so} {
		f.must(f.a.CreateSession(f.ctx, s), "CreateSession")
	}
	f.must(f.a.DeleteUser(f.ctx, u.Name), "DeleteUser")
	_, err := f.a.GetUser(f.ctx, u.Name)
	wantErr(t, err, storage.ErrNotFound, "GetUser of a deleted user")
	for _, s := range []*storage.SessionRecord{s1, s2} {
		_, err := f.a.GetSession(f.ctx, s.Hash, base)
		wantErr(t, err, storage.ErrNotFound, "GetSession of a deleted user's session")
	}
	if _, err := f.a.GetSession(f.ctx, so.Hash, base); err != nil {
		t.Errorf("another user's session: %v", err)
	}
}

// testSessionRoundTrip: GetSession returns every field stored.
func testSessionRoundTrip(t *testing.T, f *fixture) {
	u := f.createUser(base)
	s := f.newSession(u.Name, base)
	checkAllSet(t, "session", s)
	want := clone(s)
	f.must(f.a.CreateSession(f.ctx, s), "CreateSession")
	got, err := f.a.GetSession(f.ctx, want.Hash, base.Add(time.Minute))
	f.must(err, "GetSession")
	checkEqual(t, "GetSession", got, want)
}

// testSessionExpiry: a session is unusable from its idle expiry or its
// absolute expiry, whichever comes first.
func testSessionExpiry(t *testing.T, f *fixture) {
	u := f.createUser(base)
	idle := f.newSession(u.Name, base) // idle 30 min, absolute 12 h
	abs := f.newSession(u.Name, base)
	abs.IdleExpiresAt, abs.ExpiresAt = base.Add(24*time.Hour), base.Add(time.Hour)
	for _, s := range []*storage.SessionRecord{idle, abs} {
		f.must(f.a.CreateSession(f.ctx, s), "CreateSession")
	}
	for _, c := range []struct {
		s    *storage.SessionRecord
		at   time.Time
		live bool
	}{
		{idle, base.Add(30*time.Minute - time.Millisecond), true},
		{idle, base.Add(30 * time.Minute), false},
		{abs, base.Add(time.Hour - time.Millisecond), true},
		{abs, base.Add(time.Hour), false},
	} {
		_, err := f.a.GetSession(f.ctx, c.s.Hash, c.at)
		if c.live && err != nil {
			t.Errorf("GetSession at %v: %v, want the session", c.at.Sub(base), err)
		}
		if !c.live {
			wantErr(t, err, storage.ErrNotFound, "GetSession at %v", c.at.Sub(base))
		}
	}
}

// testSessionTouch: TouchSession moves the idle expiry and nothing else.
func testSessionTouch(t *testing.T, f *fixture) {
	u := f.createUser(base)
	s := f.newSession(u.Name, base)
	f.must(f.a.CreateSession(f.ctx, s), "CreateSession")
	later := base.Add(2 * time.Hour)
	f.must(f.a.TouchSession(f.ctx, s.Hash, later), "TouchSession")
	got, err := f.a.GetSession(f.ctx, s.Hash, base.Add(time.Hour))
	f.must(err, "GetSession after the old idle expiry")
	want := clone(s)
	want.IdleExpiresAt = later
	checkEqual(t, "touched session", got, want)
	wantErr(t, f.a.TouchSession(f.ctx, newHash(), later), storage.ErrNotFound, "TouchSession of an unknown session")
}

// testSessionDelete: DeleteSession removes the session; deleting an absent
// one is not an error.
func testSessionDelete(t *testing.T, f *fixture) {
	u := f.createUser(base)
	s := f.newSession(u.Name, base)
	f.must(f.a.CreateSession(f.ctx, s), "CreateSession")
	f.must(f.a.DeleteSession(f.ctx, s.Hash), "DeleteSession")
	_, err := f.a.GetSession(f.ctx, s.Hash, base)
	wantErr(t, err, storage.ErrNotFound, "GetSession after DeleteSession")
	f.must(f.a.DeleteSession(f.ctx, s.Hash), "DeleteSession of an absent session")
}

// testSessionDuplicate: a taken hash is ErrConflict.
func testSessionDuplicate(t *testing.T, f *fixture) {
	u := f.createUser(base)
	s := f.newSession(u.Name, base)
	f.must(f.a.CreateSession(f.ctx, s), "CreateSession")
	wantErr(t, f.a.CreateSession(f.ctx, clone(s)), storage.ErrConflict, "CreateSession with a taken hash")
}

// testSessionSweep: Sweep deletes expired sessions (by either expiry),
// counts them, and keeps live ones.
func testSessionSweep(t *testing.T, f *fixture) {
	u := f.createUser(base)
	live := f.newSession(u.Name, base)
	idle := f.newSession(u.Name, base)
	idle.IdleExpiresAt = base.Add(time.Minute)
	abs := f.newSession(u.Name, base)
	abs.ExpiresAt = base.Add(time.Minute)
	for _, s := range []*storage.SessionRecord{live, idle, abs} {
		f.must(f.a.CreateSession(f.ctx, s), "CreateSession")
	}
	sw, ok := f.a.(interface {
		Sweep(ctx context.Context, now time.Time) (*storage.SweepResult, error)
	})
	if !ok {
		t.Skip("the AccountStore has no Sweep method (storage.Store's), so nothing here deletes expired sessions")
	}
	res, err := sw.Sweep(f.ctx, base.Add(2*time.Minute))
	f.must(err, "Sweep")
	if res == nil || res.Rows != 2 {
		t.Errorf("Sweep = %+v, want 2 rows (two expired sessions)", res)
	}
	if err := f.a.TouchSession(f.ctx, idle.Hash, base.Add(time.Hour)); err == nil {
		t.Error("the idle-expired session survived the sweep")
	}
	if _, err := f.a.GetSession(f.ctx, live.Hash, base.Add(2*time.Minute)); err != nil {
		t.Errorf("live session after Sweep: %v", err)
	}
}
