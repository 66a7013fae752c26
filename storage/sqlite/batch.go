package sqlite

import (
	"context"
	"errors"
	"fmt"
)

// Group commit. A commit in WAL mode costs a write lock cycle (several
// fcntl calls) and one pwrite per frame header and per page, and pages
// such as the last leaf of a table or of an index on a growing column are
// written again by every transaction that appends to them. So the writer
// runs the write operations that are waiting when it becomes free
// together, in one transaction: each operation inside a SAVEPOINT of its
// own, rolled back alone if the operation fails, so that each stays atomic
// and fails or succeeds as if it ran alone. Operations run in the order
// they arrived, each seeing the ones before it; none is reported done
// before the transaction that holds it has committed.

// maxBatch bounds the operations of one transaction.
const maxBatch = 64

// The statements that bracket each operation of a batch (prepared).
const (
	qSavepoint  = `SAVEPOINT op`
	qRollbackTo = `ROLLBACK TO op`
	qRelease    = `RELEASE op`
)

// errClosed is returned by writes after Close.
var errClosed = errors.New("sqlite: store closed")

// writeOp is one write operation waiting for the writer.
type writeOp struct {
	ctx  context.Context
	f    func(wtx) error
	done chan error
}

// startWriter starts the goroutine that runs every write.
func (s *Store) startWriter() {
	s.ops = make(chan *writeOp)
	s.quit = make(chan struct{})
	s.writerDone = make(chan struct{})
	go s.writeLoop()
}

// stopWriter stops the writer after the operation it is running; later
// writes fail with errClosed.
func (s *Store) stopWriter() {
	if s.quit == nil {
		return
	}
	s.closeOnce.Do(func() { close(s.quit) })
	<-s.writerDone
}

func (s *Store) writeLoop() {
	defer close(s.writerDone)
	for {
		var batch []*writeOp
		select {
		case op := <-s.ops:
			batch = append(batch, op)
		case <-s.quit:
			return
		}
	collect:
		for len(batch) < maxBatch {
			select {
			case op := <-s.ops:
				batch = append(batch, op)
			default:
				break collect
			}
		}
		s.runBatch(batch)
	}
}

// update runs f in a write transaction, possibly shared with other
// operations (see above), and returns f's error or the commit's. Once f
// has been handed to the writer, update waits for its outcome even if ctx
// ends, so that it never reports a failure for a write that then commits;
// an operation whose ctx has ended before its turn is not run.
func (s *Store) update(ctx context.Context, f func(wtx) error) error {
	op := &writeOp{ctx: ctx, f: f, done: make(chan error, 1)}
	select {
	case s.ops <- op:
	case <-ctx.Done():
		return ctx.Err()
	case <-s.quit:
		return errClosed
	}
	return <-op.done
}

// runBatch runs ops in one transaction and delivers their outcomes.
func (s *Store) runBatch(ops []*writeOp) {
	s.batches.Add(1)
	errs := make([]error, len(ops))
	fail := func(err error) {
		for i := range errs {
			if errs[i] == nil {
				errs[i] = err
			}
		}
	}
	defer func() {
		for i, op := range ops {
			op.done <- errs[i]
		}
	}()
	// Statements run with a context of their own: interrupting one
	// (sqlite3_interrupt on cancellation) would roll back the whole
	// transaction, other operations' work included.
	ctx := context.Background()
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		fail(err)
		return
	}
	t := wtx{ctx: ctx, tx: tx, s: s}
	savepoints := len(ops) > 1
	ran := false
	for i, op := range ops {
		if err := op.ctx.Err(); err != nil {
			errs[i] = err
			continue
		}
		ran = true
		if !savepoints {
			errs[i] = op.f(t)
			continue
		}
		if _, err := t.exec(qSavepoint); err != nil {
			errs[i] = err
			tx.Rollback()
			fail(err)
			return
		}
		errs[i] = op.f(t)
		if errs[i] != nil {
			if _, err := t.exec(qRollbackTo); err != nil {
				// The transaction is unusable (SQLite rolled it back on
				// an I/O error, say): nothing of it can commit.
				tx.Rollback()
				fail(fmt.Errorf("roll back to savepoint: %w", err))
				return
			}
		}
		if _, err := t.exec(qRelease); err != nil {
			tx.Rollback()
			fail(fmt.Errorf("release savepoint: %w", err))
			return
		}
	}
	if !ran || (!savepoints && errs[0] != nil) {
		tx.Rollback()
		return
	}
	if err := tx.Commit(); err != nil {
		fail(err)
	}
}
