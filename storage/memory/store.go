// Package memory is an in-memory storage.Store and storage.AccountStore for
// tests and ephemeral servers: everything is lost when the process exits.
//
// All state sits behind one mutex, which makes every operation, including
// the ones the contract requires to be atomic, trivially so. Records are
// deep-copied on the way in and on the way out, so callers can never alias
// or mutate stored state.
package memory

import (
	"cmp"
	"encoding/json"
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

	// data holds the grants' values: grant ID → name → value (grantdata.go).
	data map[string]map[string]*storage.GrantDataRecord

	pendingByHandle   map[string]string // handle hash → pending ID
	pendingByUserCode map[string]string // user code hash → pending ID
	pendingByDevice   map[string]string // device code hash → pending ID

	// revocations counts grants that stopped being active.
	revocations int64

	users    map[string]*userRow               // by name (accounts.go)
	sessions map[string]*storage.SessionRecord // by hash
}

type clientRow struct {
	*oauth.Client
	seq int64
}

// grantRow is a stored grant. Its Claims went through a JSON round trip on
// the way in, so they hold what encoding/json decodes (numbers are
// float64), as in the SQL backends; dataKey is the wrapped data key, nil
// once the grant is revoked.
type grantRow struct {
	*oauth.Grant
	dataKey []byte
	seq     int64
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
		data:              map[string]map[string]*storage.GrantDataRecord{},
		pendingByHandle:   map[string]string{},
		pendingByUserCode: map[string]string{},
		pendingByDevice:   map[string]string{},
		users:             map[string]*userRow{},
		sessions:          map[string]*storage.SessionRecord{},
	}
}

// Close implements storage.Store; it does nothing, and the Store stays
// usable.
func (s *Store) Close() error { return nil }

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

// copyGrant copies g, claims included; g's claims must be what
// normalizeClaims returns.
func copyGrant(g *oauth.Grant) *oauth.Grant {
	d := *g
	d.Scopes = slices.Clone(g.Scopes)
	if len(g.Claims) == 0 {
		d.Claims = nil
	} else {
		d.Claims = copyJSON(g.Claims).(map[string]any)
	}
	return &d
}

// normalizeClaims returns claims as encoding/json decodes their encoding
// (a deep copy, numbers as float64), nil for none. It fails for claims
// that have no JSON encoding.
func normalizeClaims(claims map[string]any) (map[string]any, error) {
	if len(claims) == 0 {
		return nil, nil
	}
	b, err := json.Marshal(claims)
	if err != nil {
		return nil, fmt.Errorf("encode claims: %w", err)
	}
	var out map[string]any
	if err := json.Unmarshal(b, &out); err != nil {
		return nil, fmt.Errorf("decode claims: %w", err)
	}
	return out, nil
}

// copyJSON deep-copies a value that encoding/json decoded into an any.
func copyJSON(v any) any {
	switch v := v.(type) {
	case map[string]any:
		m := make(map[string]any, len(v))
		for k, e := range v {
			m[k] = copyJSON(e)
		}
		return m
	case []any:
		l := make([]any, len(v))
		for i, e := range v {
			l[i] = copyJSON(e)
		}
		return l
	}
	return v // nil, bool, float64, string
}

func copyGrantData(r *storage.GrantDataRecord) *storage.GrantDataRecord {
	d := *r
	d.Sealed = slices.Clone(r.Sealed)
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
	d.Setup = slices.Clone(p.Setup)
	return &d
}

func copyKey(k *storage.KeyRecord) *storage.KeyRecord {
	d := *k
	d.Private = slices.Clone(k.Private)
	return &d
}
