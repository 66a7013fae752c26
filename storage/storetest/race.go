package storetest

import (
	"errors"
	"sync"
	"testing"

	"github.com/mcp-oauth/oauth/storage"
)

// concurrency is the number of goroutines racing in the atomicity tests.
const concurrency = 100

// race calls fn(0), …, fn(n-1) on n goroutines that are all released at
// once, and returns their errors by index.
func race(n int, fn func(i int) error) []error {
	errs := make([]error, n)
	var ready, done sync.WaitGroup
	start := make(chan struct{})
	ready.Add(n)
	done.Add(n)
	for i := range n {
		go func() {
			defer done.Done()
			ready.Done()
			<-start
			errs[i] = fn(i)
		}()
	}
	ready.Wait()
	close(start)
	done.Wait()
	return errs
}

// oneWinner checks that exactly one of errs is nil and every other one is
// storage.ErrConflict, and returns the index of the nil one (or -1).
func oneWinner(t *testing.T, op string, errs []error) int {
	t.Helper()
	winner, wins, conflicts := -1, 0, 0
	for i, err := range errs {
		switch {
		case err == nil:
			winner = i
			wins++
		case errors.Is(err, storage.ErrConflict):
			conflicts++
		default:
			t.Errorf("%s #%d: got error %v, want nil or %v", op, i, err, storage.ErrConflict)
		}
	}
	if wins != 1 || conflicts != len(errs)-1 {
		t.Errorf("%d concurrent %s: %d succeeded and %d got ErrConflict, want 1 and %d",
			len(errs), op, wins, conflicts, len(errs)-1)
	}
	if wins != 1 {
		return -1
	}
	return winner
}
