package postgres

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
)

// revocationChannel is the LISTEN/NOTIFY channel on which revoking
// transactions signal; the payload is the schema of the Store, so that
// Stores of different schemas of one database ignore each other.
const revocationChannel = "mcpauth_revocations"

// Reconnect backoff of a watch whose connection failed.
const (
	watchRetryMin = 100 * time.Millisecond
	watchRetryMax = 5 * time.Second
)

// watch is one WatchRevocations loop.
type watch struct {
	cancel context.CancelFunc
	done   chan struct{}
}

var _ interface{ WatchRevocations(func()) func() } = (*Store)(nil)

// WatchRevocations implements storage.RevocationWatcher with PostgreSQL's
// LISTEN/NOTIFY: a connection taken out of the pool listens on the
// revocation channel, and every transaction that increases the revocation
// count notifies it when it commits. f is called for each notification of
// this Store's schema, and each time the connection is (re)established,
// since notifications sent while it was down are lost. A failed connection
// is retried with backoff (100 ms doubling to 5 s).
//
// LISTEN needs a session of its own, so the watch does not work through a
// transaction-pooling proxy such as PgBouncer in transaction mode: it then
// keeps retrying, and a Provider still learns of revocations by polling
// RevocationCount.
func (s *Store) WatchRevocations(f func()) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	w := &watch{cancel: cancel, done: make(chan struct{})}
	s.watchMu.Lock()
	if s.closed {
		s.watchMu.Unlock()
		cancel()
		return func() {}
	}
	if s.watches == nil {
		s.watches = map[*watch]struct{}{}
	}
	s.watches[w] = struct{}{}
	s.watchMu.Unlock()
	go func() {
		defer close(w.done)
		s.watchLoop(ctx, f)
	}()
	return func() {
		s.watchMu.Lock()
		delete(s.watches, w)
		s.watchMu.Unlock()
		cancel()
		<-w.done
	}
}

// stopWatches ends every watch and waits for them, before Close closes the
// pool.
func (s *Store) stopWatches() {
	s.watchMu.Lock()
	s.closed = true
	ws := s.watches
	s.watches = nil
	s.watchMu.Unlock()
	for w := range ws {
		w.cancel()
		<-w.done
	}
}

// watchLoop listens until ctx ends, reconnecting after failures.
func (s *Store) watchLoop(ctx context.Context, f func()) {
	backoff := watchRetryMin
	for ctx.Err() == nil {
		listened, _ := s.listen(ctx, f)
		if listened {
			backoff = watchRetryMin
		}
		select {
		case <-ctx.Done():
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, watchRetryMax)
	}
}

// listen runs one listening session: it takes a connection out of the
// pool, listens, calls f once (signals may have been missed before), then
// calls f for every notification of this Store's schema until the
// connection fails or ctx ends. listened reports whether LISTEN succeeded.
func (s *Store) listen(ctx context.Context, f func()) (listened bool, err error) {
	pc, err := s.pool.Acquire(ctx)
	if err != nil {
		return false, err
	}
	conn := pc.Hijack() // a listening session is not returned to the pool
	defer conn.Close(context.Background())
	var schema string
	if err := conn.QueryRow(ctx, `SELECT current_schema()`).Scan(&schema); err != nil {
		return false, err
	}
	if _, err := conn.Exec(ctx, `LISTEN `+pgx.Identifier{revocationChannel}.Sanitize()); err != nil {
		return false, err
	}
	f()
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return true, err
		}
		if n.Channel == revocationChannel && n.Payload == schema {
			f()
		}
	}
}
