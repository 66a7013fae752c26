package approval

import (
	"fmt"
	"testing"

	"github.com/mcp-oauth/oauth/internal/ratelimit"

	"github.com/mcp-oauth/oauth/storage/memory"
)

// BenchmarkSignIn measures a console sign-in at the default bcrypt cost:
// right password (a session is started), wrong password, unknown name
// (the same bcrypt work on a dummy hash), and an attempt refused by the
// lock, which does no bcrypt at all.
func BenchmarkSignIn(b *testing.B) {
	store := memory.New()
	a := NewAccounts(store, AccountsOptions{})
	if err := a.AddUser(ctx, "alice", "correct horse battery"); err != nil {
		b.Fatal(err)
	}
	if err := a.AddUser(ctx, "locked", "correct horse battery"); err != nil {
		b.Fatal(err)
	}
	for i := range lockoutThreshold {
		a.SignIn(ctx, SignInAttempt{Name: "locked", Password: "wrong password!", ClientIP: fmt.Sprint("192.0.2.", i)})
	}
	in, err := a.SignIn(ctx, SignInAttempt{Name: "alice", Password: "correct horse battery"})
	if err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct {
		name, user, password string
	}{
		{"right", "alice", "correct horse battery"},
		{"wrong", "alice", "wrong password!"},
		{"unknown", "nobody", "wrong password!"},
		{"locked", "locked", "correct horse battery"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			for b.Loop() {
				// A device cookie keeps alice unlocked; "nobody" and
				// "locked" have none that counts, and go through the
				// lock. The limiters are reset so that every iteration
				// measures the same path.
				a.SignIn(ctx, SignInAttempt{Name: bc.user, Password: bc.password, Device: in.Device})
				a.devices = ratelimit.New(deviceWindow, "")
				a.ips = ratelimit.New(ipWindow, "")
				a.unknown = map[string]unknownState{}
			}
		})
	}
}
