package approval

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/mcp-oauth/oauth/internal/testclock"
	"github.com/mcp-oauth/oauth/storage"
	"github.com/mcp-oauth/oauth/storage/memory"
)

var ctx = context.Background()

func newAccounts(t *testing.T) (*Accounts, *memory.Store, *testclock.Clock) {
	t.Helper()
	store := memory.New()
	clk := testclock.New(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
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
	cookie, err := signIn(a, "alice", "correct horse battery", "192.0.2.1")
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
	_, e1 := signIn(a, "alice", "wrong password!", "192.0.2.1")
	_, e2 := signIn(a, "mallory", "correct horse battery", "192.0.2.2")
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
		_, err := signIn(a, "alice", "wrong password!", "192.0.2.1")
		return err
	}
	for i := range lockoutThreshold {
		if err := fail(); !errors.Is(err, ErrSignInFailed) {
			t.Fatalf("failure %d: %v", i+1, err)
		}
	}
	if _, err := signIn(a, "alice", "correct horse battery", "192.0.2.1"); !errors.Is(err, ErrThrottled) {
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
	if _, err := signIn(a, "alice", "correct horse battery", "192.0.2.1"); err != nil {
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
		_, last = signIn(a, "mallory", "whatever password", "192.0.2.1")
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
		if _, err := signIn(a, "user"+string(rune('a'+i)), "whatever password", "198.51.100.7"); !errors.Is(err, ErrSignInFailed) {
			t.Fatalf("attempt %d: %v", i+1, err)
		}
	}
	if _, err := signIn(a, "alice", "correct horse battery", "198.51.100.7"); !errors.Is(err, ErrThrottled) {
		t.Errorf("eleventh attempt within a minute: %v, want ErrThrottled", err)
	}
	if _, err := signIn(a, "alice", "correct horse battery", "198.51.100.8"); err != nil {
		t.Errorf("another IP: %v", err)
	}
	clk.Advance(ipWindow)
	if _, err := signIn(a, "alice", "correct horse battery", "198.51.100.7"); err != nil {
		t.Errorf("the first IP a minute later: %v", err)
	}
}

// TestSessionTimeouts: a session ends after IdleTimeout without use, and
// after SessionLifetime whatever the use; use extends the idle timeout.
func TestSessionTimeouts(t *testing.T) {
	a, _, clk := newAccounts(t)
	cookie, err := signIn(a, "alice", "correct horse battery", "192.0.2.1")
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
	idle, _ := signIn(a, "alice", "correct horse battery", "192.0.2.1")
	clk.Advance(DefaultIdleTimeout)
	if _, err := a.User(ctx, idle); !errors.Is(err, ErrNoSession) {
		t.Errorf("after the idle timeout: %v", err)
	}
}

// TestDeletedUserLosesSessions: removing a user ends their sessions.
func TestDeletedUserLosesSessions(t *testing.T) {
	a, store, _ := newAccounts(t)
	cookie, _ := signIn(a, "alice", "correct horse battery", "192.0.2.1")
	if err := store.DeleteUser(ctx, "alice"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.User(ctx, cookie); !errors.Is(err, ErrNoSession) {
		t.Errorf("session of a deleted user: %v", err)
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

// signIn signs in from ip without a device cookie and returns the session
// cookie.
func signIn(a *Accounts, name, password, ip string) (string, error) {
	in, err := a.SignIn(ctx, SignInAttempt{Name: name, Password: password, ClientIP: ip})
	if err != nil {
		return "", err
	}
	return in.Session, nil
}

// TestConcurrentGuessesAllCount: wrong passwords sent all at once, each
// from its own address, still lock the account after five: the count is
// raised before the password is checked, compare-and-set.
func TestConcurrentGuessesAllCount(t *testing.T) {
	a, store, _ := newAccounts(t)
	const n = 60
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			_, err := signIn(a, "alice", "wrong password!", fmt.Sprintf("198.51.100.%d", i))
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	checked := 0
	for err := range errs {
		switch {
		case errors.Is(err, ErrSignInFailed):
			checked++
		case !errors.Is(err, ErrThrottled):
			t.Errorf("attempt: %v", err)
		}
	}
	if checked != lockoutThreshold {
		t.Errorf("%d of %d concurrent guesses were checked against the password, want %d", checked, n, lockoutThreshold)
	}
	if u, _ := store.GetUser(ctx, "alice"); u.Failures != lockoutThreshold || u.LockedUntil.IsZero() {
		t.Errorf("stored failures %d, locked until %v", u.Failures, u.LockedUntil)
	}
}

// TestDeviceCookieOutlastsLockout: a stranger who keeps the account
// locked does not keep out its owner, whose browser signed in before; a
// forged, another user's, or outdated (password changed) device cookie
// is no help, and a device cookie that keeps failing is trusted no more.
func TestDeviceCookieOutlastsLockout(t *testing.T) {
	a, _, clk := newAccounts(t)
	if err := a.AddUser(ctx, "bob", "bob's own password"); err != nil {
		t.Fatal(err)
	}
	owner, err := a.SignIn(ctx, SignInAttempt{Name: "alice", Password: "correct horse battery", ClientIP: "192.0.2.1"})
	if err != nil || !strings.HasPrefix(owner.Device, devicePrefix) {
		t.Fatalf("sign in: %+v, %v", owner, err)
	}
	bobs, _ := a.SignIn(ctx, SignInAttempt{Name: "bob", Password: "bob's own password", ClientIP: "192.0.2.1"})
	next := 0
	lock := func() { // a stranger, from many addresses, locks the account
		for range lockoutThreshold + 1 {
			next++
			signIn(a, "alice", "wrong password!", fmt.Sprintf("203.0.113.%d", next))
		}
	}
	lock()
	attempt := func(device, password string) error {
		_, err := a.SignIn(ctx, SignInAttempt{Name: "alice", Password: password, ClientIP: "192.0.2.1", Device: device})
		return err
	}
	if err := attempt("", "correct horse battery"); !errors.Is(err, ErrThrottled) {
		t.Fatalf("the locked account from a new browser: %v, want ErrThrottled", err)
	}
	if err := attempt(owner.Device, "correct horse battery"); err != nil {
		t.Fatalf("the owner's browser while a stranger keeps the account locked: %v", err)
	}
	for name, forged := range map[string]string{
		"bob's device cookie": bobs.Device,
		"a forged MAC":        owner.Device[:len(owner.Device)-4] + "AAAA",
		"junk":                "mcp_dev_x.y",
	} {
		lock() // the owner's success above cleared the count
		if err := attempt(forged, "correct horse battery"); !errors.Is(err, ErrThrottled) {
			t.Errorf("%s: %v, want ErrThrottled", name, err)
		}
	}
	// The device cookie's own limit.
	fresh, err := a.SignIn(ctx, SignInAttempt{Name: "alice", Password: "correct horse battery", Device: owner.Device})
	if err != nil {
		t.Fatal(err)
	}
	for range deviceFailures {
		if err := attempt(fresh.Device, "wrong password!"); !errors.Is(err, ErrSignInFailed) {
			t.Fatalf("wrong password from the device: %v", err)
		}
	}
	lock()
	if err := attempt(fresh.Device, "correct horse battery"); !errors.Is(err, ErrThrottled) {
		t.Errorf("a device cookie after %d failures on a locked account: %v, want ErrThrottled", deviceFailures, err)
	}
	clk.Advance(deviceWindow + time.Hour)
	if err := a.SetPassword(ctx, "alice", "a brand new password"); err != nil {
		t.Fatal(err)
	}
	lock()
	if err := attempt(fresh.Device, "a brand new password"); !errors.Is(err, ErrThrottled) {
		t.Errorf("a device cookie from before the password change: %v, want ErrThrottled", err)
	}
}

// TestIPv6NetworkIsOneClient: the per-address limit counts an IPv6 /64 as
// one client.
func TestIPv6NetworkIsOneClient(t *testing.T) {
	a, _, _ := newAccounts(t)
	for i := range ipAttempts {
		signIn(a, fmt.Sprint("name", i), "whatever password", fmt.Sprintf("2001:db8:1:2::%x", i+1))
	}
	if _, err := signIn(a, "alice", "correct horse battery", "2001:db8:1:2:ffff::1"); !errors.Is(err, ErrThrottled) {
		t.Errorf("the /64's eleventh attempt: %v, want ErrThrottled", err)
	}
	if _, err := signIn(a, "alice", "correct horse battery", "2001:db8:1:3::1"); err != nil {
		t.Errorf("the next /64: %v", err)
	}
}

// TestUnknownNamesBehaveAlike: a real name and an unknown one give the
// same answers through lockout, its expiry and the next failures.
func TestUnknownNamesBehaveAlike(t *testing.T) {
	answers := func(name string) []string {
		a, _, clk := newAccounts(t)
		var out []string
		for i := range 9 {
			clk.Advance(7 * time.Second)
			if i == 7 {
				clk.Advance(time.Hour) // past any lock
			}
			_, err := signIn(a, name, "wrong password!", "192.0.2.1")
			out = append(out, fmt.Sprint(err))
		}
		return out
	}
	real, unknown := answers("alice"), answers("mallory")
	if !slices.Equal(real, unknown) {
		t.Errorf("a real name answers\n%q\nan unknown one\n%q", real, unknown)
	}
}

// TestSetPasswordEndsSessions: a password reset signs every browser out.
func TestSetPasswordEndsSessions(t *testing.T) {
	a, _, _ := newAccounts(t)
	cookie, _ := signIn(a, "alice", "correct horse battery", "192.0.2.1")
	if err := a.SetPassword(ctx, "alice", "a brand new password"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.User(ctx, cookie); !errors.Is(err, ErrNoSession) {
		t.Errorf("a session from before the reset: %v", err)
	}
}

// TestDeviceCookieLimits: a device cookie's own limit holds against
// attempts sent all at once, and the cookie expires on the server.
func TestDeviceCookieLimits(t *testing.T) {
	a, _, _ := newAccounts(t)
	in, err := a.SignIn(ctx, SignInAttempt{Name: "alice", Password: "correct horse battery"})
	if err != nil {
		t.Fatal(err)
	}
	for i := range lockoutThreshold + 1 { // locked by a stranger
		signIn(a, "alice", "wrong password!", fmt.Sprintf("203.0.113.%d", i))
	}
	var wg sync.WaitGroup
	errs := make(chan error, 50)
	for range 50 {
		wg.Go(func() {
			_, err := a.SignIn(ctx, SignInAttempt{Name: "alice", Password: "wrong password!", ClientIP: "198.51.100.1", Device: in.Device})
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	checked := 0
	for err := range errs {
		if errors.Is(err, ErrSignInFailed) {
			checked++
		}
	}
	if checked != deviceFailures {
		t.Errorf("%d of 50 concurrent guesses with one device cookie were checked, want %d", checked, deviceFailures)
	}

	b, _, bclk := newAccounts(t)
	old, _ := b.SignIn(ctx, SignInAttempt{Name: "alice", Password: "correct horse battery"})
	bclk.Advance(DeviceCookieLifetime)
	for i := range lockoutThreshold + 1 {
		signIn(b, "alice", "wrong password!", fmt.Sprintf("203.0.113.%d", i))
	}
	if _, err := b.SignIn(ctx, SignInAttempt{Name: "alice", Password: "correct horse battery", Device: old.Device}); !errors.Is(err, ErrThrottled) {
		t.Errorf("an expired device cookie on a locked account: %v, want ErrThrottled", err)
	}
}

func TestDummyHashHasTheDefaultCost(t *testing.T) {
	if cost, err := bcrypt.Cost([]byte(dummyHash)); err != nil || cost != DefaultBcryptCost {
		t.Errorf("dummyHash cost %d, %v; want %d", cost, err, DefaultBcryptCost)
	}
}
