package mcpauth

import (
	"context"
	"maps"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	oauth "github.com/mcp-oauth/oauth"
	"github.com/mcp-oauth/oauth/storage"
	"github.com/mcp-oauth/oauth/storage/memory"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// countingStore is a memory.Store that counts the calls of every method of
// storage.Store and storage.AccountStore (but Close), by name.
type countingStore struct {
	*memory.Store
	calls map[string]*atomic.Int64 // filled once in newCountingStore, then only read
}

var (
	_ storage.Store        = (*countingStore)(nil)
	_ storage.AccountStore = (*countingStore)(nil)
)

// countedMethods are the methods countingStore counts.
var countedMethods = []string{
	"Sweep",
	"CreateClient", "GetClient", "TouchClient", "DeleteClient", "ListClients",
	"GetGrant", "ListGrants", "ListSubjectGrants", "RevokeGrant", "RevocationCount",
	"GetCode", "RedeemCode",
	"GetRefreshToken", "RotateRefreshToken",
	"CreatePending", "GetPendingByHandle", "GetPendingByUserCode", "GetPendingByDeviceCode",
	"DecidePending", "CompletePending", "ListPending",
	"ListKeys", "AddKey", "DeleteKey",
	"GetGrantData", "GetGrantKey", "PutGrantData", "DeleteGrantData",
	"CreateUser", "GetUser", "ListUsers", "SetPassword", "RecordSignIn", "DeleteUser",
	"CreateSession", "GetSession", "TouchSession", "DeleteSession",
}

func newCountingStore() *countingStore {
	s := &countingStore{Store: memory.New(), calls: make(map[string]*atomic.Int64, len(countedMethods))}
	for _, m := range countedMethods {
		s.calls[m] = new(atomic.Int64)
	}
	return s
}

func (s *countingStore) count(method string) { s.calls[method].Add(1) }

// snapshot returns the current counts, without RevocationCount: the
// default Provider reads it in the background, at most every 250 ms while
// requests come in, to confirm that the clients and grant states it keeps
// in memory are current (provider/cache.go), so how often it appears
// depends on timing, not on what a request reads.
func (s *countingStore) snapshot() map[string]int64 {
	out := make(map[string]int64, len(s.calls))
	for m, n := range s.calls {
		if m != "RevocationCount" {
			out[m] = n.Load()
		}
	}
	return out
}

// since returns the calls made after before was taken, by method, leaving
// out the methods not called.
func (s *countingStore) since(before map[string]int64) map[string]int64 {
	out := map[string]int64{}
	for m, n := range s.snapshot() {
		if d := n - before[m]; d != 0 {
			out[m] = d
		}
	}
	return out
}

func (s *countingStore) Sweep(ctx context.Context, now time.Time) (*storage.SweepResult, error) {
	s.count("Sweep")
	return s.Store.Sweep(ctx, now)
}

func (s *countingStore) CreateClient(ctx context.Context, c *oauth.Client) error {
	s.count("CreateClient")
	return s.Store.CreateClient(ctx, c)
}

func (s *countingStore) GetClient(ctx context.Context, id string, now time.Time) (*oauth.Client, error) {
	s.count("GetClient")
	return s.Store.GetClient(ctx, id, now)
}

func (s *countingStore) TouchClient(ctx context.Context, id string, expiresAt time.Time) error {
	s.count("TouchClient")
	return s.Store.TouchClient(ctx, id, expiresAt)
}

func (s *countingStore) DeleteClient(ctx context.Context, id string, now time.Time) ([]*storage.GrantRecord, error) {
	s.count("DeleteClient")
	return s.Store.DeleteClient(ctx, id, now)
}

func (s *countingStore) ListClients(ctx context.Context, now time.Time) ([]*oauth.Client, error) {
	s.count("ListClients")
	return s.Store.ListClients(ctx, now)
}

func (s *countingStore) GetGrant(ctx context.Context, id string) (*oauth.Grant, error) {
	s.count("GetGrant")
	return s.Store.GetGrant(ctx, id)
}

func (s *countingStore) ListGrants(ctx context.Context) ([]*oauth.Grant, error) {
	s.count("ListGrants")
	return s.Store.ListGrants(ctx)
}

func (s *countingStore) ListSubjectGrants(ctx context.Context, subject string) ([]*oauth.Grant, error) {
	s.count("ListSubjectGrants")
	return s.Store.ListSubjectGrants(ctx, subject)
}

func (s *countingStore) RevokeGrant(ctx context.Context, id string, now time.Time) (*storage.GrantRecord, error) {
	s.count("RevokeGrant")
	return s.Store.RevokeGrant(ctx, id, now)
}

func (s *countingStore) RevocationCount(ctx context.Context) (int64, error) {
	s.count("RevocationCount")
	return s.Store.RevocationCount(ctx)
}

func (s *countingStore) GetCode(ctx context.Context, hash string, now time.Time) (*storage.CodeRecord, error) {
	s.count("GetCode")
	return s.Store.GetCode(ctx, hash, now)
}

func (s *countingStore) RedeemCode(ctx context.Context, hash string, now time.Time, rt *storage.RefreshRecord) error {
	s.count("RedeemCode")
	return s.Store.RedeemCode(ctx, hash, now, rt)
}

func (s *countingStore) GetRefreshToken(ctx context.Context, hash string, now time.Time) (*storage.RefreshRecord, error) {
	s.count("GetRefreshToken")
	return s.Store.GetRefreshToken(ctx, hash, now)
}

func (s *countingStore) RotateRefreshToken(ctx context.Context, oldHash, expectedSuccessor string, next *storage.RefreshRecord, now time.Time) error {
	s.count("RotateRefreshToken")
	return s.Store.RotateRefreshToken(ctx, oldHash, expectedSuccessor, next, now)
}

func (s *countingStore) CreatePending(ctx context.Context, p *storage.PendingRecord) error {
	s.count("CreatePending")
	return s.Store.CreatePending(ctx, p)
}

func (s *countingStore) GetPendingByHandle(ctx context.Context, handleHash string, now time.Time) (*storage.PendingRecord, error) {
	s.count("GetPendingByHandle")
	return s.Store.GetPendingByHandle(ctx, handleHash, now)
}

func (s *countingStore) GetPendingByUserCode(ctx context.Context, userCodeHash string, now time.Time) (*storage.PendingRecord, error) {
	s.count("GetPendingByUserCode")
	return s.Store.GetPendingByUserCode(ctx, userCodeHash, now)
}

func (s *countingStore) GetPendingByDeviceCode(ctx context.Context, deviceCodeHash string) (*storage.PendingRecord, error) {
	s.count("GetPendingByDeviceCode")
	return s.Store.GetPendingByDeviceCode(ctx, deviceCodeHash)
}

func (s *countingStore) DecidePending(ctx context.Context, id string, status oauth.PendingStatus, subject string, setup []byte, now time.Time) error {
	s.count("DecidePending")
	return s.Store.DecidePending(ctx, id, status, subject, setup, now)
}

func (s *countingStore) CompletePending(ctx context.Context, id string, grant *storage.GrantRecord, code *storage.CodeRecord, now time.Time) error {
	s.count("CompletePending")
	return s.Store.CompletePending(ctx, id, grant, code, now)
}

func (s *countingStore) ListPending(ctx context.Context, now time.Time) ([]*storage.PendingRecord, error) {
	s.count("ListPending")
	return s.Store.ListPending(ctx, now)
}

func (s *countingStore) GetGrantData(ctx context.Context, grantID, name string, now time.Time) ([]byte, *storage.GrantDataRecord, error) {
	s.count("GetGrantData")
	return s.Store.GetGrantData(ctx, grantID, name, now)
}

func (s *countingStore) GetGrantKey(ctx context.Context, grantID string) ([]byte, error) {
	s.count("GetGrantKey")
	return s.Store.GetGrantKey(ctx, grantID)
}

func (s *countingStore) PutGrantData(ctx context.Context, rec *storage.GrantDataRecord, maxValues int, now time.Time) error {
	s.count("PutGrantData")
	return s.Store.PutGrantData(ctx, rec, maxValues, now)
}

func (s *countingStore) DeleteGrantData(ctx context.Context, grantID, name string) error {
	s.count("DeleteGrantData")
	return s.Store.DeleteGrantData(ctx, grantID, name)
}

func (s *countingStore) ListKeys(ctx context.Context) ([]*storage.KeyRecord, error) {
	s.count("ListKeys")
	return s.Store.ListKeys(ctx)
}

func (s *countingStore) AddKey(ctx context.Context, k *storage.KeyRecord) error {
	s.count("AddKey")
	return s.Store.AddKey(ctx, k)
}

func (s *countingStore) DeleteKey(ctx context.Context, id string) error {
	s.count("DeleteKey")
	return s.Store.DeleteKey(ctx, id)
}

func (s *countingStore) CreateUser(ctx context.Context, u *storage.UserRecord) error {
	s.count("CreateUser")
	return s.Store.CreateUser(ctx, u)
}

func (s *countingStore) GetUser(ctx context.Context, name string) (*storage.UserRecord, error) {
	s.count("GetUser")
	return s.Store.GetUser(ctx, name)
}

func (s *countingStore) ListUsers(ctx context.Context) ([]*storage.UserRecord, error) {
	s.count("ListUsers")
	return s.Store.ListUsers(ctx)
}

func (s *countingStore) SetPassword(ctx context.Context, name, passwordHash string) error {
	s.count("SetPassword")
	return s.Store.SetPassword(ctx, name, passwordHash)
}

func (s *countingStore) RecordSignIn(ctx context.Context, name string, prevFailures, failures int, lockedUntil time.Time) error {
	s.count("RecordSignIn")
	return s.Store.RecordSignIn(ctx, name, prevFailures, failures, lockedUntil)
}

func (s *countingStore) DeleteUser(ctx context.Context, name string) error {
	s.count("DeleteUser")
	return s.Store.DeleteUser(ctx, name)
}

func (s *countingStore) CreateSession(ctx context.Context, ss *storage.SessionRecord) error {
	s.count("CreateSession")
	return s.Store.CreateSession(ctx, ss)
}

func (s *countingStore) GetSession(ctx context.Context, hash string, now time.Time) (*storage.SessionRecord, error) {
	s.count("GetSession")
	return s.Store.GetSession(ctx, hash, now)
}

func (s *countingStore) TouchSession(ctx context.Context, hash string, idleExpiresAt time.Time) error {
	s.count("TouchSession")
	return s.Store.TouchSession(ctx, hash, idleExpiresAt)
}

func (s *countingStore) DeleteSession(ctx context.Context, hash string) error {
	s.count("DeleteSession")
	return s.Store.DeleteSession(ctx, hash)
}

// TestPollReadsOncePerReload: while a request waits, each load of the
// approval page, and each poll of its status endpoint, reads the store
// exactly once (the pending row, by the tab's handle) and writes nothing:
// the client is served from the default Provider's memory, and the page
// does not read the row a second time (as a lookup by user code, or a
// second Poll, would).
//
// The loads here follow each other within milliseconds; that a tab
// polling once a second (past the grant states' 750 ms confirmation) also
// costs one read is provider's TestPollReadsAfterStaleness.
func TestPollReadsOncePerReload(t *testing.T) {
	ctx := context.Background()
	cs := newCountingStore()
	f := newFixture(t, func(o *Options) { o.Store = cs })
	// The first RegisterClient would start the lazy sweep in the
	// background, which reads keys while this test counts; sweeping now
	// puts the next one ten minutes away.
	if err := f.h.DefaultProvider().Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	c := f.publicClient()
	r := f.get("/authorize?" + authParams(c).Encode())
	loc, err := url.Parse(r.header.Get("Location"))
	if r.status != http.StatusFound || err != nil || loc.Path != PathDevice || loc.Query().Get("request") == "" || loc.Query().Get("user_code") == "" {
		t.Fatalf("authorize: %d %q", r.status, r.header.Get("Location"))
	}
	code := loc.Query().Get("user_code")
	reload := func() map[string]int64 {
		t.Helper()
		before := cs.snapshot()
		page := f.getURL(loc)
		d := cs.since(before)
		if m := userCodeRE.FindSubmatch(page.body); page.status != http.StatusOK || m == nil || string(m[1]) != code {
			t.Fatalf("waiting page: %d %s", page.status, page.body)
		}
		return d
	}
	// The Provider serves a pending request's client from memory once it
	// has read it. /authorize read the client, so normally the first load
	// reads none; allow a load or two in case it was not remembered (the
	// states were emptied by a poll), then count.
	for i := 0; ; i++ {
		if d := reload(); d["GetClient"] == 0 {
			break
		} else if i == 3 {
			t.Fatalf("the page still reads the client on load %d: %v", i+1, d)
		}
	}
	want := map[string]int64{"GetPendingByHandle": 1}
	const n = 5
	for i := range n {
		if d := reload(); !maps.Equal(d, want) {
			t.Errorf("waiting page, reload %d of %d: store calls %v, want %v", i+1, n, d, want)
		}
	}
	status := PathDevice + pathStatus + "?" + loc.RawQuery
	for i := range n {
		before := cs.snapshot()
		r := f.get(status)
		d := cs.since(before)
		if r.status != http.StatusOK || r.str("status") != "pending" {
			t.Fatalf("status endpoint: %d %s", r.status, r.body)
		}
		if !maps.Equal(d, want) {
			t.Errorf("status endpoint, poll %d of %d: store calls %v, want %v", i+1, n, d, want)
		}
	}
}

// TestWarmToolCallReads: once a token is warm, an MCP request costs no
// store read at all, also with grant data configured; a tool that reads a
// grant value costs exactly one (GetGrantData: the value and the data key
// in one query).
func TestWarmToolCallReads(t *testing.T) {
	ctx := context.Background()
	cs := newCountingStore()
	f := newFixture(t, func(o *Options) { o.Store = cs })
	if err := f.h.DefaultProvider().Sweep(ctx); err != nil { // see TestPollReadsOncePerReload
		t.Fatal(err)
	}
	mcp.AddTool(f.h.served[0].Server, &mcp.Tool{Name: "workspace"}, func(ctx context.Context, req *mcp.CallToolRequest, _ struct{}) (*mcp.CallToolResult, any, error) {
		ws, err := GrantData[string](ctx, req, "workspace")
		if err != nil {
			return nil, nil, err
		}
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: ws}}}, nil, nil
	})
	_, tok := f.tokens()
	at := tok.str("access_token")
	grantID := ""
	if info, err := f.h.DefaultProvider().LoadAccessToken(ctx, at); err == nil {
		grantID = info.GrantID
	}
	if err := f.h.DefaultProvider().SetGrantData(ctx, grantID, "workspace", []byte(`"acme"`), 0); err != nil {
		t.Fatal(err)
	}
	if got := callTool(t, f, at, "workspace"); got != "acme" {
		t.Fatalf("workspace tool = %q", got)
	}
	send := f.mcpSession(at)
	for _, tc := range []struct {
		tool string
		want map[string]int64
	}{
		{"echo", map[string]int64{}},
		{"workspace", map[string]int64{"GetGrantData": 1}},
		{"echo", map[string]int64{}},
	} {
		before := cs.snapshot()
		r := send(`{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"` + tc.tool + `","arguments":{}}}`)
		d := cs.since(before)
		if r.status != 200 || strings.Contains(string(r.body), `"isError":true`) {
			t.Fatalf("%s: %d %s", tc.tool, r.status, r.body)
		}
		if !maps.Equal(d, tc.want) {
			t.Errorf("a warm call of %s: store calls %v, want %v", tc.tool, d, tc.want)
		}
	}
}
