package storetest

import (
	"errors"
	"testing"
	"time"

	"github.com/mcp-oauth/oauth/storage"
)

var refreshTests = []test{
	{"GetAbsent", testRefreshGetAbsent},
	{"Expiry", testRefreshExpiry},
	{"CopiesOut", testRefreshCopies},
	{"Rotate", testRefreshRotate},
	{"RotateWrongExpectedSuccessor", testRefreshWrongExpected},
	{"RotateRetry", testRefreshRetry},
	{"RotateSpent", testRefreshSpent},
	{"RotateExpired", testRefreshRotateExpired},
	{"RotateAbsent", testRefreshRotateAbsent},
	{"RotateRevokedGrant", testRefreshRotateRevokedGrant},
	{"RotateAfterRevokeGrant", testRefreshRotateAfterRevokeGrant},
	{"RotateConcurrent", testRefreshRotateConcurrent},
	{"RotateRacesRevokeGrant", testRefreshRotateRacesRevoke},
}

// chain is a grant with a redeemed code and its first refresh token.
type chain struct {
	issued
	r0 *storage.RefreshRecord
}

// refreshTTL is how long the refresh tokens of newChain live.
const refreshTTL = 24 * time.Hour

// newChain issues a grant of a new client and redeems its code at base+1m
// for a token expiring at base+refreshTTL.
func (f *fixture) newChain() chain {
	f.t.Helper()
	c := f.createClient(base, time.Time{})
	is := f.issue(c.ID, base, base.Add(10*time.Minute))
	return chain{issued: is, r0: f.redeem(is, base.Add(time.Minute), base.Add(refreshTTL))}
}

// next returns an unstored successor of parent in ch.
func (ch chain) next(parent *storage.RefreshRecord, at time.Time) *storage.RefreshRecord {
	return newRefresh(ch.grant, parent.Hash, at, at.Add(refreshTTL))
}

// testRefreshGetAbsent: GetRefreshToken of an unknown hash is ErrNotFound.
func testRefreshGetAbsent(t *testing.T, f *fixture) {
	f.newChain()
	f.refreshGone(newHash(), base)
}

// testRefreshExpiry: GetRefreshToken never returns a token whose expiry is
// at or before now, spent or not.
func testRefreshExpiry(t *testing.T, f *fixture) {
	ch := f.newChain()
	exp := ch.r0.ExpiresAt
	spent := f.newChain()
	r1 := f.rotate(spent.grant, spent.r0, "", base.Add(2*time.Minute), exp)
	f.rotate(spent.grant, r1, "", base.Add(3*time.Minute), exp) // spends spent.r0
	if !f.refresh(spent.r0.Hash, base.Add(3*time.Minute)).Spent {
		t.Fatal("setup: parent not spent after its successor was rotated")
	}
	for _, tc := range []struct {
		name string
		now  time.Time
		live bool
	}{
		{"AtIssue", base.Add(time.Minute), true},
		{"MillisecondBeforeExpiry", exp.Add(-time.Millisecond), true},
		{"AtExpiry", exp, false},
		{"AfterExpiry", exp.Add(time.Hour), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := f.sub(t)
			for _, h := range []string{ch.r0.Hash, spent.r0.Hash} {
				_, err := f.s.GetRefreshToken(f.ctx, h, tc.now)
				if tc.live && err != nil {
					t.Errorf("GetRefreshToken of a live token at %s: %v", fmtTime(tc.now), err)
				}
				if !tc.live {
					wantErr(t, err, storage.ErrNotFound, "GetRefreshToken of an expired token at %s", fmtTime(tc.now))
				}
			}
		})
	}
}

// testRefreshCopies: a returned token does not alias stored state.
func testRefreshCopies(t *testing.T, f *fixture) {
	ch := f.newChain()
	want := clone(ch.r0)
	got := f.refresh(ch.r0.Hash, base.Add(time.Minute))
	if scribble(got) == 0 {
		t.Fatal("fixture token has no slice elements to scribble on")
	}
	checkEqual(t, "GetRefreshToken after the caller changed a returned token", f.refresh(ch.r0.Hash, base.Add(time.Minute)), want)
}

// testRefreshRotate: rotation sets old.Successor, stores next with every
// field, and marks old's Parent (and only it) spent once old is used.
func testRefreshRotate(t *testing.T, f *fixture) {
	ch := f.newChain()
	at1 := base.Add(2*time.Minute + fine)
	r1 := ch.next(ch.r0, at1)
	want1 := clone(r1)
	f.must(f.s.RotateRefreshToken(f.ctx, ch.r0.Hash, "", r1, at1), "RotateRefreshToken(r0)")

	got0 := f.refresh(ch.r0.Hash, at1)
	if got0.Successor != r1.Hash {
		t.Errorf("r0.Successor = %q, want r1 %q", got0.Successor, r1.Hash)
	}
	if got0.Spent {
		t.Error("r0 spent by its own rotation; it must stay usable until r1 is used")
	}
	want0 := clone(ch.r0)
	want0.Successor = r1.Hash
	checkEqual(t, "r0 after rotation", got0, want0)
	checkEqual(t, "r1 as stored by rotation", f.refresh(r1.Hash, at1), want1)
	scribble(r1)
	checkEqual(t, "r1 after the caller changed its record", f.refresh(want1.Hash, at1), want1)

	at2 := base.Add(3 * time.Minute)
	r2 := ch.next(want1, at2)
	f.must(f.s.RotateRefreshToken(f.ctx, want1.Hash, "", r2, at2), "RotateRefreshToken(r1)")
	if got := f.refresh(ch.r0.Hash, at2); !got.Spent {
		t.Error("r0 (r1's Parent) not spent after r1 was rotated")
	}
	got1 := f.refresh(want1.Hash, at2)
	if got1.Spent || got1.Successor != r2.Hash {
		t.Errorf("r1 after its rotation: Spent = %v, Successor = %q; want false, %q", got1.Spent, got1.Successor, r2.Hash)
	}
	got2 := f.refresh(r2.Hash, at2)
	if got2.Spent || got2.Successor != "" || got2.Parent != want1.Hash {
		t.Errorf("r2: Spent = %v, Successor = %q, Parent = %q; want false, empty, %q", got2.Spent, got2.Successor, got2.Parent, want1.Hash)
	}
}

// testRefreshWrongExpectedSuccessor: rotation fails with ErrConflict when
// old.Successor is not expectedSuccessor, and changes nothing.
func testRefreshWrongExpected(t *testing.T, f *fixture) {
	for _, tc := range []struct {
		name string
		// setup rotates ch.r0 as needed and returns the expected successor
		// to present.
		setup func(f *fixture, ch chain) string
	}{
		{"UnknownOnFreshToken", func(f *fixture, ch chain) string { return newHash() }},
		{"EmptyAfterRotation", func(f *fixture, ch chain) string {
			f.rotate(ch.grant, ch.r0, "", base.Add(2*time.Minute), base.Add(refreshTTL))
			return ""
		}},
		{"SupersededSuccessor", func(f *fixture, ch chain) string {
			r1 := f.rotate(ch.grant, ch.r0, "", base.Add(2*time.Minute), base.Add(refreshTTL))
			f.rotate(ch.grant, ch.r0, r1.Hash, base.Add(3*time.Minute), base.Add(refreshTTL))
			return r1.Hash
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := f.sub(t)
			ch := f.newChain()
			expected := tc.setup(f, ch)
			at := base.Add(5 * time.Minute)
			before := f.refresh(ch.r0.Hash, at)
			next := ch.next(ch.r0, at)
			wantErr(t, f.s.RotateRefreshToken(f.ctx, ch.r0.Hash, expected, next, at), storage.ErrConflict,
				"RotateRefreshToken with the wrong expectedSuccessor")
			f.refreshGone(next.Hash, at)
			checkEqual(t, "old token after the failed rotation", f.refresh(ch.r0.Hash, at), before)
		})
	}
}

// testRefreshRetry: presenting old again with expectedSuccessor = its
// current successor (the client lost the response) succeeds, supersedes
// that successor (spent) and points old at the new one.
func testRefreshRetry(t *testing.T, f *fixture) {
	ch := f.newChain()
	r1 := f.rotate(ch.grant, ch.r0, "", base.Add(2*time.Minute), base.Add(refreshTTL))
	at := base.Add(3 * time.Minute)
	r2 := ch.next(ch.r0, at)
	f.must(f.s.RotateRefreshToken(f.ctx, ch.r0.Hash, r1.Hash, r2, at), "retry RotateRefreshToken(r0, r1)")

	got0 := f.refresh(ch.r0.Hash, at)
	if got0.Successor != r2.Hash || got0.Spent {
		t.Errorf("r0 after retry: Successor = %q, Spent = %v; want r2 %q, false", got0.Successor, got0.Spent, r2.Hash)
	}
	if !f.refresh(r1.Hash, at).Spent {
		t.Error("superseded successor r1 not spent after the retry")
	}
	checkEqual(t, "r2", f.refresh(r2.Hash, at), r2)

	// The superseded successor can no longer rotate.
	wantErr(t, f.s.RotateRefreshToken(f.ctx, r1.Hash, "", ch.next(r1, at), at), storage.ErrConflict, "RotateRefreshToken of the superseded r1")
	// Using r2 spends r0 for good.
	f.rotate(ch.grant, r2, "", base.Add(4*time.Minute), base.Add(refreshTTL))
	if !f.refresh(ch.r0.Hash, at).Spent {
		t.Error("r0 not spent after its successor r2 was used")
	}
}

// testRefreshSpent: a spent token cannot rotate, whatever successor is
// expected.
func testRefreshSpent(t *testing.T, f *fixture) {
	ch := f.newChain()
	r1 := f.rotate(ch.grant, ch.r0, "", base.Add(2*time.Minute), base.Add(refreshTTL))
	f.rotate(ch.grant, r1, "", base.Add(3*time.Minute), base.Add(refreshTTL)) // spends r0
	at := base.Add(4 * time.Minute)
	before := f.refresh(ch.r0.Hash, at)
	if !before.Spent {
		t.Fatal("setup: r0 not spent")
	}
	for _, expected := range []string{"", r1.Hash} {
		next := ch.next(ch.r0, at)
		wantErr(t, f.s.RotateRefreshToken(f.ctx, ch.r0.Hash, expected, next, at), storage.ErrConflict,
			"RotateRefreshToken of a spent token, expecting %q", expected)
		f.refreshGone(next.Hash, at)
	}
	checkEqual(t, "spent token after failed rotations", f.refresh(ch.r0.Hash, at), before)
}

// testRefreshRotateExpired: an expired token cannot rotate: ErrNotFound.
func testRefreshRotateExpired(t *testing.T, f *fixture) {
	for _, tc := range []struct {
		name  string
		after time.Duration
	}{
		{"AtExpiry", 0},
		{"AfterExpiry", time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := f.sub(t)
			ch := f.newChain()
			at := ch.r0.ExpiresAt.Add(tc.after)
			next := ch.next(ch.r0, at)
			wantErr(t, f.s.RotateRefreshToken(f.ctx, ch.r0.Hash, "", next, at), storage.ErrNotFound, "RotateRefreshToken of an expired token")
			f.refreshGone(next.Hash, base)
			if got := f.refresh(ch.r0.Hash, base.Add(time.Minute)); got.Successor != "" {
				t.Errorf("failed rotation set Successor = %q", got.Successor)
			}
		})
	}
}

// testRefreshRotateAbsent: rotating an unknown token is ErrNotFound and
// stores nothing.
func testRefreshRotateAbsent(t *testing.T, f *fixture) {
	ch := f.newChain()
	at := base.Add(2 * time.Minute)
	next := newRefresh(ch.grant, "", at, at.Add(time.Hour))
	wantErr(t, f.s.RotateRefreshToken(f.ctx, newHash(), "", next, at), storage.ErrNotFound, "RotateRefreshToken of an unknown token")
	f.refreshGone(next.Hash, at)
}

// testRefreshRotateRevokedGrant: a live token whose grant is revoked cannot
// rotate: ErrConflict. RevokeGrant deletes tokens, so the test reaches that
// state by redeeming another grant's code for a token of the revoked grant.
func testRefreshRotateRevokedGrant(t *testing.T, f *fixture) {
	c := f.createClient(base, time.Time{})
	revoked := f.issue(c.ID, base, base.Add(10*time.Minute))
	f.must(errOf(f.s.RevokeGrant(f.ctx, revoked.grant.ID, base)), "RevokeGrant")
	carrier := f.issue(c.ID, base, base.Add(10*time.Minute))
	rt := newRefresh(revoked.grant, "", base.Add(time.Minute), base.Add(refreshTTL))
	if err := f.s.RedeemCode(f.ctx, carrier.code.Hash, base.Add(time.Minute), rt); err != nil {
		t.Fatalf("setup: RedeemCode of an active grant's code for a token of a revoked grant: %v", err)
	}
	at := base.Add(2 * time.Minute)
	before := f.refresh(rt.Hash, at)
	next := newRefresh(revoked.grant, rt.Hash, at, at.Add(refreshTTL))
	wantErr(t, f.s.RotateRefreshToken(f.ctx, rt.Hash, "", next, at), storage.ErrConflict, "RotateRefreshToken of a token whose grant is revoked")
	f.refreshGone(next.Hash, at)
	checkEqual(t, "token after the failed rotation", f.refresh(rt.Hash, at), before)
}

// testRefreshRotateAfterRevokeGrant: RevokeGrant deletes the grant's
// tokens, so rotating one afterwards finds no token (ErrNotFound).
func testRefreshRotateAfterRevokeGrant(t *testing.T, f *fixture) {
	ch := f.newChain()
	f.must(errOf(f.s.RevokeGrant(f.ctx, ch.grant.ID, base.Add(2*time.Minute))), "RevokeGrant")
	at := base.Add(3 * time.Minute)
	next := ch.next(ch.r0, at)
	wantErr(t, f.s.RotateRefreshToken(f.ctx, ch.r0.Hash, "", next, at), storage.ErrNotFound, "RotateRefreshToken after RevokeGrant")
	f.refreshGone(next.Hash, at)
}

// testRefreshRotateConcurrent: of 100 concurrent rotations of one token
// with the same expectedSuccessor exactly one succeeds, the others get
// ErrConflict, and only the winner's successor is stored.
func testRefreshRotateConcurrent(t *testing.T, f *fixture) {
	for _, tc := range []struct {
		name string
		// setup returns the expected successor all callers present.
		setup func(f *fixture, ch chain) string
	}{
		{"FirstRotation", func(*fixture, chain) string { return "" }},
		{"Retry", func(f *fixture, ch chain) string {
			return f.rotate(ch.grant, ch.r0, "", base.Add(2*time.Minute), base.Add(refreshTTL)).Hash
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := f.sub(t)
			ch := f.newChain()
			expected := tc.setup(f, ch)
			at := base.Add(5 * time.Minute)
			nexts := make([]*storage.RefreshRecord, concurrency)
			for i := range nexts {
				nexts[i] = ch.next(ch.r0, at)
			}
			errs := race(concurrency, func(i int) error {
				return f.s.RotateRefreshToken(f.ctx, ch.r0.Hash, expected, nexts[i], at)
			})
			winner := oneWinner(t, "RotateRefreshToken", errs)
			stored := 0
			for i, n := range nexts {
				_, err := f.s.GetRefreshToken(f.ctx, n.Hash, at)
				switch {
				case err == nil:
					stored++
					if winner >= 0 && i != winner {
						t.Errorf("successor of losing rotation #%d was stored", i)
					}
				case !errors.Is(err, storage.ErrNotFound):
					t.Errorf("GetRefreshToken: %v", err)
				}
			}
			if stored != 1 {
				t.Errorf("%d successors stored by concurrent rotations, want 1", stored)
			}
			if winner >= 0 {
				if got := f.refresh(ch.r0.Hash, at).Successor; got != nexts[winner].Hash {
					t.Errorf("old.Successor = %q, want the winner's %q", got, nexts[winner].Hash)
				}
			}
			if expected != "" && !f.refresh(expected, at).Spent {
				t.Error("superseded successor not spent")
			}
		})
	}
}

// testRefreshRotateRacesRevoke: RotateRefreshToken racing RevokeGrant leaves
// no token of the grant behind, whichever goes first.
func testRefreshRotateRacesRevoke(t *testing.T, f *fixture) {
	for round := range 20 {
		ch := f.newChain()
		at := base.Add(2 * time.Minute)
		next := ch.next(ch.r0, at)
		errs := race(2, func(i int) error {
			if i == 0 {
				return f.s.RotateRefreshToken(f.ctx, ch.r0.Hash, "", next, at)
			}
			return errOf(f.s.RevokeGrant(f.ctx, ch.grant.ID, at))
		})
		if err := errs[0]; err != nil && !errors.Is(err, storage.ErrConflict) && !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("round %d: RotateRefreshToken racing RevokeGrant: %v", round, err)
		}
		if errs[1] != nil {
			t.Errorf("round %d: RevokeGrant racing RotateRefreshToken: %v", round, errs[1])
		}
		f.refreshGone(ch.r0.Hash, at)
		f.refreshGone(next.Hash, at)
		if f.grant(ch.grant.ID).RevokedAt.IsZero() {
			t.Errorf("round %d: grant not revoked", round)
		}
	}
}
