package mcpauth

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/auth"
	"github.com/modelcontextprotocol/go-sdk/mcp"
)

// docHost serves client metadata documents over TLS on loopback; the
// returned mutate option lets a fixture fetch from it.
type docHost struct {
	srv  *httptest.Server
	mu   sync.Mutex
	docs map[string]string // path → JSON with %s for the document's own URL
}

func newDocHost(t *testing.T) *docHost {
	d := &docHost{docs: map[string]string{}}
	d.srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		d.mu.Lock()
		doc, ok := d.docs[r.URL.Path]
		d.mu.Unlock()
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "max-age=300")
		fmt.Fprintf(w, doc, d.srv.URL+r.URL.Path)
	}))
	t.Cleanup(d.srv.Close)
	return d
}

func (d *docHost) add(path, doc string) string {
	d.mu.Lock()
	d.docs[path] = doc
	d.mu.Unlock()
	return d.srv.URL + path
}

func (d *docHost) options(o *Options) {
	o.ClientIDMetadataDocuments = CIMDOptions{AllowPrivateAddresses: true,
		RootCAs: d.srv.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs}
}

func TestCIMDClients(t *testing.T) {
	docs := newDocHost(t)
	f := newFixture(t, docs.options)
	console := signedIn(t, f)
	if r := f.get("/.well-known/oauth-authorization-server"); r.json["client_id_metadata_document_supported"] != true {
		t.Fatalf("metadata does not advertise CIMD: %s", r.body)
	}
	for _, tc := range []struct {
		name, path, doc string
		redirect        string // requested redirect_uri
		loopbackWarning bool
	}{
		{"ChatGPT: prefers private_key_jwt, offers none", "/oauth/abc/client.json",
			`{"client_id":"%s","client_name":"ChatGPT","client_uri":"https://chatgpt.com/","redirect_uris":["https://chatgpt.com/connector_platform_oauth_redirect"],
			  "token_endpoint_auth_method":"private_key_jwt","token_endpoint_auth_methods_supported":["none","private_key_jwt"],
			  "grant_types":["authorization_code","refresh_token"],"response_types":["code"],"token_endpoint_auth_signing_alg":"RS256","jwks_uri":"https://chatgpt.com/oauth/jwks.json"}`,
			"https://chatgpt.com/connector_platform_oauth_redirect", false},
		{"Claude Code: port-less loopback redirect on any port", "/claude-code/client.json",
			`{"client_id":"%s","client_name":"Claude Code","redirect_uris":["http://localhost/callback","http://127.0.0.1/callback"],
			  "grant_types":["authorization_code","refresh_token","urn:ietf:params:oauth:grant-type:jwt-bearer"],"token_endpoint_auth_method":"none"}`,
			"http://localhost:54123/callback", true},
		{"VS Code: exact trailing slash, fixed or random port", "/oauth/client-metadata.json",
			`{"client_id":"%s","client_name":"Visual Studio Code","redirect_uris":["http://127.0.0.1:33418/","https://vscode.dev/redirect"],"token_endpoint_auth_method":"none"}`,
			"http://127.0.0.1:51000/", true},
		{"VS Code through vscode.dev: an https redirect with a loopback one listed does not warn", "/oauth/client-metadata.json",
			`{"client_id":"%s","client_name":"Visual Studio Code","redirect_uris":["http://127.0.0.1:33418/","https://vscode.dev/redirect"],"token_endpoint_auth_method":"none"}`,
			"https://vscode.dev/redirect", false},
		{"evasion: an unused https URI and an upper-case LOCALHOST still warn", "/evasive.json",
			`{"client_id":"%s","client_name":"Evasive","redirect_uris":["https://never.example/cb","http://LOCALHOST/cb"],"token_endpoint_auth_method":"none"}`,
			"http://LOCALHOST:4242/cb", true},
		{"app scheme warns", "/app.json",
			`{"client_id":"%s","client_name":"App","redirect_uris":["myapp://callback"],"token_endpoint_auth_method":"none"}`,
			"myapp://callback", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id := docs.add(tc.path, tc.doc)
			c := client{id: id, redirect: tc.redirect}
			r := f.get("/authorize?" + authParams(c).Encode())
			loc, _ := url.Parse(r.header.Get("Location"))
			if r.status != http.StatusFound || !strings.Contains(loc.Path, "/device") {
				t.Fatalf("authorize: %d %s", r.status, r.body)
			}
			page := f.getURL(loc)
			host := strings.TrimPrefix(docs.srv.URL, "https://")
			if !strings.Contains(string(page.body), "data-document-host><strong>"+host) {
				t.Errorf("approval page does not show the document host %s", host)
			}
			if got := strings.Contains(string(page.body), "data-loopback-warning"); got != tc.loopbackWarning {
				t.Errorf("loopback warning shown = %v, want %v", got, tc.loopbackWarning)
			}
			// The owner deciding from the console sees the same.
			st, body, _ := console.get("/console/approve?user_code=" + url.QueryEscape(loc.Query().Get("user_code")))
			if st != 200 || !strings.Contains(body, "data-document-host><strong>"+host) {
				t.Errorf("console confirmation: %d, document host %s not shown", st, host)
			}
			if got := strings.Contains(body, "data-loopback-warning"); got != tc.loopbackWarning {
				t.Errorf("console: loopback warning shown = %v, want %v", got, tc.loopbackWarning)
			}
			u := f.authorize(authParams(c), f.approve("alice"))
			code := u.Query().Get("code")
			if code == "" || !strings.HasPrefix(u.String(), strings.TrimSuffix(tc.redirect, "/")) {
				t.Fatalf("redirect %s", u)
			}
			tok := f.exchange(c, code)
			if tok.status != 200 {
				t.Fatalf("token: %d %s", tok.status, tok.body)
			}
			if r := f.mcpCall(tok.str("access_token"), initialize); r.status != 200 {
				t.Fatalf("mcp: %d", r.status)
			}
			rt := f.post("/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.str("refresh_token")}, "client_id": {id}}, nil)
			if rt.status != 200 {
				t.Fatalf("refresh: %d %s", rt.status, rt.body)
			}
		})
	}
	// VS Code's registered http://127.0.0.1:33418/ does not match without the slash.
	vs := client{id: docs.srv.URL + "/oauth/client-metadata.json", redirect: "http://127.0.0.1:33418"}
	if r := f.get("/authorize?" + authParams(vs).Encode()); r.status != 400 {
		t.Errorf("redirect without the registered trailing slash: %d", r.status)
	}
}

func TestCIMDFailures(t *testing.T) {
	docs := newDocHost(t)
	f := newFixture(t, docs.options)
	missing := client{id: docs.srv.URL + "/nope.json", redirect: "http://127.0.0.1:3000/cb"}
	if r := f.get("/authorize?" + authParams(missing).Encode()); r.status != 400 || r.header.Get("Location") != "" {
		t.Errorf("authorize with an unfetchable document: %d %q", r.status, r.header.Get("Location"))
	}
	r := f.post("/token", url.Values{"grant_type": {"authorization_code"}, "code": {"mcp_code_x"}, "code_verifier": {verifier}, "client_id": {missing.id}}, nil)
	if r.status != 401 || r.str("error") != "invalid_client" || strings.Contains(r.str("error_description"), "127.0.0.1") {
		t.Errorf("token with an unfetchable document: %d %s", r.status, r.body)
	}
	// A document that lists only a method we do not support.
	id := docs.add("/pkjwt.json", `{"client_id":"%s","client_name":"X","redirect_uris":["https://x.example/cb"],"token_endpoint_auth_method":"private_key_jwt"}`)
	if r := f.get("/authorize?" + authParams(client{id: id, redirect: "https://x.example/cb"}).Encode()); r.status != 400 {
		t.Errorf("private_key_jwt-only document: %d", r.status)
	}
	// Disabled: refused and not advertised.
	g := newFixture(t, func(o *Options) { docs.options(o); o.ClientIDMetadataDocuments.Disable = true })
	if r := g.get("/.well-known/oauth-authorization-server"); r.json["client_id_metadata_document_supported"] == true {
		t.Error("CIMD disabled but advertised")
	}
	ok := docs.add("/ok.json", `{"client_id":"%s","client_name":"X","redirect_uris":["http://127.0.0.1:3000/cb"]}`)
	if r := g.get("/authorize?" + authParams(client{id: ok, redirect: "http://127.0.0.1:3000/cb"}).Encode()); r.status != 400 {
		t.Errorf("CIMD disabled: authorize %d", r.status)
	}
	// Host policy.
	h := newFixture(t, func(o *Options) { docs.options(o); o.ClientIDMetadataDocuments.AllowHosts = []string{"claude.ai"} })
	if r := h.get("/authorize?" + authParams(client{id: ok, redirect: "http://127.0.0.1:3000/cb"}).Encode()); r.status != 400 {
		t.Errorf("host not in AllowHosts: authorize %d", r.status)
	}
}

// TestCIMDGoSDKClient: go-sdk's own OAuth client in Client ID Metadata
// Document mode completes the flow.
func TestCIMDGoSDKClient(t *testing.T) {
	docs := newDocHost(t)
	f := newFixture(t, docs.options)
	id := docs.add("/go-sdk/client.json", `{"client_id":"%s","client_name":"go-sdk","redirect_uris":["http://127.0.0.1:49152/callback"],"token_endpoint_auth_method":"none"}`)
	ctx := context.Background()
	oh, err := auth.NewAuthorizationCodeHandler(&auth.AuthorizationCodeHandlerConfig{
		ClientIDMetadataDocumentConfig: &auth.ClientIDMetadataDocumentConfig{URL: id},
		RedirectURL:                    "http://127.0.0.1:49152/callback",
		AuthorizationCodeFetcher: func(ctx context.Context, args *auth.AuthorizationArgs) (*auth.AuthorizationResult, error) {
			u, _ := url.Parse(args.URL)
			if u.Query().Get("client_id") != id {
				return nil, fmt.Errorf("client_id %q, want the document URL", u.Query().Get("client_id"))
			}
			back := f.authorize(u.Query(), f.approve("carol"))
			return &auth.AuthorizationResult{Code: back.Query().Get("code"), State: back.Query().Get("state"), Iss: back.Query().Get("iss")}, nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "cimd", Version: "1"}, nil).
		Connect(ctx, &mcp.StreamableClientTransport{Endpoint: f.base + "/mcp", OAuthHandler: oh}, nil)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer cs.Close()
	if _, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "echo"}); err != nil {
		t.Fatal(err)
	}
	grants, _ := f.h.DefaultProvider().ListGrants(ctx)
	if len(grants) != 1 || grants[0].ClientID != id || grants[0].Subject != "carol" {
		t.Fatalf("grants %+v", grants)
	}
}
