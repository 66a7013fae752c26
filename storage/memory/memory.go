// Package memory is an in-memory storage.Store for tests and ephemeral
// servers: everything is lost when the process exits. All state sits behind
// one mutex, which makes every operation trivially atomic; records are
// copied on the way in and out so callers cannot alias stored state.
package memory

import (
	"context"
	"slices"
	"sort"
	"sync"
	"time"

	oauth "github.com/mcp-oauth/oauth"
	"github.com/mcp-oauth/oauth/storage"
)

// Store implements storage.Store in memory. Create it with New.
type Store struct {
	mu       sync.Mutex
	clients  map[string]*oauth.Client
	grants   map[string]*oauth.Grant
	codes    map[string]*storage.CodeRecord
	refresh  map[string]*storage.RefreshRecord
	pending  map[string]*storage.PendingRecord // by ID
	byHandle map[string]string                 // handle hash → pending ID
	byUCode  map[string]string                 // user code hash → pending ID
	keys     map[string]*storage.KeyRecord
	seq      int64 // insertion order for stable listing
	order    map[string]int64
}

var _ storage.Store = (*Store)(nil)

// New returns an empty store.
func New() *Store {
	return &Store{
		clients: map[string]*oauth.Client{}, grants: map[string]*oauth.Grant{},
		codes: map[string]*storage.CodeRecord{}, refresh: map[string]*storage.RefreshRecord{},
		pending: map[string]*storage.PendingRecord{}, byHandle: map[string]string{}, byUCode: map[string]string{},
		keys: map[string]*storage.KeyRecord{}, order: map[string]int64{},
	}
}

func (s *Store) stamp(kind, id string) {
	s.seq++
	s.order[kind+"/"+id] = s.seq
}

func expired(exp, now time.Time) bool { return !exp.IsZero() && !exp.After(now) }

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

func copyCode(c *storage.CodeRecord) *storage.CodeRecord {
	d := *c
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

// ---- clients ----

// CreateClient implements storage.ClientStore.
func (s *Store) CreateClient(ctx context.Context, c *oauth.Client) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.clients[c.ID]; ok {
		return storage.ErrConflict
	}
	s.clients[c.ID] = copyClient(c)
	s.stamp("client", c.ID)
	return nil
}

// GetClient implements storage.ClientStore.
func (s *Store) GetClient(ctx context.Context, id string, now time.Time) (*oauth.Client, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.clients[id]
	if !ok || expired(c.ExpiresAt, now) {
		return nil, storage.ErrNotFound
	}
	return copyClient(c), nil
}

// TouchClient implements storage.ClientStore.
func (s *Store) TouchClient(ctx context.Context, id string, expiresAt time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.clients[id]
	if !ok {
		return storage.ErrNotFound
	}
	c.ExpiresAt = expiresAt
	return nil
}

// DeleteClient implements storage.ClientStore.
func (s *Store) DeleteClient(ctx context.Context, id string, now time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.clients[id]; !ok {
		return storage.ErrNotFound
	}
	for gid, g := range s.grants {
		if g.ClientID == id {
			s.revokeLocked(gid, now)
		}
	}
	delete(s.clients, id)
	return nil
}

// ListClients implements storage.ClientStore.
func (s *Store) ListClients(ctx context.Context, now time.Time) ([]*oauth.Client, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*oauth.Client
	for _, c := range s.clients {
		if !expired(c.ExpiresAt, now) {
			out = append(out, copyClient(c))
		}
	}
	sortByOrder(s, out, "client", func(c *oauth.Client) string { return c.ID })
	return out, nil
}

func sortByOrder[T any](s *Store, list []T, kind string, id func(T) string) {
	sort.SliceStable(list, func(i, j int) bool { return s.order[kind+"/"+id(list[i])] < s.order[kind+"/"+id(list[j])] })
}

// ---- grants ----

// GetGrant implements storage.GrantStore.
func (s *Store) GetGrant(ctx context.Context, id string) (*oauth.Grant, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	g, ok := s.grants[id]
	if !ok {
		return nil, storage.ErrNotFound
	}
	return copyGrant(g), nil
}

// ListGrants implements storage.GrantStore.
func (s *Store) ListGrants(ctx context.Context) ([]*oauth.Grant, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*oauth.Grant
	for _, g := range s.grants {
		if g.RevokedAt.IsZero() {
			out = append(out, copyGrant(g))
		}
	}
	sortByOrder(s, out, "grant", func(g *oauth.Grant) string { return g.ID })
	return out, nil
}

// RevokeGrant implements storage.GrantStore.
func (s *Store) RevokeGrant(ctx context.Context, id string, now time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.grants[id]; !ok {
		return storage.ErrNotFound
	}
	s.revokeLocked(id, now)
	return nil
}

func (s *Store) revokeLocked(id string, now time.Time) {
	g := s.grants[id]
	if g.RevokedAt.IsZero() {
		g.RevokedAt = now
	}
	for h, c := range s.codes {
		if c.GrantID == id {
			delete(s.codes, h)
		}
	}
	for h, r := range s.refresh {
		if r.GrantID == id {
			delete(s.refresh, h)
		}
	}
}

// TouchGrant implements storage.GrantStore.
func (s *Store) TouchGrant(ctx context.Context, id string, now time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	g, ok := s.grants[id]
	if !ok {
		return storage.ErrNotFound
	}
	g.LastUsedAt = now
	return nil
}

func (s *Store) grantActiveLocked(id string) bool {
	g, ok := s.grants[id]
	return ok && g.RevokedAt.IsZero()
}

// ---- codes ----

// GetCode implements storage.CodeStore.
func (s *Store) GetCode(ctx context.Context, hash string, now time.Time) (*storage.CodeRecord, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.codes[hash]
	if !ok || expired(c.ExpiresAt, now) {
		return nil, storage.ErrNotFound
	}
	return copyCode(c), nil
}

// RedeemCode implements storage.CodeStore.
func (s *Store) RedeemCode(ctx context.Context, hash string, now time.Time, rt *storage.RefreshRecord) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.codes[hash]
	if !ok || expired(c.ExpiresAt, now) {
		return storage.ErrNotFound
	}
	if !c.ConsumedAt.IsZero() || !s.grantActiveLocked(c.GrantID) {
		return storage.ErrConflict
	}
	if _, dup := s.refresh[rt.Hash]; dup {
		return storage.ErrConflict
	}
	c.ConsumedAt = now
	s.refresh[rt.Hash] = copyRefresh(rt)
	return nil
}

// ---- refresh tokens ----

// GetRefreshToken implements storage.RefreshTokenStore.
func (s *Store) GetRefreshToken(ctx context.Context, hash string, now time.Time) (*storage.RefreshRecord, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.refresh[hash]
	if !ok || expired(r.ExpiresAt, now) {
		return nil, storage.ErrNotFound
	}
	return copyRefresh(r), nil
}

// RotateRefreshToken implements storage.RefreshTokenStore.
func (s *Store) RotateRefreshToken(ctx context.Context, oldHash, expectedSuccessor string, next *storage.RefreshRecord, now time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	old, ok := s.refresh[oldHash]
	if !ok || expired(old.ExpiresAt, now) {
		return storage.ErrNotFound
	}
	if old.Spent || old.Successor != expectedSuccessor || !s.grantActiveLocked(old.GrantID) {
		return storage.ErrConflict
	}
	if _, dup := s.refresh[next.Hash]; dup {
		return storage.ErrConflict
	}
	if prev, ok := s.refresh[expectedSuccessor]; ok && expectedSuccessor != "" {
		prev.Spent = true
	}
	if parent, ok := s.refresh[old.Parent]; ok && old.Parent != "" {
		parent.Spent = true
	}
	old.Successor = next.Hash
	s.refresh[next.Hash] = copyRefresh(next)
	return nil
}

// ---- pending requests ----

// CreatePending implements storage.PendingStore.
func (s *Store) CreatePending(ctx context.Context, p *storage.PendingRecord) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.pending[p.ID]; ok {
		return storage.ErrConflict
	}
	if _, ok := s.byHandle[p.HandleHash]; ok {
		return storage.ErrConflict
	}
	if _, ok := s.byUCode[p.UserCodeHash]; ok {
		return storage.ErrConflict
	}
	s.pending[p.ID] = copyPending(p)
	s.byHandle[p.HandleHash] = p.ID
	s.byUCode[p.UserCodeHash] = p.ID
	s.stamp("pending", p.ID)
	return nil
}

func (s *Store) livePendingLocked(id string, now time.Time) (*storage.PendingRecord, bool) {
	p, ok := s.pending[id]
	if !ok || expired(p.ExpiresAt, now) {
		return nil, false
	}
	return p, true
}

// GetPendingByHandle implements storage.PendingStore.
func (s *Store) GetPendingByHandle(ctx context.Context, handleHash string, now time.Time) (*storage.PendingRecord, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.livePendingLocked(s.byHandle[handleHash], now)
	if !ok {
		return nil, storage.ErrNotFound
	}
	return copyPending(p), nil
}

// GetPendingByUserCode implements storage.PendingStore.
func (s *Store) GetPendingByUserCode(ctx context.Context, userCodeHash string, now time.Time) (*storage.PendingRecord, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.livePendingLocked(s.byUCode[userCodeHash], now)
	if !ok {
		return nil, storage.ErrNotFound
	}
	return copyPending(p), nil
}

// DecidePending implements storage.PendingStore.
func (s *Store) DecidePending(ctx context.Context, id, status, subject string, now time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.livePendingLocked(id, now)
	if !ok {
		return storage.ErrNotFound
	}
	if p.Status != storage.PendingWaiting {
		return storage.ErrConflict
	}
	p.Status, p.Subject = status, subject
	return nil
}

// CompletePending implements storage.PendingStore.
func (s *Store) CompletePending(ctx context.Context, id string, g *oauth.Grant, code *storage.CodeRecord, now time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.livePendingLocked(id, now)
	if !ok {
		return storage.ErrNotFound
	}
	if p.Status != storage.PendingApproved {
		return storage.ErrConflict
	}
	if _, dup := s.grants[g.ID]; dup {
		return storage.ErrConflict
	}
	if _, dup := s.codes[code.Hash]; dup {
		return storage.ErrConflict
	}
	p.Status = storage.PendingCompleted
	s.grants[g.ID] = copyGrant(g)
	s.stamp("grant", g.ID)
	s.codes[code.Hash] = copyCode(code)
	return nil
}

// ListPending implements storage.PendingStore.
func (s *Store) ListPending(ctx context.Context, now time.Time) ([]*storage.PendingRecord, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*storage.PendingRecord
	for _, p := range s.pending {
		if p.Status == storage.PendingWaiting && !expired(p.ExpiresAt, now) {
			out = append(out, copyPending(p))
		}
	}
	sortByOrder(s, out, "pending", func(p *storage.PendingRecord) string { return p.ID })
	return out, nil
}

// ---- keys ----

// ListKeys implements storage.KeyStore.
func (s *Store) ListKeys(ctx context.Context) ([]*storage.KeyRecord, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*storage.KeyRecord, 0, len(s.keys))
	for _, k := range s.keys {
		d := *k
		d.Private = slices.Clone(k.Private)
		out = append(out, &d)
	}
	sortByOrder(s, out, "key", func(k *storage.KeyRecord) string { return k.ID })
	slices.Reverse(out)
	return out, nil
}

// AddKey implements storage.KeyStore.
func (s *Store) AddKey(ctx context.Context, k *storage.KeyRecord) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.keys[k.ID]; ok {
		return storage.ErrConflict
	}
	for _, o := range s.keys {
		if o.RetiredAt.IsZero() {
			o.RetiredAt = k.CreatedAt
		}
	}
	d := *k
	d.Private = slices.Clone(k.Private)
	d.RetiredAt = time.Time{}
	s.keys[k.ID] = &d
	s.stamp("key", k.ID)
	return nil
}

// DeleteKey implements storage.KeyStore.
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

// Sweep implements storage.Store.
func (s *Store) Sweep(ctx context.Context, now time.Time) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var n int64
	for id, c := range s.clients {
		if expired(c.ExpiresAt, now) {
			for gid, g := range s.grants {
				if g.ClientID == id {
					s.revokeLocked(gid, now)
				}
			}
			delete(s.clients, id)
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
			delete(s.byHandle, p.HandleHash)
			delete(s.byUCode, p.UserCodeHash)
			n++
		}
	}
	for id, g := range s.grants {
		if !g.RevokedAt.IsZero() {
			delete(s.grants, id)
			n++
		}
	}
	return n, nil
}

// Close implements storage.Store; it is a no-op.
func (s *Store) Close() error { return nil }
