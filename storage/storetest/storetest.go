// Package storetest is a backend-independent conformance suite for the
// contracts of package storage, in the manner of testing/fstest. It has two
// entry points, each taking a constructor for empty stores:
//
//   - Run checks a storage.Store: clients, grants (with their claims),
//     codes, refresh tokens, pending requests, signing keys, grant data
//     (and its deletion with the grant), Sweep and the revocation count;
//   - RunAccounts checks a storage.AccountStore: the users and sessions of
//     the console's built-in sign-in (package approval). If the store also
//     has storage.Store's Sweep, it checks that Sweep deletes expired
//     sessions.
//
// A backend's tests call the entry point of each contract it implements:
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) storage.Store {
//			s := mybackend.Open(t.TempDir())
//			t.Cleanup(func() { s.Close() })
//			return s
//		})
//	}
//
//	func TestAccountsConformance(t *testing.T) {
//		storetest.RunAccounts(t, func(t *testing.T) storage.AccountStore {
//			s := mybackend.Open(t.TempDir())
//			t.Cleanup(func() { s.Close() })
//			return s
//		})
//	}
//
// Every subtest gets a fresh store from newStore and checks one behaviour
// that the doc comments of package storage promise, including the atomic
// operations under 100 concurrent callers.
//
// Times: the suite uses fixed instants around 2026-01-02T03:04:05Z and passes
// now explicitly; it never sleeps and never reads the clock. A backend must
// keep timestamps to at least millisecond precision: a time read back must
// be within a millisecond of the time stored (so truncation or rounding to
// the millisecond or the microsecond is accepted), and the zero time must
// read back as the zero time. Expiry boundaries are tested only at whole
// milliseconds.
//
// Ordering: "oldest first" and "newest first" are read as ordered by the
// record's own timestamp (Client.IssuedAt, Grant.CreatedAt,
// PendingRecord.CreatedAt, KeyRecord.CreatedAt, UserRecord.CreatedAt), not
// by insertion; the listing tests insert out of chronological order.
// Records with equal timestamps may be listed in any order.
//
// Secrets: hash fields are hex SHA-256 strings; the suite makes them from
// random bytes.
package storetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/oauthex"

	oauth "github.com/mcp-oauth/oauth"
	"github.com/mcp-oauth/oauth/storage"
)

// Precision is the coarsest timestamp resolution the suite accepts from a
// backend.
const Precision = time.Millisecond

// base is the fixed instant the suite's times are built on.
var base = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// fine is an offset below the second (and below the millisecond) that
// round-trip tests add to timestamps, so that a backend storing whole
// seconds fails them while one storing milliseconds passes.
const fine = 123*time.Millisecond + 456*time.Microsecond + 789*time.Nanosecond

// test is one conformance check, run on a fresh store.
type test struct {
	name string
	run  func(t *testing.T, f *fixture)
}

// Run runs the conformance suite as subtests of t. newStore must return a
// new, empty store each time it is called; it is called once per subtest,
// with that subtest's t, and should register any cleanup (such as Close)
// with t.Cleanup.
func Run(t *testing.T, newStore func(t *testing.T) storage.Store) {
	t.Helper()
	groups := []struct {
		name  string
		tests []test
	}{
		{"Clients", clientTests},
		{"Grants", grantTests},
		{"MachineGrants", machineTests},
		{"Codes", codeTests},
		{"RefreshTokens", refreshTests},
		{"Pending", pendingTests},
		{"Keys", keyTests},
		{"GrantData", grantDataTests},
		{"Sweep", sweepTests},
		{"RevocationCount", revocationTests},
	}
	for _, g := range groups {
		t.Run(g.name, func(t *testing.T) {
			for _, tc := range g.tests {
				t.Run(tc.name, func(t *testing.T) {
					s := newStore(t)
					if s == nil {
						t.Fatal("newStore returned nil")
					}
					tc.run(t, &fixture{t: t, s: s, ctx: t.Context()})
				})
			}
		})
	}
}

// ---- fixture: building and storing records ----

// fixture carries one subtest's store. Its methods that store records call
// t.Fatal on failure and must only be used from the test goroutine.
type fixture struct {
	t   *testing.T
	s   storage.Store
	a   storage.AccountStore // set by RunAccounts instead of s
	ctx context.Context
}

// sub returns a fixture on the same store for the subtest t: a subtest
// must not fail its parent with FailNow.
func (f *fixture) sub(t *testing.T) *fixture {
	return &fixture{t: t, s: f.s, a: f.a, ctx: t.Context()}
}

// seq numbers the identifiers of a test binary.
var seq atomic.Int64

// id returns a fresh identifier with the given prefix.
func (f *fixture) id(prefix string) string {
	return fmt.Sprintf("%s-%d-%s", prefix, seq.Add(1), randomHex(4))
}

// newHash returns a fresh value for a Hash field: the hex encoding of 32
// random bytes, shaped like a SHA-256.
func newHash() string { return randomHex(32) }

func randomHex(n int) string { return hex.EncodeToString(randomBytes(n)) }

func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b) // never fails (crypto/rand, Go 1.24+)
	return b
}

// must fails the test now if err is not nil.
func (f *fixture) must(err error, format string, args ...any) {
	f.t.Helper()
	if err != nil {
		f.t.Fatalf("%s: unexpected error: %v", fmt.Sprintf(format, args...), err)
	}
}

// wantErr reports an error unless errors.Is(err, target).
func wantErr(t *testing.T, err, target error, format string, args ...any) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Errorf("%s: got error %v, want %v", fmt.Sprintf(format, args...), err, target)
	}
}

// newClient returns a confidential client with every field set.
func (f *fixture) newClient(issuedAt, expiresAt time.Time) *oauth.Client {
	id := f.id("client")
	return &oauth.Client{
		ClientRegistrationMetadata: oauthex.ClientRegistrationMetadata{
			RedirectURIs:            []string{"https://app.example/callback", "http://127.0.0.1/callback"},
			TokenEndpointAuthMethod: oauth.AuthMethodClientSecretBasic,
			GrantTypes:              []string{oauth.GrantTypeAuthorizationCode, oauth.GrantTypeRefreshToken},
			ResponseTypes:           []string{"code"},
			ClientName:              "Client " + id,
			ClientURI:               "https://app.example/",
			LogoURI:                 "https://app.example/logo.png",
			Scope:                   "files:read files:write",
			Contacts:                []string{"ops@app.example", "dev@app.example"},
			TOSURI:                  "https://app.example/tos",
			PolicyURI:               "https://app.example/privacy",
			JWKSURI:                 "https://app.example/jwks.json",
			JWKS:                    `{"keys":[]}`,
			SoftwareID:              "4NRB1-0XZABZI9E6-5SM3R",
			SoftwareVersion:         "2.1.0",
			SoftwareStatement:       "eyJhbGciOiJSUzI1NiJ9.eyJzb2Z0d2FyZV9pZCI6IjROUkIxIn0.c2ln",
			ApplicationType:         "native",
		},
		ID:         id,
		SecretHash: newHash(),
		IssuedAt:   issuedAt,
		ExpiresAt:  expiresAt,
	}
}

// createClient stores and returns a new client.
func (f *fixture) createClient(issuedAt, expiresAt time.Time) *oauth.Client {
	f.t.Helper()
	c := f.newClient(issuedAt, expiresAt)
	f.must(f.s.CreateClient(f.ctx, c), "CreateClient(%s)", c.ID)
	return c
}

// params returns authorization parameters with every field set.
func params(clientID string) oauth.AuthorizationParams {
	return oauth.AuthorizationParams{
		ClientID:            clientID,
		RedirectURI:         "https://app.example/callback",
		RedirectURIExplicit: true,
		State:               "state-" + randomHex(4),
		Scopes:              []string{"files:read", "files:write"},
		CodeChallenge:       "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
		Resource:            "https://mcp.example/mcp",
	}
}

// newPending returns a waiting request of clientID with every field but
// Subject set.
func (f *fixture) newPending(clientID string, createdAt, expiresAt time.Time) *storage.PendingRecord {
	return &storage.PendingRecord{
		ID:                  f.id("request"),
		HandleHash:          newHash(),
		UserCodeHash:        newHash(),
		DeviceCodeHash:      newHash(),
		AuthorizationParams: params(clientID),
		Status:              oauth.PendingWaiting,
		CreatedAt:           createdAt,
		ExpiresAt:           expiresAt,
	}
}

// createPending stores and returns a new waiting request.
func (f *fixture) createPending(clientID string, createdAt, expiresAt time.Time) *storage.PendingRecord {
	f.t.Helper()
	p := f.newPending(clientID, createdAt, expiresAt)
	f.must(f.s.CreatePending(f.ctx, p), "CreatePending(%s)", p.ID)
	return p
}

// newGrantAndCode returns the grant and code that completing p at now
// stores, the code expiring at codeExpiresAt. The grant has custom claims
// (of every JSON kind, numbers as float64 as they come back) and a data
// key, and no data.
func (f *fixture) newGrantAndCode(p *storage.PendingRecord, subject string, now, codeExpiresAt time.Time) (*storage.GrantRecord, *storage.CodeRecord) {
	g := &storage.GrantRecord{
		Grant: oauth.Grant{
			ID:          f.id("grant"),
			ClientID:    p.ClientID,
			Subject:     subject,
			Scopes:      slices.Clone(p.Scopes),
			Resource:    p.Resource,
			RedirectURI: p.RedirectURI,
			CreatedAt:   now,
			LastUsedAt:  now,
			Claims:      sampleClaims(),
		},
		DataKey: randomBytes(40),
	}
	c := &storage.CodeRecord{
		Hash: newHash(),
		AuthorizationCode: oauth.AuthorizationCode{
			GrantID:             g.ID,
			Subject:             subject,
			ExpiresAt:           codeExpiresAt,
			AuthorizationParams: p.AuthorizationParams,
		},
	}
	c.Scopes = slices.Clone(p.Scopes)
	return g, c
}

// sampleClaims returns custom claims with a value of every JSON kind, as
// encoding/json decodes them.
func sampleClaims() map[string]any {
	return map[string]any{
		"tenant": "acme",
		"level":  float64(3),
		"ratio":  0.25,
		"admin":  true,
		"none":   nil,
		"roles":  []any{"reader", "writer"},
		"org":    map[string]any{"id": "o-1", "seats": float64(12), "tags": []any{"eu"}},
	}
}

// newValue returns a grant data value of grantID with random ciphertext.
func newValue(grantID, name string, expiresAt time.Time) *storage.GrantDataRecord {
	return &storage.GrantDataRecord{GrantID: grantID, Name: name, Sealed: randomBytes(48), ExpiresAt: expiresAt}
}

// issued is what running a request through approval produces.
type issued struct {
	pending *storage.PendingRecord
	// grant is &rec.Grant.
	grant *oauth.Grant
	rec   *storage.GrantRecord
	code  *storage.CodeRecord
}

// pendingTTL is how long the requests that issue creates live.
const pendingTTL = 10 * time.Minute

// issue creates a request of clientID at at (expiring pendingTTL later),
// approves it for a fresh subject and completes it at at, returning the
// stored request, grant and code (expiring at codeExpiresAt). The grant
// has a data key and, named by values, data values of its own that never
// expire.
func (f *fixture) issue(clientID string, at, codeExpiresAt time.Time, values ...string) issued {
	f.t.Helper()
	var data []*storage.GrantDataRecord
	for _, name := range values {
		data = append(data, newValue("", name, time.Time{}))
	}
	return f.issueData(clientID, at, codeExpiresAt, data...)
}

// issueData is issue with the given initial data values, whose GrantID it
// sets.
func (f *fixture) issueData(clientID string, at, codeExpiresAt time.Time, data ...*storage.GrantDataRecord) issued {
	f.t.Helper()
	p := f.createPending(clientID, at, at.Add(pendingTTL))
	subject := f.id("user")
	f.must(f.s.DecidePending(f.ctx, p.ID, oauth.PendingApproved, subject, nil, at), "DecidePending(%s)", p.ID)
	p.Status, p.Subject = oauth.PendingApproved, subject
	g, c := f.newGrantAndCode(p, subject, at, codeExpiresAt)
	for _, d := range data {
		d.GrantID = g.ID
	}
	g.Data = data
	f.must(f.s.CompletePending(f.ctx, p.ID, g, c, at), "CompletePending(%s)", p.ID)
	p.Status = oauth.PendingCompleted
	return issued{pending: p, grant: &g.Grant, rec: g, code: c}
}

// newRefresh returns a refresh token of grant g with the given parent.
func newRefresh(g *oauth.Grant, parent string, createdAt, expiresAt time.Time) *storage.RefreshRecord {
	return &storage.RefreshRecord{
		Hash:      newHash(),
		ClientID:  g.ClientID,
		GrantID:   g.ID,
		Subject:   g.Subject,
		Scopes:    slices.Clone(g.Scopes),
		Resource:  g.Resource,
		CreatedAt: createdAt,
		ExpiresAt: expiresAt,
		Parent:    parent,
	}
}

// redeem redeems is.code at now and returns the stored refresh token,
// which expires at expiresAt.
func (f *fixture) redeem(is issued, now, expiresAt time.Time) *storage.RefreshRecord {
	f.t.Helper()
	rt := newRefresh(is.grant, "", now, expiresAt)
	f.must(f.s.RedeemCode(f.ctx, is.code.Hash, now, rt), "RedeemCode")
	is.grant.LastUsedAt = now // the redemption records the grant's use
	return rt
}

// rotate rotates old (whose grant is g) at now, expecting its successor to
// be expected, and returns the stored successor, which expires at expiresAt.
func (f *fixture) rotate(g *oauth.Grant, old *storage.RefreshRecord, expected string, now, expiresAt time.Time) *storage.RefreshRecord {
	f.t.Helper()
	next := newRefresh(g, old.Hash, now, expiresAt)
	f.must(f.s.RotateRefreshToken(f.ctx, old.Hash, expected, next, now), "RotateRefreshToken")
	g.LastUsedAt = now // the rotation records the grant's use
	return next
}

// ---- fixture: reading records back ----

func (f *fixture) client(id string, now time.Time) *oauth.Client {
	f.t.Helper()
	c, err := f.s.GetClient(f.ctx, id, now)
	f.must(err, "GetClient(%s, %v)", id, now)
	return c
}

func (f *fixture) grant(id string) *oauth.Grant {
	f.t.Helper()
	g, err := f.s.GetGrant(f.ctx, id)
	f.must(err, "GetGrant(%s)", id)
	return g
}

func (f *fixture) code(hash string, now time.Time) *storage.CodeRecord {
	f.t.Helper()
	c, err := f.s.GetCode(f.ctx, hash, now)
	f.must(err, "GetCode(%v)", now)
	return c
}

func (f *fixture) refresh(hash string, now time.Time) *storage.RefreshRecord {
	f.t.Helper()
	r, err := f.s.GetRefreshToken(f.ctx, hash, now)
	f.must(err, "GetRefreshToken(%v)", now)
	return r
}

func (f *fixture) pendingByHandle(handleHash string, now time.Time) *storage.PendingRecord {
	f.t.Helper()
	p, err := f.s.GetPendingByHandle(f.ctx, handleHash, now)
	f.must(err, "GetPendingByHandle(%v)", now)
	return p
}

func (f *fixture) keys() []*storage.KeyRecord {
	f.t.Helper()
	ks, err := f.s.ListKeys(f.ctx)
	f.must(err, "ListKeys")
	return ks
}

// The gone helpers report an error unless the row is absent at now.

func (f *fixture) clientGone(id string, now time.Time) {
	f.t.Helper()
	_, err := f.s.GetClient(f.ctx, id, now)
	wantErr(f.t, err, storage.ErrNotFound, "GetClient(%s, %v)", id, now)
}

func (f *fixture) grantGone(id string) {
	f.t.Helper()
	_, err := f.s.GetGrant(f.ctx, id)
	wantErr(f.t, err, storage.ErrNotFound, "GetGrant(%s)", id)
}

func (f *fixture) codeGone(hash string, now time.Time) {
	f.t.Helper()
	_, err := f.s.GetCode(f.ctx, hash, now)
	wantErr(f.t, err, storage.ErrNotFound, "GetCode(%v)", now)
}

func (f *fixture) refreshGone(hash string, now time.Time) {
	f.t.Helper()
	_, err := f.s.GetRefreshToken(f.ctx, hash, now)
	wantErr(f.t, err, storage.ErrNotFound, "GetRefreshToken(%v)", now)
}

func (f *fixture) pendingGone(p *storage.PendingRecord, now time.Time) {
	f.t.Helper()
	_, err := f.s.GetPendingByHandle(f.ctx, p.HandleHash, now)
	wantErr(f.t, err, storage.ErrNotFound, "GetPendingByHandle(%s, %v)", p.ID, now)
	_, err = f.s.GetPendingByUserCode(f.ctx, p.UserCodeHash, now)
	wantErr(f.t, err, storage.ErrNotFound, "GetPendingByUserCode(%s, %v)", p.ID, now)
}

// errOf returns the error of a call that also returns a value, for
// checks that need only the error.
func errOf[T any](_ T, err error) error { return err }

// grantData returns the data key and the value name of grantID at now.
func (f *fixture) grantData(grantID, name string, now time.Time) ([]byte, *storage.GrantDataRecord) {
	f.t.Helper()
	key, rec, err := f.s.GetGrantData(f.ctx, grantID, name, now)
	f.must(err, "GetGrantData(%s, %v)", name, now)
	return key, rec
}

// grantDataGone reports an error unless GetGrantData finds nothing.
func (f *fixture) grantDataGone(grantID, name string, now time.Time) {
	f.t.Helper()
	key, rec, err := f.s.GetGrantData(f.ctx, grantID, name, now)
	wantErr(f.t, err, storage.ErrNotFound, "GetGrantData(%s, %v)", name, now)
	if err != nil && (key != nil || rec != nil) {
		f.t.Errorf("GetGrantData(%s, %v) failed but returned a key or a value", name, now)
	}
}

// put stores a new value of grantID that expires at expiresAt, with a
// limit it does not reach, and returns it.
func (f *fixture) put(grantID, name string, expiresAt, now time.Time) *storage.GrantDataRecord {
	f.t.Helper()
	d := newValue(grantID, name, expiresAt)
	f.must(f.s.PutGrantData(f.ctx, clone(d), 1000, now), "PutGrantData(%s)", name)
	return d
}

// sweep sweeps at now and returns the result, never nil.
func (f *fixture) sweep(now time.Time) *storage.SweepResult {
	f.t.Helper()
	res, err := f.s.Sweep(f.ctx, now)
	f.must(err, "Sweep(%v)", now)
	if res == nil {
		f.t.Fatalf("Sweep(%v) returned a nil result and no error", now)
	}
	return res
}
