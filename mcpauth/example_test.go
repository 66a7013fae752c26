package mcpauth_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/modelcontextprotocol/go-sdk/oauthex"
	"golang.org/x/oauth2"

	oauth "github.com/mcp-oauth/oauth"
	"github.com/mcp-oauth/oauth/approval"
	"github.com/mcp-oauth/oauth/mcpauth"
	"github.com/mcp-oauth/oauth/provider"
	"github.com/mcp-oauth/oauth/storage/memory"
)

// Wrap serves an MCP server behind OAuth. A client without a token is
// answered 401 with a challenge that points at the protected resource
// metadata, which names the authorization server: everything an MCP client
// needs to register, authorize and come back with a token.
func ExampleWrap() {
	server := mcp.NewServer(&mcp.Implementation{Name: "notes", Version: "1.0.0"}, nil)
	mcp.AddTool(server, &mcp.Tool{Name: "hello", Description: "Says hello."},
		func(ctx context.Context, req *mcp.CallToolRequest, _ struct{}) (*mcp.CallToolResult, any, error) {
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "hello"}}}, nil, nil
		})

	h, err := mcpauth.Wrap(server, mcpauth.Options{
		Issuer: "https://notes.example.com", // the public base URL
		Store:  memory.New(),                // sqlite.Open or postgres.Open in production
	})
	if err != nil {
		log.Fatal(err)
	}
	defer h.Close()
	// A real server runs http.ListenAndServe(":8080", h); here the
	// handler answers requests directly.

	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("POST", "https://notes.example.com/mcp",
		strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"ping"}`)))
	fmt.Println(w.Code, w.Header().Get("WWW-Authenticate"))

	w = httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("GET", "https://notes.example.com/.well-known/oauth-protected-resource/mcp", nil))
	var prm oauthex.ProtectedResourceMetadata
	if err := json.Unmarshal(w.Body.Bytes(), &prm); err != nil {
		log.Fatal(err)
	}
	fmt.Println("resource:", prm.Resource)
	fmt.Println("authorization servers:", prm.AuthorizationServers)
	// Output:
	// 401 Bearer resource_metadata="https://notes.example.com/.well-known/oauth-protected-resource/mcp", scope="mcp"
	// resource: https://notes.example.com/mcp
	// authorization servers: [https://notes.example.com]
}

// A tool learns who is calling from the access token, in one line. Here a
// client registers, the owner approves its code as alice, and the client
// calls the tool with the token it obtained.
func ExampleCallerOf() {
	server := mcp.NewServer(&mcp.Implementation{Name: "notes", Version: "1.0.0"}, nil)
	mcp.AddTool(server, &mcp.Tool{Name: "whoami", Description: "Returns the caller's subject."},
		func(ctx context.Context, req *mcp.CallToolRequest, _ struct{}) (*mcp.CallToolResult, any, error) {
			caller, ok := mcpauth.CallerOf(req)
			if !ok {
				return nil, nil, errors.New("no caller") // not reached behind Wrap
			}
			return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: caller.Subject}}}, nil, nil
		})

	srv, issuer := listen()
	h, err := mcpauth.Wrap(server, mcpauth.Options{Issuer: issuer, Store: memory.New()})
	if err != nil {
		log.Fatal(err)
	}
	defer h.Close()
	srv.Config.Handler = h
	srv.Start()
	defer srv.Close()

	ctx := context.Background()
	token, err := accessToken(ctx, issuer, h, "alice")
	if err != nil {
		log.Fatal(err)
	}
	// An MCP client that sends the token with every request.
	hc := oauth2.NewClient(ctx, oauth2.StaticTokenSource(&oauth2.Token{AccessToken: token}))
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "example-client", Version: "1.0.0"}, nil).
		Connect(ctx, &mcp.StreamableClientTransport{Endpoint: h.Resource(), HTTPClient: hc}, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer cs.Close()
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "whoami"})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(res.Content[0].(*mcp.TextContent).Text)
	// Output: alice
}

// RequireBearer protects any http.Handler with tokens that a function
// verifies, answering with the RFC 6750 challenges.
func ExampleRequireBearer() {
	verify := func(ctx context.Context, token string) (*oauth.AccessToken, error) {
		if token != "let-me-in" {
			return nil, oauth.ErrInvalidToken.WithDescription("unknown token")
		}
		return &oauth.AccessToken{Subject: "alice", Scopes: []string{"notes"}, ExpiresAt: time.Now().Add(time.Hour)}, nil
	}
	protect := mcpauth.RequireBearer(verify, mcpauth.BearerOptions{
		ResourceMetadataURL: "https://api.example.com/.well-known/oauth-protected-resource",
		Scopes:              []string{"notes"},
	})
	h := protect(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		caller, _ := mcpauth.CallerFromRequest(r)
		fmt.Fprintln(w, "hello,", caller.Subject)
	}))

	for _, token := range []string{"", "guess", "let-me-in"} {
		r := httptest.NewRequest("GET", "https://api.example.com/notes", nil)
		if token != "" {
			r.Header.Set("Authorization", "Bearer "+token)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		out := w.Header().Get("WWW-Authenticate")
		if w.Code == http.StatusOK {
			out = strings.TrimSpace(w.Body.String())
		}
		fmt.Printf("%q: %d %s\n", token, w.Code, out)
	}
	// Output:
	// "": 401 Bearer resource_metadata="https://api.example.com/.well-known/oauth-protected-resource", scope="notes"
	// "guess": 401 Bearer resource_metadata="https://api.example.com/.well-known/oauth-protected-resource", error="invalid_token", error_description="unknown token"
	// "let-me-in": 200 hello, alice
}

// A resource server that runs apart from the authorization server verifies
// its tokens on its own: signatures against the issuer's JWK Set, found
// through the issuer's metadata and cached, and the issuer, audience and
// expiry. v.Verify is a TokenVerifier, so RequireBearer(v.Verify, ...)
// protects the resource server's handler.
func ExampleRemoteVerifier() {
	// The authorization server, with the MCP endpoint the tokens are for.
	srv, issuer := listen()
	h, err := mcpauth.Wrap(mcp.NewServer(&mcp.Implementation{Name: "notes", Version: "1.0.0"}, nil),
		mcpauth.Options{Issuer: issuer, Store: memory.New()})
	if err != nil {
		log.Fatal(err)
	}
	defer h.Close()
	srv.Config.Handler = h
	srv.Start()
	defer srv.Close()
	ctx := context.Background()
	token, err := accessToken(ctx, issuer, h, "alice")
	if err != nil {
		log.Fatal(err)
	}

	// The resource server knows only the issuer and its own URL.
	v, err := mcpauth.NewRemoteVerifier(mcpauth.RemoteVerifierOptions{Issuer: issuer, Resource: h.Resource()})
	if err != nil {
		log.Fatal(err)
	}
	at, err := v.Verify(ctx, token)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(at.Subject, at.Scopes)
	// A token is bound to the resource it was issued for (RFC 8707).
	elsewhere, err := mcpauth.NewRemoteVerifier(mcpauth.RemoteVerifierOptions{Issuer: issuer, Resource: "https://other.example.com/mcp"})
	if err != nil {
		log.Fatal(err)
	}
	_, err = elsewhere.Verify(ctx, token)
	fmt.Println("another resource:", oauth.AsError(err).Code)
	// Output:
	// alice [mcp]
	// another resource: invalid_token
}

// A setup step runs in the authorize tab after the owner approved and
// before the browser returns to the client: here it asks for an API key
// that the server would keep for this connection. It remembers by the
// request's ID that it is done, since it is called on every load of the tab.
func Example_setupStep() {
	// The step asks for the user's API key. It completes with the key as
	// grant data, which tools then read with mcpauth.GrantData; until
	// then it (re)shows its form, with an error after a wrong value.
	step := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		problem := ""
		if r.Method == http.MethodPost {
			if key := r.PostFormValue("api_key"); strings.HasPrefix(key, "sk-") {
				p := approval.StepRequest(r)
				fmt.Printf("step: %s gave an API key for %s\n", p.Subject, p.Client.ClientName)
				approval.Complete(r, &oauth.GrantSetup{Values: []oauth.GrantValue{{Name: "api_key", Value: []byte(key)}}})
				return
			}
			problem = "That is not an API key."
		}
		// No action attribute: the form posts back to the tab's URL.
		fmt.Fprintf(w, `<form method="post">%s<p>%s</p>
<label>API key <input name="api_key"></label> <button>Save</button></form>`, approval.StepFields(r), problem)
	})

	srv, issuer := listen()
	h, err := mcpauth.Wrap(mcp.NewServer(&mcp.Implementation{Name: "notes", Version: "1.0.0"}, nil),
		mcpauth.Options{Issuer: issuer, Store: memory.New(), ApprovalPage: approval.PageOptions{Step: step}})
	if err != nil {
		log.Fatal(err)
	}
	defer h.Close()
	srv.Config.Handler = h
	srv.Start()
	defer srv.Close()

	ctx := context.Background()
	cfg, err := register(ctx, issuer)
	if err != nil {
		log.Fatal(err)
	}
	tab, err := openApprovalPage(cfg, oauth2.GenerateVerifier())
	if err != nil {
		log.Fatal(err)
	}
	hidden := url.Values{} // the step form's hidden fields, as a browser would send them
	visit := func(stage, method string, form url.Values) {
		for k, v := range hidden {
			if form != nil {
				form[k] = v
			}
		}
		resp, body, err := browse(method, tab.String(), form)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("%s: %d", stage, resp.StatusCode)
		if strings.Contains(body, approval.StepField) {
			fmt.Print(", the step's form")
			for _, m := range regexp.MustCompile(`name="([^"]+)" value="([^"]*)"`).FindAllStringSubmatch(body, -1) {
				hidden.Set(m[1], html.UnescapeString(m[2]))
			}
		}
		if strings.Contains(body, "That is not an API key.") {
			fmt.Print(", with the error")
		}
		if m := regexp.MustCompile(`content="0;url=([^"]+)"`).FindStringSubmatch(body); m != nil {
			to, _ := url.Parse(html.UnescapeString(m[1]))
			fmt.Printf(", on to %s%s with a code: %t", to.Host, to.Path, to.Query().Has("code"))
		}
		fmt.Println()
	}
	visit("waiting", "GET", nil)
	if _, err := h.Approve(ctx, tab.Query().Get("user_code"), "alice"); err != nil {
		log.Fatal(err)
	}
	visit("approved", "GET", nil)
	visit("a wrong key", "POST", url.Values{"api_key": {"hunter2"}})
	visit("the right key", "POST", url.Values{"api_key": {"sk-example"}})
	// Output:
	// waiting: 200
	// approved: 200, the step's form
	// a wrong key: 200, the step's form, with the error
	// step: alice gave an API key for Example client
	// the right key: 200, on to 127.0.0.1:3000/callback with a code: true
}

// auditedProvider is a Provider of the host's own. It implements
// oauth.Provider and oauth.Approver, so Wrap serves the approval page and
// the console on it, and here it delegates every method to the default
// Provider it holds; a real one would keep its state elsewhere, or add
// its own logic where Approve logs each approval.
type auditedProvider struct {
	next *provider.Provider
}

var (
	_ oauth.Provider = (*auditedProvider)(nil)
	_ oauth.Approver = (*auditedProvider)(nil)
)

func (p *auditedProvider) Approve(ctx context.Context, userCode, subject string, setup *oauth.GrantSetup) (*oauth.PendingRequest, error) {
	req, err := p.next.Approve(ctx, userCode, subject, setup)
	if err == nil {
		fmt.Printf("audit: %s approved %s\n", subject, req.Client.ClientName)
	}
	return req, err
}

// oauth.Approver
func (p *auditedProvider) PendingByUserCode(ctx context.Context, userCode string) (*oauth.PendingRequest, error) {
	return p.next.PendingByUserCode(ctx, userCode)
}
func (p *auditedProvider) ListPending(ctx context.Context) ([]*oauth.PendingRequest, error) {
	return p.next.ListPending(ctx)
}
func (p *auditedProvider) Deny(ctx context.Context, userCode string) (*oauth.PendingRequest, error) {
	return p.next.Deny(ctx, userCode)
}
func (p *auditedProvider) Poll(ctx context.Context, req *oauth.PollRequest) (*oauth.PendingRequest, string, error) {
	return p.next.Poll(ctx, req)
}

// oauth.Provider
func (p *auditedProvider) GetClient(ctx context.Context, clientID string) (*oauth.Client, error) {
	return p.next.GetClient(ctx, clientID)
}
func (p *auditedProvider) RegisterClient(ctx context.Context, md *oauthex.ClientRegistrationMetadata) (*oauthex.ClientRegistrationResponse, error) {
	return p.next.RegisterClient(ctx, md)
}
func (p *auditedProvider) Authorize(ctx context.Context, c *oauth.Client, params *oauth.AuthorizationParams) (string, error) {
	return p.next.Authorize(ctx, c, params)
}
func (p *auditedProvider) LoadAuthorizationCode(ctx context.Context, code string) (*oauth.AuthorizationCode, error) {
	return p.next.LoadAuthorizationCode(ctx, code)
}
func (p *auditedProvider) ExchangeAuthorizationCode(ctx context.Context, c *oauth.Client, code *oauth.AuthorizationCode) (*oauth.TokenResponse, error) {
	return p.next.ExchangeAuthorizationCode(ctx, c, code)
}
func (p *auditedProvider) LoadRefreshToken(ctx context.Context, token string) (*oauth.RefreshToken, error) {
	return p.next.LoadRefreshToken(ctx, token)
}
func (p *auditedProvider) ExchangeRefreshToken(ctx context.Context, c *oauth.Client, rt *oauth.RefreshToken, scopes []string) (*oauth.TokenResponse, error) {
	return p.next.ExchangeRefreshToken(ctx, c, rt, scopes)
}
func (p *auditedProvider) LoadAccessToken(ctx context.Context, token string) (*oauth.AccessToken, error) {
	return p.next.LoadAccessToken(ctx, token)
}
func (p *auditedProvider) RevokeToken(ctx context.Context, c *oauth.Client, token, hint string) error {
	return p.next.RevokeToken(ctx, c, token, hint)
}

// A custom Provider keeps the approval page and the console when it is an
// oauth.Approver; the console then needs a sign-in, here the host's own
// (a header that the host's proxy sets after its sign-in). Wrap logs the
// optional contracts it lacks: without oauth.Administrator the console
// lists no grants or clients, without oauth.KeySetProvider there is no
// JWK Set, and without oauth.DeviceProvider no device grant.
func Example_customProvider() {
	srv, issuer := listen()
	ctx := context.Background()
	def, err := provider.New(ctx, memory.New(), provider.Options{Issuer: issuer, Resource: issuer + mcpauth.DefaultMCPPath})
	if err != nil {
		log.Fatal(err)
	}
	defer def.Close()
	custom := &auditedProvider{next: def}
	h, err := mcpauth.Wrap(mcp.NewServer(&mcp.Implementation{Name: "notes", Version: "1.0.0"}, nil), mcpauth.Options{
		Issuer:   issuer,
		Provider: custom,
		Console: approval.ConsoleOptions{Identity: approval.IdentityFunc(func(r *http.Request) (string, error) {
			return r.Header.Get("X-Forwarded-User"), nil
		})},
	})
	if err != nil {
		log.Fatal(err)
	}
	defer h.Close()
	srv.Config.Handler = h
	srv.Start()
	defer srv.Close()

	for _, path := range []string{mcpauth.PathConsole, mcpauth.PathDevice} {
		req, _ := http.NewRequest("GET", issuer+path, nil)
		req.Header.Set("X-Forwarded-User", "alice")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			log.Fatal(err)
		}
		resp.Body.Close()
		fmt.Println(path, resp.StatusCode)
	}
	// h.Approve, like the console's Approve button, goes through the
	// custom Provider.
	token, err := accessToken(ctx, issuer, h, "alice")
	if err != nil {
		log.Fatal(err)
	}
	at, err := custom.LoadAccessToken(ctx, token) // as the MCP endpoint does
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("token for", at.Subject)
	// Output:
	// /console 200
	// /device 200
	// audit: alice approved Example client
	// token for alice
}

// listen returns a loopback test server, not yet started, and its URL:
// the Issuer must be known before Wrap builds the handler.
func listen() (*httptest.Server, string) {
	srv := httptest.NewUnstartedServer(nil)
	return srv, "http://" + srv.Listener.Addr().String()
}

// accessToken plays an MCP client and its user: the client registers
// itself and starts an authorization request with PKCE; the user's browser
// lands on the approval page; the owner approves the code it shows, as
// subject, with h.Approve; the page then sends the browser back to the
// client with an authorization code, which the client exchanges for tokens.
func accessToken(ctx context.Context, issuer string, h *mcpauth.Handler, subject string) (string, error) {
	cfg, err := register(ctx, issuer)
	if err != nil {
		return "", err
	}
	verifier := oauth2.GenerateVerifier()
	tab, err := openApprovalPage(cfg, verifier)
	if err != nil {
		return "", err
	}
	if _, err := h.Approve(ctx, tab.Query().Get("user_code"), subject); err != nil {
		return "", err
	}
	resp, _, err := browse("GET", tab.String(), nil)
	if err != nil {
		return "", err
	}
	back, err := resp.Location() // the client's redirect URI, with code, state and iss
	if err != nil {
		return "", err
	}
	tok, err := cfg.Exchange(ctx, back.Query().Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		return "", err
	}
	return tok.AccessToken, nil
}

// register registers a public client (RFC 7591) and returns its OAuth
// configuration.
func register(ctx context.Context, issuer string) (*oauth2.Config, error) {
	const redirectURI = "http://127.0.0.1:3000/callback"
	reg, err := oauthex.RegisterClient(ctx, issuer+mcpauth.PathRegister, &oauthex.ClientRegistrationMetadata{
		ClientName: "Example client", RedirectURIs: []string{redirectURI}, TokenEndpointAuthMethod: "none",
	}, nil)
	if err != nil {
		return nil, err
	}
	return &oauth2.Config{ClientID: reg.ClientID, RedirectURL: redirectURI, Endpoint: oauth2.Endpoint{
		AuthURL: issuer + mcpauth.PathAuthorize, TokenURL: issuer + mcpauth.PathToken, AuthStyle: oauth2.AuthStyleInParams,
	}}, nil
}

// openApprovalPage starts an authorization request and returns the
// approval page it leads to, whose URL carries the user code.
func openApprovalPage(cfg *oauth2.Config, verifier string) (*url.URL, error) {
	resp, _, err := browse("GET", cfg.AuthCodeURL("state", oauth2.S256ChallengeOption(verifier)), nil)
	if err != nil {
		return nil, err
	}
	return resp.Location()
}

// browse sends one request as the user's browser, which the examples let
// follow no redirect, and returns the response and its body.
func browse(method, u string, form url.Values) (*http.Response, string, error) {
	req, err := http.NewRequest(method, u, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, "", err
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	noRedirects := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noRedirects.Do(req)
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp, string(body), err
}
