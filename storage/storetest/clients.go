package storetest

import (
	"testing"
	"time"

	oauth "github.com/mcp-oauth/oauth"
	"github.com/mcp-oauth/oauth/storage"
)

var clientTests = []test{
	{"RoundTrip", testClientRoundTrip},
	{"CopiesInAndOut", testClientCopies},
	{"DuplicateID", testClientDuplicateID},
	{"GetAbsent", testClientGetAbsent},
	{"Lapse", testClientLapse},
	{"Touch", testClientTouch},
	{"TouchAbsent", testClientTouchAbsent},
	{"Delete", testClientDelete},
	{"DeleteAbsent", testClientDeleteAbsent},
	{"DeleteReturnsGrants", testClientDeleteReturnsGrants},
	{"DeleteDeletesData", testClientDeleteDeletesData},
	{"List", testClientList},
	{"ListOrderIsByIssuedAt", testClientListOrder},
}

// testClientRoundTrip: GetClient returns every field CreateClient stored,
// including the embedded RFC 7591 metadata.
func testClientRoundTrip(t *testing.T, f *fixture) {
	full := f.newClient(base.Add(fine), base.Add(30*24*time.Hour))
	checkAllSet(t, "client", full)
	never := f.newClient(base.Add(time.Second+fine), time.Time{})
	public := &oauth.Client{ID: f.id("public"), IssuedAt: base.Add(2 * time.Second)}
	public.RedirectURIs = []string{"http://127.0.0.1/callback"}
	public.TokenEndpointAuthMethod = oauth.AuthMethodNone

	for _, tc := range []struct {
		name string
		c    *oauth.Client
	}{
		{"EveryField", full},
		{"NeverExpires", never},
		{"PublicMinimal", public},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := f.sub(t)
			want := clone(tc.c)
			f.must(f.s.CreateClient(f.ctx, tc.c), "CreateClient")
			got, err := f.s.GetClient(f.ctx, want.ID, base.Add(time.Hour))
			if err != nil {
				t.Fatalf("GetClient: %v", err)
			}
			checkEqual(t, "GetClient", got, want)
		})
	}
}

// testClientCopies: neither the caller's client nor a returned client
// aliases stored state.
func testClientCopies(t *testing.T, f *fixture) {
	c := f.newClient(base, time.Time{})
	want := clone(c)
	f.must(f.s.CreateClient(f.ctx, c), "CreateClient")
	if n := scribble(c); n == 0 {
		t.Fatal("fixture client has no slice elements to scribble on")
	}
	got := f.client(want.ID, base)
	checkEqual(t, "GetClient after the caller changed its client", got, want)
	scribble(got)
	checkEqual(t, "GetClient after the caller changed a returned client", f.client(want.ID, base), want)
	list, err := f.s.ListClients(f.ctx, base)
	f.must(err, "ListClients")
	for _, c := range list {
		scribble(c)
	}
	checkEqual(t, "GetClient after the caller changed a listed client", f.client(want.ID, base), want)
}

// testClientDuplicateID: CreateClient gives ErrConflict for a taken ID and
// leaves the first client as it was.
func testClientDuplicateID(t *testing.T, f *fixture) {
	first := f.createClient(base, time.Time{})
	dup := f.newClient(base.Add(time.Minute), time.Time{})
	dup.ID = first.ID
	wantErr(t, f.s.CreateClient(f.ctx, dup), storage.ErrConflict, "CreateClient with a taken ID")
	checkEqual(t, "GetClient after the conflicting create", f.client(first.ID, base), first)
}

// testClientGetAbsent: GetClient gives ErrNotFound for an unknown ID.
func testClientGetAbsent(t *testing.T, f *fixture) {
	f.createClient(base, time.Time{})
	f.clientGone("no-such-client", base)
}

// testClientLapse: a registration with ExpiresAt non-zero and not after now
// is neither returned nor listed; a zero ExpiresAt never lapses.
func testClientLapse(t *testing.T, f *fixture) {
	expiry := base.Add(time.Hour)
	for _, tc := range []struct {
		name      string
		expiresAt time.Time
		now       time.Time
		live      bool
	}{
		{"NeverAtBase", time.Time{}, base, true},
		{"NeverInACentury", time.Time{}, base.AddDate(100, 0, 0), true},
		{"BeforeExpiry", expiry, base, true},
		{"MillisecondBeforeExpiry", expiry, expiry.Add(-time.Millisecond), true},
		{"AtExpiry", expiry, expiry, false},
		{"AfterExpiry", expiry, expiry.Add(time.Second), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := f.sub(t)
			c := f.createClient(base, tc.expiresAt)
			got, err := f.s.GetClient(f.ctx, c.ID, tc.now)
			listed := false
			list, lerr := f.s.ListClients(f.ctx, tc.now)
			f.must(lerr, "ListClients")
			for _, l := range list {
				listed = listed || l.ID == c.ID
			}
			if tc.live {
				if err != nil {
					t.Fatalf("GetClient of a live client: %v", err)
				}
				checkEqual(t, "GetClient", got, c)
				if !listed {
					t.Error("ListClients omits a live client")
				}
				return
			}
			wantErr(t, err, storage.ErrNotFound, "GetClient of a lapsed client")
			if listed {
				t.Error("ListClients lists a lapsed client")
			}
		})
	}
}

// testClientTouch: TouchClient sets ExpiresAt to the given time, renewing
// (or shortening) the registration.
func testClientTouch(t *testing.T, f *fixture) {
	c := f.createClient(base, base.Add(time.Hour))
	other := f.createClient(base, base.Add(time.Hour))

	f.must(f.s.TouchClient(f.ctx, c.ID, base.Add(3*time.Hour+fine)), "TouchClient")
	got := f.client(c.ID, base.Add(2*time.Hour)) // would have lapsed at base+1h
	checkTime(t, "ExpiresAt after TouchClient", got.ExpiresAt, base.Add(3*time.Hour+fine))
	want := clone(c)
	want.ExpiresAt = base.Add(3*time.Hour + fine)
	checkEqual(t, "GetClient after TouchClient", got, want)
	f.clientGone(c.ID, base.Add(4*time.Hour))
	f.clientGone(other.ID, base.Add(2*time.Hour)) // untouched client still lapses

	f.must(f.s.TouchClient(f.ctx, c.ID, base.Add(90*time.Minute)), "TouchClient to an earlier time")
	f.clientGone(c.ID, base.Add(2*time.Hour))
	checkTime(t, "ExpiresAt after the second TouchClient", f.client(c.ID, base).ExpiresAt, base.Add(90*time.Minute))
}

// testClientTouchAbsent: TouchClient of an unknown client is ErrNotFound
// (ErrNotFound: "a row does not exist") and creates nothing.
func testClientTouchAbsent(t *testing.T, f *fixture) {
	wantErr(t, f.s.TouchClient(f.ctx, "no-such-client", base.Add(time.Hour)), storage.ErrNotFound, "TouchClient of an unknown client")
	f.clientGone("no-such-client", base)
}

// testClientDelete: DeleteClient removes the client, revokes every grant
// of it at now and deletes their codes and refresh tokens; other clients'
// grants are untouched.
func testClientDelete(t *testing.T, f *fixture) {
	a := f.createClient(base, time.Time{})
	b := f.createClient(base, time.Time{})
	long := base.Add(24 * time.Hour)

	a1 := f.issue(a.ID, base, long)
	ra1 := f.redeem(a1, base.Add(time.Minute), long)
	ra2 := f.rotate(a1.grant, ra1, "", base.Add(2*time.Minute), long)
	a2 := f.issue(a.ID, base, long) // code never redeemed
	b1 := f.issue(b.ID, base, long)
	rb1 := f.redeem(b1, base.Add(time.Minute), long)

	at := base.Add(5*time.Minute + fine)
	f.must(errOf(f.s.DeleteClient(f.ctx, a.ID, at)), "DeleteClient")

	f.clientGone(a.ID, base)
	for _, g := range []*oauth.Grant{a1.grant, a2.grant} {
		got := f.grant(g.ID)
		checkTime(t, "RevokedAt of a grant of the deleted client", got.RevokedAt, at)
	}
	f.codeGone(a1.code.Hash, base)
	f.codeGone(a2.code.Hash, base)
	f.refreshGone(ra1.Hash, base)
	f.refreshGone(ra2.Hash, base)

	checkEqual(t, "GetClient of the other client", f.client(b.ID, base), b)
	checkEqual(t, "GetGrant of the other client's grant", f.grant(b1.grant.ID), b1.grant)
	if f.code(b1.code.Hash, base).ConsumedAt.IsZero() {
		t.Error("the other client's redeemed code lost its ConsumedAt")
	}
	checkEqual(t, "GetRefreshToken of the other client's token", f.refresh(rb1.Hash, base), rb1)

	grants, err := f.s.ListGrants(f.ctx)
	f.must(err, "ListGrants")
	checkIDs(t, "ListGrants after DeleteClient", ids(grants, grantID), []string{b1.grant.ID})
	clients, err := f.s.ListClients(f.ctx, base)
	f.must(err, "ListClients")
	checkIDs(t, "ListClients after DeleteClient", ids(clients, clientID), []string{b.ID})

	wantErr(t, errOf(f.s.DeleteClient(f.ctx, a.ID, at)), storage.ErrNotFound, "DeleteClient again")
}

// testClientDeleteAbsent: DeleteClient of an unknown client is ErrNotFound.
func testClientDeleteAbsent(t *testing.T, f *fixture) {
	c := f.createClient(base, time.Time{})
	got, err := f.s.DeleteClient(f.ctx, "no-such-client", base)
	wantErr(t, err, storage.ErrNotFound, "DeleteClient of an unknown client")
	if len(got) != 0 {
		t.Errorf("DeleteClient of an unknown client returned %d grants", len(got))
	}
	f.client(c.ID, base)
}

func clientID(c *oauth.Client) string { return c.ID }

// testClientList: ListClients returns all live clients (and only those),
// oldest first, with every field.
func testClientList(t *testing.T, f *fixture) {
	now := base.Add(time.Hour)
	list, err := f.s.ListClients(f.ctx, now)
	f.must(err, "ListClients of an empty store")
	if len(list) != 0 {
		t.Fatalf("ListClients of an empty store = %d clients, want 0", len(list))
	}

	c1 := f.createClient(base.Add(1*time.Second), time.Time{})
	lapsed := f.createClient(base.Add(2*time.Second), now) // lapses exactly at now
	c2 := f.createClient(base.Add(3*time.Second), now.Add(time.Millisecond))
	c3 := f.createClient(base.Add(4*time.Second), time.Time{})
	_ = lapsed

	list, err = f.s.ListClients(f.ctx, now)
	f.must(err, "ListClients")
	checkIDs(t, "ListClients", ids(list, clientID), []string{c1.ID, c2.ID, c3.ID})
	if len(list) == 3 {
		for i, want := range []*oauth.Client{c1, c2, c3} {
			checkEqual(t, "listed client "+want.ID, list[i], want)
		}
	}
}

// testClientListOrder: "oldest first" orders by IssuedAt, not by insertion.
func testClientListOrder(t *testing.T, f *fixture) {
	c3 := f.createClient(base.Add(3*time.Second), time.Time{})
	c1 := f.createClient(base.Add(1*time.Second), time.Time{})
	c2 := f.createClient(base.Add(2*time.Second), time.Time{})
	list, err := f.s.ListClients(f.ctx, base)
	f.must(err, "ListClients")
	checkIDs(t, "ListClients of clients inserted out of IssuedAt order", ids(list, clientID), []string{c1.ID, c2.ID, c3.ID})
}
