package sqlite

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	oauth "github.com/mcp-oauth/oauth"
	"github.com/mcp-oauth/oauth/storage"
)

func openTest(t *testing.T) *Store {
	t.Helper()
	s, err := Open(context.Background(), filepath.Join(t.TempDir(), "test.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// insertClient is a write operation that inserts client id and then
// fails with fail, if set, after its statement succeeded.
func insertClient(id string, fail error) func(wtx) error {
	return func(t wtx) error {
		if _, err := t.exec(qCreateClient, id, "", "{}", 0, 0); err != nil {
			return err
		}
		return fail
	}
}

func clientExists(t *testing.T, s *Store, id string) bool {
	t.Helper()
	_, err := s.GetClient(context.Background(), id, time.Now())
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		t.Fatal(err)
	}
	return err == nil
}

// TestBatchIsolation: operations sharing a transaction succeed or fail as
// if each ran alone. One that fails after writing leaves nothing behind,
// one whose context ended before its turn does not run, and the others
// commit.
func TestBatchIsolation(t *testing.T) {
	s := openTest(t)
	boom := errors.New("boom")
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	ctx := context.Background()
	ops := []*writeOp{
		{ctx: ctx, f: insertClient("a", nil)},
		{ctx: ctx, f: insertClient("b", boom)},
		{ctx: canceled, f: insertClient("c", nil)},
		{ctx: ctx, f: insertClient("a", nil)}, // duplicate of the first
		{ctx: ctx, f: insertClient("d", nil)},
	}
	for _, op := range ops {
		op.done = make(chan error, 1)
	}
	s.runBatch(ops)
	errs := make([]error, len(ops))
	for i, op := range ops {
		errs[i] = <-op.done
	}
	if errs[0] != nil || errs[4] != nil {
		t.Errorf("successful operations failed: %v, %v", errs[0], errs[4])
	}
	if !errors.Is(errs[1], boom) {
		t.Errorf("failing operation: %v, want its own error", errs[1])
	}
	if !errors.Is(errs[2], context.Canceled) {
		t.Errorf("canceled operation: %v, want context.Canceled", errs[2])
	}
	if !isUniqueViolation(errs[3]) {
		t.Errorf("duplicate insert: %v, want a unique violation", errs[3])
	}
	for id, want := range map[string]bool{"a": true, "b": false, "c": false, "d": true} {
		if got := clientExists(t, s, id); got != want {
			t.Errorf("client %s exists: %v, want %v", id, got, want)
		}
	}
}

// TestBatchAllFailed: a batch in which every operation fails commits
// nothing and reports each its own error.
func TestBatchAllFailed(t *testing.T) {
	s := openTest(t)
	boom := errors.New("boom")
	for _, n := range []int{1, 3} {
		var ops []*writeOp
		for i := range n {
			ops = append(ops, &writeOp{ctx: context.Background(), f: insertClient(fmt.Sprint("x", n, i), boom), done: make(chan error, 1)})
		}
		s.runBatch(ops)
		for i, op := range ops {
			if err := <-op.done; !errors.Is(err, boom) {
				t.Errorf("batch of %d, op %d: %v", n, i, err)
			}
			if clientExists(t, s, fmt.Sprint("x", n, i)) {
				t.Errorf("batch of %d, op %d: its write survived its failure", n, i)
			}
		}
	}
}

// TestConcurrentWritesBatch: writes that arrive together share
// transactions, and each still gets its own outcome.
func TestConcurrentWritesBatch(t *testing.T) {
	s := openTest(t)
	ctx := context.Background()
	const n = 200
	before := s.batches.Load()
	var wg sync.WaitGroup
	errs := make([]error, n)
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			c := &oauth.Client{ID: fmt.Sprint("client-", i/2), IssuedAt: time.Now()} // pairs collide
			errs[i] = s.CreateClient(ctx, c)
		})
	}
	close(start)
	wg.Wait()
	won := map[string]int{}
	for i, err := range errs {
		switch {
		case err == nil:
			won[fmt.Sprint("client-", i/2)]++
		case !errors.Is(err, storage.ErrConflict):
			t.Fatalf("CreateClient: %v", err)
		}
	}
	for i := range n / 2 {
		id := fmt.Sprint("client-", i)
		if won[id] != 1 || !clientExists(t, s, id) {
			t.Errorf("%s: %d inserts succeeded, want 1", id, won[id])
		}
	}
	if b := s.batches.Load() - before; b >= n {
		t.Errorf("%d transactions for %d concurrent writes: nothing was batched", b, n)
	}
}

// TestWriteAfterClose: writes after Close fail instead of hanging.
func TestWriteAfterClose(t *testing.T) {
	s, err := Open(context.Background(), filepath.Join(t.TempDir(), "test.db"))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateClient(context.Background(), &oauth.Client{ID: "late"}); err == nil {
		t.Error("CreateClient after Close succeeded")
	}
}
