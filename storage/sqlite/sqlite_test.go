package sqlite_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	oauth "github.com/mcp-oauth/oauth"
	"github.com/mcp-oauth/oauth/storage"
	"github.com/mcp-oauth/oauth/storage/sqlite"
	"github.com/mcp-oauth/oauth/storage/storetest"
)

func open(t testing.TB, path string) *sqlite.Store {
	s, err := sqlite.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) storage.Store { return open(t, filepath.Join(t.TempDir(), "test.db")) })
}

func TestFileModeAndReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "test.db")
	s, err := sqlite.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("database file mode %v, want 0600", fi.Mode().Perm())
	}
	c := &oauth.Client{ID: "c1", IssuedAt: time.Now()}
	c.RedirectURIs = []string{"https://a.example/cb"}
	if err := s.CreateClient(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s2 := open(t, path) // migrations already applied: must not fail or lose data
	if _, err := s2.GetClient(context.Background(), "c1", time.Now()); err != nil {
		t.Fatalf("client lost on reopen: %v", err)
	}
}
