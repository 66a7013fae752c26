package storetest

import (
	"errors"
	"testing"
	"time"

	oauth "github.com/mcp-oauth/oauth"
	"github.com/mcp-oauth/oauth/storage"
)

var codeTests = []test{
	{"RoundTrip", testCodeRoundTrip},
	{"PlaintextNotKept", testCodePlaintextNotKept},
	{"CopiesInAndOut", testCodeCopies},
	{"GetAbsent", testCodeGetAbsent},
	{"Expiry", testCodeExpiry},
	{"Redeem", testCodeRedeem},
	{"RedeemTwice", testCodeRedeemTwice},
	{"RedeemExpired", testCodeRedeemExpired},
	{"RedeemAbsent", testCodeRedeemAbsent},
	{"RedeemRevokedGrant", testCodeRedeemRevokedGrant},
	{"RedeemAfterRevokeGrant", testCodeRedeemAfterRevokeGrant},
	{"RedeemConcurrent", testCodeRedeemConcurrent},
	{"RedeemRacesRevokeGrant", testCodeRedeemRacesRevoke},
}

// testCodeRoundTrip: GetCode returns every field of the code that
// CompletePending stored, unredeemed.
func testCodeRoundTrip(t *testing.T, f *fixture) {
	c := f.createClient(base, time.Time{})
	p := f.createPending(c.ID, base, base.Add(pendingTTL))
	f.must(f.s.DecidePending(f.ctx, p.ID, oauth.PendingApproved, "alice", nil, base), "DecidePending")
	g, code := f.newGrantAndCode(p, "alice", base, base.Add(10*time.Minute+fine))
	checkAllSet(t, "code", code, "Code", "ConsumedAt")
	want := clone(code)
	f.must(f.s.CompletePending(f.ctx, p.ID, g, code, base), "CompletePending")
	got := f.code(want.Hash, base)
	checkEqual(t, "GetCode", got, want)
	if !got.ConsumedAt.IsZero() {
		t.Errorf("ConsumedAt of an unredeemed code = %s, want zero", fmtTime(got.ConsumedAt))
	}
}

// testCodePlaintextNotKept: "Code (the plaintext) is empty" in a stored
// CodeRecord, even if a caller filled it in.
func testCodePlaintextNotKept(t *testing.T, f *fixture) {
	c := f.createClient(base, time.Time{})
	p := f.createPending(c.ID, base, base.Add(pendingTTL))
	f.must(f.s.DecidePending(f.ctx, p.ID, oauth.PendingApproved, "alice", nil, base), "DecidePending")
	g, code := f.newGrantAndCode(p, "alice", base, base.Add(10*time.Minute))
	code.Code = "mcp_code_plaintext-must-not-be-stored"
	f.must(f.s.CompletePending(f.ctx, p.ID, g, code, base), "CompletePending")
	if got := f.code(code.Hash, base); got.Code != "" {
		t.Errorf("GetCode returned Code = %q, want empty", got.Code)
	}
}

// testCodeCopies: neither the caller's code nor a returned code aliases
// stored state.
func testCodeCopies(t *testing.T, f *fixture) {
	c := f.createClient(base, time.Time{})
	p := f.createPending(c.ID, base, base.Add(pendingTTL))
	f.must(f.s.DecidePending(f.ctx, p.ID, oauth.PendingApproved, "alice", nil, base), "DecidePending")
	g, code := f.newGrantAndCode(p, "alice", base, base.Add(10*time.Minute))
	want := clone(code)
	f.must(f.s.CompletePending(f.ctx, p.ID, g, code, base), "CompletePending")
	if scribble(code) == 0 {
		t.Fatal("fixture code has no slice elements to scribble on")
	}
	got := f.code(want.Hash, base)
	checkEqual(t, "GetCode after the caller changed its code", got, want)
	scribble(got)
	checkEqual(t, "GetCode after the caller changed a returned code", f.code(want.Hash, base), want)
}

// testCodeGetAbsent: GetCode of an unknown hash is ErrNotFound.
func testCodeGetAbsent(t *testing.T, f *fixture) {
	c := f.createClient(base, time.Time{})
	f.issue(c.ID, base, base.Add(time.Hour))
	f.codeGone(newHash(), base)
}

// testCodeExpiry: GetCode never returns a code whose expiry is at or
// before now, redeemed or not.
func testCodeExpiry(t *testing.T, f *fixture) {
	c := f.createClient(base, time.Time{})
	exp := base.Add(10 * time.Minute)
	fresh := f.issue(c.ID, base, exp)
	redeemed := f.issue(c.ID, base, exp)
	f.redeem(redeemed, base.Add(time.Minute), base.Add(time.Hour))
	for _, tc := range []struct {
		name string
		now  time.Time
		live bool
	}{
		{"AtIssue", base, true},
		{"MillisecondBeforeExpiry", exp.Add(-time.Millisecond), true},
		{"AtExpiry", exp, false},
		{"AfterExpiry", exp.Add(time.Hour), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := f.sub(t)
			for _, is := range []issued{fresh, redeemed} {
				_, err := f.s.GetCode(f.ctx, is.code.Hash, tc.now)
				if tc.live && err != nil {
					t.Errorf("GetCode of a live code at %s: %v", fmtTime(tc.now), err)
				}
				if !tc.live {
					wantErr(t, err, storage.ErrNotFound, "GetCode of an expired code at %s", fmtTime(tc.now))
				}
			}
		})
	}
}

// testCodeRedeem: RedeemCode marks the code consumed at now (GetCode still
// returns it) and stores the refresh token with every field.
func testCodeRedeem(t *testing.T, f *fixture) {
	c := f.createClient(base, time.Time{})
	is := f.issue(c.ID, base, base.Add(10*time.Minute))
	other := f.issue(c.ID, base, base.Add(10*time.Minute))
	at := base.Add(time.Minute + fine)
	rt := newRefresh(is.grant, "", at, base.Add(24*time.Hour+fine))
	checkAllSet(t, "refresh token", rt, "Parent", "Successor", "Spent")
	want := clone(rt)
	f.must(f.s.RedeemCode(f.ctx, is.code.Hash, at, rt), "RedeemCode")

	got := f.code(is.code.Hash, base.Add(2*time.Minute))
	checkTime(t, "ConsumedAt", got.ConsumedAt, at)
	wantCode := clone(is.code)
	wantCode.ConsumedAt = at
	checkEqual(t, "GetCode of the redeemed code", got, wantCode)
	stored := f.refresh(want.Hash, at)
	checkEqual(t, "GetRefreshToken of the token RedeemCode stored", stored, want)
	if stored.Spent || stored.Successor != "" {
		t.Errorf("new refresh token: Spent = %v, Successor = %q; want false, empty", stored.Spent, stored.Successor)
	}
	if !f.code(other.code.Hash, base).ConsumedAt.IsZero() {
		t.Error("RedeemCode consumed another code")
	}
	scribble(rt)
	checkEqual(t, "GetRefreshToken after the caller changed its token", f.refresh(want.Hash, at), want)
}

// testCodeRedeemTwice: a redeemed code cannot be redeemed again.
func testCodeRedeemTwice(t *testing.T, f *fixture) {
	c := f.createClient(base, time.Time{})
	is := f.issue(c.ID, base, base.Add(10*time.Minute))
	first := base.Add(time.Minute)
	rt1 := f.redeem(is, first, base.Add(time.Hour))
	rt2 := newRefresh(is.grant, "", base.Add(2*time.Minute), base.Add(time.Hour))
	wantErr(t, f.s.RedeemCode(f.ctx, is.code.Hash, base.Add(2*time.Minute), rt2), storage.ErrConflict, "second RedeemCode")
	f.refreshGone(rt2.Hash, base.Add(2*time.Minute))
	checkTime(t, "ConsumedAt after a second redemption", f.code(is.code.Hash, base).ConsumedAt, first)
	checkEqual(t, "first refresh token after a second redemption", f.refresh(rt1.Hash, first), rt1)
}

// testCodeRedeemExpired: an expired code cannot be redeemed: ErrNotFound,
// nothing consumed, no refresh token stored.
func testCodeRedeemExpired(t *testing.T, f *fixture) {
	c := f.createClient(base, time.Time{})
	exp := base.Add(10 * time.Minute)
	for _, tc := range []struct {
		name string
		now  time.Time
	}{
		{"AtExpiry", exp},
		{"AfterExpiry", exp.Add(time.Second)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := f.sub(t)
			is := f.issue(c.ID, base, exp)
			rt := newRefresh(is.grant, "", tc.now, tc.now.Add(time.Hour))
			wantErr(t, f.s.RedeemCode(f.ctx, is.code.Hash, tc.now, rt), storage.ErrNotFound, "RedeemCode of an expired code")
			f.refreshGone(rt.Hash, base)
			if got := f.code(is.code.Hash, base); !got.ConsumedAt.IsZero() {
				t.Errorf("failed RedeemCode consumed the code at %s", fmtTime(got.ConsumedAt))
			}
		})
	}
}

// testCodeRedeemAbsent: redeeming an unknown code is ErrNotFound and stores
// nothing.
func testCodeRedeemAbsent(t *testing.T, f *fixture) {
	c := f.createClient(base, time.Time{})
	is := f.issue(c.ID, base, base.Add(10*time.Minute))
	rt := newRefresh(is.grant, "", base, base.Add(time.Hour))
	wantErr(t, f.s.RedeemCode(f.ctx, newHash(), base, rt), storage.ErrNotFound, "RedeemCode of an unknown code")
	f.refreshGone(rt.Hash, base)
}

// testCodeRedeemRevokedGrant: a live code whose grant is revoked gets
// ErrConflict. RevokeGrant deletes codes, so the test reaches that state by
// completing a request with a grant that is already revoked.
func testCodeRedeemRevokedGrant(t *testing.T, f *fixture) {
	c := f.createClient(base, time.Time{})
	p := f.createPending(c.ID, base, base.Add(pendingTTL))
	f.must(f.s.DecidePending(f.ctx, p.ID, oauth.PendingApproved, "alice", nil, base), "DecidePending")
	g, code := f.newGrantAndCode(p, "alice", base, base.Add(10*time.Minute))
	g.RevokedAt = base
	f.must(f.s.CompletePending(f.ctx, p.ID, g, code, base), "CompletePending with a revoked grant")
	if got := f.grant(g.ID); got.RevokedAt.IsZero() {
		t.Fatal("CompletePending did not store the grant's RevokedAt")
	}
	f.code(code.Hash, base) // the code is live

	rt := newRefresh(&g.Grant, "", base.Add(time.Minute), base.Add(time.Hour))
	wantErr(t, f.s.RedeemCode(f.ctx, code.Hash, base.Add(time.Minute), rt), storage.ErrConflict, "RedeemCode of a code whose grant is revoked")
	f.refreshGone(rt.Hash, base)
}

// testCodeRedeemAfterRevokeGrant: RevokeGrant deletes the grant's codes, so
// redeeming one afterwards finds no code (ErrNotFound) and stores nothing.
func testCodeRedeemAfterRevokeGrant(t *testing.T, f *fixture) {
	c := f.createClient(base, time.Time{})
	is := f.issue(c.ID, base, base.Add(10*time.Minute))
	f.must(errOf(f.s.RevokeGrant(f.ctx, is.grant.ID, base.Add(time.Minute))), "RevokeGrant")
	rt := newRefresh(is.grant, "", base.Add(2*time.Minute), base.Add(time.Hour))
	wantErr(t, f.s.RedeemCode(f.ctx, is.code.Hash, base.Add(2*time.Minute), rt), storage.ErrNotFound, "RedeemCode after RevokeGrant")
	f.refreshGone(rt.Hash, base)
}

// testCodeRedeemConcurrent: of 100 concurrent redemptions of one code
// exactly one succeeds, the others get ErrConflict, and only the winner's
// refresh token is stored.
func testCodeRedeemConcurrent(t *testing.T, f *fixture) {
	c := f.createClient(base, time.Time{})
	is := f.issue(c.ID, base, base.Add(10*time.Minute))
	at := base.Add(time.Minute)
	rts := make([]*storage.RefreshRecord, concurrency)
	for i := range rts {
		rts[i] = newRefresh(is.grant, "", at, base.Add(time.Hour))
	}
	errs := race(concurrency, func(i int) error {
		return f.s.RedeemCode(f.ctx, is.code.Hash, at, rts[i])
	})
	winner := oneWinner(t, "RedeemCode", errs)
	stored := 0
	for i, rt := range rts {
		_, err := f.s.GetRefreshToken(f.ctx, rt.Hash, at)
		switch {
		case err == nil:
			stored++
			if winner >= 0 && i != winner {
				t.Errorf("refresh token of losing redemption #%d was stored", i)
			}
		case !errors.Is(err, storage.ErrNotFound):
			t.Errorf("GetRefreshToken: %v", err)
		}
	}
	if stored != 1 {
		t.Errorf("%d refresh tokens stored by concurrent redemptions, want 1", stored)
	}
	checkTime(t, "ConsumedAt", f.code(is.code.Hash, at).ConsumedAt, at)
}

// testCodeRedeemRacesRevoke: RedeemCode racing RevokeGrant leaves no refresh
// token behind, whichever goes first: either the revocation deletes it, or
// the redemption sees the revoked grant or the deleted code.
func testCodeRedeemRacesRevoke(t *testing.T, f *fixture) {
	c := f.createClient(base, time.Time{})
	for round := range 20 {
		is := f.issue(c.ID, base, base.Add(10*time.Minute))
		at := base.Add(time.Minute)
		rt := newRefresh(is.grant, "", at, base.Add(time.Hour))
		errs := race(2, func(i int) error {
			if i == 0 {
				return f.s.RedeemCode(f.ctx, is.code.Hash, at, rt)
			}
			return errOf(f.s.RevokeGrant(f.ctx, is.grant.ID, at))
		})
		if err := errs[0]; err != nil && !errors.Is(err, storage.ErrConflict) && !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("round %d: RedeemCode racing RevokeGrant: %v", round, err)
		}
		if errs[1] != nil {
			t.Errorf("round %d: RevokeGrant racing RedeemCode: %v", round, errs[1])
		}
		f.refreshGone(rt.Hash, at)
		f.codeGone(is.code.Hash, at)
		if f.grant(is.grant.ID).RevokedAt.IsZero() {
			t.Errorf("round %d: grant not revoked", round)
		}
	}
}
