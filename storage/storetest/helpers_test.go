package storetest

import (
	"testing"
	"time"

	oauth "github.com/mcp-oauth/oauth"
	"github.com/mcp-oauth/oauth/storage"
)

func TestSameTime(t *testing.T) {
	at := base.Add(fine)
	for _, tc := range []struct {
		name      string
		got, want time.Time
		same      bool
	}{
		{"Equal", at, at, true},
		{"OtherZone", at.In(time.FixedZone("X", 3600)), at, true},
		{"TruncatedToMillisecond", at.Truncate(time.Millisecond), at, true},
		{"TruncatedToMicrosecond", at.Truncate(time.Microsecond), at, true},
		{"RoundedToMillisecond", at.Round(time.Millisecond), at, true},
		{"TruncatedToSecond", at.Truncate(time.Second), at, false},
		{"OneMillisecondLate", at.Add(time.Millisecond), at, false},
		{"ZeroForNonZero", time.Time{}, at, false},
		{"NonZeroForZero", time.Unix(0, 0), time.Time{}, false},
		{"BothZero", time.Time{}, time.Time{}, true},
	} {
		if got := sameTime(tc.got, tc.want); got != tc.same {
			t.Errorf("%s: sameTime(%s, %s) = %v, want %v", tc.name, fmtTime(tc.got), fmtTime(tc.want), got, tc.same)
		}
	}
}

func TestDiff(t *testing.T) {
	want := &storage.RefreshRecord{Hash: "h", Scopes: []string{"a", "b"}, CreatedAt: base, Spent: true}
	for _, tc := range []struct {
		name   string
		change func(r *storage.RefreshRecord)
		diffs  int
	}{
		{"Same", func(*storage.RefreshRecord) {}, 0},
		{"String", func(r *storage.RefreshRecord) { r.Hash = "x" }, 1},
		{"Bool", func(r *storage.RefreshRecord) { r.Spent = false }, 1},
		{"SliceElement", func(r *storage.RefreshRecord) { r.Scopes[1] = "c" }, 1},
		{"SliceLength", func(r *storage.RefreshRecord) { r.Scopes = r.Scopes[:1] }, 1},
		{"Time", func(r *storage.RefreshRecord) { r.CreatedAt = base.Add(time.Second) }, 1},
		{"ZeroTime", func(r *storage.RefreshRecord) { r.ExpiresAt = base }, 1},
		{"Two", func(r *storage.RefreshRecord) { r.Hash, r.Parent = "x", "p" }, 2},
	} {
		got := clone(want)
		tc.change(got)
		if d := diff(got, want); len(d) != tc.diffs {
			t.Errorf("%s: diff = %q, want %d differences", tc.name, d, tc.diffs)
		}
	}
	if d := diff(&oauth.Grant{Scopes: []string{}}, &oauth.Grant{}); len(d) != 0 {
		t.Errorf("empty and nil slices differ: %q", d)
	}
	c := &oauth.Client{ID: "c"}
	c.RedirectURIs = []string{"https://a.example/cb"}
	if d := diff(&oauth.Client{ID: "c"}, c); len(d) != 1 {
		t.Errorf("diff of embedded metadata = %q, want 1 difference", d)
	}
}

func TestCloneAndScribble(t *testing.T) {
	c := &oauth.Client{ID: "c", IssuedAt: base}
	c.RedirectURIs = []string{"https://a.example/cb"}
	c.Contacts = []string{"a@example", "b@example"}
	k := clone(c)
	if n := scribble(c); n != 3 {
		t.Errorf("scribble changed %d elements, want 3", n)
	}
	if d := diff(k, c); len(d) != 3 {
		t.Errorf("clone shares slices with the original: diff = %q", d)
	}
	if k.RedirectURIs[0] != "https://a.example/cb" {
		t.Errorf("clone changed by scribbling the original: %q", k.RedirectURIs)
	}
}

func TestUnset(t *testing.T) {
	g := &oauth.Grant{ID: "g", ClientID: "c", Subject: "s", Scopes: []string{"a"}, Resource: "r", RedirectURI: "https://a.example/cb",
		CreatedAt: base, LastUsedAt: base, Claims: map[string]any{"k": "v"},
		GrantType: "client_credentials", ExpiresAt: base}
	if u := unset(g); len(u) != 1 || u[0] != "RevokedAt" {
		t.Errorf("unset = %q, want [RevokedAt]", u)
	}
	if u := unset(g, "RevokedAt"); len(u) != 0 {
		t.Errorf("unset with exception = %q, want none", u)
	}
	g.Scopes = []string{}
	if u := unset(g, "RevokedAt"); len(u) != 1 || u[0] != "Scopes" {
		t.Errorf("unset with an empty slice = %q, want [Scopes]", u)
	}
	g.Scopes, g.Claims = []string{"a"}, map[string]any{}
	if u := unset(g, "RevokedAt"); len(u) != 1 || u[0] != "Claims" {
		t.Errorf("unset with an empty map = %q, want [Claims]", u)
	}
}

func TestMapsAndPointers(t *testing.T) {
	if d := diff(&oauth.Grant{Claims: map[string]any{}}, &oauth.Grant{}); len(d) != 0 {
		t.Errorf("empty and nil claims differ: %q", d)
	}
	if d := diff(&oauth.Grant{Claims: map[string]any{"n": 3}}, &oauth.Grant{Claims: map[string]any{"n": float64(3)}}); len(d) != 1 {
		t.Errorf("an int claim and a float64 one: diff = %q, want 1 difference", d)
	}
	r := &storage.GrantRecord{
		Grant:   oauth.Grant{Claims: map[string]any{"s": "x", "l": []any{"y", 1.0}, "o": map[string]any{"b": true}}},
		DataKey: []byte{1, 2},
		Data:    []*storage.GrantDataRecord{{Name: "v", Sealed: []byte{3}}},
	}
	k := clone(r)
	// 4 JSON scalars in the claims, 2 key bytes, 1 sealed byte.
	if n := scribble(r); n != 7 {
		t.Errorf("scribble changed %d elements, want 7", n)
	}
	if d := diff(k, r); len(d) != 4 { // Claims (one map), DataKey[0], DataKey[1], Data[0].Sealed[0]
		t.Errorf("clone shares maps or records with the original: diff = %q", d)
	}
	if k.Claims["o"].(map[string]any)["b"] != true || k.Data[0].Sealed[0] != 3 {
		t.Errorf("clone changed by scribbling the original: %#v", k)
	}
}
