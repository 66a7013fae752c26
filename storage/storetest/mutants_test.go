package storetest_test

import (
	"context"
	"errors"
	"math"
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
	{"ExtendMovesBack", func(s *memory.Store) storage.Store { return extendMovesBack{s} },
		[]string{"MachineGrants/Extend"}},
	{"ExtendAnyGrant", func(s *memory.Store) storage.Store { return extendAnyGrant{s} },
		[]string{"MachineGrants/ExtendRefused"}},
	{"SweepIgnoresGrantExpiry", func(s *memory.Store) storage.Store { return sweepIgnoresGrantExpiry{s} },
		[]string{"MachineGrants/SweepKeepsUntilExpiry"}},
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

	// Claims, grant data and what ends with a grant.
	{"ClaimsNotStored", func(s *memory.Store) storage.Store { return claimsNotStored{s} },
		[]string{"Grants/RoundTrip", "Grants/Claims", "Grants/List", "Pending/Complete"}},
	{"ClaimsKeptAsGiven", func(s *memory.Store) storage.Store { return &claimsKeptAsGiven{Store: s} },
		[]string{"Grants/Claims", "Grants/CopiesInAndOut"}},
	{"CompleteDropsData", func(s *memory.Store) storage.Store { return completeDropsData{s} },
		[]string{"GrantData/StoredByCompletePending", "Pending/Complete"}},
	{"DecideDropsSetup", func(s *memory.Store) storage.Store { return decideDropsSetup{s} },
		[]string{"Pending/Decide"}},
	{"CompleteKeepsSetup", func(s *memory.Store) storage.Store { return &completeKeepsSetup{Store: s} },
		[]string{"Pending/Complete"}},
	{"RevokeKeepsData", func(s *memory.Store) storage.Store { return &keepsData{Store: s, onRevoke: true} },
		[]string{"Grants/RevokeDeletesData", "GrantData/GetAbsent", "GrantData/GetKey"}},
	{"DeleteClientKeepsData", func(s *memory.Store) storage.Store { return &keepsData{Store: s, onDelete: true} },
		[]string{"Clients/DeleteDeletesData", "GrantData/GetAbsent"}},
	{"RevokeReturnsNothing", func(s *memory.Store) storage.Store { return revokeReturnsNothing{s} },
		[]string{"Grants/RevokeReturnsGrant", "Grants/RevokeTwice", "Grants/Claims", "GrantData/PutRacesRevoke"}},
	{"RevokeTwiceReturnsGrant", func(s *memory.Store) storage.Store { return &revokeTwiceReturnsGrant{Store: s} },
		[]string{"Grants/RevokeTwice"}},
	{"DeleteClientDropsData", func(s *memory.Store) storage.Store { return deleteClientDropsData{s} },
		[]string{"Clients/DeleteReturnsGrants"}},
	{"GetGrantDataReturnsExpired", func(s *memory.Store) storage.Store { return getGrantDataReturnsExpired{s} },
		[]string{"GrantData/Expiry", "GrantData/StoredByCompletePending"}},
	{"PutIgnoresLimit", func(s *memory.Store) storage.Store { return putIgnoresLimit{s} },
		[]string{"GrantData/Limit", "GrantData/LimitConcurrent"}},
	{"PutCountsReplacedValue", func(s *memory.Store) storage.Store { return putCountsReplaced{s} },
		[]string{"GrantData/Limit/ReplaceAtLimit", "GrantData/Limit/MaxOneReplace"}},
	{"PutCountsExpiredValues", func(s *memory.Store) storage.Store { return putCountsExpired{s} },
		[]string{"GrantData/Limit/ExpiredDoNotCount"}},
	{"PutOnRevokedGrant", func(s *memory.Store) storage.Store { return putOnRevokedGrant{s} },
		[]string{"GrantData/PutInactiveGrant", "Grants/RevokeDeletesData"}},
	{"SweepForgetsEnded", func(s *memory.Store) storage.Store { return sweepForgetsEnded{s} },
		[]string{"Sweep/EndedGrants", "Sweep/DeletesDeadRows", "Sweep/DeletesGrantsThatCanIssueNothing", "Sweep/EndedOnce"}},
	{"SweepRepeatsEnded", func(s *memory.Store) storage.Store { return &sweepRepeatsEnded{Store: s} },
		[]string{"Sweep/EndedOnce", "Sweep/EndedGrants"}},
	{"SweepEndsRevoked", func(s *memory.Store) storage.Store { return &sweepEndsRevoked{Store: s} },
		[]string{"Sweep/EndedExcludesRevoked", "Grants/RevokeDeletesData"}},
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

func (s decideIgnoresConflict) DecidePending(ctx context.Context, id string, status oauth.PendingStatus, subject string, setup []byte, now time.Time) error {
	if err := s.Store.DecidePending(ctx, id, status, subject, setup, now); !errors.Is(err, storage.ErrConflict) {
		return err
	}
	return nil
}

type completeIgnoresConflict struct{ *memory.Store }

func (s completeIgnoresConflict) CompletePending(ctx context.Context, id string, g *storage.GrantRecord, c *storage.CodeRecord, now time.Time) error {
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

func (s revokeTwiceFails) RevokeGrant(ctx context.Context, id string, now time.Time) (*storage.GrantRecord, error) {
	if g, err := s.Store.GetGrant(ctx, id); err == nil && !g.RevokedAt.IsZero() {
		return nil, storage.ErrConflict
	}
	return s.Store.RevokeGrant(ctx, id, now)
}

// extendMovesBack sets ExpiresAt to what it is given, earlier or not.
type extendMovesBack struct{ *memory.Store }

func (s extendMovesBack) ExtendGrant(ctx context.Context, id string, expiresAt, now time.Time) error {
	g, err := s.Store.GetGrant(ctx, id)
	if err != nil {
		return err
	}
	if err := s.Store.ExtendGrant(ctx, id, expiresAt, now); err != nil || !expiresAt.Before(g.ExpiresAt) {
		return err
	}
	// Move it back by revoking and recreating the grant as it should not be.
	rec, err := s.Store.RevokeGrant(ctx, id, now)
	if err != nil || rec == nil {
		return err
	}
	s.Store.Sweep(ctx, time.Time{})
	rec.ExpiresAt, rec.LastUsedAt, rec.RevokedAt = expiresAt, now, time.Time{}
	return s.Store.CreateGrant(ctx, rec)
}

// extendAnyGrant reports success without checking the grant.
type extendAnyGrant struct{ *memory.Store }

func (s extendAnyGrant) ExtendGrant(ctx context.Context, id string, expiresAt, now time.Time) error {
	s.Store.ExtendGrant(ctx, id, expiresAt, now)
	return nil
}

// sweepIgnoresGrantExpiry ends grants that issue access tokens only at
// every sweep, as if they had expired.
type sweepIgnoresGrantExpiry struct{ *memory.Store }

func (s sweepIgnoresGrantExpiry) Sweep(ctx context.Context, now time.Time) (*storage.SweepResult, error) {
	gs, _ := s.Store.ListGrants(ctx)
	for _, g := range gs {
		if !g.ExpiresAt.IsZero() {
			s.Store.ExtendGrant(ctx, g.ID, g.ExpiresAt, g.ExpiresAt.Add(-time.Nanosecond))
			s.Store.RevokeGrant(ctx, g.ID, now)
		}
	}
	return s.Store.Sweep(ctx, now)
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

func (sweepDoesNothing) Sweep(context.Context, time.Time) (*storage.SweepResult, error) {
	return &storage.SweepResult{}, nil
}

type sweepOvercounts struct{ *memory.Store }

func (s sweepOvercounts) Sweep(ctx context.Context, now time.Time) (*storage.SweepResult, error) {
	res, err := s.Store.Sweep(ctx, now)
	if err == nil {
		res.Rows++
	}
	return res, err
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

func (s *revocationCountPerWrite) Sweep(ctx context.Context, now time.Time) (*storage.SweepResult, error) {
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

// claimsNotStored stores grants without their claims.
type claimsNotStored struct{ *memory.Store }

func (s claimsNotStored) CompletePending(ctx context.Context, id string, g *storage.GrantRecord, c *storage.CodeRecord, now time.Time) error {
	d := *g
	d.Claims = nil
	return s.Store.CompletePending(ctx, id, &d, c, now)
}

// claimsKeptAsGiven returns the caller's own claims map, Go types and all,
// instead of their JSON.
type claimsKeptAsGiven struct {
	*memory.Store
	mu     sync.Mutex
	claims map[string]map[string]any
}

func (s *claimsKeptAsGiven) CompletePending(ctx context.Context, id string, g *storage.GrantRecord, c *storage.CodeRecord, now time.Time) error {
	if err := s.Store.CompletePending(ctx, id, g, c, now); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.claims == nil {
		s.claims = map[string]map[string]any{}
	}
	s.claims[g.ID] = g.Claims
	return nil
}

func (s *claimsKeptAsGiven) GetGrant(ctx context.Context, id string) (*oauth.Grant, error) {
	g, err := s.Store.GetGrant(ctx, id)
	if err == nil {
		s.mu.Lock()
		g.Claims = s.claims[id]
		s.mu.Unlock()
	}
	return g, err
}

// completeDropsData stores grants without their data key and data.
type completeDropsData struct{ *memory.Store }

func (s completeDropsData) CompletePending(ctx context.Context, id string, g *storage.GrantRecord, c *storage.CodeRecord, now time.Time) error {
	return s.Store.CompletePending(ctx, id, &storage.GrantRecord{Grant: g.Grant}, c, now)
}

type decideDropsSetup struct{ *memory.Store }

func (s decideDropsSetup) DecidePending(ctx context.Context, id string, status oauth.PendingStatus, subject string, _ []byte, now time.Time) error {
	return s.Store.DecidePending(ctx, id, status, subject, nil, now)
}

// completeKeepsSetup still shows a completed request's setup.
type completeKeepsSetup struct {
	*memory.Store
	mu     sync.Mutex
	setups map[string][]byte
}

func (s *completeKeepsSetup) DecidePending(ctx context.Context, id string, status oauth.PendingStatus, subject string, setup []byte, now time.Time) error {
	s.mu.Lock()
	if s.setups == nil {
		s.setups = map[string][]byte{}
	}
	s.setups[id] = slices.Clone(setup)
	s.mu.Unlock()
	return s.Store.DecidePending(ctx, id, status, subject, setup, now)
}

func (s *completeKeepsSetup) GetPendingByHandle(ctx context.Context, handleHash string, now time.Time) (*storage.PendingRecord, error) {
	p, err := s.Store.GetPendingByHandle(ctx, handleHash, now)
	if err == nil && p.Status == oauth.PendingCompleted {
		s.mu.Lock()
		p.Setup = slices.Clone(s.setups[p.ID])
		s.mu.Unlock()
	}
	return p, err
}

// keepsData leaves a grant's data key and values in place when RevokeGrant
// (onRevoke) or DeleteClient (onDelete) ends it, like a backend that
// forgets to delete them and reads values without checking the grant, and
// counts them when Sweep deletes them with the grant.
type keepsData struct {
	*memory.Store
	onRevoke, onDelete bool
	mu                 sync.Mutex
	kept               map[string]*storage.GrantRecord
}

func (s *keepsData) keep(recs ...*storage.GrantRecord) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.kept == nil {
		s.kept = map[string]*storage.GrantRecord{}
	}
	for _, r := range recs {
		if r != nil {
			s.kept[r.ID] = r
		}
	}
}

func (s *keepsData) RevokeGrant(ctx context.Context, id string, now time.Time) (*storage.GrantRecord, error) {
	rec, err := s.Store.RevokeGrant(ctx, id, now)
	if s.onRevoke {
		s.keep(rec)
	}
	return rec, err
}

func (s *keepsData) DeleteClient(ctx context.Context, id string, now time.Time) ([]*storage.GrantRecord, error) {
	recs, err := s.Store.DeleteClient(ctx, id, now)
	if s.onDelete {
		s.keep(recs...)
	}
	return recs, err
}

func (s *keepsData) GetGrantData(ctx context.Context, grantID, name string, now time.Time) ([]byte, *storage.GrantDataRecord, error) {
	key, rec, err := s.Store.GetGrantData(ctx, grantID, name, now)
	if !errors.Is(err, storage.ErrNotFound) {
		return key, rec, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if k, ok := s.kept[grantID]; ok {
		for _, d := range k.Data {
			if d.Name == name && (d.ExpiresAt.IsZero() || d.ExpiresAt.After(now)) {
				return k.DataKey, d, nil
			}
		}
	}
	return key, rec, err
}

func (s *keepsData) GetGrantKey(ctx context.Context, grantID string) ([]byte, error) {
	key, err := s.Store.GetGrantKey(ctx, grantID)
	if errors.Is(err, storage.ErrNotFound) {
		s.mu.Lock()
		defer s.mu.Unlock()
		if k, ok := s.kept[grantID]; ok {
			return k.DataKey, nil
		}
	}
	return key, err
}

func (s *keepsData) Sweep(ctx context.Context, now time.Time) (*storage.SweepResult, error) {
	res, err := s.Store.Sweep(ctx, now)
	if err != nil {
		return res, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, k := range s.kept {
		if _, err := s.Store.GetGrant(ctx, id); errors.Is(err, storage.ErrNotFound) {
			res.Rows += int64(len(k.Data))
			delete(s.kept, id)
		}
	}
	return res, nil
}

type revokeReturnsNothing struct{ *memory.Store }

func (s revokeReturnsNothing) RevokeGrant(ctx context.Context, id string, now time.Time) (*storage.GrantRecord, error) {
	_, err := s.Store.RevokeGrant(ctx, id, now)
	return nil, err
}

// revokeTwiceReturnsGrant returns the grant again from later revocations.
type revokeTwiceReturnsGrant struct {
	*memory.Store
	mu      sync.Mutex
	revoked map[string]*storage.GrantRecord
}

func (s *revokeTwiceReturnsGrant) RevokeGrant(ctx context.Context, id string, now time.Time) (*storage.GrantRecord, error) {
	rec, err := s.Store.RevokeGrant(ctx, id, now)
	s.mu.Lock()
	defer s.mu.Unlock()
	if rec != nil {
		if s.revoked == nil {
			s.revoked = map[string]*storage.GrantRecord{}
		}
		s.revoked[id] = rec
	} else if err == nil {
		rec = s.revoked[id]
	}
	return rec, err
}

type deleteClientDropsData struct{ *memory.Store }

func (s deleteClientDropsData) DeleteClient(ctx context.Context, id string, now time.Time) ([]*storage.GrantRecord, error) {
	recs, err := s.Store.DeleteClient(ctx, id, now)
	for _, r := range recs {
		r.Data = nil
	}
	return recs, err
}

// getGrantDataReturnsExpired reads values as if they never lapsed.
type getGrantDataReturnsExpired struct{ *memory.Store }

func (s getGrantDataReturnsExpired) GetGrantData(ctx context.Context, grantID, name string, now time.Time) ([]byte, *storage.GrantDataRecord, error) {
	return s.Store.GetGrantData(ctx, grantID, name, time.Time{})
}

type putIgnoresLimit struct{ *memory.Store }

func (s putIgnoresLimit) PutGrantData(ctx context.Context, rec *storage.GrantDataRecord, _ int, now time.Time) error {
	return s.Store.PutGrantData(ctx, rec, math.MaxInt, now)
}

// putCountsReplaced counts the value a put replaces as well as the new one.
type putCountsReplaced struct{ *memory.Store }

func (s putCountsReplaced) PutGrantData(ctx context.Context, rec *storage.GrantDataRecord, maxValues int, now time.Time) error {
	if _, _, err := s.GetGrantData(ctx, rec.GrantID, rec.Name, now); err == nil {
		maxValues--
	}
	return s.Store.PutGrantData(ctx, rec, maxValues, now)
}

// putCountsExpired counts values as if none had lapsed.
type putCountsExpired struct{ *memory.Store }

func (s putCountsExpired) PutGrantData(ctx context.Context, rec *storage.GrantDataRecord, maxValues int, now time.Time) error {
	return s.Store.PutGrantData(ctx, rec, maxValues, time.Time{})
}

// putOnRevokedGrant reports success for puts to grants that are not active.
type putOnRevokedGrant struct{ *memory.Store }

func (s putOnRevokedGrant) PutGrantData(ctx context.Context, rec *storage.GrantDataRecord, maxValues int, now time.Time) error {
	if err := s.Store.PutGrantData(ctx, rec, maxValues, now); !errors.Is(err, storage.ErrNotFound) {
		return err
	}
	return nil
}

type sweepForgetsEnded struct{ *memory.Store }

func (s sweepForgetsEnded) Sweep(ctx context.Context, now time.Time) (*storage.SweepResult, error) {
	res, err := s.Store.Sweep(ctx, now)
	if err == nil {
		res.Ended = nil
	}
	return res, err
}

// sweepRepeatsEnded reports every grant that ever ended in every later
// sweep, like a backend that reads ended grants from a log it never clears.
type sweepRepeatsEnded struct {
	*memory.Store
	mu    sync.Mutex
	ended []*storage.GrantRecord
}

func (s *sweepRepeatsEnded) Sweep(ctx context.Context, now time.Time) (*storage.SweepResult, error) {
	s.mu.Lock() // held across the sweep, so that the log is in sweep order
	defer s.mu.Unlock()
	res, err := s.Store.Sweep(ctx, now)
	if err != nil {
		return res, err
	}
	prev := s.ended
	s.ended = append(s.ended, res.Ended...)
	res.Ended = append(prev[:len(prev):len(prev)], res.Ended...)
	return res, nil
}

// sweepEndsRevoked reports revoked grants as ended when Sweep deletes them.
type sweepEndsRevoked struct {
	*memory.Store
	mu      sync.Mutex
	revoked []*storage.GrantRecord
}

func (s *sweepEndsRevoked) RevokeGrant(ctx context.Context, id string, now time.Time) (*storage.GrantRecord, error) {
	rec, err := s.Store.RevokeGrant(ctx, id, now)
	if rec != nil {
		s.mu.Lock()
		s.revoked = append(s.revoked, rec)
		s.mu.Unlock()
	}
	return rec, err
}

func (s *sweepEndsRevoked) Sweep(ctx context.Context, now time.Time) (*storage.SweepResult, error) {
	res, err := s.Store.Sweep(ctx, now)
	if err != nil {
		return res, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	kept := s.revoked[:0]
	for _, r := range s.revoked {
		if _, err := s.Store.GetGrant(ctx, r.ID); errors.Is(err, storage.ErrNotFound) {
			res.Ended = append(res.Ended, r)
		} else {
			kept = append(kept, r)
		}
	}
	s.revoked = kept
	return res, nil
}
