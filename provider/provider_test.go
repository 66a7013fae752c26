package provider_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"log/slog"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/oauthex"

	oauth "github.com/mcp-oauth/oauth"
	"github.com/mcp-oauth/oauth/internal/secret"
	"github.com/mcp-oauth/oauth/internal/testclock"
	"github.com/mcp-oauth/oauth/provider"
	"github.com/mcp-oauth/oauth/storage/memory"
)

var ctx = context.Background()

type env struct {
	p     *provider.Provider
	clk   *testclock.Clock
	store *memory.Store
	logs  *bytes.Buffer
}

func newEnv(t *testing.T, mut func(*provider.Options)) *env {
	t.Helper()
	clk := testclock.New(time.Now())
	logs := &bytes.Buffer{}
	store := memory.New()
	o := provider.Options{Issuer: "https://as.example", Resource: "https://as.example/mcp", Now: clk.Now,
		Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	if mut != nil {
		mut(&o)
	}
	p, err := provider.New(ctx, store, o)
	if err != nil {
		t.Fatal(err)
	}
	return &env{p: p, clk: clk, store: store, logs: logs}
}

func (e *env) client(t *testing.T, method string) (*oauth.Client, string) {
	t.Helper()
	resp, err := e.p.RegisterClient(ctx, &oauthex.ClientRegistrationMetadata{RedirectURIs: []string{"https://app.example/cb"}, TokenEndpointAuthMethod: method, ClientName: "app"})
	if err != nil {
		t.Fatal(err)
	}
	c, err := e.p.GetClient(ctx, resp.ClientID)
	if err != nil {
		t.Fatal(err)
	}
	return c, resp.ClientSecret
}

// pending starts an authorization and returns the handle and user code from the approval URL.
func (e *env) pending(t *testing.T, c *oauth.Client) (handle, code string) {
	t.Helper()
	to, err := e.p.Authorize(ctx, c, &oauth.AuthorizationParams{ClientID: c.ID, RedirectURI: c.RedirectURIs[0], State: "s",
		Scopes: []string{"mcp"}, CodeChallenge: strings.Repeat("a", 43), Resource: "https://as.example/mcp"})
	if err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(to)
	if u.Host != "as.example" || u.Path != "/device" {
		t.Fatalf("approval URL %s", to)
	}
	return u.Query().Get("request"), u.Query().Get("user_code")
}

func TestNewValidates(t *testing.T) {
	for name, o := range map[string]provider.Options{
		"no issuer":   {Resource: "https://as.example/mcp"},
		"no resource": {Issuer: "https://as.example"},
		"query":       {Issuer: "https://as.example?x", Resource: "https://as.example/mcp"},
		"bad alg":     {Issuer: "https://as.example", Resource: "https://as.example/mcp", SigningAlgorithm: "RS256"},
	} {
		if _, err := provider.New(ctx, memory.New(), o); err == nil {
			t.Errorf("%s: New succeeded", name)
		}
	}
	if _, err := provider.New(ctx, nil, provider.Options{Issuer: "https://as.example", Resource: "https://as.example/mcp"}); err == nil {
		t.Error("nil store accepted")
	}
}

func TestKeysPersistAndRotate(t *testing.T) {
	e := newEnv(t, func(o *provider.Options) { o.SigningAlgorithm = "EdDSA" })
	keys, _ := e.store.ListKeys(ctx)
	if len(keys) != 1 || keys[0].Algorithm != "EdDSA" {
		t.Fatalf("first start: %d keys", len(keys))
	}
	// A second provider on the same store (a restart) reuses the key.
	if _, err := provider.New(ctx, e.store, e.p.Options()); err != nil {
		t.Fatal(err)
	}
	if keys, _ := e.store.ListKeys(ctx); len(keys) != 1 {
		t.Fatalf("restart generated a key: %d keys", len(keys))
	}
	c, _ := e.client(t, "none")
	tok := e.issue(t, c)
	if err := e.p.RotateKeys(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := e.p.LoadAccessToken(ctx, tok.AccessToken); err != nil {
		t.Fatalf("token of the retired key: %v", err)
	}
	// Sweep keeps the retired key while its tokens can live, then deletes it.
	must(t, e.p.Sweep(ctx))
	if keys, _ := e.store.ListKeys(ctx); len(keys) != 2 {
		t.Fatalf("retired key deleted too early: %d keys", len(keys))
	}
	e.clk.Advance(time.Hour + 2*time.Minute)
	must(t, e.p.Sweep(ctx))
	if keys, _ := e.store.ListKeys(ctx); len(keys) != 2 {
		t.Fatalf("retired key deleted within the margin: %d keys", len(keys))
	}
	e.clk.Advance(5 * time.Minute)
	must(t, e.p.Sweep(ctx))
	if keys, _ := e.store.ListKeys(ctx); len(keys) != 1 {
		t.Fatalf("retired key kept: %d keys", len(keys))
	}
}

// complete polls as the approval page does once the request is decided,
// and returns where the browser is sent.
func complete(p *provider.Provider, handle, code string) (string, error) {
	_, to, err := p.Poll(ctx, &oauth.PollRequest{Handle: handle, UserCode: code})
	if err == nil && to == "" {
		err = errors.New("poll sent the browser nowhere")
	}
	return to, err
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// issue runs approval, code and exchange for c.
func (e *env) issue(t *testing.T, c *oauth.Client) *oauth.TokenResponse {
	t.Helper()
	h, code := e.pending(t, c)
	if _, err := e.p.Approve(ctx, code, "alice", nil); err != nil {
		t.Fatal(err)
	}
	to, err := complete(e.p, h, code)
	must(t, err)
	u, _ := url.Parse(to)
	ac, err := e.p.LoadAuthorizationCode(ctx, u.Query().Get("code"))
	must(t, err)
	tr, err := e.p.ExchangeAuthorizationCode(ctx, c, ac)
	must(t, err)
	return tr
}

func TestApprovalErrors(t *testing.T) {
	e := newEnv(t, nil)
	c, _ := e.client(t, "none")
	h, code := e.pending(t, c)
	if p, to, err := e.p.Poll(ctx, &oauth.PollRequest{Handle: h, UserCode: code}); err != nil || to != "" || p.Status != oauth.PendingWaiting || p.UserCode != code {
		t.Fatalf("poll of an undecided request: %+v, %q, %v", p, to, err)
	}
	for name, tc := range map[string]struct {
		code, subject string
		want          error
	}{
		"unknown code":  {"BCDF-GHJK", "alice", oauth.ErrUnknownRequest},
		"garbage code":  {"<script>", "alice", oauth.ErrUnknownRequest},
		"empty subject": {code, "", nil},
		"long subject":  {code, strings.Repeat("a", 256), nil},
	} {
		_, err := e.p.Approve(ctx, tc.code, tc.subject, nil)
		if err == nil || (tc.want != nil && !errors.Is(err, tc.want)) {
			t.Errorf("%s: %v", name, err)
		}
	}
	for _, hold := range []bool{false, true} {
		if _, _, err := e.p.Poll(ctx, &oauth.PollRequest{Handle: h, UserCode: "BCDF-GHJK", Hold: hold}); !errors.Is(err, oauth.ErrUnknownRequest) {
			t.Error("handle with the wrong user code was accepted")
		}
		if _, _, err := e.p.Poll(ctx, &oauth.PollRequest{Handle: "mcp_req_x", UserCode: code, Hold: hold}); !errors.Is(err, oauth.ErrUnknownRequest) {
			t.Error("malformed handle accepted")
		}
	}
	// Lower case, no hyphen.
	if _, err := e.p.Approve(ctx, strings.ToLower(strings.ReplaceAll(code, "-", "")), "alice", nil); err != nil {
		t.Fatalf("approve normalized code: %v", err)
	}
	if _, err := e.p.Approve(ctx, code, "bob", nil); !errors.Is(err, oauth.ErrAlreadyDecided) {
		t.Fatalf("second approval: %v", err)
	}
	if _, err := e.p.Deny(ctx, code); !errors.Is(err, oauth.ErrAlreadyDecided) {
		t.Fatalf("deny after approval: %v", err)
	}
	// Hold (a setup step runs first) leaves the approved request as it is.
	for range 2 {
		if p, to, err := e.p.Poll(ctx, &oauth.PollRequest{Handle: h, UserCode: code, Hold: true}); err != nil || to != "" || p.Status != oauth.PendingApproved || p.Subject != "alice" {
			t.Fatalf("held poll of an approved request: %+v, %q, %v", p, to, err)
		}
	}
	p, to, err := e.p.Poll(ctx, &oauth.PollRequest{Handle: h, UserCode: code})
	must(t, err)
	if u, _ := url.Parse(to); u.Query().Get("code") == "" || u.Query().Get("iss") != "https://as.example" || u.Query().Get("state") != "s" || p.Status != oauth.PendingCompleted {
		t.Fatalf("redirect %s, status %q", to, p.Status)
	}
	for _, hold := range []bool{false, true} {
		if p, to, err := e.p.Poll(ctx, &oauth.PollRequest{Handle: h, UserCode: code, Hold: hold}); err != nil || to != "" || p.Status != oauth.PendingCompleted {
			t.Fatalf("poll after completion (hold %v): %+v, %q, %v", hold, p, to, err)
		}
	}
}

func TestPendingExpires(t *testing.T) {
	e := newEnv(t, nil)
	c, _ := e.client(t, "none")
	_, code := e.pending(t, c)
	list, _ := e.p.ListPending(ctx)
	if len(list) != 1 || list[0].Client.ID != c.ID {
		t.Fatalf("ListPending = %v", list)
	}
	e.clk.Advance(10 * time.Minute)
	if _, err := e.p.Approve(ctx, code, "alice", nil); !errors.Is(err, oauth.ErrUnknownRequest) {
		t.Fatalf("approve after 10 minutes: %v", err)
	}
}

func TestCodeAndTokenExpiry(t *testing.T) {
	e := newEnv(t, nil)
	c, _ := e.client(t, "none")
	h, code := e.pending(t, c)
	e.p.Approve(ctx, code, "alice", nil)
	to, _ := complete(e.p, h, code)
	u, _ := url.Parse(to)
	e.clk.Advance(10 * time.Minute)
	if _, err := e.p.LoadAuthorizationCode(ctx, u.Query().Get("code")); !errors.Is(err, oauth.ErrInvalidGrant) {
		t.Fatalf("code after 10 minutes: %v", err)
	}
	tr := e.issue(t, c)
	if tr.ExpiresIn != 3600 || tr.TokenType != "Bearer" || tr.Scope != "mcp" {
		t.Fatalf("token response %+v", tr)
	}
	at, err := e.p.LoadAccessToken(ctx, tr.AccessToken)
	must(t, err)
	if at.Subject != "alice" || at.ClientID != c.ID || at.Resource != "https://as.example/mcp" || at.GrantID == "" || at.ID == "" {
		t.Fatalf("access token %+v", at)
	}
	e.clk.Advance(time.Hour + 10*time.Second)
	if _, err := e.p.LoadAccessToken(ctx, tr.AccessToken); !errors.Is(err, oauth.ErrInvalidToken) {
		t.Fatalf("access token after an hour: %v", err)
	}
	rt, err := e.p.LoadRefreshToken(ctx, tr.RefreshToken)
	must(t, err)
	if _, err := e.p.ExchangeRefreshToken(ctx, c, rt, nil); err != nil {
		t.Fatalf("refresh after an hour: %v", err)
	}
	e.clk.Advance(30 * 24 * time.Hour)
	if _, err := e.p.LoadRefreshToken(ctx, tr.RefreshToken); !errors.Is(err, oauth.ErrInvalidGrant) {
		t.Fatalf("refresh token after 30 days: %v", err)
	}
}

func TestClientRegistrationLapsesUnlessUsed(t *testing.T) {
	e := newEnv(t, func(o *provider.Options) { o.ClientTTL = 48 * time.Hour })
	used, _ := e.client(t, "none")
	idle, _ := e.client(t, "none")
	e.clk.Advance(30 * time.Hour)
	e.issue(t, used) // renews to now+48h
	e.clk.Advance(30 * time.Hour)
	if _, err := e.p.GetClient(ctx, idle.ID); !errors.Is(err, oauth.ErrInvalidClient) {
		t.Fatalf("idle client after 60 h: %v", err)
	}
	if _, err := e.p.GetClient(ctx, used.ID); err != nil {
		t.Fatalf("used client lapsed: %v", err)
	}
}

func TestConfidentialSecret(t *testing.T) {
	e := newEnv(t, nil)
	c, sec := e.client(t, "client_secret_basic")
	if !strings.HasPrefix(sec, "mcp_cs_") || c.SecretHash == "" || strings.Contains(c.SecretHash, sec) {
		t.Fatalf("secret %q, hash %q", sec, c.SecretHash)
	}
	if c.SecretHash != secret.Hash(sec) {
		t.Fatal("SecretHash is not the secret's SHA-256")
	}
	pub, sec2 := e.client(t, "none")
	if sec2 != "" || pub.SecretHash != "" {
		t.Fatal("public client has a secret")
	}
}

func TestRevokeOnlyOwnTokens(t *testing.T) {
	e := newEnv(t, nil)
	c, _ := e.client(t, "none")
	other, _ := e.client(t, "none")
	tr := e.issue(t, c)
	for _, tok := range []string{tr.AccessToken, tr.RefreshToken, "junk", ""} {
		must(t, e.p.RevokeToken(ctx, other, tok, ""))
	}
	if _, err := e.p.LoadAccessToken(ctx, tr.AccessToken); err != nil {
		t.Fatalf("another client revoked the token: %v", err)
	}
	must(t, e.p.RevokeToken(ctx, c, tr.RefreshToken, "refresh_token"))
	if _, err := e.p.LoadAccessToken(ctx, tr.AccessToken); !errors.Is(err, oauth.ErrInvalidToken) {
		t.Fatalf("access token after its refresh token was revoked: %v", err)
	}
	grants, _ := e.p.ListGrants(ctx)
	if len(grants) != 0 {
		t.Fatalf("%d grants after revocation", len(grants))
	}
}

// TestNoSecretsInLogs runs every operation with debug logging and checks
// that no credential appears in the output.
func TestNoSecretsInLogs(t *testing.T) {
	e := newEnv(t, nil)
	c, sec := e.client(t, "client_secret_post")
	h, code := e.pending(t, c)
	tr := e.issue(t, c)
	rt, _ := e.p.LoadRefreshToken(ctx, tr.RefreshToken)
	tr2, err := e.p.ExchangeRefreshToken(ctx, c, rt, nil)
	must(t, err)
	e.p.LoadRefreshToken(ctx, tr.RefreshToken) // still usable (successor unused)
	rt2, _ := e.p.LoadRefreshToken(ctx, tr2.RefreshToken)
	e.p.ExchangeRefreshToken(ctx, c, rt2, nil)
	e.p.LoadRefreshToken(ctx, tr.RefreshToken) // spent now: replay, revokes
	e.p.RevokeToken(ctx, c, tr2.AccessToken, "")
	must(t, e.p.Sweep(ctx))
	logs := e.logs.String()
	if !strings.Contains(logs, "grant revoked") {
		t.Fatalf("expected revocation events in the log:\n%s", logs)
	}
	for _, s := range []string{sec, h, code, strings.ReplaceAll(code, "-", ""), tr.AccessToken, tr.RefreshToken, tr2.AccessToken, tr2.RefreshToken, "mcp_code_", "mcp_rt_", "mcp_cs_", "mcp_req_", "eyJ"} {
		if s != "" && strings.Contains(logs, s) {
			t.Errorf("log contains a credential (%.12s…)", s)
		}
	}
}

// TestRotationAcrossReplicas: two providers share one store; a rotation on
// one is picked up by the other before it signs again, and neither deletes
// a key that the other still needs.
func TestRotationAcrossReplicas(t *testing.T) {
	a := newEnv(t, nil)
	b, err := provider.New(ctx, a.store, a.p.Options())
	must(t, err)
	c, _ := a.client(t, "none")
	before := a.issue(t, c)
	must(t, b.RotateKeys(ctx))
	a.clk.Advance(31 * time.Second)
	// A different application: re-authorizing c would replace its grant.
	reg, err := a.p.RegisterClient(ctx, &oauthex.ClientRegistrationMetadata{RedirectURIs: []string{"https://other.example/cb"}, TokenEndpointAuthMethod: "none", ClientName: "other"})
	must(t, err)
	c2, err := a.p.GetClient(ctx, reg.ClientID)
	must(t, err)
	after := a.issue(t, c2)
	keys, _ := a.store.ListKeys(ctx)
	if kid := jwtKid(t, after.AccessToken); kid != keys[0].ID {
		t.Fatalf("replica A signs with %s after B rotated to %s", kid, keys[0].ID)
	}
	for name, tok := range map[string]string{"before": before.AccessToken, "after": after.AccessToken} {
		if _, err := b.LoadAccessToken(ctx, tok); err != nil {
			t.Errorf("B rejects A's token from %s the rotation: %v", name, err)
		}
	}
	// A's JWKS publishes a key B rotates in, without A signing anything.
	must(t, b.RotateKeys(ctx))
	a.clk.Advance(31 * time.Second)
	jwks, err := a.p.JWKS(ctx)
	must(t, err)
	keys, _ = a.store.ListKeys(ctx)
	if !strings.Contains(string(jwks), keys[0].ID) {
		t.Fatalf("A's JWKS lacks B's new key %s: %s", keys[0].ID, jwks)
	}
	// Much later, A (whose cache is stale) sweeps: only the retired keys go.
	a.clk.Advance(2 * time.Hour)
	must(t, a.p.Sweep(ctx))
	keys, _ = a.store.ListKeys(ctx)
	if len(keys) != 1 || !keys[0].RetiredAt.IsZero() {
		t.Fatalf("after sweep: %d keys, active %v", len(keys), keys[0].RetiredAt.IsZero())
	}
}

func jwtKid(t *testing.T, tok string) string {
	t.Helper()
	h, _, _ := strings.Cut(tok, ".")
	b, err := base64.RawURLEncoding.DecodeString(h)
	if err != nil {
		t.Fatal(err)
	}
	var hdr struct {
		Kid string `json:"kid"`
	}
	json.Unmarshal(b, &hdr)
	return hdr.Kid
}

// TestKeyEncryptionAtRest: with a KEK, stored private keys are sealed; a
// provider without the KEK cannot start on that store; a rotated ring (new
// KEK first, old second) reads old keys and seals new ones with the new KEK.
func TestKeyEncryptionAtRest(t *testing.T) {
	k1, k2 := bytes.Repeat([]byte{1}, 32), bytes.Repeat([]byte{2}, 32)
	e := newEnv(t, func(o *provider.Options) { o.KeyEncryptionKeys = [][]byte{k1} })
	keys, _ := e.store.ListKeys(ctx)
	if len(keys) != 1 || !bytes.HasPrefix(keys[0].Private, []byte("mcpkek1")) {
		t.Fatalf("stored key is not sealed: %x", keys[0].Private[:8])
	}
	c, _ := e.client(t, "none")
	tok := e.issue(t, c)
	o := e.p.Options()
	o.KeyEncryptionKeys = nil
	if _, err := provider.New(ctx, e.store, o); err == nil {
		t.Fatal("provider started without the KEK its keys need")
	}
	o.KeyEncryptionKeys = [][]byte{k2, k1}
	p2, err := provider.New(ctx, e.store, o)
	must(t, err)
	if _, err := p2.LoadAccessToken(ctx, tok.AccessToken); err != nil {
		t.Fatalf("rotated ring: %v", err)
	}
	must(t, p2.RotateKeys(ctx))
	// Without the old KEK the retired key is skipped (it only verified old
	// tokens): the provider runs, and those old tokens no longer verify.
	o.KeyEncryptionKeys = [][]byte{k2}
	p3, err := provider.New(ctx, e.store, o)
	must(t, err)
	if _, err := p3.LoadAccessToken(ctx, tok.AccessToken); err == nil {
		t.Fatal("a token signed by a key whose KEK was dropped still verified")
	}
	// The active key is required: without its KEK the provider refuses to start.
	o.KeyEncryptionKeys = [][]byte{k1}
	if _, err := provider.New(ctx, e.store, o); err == nil {
		t.Fatal("started without the KEK of the active key")
	}
	o.KeyEncryptionKeys = [][]byte{[]byte("short")}
	if _, err := provider.New(ctx, e.store, o); err == nil {
		t.Fatal("a 5-byte KEK was accepted")
	}
}

// TestPendingMetadataClientWithoutResolver: a request from a metadata-
// document client stays visible and approvable where the document cannot
// be fetched (a terminal command without a resolver, a passing outage).
func TestPendingMetadataClientWithoutResolver(t *testing.T) {
	const id = "https://client.example/meta.json"
	doc := &oauth.Client{ID: id}
	doc.ClientName, doc.RedirectURIs, doc.TokenEndpointAuthMethod = "Doc", []string{"http://127.0.0.1/cb"}, "none"
	e := newEnv(t, func(o *provider.Options) {
		o.ClientMetadata = func(ctx context.Context, clientID string) (*oauth.Client, error) { return doc, nil }
	})
	_, code := e.pending(t, doc)
	o := e.p.Options()
	o.ClientMetadata = nil
	admin, err := provider.New(ctx, e.store, o)
	must(t, err)
	list, err := admin.ListPending(ctx)
	if err != nil || len(list) != 1 || list[0].Client.ID != id {
		t.Fatalf("ListPending without a resolver = %v, %v", list, err)
	}
	if _, err := admin.Approve(ctx, code, "alice", nil); err != nil {
		t.Fatalf("Approve without a resolver: %v", err)
	}
}
