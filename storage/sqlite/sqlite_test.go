package sqlite_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	oauth "github.com/mcp-oauth/oauth"
	"github.com/mcp-oauth/oauth/storage"
	"github.com/mcp-oauth/oauth/storage/sqlite"
	"github.com/mcp-oauth/oauth/storage/storetest"
)

func open(t testing.TB, path string) *sqlite.Store {
	t.Helper()
	s, err := sqlite.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) storage.Store {
		return open(t, filepath.Join(t.TempDir(), "test.db"))
	})
}

func TestAccountsConformance(t *testing.T) {
	storetest.RunAccounts(t, func(t *testing.T) storage.AccountStore {
		return open(t, filepath.Join(t.TempDir(), "test.db"))
	})
}

// raw opens the database file directly, bypassing the Store.
func raw(t testing.TB, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

var now = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func TestRedeemCodeRace(t *testing.T) {
	ctx := context.Background()
	s := open(t, filepath.Join(t.TempDir(), "test.db"))
	g, code := storetest.Issue(t, s, "1", now)
	tokens := make([]*storage.RefreshRecord, 100)
	for i := range tokens {
		tokens[i] = storetest.RefreshFor(g, "", now)
	}
	if wins := storetest.Race(t, len(tokens), func(i int) error { return s.RedeemCode(ctx, code, now, tokens[i]) }); wins != 1 {
		t.Fatalf("%d redemptions succeeded, want 1", wins)
	}
	stored := 0
	for _, rt := range tokens {
		if _, err := s.GetRefreshToken(ctx, rt.Hash, now); err == nil {
			stored++
		}
	}
	if stored != 1 {
		t.Errorf("%d refresh tokens stored, want 1", stored)
	}
}

// TestShared runs the cross-instance suite: two Stores on one file, as two
// processes (the server and a terminal command) would use it.
func TestShared(t *testing.T) {
	storetest.RunShared(t, func(t *testing.T) (storage.Store, storage.Store) {
		path := filepath.Join(t.TempDir(), "test.db")
		return open(t, path), open(t, path)
	})
}

func TestRotateRefreshTokenRace(t *testing.T) {
	ctx := context.Background()
	s := open(t, filepath.Join(t.TempDir(), "test.db"))
	g, code := storetest.Issue(t, s, "1", now)
	rt := storetest.RefreshFor(g, "", now)
	if err := s.RedeemCode(ctx, code, now, rt); err != nil {
		t.Fatal(err)
	}
	next := make([]*storage.RefreshRecord, 100)
	for i := range next {
		next[i] = storetest.RefreshFor(g, rt.Hash, now)
	}
	if wins := storetest.Race(t, len(next), func(i int) error { return s.RotateRefreshToken(ctx, rt.Hash, "", next[i], now) }); wins != 1 {
		t.Fatalf("%d rotations succeeded, want 1", wins)
	}
	old, err := s.GetRefreshToken(ctx, rt.Hash, now)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetRefreshToken(ctx, old.Successor, now); err != nil {
		t.Errorf("successor: %v", err)
	}
}

func TestPendingRace(t *testing.T) {
	ctx := context.Background()
	s := open(t, filepath.Join(t.TempDir(), "test.db"))
	p := &storage.PendingRecord{ID: "req", HandleHash: storetest.Hash(), UserCodeHash: storetest.Hash(),
		Status: oauth.PendingWaiting, CreatedAt: now, ExpiresAt: now.Add(time.Minute)}
	if err := s.CreatePending(ctx, p); err != nil {
		t.Fatal(err)
	}
	wins := storetest.Race(t, 100, func(i int) error {
		return s.DecidePending(ctx, p.ID, oauth.PendingApproved, fmt.Sprint("user", i), nil, now)
	})
	if wins != 1 {
		t.Fatalf("%d decisions succeeded, want 1", wins)
	}
	got, err := s.GetPendingByHandle(ctx, p.HandleHash, now)
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != oauth.PendingApproved || !strings.HasPrefix(got.Subject, "user") {
		t.Fatalf("after the race: status %q, subject %q", got.Status, got.Subject)
	}
	wins = storetest.Race(t, 100, func(i int) error {
		g := &storage.GrantRecord{Grant: oauth.Grant{ID: fmt.Sprint("grant", i), CreatedAt: now}}
		c := &storage.CodeRecord{Hash: storetest.Hash(), AuthorizationCode: oauth.AuthorizationCode{GrantID: g.ID, ExpiresAt: now.Add(time.Minute)}}
		return s.CompletePending(ctx, p.ID, g, c, now)
	})
	if wins != 1 {
		t.Fatalf("%d completions succeeded, want 1", wins)
	}
}

func TestFileMode(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "test.db")
	s := open(t, path)
	storetest.Issue(t, s, "1", now) // writes, so that the -wal and -shm files exist
	for _, name := range []string{path, path + "-wal", path + "-shm"} {
		fi, err := os.Stat(name)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v, want 0600", filepath.Base(name), fi.Mode().Perm())
		}
	}
}

func TestExistingFileModeKept(t *testing.T) {
	path := filepath.Join(t.TempDir(), "test.db")
	if err := os.WriteFile(path, nil, 0o640); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o640); err != nil { // despite the umask
		t.Fatal(err)
	}
	open(t, path)
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o640 {
		t.Errorf("mode %v, want the existing 0640", fi.Mode().Perm())
	}
}

func TestWAL(t *testing.T) {
	path := filepath.Join(t.TempDir(), "test.db")
	open(t, path)
	var mode string
	if err := raw(t, path).QueryRow(`PRAGMA journal_mode`).Scan(&mode); err != nil {
		t.Fatal(err)
	}
	if mode != "wal" {
		t.Errorf("journal_mode = %q, want wal", mode)
	}
}

func TestReopen(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "test.db")
	s, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	g, code := storetest.Issue(t, s, "1", now)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	migrations := func() string {
		rows, err := raw(t, path).Query(`SELECT version, applied_at FROM schema_migrations ORDER BY version`)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var b strings.Builder
		for rows.Next() {
			var v, at int64
			if err := rows.Scan(&v, &at); err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(&b, "%d@%d ", v, at)
		}
		return b.String()
	}
	before := migrations()
	if !strings.HasPrefix(before, "1@") {
		t.Fatalf("schema_migrations = %q, want version 1 first", before)
	}
	time.Sleep(2 * time.Millisecond) // a reapplied migration would get a new applied_at
	s = open(t, path)
	if after := migrations(); after != before {
		t.Errorf("schema_migrations changed on reopen: %q → %q", before, after)
	}
	if _, err := s.GetGrant(ctx, g.ID); err != nil {
		t.Errorf("grant lost on reopen: %v", err)
	}
	if _, err := s.GetCode(ctx, code, now); err != nil {
		t.Errorf("code lost on reopen: %v", err)
	}
}

func TestNewerSchemaRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "test.db")
	s, err := sqlite.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if _, err := raw(t, path).Exec(`INSERT INTO schema_migrations (version, applied_at) VALUES (9999, 0)`); err != nil {
		t.Fatal(err)
	}
	if s, err := sqlite.Open(context.Background(), path); err == nil {
		s.Close()
		t.Fatal("Open of a database from a newer version succeeded")
	}
}

func TestInvalidPath(t *testing.T) {
	for _, path := range []string{"", ":memory:", "file:x.db", filepath.Join(t.TempDir(), "x.db?mode=ro")} {
		if s, err := sqlite.Open(context.Background(), path); err == nil {
			s.Close()
			t.Errorf("Open(%q) succeeded", path)
		}
	}
}

// TestPathCharacters: the path reaches SQLite verbatim, not as a URI.
func TestPathCharacters(t *testing.T) {
	path := filepath.Join(t.TempDir(), "a b%20#c.db")
	open(t, path)
	if _, err := os.Stat(path); err != nil {
		t.Fatal(err)
	}
}

// TestErrorsNameNoSecret: errors carry context but no hash.
func TestErrorsNameNoSecret(t *testing.T) {
	ctx := context.Background()
	s := open(t, filepath.Join(t.TempDir(), "test.db"))
	g, code := storetest.Issue(t, s, "1", now)
	p := &storage.PendingRecord{ID: "other", HandleHash: storetest.Hash(), UserCodeHash: storetest.Hash(), Status: oauth.PendingWaiting, CreatedAt: now, ExpiresAt: now.Add(time.Minute)}
	if err := s.CreatePending(ctx, p); err != nil {
		t.Fatal(err)
	}
	dup := *p
	dup.ID = "other2"
	dup.HandleHash = storetest.Hash()
	err := s.CreatePending(ctx, &dup)
	if !errors.Is(err, storage.ErrConflict) || !strings.HasPrefix(err.Error(), "sqlite: create pending: ") {
		t.Errorf("duplicate user code: %v", err)
	}
	rt := storetest.RefreshFor(g, "", now)
	if err := s.RedeemCode(ctx, code, now, rt); err != nil {
		t.Fatal(err)
	}
	err = s.RedeemCode(ctx, code, now, storetest.RefreshFor(g, "", now))
	if !errors.Is(err, storage.ErrConflict) {
		t.Errorf("second redemption: %v", err)
	}
	for _, e := range []error{err, s.RotateRefreshToken(ctx, rt.Hash, "wrong", storetest.RefreshFor(g, rt.Hash, now), now)} {
		for _, secret := range []string{code, rt.Hash, dup.UserCodeHash} {
			if e != nil && strings.Contains(e.Error(), secret) {
				t.Errorf("error %q contains a hash", e)
			}
		}
	}
}

func TestCanceledContext(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "test.db"))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.GetClient(ctx, "x", now); err == nil || errors.Is(err, storage.ErrNotFound) {
		t.Errorf("GetClient with a canceled context: %v", err)
	}
	if _, err := s.Sweep(ctx, now); err == nil {
		t.Error("Sweep with a canceled context succeeded")
	}
	if _, err := s.Sweep(context.Background(), now); err != nil {
		t.Errorf("Sweep after a canceled one: %v", err)
	}
}

// TestParamColumns guards the columns of oauth.AuthorizationParams in tables
// codes and pending: a new field needs a migration and paramCols.
func TestParamColumns(t *testing.T) {
	if n := reflect.TypeFor[oauth.AuthorizationParams]().NumField(); n != 7 {
		t.Errorf("oauth.AuthorizationParams has %d fields; codes and pending store 7", n)
	}
}

func BenchmarkRedeemCode(b *testing.B) {
	ctx := context.Background()
	s := open(b, filepath.Join(b.TempDir(), "bench.db"))
	type pair struct {
		code string
		rt   *storage.RefreshRecord
	}
	pairs := make([]pair, b.N)
	for i := range pairs {
		g, code := storetest.Issue(b, s, fmt.Sprint(i), now)
		pairs[i] = pair{code, storetest.RefreshFor(g, "", now)}
	}
	b.ResetTimer()
	for i := range b.N {
		if err := s.RedeemCode(ctx, pairs[i].code, now, pairs[i].rt); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkGetClient(b *testing.B) {
	ctx := context.Background()
	s := open(b, filepath.Join(b.TempDir(), "bench.db"))
	storetest.Issue(b, s, "1", now)
	b.Run("Serial", func(b *testing.B) {
		for b.Loop() {
			if _, err := s.GetClient(ctx, "client-1", now); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("Parallel", func(b *testing.B) {
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := s.GetClient(ctx, "client-1", now); err != nil {
					b.Fatal(err)
				}
			}
		})
	})
}
