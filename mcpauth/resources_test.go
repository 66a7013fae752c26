package mcpauth

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/mcp-oauth/oauth/approval"
	"github.com/mcp-oauth/oauth/provider"
	"github.com/mcp-oauth/oauth/storage/memory"
)

// newTwoResourceFixture serves notes at /notes/mcp (Wrap's server) and
// calendar at /calendar/mcp behind one authorization server.
func newTwoResourceFixture(t *testing.T) *fixture {
	t.Helper()
	calendar := mcp.NewServer(&mcp.Implementation{Name: "calendar", Version: "1"}, nil)
	mcp.AddTool(calendar, &mcp.Tool{Name: "events"}, func(ctx context.Context, req *mcp.CallToolRequest, in struct{}) (*mcp.CallToolResult, any, error) {
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "none"}}}, nil, nil
	})
	return newFixture(t, func(o *Options) {
		o.MCPPath = "/notes/mcp"
		o.Scopes, o.ToolScopes = []string{"notes"}, nil
		o.ResourceName = "Notes"
		o.Resources = []Resource{{Server: calendar, Path: "/calendar/mcp", Scopes: []string{"calendar", "calendar.write"},
			ToolScopes: map[string][]string{"events": {"calendar"}}, ResourceName: "Calendar"}}
	})
}

func (f *fixture) mcpCallAt(path, token, body string) *response {
	req, _ := http.NewRequest("POST", f.base+path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	req.Header.Set("Authorization", "Bearer "+token)
	return f.do(req)
}

// TestSeveralResources: each resource has its own metadata and scopes; a
// token is bound to the resource its authorization asked for, and the
// other resource refuses it with 401 invalid_token.
func TestSeveralResources(t *testing.T) {
	f := newTwoResourceFixture(t)
	notes, calendar := f.base+"/notes/mcp", f.base+"/calendar/mcp"
	if got := f.h.Resources(); len(got) != 2 || got[0] != notes || got[1] != calendar || f.h.Resource() != notes {
		t.Fatalf("Resources() = %v", got)
	}
	for _, tc := range []struct{ path, resource, name, scopes string }{
		{"/.well-known/oauth-protected-resource/notes/mcp", notes, "Notes", "notes"},
		{"/.well-known/oauth-protected-resource", notes, "Notes", "notes"},
		{"/.well-known/oauth-protected-resource/calendar/mcp", calendar, "Calendar", "calendar calendar.write"},
	} {
		r := f.get(tc.path)
		var scopes []string
		for _, s := range r.json["scopes_supported"].([]any) {
			scopes = append(scopes, s.(string))
		}
		if r.status != 200 || r.str("resource") != tc.resource || r.str("resource_name") != tc.name || strings.Join(scopes, " ") != tc.scopes {
			t.Errorf("%s: %d %s", tc.path, r.status, r.body)
		}
	}
	meta := f.get("/.well-known/oauth-authorization-server")
	if got := meta.json["scopes_supported"].([]any); len(got) != 3 {
		t.Errorf("scopes_supported = %v, want the scopes of both resources", got)
	}

	tokenFor := func(resource, scope string) *response {
		t.Helper()
		c := f.publicClient()
		q := authParams(c)
		q.Set("resource", resource)
		if scope != "" {
			q.Set("scope", scope)
		}
		u := f.authorize(q, f.approve("alice"))
		r := f.post("/token", url.Values{"grant_type": {"authorization_code"}, "code": {u.Query().Get("code")}, "code_verifier": {verifier},
			"redirect_uri": {c.redirect}, "client_id": {c.id}, "resource": {resource}}, nil)
		if r.status != 200 {
			t.Fatalf("token for %s: %d %s", resource, r.status, r.body)
		}
		return r
	}
	// Scopes are the requested resource's: a notes scope asked of the
	// calendar is ignored, and the calendar's scopes granted.
	cal := tokenFor(calendar, "notes calendar")
	if cal.str("scope") != "calendar" {
		t.Errorf("calendar token scope %q", cal.str("scope"))
	}
	if r := f.mcpCallAt("/calendar/mcp", cal.str("access_token"), initialize); r.status != 200 {
		t.Fatalf("calendar token at the calendar: %d %s", r.status, r.body)
	}
	r := f.mcpCallAt("/notes/mcp", cal.str("access_token"), initialize)
	if r.status != 401 || !strings.Contains(r.header.Get("WWW-Authenticate"), `error="invalid_token"`) ||
		!strings.Contains(r.header.Get("WWW-Authenticate"), "/.well-known/oauth-protected-resource/notes/mcp") {
		t.Fatalf("calendar token at notes: %d %q", r.status, r.header.Get("WWW-Authenticate"))
	}
	nt := tokenFor(notes, "")
	if nt.str("scope") != "notes" {
		t.Errorf("notes token scope %q", nt.str("scope"))
	}
	if r := f.mcpCallAt("/calendar/mcp", nt.str("access_token"), initialize); r.status != 401 {
		t.Fatalf("notes token at the calendar: %d", r.status)
	}
	if r := f.mcpCallAt("/notes/mcp", nt.str("access_token"), initialize); r.status != 200 {
		t.Fatalf("notes token at notes: %d %s", r.status, r.body)
	}
	// The approval page says which resource a request is for, and
	// describes its scopes in the resource's own words.
	pc := f.publicClient()
	pq := authParams(pc)
	pq.Set("resource", calendar)
	loc, _ := url.Parse(f.get("/authorize?" + pq.Encode()).header.Get("Location"))
	page := string(f.getURL(loc).body)
	if !strings.Contains(page, `<dd data-resource><strong>Calendar</strong> `+calendar+`</dd>`) || !strings.Contains(page, "Use the tool events") {
		t.Errorf("the approval page does not name the calendar resource and its scopes: %s", page)
	}
	// An unknown resource is invalid_target, sent back to the client.
	c := f.publicClient()
	q := authParams(c)
	q.Set("resource", f.base+"/other/mcp")
	if r := f.get("/authorize?" + q.Encode()); r.status != http.StatusFound || !strings.Contains(r.header.Get("Location"), "error=invalid_target") {
		t.Fatalf("unknown resource: %d %s", r.status, r.header.Get("Location"))
	}
}

// TestResourcesValidated: Wrap refuses resources it cannot serve as asked.
func TestResourcesValidated(t *testing.T) {
	s := newMCPServer()
	for name, tc := range map[string]struct {
		res  []Resource
		want string
	}{
		"same path":       {[]Resource{{Server: s, Path: "/mcp"}}, "path of another resource"},
		"no path":         {[]Resource{{Server: s}}, "Resources[0].Path"},
		"bad path":        {[]Resource{{Server: s, Path: "/a/"}}, "Resources[0].Path"},
		"no server":       {[]Resource{{Path: "/b"}}, "Resources[0].Server"},
		"unknown tool sc": {[]Resource{{Server: s, Path: "/b", ToolScopes: map[string][]string{"t": {"x"}}}}, "Resources[0].ToolScopes"},
		"twice":           {[]Resource{{Server: s, Path: "/b"}, {Server: s, Path: "/b"}}, "path of another resource"},
		"the console":     {[]Resource{{Server: s, Path: "/console"}}, "a path of the authorization server"},
		"under /token":    {[]Resource{{Server: s, Path: "/token/mcp"}}, "a path of the authorization server"},
		"well-known":      {[]Resource{{Server: s, Path: "/.well-known/x"}}, "Resources[0].Path"},
	} {
		srv := httptest.NewUnstartedServer(nil)
		_, err := Wrap(s, Options{Issuer: "http://" + srv.Listener.Addr().String(), Store: memory.New(), Resources: tc.res})
		srv.Close()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: Wrap error %v, want one naming %q", name, err, tc.want)
		}
	}
}

// TestStepWarnings: Wrap warns when a setup step's data would be stored
// under unwrapped data keys (no KEK), and not when a KEK is configured.
func TestStepWarnings(t *testing.T) {
	step := http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})
	for _, tc := range []struct {
		name string
		kek  [][]byte
		want bool
	}{{"no KEK", nil, true}, {"KEK", [][]byte{[]byte("0123456789abcdef0123456789abcdef")}, false}} {
		var logs strings.Builder
		srv := httptest.NewUnstartedServer(nil)
		h, err := Wrap(newMCPServer(), Options{Issuer: "http://" + srv.Listener.Addr().String(), Store: memory.New(),
			ApprovalPage: approval.PageOptions{Step: step}, ProviderOptions: provider.Options{KeyEncryptionKeys: tc.kek},
			Logger: slog.New(slog.NewTextHandler(&logs, nil))})
		srv.Close()
		if err != nil {
			t.Fatal(err)
		}
		h.Close()
		if got := strings.Contains(logs.String(), "without ProviderOptions.KeyEncryptionKeys"); got != tc.want {
			t.Errorf("%s: warned %v, want %v: %s", tc.name, got, tc.want, logs.String())
		}
	}
}
