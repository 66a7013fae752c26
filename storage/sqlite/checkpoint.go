package sqlite

import (
	"context"
	"database/sql"
	"time"
)

// Checkpoints. In WAL mode a commit appends pages to the -wal file, and a
// checkpoint copies them back into the database file and syncs both: with
// synchronous=NORMAL that is where the fsyncs are, several milliseconds
// each on a virtual disk. SQLite runs a checkpoint inside the commit that
// takes the WAL past wal_autocheckpoint pages (1,000 by default), stalling
// the single writer and every write queued behind it. So the writer's
// automatic checkpoint threshold is raised to walAutoCheckpoint pages, a
// backstop, and a goroutine of the Store checkpoints on a connection of
// its own every checkpointInterval while there are new commits, in
// PASSIVE mode, which runs alongside the writer and readers without
// blocking them.
const (
	checkpointInterval = 200 * time.Millisecond
	walAutoCheckpoint  = 16384 // pages: 64 MiB with 4 KiB pages
)

// startCheckpointer starts the checkpoint goroutine on connection pool c.
func (s *Store) startCheckpointer(c *sql.DB) {
	s.ckpt = c
	s.ckptDone = make(chan struct{})
	go s.checkpointLoop()
}

func (s *Store) checkpointLoop() {
	defer close(s.ckptDone)
	tick := time.NewTicker(checkpointInterval)
	defer tick.Stop()
	var done int64 // writer transactions covered by the last checkpoint
	for {
		select {
		case <-s.quit:
			return
		case <-tick.C:
		}
		n := s.batches.Load()
		if n == done {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		var busy, log, copied int
		err := s.ckpt.QueryRowContext(ctx, `PRAGMA wal_checkpoint(PASSIVE)`).Scan(&busy, &log, &copied)
		cancel()
		if err == nil {
			done = n
		}
	}
}
