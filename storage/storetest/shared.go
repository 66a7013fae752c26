package storetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	oauth "github.com/mcp-oauth/oauth"
	"github.com/mcp-oauth/oauth/storage"
)

// RunShared checks what replicas need from a backend: two Store values on
// one database (two pools, two processes' worth of connections) keep the
// atomic operations atomic between them, since no process-local lock can.
// newPair returns two stores that share one fresh, empty database.
func RunShared(t *testing.T, newPair func(t *testing.T) (storage.Store, storage.Store)) {
	t.Run("RedeemAcrossStores", func(t *testing.T) {
		a, b := newPair(t)
		stores := []storage.Store{a, b}
		for round := range 3 {
			g, code := Issue(t, a, fmt.Sprint(round), sharedNow)
			tokens := make([]*storage.RefreshRecord, 100)
			for i := range tokens {
				tokens[i] = RefreshFor(g, "", sharedNow)
			}
			wins := Race(t, len(tokens), func(i int) error {
				return stores[i%2].RedeemCode(context.Background(), code, sharedNow, tokens[i])
			})
			if wins != 1 {
				t.Fatalf("round %d: %d redemptions succeeded, want 1", round, wins)
			}
			stored := 0
			for _, rt := range tokens {
				if _, err := b.GetRefreshToken(context.Background(), rt.Hash, sharedNow); err == nil {
					stored++
				}
			}
			if stored != 1 {
				t.Errorf("round %d: %d refresh tokens stored, want 1", round, stored)
			}
		}
	})
	t.Run("RotateAcrossStores", func(t *testing.T) {
		a, b := newPair(t)
		stores := []storage.Store{a, b}
		ctx := context.Background()
		g, code := Issue(t, a, "1", sharedNow)
		rt := RefreshFor(g, "", sharedNow)
		if err := a.RedeemCode(ctx, code, sharedNow, rt); err != nil {
			t.Fatal(err)
		}
		next := make([]*storage.RefreshRecord, 100)
		for i := range next {
			next[i] = RefreshFor(g, rt.Hash, sharedNow)
		}
		wins := Race(t, len(next), func(i int) error {
			return stores[i%2].RotateRefreshToken(ctx, rt.Hash, "", next[i], sharedNow)
		})
		if wins != 1 {
			t.Fatalf("%d rotations succeeded, want 1", wins)
		}
		old, err := b.GetRefreshToken(ctx, rt.Hash, sharedNow)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := b.GetRefreshToken(ctx, old.Successor, sharedNow); err != nil {
			t.Errorf("successor: %v", err)
		}
	})
	t.Run("RevocationCountAcrossStores", func(t *testing.T) {
		a, b := newPair(t)
		ctx := context.Background()
		g, _ := Issue(t, a, "1", sharedNow)
		before, err := b.RevocationCount(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := a.RevokeGrant(ctx, g.ID, sharedNow); err != nil {
			t.Fatal(err)
		}
		after, err := b.RevocationCount(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if after != before+1 {
			t.Errorf("RevocationCount read from the other store went from %d to %d after a revocation, want +1", before, after)
		}
	})
	t.Run("GrantDataLimitAcrossStores", func(t *testing.T) {
		a, b := newPair(t)
		stores := []storage.Store{a, b}
		g, _ := Issue(t, a, "1", sharedNow)
		const n, limit = 100, 3
		errs := make([]error, n)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range n {
			wg.Go(func() {
				<-start
				rec := &storage.GrantDataRecord{GrantID: g.ID, Name: fmt.Sprint("v", i), Sealed: []byte{byte(i)}}
				errs[i] = stores[i%2].PutGrantData(context.Background(), rec, limit, sharedNow)
			})
		}
		close(start)
		wg.Wait()
		wins := 0
		for i, err := range errs {
			switch {
			case err == nil:
				wins++
			case !errors.Is(err, storage.ErrLimit):
				t.Errorf("put %d: %v, want nil or ErrLimit", i, err)
			}
		}
		if wins != limit {
			t.Errorf("%d puts with maxValues %d across two stores: %d succeeded, want %d", n, limit, wins, limit)
		}
	})
	t.Run("PutRacesRevokeAcrossStores", func(t *testing.T) {
		a, b := newPair(t)
		ctx := context.Background()
		for round := range 10 {
			g, _ := Issue(t, a, fmt.Sprint(round), sharedNow)
			rec := &storage.GrantDataRecord{GrantID: g.ID, Name: "v", Sealed: []byte("sealed")}
			var putErr, revokeErr error
			var ended *storage.GrantRecord
			var wg sync.WaitGroup
			start := make(chan struct{})
			wg.Go(func() { <-start; putErr = b.PutGrantData(ctx, rec, 10, sharedNow) })
			wg.Go(func() { <-start; ended, revokeErr = a.RevokeGrant(ctx, g.ID, sharedNow) })
			close(start)
			wg.Wait()
			if revokeErr != nil || ended == nil {
				t.Fatalf("round %d: RevokeGrant = %v, %v; want the grant", round, ended, revokeErr)
			}
			switch {
			case putErr == nil && len(ended.Data) != 1:
				t.Errorf("round %d: the value was stored, but RevokeGrant returned %d values", round, len(ended.Data))
			case errors.Is(putErr, storage.ErrNotFound) && len(ended.Data) != 0:
				t.Errorf("round %d: the value was refused, but RevokeGrant returned it", round)
			case putErr != nil && !errors.Is(putErr, storage.ErrNotFound):
				t.Errorf("round %d: PutGrantData racing RevokeGrant: %v", round, putErr)
			}
		}
	})
	t.Run("SweepEndedAcrossStores", func(t *testing.T) {
		a, b := newPair(t)
		stores := []storage.Store{a, b}
		const grants, sweeps = 10, 10
		for i := range grants {
			Issue(t, a, fmt.Sprint(i), sharedNow) // codes lapse a minute later, unredeemed
		}
		results := make([]*storage.SweepResult, sweeps)
		errs := make([]error, sweeps)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range sweeps {
			wg.Go(func() {
				<-start
				results[i], errs[i] = stores[i%2].Sweep(context.Background(), sharedNow.Add(time.Hour))
			})
		}
		close(start)
		wg.Wait()
		// A sweep may leave work to one running at the same time; one
		// more, after them, finds the rest.
		last, err := a.Sweep(context.Background(), sharedNow.Add(time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		seen := map[string]int{}
		for i, res := range append(results, last) {
			if i < sweeps && errs[i] != nil {
				t.Fatalf("sweep %d: %v", i, errs[i])
			}
			for _, g := range res.Ended {
				seen[g.ID]++
			}
		}
		if len(seen) != grants {
			t.Errorf("sweeps ended %d grants, want %d", len(seen), grants)
		}
		for id, n := range seen {
			if n != 1 {
				t.Errorf("grant %s ended in %d sweeps, want 1", id, n)
			}
		}
	})
}

var sharedNow = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// The helpers below are exported for backends' own tests of what the suite
// cannot know (their locking, their files or schemas).

// Hash returns a random hex SHA-256-sized string, as stored for a credential.
func Hash() string {
	b := make([]byte, 32)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// Issue stores client "client-"+id (if absent) and takes a request through
// approval to a code at time at, returning the grant and the code's hash;
// the code expires a minute later. The grant has a data key and no data.
func Issue(t testing.TB, s storage.Store, id string, at time.Time) (*oauth.Grant, string) {
	t.Helper()
	ctx := context.Background()
	c := &oauth.Client{ID: "client-" + id, IssuedAt: at}
	c.RedirectURIs = []string{"https://app.example/cb"}
	if err := s.CreateClient(ctx, c); err != nil && !errors.Is(err, storage.ErrConflict) {
		t.Fatal(err)
	}
	params := oauth.AuthorizationParams{ClientID: c.ID, RedirectURI: "https://app.example/cb", Scopes: []string{"a", "b"}}
	p := &storage.PendingRecord{ID: "req-" + id, HandleHash: Hash(), UserCodeHash: Hash(), AuthorizationParams: params,
		Status: oauth.PendingWaiting, CreatedAt: at, ExpiresAt: at.Add(10 * time.Minute)}
	if err := s.CreatePending(ctx, p); err != nil {
		t.Fatal(err)
	}
	if err := s.DecidePending(ctx, p.ID, oauth.PendingApproved, "alice", nil, at); err != nil {
		t.Fatal(err)
	}
	g := &oauth.Grant{ID: "grant-" + id, ClientID: c.ID, Subject: "alice", Scopes: params.Scopes, CreatedAt: at}
	code := &storage.CodeRecord{Hash: Hash(), AuthorizationCode: oauth.AuthorizationCode{
		GrantID: g.ID, Subject: "alice", ExpiresAt: at.Add(time.Minute), AuthorizationParams: params}}
	if err := s.CompletePending(ctx, p.ID, &storage.GrantRecord{Grant: *g, DataKey: []byte("data key of " + g.ID)}, code, at); err != nil {
		t.Fatal(err)
	}
	return g, code.Hash
}

// RefreshFor returns a refresh token record of g created at at, expiring an
// hour later, whose parent is parent (empty for the first of a chain).
func RefreshFor(g *oauth.Grant, parent string, at time.Time) *storage.RefreshRecord {
	return &storage.RefreshRecord{Hash: Hash(), ClientID: g.ClientID, GrantID: g.ID, Subject: g.Subject,
		Scopes: g.Scopes, CreatedAt: at, ExpiresAt: at.Add(time.Hour), Parent: parent}
}

// Race runs f n times at once and counts successes; every failure must be
// storage.ErrConflict.
func Race(t *testing.T, n int, f func(i int) error) int {
	t.Helper()
	var wg sync.WaitGroup
	var mu sync.Mutex
	wins := 0
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			err := f(i)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				wins++
			case !errors.Is(err, storage.ErrConflict):
				t.Errorf("call %d: %v, want nil or ErrConflict", i, err)
			}
		})
	}
	close(start)
	wg.Wait()
	return wins
}
