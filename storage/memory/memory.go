// Package memory is an in-memory storage.Store for tests and ephemeral
// servers: everything is lost when the process exits.
//
// All state sits behind one mutex, which makes every operation, including
// the ones the contract requires to be atomic, trivially so. Records are
// deep-copied on the way in and on the way out, so callers can never alias
// or mutate stored state.
package memory

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	oauth "github.com/mcp-oauth/oauth"
	"github.com/mcp-oauth/oauth/storage"
)

// Store implements storage.Store in memory. Create it with New; the zero
// value is not usable. A Store is safe for concurrent use.
type Store struct {
	mu sync.Mutex
	// seq numbers insertions; it breaks ties between rows created at the
	// same instant so that listings are stable.
	seq int64

	clients map[string]*clientRow // by ID
	grants  map[string]*grantRow  // by ID
	codes   map[string]*storage.CodeRecord
	refresh map[string]*storage.RefreshRecord
	pending map[string]*pendingRow // by ID
	keys    map[string]*keyRow     // by ID

	pendingByHandle   map[string]string // handle hash → pending ID
	pendingByUserCode map[string]string // user code hash → pending ID
	pendingByDevice   map[string]string // device code hash → pending ID

	// revocations counts grants that stopped being active.
	revocations int64

	users    map[string]*userRow               // by name (users.go)
	sessions map[string]*storage.SessionRecord // by hash
}

type clientRow struct {
	*oauth.Client
	seq int64
}

type grantRow struct {
	*oauth.Grant
	seq int64
}

type pendingRow struct {
	*storage.PendingRecord
	seq int64
}

type keyRow struct {
	*storage.KeyRecord
	seq int64
}

var _ storage.Store = (*Store)(nil)

// New returns an empty Store.
func New() *Store {
	return &Store{
		clients:           map[string]*clientRow{},
		grants:            map[string]*grantRow{},
		codes:             map[string]*storage.CodeRecord{},
		refresh:           map[string]*storage.RefreshRecord{},
		pending:           map[string]*pendingRow{},
		keys:              map[string]*keyRow{},
		pendingByHandle:   map[string]string{},
		pendingByUserCode: map[string]string{},
		pendingByDevice:   map[string]string{},
		users:             map[string]*userRow{},
		sessions:          map[string]*storage.SessionRecord{},
	}
}

func (s *Store) next() int64 {
	s.seq++
	return s.seq
}

// expired reports whether a row with expiry exp is unusable at now. A zero
// expiry never lapses.
func expired(exp, now time.Time) bool { return !exp.IsZero() && !exp.After(now) }

// byTime orders rows by timestamp, then by insertion.
func byTime(ta, tb time.Time, sa, sb int64) int {
	if c := ta.Compare(tb); c != 0 {
		return c
	}
	return cmp.Compare(sa, sb)
}

// ---- deep copies ----

func copyClient(c *oauth.Client) *oauth.Client {
	d := *c
	m := &d.ClientRegistrationMetadata
	m.RedirectURIs = slices.Clone(m.RedirectURIs)
	m.GrantTypes = slices.Clone(m.GrantTypes)
	m.ResponseTypes = slices.Clone(m.ResponseTypes)
	m.Contacts = slices.Clone(m.Contacts)
	return &d
}

func copyGrant(g *oauth.Grant) *oauth.Grant {
	d := *g
	d.Scopes = slices.Clone(g.Scopes)
	return &d
}

func copyParams(p oauth.AuthorizationParams) oauth.AuthorizationParams {
	p.Scopes = slices.Clone(p.Scopes)
	return p
}

// copyCode copies c; the plaintext Code is never kept (storage.CodeRecord).
func copyCode(c *storage.CodeRecord) *storage.CodeRecord {
	d := *c
	d.Code = ""
	d.AuthorizationParams = copyParams(c.AuthorizationParams)
	return &d
}

func copyRefresh(r *storage.RefreshRecord) *storage.RefreshRecord {
	d := *r
	d.Scopes = slices.Clone(r.Scopes)
	return &d
}

func copyPending(p *storage.PendingRecord) *storage.PendingRecord {
	d := *p
	d.AuthorizationParams = copyParams(p.AuthorizationParams)
	return &d
}

func copyKey(k *storage.KeyRecord) *storage.KeyRecord {
	d := *k
	d.Private = slices.Clone(k.Private)
	return &d
}

// ---- clients ----

// CreateClient stores a copy of c; storage.ErrConflict if its ID is taken,
// even by a lapsed registration that Sweep has not yet deleted.
func (s *Store) CreateClient(ctx context.Context, c *oauth.Client) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.clients[c.ID]; ok {
		return fmt.Errorf("memory: client %q: %w", c.ID, storage.ErrConflict)
	}
	s.clients[c.ID] = &clientRow{Client: copyClient(c), seq: s.next()}
	return nil
}

// GetClient returns a copy of the client, or storage.ErrNotFound if it does
// not exist or its registration lapsed (ExpiresAt non-zero and not after
// now).
func (s *Store) GetClient(ctx context.Context, id string, now time.Time) (*oauth.Client, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.clients[id]
	if !ok || expired(r.ExpiresAt, now) {
		return nil, storage.ErrNotFound
	}
	return copyClient(r.Client), nil
}

// TouchClient sets the client's ExpiresAt to expiresAt; storage.ErrNotFound
// if there is no such client.
func (s *Store) TouchClient(ctx context.Context, id string, expiresAt time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.clients[id]
	if !ok {
		return storage.ErrNotFound
	}
	r.ExpiresAt = expiresAt
	return nil
}

// DeleteClient removes the client and revokes all of its grants at now,
// deleting their codes and refresh tokens; storage.ErrNotFound if there is
// no such client.
func (s *Store) DeleteClient(ctx context.Context, id string, now time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.clients[id]; !ok {
		return storage.ErrNotFound
	}
	for _, g := range s.grants {
		if g.ClientID == id {
			s.revokeLocked(g.Grant, now)
		}
	}
	delete(s.clients, id)
	s.revocations++
	return nil
}

// ListClients returns copies of all live clients, oldest (by IssuedAt)
// first.
func (s *Store) ListClients(ctx context.Context, now time.Time) ([]*oauth.Client, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rows := make([]*clientRow, 0, len(s.clients))
	for _, r := range s.clients {
		if !expired(r.ExpiresAt, now) {
			rows = append(rows, r)
		}
	}
	slices.SortFunc(rows, func(a, b *clientRow) int { return byTime(a.IssuedAt, b.IssuedAt, a.seq, b.seq) })
	out := make([]*oauth.Client, len(rows))
	for i, r := range rows {
		out[i] = copyClient(r.Client)
	}
	return out, nil
}

// ---- grants ----

// GetGrant returns a copy of the grant, revoked or not; storage.ErrNotFound
// if absent.
func (s *Store) GetGrant(ctx context.Context, id string) (*oauth.Grant, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.grants[id]
	if !ok {
		return nil, storage.ErrNotFound
	}
	return copyGrant(r.Grant), nil
}

// ListGrants returns copies of the active (unrevoked) grants, oldest (by
// CreatedAt) first.
func (s *Store) ListGrants(ctx context.Context) ([]*oauth.Grant, error) {
	return s.listGrants(func(*grantRow) bool { return true }), nil
}

// listGrants returns copies of the active grants that keep accepts, oldest
// first.
func (s *Store) listGrants(keep func(*grantRow) bool) []*oauth.Grant {
	s.mu.Lock()
	defer s.mu.Unlock()
	var rows []*grantRow
	for _, r := range s.grants {
		if r.RevokedAt.IsZero() && keep(r) {
			rows = append(rows, r)
		}
	}
	slices.SortFunc(rows, func(a, b *grantRow) int { return byTime(a.CreatedAt, b.CreatedAt, a.seq, b.seq) })
	out := make([]*oauth.Grant, len(rows))
	for i, r := range rows {
		out[i] = copyGrant(r.Grant)
	}
	return out
}

// ListSubjectGrants implements storage.GrantStore.
func (s *Store) ListSubjectGrants(ctx context.Context, subject string) ([]*oauth.Grant, error) {
	return s.listGrants(func(r *grantRow) bool { return r.Subject == subject }), nil
}

// RevokeGrant marks the grant revoked at now and deletes its codes and
// refresh tokens. Revoking a revoked grant succeeds and keeps the first
// revocation time; storage.ErrNotFound if absent.
func (s *Store) RevokeGrant(ctx context.Context, id string, now time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.grants[id]
	if !ok {
		return storage.ErrNotFound
	}
	s.revokeLocked(r.Grant, now)
	return nil
}

// revokeLocked marks g revoked (unless it already is) and deletes its codes
// and refresh tokens, returning how many it deleted.
func (s *Store) revokeLocked(g *oauth.Grant, now time.Time) int64 {
	if g.RevokedAt.IsZero() {
		g.RevokedAt = now
		s.revocations++
	}
	var n int64
	for h, c := range s.codes {
		if c.GrantID == g.ID {
			delete(s.codes, h)
			n++
		}
	}
	for h, r := range s.refresh {
		if r.GrantID == g.ID {
			delete(s.refresh, h)
			n++
		}
	}
	return n
}

// grantActiveLocked reports whether the grant exists and is not revoked.
func (s *Store) grantActiveLocked(id string) bool {
	r, ok := s.grants[id]
	return ok && r.RevokedAt.IsZero()
}

// ---- codes ----

// GetCode returns a copy of the code, redeemed or not, or
// storage.ErrNotFound if it does not exist or has expired.
func (s *Store) GetCode(ctx context.Context, hash string, now time.Time) (*storage.CodeRecord, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.codes[hash]
	if !ok || expired(c.ExpiresAt, now) {
		return nil, storage.ErrNotFound
	}
	return copyCode(c), nil
}

// RedeemCode marks the code consumed at now and stores a copy of rt, under
// one lock. storage.ErrNotFound if the code does not exist or has expired;
// storage.ErrConflict if it was already redeemed, its grant is revoked or
// missing, or a refresh token with rt's hash already exists.
func (s *Store) RedeemCode(ctx context.Context, hash string, now time.Time, rt *storage.RefreshRecord) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.codes[hash]
	if !ok || expired(c.ExpiresAt, now) {
		return storage.ErrNotFound
	}
	switch {
	case !c.ConsumedAt.IsZero():
		return fmt.Errorf("memory: code already redeemed: %w", storage.ErrConflict)
	case !s.grantActiveLocked(c.GrantID):
		return fmt.Errorf("memory: grant %q of code is not active: %w", c.GrantID, storage.ErrConflict)
	}
	if _, dup := s.refresh[rt.Hash]; dup {
		return fmt.Errorf("memory: refresh token already stored: %w", storage.ErrConflict)
	}
	c.ConsumedAt = now
	s.grants[c.GrantID].LastUsedAt = now
	s.refresh[rt.Hash] = copyRefresh(rt)
	return nil
}

// ---- refresh tokens ----

// GetRefreshToken returns a copy of the token, spent or not, or
// storage.ErrNotFound if it does not exist or has expired.
func (s *Store) GetRefreshToken(ctx context.Context, hash string, now time.Time) (*storage.RefreshRecord, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.refresh[hash]
	if !ok || expired(r.ExpiresAt, now) {
		return nil, storage.ErrNotFound
	}
	return copyRefresh(r), nil
}

// RotateRefreshToken replaces oldHash by next under one lock, as
// storage.RefreshTokenStore describes. storage.ErrNotFound if oldHash does
// not exist or has expired; storage.ErrConflict if it is spent, its
// Successor is not expectedSuccessor, its grant is revoked or missing, or a
// token with next's hash already exists.
func (s *Store) RotateRefreshToken(ctx context.Context, oldHash, expectedSuccessor string, next *storage.RefreshRecord, now time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	old, ok := s.refresh[oldHash]
	if !ok || expired(old.ExpiresAt, now) {
		return storage.ErrNotFound
	}
	switch {
	case old.Spent:
		return fmt.Errorf("memory: refresh token spent: %w", storage.ErrConflict)
	case old.Successor != expectedSuccessor:
		return fmt.Errorf("memory: refresh token already rotated: %w", storage.ErrConflict)
	case !s.grantActiveLocked(old.GrantID):
		return fmt.Errorf("memory: grant %q of refresh token is not active: %w", old.GrantID, storage.ErrConflict)
	}
	if _, dup := s.refresh[next.Hash]; dup {
		return fmt.Errorf("memory: refresh token already stored: %w", storage.ErrConflict)
	}
	if expectedSuccessor != "" {
		if prev, ok := s.refresh[expectedSuccessor]; ok {
			prev.Spent = true
		}
	}
	if old.Parent != "" {
		if parent, ok := s.refresh[old.Parent]; ok {
			parent.Spent = true
		}
	}
	old.Successor = next.Hash
	s.refresh[next.Hash] = copyRefresh(next)
	s.grants[old.GrantID].LastUsedAt = now
	return nil
}

// ---- pending requests ----

// CreatePending stores a copy of p; storage.ErrConflict if its ID, handle
// or user code is taken, even by an expired request that Sweep has not yet
// deleted.
func (s *Store) CreatePending(ctx context.Context, p *storage.PendingRecord) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.pending[p.ID]; ok {
		return fmt.Errorf("memory: pending request ID taken: %w", storage.ErrConflict)
	}
	if _, ok := s.pendingByHandle[p.HandleHash]; ok {
		return fmt.Errorf("memory: pending request handle taken: %w", storage.ErrConflict)
	}
	if _, ok := s.pendingByUserCode[p.UserCodeHash]; ok {
		return fmt.Errorf("memory: pending request user code taken: %w", storage.ErrConflict)
	}
	if _, ok := s.pendingByDevice[p.DeviceCodeHash]; ok && p.DeviceCodeHash != "" {
		return fmt.Errorf("memory: pending request device code taken: %w", storage.ErrConflict)
	}
	s.pending[p.ID] = &pendingRow{PendingRecord: copyPending(p), seq: s.next()}
	s.pendingByHandle[p.HandleHash] = p.ID
	s.pendingByUserCode[p.UserCodeHash] = p.ID
	if p.DeviceCodeHash != "" {
		s.pendingByDevice[p.DeviceCodeHash] = p.ID
	}
	return nil
}

// GetPendingByDeviceCode returns a copy of the request, expired or not,
// whose device code hash is deviceCodeHash, or storage.ErrNotFound.
func (s *Store) GetPendingByDeviceCode(ctx context.Context, deviceCodeHash string) (*storage.PendingRecord, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	id, ok := s.pendingByDevice[deviceCodeHash]
	if !ok || deviceCodeHash == "" {
		return nil, storage.ErrNotFound
	}
	return copyPending(s.pending[id].PendingRecord), nil
}

// livePendingLocked returns the request with the given ID if it exists and
// has not expired at now.
func (s *Store) livePendingLocked(id string, now time.Time) (*pendingRow, bool) {
	r, ok := s.pending[id]
	if !ok || expired(r.ExpiresAt, now) {
		return nil, false
	}
	return r, true
}

// GetPendingByHandle returns a copy of the unexpired request whose handle
// hash is handleHash, or storage.ErrNotFound.
func (s *Store) GetPendingByHandle(ctx context.Context, handleHash string, now time.Time) (*storage.PendingRecord, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	id, ok := s.pendingByHandle[handleHash]
	if !ok {
		return nil, storage.ErrNotFound
	}
	r, ok := s.livePendingLocked(id, now)
	if !ok {
		return nil, storage.ErrNotFound
	}
	return copyPending(r.PendingRecord), nil
}

// GetPendingByUserCode returns a copy of the unexpired request whose user
// code hash is userCodeHash, or storage.ErrNotFound.
func (s *Store) GetPendingByUserCode(ctx context.Context, userCodeHash string, now time.Time) (*storage.PendingRecord, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	id, ok := s.pendingByUserCode[userCodeHash]
	if !ok {
		return nil, storage.ErrNotFound
	}
	r, ok := s.livePendingLocked(id, now)
	if !ok {
		return nil, storage.ErrNotFound
	}
	return copyPending(r.PendingRecord), nil
}

// DecidePending moves a waiting, unexpired request to status
// (oauth.PendingApproved or oauth.PendingDenied) with subject.
// storage.ErrNotFound if absent or expired, storage.ErrConflict if it is no
// longer waiting; any other status is an error.
func (s *Store) DecidePending(ctx context.Context, id string, status oauth.PendingStatus, subject string, now time.Time) error {
	if status != oauth.PendingApproved && status != oauth.PendingDenied {
		return fmt.Errorf("memory: decide pending request: invalid status %q", status)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.livePendingLocked(id, now)
	if !ok {
		return storage.ErrNotFound
	}
	if r.Status != oauth.PendingWaiting {
		return fmt.Errorf("memory: pending request is %s: %w", r.Status, storage.ErrConflict)
	}
	r.Status, r.Subject = status, subject
	return nil
}

// CompletePending moves an approved, unexpired request to completed and
// stores copies of grant and code, under one lock. storage.ErrNotFound if
// the request is absent or expired; storage.ErrConflict if it is not
// approved, or a grant with grant's ID or a code with code's hash already
// exists.
func (s *Store) CompletePending(ctx context.Context, id string, grant *oauth.Grant, code *storage.CodeRecord, now time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.livePendingLocked(id, now)
	if !ok {
		return storage.ErrNotFound
	}
	if r.Status != oauth.PendingApproved {
		return fmt.Errorf("memory: pending request is %s: %w", r.Status, storage.ErrConflict)
	}
	if _, dup := s.grants[grant.ID]; dup {
		return fmt.Errorf("memory: grant %q exists: %w", grant.ID, storage.ErrConflict)
	}
	if _, dup := s.codes[code.Hash]; dup {
		return fmt.Errorf("memory: code exists: %w", storage.ErrConflict)
	}
	r.Status = oauth.PendingCompleted
	s.grants[grant.ID] = &grantRow{Grant: copyGrant(grant), seq: s.next()}
	s.codes[code.Hash] = copyCode(code)
	return nil
}

// ListPending returns copies of the unexpired requests still waiting,
// oldest (by CreatedAt) first.
func (s *Store) ListPending(ctx context.Context, now time.Time) ([]*storage.PendingRecord, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rows := make([]*pendingRow, 0, len(s.pending))
	for _, r := range s.pending {
		if r.Status == oauth.PendingWaiting && !expired(r.ExpiresAt, now) {
			rows = append(rows, r)
		}
	}
	slices.SortFunc(rows, func(a, b *pendingRow) int { return byTime(a.CreatedAt, b.CreatedAt, a.seq, b.seq) })
	out := make([]*storage.PendingRecord, len(rows))
	for i, r := range rows {
		out[i] = copyPending(r.PendingRecord)
	}
	return out, nil
}

// ---- keys ----

// ListKeys returns copies of every key, newest (by CreatedAt) first.
func (s *Store) ListKeys(ctx context.Context) ([]*storage.KeyRecord, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rows := make([]*keyRow, 0, len(s.keys))
	for _, r := range s.keys {
		rows = append(rows, r)
	}
	slices.SortFunc(rows, func(a, b *keyRow) int { return byTime(b.CreatedAt, a.CreatedAt, b.seq, a.seq) })
	out := make([]*storage.KeyRecord, len(rows))
	for i, r := range rows {
		out[i] = copyKey(r.KeyRecord)
	}
	return out, nil
}

// AddKey stores a copy of k as the active key (its RetiredAt is stored as
// zero) and, under the same lock, retires at k.CreatedAt every key that was
// active. storage.ErrConflict if a key with k's ID exists.
func (s *Store) AddKey(ctx context.Context, k *storage.KeyRecord) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.keys[k.ID]; ok {
		return fmt.Errorf("memory: key %q exists: %w", k.ID, storage.ErrConflict)
	}
	for _, r := range s.keys {
		if r.RetiredAt.IsZero() {
			r.RetiredAt = k.CreatedAt
		}
	}
	d := copyKey(k)
	d.RetiredAt = time.Time{}
	s.keys[k.ID] = &keyRow{KeyRecord: d, seq: s.next()}
	return nil
}

// DeleteKey removes a key; storage.ErrNotFound if absent.
func (s *Store) DeleteKey(ctx context.Context, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.keys[id]; !ok {
		return storage.ErrNotFound
	}
	delete(s.keys, id)
	return nil
}

// ---- housekeeping ----

// Sweep deletes every row that can no longer be used at now: expired codes,
// pending requests and refresh tokens; lapsed clients with their grants and
// those grants' codes and refresh tokens; and revoked grants. It returns the
// number of rows deleted, counting every row of every kind.
func (s *Store) Sweep(ctx context.Context, now time.Time) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var n int64
	for id, c := range s.clients {
		if !expired(c.ExpiresAt, now) {
			continue
		}
		for gid, g := range s.grants {
			if g.ClientID == id {
				n += s.revokeLocked(g.Grant, now)
				delete(s.grants, gid)
				n++
			}
		}
		delete(s.clients, id)
		s.revocations++
		n++
	}
	for gid, g := range s.grants {
		if !g.RevokedAt.IsZero() {
			n += s.revokeLocked(g.Grant, now) // none left, unless a caller stored some
			delete(s.grants, gid)
			n++
		}
	}
	for h, c := range s.codes {
		if expired(c.ExpiresAt, now) {
			delete(s.codes, h)
			n++
		}
	}
	for h, r := range s.refresh {
		if expired(r.ExpiresAt, now) {
			delete(s.refresh, h)
			n++
		}
	}
	for id, p := range s.pending {
		if expired(p.ExpiresAt, now) {
			delete(s.pending, id)
			delete(s.pendingByHandle, p.HandleHash)
			delete(s.pendingByUserCode, p.UserCodeHash)
			delete(s.pendingByDevice, p.DeviceCodeHash)
			n++
		}
	}
	n += s.sweepSessionsLocked(now)
	// Grants with neither a code nor a refresh token left can issue nothing.
	used := make(map[string]bool, len(s.codes)+len(s.refresh))
	for _, c := range s.codes {
		used[c.GrantID] = true
	}
	for _, r := range s.refresh {
		used[r.GrantID] = true
	}
	for gid, g := range s.grants {
		if !used[gid] {
			if g.RevokedAt.IsZero() {
				s.revocations++
			}
			delete(s.grants, gid)
			n++
		}
	}
	return n, nil
}

// RevocationCount implements storage.GrantStore.
func (s *Store) RevocationCount(ctx context.Context) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.revocations, nil
}

// Close implements storage.Store; it does nothing, and the Store stays
// usable.
func (s *Store) Close() error { return nil }
