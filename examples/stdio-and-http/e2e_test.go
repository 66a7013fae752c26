package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/auth"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/modelcontextprotocol/go-sdk/oauthex"
	"golang.org/x/oauth2"

	"github.com/mcp-oauth/oauth/mcpauth"
)

// startExample runs the example's HTTP server on a free loopback port, as
// `go run ./examples/stdio-and-http` does, with its database in a temp dir.
func startExample(t *testing.T) (base, dbPath string, h *mcpauth.Handler) {
	return startExampleWith(t, serveOptions{})
}

// startExampleWith is startExample with the serve flags of so; its issuer
// is the listener's, and its database a new SQLite file unless so.db is
// set.
func startExampleWith(t *testing.T, so serveOptions) (base, dbPath string, h *mcpauth.Handler) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	base = "http://" + ln.Addr().String()
	so.issuer = base
	if so.db == "" {
		so.db = filepath.Join(t.TempDir(), "mcpauth.db")
	}
	dbPath = so.db
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan *mcpauth.Handler, 1)
	done := make(chan error, 1)
	go func() {
		done <- serveHTTP(ctx, ln, so, io.Discard, func(h *mcpauth.Handler) { ready <- h })
	}()
	select {
	case h = <-ready:
	case err := <-done:
		t.Fatalf("server did not start: %v", err)
	}
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("server: %v", err)
		}
	})
	return base, dbPath, h
}

var noRedirect = &http.Client{
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	Timeout:       10 * time.Second,
}

var userCodeRE = regexp.MustCompile(`data-user-code="([A-Z]{4}-[A-Z]{4})"`)

// browse plays the user's browser: it opens the authorization URL, follows
// it to the approval page, reads the user code, lets approve decide, and
// reloads the page to receive the redirect back to the client.
func browse(t *testing.T, authURL, redirectHost string, approve func(code string) error) (*url.URL, error) {
	resp, err := noRedirect.Get(authURL)
	if err != nil {
		return nil, err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound {
		return nil, fmt.Errorf("authorize: status %d, want 302", resp.StatusCode)
	}
	page, err := resp.Location()
	if err != nil {
		return nil, err
	}
	resp, err = noRedirect.Get(page.String())
	if err != nil {
		return nil, err
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("device page: status %d", resp.StatusCode)
	}
	m := userCodeRE.FindSubmatch(body)
	if m == nil {
		return nil, fmt.Errorf("device page shows no user code:\n%s", body)
	}
	if !strings.Contains(string(body), redirectHost) {
		return nil, fmt.Errorf("device page does not show the redirect host")
	}
	if strings.Contains(string(body), "postgres://") {
		return nil, fmt.Errorf("device page shows a database URL")
	}
	if !strings.Contains(string(body), " approve ") || !strings.Contains(string(body), string(m[1])) {
		return nil, fmt.Errorf("device page does not say how to approve the code")
	}
	// Before the decision, reloading keeps waiting.
	resp, err = noRedirect.Get(page.String())
	if err != nil {
		return nil, err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("undecided reload: status %d, want 200", resp.StatusCode)
	}
	if err := approve(string(m[1])); err != nil {
		return nil, err
	}
	resp, err = noRedirect.Get(page.String())
	if err != nil {
		return nil, err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		return nil, fmt.Errorf("decided reload: status %d, want 303", resp.StatusCode)
	}
	return resp.Location()
}

const testRedirect = "http://127.0.0.1:49152/callback"

// TestEndToEndGoSDKClient drives the whole flow with go-sdk's own OAuth
// client: 401 → discovery → registration → authorization with PKCE → the
// owner approves the code through the Go API → token → tool call → refresh
// → revoke → the revoked token is refused.
func TestEndToEndGoSDKClient(t *testing.T) {
	base, _, h := startExample(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	cs, oh := connectAs(t, ctx, base, h, "alice")
	defer cs.Close()

	who := callWhoami(t, ctx, cs)
	if who.Subject != "alice" || who.ClientID == "" || who.GrantID == "" {
		t.Fatalf("whoami = %+v, want subject alice with client and grant ids", who)
	}
	for _, s := range []string{"mcp", "notes:read", "notes:write"} {
		if !contains(who.Scopes, s) {
			t.Errorf("scopes %v lack %q", who.Scopes, s)
		}
	}
	if _, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "add_note", Arguments: map[string]any{"text": "buy milk"}}); err != nil {
		t.Fatalf("add_note: %v", err)
	}
	// Another user, through another client, sees only their own notes.
	bob, _ := connectAs(t, ctx, base, h, "bob")
	defer bob.Close()
	if notes := listNotes(t, ctx, bob); notes != `{"notes":[]}` {
		t.Fatalf("bob sees %s", notes)
	}
	if notes := listNotes(t, ctx, cs); !strings.Contains(notes, "buy milk") {
		t.Fatalf("alice sees %s", notes)
	}

	ts, err := oh.TokenSource(ctx)
	if err != nil || ts == nil {
		t.Fatalf("token source: %v", err)
	}
	tok, err := ts.Token()
	if err != nil || tok.RefreshToken == "" {
		t.Fatalf("token %v, err %v: want a refresh token", tok, err)
	}

	// Refresh with x/oauth2, as any client library does.
	cfg := &oauth2.Config{ClientID: who.ClientID, Endpoint: oauth2.Endpoint{TokenURL: base + "/token", AuthStyle: oauth2.AuthStyleInParams}}
	fresh, err := cfg.TokenSource(ctx, &oauth2.Token{RefreshToken: tok.RefreshToken, Expiry: time.Now().Add(-time.Hour)}).Token()
	if err != nil {
		t.Fatalf("refresh: %v", err)
	}
	if fresh.AccessToken == tok.AccessToken || fresh.RefreshToken == "" || fresh.RefreshToken == tok.RefreshToken {
		t.Fatal("refresh did not rotate both tokens")
	}
	if st := mcpStatus(t, base, fresh.AccessToken); st != http.StatusOK {
		t.Fatalf("refreshed access token: status %d, want 200", st)
	}

	// Revoke (RFC 7009) the new refresh token: the grant and every access
	// token of it stop working at once.
	resp, err := http.PostForm(base+"/revoke", url.Values{"token": {fresh.RefreshToken}, "client_id": {who.ClientID}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("revoke: status %d", resp.StatusCode)
	}
	for _, at := range []string{fresh.AccessToken, tok.AccessToken} {
		status, hdr := ping(t, base, at)
		if status != http.StatusUnauthorized || !strings.Contains(hdr.Get("WWW-Authenticate"), `error="invalid_token"`) {
			t.Fatalf("revoked token: status %d, WWW-Authenticate %q; want 401 invalid_token", status, hdr.Get("WWW-Authenticate"))
		}
	}
}

// connectAs connects a new go-sdk MCP client with its own OAuth handler
// (dynamic registration, PKCE) and approves its code for subject.
func connectAs(t *testing.T, ctx context.Context, base string, h *mcpauth.Handler, subject string) (*mcp.ClientSession, *auth.AuthorizationCodeHandler) {
	t.Helper()
	fetcher := func(ctx context.Context, args *auth.AuthorizationArgs) (*auth.AuthorizationResult, error) {
		loc, err := browse(t, args.URL, "127.0.0.1:49152", func(code string) error {
			_, err := h.Approve(ctx, code, subject)
			return err
		})
		if err != nil {
			return nil, err
		}
		q := loc.Query()
		return &auth.AuthorizationResult{Code: q.Get("code"), State: q.Get("state"), Iss: q.Get("iss")}, nil
	}
	return connect(t, ctx, base, &oauthex.ClientRegistrationMetadata{
		RedirectURIs:            []string{testRedirect},
		ClientName:              "e2e <script>client</script>",
		TokenEndpointAuthMethod: "none",
		GrantTypes:              []string{"authorization_code", "refresh_token"},
	}, fetcher)
}

// connect connects a new go-sdk MCP client to base with its own OAuth
// handler, which registers md and gets its authorization code from fetch.
func connect(t *testing.T, ctx context.Context, base string, md *oauthex.ClientRegistrationMetadata,
	fetch func(context.Context, *auth.AuthorizationArgs) (*auth.AuthorizationResult, error)) (*mcp.ClientSession, *auth.AuthorizationCodeHandler) {
	t.Helper()
	oh, err := auth.NewAuthorizationCodeHandler(&auth.AuthorizationCodeHandlerConfig{
		DynamicClientRegistrationConfig: &auth.DynamicClientRegistrationConfig{Metadata: md},
		AuthorizationCodeFetcher:        fetch,
	})
	if err != nil {
		t.Fatal(err)
	}
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "e2e", Version: "1"}, nil).
		Connect(ctx, &mcp.StreamableClientTransport{Endpoint: base + "/mcp", OAuthHandler: oh}, nil)
	if err != nil {
		t.Fatalf("connect as %s: %v", md.ClientName, err)
	}
	return cs, oh
}

func listNotes(t *testing.T, ctx context.Context, cs *mcp.ClientSession) string {
	t.Helper()
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "list_notes"})
	if err != nil || res.IsError {
		t.Fatalf("list_notes: %v %+v", err, res)
	}
	return res.Content[0].(*mcp.TextContent).Text
}

type whoami struct {
	Subject     string   `json:"subject"`
	ClientID    string   `json:"client_id"`
	GrantID     string   `json:"grant_id"`
	DisplayName string   `json:"display_name"`
	Workspace   string   `json:"workspace"`
	Scopes      []string `json:"scopes"`
}

func callWhoami(t *testing.T, ctx context.Context, cs *mcp.ClientSession) whoami {
	t.Helper()
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "whoami"})
	if err != nil {
		t.Fatalf("whoami: %v", err)
	}
	if res.IsError || len(res.Content) == 0 {
		t.Fatalf("whoami failed: %+v", res)
	}
	var w whoami
	if err := json.Unmarshal([]byte(res.Content[0].(*mcp.TextContent).Text), &w); err != nil {
		t.Fatal(err)
	}
	return w
}

// ping posts one JSON-RPC ping to base's MCP endpoint with the bearer
// token and returns the status and headers of the answer.
func ping(t testing.TB, base, accessToken string) (int, http.Header) {
	t.Helper()
	req, _ := http.NewRequest("POST", base+"/mcp", strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"ping"}`))
	req.Header.Set("Authorization", "Bearer "+accessToken)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode, resp.Header
}

// mcpStatus connects an MCP client that sends a fixed bearer token and
// reports 200 when whoami succeeds, or the HTTP status that refused it.
func mcpStatus(t *testing.T, base, accessToken string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	hc := &http.Client{Transport: &oauth2.Transport{Source: oauth2.StaticTokenSource(&oauth2.Token{AccessToken: accessToken})}}
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "static", Version: "1"}, nil).
		Connect(ctx, &mcp.StreamableClientTransport{Endpoint: base + "/mcp", HTTPClient: hc, MaxRetries: -1}, nil)
	if err != nil {
		status, _ := ping(t, base, accessToken)
		return status
	}
	defer cs.Close()
	if _, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "whoami"}); err != nil {
		t.Fatalf("whoami with static token: %v", err)
	}
	return http.StatusOK
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
