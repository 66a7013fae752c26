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
			g, code := sharedIssue(t, a, fmt.Sprint(round))
			tokens := make([]*storage.RefreshRecord, 100)
			for i := range tokens {
				tokens[i] = sharedRefresh(g, "")
			}
			wins := sharedRace(t, len(tokens), func(i int) error {
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
		g, code := sharedIssue(t, a, "1")
		rt := sharedRefresh(g, "")
		if err := a.RedeemCode(ctx, code, sharedNow, rt); err != nil {
			t.Fatal(err)
		}
		next := make([]*storage.RefreshRecord, 100)
		for i := range next {
			next[i] = sharedRefresh(g, rt.Hash)
		}
		wins := sharedRace(t, len(next), func(i int) error {
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
}

var sharedNow = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func sharedHash() string {
	b := make([]byte, 32)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// sharedIssue stores a client and takes a request through approval to a
// code, returning the grant and the code's hash.
func sharedIssue(t *testing.T, s storage.Store, id string) (*oauth.Grant, string) {
	t.Helper()
	ctx := context.Background()
	c := &oauth.Client{ID: "client-" + id, IssuedAt: sharedNow}
	c.RedirectURIs = []string{"https://app.example/cb"}
	if err := s.CreateClient(ctx, c); err != nil && !errors.Is(err, storage.ErrConflict) {
		t.Fatal(err)
	}
	params := oauth.AuthorizationParams{ClientID: c.ID, RedirectURI: "https://app.example/cb", Scopes: []string{"a", "b"}}
	p := &storage.PendingRecord{ID: "req-" + id, HandleHash: sharedHash(), UserCodeHash: sharedHash(), AuthorizationParams: params,
		Status: storage.PendingWaiting, CreatedAt: sharedNow, ExpiresAt: sharedNow.Add(10 * time.Minute)}
	if err := s.CreatePending(ctx, p); err != nil {
		t.Fatal(err)
	}
	if err := s.DecidePending(ctx, p.ID, storage.PendingApproved, "alice", sharedNow); err != nil {
		t.Fatal(err)
	}
	g := &oauth.Grant{ID: "grant-" + id, ClientID: c.ID, Subject: "alice", Scopes: params.Scopes, CreatedAt: sharedNow}
	code := &storage.CodeRecord{Hash: sharedHash(), AuthorizationCode: oauth.AuthorizationCode{
		GrantID: g.ID, Subject: "alice", ExpiresAt: sharedNow.Add(time.Minute), AuthorizationParams: params}}
	if err := s.CompletePending(ctx, p.ID, g, code, sharedNow); err != nil {
		t.Fatal(err)
	}
	return g, code.Hash
}

func sharedRefresh(g *oauth.Grant, parent string) *storage.RefreshRecord {
	return &storage.RefreshRecord{Hash: sharedHash(), ClientID: g.ClientID, GrantID: g.ID, Subject: g.Subject,
		Scopes: g.Scopes, CreatedAt: sharedNow, ExpiresAt: sharedNow.Add(time.Hour), Parent: parent}
}

// sharedRace runs f n times at once and counts successes; every failure
// must be storage.ErrConflict.
func sharedRace(t *testing.T, n int, f func(i int) error) int {
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
