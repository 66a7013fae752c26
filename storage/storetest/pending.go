package storetest

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	oauth "github.com/mcp-oauth/oauth"
	"github.com/mcp-oauth/oauth/storage"
)

var pendingTests = []test{
	{"RoundTrip", testPendingRoundTrip},
	{"CopiesInAndOut", testPendingCopies},
	{"Duplicates", testPendingDuplicates},
	{"GetAbsent", testPendingGetAbsent},
	{"ByDeviceCode", testPendingByDeviceCode},
	{"Expiry", testPendingExpiry},
	{"Decide", testPendingDecide},
	{"DecideTwice", testPendingDecideTwice},
	{"DecideAbsentOrExpired", testPendingDecideAbsent},
	{"DecideConcurrent", testPendingDecideConcurrent},
	{"Complete", testPendingComplete},
	{"CompleteOnlyFromApproved", testPendingCompleteStates},
	{"CompleteAbsentOrExpired", testPendingCompleteAbsent},
	{"CompleteConcurrent", testPendingCompleteConcurrent},
	{"List", testPendingList},
	{"ListOrderIsByCreatedAt", testPendingListOrder},
}

func pendingID(p *storage.PendingRecord) string { return p.ID }

// testPendingRoundTrip: both getters and ListPending return every field
// CreatePending stored.
func testPendingRoundTrip(t *testing.T, f *fixture) {
	c := f.createClient(base, time.Time{})
	p := f.newPending(c.ID, base.Add(fine), base.Add(pendingTTL+fine))
	checkAllSet(t, "pending request", p, "Subject", "Setup")
	want := clone(p)
	f.must(f.s.CreatePending(f.ctx, p), "CreatePending")
	now := base.Add(time.Minute)
	checkEqual(t, "GetPendingByHandle", f.pendingByHandle(want.HandleHash, now), want)
	got, err := f.s.GetPendingByUserCode(f.ctx, want.UserCodeHash, now)
	f.must(err, "GetPendingByUserCode")
	checkEqual(t, "GetPendingByUserCode", got, want)
	got, err = f.s.GetPendingByDeviceCode(f.ctx, want.DeviceCodeHash)
	f.must(err, "GetPendingByDeviceCode")
	checkEqual(t, "GetPendingByDeviceCode", got, want)
	list, err := f.s.ListPending(f.ctx, now)
	f.must(err, "ListPending")
	checkIDs(t, "ListPending", ids(list, pendingID), []string{want.ID})
	if len(list) == 1 {
		checkEqual(t, "listed request", list[0], want)
	}
}

// testPendingCopies: neither the caller's request nor a returned one
// aliases stored state.
func testPendingCopies(t *testing.T, f *fixture) {
	c := f.createClient(base, time.Time{})
	p := f.newPending(c.ID, base, base.Add(pendingTTL))
	want := clone(p)
	f.must(f.s.CreatePending(f.ctx, p), "CreatePending")
	if scribble(p) == 0 {
		t.Fatal("fixture request has no slice elements to scribble on")
	}
	checkEqual(t, "GetPendingByHandle after the caller changed its request", f.pendingByHandle(want.HandleHash, base), want)
	scribble(f.pendingByHandle(want.HandleHash, base))
	got, err := f.s.GetPendingByUserCode(f.ctx, want.UserCodeHash, base)
	f.must(err, "GetPendingByUserCode")
	scribble(got)
	list, err := f.s.ListPending(f.ctx, base)
	f.must(err, "ListPending")
	for _, p := range list {
		scribble(p)
	}
	checkEqual(t, "GetPendingByHandle after the caller changed returned requests", f.pendingByHandle(want.HandleHash, base), want)
}

// testPendingDuplicates: CreatePending gives ErrConflict when the ID, the
// handle or the user code is taken, stores nothing of the rejected request
// and leaves the first as it was.
func testPendingDuplicates(t *testing.T, f *fixture) {
	c := f.createClient(base, time.Time{})
	for _, tc := range []struct {
		name string
		dup  func(first, dup *storage.PendingRecord)
		// lookup is what to look up for the rejected request: a handle
		// and user code that only it had.
		lookup func(dup *storage.PendingRecord) (handle, userCode string)
	}{
		{"ID",
			func(first, dup *storage.PendingRecord) { dup.ID = first.ID },
			func(dup *storage.PendingRecord) (string, string) { return dup.HandleHash, dup.UserCodeHash }},
		{"Handle",
			func(first, dup *storage.PendingRecord) { dup.HandleHash = first.HandleHash },
			func(dup *storage.PendingRecord) (string, string) { return "", dup.UserCodeHash }},
		{"UserCode",
			func(first, dup *storage.PendingRecord) { dup.UserCodeHash = first.UserCodeHash },
			func(dup *storage.PendingRecord) (string, string) { return dup.HandleHash, "" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := f.sub(t)
			first := f.createPending(c.ID, base, base.Add(pendingTTL))
			dup := f.newPending(c.ID, base.Add(time.Second), base.Add(2*pendingTTL))
			dup.State = "the duplicate"
			tc.dup(first, dup)
			wantErr(t, f.s.CreatePending(f.ctx, dup), storage.ErrConflict, "CreatePending with a taken %s", tc.name)
			checkEqual(t, "first request after the conflicting create", f.pendingByHandle(first.HandleHash, base), first)
			got, err := f.s.GetPendingByUserCode(f.ctx, first.UserCodeHash, base)
			f.must(err, "GetPendingByUserCode of the first request")
			checkEqual(t, "first request by user code after the conflicting create", got, first)
			handle, userCode := tc.lookup(dup)
			if handle != "" {
				_, err := f.s.GetPendingByHandle(f.ctx, handle, base)
				wantErr(t, err, storage.ErrNotFound, "GetPendingByHandle of the rejected request")
			}
			if userCode != "" {
				_, err := f.s.GetPendingByUserCode(f.ctx, userCode, base)
				wantErr(t, err, storage.ErrNotFound, "GetPendingByUserCode of the rejected request")
			}
		})
	}
}

// testPendingGetAbsent: the getters give ErrNotFound for unknown hashes.
func testPendingGetAbsent(t *testing.T, f *fixture) {
	c := f.createClient(base, time.Time{})
	p := f.createPending(c.ID, base, base.Add(pendingTTL))
	_, err := f.s.GetPendingByHandle(f.ctx, newHash(), base)
	wantErr(t, err, storage.ErrNotFound, "GetPendingByHandle of an unknown handle")
	_, err = f.s.GetPendingByUserCode(f.ctx, newHash(), base)
	wantErr(t, err, storage.ErrNotFound, "GetPendingByUserCode of an unknown user code")
	// A handle is not a user code and vice versa.
	_, err = f.s.GetPendingByHandle(f.ctx, p.UserCodeHash, base)
	wantErr(t, err, storage.ErrNotFound, "GetPendingByHandle of a user code")
	_, err = f.s.GetPendingByUserCode(f.ctx, p.HandleHash, base)
	wantErr(t, err, storage.ErrNotFound, "GetPendingByUserCode of a handle")
}

// testPendingExpiry: no getter returns, and ListPending does not list, a
// request whose expiry is at or before now, whatever its status.
func testPendingExpiry(t *testing.T, f *fixture) {
	c := f.createClient(base, time.Time{})
	exp := base.Add(pendingTTL)
	waiting := f.createPending(c.ID, base, exp)
	approved := f.createPending(c.ID, base, exp)
	f.must(f.s.DecidePending(f.ctx, approved.ID, oauth.PendingApproved, "alice", nil, base), "DecidePending")
	for _, tc := range []struct {
		name string
		now  time.Time
		live bool
	}{
		{"AtCreation", base, true},
		{"MillisecondBeforeExpiry", exp.Add(-time.Millisecond), true},
		{"AtExpiry", exp, false},
		{"AfterExpiry", exp.Add(time.Hour), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := f.sub(t)
			for _, p := range []*storage.PendingRecord{waiting, approved} {
				_, errH := f.s.GetPendingByHandle(f.ctx, p.HandleHash, tc.now)
				_, errU := f.s.GetPendingByUserCode(f.ctx, p.UserCodeHash, tc.now)
				if tc.live {
					if errH != nil || errU != nil {
						t.Errorf("getters of a live request at %s: %v, %v", fmtTime(tc.now), errH, errU)
					}
					continue
				}
				wantErr(t, errH, storage.ErrNotFound, "GetPendingByHandle of an expired request")
				wantErr(t, errU, storage.ErrNotFound, "GetPendingByUserCode of an expired request")
			}
			list, err := f.s.ListPending(f.ctx, tc.now)
			f.must(err, "ListPending")
			want := []string{waiting.ID}
			if !tc.live {
				want = []string{}
			}
			checkIDs(t, "ListPending at "+fmtTime(tc.now), ids(list, pendingID), want)
		})
	}
}

// testPendingDecide: DecidePending moves a waiting request to the given
// status with the given subject and setup (a copy of it), and it is no
// longer listed as waiting.
func testPendingDecide(t *testing.T, f *fixture) {
	c := f.createClient(base, time.Time{})
	for _, tc := range []struct {
		name    string
		status  oauth.PendingStatus
		subject string
		setup   []byte
	}{
		{"Approve", oauth.PendingApproved, "alice", nil},
		{"ApproveWithSetup", oauth.PendingApproved, "alice", randomBytes(200)},
		{"Deny", oauth.PendingDenied, "", nil},
		{"DenyWithSubject", oauth.PendingDenied, "bob", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := f.sub(t)
			p := f.createPending(c.ID, base, base.Add(pendingTTL))
			bystander := f.createPending(c.ID, base, base.Add(pendingTTL))
			now := base.Add(time.Minute)
			setup := slices.Clone(tc.setup)
			f.must(f.s.DecidePending(f.ctx, p.ID, tc.status, tc.subject, setup, now), "DecidePending")
			for i := range setup {
				setup[i] ^= 0xff // the store keeps a copy
			}
			want := clone(p)
			want.Status, want.Subject, want.Setup = tc.status, tc.subject, tc.setup
			checkEqual(t, "decided request by handle", f.pendingByHandle(p.HandleHash, now), want)
			got, err := f.s.GetPendingByUserCode(f.ctx, p.UserCodeHash, now)
			f.must(err, "GetPendingByUserCode")
			checkEqual(t, "decided request by user code", got, want)
			checkEqual(t, "undecided request", f.pendingByHandle(bystander.HandleHash, now), bystander)
			list, err := f.s.ListPending(f.ctx, now)
			f.must(err, "ListPending")
			for _, l := range list {
				if l.ID == p.ID {
					t.Error("ListPending lists a decided request")
				}
			}
			if !slices.Contains(ids(list, pendingID), bystander.ID) {
				t.Error("ListPending omits a waiting request")
			}
		})
	}
}

// testPendingDecideTwice: a decided (or completed) request cannot be
// decided again: ErrConflict, and the first decision stands.
func testPendingDecideTwice(t *testing.T, f *fixture) {
	c := f.createClient(base, time.Time{})
	for _, first := range []oauth.PendingStatus{oauth.PendingApproved, oauth.PendingDenied, oauth.PendingCompleted} {
		for _, second := range []oauth.PendingStatus{oauth.PendingApproved, oauth.PendingDenied} {
			t.Run(string(first+"Then"+second), func(t *testing.T) {
				f := f.sub(t)
				p := f.createPending(c.ID, base, base.Add(pendingTTL))
				status := first
				if first == oauth.PendingCompleted {
					status = oauth.PendingApproved
				}
				f.must(f.s.DecidePending(f.ctx, p.ID, status, "alice", nil, base), "first DecidePending")
				if first == oauth.PendingCompleted {
					g, code := f.newGrantAndCode(p, "alice", base, base.Add(time.Minute))
					f.must(f.s.CompletePending(f.ctx, p.ID, g, code, base), "CompletePending")
				}
				now := base.Add(time.Minute)
				wantErr(t, f.s.DecidePending(f.ctx, p.ID, second, "mallory", nil, now), storage.ErrConflict, "second DecidePending")
				got := f.pendingByHandle(p.HandleHash, now)
				if got.Status != first || got.Subject != "alice" {
					t.Errorf("after the second decision: Status %q, Subject %q; want %q, %q", got.Status, got.Subject, first, "alice")
				}
			})
		}
	}
}

// testPendingDecideAbsent: deciding an unknown or expired request is
// ErrNotFound and changes nothing.
func testPendingDecideAbsent(t *testing.T, f *fixture) {
	c := f.createClient(base, time.Time{})
	wantErr(t, f.s.DecidePending(f.ctx, "no-such-request", oauth.PendingApproved, "alice", nil, base), storage.ErrNotFound,
		"DecidePending of an unknown request")
	p := f.createPending(c.ID, base, base.Add(pendingTTL))
	for _, now := range []time.Time{p.ExpiresAt, p.ExpiresAt.Add(time.Second)} {
		wantErr(t, f.s.DecidePending(f.ctx, p.ID, oauth.PendingApproved, "alice", nil, now), storage.ErrNotFound,
			"DecidePending of a request expired at %s", fmtTime(now))
	}
	checkEqual(t, "expired request after failed decisions", f.pendingByHandle(p.HandleHash, base), p)
}

// testPendingDecideConcurrent: of 100 concurrent decisions on one request
// exactly one succeeds, and its decision is the one stored.
func testPendingDecideConcurrent(t *testing.T, f *fixture) {
	c := f.createClient(base, time.Time{})
	p := f.createPending(c.ID, base, base.Add(pendingTTL))
	status := func(i int) oauth.PendingStatus {
		if i%2 == 0 {
			return oauth.PendingApproved
		}
		return oauth.PendingDenied
	}
	subjects := make([]string, concurrency)
	for i := range subjects {
		subjects[i] = fmt.Sprintf("user-%d", i)
	}
	errs := race(concurrency, func(i int) error {
		return f.s.DecidePending(f.ctx, p.ID, status(i), subjects[i], nil, base)
	})
	winner := oneWinner(t, "DecidePending", errs)
	if winner < 0 {
		return
	}
	got := f.pendingByHandle(p.HandleHash, base)
	if got.Status != status(winner) || got.Subject != subjects[winner] {
		t.Errorf("stored decision: Status %q, Subject %q; want the winner's %q, %q", got.Status, got.Subject, status(winner), subjects[winner])
	}
}

// testPendingComplete: CompletePending moves an approved request to
// completed, clears the setup its approval kept, and stores the grant (its
// claims, data key and data included) and the code.
func testPendingComplete(t *testing.T, f *fixture) {
	c := f.createClient(base, time.Time{})
	p := f.createPending(c.ID, base, base.Add(pendingTTL))
	setup := randomBytes(64)
	f.must(f.s.DecidePending(f.ctx, p.ID, oauth.PendingApproved, "alice", setup, base), "DecidePending")
	now := base.Add(time.Minute)
	g, code := f.newGrantAndCode(p, "alice", now, now.Add(10*time.Minute))
	g.Data = []*storage.GrantDataRecord{newValue(g.ID, "token", time.Time{}), newValue(g.ID, "otp", now.Add(time.Hour))}
	wantG, wantC := clone(g), clone(code)
	f.must(f.s.CompletePending(f.ctx, p.ID, g, code, now), "CompletePending")

	want := clone(p)
	want.Status, want.Subject = oauth.PendingCompleted, "alice"
	checkEqual(t, "completed request (its Setup cleared)", f.pendingByHandle(p.HandleHash, now), want)
	checkEqual(t, "grant stored by CompletePending", f.grant(g.ID), &wantG.Grant)
	checkEqual(t, "code stored by CompletePending", f.code(code.Hash, now), wantC)
	list, err := f.s.ListGrants(f.ctx)
	f.must(err, "ListGrants")
	checkIDs(t, "ListGrants", ids(list, grantID), []string{g.ID})
	for _, d := range wantG.Data {
		key, got := f.grantData(g.ID, d.Name, now)
		checkEqual(t, "data key stored by CompletePending", key, wantG.DataKey)
		checkEqual(t, "value "+d.Name+" stored by CompletePending", got, d)
	}
}

// testPendingCompleteStates: CompletePending gives ErrConflict unless the
// request is approved (so a request yields at most one code), and then
// stores nothing.
func testPendingCompleteStates(t *testing.T, f *fixture) {
	c := f.createClient(base, time.Time{})
	for _, tc := range []struct {
		name  string
		setup func(f *fixture, p *storage.PendingRecord)
		want  oauth.PendingStatus // status afterwards
	}{
		{"Waiting", func(*fixture, *storage.PendingRecord) {}, oauth.PendingWaiting},
		{"Denied", func(f *fixture, p *storage.PendingRecord) {
			f.must(f.s.DecidePending(f.ctx, p.ID, oauth.PendingDenied, "", nil, base), "DecidePending")
		}, oauth.PendingDenied},
		{"Completed", func(f *fixture, p *storage.PendingRecord) {
			f.must(f.s.DecidePending(f.ctx, p.ID, oauth.PendingApproved, "alice", nil, base), "DecidePending")
			g, code := f.newGrantAndCode(p, "alice", base, base.Add(10*time.Minute))
			f.must(f.s.CompletePending(f.ctx, p.ID, g, code, base), "first CompletePending")
		}, oauth.PendingCompleted},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := f.sub(t)
			p := f.createPending(c.ID, base, base.Add(pendingTTL))
			tc.setup(f, p)
			now := base.Add(time.Minute)
			g, code := f.newGrantAndCode(p, "alice", now, now.Add(10*time.Minute))
			wantErr(t, f.s.CompletePending(f.ctx, p.ID, g, code, now), storage.ErrConflict, "CompletePending of a %s request", tc.name)
			f.grantGone(g.ID)
			f.codeGone(code.Hash, now)
			if got := f.pendingByHandle(p.HandleHash, now); got.Status != tc.want {
				t.Errorf("status after the failed CompletePending = %q, want %q", got.Status, tc.want)
			}
		})
	}
}

// testPendingCompleteAbsent: completing an unknown or expired request is
// ErrNotFound ("a row does not exist or has expired") and stores nothing.
func testPendingCompleteAbsent(t *testing.T, f *fixture) {
	c := f.createClient(base, time.Time{})
	p := f.createPending(c.ID, base, base.Add(pendingTTL))
	f.must(f.s.DecidePending(f.ctx, p.ID, oauth.PendingApproved, "alice", nil, base), "DecidePending")
	for _, tc := range []struct {
		name, id string
		now      time.Time
	}{
		{"Unknown", "no-such-request", base},
		{"AtExpiry", p.ID, p.ExpiresAt},
		{"AfterExpiry", p.ID, p.ExpiresAt.Add(time.Second)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := f.sub(t)
			g, code := f.newGrantAndCode(p, "alice", tc.now, tc.now.Add(10*time.Minute))
			wantErr(t, f.s.CompletePending(f.ctx, tc.id, g, code, tc.now), storage.ErrNotFound, "CompletePending")
			f.grantGone(g.ID)
			f.codeGone(code.Hash, base)
		})
	}
	if got := f.pendingByHandle(p.HandleHash, base); got.Status != oauth.PendingApproved {
		t.Errorf("status after failed completions = %q, want %q", got.Status, oauth.PendingApproved)
	}
}

// testPendingCompleteConcurrent: of 100 concurrent completions of one
// approved request exactly one succeeds, and only its grant and code are
// stored.
func testPendingCompleteConcurrent(t *testing.T, f *fixture) {
	c := f.createClient(base, time.Time{})
	p := f.createPending(c.ID, base, base.Add(pendingTTL))
	f.must(f.s.DecidePending(f.ctx, p.ID, oauth.PendingApproved, "alice", nil, base), "DecidePending")
	now := base.Add(time.Minute)
	type pair struct {
		g    string
		code *storage.CodeRecord
	}
	grants := make([]pair, concurrency)
	errs := race(concurrency, func(i int) error {
		g, code := f.newGrantAndCode(p, "alice", now, now.Add(10*time.Minute))
		grants[i] = pair{g.ID, code}
		return f.s.CompletePending(f.ctx, p.ID, g, code, now)
	})
	winner := oneWinner(t, "CompletePending", errs)
	storedGrants, storedCodes := 0, 0
	for i, pr := range grants {
		if _, err := f.s.GetGrant(f.ctx, pr.g); err == nil {
			storedGrants++
			if winner >= 0 && i != winner {
				t.Errorf("grant of losing completion #%d was stored", i)
			}
		} else if !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("GetGrant: %v", err)
		}
		if _, err := f.s.GetCode(f.ctx, pr.code.Hash, now); err == nil {
			storedCodes++
			if winner >= 0 && i != winner {
				t.Errorf("code of losing completion #%d was stored", i)
			}
		} else if !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("GetCode: %v", err)
		}
	}
	if storedGrants != 1 || storedCodes != 1 {
		t.Errorf("concurrent completions stored %d grants and %d codes, want 1 and 1", storedGrants, storedCodes)
	}
	if got := f.pendingByHandle(p.HandleHash, now); got.Status != oauth.PendingCompleted {
		t.Errorf("status = %q, want %q", got.Status, oauth.PendingCompleted)
	}
}

// testPendingList: ListPending returns the unexpired requests still
// waiting, oldest first, and nothing else.
func testPendingList(t *testing.T, f *fixture) {
	now := base.Add(5 * time.Minute)
	list, err := f.s.ListPending(f.ctx, now)
	f.must(err, "ListPending of an empty store")
	if len(list) != 0 {
		t.Fatalf("ListPending of an empty store = %d requests, want 0", len(list))
	}
	c := f.createClient(base, time.Time{})
	exp := base.Add(time.Hour)
	w1 := f.createPending(c.ID, base.Add(1*time.Second), exp)
	expired := f.createPending(c.ID, base.Add(2*time.Second), now) // expires exactly at now
	w2 := f.createPending(c.ID, base.Add(3*time.Second), now.Add(time.Millisecond))
	approved := f.createPending(c.ID, base.Add(4*time.Second), exp)
	denied := f.createPending(c.ID, base.Add(5*time.Second), exp)
	completed := f.issue(c.ID, base.Add(6*time.Second), exp).pending
	w3 := f.createPending(c.ID, base.Add(7*time.Second), exp)
	f.must(f.s.DecidePending(f.ctx, approved.ID, oauth.PendingApproved, "alice", nil, base.Add(time.Minute)), "DecidePending")
	f.must(f.s.DecidePending(f.ctx, denied.ID, oauth.PendingDenied, "", nil, base.Add(time.Minute)), "DecidePending")
	_, _ = expired, completed

	list, err = f.s.ListPending(f.ctx, now)
	f.must(err, "ListPending")
	checkIDs(t, "ListPending", ids(list, pendingID), []string{w1.ID, w2.ID, w3.ID})
	if len(list) == 3 {
		for i, want := range []*storage.PendingRecord{w1, w2, w3} {
			checkEqual(t, "listed request "+want.ID, list[i], want)
		}
	}
}

// testPendingListOrder: "oldest first" orders by CreatedAt, not insertion.
func testPendingListOrder(t *testing.T, f *fixture) {
	c := f.createClient(base, time.Time{})
	exp := base.Add(time.Hour)
	p3 := f.createPending(c.ID, base.Add(3*time.Second), exp)
	p1 := f.createPending(c.ID, base.Add(1*time.Second), exp)
	p2 := f.createPending(c.ID, base.Add(2*time.Second), exp)
	list, err := f.s.ListPending(f.ctx, base.Add(time.Minute))
	f.must(err, "ListPending")
	checkIDs(t, "ListPending of requests inserted out of CreatedAt order", ids(list, pendingID), []string{p1.ID, p2.ID, p3.ID})
}

// testPendingByDeviceCode: GetPendingByDeviceCode finds a request by its
// device code even after it expired (the device must hear expired_token),
// never by an empty one; browser requests (no device code) do not collide
// with each other, device codes do.
func testPendingByDeviceCode(t *testing.T, f *fixture) {
	c := f.createClient(base, time.Time{})
	p := f.createPending(c.ID, base, base.Add(pendingTTL))
	late := base.Add(2 * pendingTTL)
	got, err := f.s.GetPendingByDeviceCode(f.ctx, p.DeviceCodeHash)
	f.must(err, "GetPendingByDeviceCode of an expired request")
	checkEqual(t, "expired request by device code", got, p)
	if _, err := f.s.GetPendingByUserCode(f.ctx, p.UserCodeHash, late); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("GetPendingByUserCode of an expired request: %v, want ErrNotFound", err)
	}
	_, err = f.s.GetPendingByDeviceCode(f.ctx, newHash())
	wantErr(t, err, storage.ErrNotFound, "GetPendingByDeviceCode of an unknown device code")

	for i := range 2 {
		b := f.newPending(c.ID, base, base.Add(pendingTTL))
		b.DeviceCodeHash = ""
		f.must(f.s.CreatePending(f.ctx, b), "CreatePending of browser request %d (no device code)", i)
	}
	_, err = f.s.GetPendingByDeviceCode(f.ctx, "")
	wantErr(t, err, storage.ErrNotFound, "GetPendingByDeviceCode of the empty device code")

	dup := f.newPending(c.ID, base, base.Add(pendingTTL))
	dup.DeviceCodeHash = p.DeviceCodeHash
	wantErr(t, f.s.CreatePending(f.ctx, dup), storage.ErrConflict, "CreatePending with a device code taken")
}
