package provider_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	oauth "github.com/mcp-oauth/oauth"
	"github.com/mcp-oauth/oauth/internal/secret"
	"github.com/mcp-oauth/oauth/provider"
	"github.com/mcp-oauth/oauth/storage"
)

// pendingCodeHash is how a store finds a request by its user code.
func pendingCodeHash(userCode string) string { return secret.Hash(secret.NormalizeUserCode(userCode)) }

// ends records the calls of Options.OnGrantEnd.
type ends struct {
	mu  sync.Mutex
	got []*oauth.GrantEnd
}

func (e *ends) hook(_ context.Context, g *oauth.GrantEnd) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.got = append(e.got, g)
}

func (e *ends) take() []*oauth.GrantEnd {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := e.got
	e.got = nil
	return out
}

// issueWith runs approval, a setup step's completion and the code
// exchange, and returns the tokens and the access token's grant ID.
func (e *env) issueWith(t *testing.T, c *oauth.Client, approveSetup, stepSetup *oauth.GrantSetup) (*oauth.TokenResponse, string) {
	t.Helper()
	h, code := e.pending(t, c)
	_, err := e.p.Approve(ctx, code, "alice", approveSetup)
	must(t, err)
	_, to, err := e.p.Poll(ctx, &oauth.PollRequest{Handle: h, UserCode: code, Setup: stepSetup})
	must(t, err)
	u, _ := url.Parse(to)
	ac, err := e.p.LoadAuthorizationCode(ctx, u.Query().Get("code"))
	must(t, err)
	tr, err := e.p.ExchangeAuthorizationCode(ctx, c, ac)
	must(t, err)
	return tr, ac.GrantID
}

// jwtClaims decodes the payload of a JWT, unverified.
func jwtClaims(t *testing.T, tok string) map[string]any {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(strings.Split(tok, ".")[1])
	must(t, err)
	var m map[string]any
	must(t, json.Unmarshal(b, &m))
	return m
}

// TestSetupKeptWithGrant: what a setup step completes with lives with the
// grant: values for GrantData, claims in every access token (also after
// refresh) and in LoadAccessToken; a value with a TTL lapses; revoking
// the grant deletes the data and tells OnGrantEnd, with the values.
func TestSetupKeptWithGrant(t *testing.T) {
	var seen ends
	e := newEnv(t, func(o *provider.Options) { o.OnGrantEnd = seen.hook })
	c, _ := e.client(t, "none")
	tr, gid := e.issueWith(t, c, nil, &oauth.GrantSetup{
		Values: []oauth.GrantValue{{Name: "workspace", Value: []byte(`"acme"`)}, {Name: "otp", Value: []byte("123"), TTL: time.Minute}},
		Claims: map[string]any{"tenant": "acme", "seats": 3},
	})
	if m := jwtClaims(t, tr.AccessToken); m["tenant"] != "acme" || m["seats"] != 3.0 || m["gid"] != gid {
		t.Fatalf("JWT claims %v", m)
	}
	at, err := e.p.LoadAccessToken(ctx, tr.AccessToken)
	must(t, err)
	if at.Claims["tenant"] != "acme" || at.Claims["seats"] != 3.0 {
		t.Fatalf("LoadAccessToken claims %v", at.Claims)
	}
	at.Claims["tenant"] = "mutated" // the caller's copy, not the cache's
	if at2, _ := e.p.LoadAccessToken(ctx, tr.AccessToken); at2.Claims["tenant"] != "acme" {
		t.Fatalf("cached claims were modified through a returned token: %v", at2.Claims)
	}
	v, err := e.p.GrantData(ctx, gid, "workspace")
	if err != nil || string(v) != `"acme"` {
		t.Fatalf("GrantData = %q, %v", v, err)
	}
	e.clk.Advance(2 * time.Minute)
	if _, err := e.p.GrantData(ctx, gid, "otp"); !errors.Is(err, oauth.ErrNoGrantData) {
		t.Fatalf("value past its TTL: %v", err)
	}
	must(t, e.p.SetGrantData(ctx, gid, "workspace", []byte(`"globex"`), 0))
	if v, _ := e.p.GrantData(ctx, gid, "workspace"); string(v) != `"globex"` {
		t.Fatalf("replaced value reads %q", v)
	}
	// Refresh: the claims survive.
	rt, err := e.p.LoadRefreshToken(ctx, tr.RefreshToken)
	must(t, err)
	tr2, err := e.p.ExchangeRefreshToken(ctx, c, rt, nil)
	must(t, err)
	if m := jwtClaims(t, tr2.AccessToken); m["tenant"] != "acme" {
		t.Fatalf("refreshed token lost its claims: %v", m)
	}
	if got := seen.take(); len(got) != 0 {
		t.Fatalf("OnGrantEnd called before any end: %+v", got)
	}
	must(t, e.p.RevokeGrant(ctx, gid))
	if _, err := e.p.GrantData(ctx, gid, "workspace"); !errors.Is(err, oauth.ErrNoGrantData) {
		t.Fatalf("data of a revoked grant: %v", err)
	}
	if err := e.p.SetGrantData(ctx, gid, "workspace", []byte(`1`), 0); !errors.Is(err, oauth.ErrGrantNotActive) {
		t.Fatalf("SetGrantData on a revoked grant: %v", err)
	}
	got := seen.take()
	if len(got) != 1 || got[0].Reason != provider.EndRevoked || got[0].Grant.ID != gid ||
		string(got[0].Values["workspace"]) != `"globex"` || len(got[0].Values) != 1 {
		t.Fatalf("OnGrantEnd: %+v", got)
	}
	must(t, e.p.RevokeGrant(ctx, gid)) // again: no second call
	if got := seen.take(); len(got) != 0 {
		t.Fatalf("second revocation told the hook again: %+v", got)
	}
}

// TestSetupAtApproval: a setup given with the owner's decision (the device
// flow's step runs where the owner approves) is kept sealed with the
// request until the grant is created with it, and merged with a later
// step's, which wins on a shared name.
func TestSetupAtApproval(t *testing.T) {
	e := newEnv(t, func(o *provider.Options) { o.KeyEncryptionKeys = [][]byte{bytes.Repeat([]byte{7}, 32)} })
	c, da := e.device(t)
	must(t, func() error {
		_, err := e.p.Approve(ctx, da.UserCode, "alice", &oauth.GrantSetup{
			Values: []oauth.GrantValue{{Name: "api_key", Value: []byte("sk-secret-device")}}, Claims: map[string]any{"region": "eu"}})
		return err
	}())
	pend, err := e.p.PendingByUserCode(ctx, da.UserCode)
	must(t, err)
	raw, err := e.store.GetPendingByUserCode(ctx, pendingCodeHash(da.UserCode), e.clk.Now())
	must(t, err)
	if len(raw.Setup) == 0 || bytes.Contains(raw.Setup, []byte("sk-secret-device")) || bytes.Contains(raw.Setup, []byte("region")) {
		t.Fatalf("setup kept in the clear with request %s: %q", pend.ID, raw.Setup)
	}
	e.clk.Advance(10 * time.Second)
	tok, err := e.p.ExchangeDeviceCode(ctx, c, da.DeviceCode)
	must(t, err)
	at, err := e.p.LoadAccessToken(ctx, tok.AccessToken)
	must(t, err)
	if at.Claims["region"] != "eu" {
		t.Fatalf("device token claims %v", at.Claims)
	}
	if v, err := e.p.GrantData(ctx, at.GrantID, "api_key"); err != nil || string(v) != "sk-secret-device" {
		t.Fatalf("device grant data %q, %v", v, err)
	}
	if raw, err := e.store.GetPendingByUserCode(ctx, pendingCodeHash(da.UserCode), e.clk.Now()); err == nil && len(raw.Setup) != 0 {
		t.Fatalf("completed request still holds its setup")
	}

	// Browser: a setup at approval and one at completion merge.
	bc, _ := e.client(t, "none")
	_, gid := e.issueWith(t, bc,
		&oauth.GrantSetup{Values: []oauth.GrantValue{{Name: "a", Value: []byte("1")}, {Name: "b", Value: []byte("1")}}, Claims: map[string]any{"x": "approve", "y": "approve"}},
		&oauth.GrantSetup{Values: []oauth.GrantValue{{Name: "b", Value: []byte("2")}}, Claims: map[string]any{"y": "step"}})
	for name, want := range map[string]string{"a": "1", "b": "2"} {
		if v, _ := e.p.GrantData(ctx, gid, name); string(v) != want {
			t.Errorf("merged value %s = %q, want %q", name, v, want)
		}
	}
	g, err := e.store.GetGrant(ctx, gid)
	must(t, err)
	if g.Claims["x"] != "approve" || g.Claims["y"] != "step" {
		t.Errorf("merged claims %v", g.Claims)
	}
}

// TestReservedAndOversizedClaims: a reserved claim or one over the limits
// fails loudly where it is given (Approve, the completion of a step, the
// token request through TokenClaims), never silently overwriting, and a
// token request that fails so leaves the code redeemable.
func TestReservedAndOversizedClaims(t *testing.T) {
	var hookClaims map[string]any
	e := newEnv(t, func(o *provider.Options) {
		o.TokenClaims = func(ctx context.Context, g *oauth.Grant) (map[string]any, error) { return hookClaims, nil }
	})
	c, _ := e.client(t, "none")
	for _, name := range []string{"sub", "iss", "aud", "exp", "iat", "nbf", "jti", "client_id", "scope", "gid", "mcpauth_x"} {
		_, code := e.pending(t, c)
		_, err := e.p.Approve(ctx, code, "alice", &oauth.GrantSetup{Claims: map[string]any{name: "x"}})
		if !errors.Is(err, oauth.ErrReservedClaim) || !strings.Contains(err.Error(), name) {
			t.Errorf("Approve with claim %q: %v", name, err)
		}
		if p, _ := e.p.PendingByUserCode(ctx, code); p.Status != oauth.PendingWaiting {
			t.Errorf("refused approval decided the request: %s", p.Status)
		}
	}
	h, code := e.pending(t, c)
	_, err := e.p.Approve(ctx, code, "alice", nil)
	must(t, err)
	_, _, err = e.p.Poll(ctx, &oauth.PollRequest{Handle: h, UserCode: code, Setup: &oauth.GrantSetup{Claims: map[string]any{"sub": "mallory"}}})
	if !errors.Is(err, oauth.ErrReservedClaim) {
		t.Fatalf("Poll with a reserved claim: %v", err)
	}
	// The request is still approved: the step can complete again, correctly.
	_, to, err := e.p.Poll(ctx, &oauth.PollRequest{Handle: h, UserCode: code, Setup: &oauth.GrantSetup{Claims: map[string]any{"tenant": "acme"}}})
	must(t, err)
	u, _ := url.Parse(to)
	ac, err := e.p.LoadAuthorizationCode(ctx, u.Query().Get("code"))
	must(t, err)
	hookClaims = map[string]any{"scope": "admin"}
	if _, err := e.p.ExchangeAuthorizationCode(ctx, c, ac); !errors.Is(err, oauth.ErrReservedClaim) || !strings.Contains(err.Error(), "scope") {
		t.Fatalf("TokenClaims returning scope: %v", err)
	}
	hookClaims = map[string]any{"blob": strings.Repeat("x", provider.MaxCustomClaimsSize)}
	if _, err := e.p.ExchangeAuthorizationCode(ctx, c, ac); !errors.Is(err, oauth.ErrGrantDataLimit) {
		t.Fatalf("oversized claims: %v", err)
	}
	hookClaims = map[string]any{"role": "admin", "tenant": "override"}
	tr, err := e.p.ExchangeAuthorizationCode(ctx, c, ac)
	if err != nil {
		t.Fatalf("the code was spent by the failed requests: %v", err)
	}
	if m := jwtClaims(t, tr.AccessToken); m["role"] != "admin" || m["tenant"] != "override" || m["sub"] != "alice" || m["scope"] != "mcp" {
		t.Fatalf("claims %v", m)
	}
	// A failing hook on refresh leaves the refresh token usable.
	rt, err := e.p.LoadRefreshToken(ctx, tr.RefreshToken)
	must(t, err)
	hookClaims = map[string]any{"exp": 1}
	if _, err := e.p.ExchangeRefreshToken(ctx, c, rt, nil); !errors.Is(err, oauth.ErrReservedClaim) {
		t.Fatalf("refresh with a reserved claim: %v", err)
	}
	hookClaims = nil
	if _, err := e.p.ExchangeRefreshToken(ctx, c, rt, nil); err != nil {
		t.Fatalf("the refresh token was spent by the failed request: %v", err)
	}
}

// TestGrantDataLimits: names, sizes and counts over the limits are
// refused with ErrGrantDataLimit, in a setup and from a tool.
func TestGrantDataLimits(t *testing.T) {
	e := newEnv(t, func(o *provider.Options) { o.MaxGrantValueSize = 100; o.MaxGrantValues = 2 })
	c, _ := e.client(t, "none")
	for name, s := range map[string]*oauth.GrantSetup{
		"too large": {Values: []oauth.GrantValue{{Name: "a", Value: make([]byte, 101)}}},
		"too many":  {Values: []oauth.GrantValue{{Name: "a"}, {Name: "b"}, {Name: "c"}}},
		"bad name":  {Values: []oauth.GrantValue{{Name: "a b"}}},
		"no name":   {Values: []oauth.GrantValue{{Name: ""}}},
		"long name": {Values: []oauth.GrantValue{{Name: strings.Repeat("n", 65)}}},
	} {
		_, code := e.pending(t, c)
		if _, err := e.p.Approve(ctx, code, "alice", s); !errors.Is(err, oauth.ErrGrantDataLimit) {
			t.Errorf("%s: %v", name, err)
		}
	}
	_, code := e.pending(t, c)
	if _, err := e.p.Approve(ctx, code, "alice", &oauth.GrantSetup{Values: []oauth.GrantValue{{Name: "a"}, {Name: "a"}}}); err == nil {
		t.Error("two values of one name accepted")
	}
	_, gid := e.issueWith(t, c, nil, &oauth.GrantSetup{Values: []oauth.GrantValue{{Name: "a", Value: make([]byte, 100)}}})
	must(t, e.p.SetGrantData(ctx, gid, "b", []byte("x"), 0))
	if err := e.p.SetGrantData(ctx, gid, "c", []byte("x"), 0); !errors.Is(err, oauth.ErrGrantDataLimit) {
		t.Fatalf("third value: %v", err)
	}
	must(t, e.p.SetGrantData(ctx, gid, "b", []byte("y"), 0)) // replacing counts once
	if err := e.p.SetGrantData(ctx, gid, "b", make([]byte, 101), 0); !errors.Is(err, oauth.ErrGrantDataLimit) {
		t.Fatalf("oversized value: %v", err)
	}
	must(t, e.p.DeleteGrantData(ctx, gid, "b"))
	must(t, e.p.DeleteGrantData(ctx, gid, "b")) // absent: no error
	must(t, e.p.SetGrantData(ctx, gid, "c", []byte("x"), 0))
	if _, err := e.p.GrantData(ctx, gid, "b"); !errors.Is(err, oauth.ErrNoGrantData) {
		t.Fatalf("deleted value: %v", err)
	}
}

// TestGrantDataSealedAtRest: with a KEK the store holds neither a value
// nor the data key in the clear, and a sealed value moved to another name
// or grant does not open.
func TestGrantDataSealedAtRest(t *testing.T) {
	e := newEnv(t, func(o *provider.Options) { o.KeyEncryptionKeys = [][]byte{bytes.Repeat([]byte{9}, 32)} })
	c, _ := e.client(t, "none")
	secretValue := []byte("sk-live-0123456789abcdef")
	_, g1 := e.issueWith(t, c, nil, &oauth.GrantSetup{Values: []oauth.GrantValue{{Name: "key", Value: secretValue}}})
	c2, _ := e.client(t, "none")
	c2.ClientName = "other" // not a re-registration of c, whose grant it would replace
	_, g2 := e.issueWith(t, c2, nil, &oauth.GrantSetup{Values: []oauth.GrantValue{{Name: "key", Value: []byte("other")}}})
	wrapped, rec, err := e.store.GetGrantData(ctx, g1, "key", e.clk.Now())
	must(t, err)
	if bytes.Contains(rec.Sealed, secretValue) || !bytes.HasPrefix(wrapped, []byte("mcpkek1")) || len(wrapped) < 32+16 {
		t.Fatalf("stored in the clear: sealed %x, key %x", rec.Sealed, wrapped)
	}
	// Move g1's ciphertext to another name of g1, and to g2.
	for _, moved := range []struct{ grant, name string }{{g1, "copy"}, {g2, "key"}} {
		must(t, e.store.PutGrantData(ctx, &storage.GrantDataRecord{GrantID: moved.grant, Name: moved.name, Sealed: rec.Sealed}, 16, e.clk.Now()))
		if _, err := e.p.GrantData(ctx, moved.grant, moved.name); err == nil {
			t.Errorf("a ciphertext moved to %s/%s opened", moved.grant, moved.name)
		}
	}
}

// TestGrantEndReasons: every way a grant ends tells OnGrantEnd once, with
// its reason: replaced by a new authorization, its client deleted, its
// subject removed, swept once nothing can use it.
func TestGrantEndReasons(t *testing.T) {
	var seen ends
	e := newEnv(t, func(o *provider.Options) { o.OnGrantEnd = seen.hook })
	c, _ := e.client(t, "none")
	setup := &oauth.GrantSetup{Values: []oauth.GrantValue{{Name: "k", Value: []byte("v")}}}
	_, g1 := e.issueWith(t, c, nil, setup)
	_, g2 := e.issueWith(t, c, nil, setup) // replaces g1
	want := func(what, gid, reason string) {
		t.Helper()
		got := seen.take()
		if len(got) != 1 || got[0].Grant.ID != gid || got[0].Reason != reason || string(got[0].Values["k"]) != "v" {
			t.Fatalf("%s: OnGrantEnd %+v, want %s %s", what, got, gid, reason)
		}
	}
	want("replacement", g1, provider.EndReplaced)
	n, err := e.p.RevokeSubjectGrants(ctx, "alice")
	if err != nil || n != 1 {
		t.Fatalf("RevokeSubjectGrants = %d, %v", n, err)
	}
	want("subject removed", g2, provider.EndSubjectRemoved)
	_, g3 := e.issueWith(t, c, nil, setup)
	must(t, e.p.DeleteClient(ctx, c.ID))
	want("client deleted", g3, provider.EndClientDeleted)

	// A grant whose refresh token lapses is swept as expired.
	c2, _ := e.client(t, "none")
	_, g4 := e.issueWith(t, c2, nil, setup)
	e.clk.Advance(provider.DefaultRefreshTokenTTL + time.Minute)
	must(t, e.p.Sweep(ctx))
	want("sweep", g4, provider.EndExpired)
	must(t, e.p.Sweep(ctx))
	if got := seen.take(); len(got) != 0 {
		t.Fatalf("second sweep: %+v", got)
	}
}

// TestSealedClaims: a claim marked oauth.Sealed, from a step (given at
// approval or at completion) or from TokenClaims, reaches LoadAccessToken
// opened but is neither readable in the JWT nor kept in the clear with
// the grant; it survives refresh, and a host cannot read or overwrite the
// library's value that keeps it.
func TestSealedClaims(t *testing.T) {
	var hookSaw map[string]any
	e := newEnv(t, func(o *provider.Options) {
		o.KeyEncryptionKeys = [][]byte{bytes.Repeat([]byte{5}, 32)}
		o.TokenClaims = func(ctx context.Context, g *oauth.Grant) (map[string]any, error) {
			hookSaw = g.Claims
			return map[string]any{"upstream": oauth.Sealed{Value: "tok-from-hook"}}, nil
		}
	})
	c, _ := e.client(t, "none")
	tr, gid := e.issueWith(t, c, &oauth.GrantSetup{Claims: map[string]any{"account": oauth.Sealed{Value: "acct-at-approval"}}},
		&oauth.GrantSetup{Claims: map[string]any{"tenant": "acme", "key": oauth.Sealed{Value: map[string]any{"id": "k-step"}}}})
	check := func(what, token string) {
		t.Helper()
		payload, _ := base64.RawURLEncoding.DecodeString(strings.Split(token, ".")[1])
		for _, secret := range []string{"acct-at-approval", "k-step", "tok-from-hook", `"account"`, `"upstream"`} {
			if strings.Contains(string(payload), secret) {
				t.Errorf("%s: the JWT payload shows %s: %s", what, secret, payload)
			}
		}
		at, err := e.p.LoadAccessToken(ctx, token)
		must(t, err)
		if at.Claims["account"] != "acct-at-approval" || at.Claims["upstream"] != "tok-from-hook" || at.Claims["tenant"] != "acme" ||
			at.Claims["key"].(map[string]any)["id"] != "k-step" {
			t.Errorf("%s: claims %v", what, at.Claims)
		}
	}
	check("issued", tr.AccessToken)
	// Stored: the plain claim, and the sealed ones encrypted with the KEK.
	g, err := e.store.GetGrant(ctx, gid)
	must(t, err)
	stored, _ := json.Marshal(g.Claims)
	enc, _ := g.Claims["mcpauth_sealed"].(string)
	raw, _ := base64.RawURLEncoding.DecodeString(enc)
	if g.Claims["tenant"] != "acme" || enc == "" || bytes.Contains(stored, []byte("acct-at-approval")) || bytes.Contains(raw, []byte("acct-at-approval")) || bytes.Contains(raw, []byte("k-step")) {
		t.Errorf("the grant is stored as %s", stored)
	}
	// Handed out without it: ListGrants, and the TokenClaims hook.
	gs, err := e.p.ListGrants(ctx)
	must(t, err)
	if len(gs) != 1 || len(gs[0].Claims) != 1 || gs[0].Claims["tenant"] != "acme" || len(hookSaw) != 1 {
		t.Errorf("ListGrants gives %+v, the hook saw %v; want only the plain claim", gs[0].Claims, hookSaw)
	}
	rt, err := e.p.LoadRefreshToken(ctx, tr.RefreshToken)
	must(t, err)
	tr2, err := e.p.ExchangeRefreshToken(ctx, c, rt, nil)
	must(t, err)
	check("refreshed", tr2.AccessToken)
	_, code := e.pending(t, c)
	if _, err := e.p.Approve(ctx, code, "alice", &oauth.GrantSetup{Claims: map[string]any{"sub": oauth.Sealed{Value: "x"}}}); !errors.Is(err, oauth.ErrReservedClaim) {
		t.Errorf("a reserved sealed claim: %v", err)
	}
}

// TestSealedClaimsNeverLeak: a Sealed value nested in another claim fails
// to encode (it would otherwise go out in the clear), a *Sealed is sealed
// like a Sealed, and sealed claims too large for the 4 KiB tokens the
// verifier accepts are refused when given, not at use.
func TestSealedClaimsNeverLeak(t *testing.T) {
	e := newEnv(t, nil)
	c, _ := e.client(t, "none")
	for name, claims := range map[string]map[string]any{
		"nested":        {"n": map[string]any{"x": oauth.Sealed{Value: "secret-nested"}}},
		"in a list":     {"l": []any{oauth.Sealed{Value: "secret-list"}}},
		"too large":     {"big": oauth.Sealed{Value: strings.Repeat("x", 1500)}},
		"reserved, Sub": {"Sub": oauth.Sealed{Value: "root"}},
	} {
		_, code := e.pending(t, c)
		if _, err := e.p.Approve(ctx, code, "alice", &oauth.GrantSetup{Claims: claims}); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	tr, _ := e.issueWith(t, c, nil, &oauth.GrantSetup{Claims: map[string]any{"p": &oauth.Sealed{Value: "secret-pointer"}}})
	if strings.Contains(tr.AccessToken, base64.RawURLEncoding.EncodeToString([]byte("secret-pointer"))[:8]) {
		t.Error("a *Sealed claim is readable in the token")
	}
	at, err := e.p.LoadAccessToken(ctx, tr.AccessToken)
	must(t, err)
	if at.Claims["p"] != "secret-pointer" {
		t.Errorf("the *Sealed claim opened as %v", at.Claims["p"])
	}
}

// TestDeviceClaimsFailureKeepsRequest: a TokenClaims hook that fails at a
// device's poll leaves the request approved (no grant is made), so the
// next poll gets the tokens.
func TestDeviceClaimsFailureKeepsRequest(t *testing.T) {
	fail := true
	var seen ends
	e := newEnv(t, func(o *provider.Options) {
		o.OnGrantEnd = seen.hook
		o.TokenClaims = func(context.Context, *oauth.Grant) (map[string]any, error) {
			if fail {
				return nil, errors.New("the tenant service is down")
			}
			return map[string]any{"tenant": "acme"}, nil
		}
	})
	c, da := e.device(t)
	_, err := e.p.Approve(ctx, da.UserCode, "alice", nil)
	must(t, err)
	e.clk.Advance(10 * time.Second)
	if _, err := e.p.ExchangeDeviceCode(ctx, c, da.DeviceCode); err == nil || errors.Is(err, oauth.ErrInvalidGrant) {
		t.Fatalf("poll with a failing hook: %v, want the hook's error", err)
	}
	if gs, _ := e.p.ListGrants(ctx); len(gs) != 0 {
		t.Fatalf("a failed poll left %d grants", len(gs))
	}
	fail = false
	e.clk.Advance(10 * time.Second)
	tok, err := e.p.ExchangeDeviceCode(ctx, c, da.DeviceCode)
	if err != nil {
		t.Fatalf("the poll after the hook recovered: %v", err)
	}
	if at, err := e.p.LoadAccessToken(ctx, tok.AccessToken); err != nil || at.Claims["tenant"] != "acme" {
		t.Fatalf("device token %+v, %v", at, err)
	}
	if got := seen.take(); len(got) != 0 {
		t.Fatalf("grants ended: %+v", got)
	}
}

// TestPlantedDataKeyRefused: with a KEK, a data key stored unwrapped (as
// someone who can write the database could plant one, with values sealed
// under it) is not trusted.
func TestPlantedDataKeyRefused(t *testing.T) {
	e := newEnv(t, func(o *provider.Options) { o.KeyEncryptionKeys = [][]byte{bytes.Repeat([]byte{3}, 32)} })
	c, _ := e.client(t, "none")
	_, gid := e.issueWith(t, c, nil, &oauth.GrantSetup{Values: []oauth.GrantValue{{Name: "k", Value: []byte("v")}}})
	if _, err := e.p.GrantData(ctx, gid, "k"); err != nil {
		t.Fatal(err)
	}
	// Plant, as a database writer would: a grant whose data key is stored
	// in the clear, with a value.
	g, err := e.store.GetGrant(ctx, gid)
	must(t, err)
	raw := bytes.Repeat([]byte{1}, 32)
	if _, err := e.store.RevokeGrant(ctx, gid, e.clk.Now()); err != nil {
		t.Fatal(err)
	}
	g2 := *g
	g2.ID, g2.RevokedAt = gid+"-planted", time.Time{}
	h, code := e.pending(t, c)
	_, err = e.p.Approve(ctx, code, "alice", nil)
	must(t, err)
	pend, err := e.store.GetPendingByHandle(ctx, secret.Hash(h), e.clk.Now())
	must(t, err)
	must(t, e.store.CompletePending(ctx, pend.ID, &storage.GrantRecord{Grant: g2, DataKey: raw}, &storage.CodeRecord{Hash: secret.Hash("planted-code"),
		AuthorizationCode: oauth.AuthorizationCode{GrantID: g2.ID, Subject: "alice", ExpiresAt: e.clk.Now().Add(time.Minute)}}, e.clk.Now()))
	must(t, e.store.PutGrantData(ctx, &storage.GrantDataRecord{GrantID: g2.ID, Name: "k", Sealed: []byte("x")}, 16, e.clk.Now()))
	if _, err := e.p.GrantData(ctx, g2.ID, "k"); err == nil || !strings.Contains(err.Error(), "unwrapped") {
		t.Fatalf("a planted unwrapped data key: %v", err)
	}
}
