package devicepage

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/mcp-oauth/oauth/storage"
	"github.com/mcp-oauth/oauth/storage/memory"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time          { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Advance(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

var ctx = context.Background()

func newAccounts(t *testing.T) (*Accounts, *memory.Store, *clock) {
	t.Helper()
	store := memory.New()
	clk := &clock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	a := NewAccounts(store, AccountsOptions{BcryptCost: bcrypt.MinCost, Now: clk.Now})
	if err := a.AddUser(ctx, "alice", "correct horse battery"); err != nil {
		t.Fatal(err)
	}
	return a, store, clk
}

func TestCheckUserNameAndPassword(t *testing.T) {
	for name, ok := range map[string]bool{
		"alice": true, "a.b-c_d@example.com": true, "Zoë+1": true,
		"": false, "has space": false, "tab\t": false, "<script>": false, strings.Repeat("a", 65): false,
	} {
		if err := CheckUserName(name); (err == nil) != ok {
			t.Errorf("CheckUserName(%q) = %v, want ok %v", name, err, ok)
		}
	}
	for pw, ok := range map[string]bool{
		"correct horse": true, "0123456789": true, strings.Repeat("x", 72): true,
		"short": false, strings.Repeat("x", 73): false, "bad\x00password!": false, "invalid \xff utf8": false,
	} {
		if err := CheckPassword(pw); (err == nil) != ok {
			t.Errorf("CheckPassword(%q) = %v, want ok %v", pw, err, ok)
		}
	}
}

// TestSignInAndSession: the right password starts a session whose cookie
// names the user; the store keeps only a bcrypt hash of the password and
// the hash of the cookie; sign-out ends the session.
func TestSignInAndSession(t *testing.T) {
	a, store, _ := newAccounts(t)
	u, _ := store.GetUser(ctx, "alice")
	if !strings.HasPrefix(u.PasswordHash, "$2") || strings.Contains(u.PasswordHash, "horse") {
		t.Fatalf("stored password hash %q", u.PasswordHash)
	}
	if err := a.AddUser(ctx, "alice", "another password"); !errors.Is(err, storage.ErrConflict) {
		t.Errorf("adding a taken name: %v", err)
	}
	cookie, err := a.SignIn(ctx, "alice", "correct horse battery", "192.0.2.1")
	if err != nil {
		t.Fatal(err)
	}
	if user, err := a.User(ctx, cookie); err != nil || user != "alice" {
		t.Fatalf("User = %q, %v", user, err)
	}
	if _, err := store.GetSession(ctx, cookie, time.Now()); !errors.Is(err, storage.ErrNotFound) {
		t.Error("the store holds the cookie value itself")
	}
	if err := a.SignOut(ctx, cookie); err != nil {
		t.Fatal(err)
	}
	if _, err := a.User(ctx, cookie); !errors.Is(err, ErrNoSession) {
		t.Errorf("session after sign-out: %v", err)
	}
	for _, bad := range []string{"", "mcp_sess_x", "garbage"} {
		if _, err := a.User(ctx, bad); !errors.Is(err, ErrNoSession) {
			t.Errorf("User(%q) = %v", bad, err)
		}
	}
}

// TestSignInFailuresSayNothing: a wrong password and an unknown name give
// the same error.
func TestSignInFailuresSayNothing(t *testing.T) {
	a, _, _ := newAccounts(t)
	_, e1 := a.SignIn(ctx, "alice", "wrong password!", "192.0.2.1")
	_, e2 := a.SignIn(ctx, "mallory", "correct horse battery", "192.0.2.2")
	if !errors.Is(e1, ErrSignInFailed) || !errors.Is(e2, ErrSignInFailed) || e1.Error() != e2.Error() {
		t.Errorf("wrong password: %v; unknown name: %v; want the same ErrSignInFailed", e1, e2)
	}
}

// TestAccountLockout: five consecutive failures lock the account for a
// minute, each further failure doubles the lock (up to an hour); while
// locked even the right password is refused; a success resets the count.
func TestAccountLockout(t *testing.T) {
	a, store, clk := newAccounts(t)
	fail := func() error {
		clk.Advance(7 * time.Second) // stay within the per-IP budget
		_, err := a.SignIn(ctx, "alice", "wrong password!", "192.0.2.1")
		return err
	}
	for i := range lockoutThreshold {
		if err := fail(); !errors.Is(err, ErrSignInFailed) {
			t.Fatalf("failure %d: %v", i+1, err)
		}
	}
	if _, err := a.SignIn(ctx, "alice", "correct horse battery", "192.0.2.1"); !errors.Is(err, ErrThrottled) {
		t.Fatalf("right password while locked: %v, want ErrThrottled", err)
	}
	clk.Advance(time.Minute)
	if err := fail(); !errors.Is(err, ErrSignInFailed) {
		t.Fatalf("sixth failure after the lock: %v", err)
	}
	u, _ := store.GetUser(ctx, "alice")
	if got := u.LockedUntil.Sub(clk.Now()); got != 2*time.Minute {
		t.Errorf("lock after six failures: %v, want 2m", got)
	}
	clk.Advance(2 * time.Minute)
	if _, err := a.SignIn(ctx, "alice", "correct horse battery", "192.0.2.1"); err != nil {
		t.Fatalf("right password after the lock: %v", err)
	}
	if u, _ := store.GetUser(ctx, "alice"); u.Failures != 0 || !u.LockedUntil.IsZero() {
		t.Errorf("after a success: failures %d, locked until %v", u.Failures, u.LockedUntil)
	}
	for f, want := range map[int]time.Duration{4: 0, 5: time.Minute, 6: 2 * time.Minute, 9: 16 * time.Minute, 30: time.Hour} {
		got := time.Duration(0)
		if until := lockedUntil(f, clk.Now()); !until.IsZero() {
			got = until.Sub(clk.Now())
		}
		if got != want {
			t.Errorf("lock after %d failures: %v, want %v", f, got, want)
		}
	}
}

// TestUnknownNamesLockToo: an unknown name is throttled after as many
// failures as a real one, so lockout does not reveal which names exist.
func TestUnknownNamesLockToo(t *testing.T) {
	a, _, clk := newAccounts(t)
	var last error
	for range lockoutThreshold + 1 {
		clk.Advance(7 * time.Second)
		_, last = a.SignIn(ctx, "mallory", "whatever password", "192.0.2.1")
	}
	if !errors.Is(last, ErrThrottled) {
		t.Errorf("unknown name after %d failures: %v, want ErrThrottled", lockoutThreshold+1, last)
	}
}

// TestPerIPLimit: one client IP gets ten attempts a minute, whatever the
// names; other IPs are not affected.
func TestPerIPLimit(t *testing.T) {
	a, _, clk := newAccounts(t)
	for i := range ipAttempts {
		if _, err := a.SignIn(ctx, "user"+string(rune('a'+i)), "whatever password", "198.51.100.7"); !errors.Is(err, ErrSignInFailed) {
			t.Fatalf("attempt %d: %v", i+1, err)
		}
	}
	if _, err := a.SignIn(ctx, "alice", "correct horse battery", "198.51.100.7"); !errors.Is(err, ErrThrottled) {
		t.Errorf("eleventh attempt within a minute: %v, want ErrThrottled", err)
	}
	if _, err := a.SignIn(ctx, "alice", "correct horse battery", "198.51.100.8"); err != nil {
		t.Errorf("another IP: %v", err)
	}
	clk.Advance(ipWindow)
	if _, err := a.SignIn(ctx, "alice", "correct horse battery", "198.51.100.7"); err != nil {
		t.Errorf("the first IP a minute later: %v", err)
	}
}

// TestSessionTimeouts: a session ends after IdleTimeout without use, and
// after SessionLifetime whatever the use; use extends the idle timeout.
func TestSessionTimeouts(t *testing.T) {
	a, _, clk := newAccounts(t)
	cookie, err := a.SignIn(ctx, "alice", "correct horse battery", "192.0.2.1")
	if err != nil {
		t.Fatal(err)
	}
	for range 11 * 60 / 20 { // used every 20 minutes for 11 hours
		clk.Advance(20 * time.Minute)
		if _, err := a.User(ctx, cookie); err != nil {
			t.Fatalf("session used every 20 min, at %v: %v", clk.Now(), err)
		}
	}
	clk.Advance(time.Hour + time.Minute)
	if _, err := a.User(ctx, cookie); !errors.Is(err, ErrNoSession) {
		t.Errorf("after the absolute lifetime: %v", err)
	}
	idle, _ := a.SignIn(ctx, "alice", "correct horse battery", "192.0.2.1")
	clk.Advance(DefaultIdleTimeout)
	if _, err := a.User(ctx, idle); !errors.Is(err, ErrNoSession) {
		t.Errorf("after the idle timeout: %v", err)
	}
}

// TestDeletedUserLosesSessions: removing a user ends their sessions.
func TestDeletedUserLosesSessions(t *testing.T) {
	a, store, _ := newAccounts(t)
	cookie, _ := a.SignIn(ctx, "alice", "correct horse battery", "192.0.2.1")
	if err := store.DeleteUser(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.User(ctx, cookie); !errors.Is(err, ErrNoSession) {
		t.Errorf("session of a deleted user: %v", err)
	}
}

func TestCSRFToken(t *testing.T) {
	c1, c2 := "mcp_sess_one", "mcp_sess_two"
	if CSRFToken(c1) == CSRFToken(c2) || CSRFToken(c1) != CSRFToken(c1) || strings.Contains(CSRFToken(c1), c1) {
		t.Error("CSRF tokens must be per session, stable, and not reveal the cookie")
	}
	if !CheckCSRF(c1, CSRFToken(c1)) || CheckCSRF(c1, CSRFToken(c2)) || CheckCSRF(c1, "") || CheckCSRF("", CSRFToken("")) {
		t.Error("CheckCSRF accepts a wrong token or an empty cookie")
	}
}

func TestLogo(t *testing.T) {
	for raw, want := range map[string]string{
		"https://cdn.example/logo.png":       "https://cdn.example",
		"data:image/png;base64,iVBORw0KGgo=": "data:",
		"http://cdn.example/logo.png":        "",
		"javascript:alert(1)":                "",
		"https://cdn.example/a b.png":        "",
		"https://cdn.example/x'.png":         "",
		"":                                   "",
	} {
		u, src := logo(raw)
		if src != want || (want == "") != (u == "") {
			t.Errorf("logo(%q) = %q, %q; want source %q", raw, u, src, want)
		}
	}
}
