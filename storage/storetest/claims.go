package storetest

import (
	"reflect"
	"testing"
	"time"

	oauth "github.com/mcp-oauth/oauth"
)

// testGrantClaims: a grant's custom claims are kept as JSON: every method
// that returns the grant returns them as encoding/json decodes them
// (numbers as float64, lists as []any, objects as map[string]any), and a
// grant without claims comes back without (nil or empty).
func testGrantClaims(t *testing.T, f *fixture) {
	c := f.createClient(base, time.Time{})
	for _, tc := range []struct {
		name   string
		claims map[string]any
		want   map[string]any
	}{
		{"Nil", nil, nil},
		{"Empty", map[string]any{}, nil},
		{"Strings", map[string]any{"tenant": "acme", "empty": ""}, map[string]any{"tenant": "acme", "empty": ""}},
		{"Numbers",
			map[string]any{"int": 3, "neg": int64(-7), "byte": uint8(200), "frac": 2.5, "big": 1 << 40, "float32": float32(0.5)},
			map[string]any{"int": float64(3), "neg": float64(-7), "byte": float64(200), "frac": 2.5, "big": float64(1 << 40), "float32": 0.5}},
		{"BoolsAndNull", map[string]any{"yes": true, "no": false, "null": nil}, map[string]any{"yes": true, "no": false, "null": nil}},
		{"Nested",
			map[string]any{"org": map[string]any{"id": "o-1", "seats": 12, "tags": []string{"eu", "paid"}}, "list": []any{1, "x", map[string]any{"c": nil}}},
			map[string]any{"org": map[string]any{"id": "o-1", "seats": float64(12), "tags": []any{"eu", "paid"}}, "list": []any{float64(1), "x", map[string]any{"c": nil}}}},
		{"Text", map[string]any{"名前": "値", "key": "🔑", "markup": `a"b\c</script>&<`, "nul": "a\x00b"},
			map[string]any{"名前": "値", "key": "🔑", "markup": `a"b\c</script>&<`, "nul": "a\x00b"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := f.sub(t)
			p := f.createPending(c.ID, base, base.Add(pendingTTL))
			subject := f.id("user")
			f.must(f.s.DecidePending(f.ctx, p.ID, oauth.PendingApproved, subject, nil, base), "DecidePending")
			g, code := f.newGrantAndCode(p, subject, base, base.Add(time.Hour))
			g.Claims = tc.claims
			f.must(f.s.CompletePending(f.ctx, p.ID, g, code, base), "CompletePending")
			check := func(what string, got map[string]any) {
				t.Helper()
				if len(got) == 0 && len(tc.want) == 0 {
					return
				}
				if !reflect.DeepEqual(got, tc.want) {
					t.Errorf("%s: Claims = %#v, want %#v", what, got, tc.want)
				}
			}
			check("GetGrant", f.grant(g.ID).Claims)
			list, err := f.s.ListGrants(f.ctx)
			f.must(err, "ListGrants")
			for _, l := range list {
				if l.ID == g.ID {
					check("ListGrants", l.Claims)
				}
			}
			list, err = f.s.ListSubjectGrants(f.ctx, subject)
			f.must(err, "ListSubjectGrants")
			if len(list) != 1 {
				t.Fatalf("ListSubjectGrants = %d grants, want 1", len(list))
			}
			check("ListSubjectGrants", list[0].Claims)
			rec, err := f.s.RevokeGrant(f.ctx, g.ID, base.Add(time.Minute))
			f.must(err, "RevokeGrant")
			if rec == nil {
				t.Fatal("RevokeGrant returned no grant")
			}
			check("RevokeGrant's record", rec.Claims)
			check("GetGrant of the revoked grant", f.grant(g.ID).Claims)
		})
	}
}

// testGrantClaimsWithoutJSON: claims that have no JSON encoding cannot be
// kept, so CompletePending fails and stores nothing: the request stays
// approved, and neither grant nor code exists.
func testGrantClaimsWithoutJSON(t *testing.T, f *fixture) {
	c := f.createClient(base, time.Time{})
	p := f.createPending(c.ID, base, base.Add(pendingTTL))
	f.must(f.s.DecidePending(f.ctx, p.ID, oauth.PendingApproved, "alice", nil, base), "DecidePending")
	g, code := f.newGrantAndCode(p, "alice", base, base.Add(time.Hour))
	g.Claims = map[string]any{"fn": func() {}}
	if err := f.s.CompletePending(f.ctx, p.ID, g, code, base); err == nil {
		t.Fatal("CompletePending stored claims that have no JSON encoding")
	}
	if got := f.pendingByHandle(p.HandleHash, base); got.Status != oauth.PendingApproved {
		t.Errorf("request after the failed CompletePending is %q, want %q", got.Status, oauth.PendingApproved)
	}
	f.grantGone(g.ID)
	f.codeGone(code.Hash, base)
	g.Claims = map[string]any{"ok": true}
	f.must(f.s.CompletePending(f.ctx, p.ID, g, code, base), "CompletePending with claims that have a JSON encoding")
}
