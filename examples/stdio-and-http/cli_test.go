package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcp-oauth/oauth/approval"
)

// cli runs one terminal command of the example and returns its output.
func cli(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	err := run(context.Background(), args, strings.NewReader(""), &out, &errOut)
	return out.String() + errOut.String(), err
}

// startAuthorization registers a client and opens /authorize, returning the
// approval page URL and the user code it shows.
func startAuthorization(t *testing.T, base string) (page *url.URL, code string) {
	t.Helper()
	resp, err := http.Post(base+"/register", "application/json", strings.NewReader(
		`{"redirect_uris":["`+testRedirect+`"],"token_endpoint_auth_method":"none","client_name":"CLI test"}`))
	if err != nil {
		t.Fatal(err)
	}
	var reg struct {
		ClientID string `json:"client_id"`
	}
	json.NewDecoder(resp.Body).Decode(&reg)
	resp.Body.Close()
	q := url.Values{"response_type": {"code"}, "client_id": {reg.ClientID}, "redirect_uri": {testRedirect}, "state": {"s"},
		"code_challenge": {"E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"}, "code_challenge_method": {"S256"}}
	resp, err = noRedirect.Get(base + "/authorize?" + q.Encode())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	page, err = resp.Location()
	if err != nil {
		t.Fatal(err)
	}
	resp, err = noRedirect.Get(page.String())
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := userCodeRE.FindSubmatch(body)
	if m == nil {
		t.Fatalf("no user code on %s", body)
	}
	return page, string(m[1])
}

// TestTerminalCommandsWhileServing approves, lists and revokes from the
// terminal commands against the database of a running server.
func TestTerminalCommandsWhileServing(t *testing.T) {
	base, db, _ := startExample(t)
	page, code := startAuthorization(t, base)

	out, err := cli(t, "pending", "-db", db)
	if err != nil || !strings.Contains(out, "CLI test") || !strings.Contains(out, testRedirect) {
		t.Fatalf("pending: %v\n%s", err, out)
	}
	out, err = cli(t, "approve", "-db", db, "-as", "bob", strings.ToLower(code))
	if err != nil || !strings.Contains(out, `Approved "CLI test"`) || !strings.Contains(out, "bob") {
		t.Fatalf("approve: %v\n%s", err, out)
	}
	if _, err := cli(t, "approve", "-db", db, code); err == nil {
		t.Fatal("approving twice succeeded")
	}
	resp, err := noRedirect.Get(page.String())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, _ := resp.Location()
	if resp.StatusCode != http.StatusSeeOther || loc == nil || loc.Query().Get("code") == "" {
		t.Fatalf("after CLI approval the page answered %d %v", resp.StatusCode, loc)
	}

	out, err = cli(t, "grants", "-db", db)
	grantRE := regexp.MustCompile(`(?m)^([0-9a-f-]{36})\s+\S+\s+bob\s`)
	m := grantRE.FindStringSubmatch(out)
	if err != nil || m == nil {
		t.Fatalf("grants: %v\n%s", err, out)
	}
	if out, err := cli(t, "clients", "-db", db); err != nil || !strings.Contains(out, "CLI test") || !strings.Contains(out, "none") {
		t.Fatalf("clients: %v\n%s", err, out)
	}
	if out, err := cli(t, "revoke", "-db", db, m[1]); err != nil || !strings.Contains(out, "Revoked grant") {
		t.Fatalf("revoke: %v\n%s", err, out)
	}
	if out, _ := cli(t, "grants", "-db", db); strings.Contains(out, m[1]) {
		t.Fatalf("revoked grant still listed:\n%s", out)
	}

	// Deny from the terminal: the browser goes back with access_denied.
	page, code = startAuthorization(t, base)
	if out, err := cli(t, "deny", "-db", db, code); err != nil || !strings.Contains(out, "Denied") {
		t.Fatalf("deny: %v\n%s", err, out)
	}
	resp, _ = noRedirect.Get(page.String())
	resp.Body.Close()
	loc, _ = resp.Location()
	if loc == nil || loc.Query().Get("error") != "access_denied" {
		t.Fatalf("after deny: %d %v", resp.StatusCode, loc)
	}

	for _, args := range [][]string{{"approve", "-db", db}, {"revoke", "-db", db}, {"frobnicate"}, {"grants", "-db", db + ".missing"}} {
		if _, err := cli(t, args...); err == nil {
			t.Errorf("%v succeeded", args)
		}
	}
}

// TestStdio serves the same tools over stdio, where the caller is the local user.
func TestStdio(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	clientToServer, serverIn := io.Pipe()
	serverOut, serverToClient := io.Pipe()
	done := make(chan error, 1)
	go func() { done <- run(ctx, []string{"stdio"}, clientToServer, serverToClient, io.Discard) }()
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "stdio-test", Version: "1"}, nil).
		Connect(ctx, &mcp.IOTransport{Reader: serverOut, Writer: serverIn}, nil)
	if err != nil {
		t.Fatal(err)
	}
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "whoami"})
	if err != nil || res.IsError {
		t.Fatalf("whoami: %v %+v", err, res)
	}
	if text := res.Content[0].(*mcp.TextContent).Text; !strings.Contains(text, `"subject":"local"`) {
		t.Fatalf("whoami over stdio = %s", text)
	}
	if _, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "add_note", Arguments: map[string]any{"text": "hi"}}); err != nil {
		t.Fatal(err)
	}
	res, _ = cs.CallTool(ctx, &mcp.CallToolParams{Name: "list_notes"})
	if text := res.Content[0].(*mcp.TextContent).Text; !strings.Contains(text, `"text":"hi"`) {
		t.Fatalf("list_notes = %s", text)
	}
	cs.Close()
	cancel()
	<-done
}

// cliIn runs one terminal command with the given standard input.
func cliIn(t *testing.T, stdin string, args ...string) (string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	err := run(context.Background(), args, strings.NewReader(stdin), &out, &errOut)
	return out.String() + errOut.String(), err
}

// TestUsersCommands: console users are created with the password on
// standard input (never on the command line), listed, re-passworded and
// removed, against the running server's database; the stored hash is
// bcrypt, and a user can sign in with the password given.
func TestUsersCommands(t *testing.T) {
	_, db, _ := startExample(t)
	if out, err := cli(t, "users", "add", "-db", db, "alice"); err == nil || !strings.Contains(out+err.Error(), "--password-stdin") {
		t.Errorf("users add without --password-stdin: %q, %v; want a refusal naming --password-stdin", out, err)
	}
	if out, err := cliIn(t, "correct horse battery\n", "users", "add", "-db", db, "alice", "--password-stdin"); err != nil || !strings.Contains(out, "Created console user alice") {
		t.Fatalf("users add: %q, %v", out, err)
	}
	if _, err := cliIn(t, "another password!\n", "users", "add", "-db", db, "alice", "--password-stdin"); err == nil {
		t.Error("adding a taken name succeeded")
	}
	if _, err := cliIn(t, "short\n", "users", "add", "-db", db, "bob", "--password-stdin"); err == nil {
		t.Error("a 5-character password was accepted")
	}
	out, err := cli(t, "users", "list", "-db", db)
	if err != nil || !strings.Contains(out, "alice") || strings.Contains(out, "bob") || strings.Contains(out, "horse") {
		t.Fatalf("users list: %q, %v", out, err)
	}
	store, err := openStore(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	accounts := approval.NewAccounts(store, approval.AccountsOptions{})
	if _, err := accounts.SignIn(context.Background(), approval.SignInAttempt{Name: "alice", Password: "correct horse battery", ClientIP: "127.0.0.1"}); err != nil {
		t.Errorf("sign in with the password given to users add: %v", err)
	}
	if _, err := cliIn(t, "a brand new password\r\n", "users", "passwd", "-db", db, "alice", "--password-stdin"); err != nil {
		t.Fatal(err)
	}
	if _, err := accounts.SignIn(context.Background(), approval.SignInAttempt{Name: "alice", Password: "a brand new password", ClientIP: "127.0.0.2"}); err != nil {
		t.Errorf("sign in with the new password: %v", err)
	}
	if out, err := cli(t, "users", "remove", "-db", db, "alice"); err != nil || !strings.Contains(out, "Removed") {
		t.Fatalf("users remove: %q, %v", out, err)
	}
	if out, _ := cli(t, "users", "list", "-db", db); strings.Contains(out, "alice") {
		t.Errorf("users list after remove: %q", out)
	}
}
