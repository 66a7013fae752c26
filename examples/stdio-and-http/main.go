// Command stdio-and-http is an MCP server with a few real tools, served over
// stdio (local clients, no auth) or over HTTP behind mcpauth.Wrap with SQLite
// in a local file. Subcommands approve the short codes that connecting
// clients show, and list or revoke grants and clients, while the server runs.
//
//	go run ./examples/stdio-and-http                 # HTTP on 127.0.0.1:8080
//	go run ./examples/stdio-and-http stdio           # stdio, no auth
//	go run ./examples/stdio-and-http approve CODE    # approve a connection
//	go run ./examples/stdio-and-http deny CODE
//	go run ./examples/stdio-and-http grants | revoke GRANT_ID | clients
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcp-oauth/oauth"
	"github.com/mcp-oauth/oauth/approval"
	"github.com/mcp-oauth/oauth/mcpauth"
	"github.com/mcp-oauth/oauth/provider"
	"github.com/mcp-oauth/oauth/storage"
	"github.com/mcp-oauth/oauth/storage/postgres"
	"github.com/mcp-oauth/oauth/storage/sqlite"
)

const usage = `usage: stdio-and-http [command] [flags]

commands:
  serve (default)   serve MCP over HTTP behind OAuth: -addr, -issuer, -db, -trust-proxy
                    (-db takes a SQLite file or a postgres:// URL; env MCPAUTH_DB)
                    -setup: after approval, ask for a display name and workspace
                    -kek-file F: seal signing keys and grant data with this key
                    (64 hex digits; make one with: openssl rand -hex 32)
  stdio             serve MCP over stdio (no auth: the local process is trusted)
  approve CODE      approve a pending connection: [-db F] [-as SUBJECT]
  deny CODE         deny a pending connection: [-db F]
  pending           list connections waiting for approval: [-db F]
  grants            list active grants: [-db F]
  revoke GRANT_ID   revoke a grant and all of its tokens: [-db F]
  clients           list registered clients: [-db F]
  users add NAME --password-stdin
                    create a console user; the password is read from standard input
  users passwd NAME --password-stdin
                    set a console user's password (and lift a lockout)
  users list        list console users: [-db F]
  users remove NAME delete a console user and end their sessions: [-db F]
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "error:", err)
		}
		os.Exit(1)
	}
}

// run executes one command; tests call it directly.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	cmd := "serve"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		cmd, args = args[0], args[1:]
	}
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, usage) }
	db := fs.String("db", defaultDB(), "SQLite database file, or a postgres:// URL (env MCPAUTH_DB)")
	kekFile := fs.String("kek-file", os.Getenv("MCPAUTH_KEK_FILE"), "file with a 32-byte key-encryption key in hex, sealing signing keys and grant data (env MCPAUTH_KEK_FILE)")
	kek := func() ([]byte, error) {
		if *kekFile == "" {
			return nil, nil
		}
		return readKEK(*kekFile)
	}
	switch cmd {
	case "serve":
		addr := fs.String("addr", "127.0.0.1:8080", "listen address")
		issuer := fs.String("issuer", "", "public base URL (default http://ADDR)")
		trustProxy := fs.Bool("trust-proxy", false, "behind a reverse proxy you control: believe its X-Forwarded-Host and X-Forwarded-For")
		setup := fs.Bool("setup", false, "after approval, ask the user for a display name and a workspace (kept with the grant)")
		if err := fs.Parse(args); err != nil {
			return err
		}
		ln, err := net.Listen("tcp", *addr)
		if err != nil {
			return err
		}
		iss := *issuer
		if iss == "" {
			iss = "http://" + ln.Addr().String()
		}
		so := serveOptions{issuer: iss, db: *db, trustProxy: *trustProxy, setup: *setup}
		if so.kek, err = kek(); err != nil {
			return err
		}
		return serveHTTP(ctx, ln, so, stdout, nil)
	case "stdio":
		if err := fs.Parse(args); err != nil {
			return err
		}
		return newMCPServer(newNotes()).Run(ctx, &mcp.IOTransport{Reader: io.NopCloser(stdin), Writer: nopWriteCloser{stdout}})
	case "approve", "deny", "pending", "grants", "revoke", "clients":
		as := fs.String("as", "owner", "subject (account) that approves, with approve")
		if err := fs.Parse(args); err != nil {
			return err
		}
		k, err := kek()
		if err != nil {
			return err
		}
		return admin(ctx, cmd, *db, k, *as, fs.Args(), stdout)
	case "users":
		pwStdin := fs.Bool("password-stdin", false, "read the password from standard input")
		var sub []string
		if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
			sub, args = args[:1], args[1:]
		}
		if err := fs.Parse(args); err != nil {
			return err
		}
		rest := append(sub, fs.Args()...)
		// Accept --password-stdin after the positional arguments too, as
		// the usage shows it.
		var pos []string
		for _, a := range rest {
			if a == "--password-stdin" || a == "-password-stdin" {
				*pwStdin = true
				continue
			}
			pos = append(pos, a)
		}
		k, err := kek()
		if err != nil {
			return err
		}
		return users(ctx, *db, k, pos, *pwStdin, stdin, stdout)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return fmt.Errorf("unknown command %q", cmd)
}

type nopWriteCloser struct{ io.Writer }

func (nopWriteCloser) Close() error { return nil }

// serveOptions are the serve command's flags.
type serveOptions struct {
	issuer, db string
	trustProxy bool
	// setup turns on the setup step (setup.go).
	setup bool
	// kek, when set, is the key-encryption key (-kek-file).
	kek []byte
}

// serveHTTP serves the MCP server behind mcpauth on ln until ctx ends.
// ready, if non-nil, receives the handler once it is serving.
func serveHTTP(ctx context.Context, ln net.Listener, so serveOptions, stdout io.Writer, ready func(*mcpauth.Handler)) error {
	issuer, dbPath, trustProxy := so.issuer, so.db, so.trustProxy
	store, err := openStore(ctx, dbPath)
	if err != nil {
		return err
	}
	defer store.Close()
	logger := slog.New(slog.NewTextHandler(stdout, &slog.HandlerOptions{Level: slog.LevelInfo}))
	self := os.Args[0]
	if strings.Contains(self, "go-build") {
		self = "go run ./examples/stdio-and-http"
	}
	// The approval hint is shown in the browser of whoever starts an
	// authorization: never put a database URL (it may hold a password) in it.
	// Nor the KEK file's path: the commands need the same KEK, named.
	kekArg := ""
	if so.kek != nil {
		kekArg = " -kek-file <the server's KEK file>"
	}
	approveCmd := func(code string) string { return self + " approve -db " + dbPath + kekArg + " " + code }
	if isPostgres(dbPath) {
		approveCmd = func(code string) string {
			return "MCPAUTH_DB=<the server's database URL> " + self + " approve" + kekArg + " " + code
		}
	}
	opts := mcpauth.Options{
		Issuer:       issuer,
		Store:        store,
		Scopes:       []string{"mcp", "notes:read", "notes:write"},
		ToolScopes:   map[string][]string{"list_notes": {"notes:read"}, "add_note": {"notes:write"}},
		ResourceName: "Notes example",
		// Behind a proxy, clients' addresses (for the per-network limits)
		// and the public Host come from the proxy's headers.
		TrustProxyHeaders: trustProxy,
		ApprovalPage: approval.PageOptions{
			ProductName: "Notes example",
			ApproveHint: func(code string) string {
				return "The owner approves it in the console at " + strings.TrimSuffix(issuer, "/") + mcpauth.PathConsole +
					", or on the server runs: " + approveCmd(code)
			},
		},
		Logger: logger,
	}
	if so.setup {
		opts.ApprovalPage.Step = setupStep()
	}
	if so.kek != nil {
		opts.ProviderOptions.KeyEncryptionKeys = [][]byte{so.kek}
	} else if so.setup {
		logger.Warn("the setup step keeps its answers with each grant, sealed under a data key that is stored unwrapped: pass -kek-file so that a copy of the database alone reveals nothing")
	}
	h, err := mcpauth.Wrap(newMCPServer(newNotes()), opts)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	fmt.Fprintf(stdout, `
MCP server with OAuth listening on %s
  MCP endpoint (give this URL to your client): %s
  When the client's browser shows a code, approve it here:
      %s
`, ln.Addr(), h.Resource(), approveCmd("CODE"))
	if users, err := store.ListUsers(ctx); err == nil && len(users) == 0 {
		addCmd := self + " users add -db " + dbPath + " NAME --password-stdin"
		if isPostgres(dbPath) {
			addCmd = "MCPAUTH_DB=<the server's database URL> " + self + " users add NAME --password-stdin"
		}
		fmt.Fprintf(stdout, `  No console user exists yet. To approve from a browser at %s, create one
  (the password is read from standard input, never from the command line):
      %s
`, strings.TrimSuffix(issuer, "/")+mcpauth.PathConsole, addCmd)
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	if ready != nil {
		ready(h)
	}
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		err := srv.Shutdown(sctx)
		if errors.Is(err, context.DeadlineExceeded) {
			// MCP streams (an SSE GET a client keeps open) do not end on
			// their own: after the grace period they are closed.
			fmt.Fprintln(stdout, "  connections still open after 5 s were closed")
			return srv.Close()
		}
		return err
	}
}

// admin runs the terminal commands against the same database as a running
// server: SQLite in WAL mode lets both use it at once.
func admin(ctx context.Context, cmd, dbPath string, kek []byte, subject string, args []string, stdout io.Writer) error {
	store, err := openExisting(ctx, dbPath)
	if err != nil {
		return err
	}
	defer store.Close()
	// The issuer and resource only shape the tokens a provider issues; the
	// admin commands issue none, so placeholders do.
	p, err := adminProvider(ctx, store, kek)
	if err != nil {
		return err
	}
	need := func(n int) error {
		if len(args) != n {
			return fmt.Errorf("%s takes %d argument(s)", cmd, n)
		}
		return nil
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	defer tw.Flush()
	switch cmd {
	case "approve", "deny":
		if err := need(1); err != nil {
			return err
		}
		var pr *oauth.PendingRequest
		if cmd == "approve" {
			pr, err = p.Approve(ctx, args[0], subject, nil)
		} else {
			pr, err = p.Deny(ctx, args[0])
		}
		if err != nil {
			return err
		}
		verb := "Approved"
		if cmd == "deny" {
			verb = "Denied"
		}
		fmt.Fprintf(stdout, "%s %q (client %s) for %s, scopes %s. The browser continues by itself.\n",
			verb, pr.Client.ClientName, pr.ClientID, orDash(pr.Subject), strings.Join(pr.Scopes, " "))
	case "pending":
		list, err := p.ListPending(ctx)
		if err != nil {
			return err
		}
		fmt.Fprintln(tw, "REQUEST\tCLIENT\tREDIRECT\tSCOPES\tEXPIRES")
		for _, r := range list {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.ID, r.Client.ClientName, r.RedirectURI, strings.Join(r.Scopes, " "), r.ExpiresAt.Local().Format(time.TimeOnly))
		}
	case "grants":
		list, err := p.ListGrants(ctx)
		if err != nil {
			return err
		}
		fmt.Fprintln(tw, "GRANT\tCLIENT\tSUBJECT\tSCOPES\tCREATED\tLAST USED")
		for _, g := range list {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", g.ID, g.ClientID, g.Subject, strings.Join(g.Scopes, " "),
				g.CreatedAt.Local().Format(time.DateTime), g.LastUsedAt.Local().Format(time.DateTime))
		}
	case "revoke":
		if err := need(1); err != nil {
			return err
		}
		if err := p.RevokeGrant(ctx, args[0]); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "Revoked grant %s: its refresh tokens are gone and its access tokens are refused.\n", args[0])
	case "clients":
		list, err := p.ListClients(ctx)
		if err != nil {
			return err
		}
		fmt.Fprintln(tw, "CLIENT\tNAME\tAUTH\tREDIRECT URIS\tREGISTERED")
		for _, c := range list {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", c.ID, c.ClientName, c.TokenEndpointAuthMethod, strings.Join(c.RedirectURIs, " "), c.IssuedAt.Local().Format(time.DateTime))
		}
	}
	return nil
}

// openExisting opens the store of a server that has run: the terminal
// commands never create a SQLite file of their own.
func openExisting(ctx context.Context, db string) (exampleStore, error) {
	if !isPostgres(db) {
		if _, err := os.Stat(db); err != nil {
			return nil, fmt.Errorf("no database at %s (start the server first, or pass -db): %w", db, err)
		}
	}
	return openStore(ctx, db)
}

// defaultDB is $MCPAUTH_DB, or ./mcpauth.db.
func defaultDB() string {
	if v := os.Getenv("MCPAUTH_DB"); v != "" {
		return v
	}
	return "./mcpauth.db"
}

func isPostgres(db string) bool {
	return strings.HasPrefix(db, "postgres://") || strings.HasPrefix(db, "postgresql://")
}

// exampleStore is what both backends are: the provider's Store and the console's
// AccountStore, in one database.
type exampleStore interface {
	storage.Store
	storage.AccountStore
}

// openStore opens PostgreSQL for a postgres:// URL (several replicas can
// share it) and SQLite for anything else (a file path).
func openStore(ctx context.Context, db string) (exampleStore, error) {
	if isPostgres(db) {
		return postgres.Open(ctx, db)
	}
	return sqlite.Open(ctx, db)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// users runs the "users" commands: console accounts of the built-in
// sign-in, kept in the same database as the server's.
// adminProvider is the Provider of the terminal commands, on the server's
// store. The issuer and resource only shape the tokens a provider issues;
// the commands issue none, so placeholders do. Its signing keys are
// loaded, so it needs the server's KEK when the server has one.
func adminProvider(ctx context.Context, store storage.Store, kek []byte) (*provider.Provider, error) {
	o := provider.Options{Issuer: "http://127.0.0.1", Resource: "http://127.0.0.1/mcp"}
	if kek != nil {
		o.KeyEncryptionKeys = [][]byte{kek}
	}
	p, err := provider.New(ctx, store, o)
	if err != nil {
		return nil, fmt.Errorf("%w (if the server runs with -kek-file, pass the same -kek-file)", err)
	}
	return p, nil
}

func users(ctx context.Context, dbPath string, kek []byte, args []string, pwStdin bool, stdin io.Reader, stdout io.Writer) error {
	if len(args) == 0 {
		return errors.New("users: want add, passwd, list or remove")
	}
	store, err := openExisting(ctx, dbPath)
	if err != nil {
		return err
	}
	defer store.Close()
	accounts := approval.NewAccounts(store, approval.AccountsOptions{})
	sub, args := args[0], args[1:]
	need := func(n int) error {
		if len(args) != n {
			return fmt.Errorf("users %s takes %d argument(s)", sub, n)
		}
		return nil
	}
	password := func() (string, error) {
		if !pwStdin {
			return "", fmt.Errorf("users %s: pass --password-stdin and give the password on standard input (it is never taken from the command line)", sub)
		}
		line, err := readLine(stdin)
		if err != nil {
			return "", fmt.Errorf("users %s: read the password: %w", sub, err)
		}
		return line, nil
	}
	switch sub {
	case "add", "passwd":
		if err := need(1); err != nil {
			return err
		}
		pw, err := password()
		if err != nil {
			return err
		}
		if sub == "add" {
			if err := accounts.AddUser(ctx, args[0], pw); err != nil {
				if errors.Is(err, storage.ErrConflict) {
					return fmt.Errorf("a user named %q exists already", args[0])
				}
				return err
			}
			fmt.Fprintf(stdout, "Created console user %s.\n", args[0])
			return nil
		}
		if err := accounts.SetPassword(ctx, args[0], pw); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "Set the password of %s.\n", args[0])
	case "list":
		list, err := store.ListUsers(ctx)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		defer tw.Flush()
		fmt.Fprintln(tw, "USER\tCREATED\tLOCKED UNTIL")
		for _, u := range list {
			locked := "-"
			if u.LockedUntil.After(time.Now()) {
				locked = u.LockedUntil.Local().Format(time.DateTime)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\n", u.Name, u.CreatedAt.Local().Format(time.DateTime), locked)
		}
	case "remove":
		if err := need(1); err != nil {
			return err
		}
		p, err := adminProvider(ctx, store, kek)
		if err != nil {
			return err
		}
		if err := store.DeleteUser(ctx, args[0]); err != nil {
			return err
		}
		// The grants the user approved end with them, and their data.
		n, err := p.RevokeSubjectGrants(ctx, args[0])
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "Removed console user %s, ended their sessions and revoked the %d grant(s) they approved.\n", args[0], n)
	default:
		return fmt.Errorf("users: unknown command %q (want add, passwd, list or remove)", sub)
	}
	return nil
}

// readLine reads one line (without its line ending) of at most 1 KiB.
func readLine(r io.Reader) (string, error) {
	b, err := io.ReadAll(io.LimitReader(r, 1024))
	if err != nil {
		return "", err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	return strings.TrimSuffix(line, "\r"), nil
}
