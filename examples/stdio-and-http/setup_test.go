package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx", to read the tables directly
	"github.com/modelcontextprotocol/go-sdk/auth"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/modelcontextprotocol/go-sdk/oauthex"
	"golang.org/x/crypto/bcrypt"
	"golang.org/x/oauth2"
	_ "modernc.org/sqlite" // database/sql driver "sqlite", to read the file directly

	"github.com/mcp-oauth/oauth/approval"
	"github.com/mcp-oauth/oauth/internal/browsertest"
	"github.com/mcp-oauth/oauth/internal/keywrap"
	"github.com/mcp-oauth/oauth/mcpauth"
)

// setupBackend is a database the setup-step tests run the example on,
// and how they read it directly, behind the library's back.
type setupBackend struct {
	name string
	db   func(t *testing.T) string
	// query runs a query on the database directly; dump returns every
	// byte the database holds for grants (files or table rows).
	query func(t *testing.T, db, q string, args ...any) *sql.Rows
	dump  func(t *testing.T, db string) []byte
}

var setupBackends = []setupBackend{
	{
		name: "sqlite",
		db:   func(t *testing.T) string { return filepath.Join(t.TempDir(), "mcpauth.db") },
		query: func(t *testing.T, db, q string, args ...any) *sql.Rows {
			t.Helper()
			conn, err := sql.Open("sqlite", "file:"+db+"?mode=ro")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { conn.Close() })
			rows, err := conn.Query(q, args...)
			if err != nil {
				t.Fatal(err)
			}
			return rows
		},
		// The database file and its write-ahead log, byte for byte.
		dump: func(t *testing.T, db string) []byte {
			var all []byte
			for _, f := range []string{db, db + "-wal"} {
				b, err := os.ReadFile(f)
				if err != nil && !errors.Is(err, os.ErrNotExist) {
					t.Fatal(err)
				}
				all = append(all, b...)
			}
			return all
		},
	},
	{
		name: "postgres",
		db:   func(t *testing.T) string { return pgSchemaURL(t) },
		query: func(t *testing.T, db, q string, args ...any) *sql.Rows {
			t.Helper()
			return pgQuery(t, db, q, args...)
		},
		// Every row of the two tables, as PostgreSQL's text form (bytea
		// in hex), and the bytea columns raw.
		dump: func(t *testing.T, db string) []byte {
			t.Helper()
			var all []byte
			for _, q := range []string{`SELECT g::text, coalesce(g.data_key, ''::bytea) FROM grants g`, `SELECT d::text, d.sealed FROM grant_data d`} {
				rows := pgQuery(t, db, q)
				for rows.Next() {
					var text string
					var raw []byte
					if err := rows.Scan(&text, &raw); err != nil {
						t.Fatal(err)
					}
					all = append(append(all, text...), raw...)
				}
				rows.Close()
			}
			return all
		},
	},
}

// pgQuery runs q on the PostgreSQL database db directly.
func pgQuery(t *testing.T, db, q string, args ...any) *sql.Rows {
	t.Helper()
	conn, err := sql.Open("pgx", db)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	rows, err := conn.Query(q, args...)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return rows
}

// count returns the single integer a query selects.
func (b setupBackend) count(t *testing.T, db, q string, args ...any) int {
	t.Helper()
	rows := b.query(t, db, q, args...)
	defer rows.Close()
	var n int
	if !rows.Next() {
		t.Fatalf("%s: no row", q)
	}
	if err := rows.Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// newKEK returns a random key-encryption key.
func newKEK(t *testing.T) []byte {
	k := make([]byte, 32)
	rand.Read(k)
	return k
}

// checkSealed reads the database directly and fails if it holds the
// profile's plaintext or the grant's data key (unwrapped with the KEK).
func checkSealed(t *testing.T, b setupBackend, db string, h *mcpauth.Handler, kek []byte, grantID, plaintext string) {
	t.Helper()
	store, err := openStore(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	wrapped, err := store.GetGrantKey(context.Background(), grantID)
	if err != nil {
		t.Fatal(err)
	}
	ring, err := keywrap.NewRing([][]byte{kek})
	if err != nil {
		t.Fatal(err)
	}
	key, err := ring.Open("grant:"+grantID, wrapped)
	if err != nil || len(key) != 32 || bytes.Equal(key, wrapped) {
		t.Fatalf("the stored data key is not wrapped by the KEK: %v", err)
	}
	all := b.dump(t, db)
	if len(all) == 0 {
		t.Fatal("read nothing from the database")
	}
	for what, needle := range map[string][]byte{
		"the plaintext":          []byte(plaintext),
		"the plaintext, in hex":  []byte(hex.EncodeToString([]byte(plaintext))),
		"the data key":           key,
		"the data key, in hex":   []byte(hex.EncodeToString(key)),
		"the KEK":                kek,
		"the KEK, in hex":        []byte(hex.EncodeToString(kek)),
		"the whole profile JSON": []byte(`"display_name":"` + plaintext),
	} {
		if bytes.Contains(all, needle) {
			t.Errorf("the %s database holds %s", b.name, what)
		}
	}
	// What is stored in the clear is found: the grant's ID, and its
	// workspace claim (not secret: every access token carries it). So the
	// searches above read the right bytes.
	if !bytes.Contains(all, []byte(grantID)) || !bytes.Contains(all, []byte(`team-`)) {
		t.Fatalf("the dump of the %s database lacks the grant ID or its claim: the check reads the wrong thing", b.name)
	}
}

// checkGone fails unless the grant's data and data key are gone from the
// database, read directly.
func checkGone(t *testing.T, b setupBackend, db, grantID string) {
	t.Helper()
	if n := b.count(t, db, `SELECT count(*) FROM grant_data WHERE grant_id = `+placeholder(b), grantID); n != 0 {
		t.Errorf("%s: %d grant_data rows of the revoked grant remain", b.name, n)
	}
	if n := b.count(t, db, `SELECT count(*) FROM grants WHERE id = `+placeholder(b)+` AND data_key IS NOT NULL`, grantID); n != 0 {
		t.Errorf("%s: the revoked grant keeps its data key", b.name)
	}
	if n := b.count(t, db, `SELECT count(*) FROM grants WHERE id = `+placeholder(b), grantID); n != 1 {
		t.Fatalf("%s: the grant row itself is missing (%d): the check reads the wrong thing", b.name, n)
	}
}

func placeholder(b setupBackend) string {
	if b.name == "postgres" {
		return "$1"
	}
	return "?"
}

// script runs a line of JavaScript in the page, as a user's hand would
// act on a control chromedp has no action for.
func script(js string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := chromedp.Evaluate[bool](js+"; true")(ctx, t)
		return err
	})
}

// fillSetup submits the example's setup form with a display name and a
// workspace.
func fillSetup(name, workspace string) chromedp.Action[chromedp.Void] {
	return chromedp.Steps(
		chromedp.WaitVisible(`form[data-setup]`),
		script(`document.querySelector('#display_name').value = ''`),
		chromedp.SendKeys(`#display_name`, name),
		script(`document.querySelector('#workspace').value = `+strconv.Quote(workspace)),
		chromedp.Submit(`form[data-setup]`),
	)
}

// TestBrowserSetupStepStoresGrantData: with -setup and -kek-file, an MCP
// client (go-sdk's OAuth client driving real Chromium) connects; the owner
// approves; the tab shows the setup form; a wrong value shows it again
// with the error; the right one returns to the client; the tools read
// the answers from grant data; the database holds neither them nor the
// data key; a refreshed token still reads them; revoking the grant
// deletes them, as reading the database directly shows.
func TestBrowserSetupStepStoresGrantData(t *testing.T) {
	for _, b := range setupBackends {
		t.Run(b.name, func(t *testing.T) {
			kek := newKEK(t)
			db := b.db(t)
			base, _, h := startExampleWith(t, serveOptions{db: db, setup: true, kek: kek})
			tab := browsertest.New(t) // after the server: closed before it, so that its shutdown finds no open connection
			ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
			defer cancel()
			name := "Ada " + hex.EncodeToString(newKEK(t)[:6])
			cb, landed := clientCallback(t)
			var problem string
			fetcher := func(ctx context.Context, args *auth.AuthorizationArgs) (*auth.AuthorizationResult, error) {
				tctx, tcancel := context.WithTimeout(tab, 45*time.Second)
				defer tcancel()
				if err := chromedp.Do(tctx, chromedp.Navigate(args.URL), chromedp.WaitVisible(`[data-user-code]`)); err != nil {
					return nil, err
				}
				attr, err := chromedp.Run(tctx, chromedp.AttributeValue(`[data-user-code]`, "data-user-code"))
				if err != nil {
					return nil, err
				}
				if _, err := h.Approve(ctx, attr.Value, "alice"); err != nil {
					return nil, err
				}
				// The waiting page moves on to the step by itself; a
				// blank name passes the browser's check but not the step's.
				if err := chromedp.Do(tctx, fillSetup("   ", "team-beta"), chromedp.WaitVisible(`[data-problem]`)); err != nil {
					return nil, fmt.Errorf("the setup form with a wrong value: %w", err)
				}
				if problem, err = chromedp.Run(tctx, chromedp.Text(`[data-problem]`)); err != nil {
					return nil, err
				}
				if err := chromedp.Do(tctx, fillSetup(name, "team-beta")); err != nil {
					return nil, fmt.Errorf("the setup form with the right values: %w", err)
				}
				return awaitCallback(ctx, landed)
			}
			cs, oh := connect(t, ctx, base, &oauthex.ClientRegistrationMetadata{
				RedirectURIs: []string{cb.URL + "/callback"}, ClientName: "Setup test", TokenEndpointAuthMethod: "none",
				GrantTypes: []string{"authorization_code", "refresh_token"}}, fetcher)
			defer cs.Close()
			if problem != "Enter a display name." {
				t.Errorf("the wrong value showed %q, want the step's error", problem)
			}
			who := callWhoami(t, ctx, cs)
			if who.DisplayName != name || who.Workspace != "team-beta" || who.Subject != "alice" {
				t.Fatalf("whoami = %+v, want the setup's answers", who)
			}
			checkSealed(t, b, db, h, kek, who.GrantID, name)

			// Refresh: the new access token still reads the grant data.
			ts, err := oh.TokenSource(ctx)
			if err != nil {
				t.Fatal(err)
			}
			tok, err := ts.Token()
			if err != nil {
				t.Fatal(err)
			}
			refreshed := refreshToken(t, base, who.ClientID, tok.RefreshToken)
			if w := whoamiWith(t, base, refreshed); w.DisplayName != name || w.GrantID != who.GrantID {
				t.Errorf("whoami after refresh = %+v", w)
			}

			if err := h.DefaultProvider().RevokeGrant(ctx, who.GrantID); err != nil {
				t.Fatal(err)
			}
			checkGone(t, b, db, who.GrantID)
		})
	}
}

// TestBrowserDeviceSetupOnConsole: a device-grant client (RFC 8628) gets
// its setup step on the owner's console confirmation page: the owner
// approves, the step's form shows there, a wrong value shows it again
// with the error, the right one approves; the device's poll then gets a
// token whose tools read the answers, and revoking deletes them.
func TestBrowserDeviceSetupOnConsole(t *testing.T) {
	for _, b := range setupBackends {
		t.Run(b.name, func(t *testing.T) {
			kek := newKEK(t)
			db := b.db(t)
			base, _, h := startExampleWith(t, serveOptions{db: db, setup: true, kek: kek})
			owner := browsertest.New(t) // after the server: closed before it
			ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
			defer cancel()
			store, err := openStore(ctx, db)
			if err != nil {
				t.Fatal(err)
			}
			if err := approval.NewAccounts(store, approval.AccountsOptions{BcryptCost: bcrypt.MinCost}).AddUser(ctx, "owner", "correct horse battery"); err != nil {
				t.Fatal(err)
			}
			store.Close()

			reg := postJSONTo(t, base+"/register", `{"grant_types":["urn:ietf:params:oauth:grant-type:device_code"],"token_endpoint_auth_method":"none","client_name":"CLI"}`)
			id, _ := reg["client_id"].(string)
			da := postForm(t, base+"/device_authorization", url.Values{"client_id": {id}})
			userCode, _ := da["user_code"].(string)
			deviceCode, _ := da["device_code"].(string)
			if userCode == "" || deviceCode == "" {
				t.Fatalf("device authorization: %v", da)
			}

			name := "Grace " + hex.EncodeToString(newKEK(t)[:6])
			octx, ocancel := context.WithTimeout(owner, 60*time.Second)
			defer ocancel()
			if err := chromedp.Do(octx,
				chromedp.Navigate(base+"/console"),
				browsertest.ConsoleSignIn("owner", "correct horse battery"),
				chromedp.WaitVisible(`form[data-enter-code]`),
				chromedp.SendKeys(`#user_code`, userCode),
				chromedp.Submit(`form[data-enter-code]`),
				chromedp.WaitVisible(`[data-approve]`),
				chromedp.Click(`[data-approve]`),
				fillSetup("   ", "team-alpha"),
				chromedp.WaitVisible(`[data-problem]`),
			); err != nil {
				t.Fatalf("the console's step with a wrong value: %v", err)
			}
			if p, _ := h.DefaultProvider().PendingByUserCode(ctx, userCode); p == nil || p.Status != "pending" {
				t.Fatalf("the request was decided before the step completed: %+v", p)
			}
			if err := chromedp.Do(octx, fillSetup(name, "team-alpha"), chromedp.WaitVisible(`[data-notice]`)); err != nil {
				t.Fatalf("the console's step with the right values: %v", err)
			}
			tok := postForm(t, base+"/token", url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:device_code"}, "device_code": {deviceCode}, "client_id": {id}})
			at, _ := tok["access_token"].(string)
			if at == "" {
				t.Fatalf("device token: %v", tok)
			}
			who := whoamiWith(t, base, at)
			if who.DisplayName != name || who.Workspace != "team-alpha" || who.Subject != "owner" {
				t.Fatalf("whoami = %+v, want the console step's answers", who)
			}
			checkSealed(t, b, db, h, kek, who.GrantID, name)
			if err := h.DefaultProvider().RevokeGrant(ctx, who.GrantID); err != nil {
				t.Fatal(err)
			}
			checkGone(t, b, db, who.GrantID)
		})
	}
}

func postJSONTo(t *testing.T, u, body string) map[string]any {
	t.Helper()
	resp, err := http.Post(u, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	json.NewDecoder(resp.Body).Decode(&out)
	return out
}

func postForm(t *testing.T, u string, form url.Values) map[string]any {
	t.Helper()
	resp, err := http.PostForm(u, form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	json.NewDecoder(resp.Body).Decode(&out)
	return out
}

// refreshToken redeems a refresh token and returns the new access token.
func refreshToken(t *testing.T, base, clientID, refresh string) string {
	t.Helper()
	r := postForm(t, base+"/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refresh}, "client_id": {clientID}})
	at, _ := r["access_token"].(string)
	if at == "" {
		t.Fatalf("refresh: %v", r)
	}
	return at
}

// staticSession connects an MCP client that sends a fixed access token.
func staticSession(t *testing.T, ctx context.Context, base, accessToken string) *mcp.ClientSession {
	t.Helper()
	hc := &http.Client{Transport: &oauth2.Transport{Source: oauth2.StaticTokenSource(&oauth2.Token{AccessToken: accessToken})}}
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "static", Version: "1"}, nil).
		Connect(ctx, &mcp.StreamableClientTransport{Endpoint: base + "/mcp", HTTPClient: hc, MaxRetries: -1}, nil)
	if err != nil {
		t.Fatalf("connect with a fixed token: %v", err)
	}
	return cs
}

// whoamiWith calls whoami with a fixed access token.
func whoamiWith(t *testing.T, base, accessToken string) whoami {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cs := staticSession(t, ctx, base, accessToken)
	defer cs.Close()
	return callWhoami(t, ctx, cs)
}
