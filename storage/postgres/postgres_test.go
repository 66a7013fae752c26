package postgres_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	oauth "github.com/mcp-oauth/oauth"
	"github.com/mcp-oauth/oauth/storage"
	"github.com/mcp-oauth/oauth/storage/postgres"
	"github.com/mcp-oauth/oauth/storage/storetest"
)

// envURL names the environment variable holding the URL of the database
// the tests use. Each test works in a schema of its own, which it drops.
const envURL = "MCPAUTH_TEST_POSTGRES"

// testURL returns the database URL, or skips the test.
func testURL(t testing.TB) string {
	t.Helper()
	u := os.Getenv(envURL)
	if u == "" {
		t.Skip("MCPAUTH_TEST_POSTGRES not set; skipping PostgreSQL tests (set it to a postgres:// URL)")
	}
	return u
}

// admin runs one statement on its own connection.
func admin(t testing.TB, sql string, args ...any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, testURL(t))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, sql, args...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// newSchema creates an empty schema with a unique name, dropped (with
// everything in it) when the test ends, and returns its name.
func newSchema(t testing.TB) string {
	t.Helper()
	b := make([]byte, 8)
	rand.Read(b)
	name := "mcpauth_test_" + hex.EncodeToString(b)
	admin(t, `CREATE SCHEMA `+name)
	t.Cleanup(func() { admin(t, `DROP SCHEMA `+name+` CASCADE`) })
	return name
}

// schemaURL returns the test URL with search_path set to schema.
func schemaURL(t testing.TB, schema string) string {
	t.Helper()
	u := testURL(t)
	sep := "?"
	if strings.Contains(u, "?") {
		sep = "&"
	}
	return u + sep + "search_path=" + schema
}

// newPool returns a pool whose connections use schema, closed when the
// test ends.
func newPool(t testing.TB, schema string) *pgxpool.Pool {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(testURL(t))
	if err != nil {
		t.Fatal(err)
	}
	cfg.ConnConfig.RuntimeParams["search_path"] = schema
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// newStore returns a Store on pool, closed when the test ends.
func newStore(t testing.TB, pool *pgxpool.Pool) *postgres.Store {
	t.Helper()
	s, err := postgres.New(context.Background(), pool)
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

// open returns a Store opened with Open on schema, closed when the test
// ends.
func open(t testing.TB, schema string) *postgres.Store {
	t.Helper()
	s, err := postgres.Open(context.Background(), schemaURL(t, schema))
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
	testURL(t)
	storetest.Run(t, func(t *testing.T) storage.Store {
		return newStore(t, newPool(t, newSchema(t)))
	})
}

func TestAccountsConformance(t *testing.T) {
	testURL(t)
	storetest.RunAccounts(t, func(t *testing.T) storage.AccountStore {
		return newStore(t, newPool(t, newSchema(t)))
	})
}

var now = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// TestShared runs the cross-instance suite: two Stores, each with its own
// pool, on one schema, as two replicas would use it; only PostgreSQL's row
// locks can keep redemption and rotation single.
func TestShared(t *testing.T) {
	testURL(t)
	storetest.RunShared(t, func(t *testing.T) (storage.Store, storage.Store) {
		schema := newSchema(t)
		return newStore(t, newPool(t, schema)), newStore(t, newPool(t, schema))
	})
}

// deadlocks returns how many deadlocks PostgreSQL has detected in the test
// database. A backend reports its counts at the latest when it exits.
func deadlocks(t testing.TB) int64 {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, testURL(t))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var n int64
	if err := conn.QueryRow(ctx, `SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestRotateChainCrossRace races, many times, a rotation of a chain's
// newest token with a retry of its predecessor, which lock the same two
// tokens in opposite orders. Exactly one succeeds, the other gets
// ErrConflict, and PostgreSQL detects no deadlock (which the Store would
// hide by retrying, after deadlock_timeout): the grant lock serializes them.
func TestRotateChainCrossRace(t *testing.T) {
	ctx := context.Background()
	schema := newSchema(t)
	before := deadlocks(t)
	pools := []*pgxpool.Pool{newPool(t, schema), newPool(t, schema)}
	stores := []*postgres.Store{newStore(t, pools[0]), newStore(t, pools[1])}
	for round := range 20 {
		g, code := storetest.Issue(t, stores[0], fmt.Sprint(round), now)
		r0 := storetest.RefreshFor(g, "", now)
		if err := stores[0].RedeemCode(ctx, code, now, r0); err != nil {
			t.Fatal(err)
		}
		r1 := storetest.RefreshFor(g, r0.Hash, now)
		if err := stores[0].RotateRefreshToken(ctx, r0.Hash, "", r1, now); err != nil {
			t.Fatal(err)
		}
		wins := storetest.Race(t, 2, func(i int) error {
			if i == 0 {
				// Use r1: spends r0.
				return stores[0].RotateRefreshToken(ctx, r1.Hash, "", storetest.RefreshFor(g, r1.Hash, now), now)
			}
			// Retry r0: supersedes r1.
			return stores[1].RotateRefreshToken(ctx, r0.Hash, r1.Hash, storetest.RefreshFor(g, r0.Hash, now), now)
		})
		if wins != 1 {
			t.Fatalf("round %d: %d rotations succeeded, want 1", round, wins)
		}
	}
	for _, p := range pools {
		p.Close() // the backends exit and report their statistics
	}
	time.Sleep(200 * time.Millisecond)
	if n := deadlocks(t) - before; n > 0 {
		t.Errorf("PostgreSQL detected %d deadlocks during the races, want 0", n)
	}
}

// TestAddKeyRace: concurrent AddKey calls on two Stores leave exactly one
// active key: each retires the key the one before it added.
func TestAddKeyRace(t *testing.T) {
	ctx := context.Background()
	schema := newSchema(t)
	stores := []*postgres.Store{newStore(t, newPool(t, schema)), newStore(t, newPool(t, schema))}
	for round := range 5 {
		const n = 10
		var wg sync.WaitGroup
		start := make(chan struct{})
		errs := make([]error, n)
		for i := range n {
			wg.Go(func() {
				<-start
				k := &storage.KeyRecord{ID: fmt.Sprintf("kid-%d-%d", round, i), Algorithm: "ES256", Private: []byte{1},
					CreatedAt: now.Add(time.Duration(round*n+i) * time.Second)}
				errs[i] = stores[i%2].AddKey(ctx, k)
			})
		}
		close(start)
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Fatalf("round %d: AddKey %d: %v", round, i, err)
			}
		}
		ks, err := stores[0].ListKeys(ctx)
		if err != nil {
			t.Fatal(err)
		}
		active := 0
		for _, k := range ks {
			if k.RetiredAt.IsZero() {
				active++
			}
		}
		if active != 1 {
			t.Fatalf("round %d: %d active keys after concurrent AddKey calls, want 1", round, active)
		}
	}
}

// TestDeleteClientRacesRotate: DeleteClient racing RotateRefreshToken on
// another Store leaves no refresh token of the client behind, whichever
// goes first.
func TestDeleteClientRacesRotate(t *testing.T) {
	ctx := context.Background()
	schema := newSchema(t)
	stores := []*postgres.Store{newStore(t, newPool(t, schema)), newStore(t, newPool(t, schema))}
	for round := range 30 {
		g, code := storetest.Issue(t, stores[0], fmt.Sprint(round), now)
		r0 := storetest.RefreshFor(g, "", now)
		if err := stores[0].RedeemCode(ctx, code, now, r0); err != nil {
			t.Fatal(err)
		}
		r1 := storetest.RefreshFor(g, r0.Hash, now)
		var wg sync.WaitGroup
		start := make(chan struct{})
		var rotErr, delErr error
		wg.Go(func() {
			<-start
			rotErr = stores[0].RotateRefreshToken(ctx, r0.Hash, "", r1, now)
		})
		wg.Go(func() {
			<-start
			_, delErr = stores[1].DeleteClient(ctx, g.ClientID, now)
		})
		close(start)
		wg.Wait()
		if rotErr != nil && !errors.Is(rotErr, storage.ErrConflict) && !errors.Is(rotErr, storage.ErrNotFound) {
			t.Errorf("round %d: RotateRefreshToken racing DeleteClient: %v", round, rotErr)
		}
		if delErr != nil {
			t.Errorf("round %d: DeleteClient racing RotateRefreshToken: %v", round, delErr)
		}
		for _, h := range []string{r0.Hash, r1.Hash} {
			if _, err := stores[0].GetRefreshToken(ctx, h, now); !errors.Is(err, storage.ErrNotFound) {
				t.Errorf("round %d: refresh token of the deleted client: %v, want ErrNotFound", round, err)
			}
		}
		if gr, err := stores[0].GetGrant(ctx, g.ID); err != nil || gr.RevokedAt.IsZero() {
			t.Errorf("round %d: grant of the deleted client not revoked (%v)", round, err)
		}
	}
}

// TestConcurrentOpen: Stores opening a fresh schema at once all succeed,
// and the migrations are applied exactly once.
func TestConcurrentOpen(t *testing.T) {
	ctx := context.Background()
	schema := newSchema(t)
	const n = 6
	var wg sync.WaitGroup
	errs := make([]error, n)
	stores := make([]*postgres.Store, n)
	start := make(chan struct{})
	url := schemaURL(t, schema)
	for i := range n {
		pool := newPool(t, schema) // made here: t is not for goroutines
		wg.Go(func() {
			<-start
			if i%2 == 0 {
				stores[i], errs[i] = postgres.Open(ctx, url)
			} else {
				stores[i], errs[i] = postgres.New(ctx, pool)
			}
		})
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("store %d: %v", i, err)
			continue
		}
		t.Cleanup(func() { stores[i].Close() })
	}
	if t.Failed() {
		return
	}
	var rows, versions int
	err := newPool(t, schema).QueryRow(ctx, `SELECT count(*), count(DISTINCT version) FROM schema_migrations`).Scan(&rows, &versions)
	if err != nil {
		t.Fatal(err)
	}
	files, err := filepath.Glob(filepath.Join("migrations", "*.sql"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no migration files: %v", err)
	}
	if rows != len(files) || versions != len(files) {
		t.Errorf("schema_migrations has %d rows of %d versions, want %d of %d (one per embedded migration)", rows, versions, len(files), len(files))
	}
	// Every store works.
	for i, s := range stores {
		storetest.Issue(t, s, fmt.Sprint(i), now)
	}
}

func TestReopen(t *testing.T) {
	ctx := context.Background()
	schema := newSchema(t)
	s, err := postgres.Open(ctx, schemaURL(t, schema))
	if err != nil {
		t.Fatal(err)
	}
	g, code := storetest.Issue(t, s, "1", now)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	pool := newPool(t, schema)
	migrations := func() string {
		rows, err := pool.Query(ctx, `SELECT version, name, applied_at FROM schema_migrations ORDER BY version`)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var b strings.Builder
		for rows.Next() {
			var v int
			var name string
			var at time.Time
			if err := rows.Scan(&v, &name, &at); err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(&b, "%d:%s@%s ", v, name, at.Format(time.RFC3339Nano))
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		return b.String()
	}
	before := migrations()
	if !strings.HasPrefix(before, "1:0001_init.sql@") {
		t.Fatalf("schema_migrations = %q, want version 1 first", before)
	}
	time.Sleep(2 * time.Millisecond) // a reapplied migration would get a new applied_at
	s = open(t, schema)
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
	schema := newSchema(t)
	s := open(t, schema)
	s.Close()
	admin(t, `INSERT INTO `+schema+`.schema_migrations (version, name) VALUES (9999, 'future.sql')`)
	if s, err := postgres.Open(context.Background(), schemaURL(t, schema)); err == nil {
		s.Close()
		t.Fatal("Open of a database from a newer version succeeded")
	}
}

// TestSchemasIsolated: Stores on two schemas of one database see only
// their own rows.
func TestSchemasIsolated(t *testing.T) {
	ctx := context.Background()
	a, b := open(t, newSchema(t)), open(t, newSchema(t))
	storetest.Issue(t, a, "1", now)
	if _, err := b.GetGrant(ctx, "grant-1"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("GetGrant in the other schema: %v, want ErrNotFound", err)
	}
	if _, err := a.GetGrant(ctx, "grant-1"); err != nil {
		t.Errorf("GetGrant: %v", err)
	}
}

// TestNoSchema: a search_path naming no existing schema is an error, not
// tables created elsewhere.
func TestNoSchema(t *testing.T) {
	if s, err := postgres.Open(context.Background(), schemaURL(t, "mcpauth_test_does_not_exist")); err == nil {
		s.Close()
		t.Fatal("Open with a search_path of no existing schema succeeded")
	}
}

// TestCloseLeavesCallersPool: Close of a Store made by New does not close
// the caller's pool.
func TestCloseLeavesCallersPool(t *testing.T) {
	pool := newPool(t, newSchema(t))
	s, err := postgres.New(context.Background(), pool)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := pool.Ping(context.Background()); err != nil {
		t.Errorf("pool unusable after Close of the Store: %v", err)
	}
}

// TestOpenErrorsHidePassword: a bad URL or an unreachable server gives an
// error that does not quote the password.
func TestOpenErrorsHidePassword(t *testing.T) {
	testURL(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, u := range []string{
		"postgres://user:s3cr3t-pw@127.0.0.1:1/db?sslmode=disable&connect_timeout=2",
		"postgres://user:s3cr3t-pw@127.0.0.1:notaport/db",
		"host=127.0.0.1 password=s3cr3t-pw port=x",
	} {
		s, err := postgres.Open(ctx, u)
		if err == nil {
			s.Close()
			t.Errorf("Open(%q) succeeded", u)
			continue
		}
		if strings.Contains(err.Error(), "s3cr3t-pw") {
			t.Errorf("Open error quotes the password: %v", err)
		}
	}
}

// TestErrorsNameNoSecret: errors carry context but no hash.
func TestErrorsNameNoSecret(t *testing.T) {
	ctx := context.Background()
	s := open(t, newSchema(t))
	g, code := storetest.Issue(t, s, "1", now)
	p := &storage.PendingRecord{ID: "other", HandleHash: storetest.Hash(), UserCodeHash: storetest.Hash(), Status: oauth.PendingWaiting, CreatedAt: now, ExpiresAt: now.Add(time.Minute)}
	if err := s.CreatePending(ctx, p); err != nil {
		t.Fatal(err)
	}
	dup := *p
	dup.ID = "other2"
	dup.HandleHash = storetest.Hash()
	err := s.CreatePending(ctx, &dup)
	if !errors.Is(err, storage.ErrConflict) || !strings.HasPrefix(err.Error(), "postgres: create pending: ") {
		t.Errorf("duplicate user code: %v", err)
	}
	rt := storetest.RefreshFor(g, "", now)
	if err := s.RedeemCode(ctx, code, now, rt); err != nil {
		t.Fatal(err)
	}
	err2 := s.RedeemCode(ctx, code, now, storetest.RefreshFor(g, "", now))
	if !errors.Is(err2, storage.ErrConflict) {
		t.Errorf("second redemption: %v", err2)
	}
	dupRT := storetest.RefreshFor(g, "", now)
	dupRT.Hash = rt.Hash
	g2, code2 := storetest.Issue(t, s, "2", now)
	_ = g2
	err3 := s.RedeemCode(ctx, code2, now, dupRT) // token hash taken
	if !errors.Is(err3, storage.ErrConflict) {
		t.Errorf("redemption storing a taken token hash: %v", err3)
	}
	for _, e := range []error{err, err2, err3, s.RotateRefreshToken(ctx, rt.Hash, "wrong", storetest.RefreshFor(g, rt.Hash, now), now)} {
		for _, secret := range []string{code, code2, rt.Hash, dup.UserCodeHash} {
			if e != nil && strings.Contains(e.Error(), secret) {
				t.Errorf("error %q contains a hash", e)
			}
		}
	}
}

func TestCanceledContext(t *testing.T) {
	s := open(t, newSchema(t))
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

// TestZeroTimesAreNull: the zero time is stored as NULL.
func TestZeroTimesAreNull(t *testing.T) {
	ctx := context.Background()
	schema := newSchema(t)
	s := open(t, schema)
	c := &oauth.Client{ID: "c"}
	if err := s.CreateClient(ctx, c); err != nil {
		t.Fatal(err)
	}
	var null bool
	if err := newPool(t, schema).QueryRow(ctx, `SELECT issued_at IS NULL AND expires_at IS NULL FROM clients`).Scan(&null); err != nil {
		t.Fatal(err)
	}
	if !null {
		t.Error("zero times not stored as NULL")
	}
	got, err := s.GetClient(ctx, "c", now)
	if err != nil {
		t.Fatal(err)
	}
	if !got.IssuedAt.IsZero() || !got.ExpiresAt.IsZero() {
		t.Errorf("zero times read back as %v, %v", got.IssuedAt, got.ExpiresAt)
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
	s := open(b, newSchema(b))
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
	s := open(b, newSchema(b))
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
					b.Error(err)
					return
				}
			}
		})
	})
}

// signals counts the calls of a WatchRevocations callback.
type signals chan struct{}

func (s signals) f() {
	select {
	case s <- struct{}{}:
	default: // a signal is pending already
	}
}

// wait waits for a signal, failing the test after a generous timeout (the
// behaviour checked is that a signal arrives, not how fast).
func (s signals) wait(t *testing.T, what string) {
	t.Helper()
	select {
	case <-s:
	case <-time.After(30 * time.Second):
		t.Fatalf("no signal %s", what)
	}
}

// quiet checks that no signal is pending after the watcher has had time
// to deliver one (notifications of other schemas must not arrive).
func (s signals) quiet(t *testing.T, what string) {
	t.Helper()
	select {
	case <-s:
		t.Errorf("a signal arrived %s", what)
	case <-time.After(200 * time.Millisecond):
	}
}

// TestWatchRevocations: a Store watching the revocation channel is
// signalled when it starts listening, when another Store (another pool, as
// another replica) revokes a grant in its schema, and not for revocations in
// other schemas or for writes that revoke nothing; stop ends the watch.
func TestWatchRevocations(t *testing.T) {
	ctx := context.Background()
	schema := newSchema(t)
	a, b := newStore(t, newPool(t, schema)), newStore(t, newPool(t, schema))
	other := newStore(t, newPool(t, newSchema(t)))
	sig := make(signals, 1)
	stop := b.WatchRevocations(sig.f)
	defer stop()
	sig.wait(t, "when the watch started")

	g1, _ := storetest.Issue(t, a, "1", now)
	g2, _ := storetest.Issue(t, a, "2", now)
	og, _ := storetest.Issue(t, other, "1", now)
	if _, err := other.RevokeGrant(ctx, og.ID, now); err != nil {
		t.Fatal(err)
	}
	sig.quiet(t, "for issuing grants and for a revocation in another schema")

	if _, err := a.RevokeGrant(ctx, g1.ID, now); err != nil {
		t.Fatal(err)
	}
	sig.wait(t, "after RevokeGrant on the other store")
	if _, err := a.RevokeGrant(ctx, g1.ID, now); err != nil {
		t.Fatal(err)
	}
	sig.quiet(t, "for revoking a revoked grant")
	if _, err := a.DeleteClient(ctx, g2.ClientID, now); err != nil {
		t.Fatal(err)
	}
	sig.wait(t, "after DeleteClient")

	stop()
	g3, _ := storetest.Issue(t, a, "3", now)
	if _, err := a.RevokeGrant(ctx, g3.ID, now); err != nil {
		t.Fatal(err)
	}
	sig.quiet(t, "after stop")
}

// TestWatchReconnects: when the listening session dies, the watch
// reconnects and signals again (notifications may have been lost), and
// later revocations still arrive.
func TestWatchReconnects(t *testing.T) {
	ctx := context.Background()
	schema := newSchema(t)
	a := newStore(t, newPool(t, schema))
	sig := make(signals, 1)
	stop := a.WatchRevocations(sig.f)
	defer stop()
	sig.wait(t, "when the watch started")
	admin(t, `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
WHERE query LIKE 'LISTEN%' AND pid <> pg_backend_pid() AND datname = current_database()`)
	sig.wait(t, "after the listening session was terminated")
	g, _ := storetest.Issue(t, a, "1", now)
	if _, err := a.RevokeGrant(ctx, g.ID, now); err != nil {
		t.Fatal(err)
	}
	sig.wait(t, "for a revocation after reconnecting")
}

// TestCloseStopsWatches: Close ends the watches (it returns, and the pool
// closes, with none left running), and a watch asked for after Close does
// nothing.
func TestCloseStopsWatches(t *testing.T) {
	schema := newSchema(t)
	s, err := postgres.Open(context.Background(), schemaURL(t, schema))
	if err != nil {
		t.Fatal(err)
	}
	sig := make(signals, 1)
	s.WatchRevocations(sig.f)
	sig.wait(t, "when the watch started")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	stop := s.WatchRevocations(sig.f)
	stop()
	sig.quiet(t, "from a watch started after Close")
}
