package storetest_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	oauth "github.com/mcp-oauth/oauth"
	"github.com/mcp-oauth/oauth/storage"
	"github.com/mcp-oauth/oauth/storage/memory"
	"github.com/mcp-oauth/oauth/storage/storetest"
)

// The suite is checked against mutants: the memory store with one bug
// each. TestSuiteCatchesMutants runs this test binary again per mutant
// (TestMutant, selected by envMutant) and requires the named subtests to
// fail, which shows that their assertions can fail.

const envMutant = "STORETEST_MUTANT"

type mutant struct {
	name  string
	wrap  func(*memory.Store) storage.Store
	fails []string // subtests of Run that must fail
}

var mutants = []mutant{
	{"RedeemIgnoresConflict", func(s *memory.Store) storage.Store { return redeemIgnoresConflict{s} },
		[]string{"Codes/RedeemTwice", "Codes/RedeemConcurrent", "Codes/RedeemRevokedGrant"}},
	{"RedeemNotFoundIsConflict", func(s *memory.Store) storage.Store { return redeemNotFoundIsConflict{s} },
		[]string{"Codes/RedeemExpired", "Codes/RedeemAbsent", "Codes/RedeemAfterRevokeGrant"}},
	{"RotateIgnoresConflict", func(s *memory.Store) storage.Store { return rotateIgnoresConflict{s} },
		[]string{"RefreshTokens/RotateConcurrent", "RefreshTokens/RotateSpent", "RefreshTokens/RotateWrongExpectedSuccessor"}},
	{"DecideIgnoresConflict", func(s *memory.Store) storage.Store { return decideIgnoresConflict{s} },
		[]string{"Pending/DecideTwice", "Pending/DecideConcurrent"}},
	{"CompleteIgnoresConflict", func(s *memory.Store) storage.Store { return completeIgnoresConflict{s} },
		[]string{"Pending/CompleteOnlyFromApproved", "Pending/CompleteConcurrent"}},
	{"ClientNeverLapses", func(s *memory.Store) storage.Store { return clientNeverLapses{s} },
		[]string{"Clients/Lapse"}},
	{"CodeExpiresLate", func(s *memory.Store) storage.Store { return codeExpiresLate{s} },
		[]string{"Codes/Expiry"}},
	{"ClientsListedNewestFirst", func(s *memory.Store) storage.Store { return clientsReversed{s} },
		[]string{"Clients/List", "Clients/ListOrderIsByIssuedAt"}},
	{"KeysListedOldestFirst", func(s *memory.Store) storage.Store { return keysReversed{s} },
		[]string{"Keys/AddRetiresAndLists", "Keys/Delete"}},
	{"ClientAliased", func(s *memory.Store) storage.Store { return &clientAliased{Store: s} },
		[]string{"Clients/CopiesInAndOut"}},
	{"SecondsPrecision", func(s *memory.Store) storage.Store { return secondsPrecision{s} },
		[]string{"Clients/RoundTrip"}},
	{"RevokeTwiceFails", func(s *memory.Store) storage.Store { return revokeTwiceFails{s} },
		[]string{"Grants/RevokeTwice"}},
	{"TouchClientNoop", func(s *memory.Store) storage.Store { return touchClientNoop{s} },
		[]string{"Clients/Touch"}},
	{"CodePlaintextKept", func(s *memory.Store) storage.Store { return codePlaintextKept{s} },
		[]string{"Codes/PlaintextNotKept"}},
	{"SweepDoesNothing", func(s *memory.Store) storage.Store { return sweepDoesNothing{s} },
		[]string{"Sweep/DeletesDeadRows", "Sweep/Concurrent"}},
	{"SweepOvercounts", func(s *memory.Store) storage.Store { return sweepOvercounts{s} },
		[]string{"Sweep/Empty", "Sweep/KeepsLiveRows", "Sweep/Concurrent"}},
	{"RevocationCountFrozen", func(s *memory.Store) storage.Store { return revocationCountFrozen{s} },
		[]string{"RevocationCount/RevokeGrant", "RevocationCount/DeleteClient", "RevocationCount/SweepOfLapsedClient",
			"RevocationCount/SweepOfGrantThatCanIssueNothing", "RevocationCount/DeleteClientWithoutGrants",
			"RevocationCount/SweepOfLapsedClientWithoutGrants"}},
	{"SessionIdleExpiryIgnored", func(s *memory.Store) storage.Store { return sessionIdleIgnored{s} },
		[]string{"Sessions/Expiry"}},
	{"RecordSignInBlind", func(s *memory.Store) storage.Store { return recordSignInBlind{s} },
		[]string{"Users/RecordSignInComparesCount"}},
	{"SetPasswordKeepsSessions", func(s *memory.Store) storage.Store { return &setPasswordKeepsSessions{Store: s} },
		[]string{"Users/SetPasswordEndsSessions"}},
	{"RevocationCountPerWrite", func(s *memory.Store) storage.Store { return &revocationCountPerWrite{Store: s} },
		[]string{"RevocationCount/NotChangedByIssuing", "RevocationCount/SweepOfRevokedGrant"}},
}

func TestMutant(t *testing.T) {
	name := os.Getenv(envMutant)
	if name == "" {
		t.Skip("runs only as a subprocess of TestSuiteCatchesMutants")
	}
	i := slices.IndexFunc(mutants, func(m mutant) bool { return m.name == name })
	if i < 0 {
		t.Fatalf("unknown mutant %q", name)
	}
	storetest.Run(t, func(t *testing.T) storage.Store { return mutants[i].wrap(memory.New()) })
	storetest.RunAccounts(t, func(t *testing.T) storage.AccountStore {
		return mutants[i].wrap(memory.New()).(storage.AccountStore)
	})
}

func TestSuiteCatchesMutants(t *testing.T) {
	if os.Getenv(envMutant) != "" {
		t.Skip("this is a mutant run")
	}
	if testing.Short() {
		t.Skip("runs the suite once per mutant")
	}
	for _, m := range mutants {
		t.Run(m.name, func(t *testing.T) {
			t.Parallel()
			cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^TestMutant$", "-test.count=1", "-test.v", "-test.timeout=5m")
			cmd.Env = append(os.Environ(), envMutant+"="+m.name)
			out, err := cmd.CombinedOutput()
			var exit *exec.ExitError
			if !errors.As(err, &exit) {
				t.Fatalf("the suite passed a store with this bug (err %v)", err)
			}
			for _, want := range m.fails {
				if !strings.Contains(string(out), "--- FAIL: TestMutant/"+want+" (") {
					t.Errorf("subtest %s did not fail", want)
				}
			}
			if t.Failed() {
				t.Logf("output:\n%s", out)
			}
		})
	}
}

type redeemIgnoresConflict struct{ *memory.Store }

func (s redeemIgnoresConflict) RedeemCode(ctx context.Context, hash string, now time.Time, rt *storage.RefreshRecord) error {
	if err := s.Store.RedeemCode(ctx, hash, now, rt); !errors.Is(err, storage.ErrConflict) {
		return err
	}
	return nil
}

type redeemNotFoundIsConflict struct{ *memory.Store }

func (s redeemNotFoundIsConflict) RedeemCode(ctx context.Context, hash string, now time.Time, rt *storage.RefreshRecord) error {
	err := s.Store.RedeemCode(ctx, hash, now, rt)
	if errors.Is(err, storage.ErrNotFound) {
		return storage.ErrConflict
	}
	return err
}

type rotateIgnoresConflict struct{ *memory.Store }

func (s rotateIgnoresConflict) RotateRefreshToken(ctx context.Context, oldHash, expected string, next *storage.RefreshRecord, now time.Time) error {
	if err := s.Store.RotateRefreshToken(ctx, oldHash, expected, next, now); !errors.Is(err, storage.ErrConflict) {
		return err
	}
	return nil
}

type decideIgnoresConflict struct{ *memory.Store }

func (s decideIgnoresConflict) DecidePending(ctx context.Context, id string, status oauth.PendingStatus, subject string, now time.Time) error {
	if err := s.Store.DecidePending(ctx, id, status, subject, now); !errors.Is(err, storage.ErrConflict) {
		return err
	}
	return nil
}

type completeIgnoresConflict struct{ *memory.Store }

func (s completeIgnoresConflict) CompletePending(ctx context.Context, id string, g *oauth.Grant, c *storage.CodeRecord, now time.Time) error {
	if err := s.Store.CompletePending(ctx, id, g, c, now); !errors.Is(err, storage.ErrConflict) {
		return err
	}
	return nil
}

type clientNeverLapses struct{ *memory.Store }

func (s clientNeverLapses) GetClient(ctx context.Context, id string, now time.Time) (*oauth.Client, error) {
	return s.Store.GetClient(ctx, id, time.Time{})
}

// codeExpiresLate treats a code as live at its expiry instant.
type codeExpiresLate struct{ *memory.Store }

func (s codeExpiresLate) GetCode(ctx context.Context, hash string, now time.Time) (*storage.CodeRecord, error) {
	return s.Store.GetCode(ctx, hash, now.Add(-time.Nanosecond))
}

type clientsReversed struct{ *memory.Store }

func (s clientsReversed) ListClients(ctx context.Context, now time.Time) ([]*oauth.Client, error) {
	l, err := s.Store.ListClients(ctx, now)
	slices.Reverse(l)
	return l, err
}

type keysReversed struct{ *memory.Store }

func (s keysReversed) ListKeys(ctx context.Context) ([]*storage.KeyRecord, error) {
	l, err := s.Store.ListKeys(ctx)
	slices.Reverse(l)
	return l, err
}

// clientAliased hands every caller the same *oauth.Client per ID.
type clientAliased struct {
	*memory.Store
	mu    sync.Mutex
	cache map[string]*oauth.Client
}

func (s *clientAliased) GetClient(ctx context.Context, id string, now time.Time) (*oauth.Client, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c, ok := s.cache[id]; ok {
		return c, nil
	}
	c, err := s.Store.GetClient(ctx, id, now)
	if err == nil {
		if s.cache == nil {
			s.cache = map[string]*oauth.Client{}
		}
		s.cache[id] = c
	}
	return c, err
}

type secondsPrecision struct{ *memory.Store }

func (s secondsPrecision) CreateClient(ctx context.Context, c *oauth.Client) error {
	d := *c
	d.IssuedAt = d.IssuedAt.Truncate(time.Second)
	return s.Store.CreateClient(ctx, &d)
}

type revokeTwiceFails struct{ *memory.Store }

func (s revokeTwiceFails) RevokeGrant(ctx context.Context, id string, now time.Time) error {
	if g, err := s.Store.GetGrant(ctx, id); err == nil && !g.RevokedAt.IsZero() {
		return storage.ErrConflict
	}
	return s.Store.RevokeGrant(ctx, id, now)
}

type touchClientNoop struct{ *memory.Store }

func (touchClientNoop) TouchClient(context.Context, string, time.Time) error { return nil }

type codePlaintextKept struct{ *memory.Store }

func (s codePlaintextKept) GetCode(ctx context.Context, hash string, now time.Time) (*storage.CodeRecord, error) {
	c, err := s.Store.GetCode(ctx, hash, now)
	if err == nil {
		c.Code = "mcp_code_plaintext"
	}
	return c, err
}

type sweepDoesNothing struct{ *memory.Store }

func (sweepDoesNothing) Sweep(context.Context, time.Time) (int64, error) { return 0, nil }

type sweepOvercounts struct{ *memory.Store }

func (s sweepOvercounts) Sweep(ctx context.Context, now time.Time) (int64, error) {
	n, err := s.Store.Sweep(ctx, now)
	return n + 1, err
}

type revocationCountFrozen struct{ *memory.Store }

func (revocationCountFrozen) RevocationCount(context.Context) (int64, error) { return 7, nil }

// revocationCountPerWrite moves the count on every write, which is safe
// but would empty providers' caches all the time.
type revocationCountPerWrite struct {
	*memory.Store
	writes atomic.Int64
}

func (s *revocationCountPerWrite) RevocationCount(ctx context.Context) (int64, error) {
	n, err := s.Store.RevocationCount(ctx)
	return n + s.writes.Load(), err
}

func (s *revocationCountPerWrite) RedeemCode(ctx context.Context, hash string, now time.Time, rt *storage.RefreshRecord) error {
	s.writes.Add(1)
	return s.Store.RedeemCode(ctx, hash, now, rt)
}

func (s *revocationCountPerWrite) Sweep(ctx context.Context, now time.Time) (int64, error) {
	s.writes.Add(1)
	return s.Store.Sweep(ctx, now)
}

// sessionIdleIgnored honours only a session's absolute expiry.
type sessionIdleIgnored struct{ *memory.Store }

func (s sessionIdleIgnored) CreateSession(ctx context.Context, ss *storage.SessionRecord) error {
	c := *ss
	c.IdleExpiresAt = c.ExpiresAt
	return s.Store.CreateSession(ctx, &c)
}

// recordSignInBlind writes the count whatever is stored (no compare).
type recordSignInBlind struct{ *memory.Store }

func (s recordSignInBlind) RecordSignIn(ctx context.Context, name string, _, failures int, lockedUntil time.Time) error {
	u, err := s.GetUser(ctx, name)
	if err != nil {
		return err
	}
	return s.Store.RecordSignIn(ctx, name, u.Failures, failures, lockedUntil)
}

// setPasswordKeepsSessions changes the password but keeps the sessions.
type setPasswordKeepsSessions struct {
	*memory.Store
	mu      sync.Mutex
	created []*storage.SessionRecord
}

func (s *setPasswordKeepsSessions) CreateSession(ctx context.Context, ss *storage.SessionRecord) error {
	s.mu.Lock()
	s.created = append(s.created, ss)
	s.mu.Unlock()
	return s.Store.CreateSession(ctx, ss)
}

func (s *setPasswordKeepsSessions) SetPassword(ctx context.Context, name, hash string) error {
	if err := s.Store.SetPassword(ctx, name, hash); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, ss := range s.created {
		if ss.User == name {
			s.Store.CreateSession(ctx, ss)
		}
	}
	return nil
}
