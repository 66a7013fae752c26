package mcpauth

import (
	"context"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/mcp-oauth/oauth/internal/jwtkeys"
	"github.com/mcp-oauth/oauth/internal/redirect"
	"github.com/mcp-oauth/oauth/provider"
)

func TestMetadata(t *testing.T) {
	f := newFixture(t, nil)
	for _, path := range []string{"/.well-known/oauth-authorization-server", "/.well-known/openid-configuration"} {
		r := f.get(path)
		if r.status != 200 {
			t.Fatalf("%s: %d", path, r.status)
		}
		if r.str("issuer") != f.base || r.str("authorization_endpoint") != f.base+"/authorize" ||
			r.str("token_endpoint") != f.base+"/token" || r.str("registration_endpoint") != f.base+"/register" ||
			r.str("revocation_endpoint") != f.base+"/revoke" || r.str("introspection_endpoint") != f.base+"/introspect" ||
			r.str("jwks_uri") != f.base+"/jwks.json" {
			t.Errorf("%s: endpoints wrong: %s", path, r.body)
		}
		if got := r.json["code_challenge_methods_supported"]; !sameList(got, "S256") {
			t.Errorf("code_challenge_methods_supported = %v, want [S256]", got)
		}
		if r.json["authorization_response_iss_parameter_supported"] != true {
			t.Error("authorization_response_iss_parameter_supported not true")
		}
		if !sameList(r.json["grant_types_supported"], "authorization_code", "refresh_token", "urn:ietf:params:oauth:grant-type:device_code") {
			t.Errorf("grant_types_supported = %v", r.json["grant_types_supported"])
		}
		if r.str("device_authorization_endpoint") != f.base+"/device_authorization" {
			t.Errorf("device_authorization_endpoint = %q", r.str("device_authorization_endpoint"))
		}
		if !sameList(r.json["response_types_supported"], "code") {
			t.Errorf("response_types_supported = %v", r.json["response_types_supported"])
		}
		if r.header.Get("Access-Control-Allow-Origin") != "*" {
			t.Errorf("%s: no CORS", path)
		}
	}
	for _, path := range []string{"/.well-known/oauth-protected-resource/mcp", "/.well-known/oauth-protected-resource"} {
		r := f.get(path)
		if r.status != 200 || r.str("resource") != f.base+"/mcp" || !sameList(r.json["authorization_servers"], f.base) ||
			!sameList(r.json["scopes_supported"], "mcp", "admin") {
			t.Errorf("%s: %d %s", path, r.status, r.body)
		}
	}
	req, _ := http.NewRequest("OPTIONS", f.base+"/token", nil)
	req.Header.Set("Origin", "http://localhost:6274")
	req.Header.Set("Access-Control-Request-Method", "POST")
	if r := f.do(req); r.status != 204 || r.header.Get("Access-Control-Allow-Origin") != "*" || !strings.Contains(r.header.Get("Access-Control-Allow-Headers"), "Authorization") {
		t.Errorf("preflight /token: %d %v", r.status, r.header)
	}
	if r := f.get("/authorize"); r.header.Get("Access-Control-Allow-Origin") != "" {
		t.Error("/authorize must not allow CORS")
	}
}

func sameList(v any, want ...string) bool {
	l, ok := v.([]any)
	if !ok || len(l) != len(want) {
		return false
	}
	for i := range l {
		if l[i] != want[i] {
			return false
		}
	}
	return true
}

func TestZeroOptionsAreSecure(t *testing.T) {
	srvURL := "http://127.0.0.1:1"
	h, err := Wrap(newMCPServer(), Options{Issuer: srvURL})
	if err != nil {
		t.Fatal(err)
	}
	m := h.AuthorizationServer().Metadata()
	if !slices.Equal(m.CodeChallengeMethodsSupported, []string{"S256"}) {
		t.Errorf("PKCE methods %v, want S256 only", m.CodeChallengeMethodsSupported)
	}
	if !slices.Equal(m.ResponseTypesSupported, []string{"code"}) {
		t.Errorf("response types %v: implicit must be off", m.ResponseTypesSupported)
	}
	for _, g := range m.GrantTypesSupported {
		if g == "password" || g == "implicit" || g == "client_credentials" {
			t.Errorf("grant type %q on by default", g)
		}
	}
	if !m.AuthorizationResponseIssParameterSupported {
		t.Error("iss parameter off by default")
	}
	o := h.DefaultProvider().Options()
	if o.AccessTokenTTL != time.Hour || o.RefreshTokenTTL != 30*24*time.Hour || o.CodeTTL != 10*time.Minute || o.SigningAlgorithm != "ES256" {
		t.Errorf("default lifetimes/alg: %+v", o)
	}
	// Every registered URI is matchable, not only the first (Cursor registers three).
	cursor := []string{"cursor://anysphere.cursor-mcp/oauth/callback", "https://cursor.com/cb", "http://127.0.0.1:3000/cb"}
	for _, req := range append(slices.Clone(cursor), "http://127.0.0.1:4444/cb") {
		if !redirect.Match(cursor, req) {
			t.Errorf("%q does not match %v", req, cursor)
		}
	}
	if redirect.Match(cursor, "https://cursor.com/cb2") {
		t.Error("unregistered URI matched")
	}
	// Redirect matching is exact (no prefix or suffix match) except the port of loopback URIs.
	for _, tc := range []struct {
		reg, req string
		ok       bool
	}{
		{"https://app.example/cb", "https://app.example/cb", true},
		{"https://app.example/cb", "https://app.example/cb/", false},
		{"https://app.example/cb", "https://app.example/cb?x=1", false},
		{"https://app.example/cb", "https://app.example.evil.com/cb", false},
		{"https://app.example/cb", "https://APP.example/cb", false},
		{"https://app.example:443/cb", "https://app.example:8443/cb", false},
		{"http://127.0.0.1:3000/cb", "http://127.0.0.1:51234/cb", true},
		{"http://127.0.0.1/cb", "http://127.0.0.1:51234/cb", true},
		{"http://localhost:3000/cb", "http://localhost:9/cb", true},
		{"http://[::1]:3000/cb", "http://[::1]:9/cb", true},
		{"http://127.0.0.1:3000/cb", "http://localhost:3000/cb", false},
		{"http://127.0.0.1:3000/cb", "http://127.0.0.1:3000/other", false},
		{"http://127.0.0.1:3000/cb", "http://user@127.0.0.1:3000/cb", false},
		{"http://127.0.0.1:3000/cb", "http://127.0.0.1:5555/cb#x", false},
		{"cursor://anysphere.cursor-mcp/oauth/callback", "cursor://anysphere.cursor-mcp/oauth/callback", true},
	} {
		if got := redirect.Match([]string{tc.reg}, tc.req); got != tc.ok {
			t.Errorf("match(%q, %q) = %v, want %v", tc.reg, tc.req, got, tc.ok)
		}
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	for name, o := range map[string]Options{
		"no issuer":            {},
		"http non-loopback":    {Issuer: "http://notes.example.com"},
		"issuer with query":    {Issuer: "https://notes.example.com?x=1"},
		"issuer with fragment": {Issuer: "https://notes.example.com#f"},
		"ftp":                  {Issuer: "ftp://notes.example.com"},
		"bad mcp path":         {Issuer: "https://notes.example.com", MCPPath: "mcp"},
		"tool scope unknown":   {Issuer: "https://notes.example.com", ToolScopes: map[string][]string{"t": {"nope"}}},
		"bad alg":              {Issuer: "https://notes.example.com", ProviderOptions: provider.Options{SigningAlgorithm: "HS256"}},
		"bad scope token":      {Issuer: "https://notes.example.com", Scopes: []string{"a b"}},
		"mcp path slash":       {Issuer: "https://notes.example.com", MCPPath: "/"},
		"mcp path trailing":    {Issuer: "https://notes.example.com/app", MCPPath: "/mcp/"},
		"mcp path dots":        {Issuer: "https://notes.example.com", MCPPath: "/../mcp"},
		"mcp path wildcard":    {Issuer: "https://notes.example.com", MCPPath: "/{x}"},
		"issuer path escape":   {Issuer: "https://notes.example.com/a%20b"},
		"issuer path wildcard": {Issuer: "https://notes.example.com/{x}"},
		"issuer double slash":  {Issuer: "https://notes.example.com//app"},
	} {
		if _, err := Wrap(newMCPServer(), o); err == nil {
			t.Errorf("%s: New succeeded", name)
		}
	}
}

func TestBearerChallenges(t *testing.T) {
	f := newFixture(t, nil)
	prm := `resource_metadata="` + f.base + `/.well-known/oauth-protected-resource/mcp"`

	r := f.mcpCall("", initialize)
	wa := r.header.Get("WWW-Authenticate")
	if r.status != 401 || !strings.HasPrefix(wa, "Bearer ") || !strings.Contains(wa, prm) || !strings.Contains(wa, `scope="mcp admin"`) || strings.Contains(wa, "error=") {
		t.Fatalf("no token: %d %q", r.status, wa)
	}
	if r.header.Get("Access-Control-Expose-Headers") == "" || !strings.Contains(r.header.Get("Access-Control-Expose-Headers"), "WWW-Authenticate") {
		t.Error("WWW-Authenticate not exposed to browsers")
	}

	_, tok := f.tokens()
	at := tok.str("access_token")
	if r := f.mcpCall(at, initialize); r.status != 200 {
		t.Fatalf("valid token: %d %s", r.status, r.body)
	}

	// A token minted for another resource (audience) of the same issuer.
	keys, _ := f.store.ListKeys(context.Background())
	k, _ := jwtkeys.Parse(keys[0])
	now := time.Now()
	sign := func(mut func(*jwtkeys.Claims)) string {
		c := &jwtkeys.Claims{RegisteredClaims: jwt.RegisteredClaims{Issuer: f.base, Subject: "alice", Audience: jwt.ClaimStrings{f.base + "/mcp"},
			ExpiresAt: jwt.NewNumericDate(now.Add(time.Hour)), IssuedAt: jwt.NewNumericDate(now), ID: "x"}, ClientID: "c", GrantID: "g"}
		mut(c)
		s, err := k.Sign(c)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	for name, bad := range map[string]string{
		"garbage":           "not-a-token",
		"wrong audience":    sign(func(c *jwtkeys.Claims) { c.Audience = jwt.ClaimStrings{f.base + "/other"} }),
		"expired":           sign(func(c *jwtkeys.Claims) { c.ExpiresAt = jwt.NewNumericDate(now.Add(-time.Hour)) }),
		"unknown grant":     sign(func(c *jwtkeys.Claims) {}),
		"tampered":          at[:len(at)-3] + "AAA",
		"refresh as bearer": tok.str("refresh_token"),
	} {
		r := f.mcpCall(bad, initialize)
		wa := r.header.Get("WWW-Authenticate")
		if r.status != 401 || !strings.Contains(wa, `error="invalid_token"`) || !strings.Contains(wa, prm) {
			t.Errorf("%s: %d %q", name, r.status, wa)
		}
	}
	for name, hdr := range map[string][]string{
		"empty bearer": {"Bearer "},
		"two tokens":   {"Bearer a b"},
		"two headers":  {"Bearer a", "Bearer b"},
	} {
		req, _ := http.NewRequest("POST", f.base+"/mcp", strings.NewReader(initialize))
		for _, h := range hdr {
			req.Header.Add("Authorization", h)
		}
		if r := f.do(req); r.status != 400 || !strings.Contains(r.header.Get("WWW-Authenticate"), `error="invalid_request"`) {
			t.Errorf("%s: %d %q", name, r.status, r.header.Get("WWW-Authenticate"))
		}
	}
	// Basic credentials are not bearer credentials: a plain challenge.
	req, _ := http.NewRequest("POST", f.base+"/mcp", strings.NewReader(initialize))
	req.SetBasicAuth("a", "b")
	if r := f.do(req); r.status != 401 || strings.Contains(r.header.Get("WWW-Authenticate"), "error=") {
		t.Errorf("basic: %d %q", r.status, r.header.Get("WWW-Authenticate"))
	}
}

func TestInsufficientScope(t *testing.T) {
	f := newFixture(t, nil)
	c, tok := f.tokens()
	// Narrow to "mcp" through a refresh (RFC 6749 §6).
	r := f.post("/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.str("refresh_token")}, "client_id": {c.id}, "scope": {"mcp"}}, nil)
	if r.status != 200 || r.str("scope") != "mcp" {
		t.Fatalf("narrowing refresh: %d %s", r.status, r.body)
	}
	narrow := r.str("access_token")
	call := `{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"secret","arguments":{}}}`
	r = f.mcpCall(narrow, call)
	wa := r.header.Get("WWW-Authenticate")
	if r.status != 403 || !strings.Contains(wa, `error="insufficient_scope"`) || !strings.Contains(wa, `scope="admin"`) || !strings.Contains(wa, "resource_metadata=") {
		t.Fatalf("narrow token calling secret: %d %q", r.status, wa)
	}
	// Other tools need no extra scope; the wide token may call secret.
	if r := f.mcpCall(narrow, `{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"echo"}}`); r.status == 403 {
		t.Errorf("echo refused with narrow token")
	}
	if r := f.mcpCall(tok.str("access_token"), call); r.status == 403 {
		t.Errorf("secret refused with full token: %q", r.header.Get("WWW-Authenticate"))
	}
	// Ambiguous bodies cannot smuggle a call past the check: Go's
	// encoding/json folds case and takes the last duplicate, go-sdk does not.
	for name, body := range map[string]string{
		"NAME variant":     `{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"secret","NAME":"echo"}}`,
		"Name first":       `{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"Name":"echo","name":"secret"}}`,
		"duplicate name":   `{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"echo","name":"secret"}}`,
		"Method variant":   `{"jsonrpc":"2.0","id":3,"method":"tools/call","Method":"ping","params":{"name":"secret"}}`,
		"duplicate method": `{"jsonrpc":"2.0","id":3,"method":"ping","method":"tools/call","params":{"name":"secret"}}`,
		"PARAMS variant":   `{"jsonrpc":"2.0","id":3,"method":"tools/call","PARAMS":{"name":"echo"},"params":{"name":"secret"}}`,
		"not json":         `{"jsonrpc":"2.0","method":"tools/call","params":{"name":"secret"}`,
		"non-string name":  `{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":["secret"]}}`,
	} {
		r := f.mcpCall(narrow, body)
		if r.status != 400 && r.status != 403 {
			t.Errorf("%s: %d, want 400 or 403", name, r.status)
		}
	}
	batch := `[{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"echo"}},{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"secret"}}]`
	if r := f.mcpCall(narrow, batch); r.status != 403 {
		t.Errorf("batch hiding secret: %d, want 403", r.status)
	}
	// Widening is refused.
	r = f.post("/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {r.str("refresh_token")}, "client_id": {c.id}, "scope": {"mcp root"}}, nil)
	if r.status != 400 {
		t.Fatalf("widening: %d", r.status)
	}
}

func TestRequiredScopes(t *testing.T) {
	f := newFixture(t, func(o *Options) { o.RequiredScopes = []string{"admin"} })
	c, tok := f.tokens()
	if r := f.mcpCall(tok.str("access_token"), initialize); r.status != 200 {
		t.Fatalf("full token: %d", r.status)
	}
	r := f.post("/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.str("refresh_token")}, "client_id": {c.id}, "scope": {"mcp"}}, nil)
	if r := f.mcpCall(r.str("access_token"), initialize); r.status != 403 || !strings.Contains(r.header.Get("WWW-Authenticate"), `scope="admin"`) {
		t.Fatalf("token without required scope: %d %q", r.status, r.header.Get("WWW-Authenticate"))
	}
}

func TestHostGuard(t *testing.T) {
	f := newFixture(t, func(o *Options) { o.AllowedHosts = []string{"alias.example"} })
	try := func(host, fwd string) int {
		req, _ := http.NewRequest("GET", f.base+"/.well-known/oauth-authorization-server", nil)
		req.Host = host
		if fwd != "" {
			req.Header.Set("X-Forwarded-Host", fwd)
		}
		return f.do(req).status
	}
	u, _ := url.Parse(f.base)
	for _, tc := range []struct {
		host, fwd string
		want      int
	}{
		{u.Host, "", 200},
		{"localhost:1234", "", 200},
		{"alias.example", "", 200},
		{"evil.example", "", 403},
		{u.Host, "evil.example", 200}, // X-Forwarded-Host ignored unless trusted
	} {
		if got := try(tc.host, tc.fwd); got != tc.want {
			t.Errorf("Host %q, X-Forwarded-Host %q: %d, want %d", tc.host, tc.fwd, got, tc.want)
		}
	}
	g := newFixture(t, func(o *Options) { o.TrustProxyHeaders = true })
	req, _ := http.NewRequest("GET", g.base+"/.well-known/oauth-authorization-server", nil)
	req.Header.Set("X-Forwarded-Host", "evil.example")
	if r := g.do(req); r.status != 403 {
		t.Errorf("trusted X-Forwarded-Host evil.example: %d, want 403", r.status)
	}
}

func TestJWKSAndRotation(t *testing.T) {
	f := newFixture(t, nil)
	_, tok := f.tokens()
	old := tok.str("access_token")
	if err := f.h.DefaultProvider().RotateKeys(context.Background()); err != nil {
		t.Fatal(err)
	}
	r := f.get("/jwks.json")
	keys, _ := r.json["keys"].([]any)
	if r.status != 200 || len(keys) != 2 {
		t.Fatalf("jwks after rotation: %d %s", r.status, r.body)
	}
	for _, k := range keys {
		if _, ok := k.(map[string]any)["d"]; ok {
			t.Fatal("JWKS contains a private key")
		}
	}
	if r := f.mcpCall(old, initialize); r.status != 200 {
		t.Fatalf("token signed by the retired key: %d", r.status)
	}
	_, tok2 := f.tokens()
	if r := f.mcpCall(tok2.str("access_token"), initialize); r.status != 200 {
		t.Fatalf("token signed by the new key: %d", r.status)
	}
}

// TestSessionBoundToUser: go-sdk binds a session to the TokenInfo.UserID
// that created it; our middleware must feed it so that another user's token
// cannot ride an existing session.
func TestSessionBoundToUser(t *testing.T) {
	f := newFixture(t, nil)
	_, alice := f.tokens()
	c := f.publicClient()
	u := f.authorize(authParams(c), f.approve("bob"))
	bob := f.exchange(c, u.Query().Get("code"))
	r := f.mcpCall(alice.str("access_token"), initialize)
	sid := r.header.Get("Mcp-Session-Id")
	if r.status != 200 || sid == "" {
		t.Fatalf("initialize: %d, session %q", r.status, sid)
	}
	call := func(tok string) int {
		req, _ := http.NewRequest("POST", f.base+"/mcp", strings.NewReader(`{"jsonrpc":"2.0","id":2,"method":"tools/list"}`))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "application/json, text/event-stream")
		req.Header.Set("Mcp-Session-Id", sid)
		req.Header.Set("Mcp-Protocol-Version", "2025-06-18")
		req.Header.Set("Authorization", "Bearer "+tok)
		return f.do(req).status
	}
	if st := call(alice.str("access_token")); st != 200 {
		t.Fatalf("alice on her session: %d", st)
	}
	if st := call(bob.str("access_token")); st == 200 {
		t.Fatal("bob's token was accepted on alice's session")
	}
}

// TestIssuerWithPath: an issuer such as https://host/app puts every endpoint
// under /app and the metadata at the RFC 8414 and RFC 9728 path-inserted
// well-known URIs.
func TestIssuerWithPath(t *testing.T) {
	f := newFixture(t, func(o *Options) { o.Issuer += "/app" })
	origin := strings.TrimSuffix(f.base, "/app")
	get := func(u string) *response {
		req, _ := http.NewRequest("GET", u, nil)
		return f.do(req)
	}
	r := get(origin + "/.well-known/oauth-authorization-server/app")
	if r.status != 200 || r.str("issuer") != f.base || r.str("token_endpoint") != f.base+"/token" {
		t.Fatalf("AS metadata: %d %s", r.status, r.body)
	}
	r = f.mcpCall("", initialize)
	wantPRM := origin + "/.well-known/oauth-protected-resource/app/mcp"
	if r.status != 401 || !strings.Contains(r.header.Get("WWW-Authenticate"), `resource_metadata="`+wantPRM+`"`) {
		t.Fatalf("challenge: %d %q", r.status, r.header.Get("WWW-Authenticate"))
	}
	if r := get(wantPRM); r.status != 200 || r.str("resource") != f.base+"/mcp" || !sameList(r.json["authorization_servers"], f.base) {
		t.Fatalf("PRM: %d %s", r.status, r.body)
	}
	if r := get(origin + "/.well-known/oauth-protected-resource"); r.status != 404 {
		t.Errorf("root PRM served for an issuer with a path: %d", r.status)
	}
	_, tok := f.tokens()
	if r := f.mcpCall(tok.str("access_token"), initialize); r.status != 200 {
		t.Fatalf("MCP at /app/mcp: %d", r.status)
	}
}

func TestIsLoopbackAddr(t *testing.T) {
	for _, tc := range []struct {
		addr net.Addr
		want bool
	}{
		{&net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 80}, true},
		{&net.TCPAddr{IP: net.IPv6loopback, Port: 80}, true},
		{&net.TCPAddr{IP: net.IPv4(10, 0, 0, 1), Port: 80}, false},
		{&net.TCPAddr{IP: net.IPv4(0, 0, 0, 0), Port: 80}, false},
		{&net.UDPAddr{IP: net.IPv4(127, 0, 0, 2), Port: 80}, true}, // through its string form
		{&net.UDPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 80}, false},
		{&net.UnixAddr{Name: "/tmp/sock", Net: "unix"}, false},
	} {
		if got := isLoopbackAddr(tc.addr); got != tc.want {
			t.Errorf("isLoopbackAddr(%v) = %v, want %v", tc.addr, got, tc.want)
		}
	}
}
