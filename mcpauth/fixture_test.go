package mcpauth

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcp-oauth/oauth/storage/memory"
)

// fixture is a Wrap'd MCP server on a real loopback listener.
type fixture struct {
	t     *testing.T
	srv   *httptest.Server
	h     *Handler
	base  string
	store *memory.Store
}

func newMCPServer() *mcp.Server {
	s := mcp.NewServer(&mcp.Implementation{Name: "test", Version: "1"}, nil)
	mcp.AddTool(s, &mcp.Tool{Name: "echo"}, func(ctx context.Context, req *mcp.CallToolRequest, in struct{}) (*mcp.CallToolResult, any, error) {
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "ok"}}}, nil, nil
	})
	return s
}

func newFixture(t *testing.T, mutate func(*Options)) *fixture {
	t.Helper()
	return newFixtureOf(t, newMCPServer(), mutate)
}

// newFixtureOf is newFixture with the MCP server mcpSrv.
func newFixtureOf(t *testing.T, mcpSrv *mcp.Server, mutate func(*Options)) *fixture {
	t.Helper()
	srv := httptest.NewUnstartedServer(nil)
	base := "http://" + srv.Listener.Addr().String()
	store := memory.New()
	opts := Options{Issuer: base, Store: store, Scopes: []string{"mcp", "admin"}, ToolScopes: map[string][]string{"secret": {"admin"}}}
	if mutate != nil {
		mutate(&opts)
	}
	h, err := Wrap(mcpSrv, opts)
	if err != nil {
		t.Fatal(err)
	}
	srv.Config.Handler = h
	srv.Start()
	t.Cleanup(srv.Close)
	return &fixture{t: t, srv: srv, h: h, base: opts.Issuer, store: store}
}

type response struct {
	status int
	header http.Header
	body   []byte
	json   map[string]any
}

func (r *response) str(k string) string { s, _ := r.json[k].(string); return s }

func (f *fixture) do(req *http.Request) *response {
	f.t.Helper()
	resp, err := (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	r := &response{status: resp.StatusCode, header: resp.Header, body: b}
	if strings.Contains(resp.Header.Get("Content-Type"), "json") {
		_ = json.Unmarshal(b, &r.json)
	}
	return r
}

func (f *fixture) get(path string) *response {
	req, _ := http.NewRequest("GET", f.base+path, nil)
	return f.do(req)
}

// getURL fetches an absolute URL, such as a Location the server sent.
func (f *fixture) getURL(u *url.URL) *response {
	req, _ := http.NewRequest("GET", u.String(), nil)
	return f.do(req)
}

// post sends a form; basic, if non-nil, is [id, secret] for HTTP Basic.
func (f *fixture) post(path string, form url.Values, basic []string) *response {
	req, _ := http.NewRequest("POST", f.base+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if basic != nil {
		req.SetBasicAuth(url.QueryEscape(basic[0]), url.QueryEscape(basic[1]))
	}
	return f.do(req)
}

func (f *fixture) postJSON(path, body string, hdr map[string]string) *response {
	req, _ := http.NewRequest("POST", f.base+path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	return f.do(req)
}

type client struct {
	id, secret string
	redirect   string
}

func (f *fixture) register(md string) client {
	f.t.Helper()
	r := f.postJSON("/register", md, nil)
	if r.status != http.StatusCreated {
		f.t.Fatalf("register: %d %s", r.status, r.body)
	}
	var uris []string
	for _, u := range r.json["redirect_uris"].([]any) {
		uris = append(uris, u.(string))
	}
	return client{id: r.str("client_id"), secret: r.str("client_secret"), redirect: uris[0]}
}

func (f *fixture) publicClient() client {
	return f.register(`{"redirect_uris":["http://127.0.0.1:3000/cb"],"token_endpoint_auth_method":"none","client_name":"Test"}`)
}

const verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"

func challengeOf(v string) string {
	s := sha256.Sum256([]byte(v))
	return base64.RawURLEncoding.EncodeToString(s[:])
}

// authParams returns a valid authorization request for c.
func authParams(c client) url.Values {
	return url.Values{
		"response_type": {"code"}, "client_id": {c.id}, "redirect_uri": {c.redirect}, "state": {"xyz"},
		"code_challenge": {challengeOf(verifier)}, "code_challenge_method": {"S256"},
	}
}

var userCodeRE = regexp.MustCompile(`data-user-code="([A-Z]{4}-[A-Z]{4})"`)

// authorize runs an authorization request to the approval page, lets decide
// act on the user code, and returns the final redirect (to the client).
func (f *fixture) authorize(q url.Values, decide func(code string)) *url.URL {
	f.t.Helper()
	r := f.get("/authorize?" + q.Encode())
	if r.status != http.StatusFound {
		f.t.Fatalf("authorize: %d %s", r.status, r.body)
	}
	loc, _ := url.Parse(r.header.Get("Location"))
	page := f.getURL(loc)
	m := userCodeRE.FindSubmatch(page.body)
	if page.status != http.StatusOK || m == nil {
		f.t.Fatalf("device page: %d %s", page.status, page.body)
	}
	decide(string(m[1]))
	r = f.getURL(loc)
	if r.status != http.StatusSeeOther {
		f.t.Fatalf("device page after decision: %d %s", r.status, r.body)
	}
	u, _ := url.Parse(r.header.Get("Location"))
	return u
}

func (f *fixture) approve(subject string) func(string) {
	return func(code string) {
		if _, err := f.h.Approve(context.Background(), code, subject); err != nil {
			f.t.Fatalf("approve: %v", err)
		}
	}
}

// code obtains an authorization code for c, approved for alice.
func (f *fixture) code(c client) string {
	f.t.Helper()
	u := f.authorize(authParams(c), f.approve("alice"))
	code := u.Query().Get("code")
	if code == "" {
		f.t.Fatalf("no code in %s", u)
	}
	return code
}

func (f *fixture) exchange(c client, code string) *response {
	return f.post("/token", url.Values{"grant_type": {"authorization_code"}, "code": {code}, "code_verifier": {verifier},
		"redirect_uri": {c.redirect}, "client_id": {c.id}}, nil)
}

// tokens runs the whole flow for a new public client.
func (f *fixture) tokens() (client, *response) {
	f.t.Helper()
	c := f.publicClient()
	r := f.exchange(c, f.code(c))
	if r.status != http.StatusOK {
		f.t.Fatalf("token: %d %s", r.status, r.body)
	}
	return c, r
}

// mcpCall posts one JSON-RPC message to /mcp with the given bearer token.
func (f *fixture) mcpCall(token, body string) *response {
	req, _ := http.NewRequest("POST", f.base+"/mcp", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	return f.do(req)
}

const initialize = `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}`

// mcpSession initializes an MCP session at /mcp with token and returns a
// function that posts one JSON-RPC message in it.
func (f *fixture) mcpSession(token string) func(body string) *response {
	f.t.Helper()
	init := f.mcpCall(token, initialize)
	if init.status != 200 {
		f.t.Fatalf("initialize: %d %s", init.status, init.body)
	}
	sid := init.header.Get("Mcp-Session-Id")
	send := func(body string) *response {
		req, _ := http.NewRequest("POST", f.base+"/mcp", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Mcp-Session-Id", sid)
		req.Header.Set("Mcp-Protocol-Version", "2025-06-18")
		return f.do(req)
	}
	send(`{"jsonrpc":"2.0","method":"notifications/initialized"}`)
	return send
}
