package provider

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"time"

	oauth "github.com/mcp-oauth/oauth"
	"github.com/mcp-oauth/oauth/internal/jwtkeys"
	"github.com/mcp-oauth/oauth/internal/keywrap"
	"github.com/mcp-oauth/oauth/internal/sealbox"
	"github.com/mcp-oauth/oauth/storage"
)

// Grant data (oauth.GrantDataProvider): values kept with a grant, each
// sealed with AES-256-GCM under the grant's own data key, with the grant ID
// and the value's name as additional data (so a ciphertext cannot be moved
// to another grant or name). The data key is made when the grant is, and
// stored with it wrapped by the key-encryption key (Options.
// KeyEncryptionKeys) when one is configured, so that a copy of the database
// alone reveals neither the keys nor the values.

var _ oauth.GrantDataProvider = (*Provider)(nil)

// Limits of grant data and custom claims.
const (
	// DefaultMaxGrantValueSize bounds each value kept with a grant.
	DefaultMaxGrantValueSize = 16 << 10
	// DefaultMaxGrantValues bounds how many values a grant keeps.
	DefaultMaxGrantValues = 16
	// MaxCustomClaimsSize bounds the JSON of an access token's custom
	// claims, so that tokens stay well under the 4 KiB that verifiers
	// (this one included) and HTTP headers accept.
	MaxCustomClaimsSize = 2 << 10
	maxValueName        = 64
	dataKeySize         = 32
	sealVersion         = 1
)

// Reasons of oauth.GrantEnd.
const (
	EndRevoked        = "revoked"
	EndReplaced       = "replaced"
	EndClientDeleted  = "client_deleted"
	EndSubjectRemoved = "subject_removed"
	EndExpired        = "expired"
)

func validName(name string) bool {
	if name == "" || len(name) > maxValueName {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// sealedClaimsKey is the entry of the stored Grant.Claims that keeps the
// grant's sealed claims (oauth.Sealed): their JSON sealed with the
// key-encryption key (as is, without one), base64url. Kept with the
// grant's other claims so that the token endpoint reads the grant once;
// the Provider removes it from every Grant it hands out.
const sealedClaimsKey = "mcpauth_sealed"

// grantClaimsID is the additional data that binds sealed claims to their
// grant.
func grantClaimsID(grantID string) string { return "grant-claims:" + grantID }

// storeSealedClaims puts sealed, sealed, into the claims to store for
// grant id.
func (p *Provider) storeSealedClaims(id string, claims, sealed map[string]any) (map[string]any, error) {
	if len(sealed) == 0 {
		return claims, nil
	}
	b, err := json.Marshal(sealed)
	if err != nil {
		return nil, fmt.Errorf("provider: sealed claims: %w", err)
	}
	ct, err := p.kek.Seal(grantClaimsID(id), b)
	if err != nil {
		return nil, fmt.Errorf("provider: seal claims: %w", err)
	}
	out := maps.Clone(claims)
	if out == nil {
		out = map[string]any{}
	}
	out[sealedClaimsKey] = base64.RawURLEncoding.EncodeToString(ct)
	return out, nil
}

// splitStoredClaims returns a stored grant's plain claims (a copy without
// the sealed entry) and its sealed claims, opened.
func (p *Provider) splitStoredClaims(g *oauth.Grant) (plain, sealed map[string]any, err error) {
	enc, ok := g.Claims[sealedClaimsKey].(string)
	if !ok {
		return g.Claims, nil, nil
	}
	plain = maps.Clone(g.Claims)
	delete(plain, sealedClaimsKey)
	if len(plain) == 0 {
		plain = nil
	}
	ct, err := base64.RawURLEncoding.DecodeString(enc)
	if err != nil {
		return nil, nil, fmt.Errorf("provider: sealed claims of grant %s are malformed", g.ID)
	}
	b, err := p.kek.Open(grantClaimsID(g.ID), ct)
	if err != nil {
		return nil, nil, fmt.Errorf("provider: sealed claims of grant %s: %w", g.ID, err)
	}
	if err := json.Unmarshal(b, &sealed); err != nil {
		return nil, nil, fmt.Errorf("provider: sealed claims of grant %s: %w", g.ID, err)
	}
	return plain, sealed, nil
}

// public returns g as the Provider hands it out: without the sealed
// claims' entry.
func public(g *oauth.Grant) *oauth.Grant {
	if _, ok := g.Claims[sealedClaimsKey]; !ok {
		return g
	}
	c := *g
	c.Claims = maps.Clone(g.Claims)
	delete(c.Claims, sealedClaimsKey)
	if len(c.Claims) == 0 {
		c.Claims = nil
	}
	return &c
}

func (p *Provider) checkValue(name string, value []byte) error {
	if !validName(name) {
		return fmt.Errorf("provider: grant data name %q: must be 1 to %d letters, digits, '.', '_' or '-': %w", name, maxValueName, oauth.ErrGrantDataLimit)
	}
	if len(value) > p.opts.MaxGrantValueSize {
		return fmt.Errorf("provider: grant data %q is %d bytes, over the limit of %d: %w", name, len(value), p.opts.MaxGrantValueSize, oauth.ErrGrantDataLimit)
	}
	return nil
}

// checkSetup validates what a setup step completed with, before anything
// is stored: names, sizes and count of the values, and the claims (see
// checkClaims). It returns the plain and the sealed claims, each in the
// form they come back from the store (a JSON round trip).
func (p *Provider) checkSetup(s *oauth.GrantSetup) (plain, sealed map[string]any, err error) {
	if s == nil {
		return nil, nil, nil
	}
	if len(s.Values) > p.opts.MaxGrantValues {
		return nil, nil, fmt.Errorf("provider: setup has %d values, over the limit of %d: %w", len(s.Values), p.opts.MaxGrantValues, oauth.ErrGrantDataLimit)
	}
	seen := make(map[string]bool, len(s.Values))
	for _, v := range s.Values {
		if err := p.checkValue(v.Name, v.Value); err != nil {
			return nil, nil, err
		}
		if seen[v.Name] {
			return nil, nil, fmt.Errorf("provider: setup has two values named %q", v.Name)
		}
		seen[v.Name] = true
	}
	return checkClaims(s.Claims)
}

// checkClaims refuses reserved names (oauth.ErrReservedClaim) and claims
// whose JSON is over MaxCustomClaimsSize or does not encode, and returns
// them, split into plain and sealed (oauth.Sealed, unwrapped), as
// encoding/json decodes them.
func checkClaims(claims map[string]any) (plain, sealed map[string]any, err error) {
	if len(claims) == 0 {
		return nil, nil, nil
	}
	for name, v := range claims {
		if jwtkeys.Reserved(name) {
			return nil, nil, fmt.Errorf("provider: custom claim %q: %w", name, oauth.ErrReservedClaim)
		}
		if sp, ok := v.(*oauth.Sealed); ok && sp != nil {
			v = *sp
		}
		if s, ok := v.(oauth.Sealed); ok {
			if sealed == nil {
				sealed = map[string]any{}
			}
			sealed[name] = s.Value
		} else {
			if plain == nil {
				plain = map[string]any{}
			}
			plain[name] = v
		}
	}
	size := 0
	for _, m := range []*map[string]any{&plain, &sealed} {
		if *m == nil {
			continue
		}
		b, err := json.Marshal(*m)
		if err != nil {
			return nil, nil, fmt.Errorf("provider: custom claims do not encode as JSON: %w", err)
		}
		size += len(b)
		if m == &sealed {
			// Sealed, they travel as base64 of nonce, ciphertext and tag,
			// encoded again as the JWT's payload.
			size += len(b)/3 + 40
		}
		*m = nil
		if err := json.Unmarshal(b, m); err != nil {
			return nil, nil, fmt.Errorf("provider: custom claims: %w", err)
		}
	}
	if size > MaxCustomClaimsSize {
		return nil, nil, fmt.Errorf("provider: custom claims are %d bytes of JSON, over the limit of %d: %w", size, MaxCustomClaimsSize, oauth.ErrGrantDataLimit)
	}
	return plain, sealed, nil
}

// newDataKey returns a fresh data key for grant id, and its wrapped form.
func (p *Provider) newDataKey(id string) (key, wrapped []byte, err error) {
	key = make([]byte, dataKeySize)
	if _, err := rand.Read(key); err != nil {
		return nil, nil, err
	}
	wrapped, err = p.kek.Seal(dataKeyID(id), key)
	if err != nil {
		return nil, nil, fmt.Errorf("provider: wrap data key: %w", err)
	}
	if !p.kek.Enabled() {
		wrapped = append([]byte(nil), key...) // stored as is: no KEK
	}
	return key, wrapped, nil
}

// dataKeyID is the additional data that binds a wrapped data key to its
// grant.
func dataKeyID(grantID string) string { return "grant:" + grantID }

func (p *Provider) openDataKey(grantID string, wrapped []byte) ([]byte, error) {
	if p.kek.Enabled() && !keywrap.IsSealed(wrapped) {
		// With a KEK, an unwrapped data key is either older than the KEK
		// or planted by someone who can write the database: its values
		// are not trusted.
		return nil, fmt.Errorf("provider: the data key of grant %s is stored unwrapped while a key-encryption key is configured", grantID)
	}
	key, err := p.kek.Open(dataKeyID(grantID), wrapped)
	if err != nil {
		return nil, fmt.Errorf("provider: data key of grant %s: %w", grantID, err)
	}
	if len(key) != dataKeySize {
		return nil, fmt.Errorf("provider: data key of grant %s has the wrong size", grantID)
	}
	return key, nil
}

func valueAAD(grantID, name string) []byte { return []byte(grantID + "\x00" + name) }

// seal encrypts value for grantID's name under key: version, then
// sealbox's nonce, ciphertext and tag.
func seal(key []byte, grantID, name string, value []byte) ([]byte, error) {
	b, err := sealbox.New(key)
	if err != nil {
		return nil, err
	}
	return b.Seal([]byte{sealVersion}, value, valueAAD(grantID, name)), nil
}

func open(key []byte, grantID, name string, sealed []byte) ([]byte, error) {
	b, err := sealbox.New(key)
	if err != nil {
		return nil, err
	}
	if len(sealed) == 0 || sealed[0] != sealVersion {
		return nil, fmt.Errorf("provider: grant data %q of grant %s is malformed", name, grantID)
	}
	pt, err := b.Open(sealed[1:], valueAAD(grantID, name))
	if err != nil {
		return nil, fmt.Errorf("provider: grant data %q of grant %s does not decrypt (tampered, or moved)", name, grantID)
	}
	return pt, nil
}

// newGrantRecord makes the stored form of a new grant: its data key, and
// the setup's values, sealed.
func (p *Provider) newGrantRecord(g *oauth.Grant, s *oauth.GrantSetup, now time.Time) (*storage.GrantRecord, error) {
	key, wrapped, err := p.newDataKey(g.ID)
	if err != nil {
		return nil, err
	}
	rec := &storage.GrantRecord{Grant: *g, DataKey: wrapped}
	if s == nil {
		return rec, nil
	}
	for _, v := range s.Values {
		d, err := p.sealValue(key, g.ID, v.Name, v.Value, v.TTL, now)
		if err != nil {
			return nil, err
		}
		rec.Data = append(rec.Data, d)
	}
	return rec, nil
}

func (p *Provider) sealValue(key []byte, grantID, name string, value []byte, ttl time.Duration, now time.Time) (*storage.GrantDataRecord, error) {
	sealed, err := seal(key, grantID, name, value)
	if err != nil {
		return nil, fmt.Errorf("provider: seal grant data: %w", err)
	}
	d := &storage.GrantDataRecord{GrantID: grantID, Name: name, Sealed: sealed}
	if ttl > 0 {
		d.ExpiresAt = now.Add(ttl)
	}
	return d, nil
}

// GrantData implements oauth.GrantDataProvider with one store read.
func (p *Provider) GrantData(ctx context.Context, grantID, name string) ([]byte, error) {
	if !validName(name) {
		return nil, oauth.ErrNoGrantData
	}
	wrapped, rec, err := p.store.GetGrantData(ctx, grantID, name, p.now())
	if errors.Is(err, storage.ErrNotFound) {
		return nil, oauth.ErrNoGrantData
	}
	if err != nil {
		return nil, fmt.Errorf("provider: get grant data: %w", err)
	}
	key, err := p.openDataKey(grantID, wrapped)
	if err != nil {
		return nil, err
	}
	return open(key, grantID, name, rec.Sealed)
}

// SetGrantData implements oauth.GrantDataProvider.
func (p *Provider) SetGrantData(ctx context.Context, grantID, name string, value []byte, ttl time.Duration) error {
	if err := p.checkValue(name, value); err != nil {
		return err
	}
	wrapped, err := p.store.GetGrantKey(ctx, grantID)
	if errors.Is(err, storage.ErrNotFound) {
		return oauth.ErrGrantNotActive
	}
	if err != nil {
		return fmt.Errorf("provider: get grant key: %w", err)
	}
	if len(wrapped) == 0 {
		return fmt.Errorf("provider: grant %s has no data key", grantID)
	}
	key, err := p.openDataKey(grantID, wrapped)
	if err != nil {
		return err
	}
	now := p.now()
	rec, err := p.sealValue(key, grantID, name, value, ttl, now)
	if err != nil {
		return err
	}
	switch err := p.store.PutGrantData(ctx, rec, p.opts.MaxGrantValues, now); {
	case errors.Is(err, storage.ErrNotFound):
		return oauth.ErrGrantNotActive
	case errors.Is(err, storage.ErrLimit):
		return fmt.Errorf("provider: grant %s already keeps %d values: %w", grantID, p.opts.MaxGrantValues, oauth.ErrGrantDataLimit)
	case err != nil:
		return fmt.Errorf("provider: put grant data: %w", err)
	}
	return nil
}

// DeleteGrantData implements oauth.GrantDataProvider.
func (p *Provider) DeleteGrantData(ctx context.Context, grantID, name string) error {
	if !validName(name) {
		return nil
	}
	if err := p.store.DeleteGrantData(ctx, grantID, name); err != nil {
		return fmt.Errorf("provider: delete grant data: %w", err)
	}
	return nil
}

// grantEnded tells the host (Options.OnGrantEnd) that the grant of rec
// ended, with its values opened. A value that does not open is left out
// and logged.
func (p *Provider) grantEnded(ctx context.Context, rec *storage.GrantRecord, reason string) {
	if p.opts.OnGrantEnd == nil || rec == nil {
		return
	}
	e := &oauth.GrantEnd{Grant: public(&rec.Grant), Reason: reason}
	if len(rec.Data) > 0 {
		key, err := p.openDataKey(rec.ID, rec.DataKey)
		if err != nil {
			p.log.Error("mcpauth: data of an ended grant", "grant_id", rec.ID, "err", err)
		}
		for _, d := range rec.Data {
			if key == nil {
				break
			}
			v, err := open(key, rec.ID, d.Name, d.Sealed)
			if err != nil {
				p.log.Error("mcpauth: data of an ended grant", "grant_id", rec.ID, "err", err)
				continue
			}
			if e.Values == nil {
				e.Values = map[string][]byte{}
			}
			e.Values[d.Name] = v
		}
	}
	// The hook runs to its end even if the request that ended the grant
	// is cancelled (a client hanging up on /revoke).
	p.opts.OnGrantEnd(context.WithoutCancel(ctx), e)
}

// pendingID is the additional data that binds a sealed setup to its
// pending request.
func pendingID(id string) string { return "pending:" + id }

// storedSetup is the JSON of a setup a pending request keeps: the sealed
// claims apart, since oauth.Sealed does not survive encoding/json.
type storedSetup struct {
	Values []oauth.GrantValue `json:"values,omitempty"`
	Claims map[string]any     `json:"claims,omitempty"`
	Sealed map[string]any     `json:"sealed,omitempty"`
}

// sealSetup returns the stored form of a setup given with the owner's
// decision (Approve): its JSON, sealed with the key-encryption key when
// one is configured. The pending request keeps it until completion, which
// clears it.
func (p *Provider) sealSetup(id string, s *oauth.GrantSetup) ([]byte, error) {
	if s == nil {
		return nil, nil
	}
	plain, sealed, err := checkClaims(s.Claims)
	if err != nil {
		return nil, err
	}
	b, err := json.Marshal(storedSetup{Values: s.Values, Claims: plain, Sealed: sealed})
	if err != nil {
		return nil, fmt.Errorf("provider: setup does not encode: %w", err)
	}
	return p.kek.Seal(pendingID(id), b)
}

// pendingSetup returns what a completing request's grant keeps: the setup
// given with the decision (sealed in rec), merged with the one given at
// completion (a browser tab's setup step), whose values and claims win on
// a name both have.
func (p *Provider) pendingSetup(rec *storage.PendingRecord, now *oauth.GrantSetup) (*oauth.GrantSetup, error) {
	if len(rec.Setup) == 0 {
		return now, nil
	}
	b, err := p.kek.Open(pendingID(rec.ID), rec.Setup)
	if err != nil {
		return nil, fmt.Errorf("provider: setup of request %s: %w", rec.ID, err)
	}
	var st storedSetup
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("provider: setup of request %s: %w", rec.ID, err)
	}
	s := oauth.GrantSetup{Values: st.Values, Claims: st.Claims}
	for name, v := range st.Sealed {
		if s.Claims == nil {
			s.Claims = map[string]any{}
		}
		s.Claims[name] = oauth.Sealed{Value: v}
	}
	if now == nil {
		return &s, nil
	}
	out := &oauth.GrantSetup{Claims: maps.Clone(s.Claims)}
	if len(now.Claims) > 0 && out.Claims == nil {
		out.Claims = map[string]any{}
	}
	maps.Copy(out.Claims, now.Claims)
	names := map[string]bool{}
	for _, v := range now.Values {
		names[v.Name] = true
	}
	for _, v := range s.Values {
		if !names[v.Name] {
			out.Values = append(out.Values, v)
		}
	}
	out.Values = append(out.Values, now.Values...)
	return out, nil
}
