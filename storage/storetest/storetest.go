// Package storetest is the conformance suite of storage.Store, in the manner
// of testing/fstest: every backend's tests call
//
//	storetest.Run(t, func(t *testing.T) storage.Store { ... })
//
// and pass only if they keep every promise of the contract, including the
// atomic ones under concurrency. Times are compared at millisecond
// precision, the coarsest a backend may store.
package storetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/oauthex"

	oauth "github.com/mcp-oauth/oauth"
	"github.com/mcp-oauth/oauth/storage"
)

// base is the fixed "now" of the suite; nothing sleeps.
var base = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// Run runs the suite; newStore returns a fresh, empty store for each subtest.
func Run(t *testing.T, newStore func(t *testing.T) storage.Store) {
	for _, tc := range []struct {
		name string
		f    func(*testing.T, storage.Store)
	}{
		{"Clients", testClients},
		{"ClientLapse", testClientLapse},
		{"DeleteClient", testDeleteClient},
		{"PendingLifecycle", testPending},
		{"PendingExpiry", testPendingExpiry},
		{"CompleteOnce", testCompleteOnce},
		{"Codes", testCodes},
		{"RedeemConcurrent", testRedeemConcurrent},
		{"Refresh", testRefresh},
		{"RotateConcurrent", testRotateConcurrent},
		{"Grants", testGrants},
		{"Keys", testKeys},
		{"Sweep", testSweep},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.f(t, newStore(t)) })
	}
}

var ctx = context.Background()

func hash() string {
	var b [32]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func id(prefix string) string { return prefix + hash()[:12] }

func sameTime(a, b time.Time) bool {
	return a.Truncate(time.Millisecond).Equal(b.Truncate(time.Millisecond))
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func wantErr(t *testing.T, what string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("%s: err = %v, want %v", what, err, want)
	}
}

func newClient(expires time.Time) *oauth.Client {
	return &oauth.Client{
		ClientRegistrationMetadata: oauthex.ClientRegistrationMetadata{
			RedirectURIs:            []string{"https://app.example/cb", "http://127.0.0.1/cb"},
			TokenEndpointAuthMethod: "client_secret_post",
			GrantTypes:              []string{"authorization_code", "refresh_token"},
			ResponseTypes:           []string{"code"},
			ClientName:              "Test <app> ✓",
			ClientURI:               "https://app.example",
			Scope:                   "mcp notes",
			Contacts:                []string{"ops@app.example"},
			ApplicationType:         "web",
			SoftwareID:              "sw",
		},
		ID:         id("client-"),
		SecretHash: hash(),
		IssuedAt:   base.Add(-time.Hour),
		ExpiresAt:  expires,
	}
}

func params(clientID string) oauth.AuthorizationParams {
	return oauth.AuthorizationParams{
		ClientID: clientID, RedirectURI: "http://127.0.0.1:4000/cb", RedirectURIExplicit: true, State: "st",
		Scopes: []string{"mcp", "notes"}, CodeChallenge: "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM", Resource: "https://rs.example/mcp",
	}
}

func sameClient(t *testing.T, got, want *oauth.Client) {
	t.Helper()
	if got.ID != want.ID || got.SecretHash != want.SecretHash || !sameTime(got.IssuedAt, want.IssuedAt) || !sameTime(got.ExpiresAt, want.ExpiresAt) {
		t.Fatalf("client = %+v, want %+v", got, want)
	}
	g, w := got.ClientRegistrationMetadata, want.ClientRegistrationMetadata
	if !slices.Equal(g.RedirectURIs, w.RedirectURIs) || g.TokenEndpointAuthMethod != w.TokenEndpointAuthMethod ||
		!slices.Equal(g.GrantTypes, w.GrantTypes) || !slices.Equal(g.ResponseTypes, w.ResponseTypes) || g.ClientName != w.ClientName ||
		g.ClientURI != w.ClientURI || g.Scope != w.Scope || !slices.Equal(g.Contacts, w.Contacts) || g.ApplicationType != w.ApplicationType || g.SoftwareID != w.SoftwareID {
		t.Fatalf("metadata = %+v, want %+v", g, w)
	}
}

func testClients(t *testing.T, s storage.Store) {
	a, b := newClient(base.Add(time.Hour)), newClient(time.Time{})
	b.SecretHash = ""
	must(t, s.CreateClient(ctx, a))
	must(t, s.CreateClient(ctx, b))
	wantErr(t, "duplicate id", s.CreateClient(ctx, a), storage.ErrConflict)
	got, err := s.GetClient(ctx, a.ID, base)
	must(t, err)
	sameClient(t, got, a)
	got.RedirectURIs[0] = "https://mutated.example"
	again, _ := s.GetClient(ctx, a.ID, base)
	if again.RedirectURIs[0] != a.RedirectURIs[0] {
		t.Fatal("caller mutated stored client")
	}
	got, err = s.GetClient(ctx, b.ID, base.Add(1000*time.Hour))
	must(t, err)
	sameClient(t, got, b) // zero ExpiresAt never lapses
	_, err = s.GetClient(ctx, "nope", base)
	wantErr(t, "unknown client", err, storage.ErrNotFound)
	list, err := s.ListClients(ctx, base)
	must(t, err)
	if len(list) != 2 || list[0].ID != a.ID || list[1].ID != b.ID {
		t.Fatalf("ListClients = %d clients, want a then b", len(list))
	}
	wantErr(t, "touch unknown", s.TouchClient(ctx, "nope", base), storage.ErrNotFound)
}

func testClientLapse(t *testing.T, s storage.Store) {
	c := newClient(base.Add(time.Hour))
	must(t, s.CreateClient(ctx, c))
	_, err := s.GetClient(ctx, c.ID, base.Add(time.Hour))
	wantErr(t, "lapsed at expiry", err, storage.ErrNotFound)
	list, _ := s.ListClients(ctx, base.Add(2*time.Hour))
	if len(list) != 0 {
		t.Fatal("lapsed client listed")
	}
	must(t, s.TouchClient(ctx, c.ID, base.Add(3*time.Hour)))
	got, err := s.GetClient(ctx, c.ID, base.Add(2*time.Hour))
	must(t, err)
	if !sameTime(got.ExpiresAt, base.Add(3*time.Hour)) {
		t.Fatalf("renewed ExpiresAt = %v", got.ExpiresAt)
	}
}

// flow creates a client, an approved pending request, and completes it,
// returning the grant and the code record.
func flow(t *testing.T, s storage.Store, clientID string, codeTTL time.Duration) (*oauth.Grant, *storage.CodeRecord) {
	t.Helper()
	if clientID == "" {
		c := newClient(time.Time{})
		must(t, s.CreateClient(ctx, c))
		clientID = c.ID
	}
	p := &storage.PendingRecord{ID: id("req-"), HandleHash: hash(), UserCodeHash: hash(), AuthorizationParams: params(clientID),
		Status: storage.PendingWaiting, CreatedAt: base, ExpiresAt: base.Add(10 * time.Minute)}
	must(t, s.CreatePending(ctx, p))
	must(t, s.DecidePending(ctx, p.ID, storage.PendingApproved, "alice", base))
	g := &oauth.Grant{ID: id("grant-"), ClientID: clientID, Subject: "alice", Scopes: []string{"mcp", "notes"},
		Resource: "https://rs.example/mcp", CreatedAt: base, LastUsedAt: base}
	code := &storage.CodeRecord{Hash: hash(), AuthorizationCode: oauth.AuthorizationCode{GrantID: g.ID, Subject: "alice",
		ExpiresAt: base.Add(codeTTL), AuthorizationParams: params(clientID)}}
	must(t, s.CompletePending(ctx, p.ID, g, code, base))
	return g, code
}

func refreshFor(g *oauth.Grant, expires time.Time) *storage.RefreshRecord {
	return &storage.RefreshRecord{Hash: hash(), ClientID: g.ClientID, GrantID: g.ID, Subject: g.Subject, Scopes: g.Scopes,
		Resource: g.Resource, CreatedAt: base, ExpiresAt: expires}
}

func testDeleteClient(t *testing.T, s storage.Store) {
	c := newClient(time.Time{})
	must(t, s.CreateClient(ctx, c))
	g, code := flow(t, s, c.ID, time.Minute)
	rt := refreshFor(g, base.Add(time.Hour))
	must(t, s.RedeemCode(ctx, code.Hash, base, rt))
	must(t, s.DeleteClient(ctx, c.ID, base))
	_, err := s.GetClient(ctx, c.ID, base)
	wantErr(t, "deleted client", err, storage.ErrNotFound)
	gg, err := s.GetGrant(ctx, g.ID)
	if err == nil && gg.RevokedAt.IsZero() {
		t.Fatal("grant of deleted client still active")
	}
	_, err = s.GetRefreshToken(ctx, rt.Hash, base)
	wantErr(t, "refresh token of deleted client", err, storage.ErrNotFound)
	wantErr(t, "delete again", s.DeleteClient(ctx, c.ID, base), storage.ErrNotFound)
}

func testPending(t *testing.T, s storage.Store) {
	p := &storage.PendingRecord{ID: id("req-"), HandleHash: hash(), UserCodeHash: hash(), AuthorizationParams: params("c1"),
		Status: storage.PendingWaiting, CreatedAt: base, ExpiresAt: base.Add(10 * time.Minute)}
	must(t, s.CreatePending(ctx, p))
	for name, dup := range map[string]*storage.PendingRecord{
		"same id":     {ID: p.ID, HandleHash: hash(), UserCodeHash: hash(), Status: storage.PendingWaiting, ExpiresAt: p.ExpiresAt},
		"same handle": {ID: id("req-"), HandleHash: p.HandleHash, UserCodeHash: hash(), Status: storage.PendingWaiting, ExpiresAt: p.ExpiresAt},
		"same code":   {ID: id("req-"), HandleHash: hash(), UserCodeHash: p.UserCodeHash, Status: storage.PendingWaiting, ExpiresAt: p.ExpiresAt},
	} {
		wantErr(t, name, s.CreatePending(ctx, dup), storage.ErrConflict)
	}
	for name, get := range map[string]func() (*storage.PendingRecord, error){
		"by handle": func() (*storage.PendingRecord, error) { return s.GetPendingByHandle(ctx, p.HandleHash, base) },
		"by code":   func() (*storage.PendingRecord, error) { return s.GetPendingByUserCode(ctx, p.UserCodeHash, base) },
	} {
		got, err := get()
		must(t, err)
		if got.ID != p.ID || got.Status != storage.PendingWaiting || got.State != "st" || !got.RedirectURIExplicit ||
			!slices.Equal(got.Scopes, p.Scopes) || got.CodeChallenge != p.CodeChallenge || got.Resource != p.Resource ||
			!sameTime(got.ExpiresAt, p.ExpiresAt) || !sameTime(got.CreatedAt, p.CreatedAt) {
			t.Fatalf("%s: %+v", name, got)
		}
	}
	list, err := s.ListPending(ctx, base)
	must(t, err)
	if len(list) != 1 || list[0].ID != p.ID {
		t.Fatalf("ListPending = %v", list)
	}
	wantErr(t, "decide unknown", s.DecidePending(ctx, "nope", storage.PendingApproved, "a", base), storage.ErrNotFound)
	must(t, s.DecidePending(ctx, p.ID, storage.PendingDenied, "", base))
	wantErr(t, "decide twice", s.DecidePending(ctx, p.ID, storage.PendingApproved, "alice", base), storage.ErrConflict)
	got, _ := s.GetPendingByHandle(ctx, p.HandleHash, base)
	if got.Status != storage.PendingDenied {
		t.Fatalf("status %q after deny", got.Status)
	}
	list, _ = s.ListPending(ctx, base)
	if len(list) != 0 {
		t.Fatal("decided request still listed as waiting")
	}
	g := &oauth.Grant{ID: id("grant-"), ClientID: "c1", Subject: "x", CreatedAt: base}
	wantErr(t, "complete denied", s.CompletePending(ctx, p.ID, g, &storage.CodeRecord{Hash: hash(), AuthorizationCode: oauth.AuthorizationCode{GrantID: g.ID, ExpiresAt: base.Add(time.Minute)}}, base), storage.ErrConflict)
	if _, err := s.GetGrant(ctx, g.ID); !errors.Is(err, storage.ErrNotFound) {
		t.Fatal("failed CompletePending left a grant behind")
	}
	// Approval records the subject.
	q := &storage.PendingRecord{ID: id("req-"), HandleHash: hash(), UserCodeHash: hash(), AuthorizationParams: params("c1"),
		Status: storage.PendingWaiting, CreatedAt: base, ExpiresAt: base.Add(10 * time.Minute)}
	must(t, s.CreatePending(ctx, q))
	must(t, s.DecidePending(ctx, q.ID, storage.PendingApproved, "alice", base))
	got, _ = s.GetPendingByUserCode(ctx, q.UserCodeHash, base)
	if got.Status != storage.PendingApproved || got.Subject != "alice" {
		t.Fatalf("approved: %+v", got)
	}
}

func testPendingExpiry(t *testing.T, s storage.Store) {
	p := &storage.PendingRecord{ID: id("req-"), HandleHash: hash(), UserCodeHash: hash(), AuthorizationParams: params("c1"),
		Status: storage.PendingWaiting, CreatedAt: base, ExpiresAt: base.Add(10 * time.Minute)}
	must(t, s.CreatePending(ctx, p))
	at := p.ExpiresAt
	if _, err := s.GetPendingByHandle(ctx, p.HandleHash, at); !errors.Is(err, storage.ErrNotFound) {
		t.Fatal("expired request returned by handle")
	}
	if _, err := s.GetPendingByUserCode(ctx, p.UserCodeHash, at); !errors.Is(err, storage.ErrNotFound) {
		t.Fatal("expired request returned by user code")
	}
	wantErr(t, "decide expired", s.DecidePending(ctx, p.ID, storage.PendingApproved, "alice", at), storage.ErrNotFound)
	if list, _ := s.ListPending(ctx, at); len(list) != 0 {
		t.Fatal("expired request listed")
	}
}

func testCompleteOnce(t *testing.T, s storage.Store) {
	p := &storage.PendingRecord{ID: id("req-"), HandleHash: hash(), UserCodeHash: hash(), AuthorizationParams: params("c1"),
		Status: storage.PendingWaiting, CreatedAt: base, ExpiresAt: base.Add(10 * time.Minute)}
	must(t, s.CreatePending(ctx, p))
	must(t, s.DecidePending(ctx, p.ID, storage.PendingApproved, "alice", base))
	const n = 50
	errs := race(n, func(i int) error {
		g := &oauth.Grant{ID: fmt.Sprintf("grant-%d-%s", i, hash()[:6]), ClientID: "c1", Subject: "alice", CreatedAt: base}
		return s.CompletePending(ctx, p.ID, g, &storage.CodeRecord{Hash: hash(), AuthorizationCode: oauth.AuthorizationCode{
			GrantID: g.ID, ExpiresAt: base.Add(time.Minute), AuthorizationParams: params("c1")}}, base)
	})
	exactlyOne(t, "CompletePending", errs)
}

// race runs f n times at once, released together, and returns the errors.
func race(n int, f func(i int) error) []error {
	errs := make([]error, n)
	var start, done sync.WaitGroup
	start.Add(1)
	for i := 0; i < n; i++ {
		done.Add(1)
		go func() {
			defer done.Done()
			start.Wait()
			errs[i] = f(i)
		}()
	}
	start.Done()
	done.Wait()
	return errs
}

func exactlyOne(t *testing.T, what string, errs []error) {
	t.Helper()
	ok := 0
	for _, err := range errs {
		switch {
		case err == nil:
			ok++
		case !errors.Is(err, storage.ErrConflict):
			t.Fatalf("%s: unexpected error %v", what, err)
		}
	}
	if ok != 1 {
		t.Fatalf("%s: %d of %d concurrent calls succeeded, want exactly 1", what, ok, len(errs))
	}
}

func testCodes(t *testing.T, s storage.Store) {
	g, code := flow(t, s, "", time.Minute)
	got, err := s.GetCode(ctx, code.Hash, base)
	must(t, err)
	if got.GrantID != g.ID || got.Subject != "alice" || !got.ConsumedAt.IsZero() || got.ClientID != g.ClientID ||
		got.RedirectURI != code.RedirectURI || got.CodeChallenge != code.CodeChallenge || !slices.Equal(got.Scopes, code.Scopes) ||
		!sameTime(got.ExpiresAt, code.ExpiresAt) || got.Code != "" {
		t.Fatalf("GetCode = %+v", got)
	}
	gg, err := s.GetGrant(ctx, g.ID)
	must(t, err)
	if gg.ClientID != g.ClientID || gg.Subject != "alice" || !slices.Equal(gg.Scopes, g.Scopes) || gg.Resource != g.Resource || !gg.RevokedAt.IsZero() {
		t.Fatalf("GetGrant = %+v", gg)
	}
	_, err = s.GetCode(ctx, code.Hash, base.Add(time.Minute))
	wantErr(t, "expired code", err, storage.ErrNotFound)
	wantErr(t, "redeem expired", s.RedeemCode(ctx, code.Hash, base.Add(time.Minute), refreshFor(g, base.Add(time.Hour))), storage.ErrNotFound)
	wantErr(t, "redeem unknown", s.RedeemCode(ctx, hash(), base, refreshFor(g, base.Add(time.Hour))), storage.ErrNotFound)

	rt := refreshFor(g, base.Add(time.Hour))
	must(t, s.RedeemCode(ctx, code.Hash, base, rt))
	stored, err := s.GetRefreshToken(ctx, rt.Hash, base)
	must(t, err)
	if stored.GrantID != g.ID || stored.ClientID != g.ClientID || stored.Spent || stored.Successor != "" || !slices.Equal(stored.Scopes, g.Scopes) || !sameTime(stored.ExpiresAt, rt.ExpiresAt) {
		t.Fatalf("stored refresh token = %+v", stored)
	}
	got, _ = s.GetCode(ctx, code.Hash, base)
	if got == nil || !sameTime(got.ConsumedAt, base) {
		t.Fatalf("redeemed code: %+v (a redeemed code must still be readable, so replay can be detected)", got)
	}
	rt2 := refreshFor(g, base.Add(time.Hour))
	wantErr(t, "second redeem", s.RedeemCode(ctx, code.Hash, base, rt2), storage.ErrConflict)
	if _, err := s.GetRefreshToken(ctx, rt2.Hash, base); !errors.Is(err, storage.ErrNotFound) {
		t.Fatal("failed redemption stored its refresh token")
	}

	// A code whose grant was revoked cannot be redeemed.
	g3, code3 := flow(t, s, g.ClientID, time.Minute)
	must(t, s.RevokeGrant(ctx, g3.ID, base))
	err = s.RedeemCode(ctx, code3.Hash, base, refreshFor(g3, base.Add(time.Hour)))
	if !errors.Is(err, storage.ErrConflict) && !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("redeem after revocation: %v", err)
	}
}

func testRedeemConcurrent(t *testing.T, s storage.Store) {
	g, code := flow(t, s, "", time.Minute)
	errs := race(100, func(int) error { return s.RedeemCode(ctx, code.Hash, base, refreshFor(g, base.Add(time.Hour))) })
	exactlyOne(t, "RedeemCode", errs)
}

func testRefresh(t *testing.T, s storage.Store) {
	g, code := flow(t, s, "", time.Minute)
	r0 := refreshFor(g, base.Add(time.Hour))
	must(t, s.RedeemCode(ctx, code.Hash, base, r0))
	next := func(parent string) *storage.RefreshRecord {
		r := refreshFor(g, base.Add(2*time.Hour))
		r.Parent = parent
		return r
	}

	r1 := next(r0.Hash)
	wantErr(t, "wrong expected successor", s.RotateRefreshToken(ctx, r0.Hash, "bogus", r1, base), storage.ErrConflict)
	must(t, s.RotateRefreshToken(ctx, r0.Hash, "", r1, base))
	got0, _ := s.GetRefreshToken(ctx, r0.Hash, base)
	got1, err := s.GetRefreshToken(ctx, r1.Hash, base)
	must(t, err)
	if got0.Successor != r1.Hash || got0.Spent || got1.Parent != r0.Hash || got1.Successor != "" || got1.Spent {
		t.Fatalf("after rotation: old %+v new %+v", got0, got1)
	}
	// Retry: r0 presented again while r1 is unused supersedes r1.
	r2 := next(r0.Hash)
	wantErr(t, "stale expected successor", s.RotateRefreshToken(ctx, r0.Hash, "", r2, base), storage.ErrConflict)
	must(t, s.RotateRefreshToken(ctx, r0.Hash, r1.Hash, r2, base))
	got1, _ = s.GetRefreshToken(ctx, r1.Hash, base)
	if !got1.Spent {
		t.Fatal("superseded successor not spent")
	}
	wantErr(t, "rotate spent", s.RotateRefreshToken(ctx, r1.Hash, "", next(r1.Hash), base), storage.ErrConflict)
	// Using r2 spends its parent r0 for good.
	r3 := next(r2.Hash)
	must(t, s.RotateRefreshToken(ctx, r2.Hash, "", r3, base))
	got0, _ = s.GetRefreshToken(ctx, r0.Hash, base)
	if !got0.Spent {
		t.Fatal("parent not spent after its successor was used")
	}
	wantErr(t, "rotate spent parent", s.RotateRefreshToken(ctx, r0.Hash, r2.Hash, next(r0.Hash), base), storage.ErrConflict)
	// Expiry.
	_, err = s.GetRefreshToken(ctx, r3.Hash, base.Add(2*time.Hour))
	wantErr(t, "expired refresh token", err, storage.ErrNotFound)
	wantErr(t, "rotate expired", s.RotateRefreshToken(ctx, r3.Hash, "", next(r3.Hash), base.Add(2*time.Hour)), storage.ErrNotFound)
	// Revocation.
	must(t, s.RevokeGrant(ctx, g.ID, base))
	err = s.RotateRefreshToken(ctx, r3.Hash, "", next(r3.Hash), base)
	if !errors.Is(err, storage.ErrConflict) && !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("rotate after revocation: %v", err)
	}
	if _, err := s.GetRefreshToken(ctx, r3.Hash, base); !errors.Is(err, storage.ErrNotFound) {
		t.Fatal("refresh token of a revoked grant still readable")
	}
}

func testRotateConcurrent(t *testing.T, s storage.Store) {
	g, code := flow(t, s, "", time.Minute)
	r0 := refreshFor(g, base.Add(time.Hour))
	must(t, s.RedeemCode(ctx, code.Hash, base, r0))
	errs := race(100, func(int) error {
		r := refreshFor(g, base.Add(2*time.Hour))
		r.Parent = r0.Hash
		return s.RotateRefreshToken(ctx, r0.Hash, "", r, base)
	})
	exactlyOne(t, "RotateRefreshToken", errs)
}

func testGrants(t *testing.T, s storage.Store) {
	g1, _ := flow(t, s, "", time.Minute)
	g2, _ := flow(t, s, g1.ClientID, time.Minute)
	list, err := s.ListGrants(ctx)
	must(t, err)
	if len(list) != 2 || list[0].ID != g1.ID || list[1].ID != g2.ID {
		t.Fatalf("ListGrants = %d grants, want g1 then g2", len(list))
	}
	must(t, s.TouchGrant(ctx, g1.ID, base.Add(time.Minute)))
	got, _ := s.GetGrant(ctx, g1.ID)
	if !sameTime(got.LastUsedAt, base.Add(time.Minute)) || !sameTime(got.CreatedAt, base) {
		t.Fatalf("touched grant: %+v", got)
	}
	must(t, s.RevokeGrant(ctx, g1.ID, base.Add(2*time.Minute)))
	must(t, s.RevokeGrant(ctx, g1.ID, base.Add(3*time.Minute)))
	got, err = s.GetGrant(ctx, g1.ID)
	must(t, err)
	if !sameTime(got.RevokedAt, base.Add(2*time.Minute)) {
		t.Fatalf("RevokedAt = %v, want the first revocation", got.RevokedAt)
	}
	list, _ = s.ListGrants(ctx)
	if len(list) != 1 || list[0].ID != g2.ID {
		t.Fatal("revoked grant listed")
	}
	wantErr(t, "revoke unknown", s.RevokeGrant(ctx, "nope", base), storage.ErrNotFound)
	_, err = s.GetGrant(ctx, "nope")
	wantErr(t, "get unknown", err, storage.ErrNotFound)
	wantErr(t, "touch unknown", s.TouchGrant(ctx, "nope", base), storage.ErrNotFound)
}

func testKeys(t *testing.T, s storage.Store) {
	k1 := &storage.KeyRecord{ID: "k1", Algorithm: "ES256", Private: []byte{1, 2, 3}, CreatedAt: base}
	k2 := &storage.KeyRecord{ID: "k2", Algorithm: "EdDSA", Private: []byte{4, 5}, CreatedAt: base.Add(time.Hour)}
	must(t, s.AddKey(ctx, k1))
	must(t, s.AddKey(ctx, k2))
	keys, err := s.ListKeys(ctx)
	must(t, err)
	if len(keys) != 2 || keys[0].ID != "k2" || keys[1].ID != "k1" {
		t.Fatalf("ListKeys order: %v", keys)
	}
	if !keys[0].RetiredAt.IsZero() || !sameTime(keys[1].RetiredAt, k2.CreatedAt) {
		t.Fatalf("retirement: k2 %v, k1 %v", keys[0].RetiredAt, keys[1].RetiredAt)
	}
	if keys[0].Algorithm != "EdDSA" || !slices.Equal(keys[0].Private, k2.Private) || !sameTime(keys[0].CreatedAt, k2.CreatedAt) {
		t.Fatalf("key round trip: %+v", keys[0])
	}
	must(t, s.DeleteKey(ctx, "k1"))
	wantErr(t, "delete twice", s.DeleteKey(ctx, "k1"), storage.ErrNotFound)
	keys, _ = s.ListKeys(ctx)
	if len(keys) != 1 {
		t.Fatal("deleted key listed")
	}
}

func testSweep(t *testing.T, s storage.Store) {
	live := newClient(time.Time{})
	lapsing := newClient(base.Add(time.Hour))
	must(t, s.CreateClient(ctx, live))
	must(t, s.CreateClient(ctx, lapsing))
	gLive, cLive := flow(t, s, live.ID, 24*time.Hour)
	rLive := refreshFor(gLive, base.Add(48*time.Hour))
	gOld, cOld := flow(t, s, live.ID, time.Minute)
	rOld := refreshFor(gOld, base.Add(time.Hour))
	must(t, s.RedeemCode(ctx, cOld.Hash, base, rOld))
	gLapsing, _ := flow(t, s, lapsing.ID, 24*time.Hour)
	gRevoked, _ := flow(t, s, live.ID, 24*time.Hour)
	must(t, s.RevokeGrant(ctx, gRevoked.ID, base))
	pOld := &storage.PendingRecord{ID: id("req-"), HandleHash: hash(), UserCodeHash: hash(), AuthorizationParams: params(live.ID),
		Status: storage.PendingWaiting, CreatedAt: base, ExpiresAt: base.Add(time.Minute)}
	pLive := &storage.PendingRecord{ID: id("req-"), HandleHash: hash(), UserCodeHash: hash(), AuthorizationParams: params(live.ID),
		Status: storage.PendingWaiting, CreatedAt: base, ExpiresAt: base.Add(24 * time.Hour)}
	must(t, s.CreatePending(ctx, pOld))
	must(t, s.CreatePending(ctx, pLive))

	now := base.Add(2 * time.Hour)
	n, err := s.Sweep(ctx, now)
	must(t, err)
	// At least: the expired code of gOld, rOld, the lapsed client, the
	// revoked grant, the expired pending request.
	if n < 5 {
		t.Fatalf("Sweep deleted %d rows, want at least 5", n)
	}
	if _, err := s.GetClient(ctx, lapsing.ID, base); !errors.Is(err, storage.ErrNotFound) {
		t.Error("lapsed client survived the sweep")
	}
	if g, err := s.GetGrant(ctx, gLapsing.ID); err == nil && g.RevokedAt.IsZero() {
		t.Error("grant of a lapsed client is still active")
	}
	if _, err := s.GetGrant(ctx, gRevoked.ID); !errors.Is(err, storage.ErrNotFound) {
		t.Error("revoked grant survived the sweep")
	}
	if _, err := s.GetCode(ctx, cOld.Hash, base); !errors.Is(err, storage.ErrNotFound) {
		t.Error("expired code survived the sweep")
	}
	if _, err := s.GetRefreshToken(ctx, rOld.Hash, base); !errors.Is(err, storage.ErrNotFound) {
		t.Error("expired refresh token survived the sweep")
	}
	if _, err := s.GetPendingByHandle(ctx, pOld.HandleHash, base); !errors.Is(err, storage.ErrNotFound) {
		t.Error("expired pending request survived the sweep")
	}
	// Live rows survive.
	if _, err := s.GetClient(ctx, live.ID, now); err != nil {
		t.Errorf("live client: %v", err)
	}
	if _, err := s.GetCode(ctx, cLive.Hash, now); err != nil {
		t.Errorf("live code: %v", err)
	}
	if g, err := s.GetGrant(ctx, gLive.ID); err != nil || !g.RevokedAt.IsZero() {
		t.Errorf("live grant: %v", err)
	}
	if _, err := s.GetPendingByHandle(ctx, pLive.HandleHash, now); err != nil {
		t.Errorf("live pending: %v", err)
	}
	_ = rLive
	// A second sweep finds nothing more.
	if n, err := s.Sweep(ctx, now); err != nil || n != 0 {
		t.Errorf("second sweep: %d, %v", n, err)
	}
}
