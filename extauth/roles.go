package extauth

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
)

// Limits on roles taken from one token.
const (
	maxRoles       = 256
	maxRoleLen     = 256
	maxPathLen     = 512
	maxPathSegment = 8
)

// RoleOptions say how a Verifier finds the roles of a token's holder
// (oauth.AccessToken.Roles, which reach tools as mcpauth.Caller.Roles and
// which mcpauth.BearerOptions.RequiredRoles and ToolRoles require). The
// zero value finds none.
type RoleOptions struct {
	// Scopes maps a granted scope to the roles it grants, for issuers that
	// express permissions as scopes: {"notes.admin": {"admin"}}.
	Scopes map[string][]string
	// Claims name the claims whose values are roles. Where the common
	// identity providers put them:
	//
	//	Keycloak       realm_access.roles, resource_access.<client-id>.roles
	//	Entra ID       roles (app roles), scp (delegated permissions, a space-separated string)
	//	Okta           groups (when a groups claim is configured), scp
	//	Auth0          permissions (RBAC "Add Permissions in the Access Token"), or a namespaced custom claim such as https://example.com/roles
	Claims []RoleClaim
}

// RoleClaim is a claim whose values are roles.
type RoleClaim struct {
	// Path names the claim: a top-level name ("roles"), or names of nested
	// objects joined by dots ("realm_access.roles",
	// "resource_access.notes-api.roles"). At each level the longest run of
	// segments that names a member is taken, so names that contain dots
	// work as written: "https://example.com/roles",
	// "resource_access.api.example.com.roles". A string value is split at
	// spaces (as scope and scp are); an array contributes its string
	// elements; other values contribute nothing.
	Path string
	// Map, when non-nil, maps a value found at Path to the roles it
	// grants ({"notes-admins": {"admin"}}); values it does not name grant
	// nothing. Nil takes every value as a role of the same name.
	Map map[string][]string
}

// roleMapper is RoleOptions, compiled.
type roleMapper struct {
	scopes map[string][]string
	claims []compiledClaim
}

type compiledClaim struct {
	// prefixes[n-1] is the first n segments of the path joined by dots.
	prefixes []string
	m        map[string][]string
}

func compileRoles(o RoleOptions) (*roleMapper, error) {
	m := &roleMapper{scopes: o.Scopes}
	for i, c := range o.Claims {
		if c.Path == "" || len(c.Path) > maxPathLen {
			return nil, fmt.Errorf("Roles.Claims[%d].Path %q: empty or longer than %d bytes", i, c.Path, maxPathLen)
		}
		segs := strings.Split(c.Path, ".")
		if len(segs) > maxPathSegment || slices.Contains(segs, "") {
			return nil, fmt.Errorf("Roles.Claims[%d].Path %q: at most %d non-empty names joined by dots", i, c.Path, maxPathSegment)
		}
		cc := compiledClaim{m: c.Map}
		for n := 1; n <= len(segs); n++ {
			cc.prefixes = append(cc.prefixes, strings.Join(segs[:n], "."))
		}
		m.claims = append(m.claims, cc)
	}
	if len(m.scopes) == 0 && len(m.claims) == 0 {
		return nil, nil
	}
	return m, nil
}

// roles returns the roles of a token with claims c and scopes, in a
// stable order (scopes' roles first, then each claim's), without repeats;
// nil when there are none.
func (m *roleMapper) roles(c *claimSet, scopes []string) []string {
	if m == nil {
		return nil
	}
	// A role is a string of RoleOptions, or bytes of the claims, which
	// are copied at the end, all into one allocation.
	type role struct {
		s string
		b []byte // non-empty for a role of the claims
	}
	var buf [16]role
	rs := buf[:0]
	// room reports whether a role of n bytes may be added: not empty, not
	// too long, and room left.
	room := func(n int) bool { return n > 0 && n <= maxRoleLen && len(rs) < maxRoles }
	add := func(r string) {
		if room(len(r)) && !slices.ContainsFunc(rs, func(x role) bool { return x.s == r || string(x.b) == r }) {
			rs = append(rs, role{s: r})
		}
	}
	for _, s := range scopes {
		for _, r := range m.scopes[s] {
			add(r)
		}
	}
	for _, rc := range m.claims {
		eachRawString(rc.lookup(c.roots), func(v []byte) {
			if rc.m != nil {
				for _, r := range rc.m[string(v)] {
					add(r)
				}
				return
			}
			if room(len(v)) && !slices.ContainsFunc(rs, func(x role) bool { return x.s == string(v) || string(x.b) == string(v) }) {
				rs = append(rs, role{b: v})
			}
		})
	}
	if len(rs) == 0 {
		return nil
	}
	var sb strings.Builder
	n := 0
	for _, r := range rs {
		n += len(r.b)
	}
	sb.Grow(n)
	for _, r := range rs {
		sb.Write(r.b)
	}
	strs := sb.String()
	out := make([]string, len(rs))
	for i, r := range rs {
		if out[i] = r.s; r.b != nil {
			out[i], strs = strs[:len(r.b)], strs[len(r.b):]
		}
	}
	return out
}

// lookup returns the raw value at the claim's path, starting from the
// top-level members pick kept (roots): the longest prefix of the path
// that names one (the last, if a name repeats), then lookupPath below it.
func (rc *compiledClaim) lookup(roots []member) []byte {
	var best []byte
	bestN := 0
	for _, m := range roots {
		for n := len(rc.prefixes); n > bestN-1 && n > 0; n-- {
			if string(m.name) == rc.prefixes[n-1] {
				if n >= bestN {
					best, bestN = m.raw, n
				}
				break
			}
		}
	}
	if best == nil {
		return nil
	}
	return lookupFrom(best, rc.prefixes, bestN)
}

// lookupPath returns the raw value at a path of the JSON object raw
// (valid JSON), given the path's prefixes: at each level, the member named
// by the longest run of the remaining segments joined by dots (the last
// such member, if a name repeats). Nil when there is none.
func lookupPath(raw []byte, prefixes []string) []byte {
	return lookupFrom(raw, prefixes, 0)
}

// lookupFrom is lookupPath in raw, the value at the path's first j
// segments.
func lookupFrom(raw []byte, prefixes []string, j int) []byte {
	k := len(prefixes)
	for j < k { // j segments followed
		off := 0
		if j > 0 {
			off = len(prefixes[j-1]) + 1
		}
		var best []byte
		bestN := 0
		eachMember(raw, func(key []byte, _ string, val []byte) error {
			for n := k; n > j; n-- {
				if string(key) == prefixes[n-1][off:] {
					if n >= bestN {
						best, bestN = val, n
					}
					break
				}
			}
			return nil
		})
		if best == nil {
			return nil
		}
		raw, j = best, bestN
	}
	return raw
}

// rawStrings returns the strings of a raw claim value: a string split at
// whitespace, or the string elements of an array.
func rawStrings(raw []byte) []string {
	var out []string
	eachRawString(raw, func(s []byte) { out = append(out, string(s)) })
	return out
}

// eachRawString calls fn with each string of a raw claim value, as
// rawStrings returns them, without allocating them: the fields of a
// string (split at white space, as strings.Fields splits), or the string
// elements of an array, unescaped. Each is a slice of raw, or, for a
// string with escapes, of a copy.
func eachRawString(raw []byte, fn func(s []byte)) {
	if len(raw) == 0 {
		return
	}
	if s, ok := rawStringBytes(raw); ok {
		for f := range bytes.FieldsSeq(s) {
			fn(f)
		}
		return
	}
	eachElement(raw, func(e []byte) {
		if s, ok := rawStringBytes(e); ok {
			fn(s)
		}
	})
}

// claimStrings returns the strings of a decoded claim value: a string
// split at whitespace, or the string elements of an array.
func claimStrings(v any) []string {
	switch t := v.(type) {
	case string:
		return strings.Fields(t)
	case []any:
		out := make([]string, 0, len(t))
		for _, e := range t {
			if s, ok := e.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}
