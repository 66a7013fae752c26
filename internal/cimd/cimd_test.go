package cimd

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	oauth "github.com/mcp-oauth/oauth"
)

func TestPublicAddr(t *testing.T) {
	for _, tc := range []struct {
		addr   string
		public bool
	}{
		{"8.8.8.8", true}, {"1.1.1.1", true}, {"2606:4700:4700::1111", true}, {"::ffff:8.8.8.8", true},
		{"127.0.0.1", false}, {"127.255.255.254", false}, {"::1", false},
		{"10.0.0.1", false}, {"172.16.0.1", false}, {"172.31.255.255", false}, {"192.168.1.1", false},
		{"169.254.169.254", false}, {"fe80::1", false}, {"fc00::1", false}, {"fd12:3456::1", false},
		{"100.64.0.1", false}, {"0.0.0.0", false}, {"0.1.2.3", false}, {"::", false},
		{"224.0.0.1", false}, {"ff02::1", false}, {"255.255.255.255", false}, {"240.0.0.1", false},
		{"192.0.2.1", false}, {"198.18.0.1", false}, {"2001:db8::1", false},
		{"::ffff:127.0.0.1", false}, {"::ffff:10.0.0.1", false}, // IPv4-mapped
		{"64:ff9b::a00:1", false},      // NAT64 of 10.0.0.1
		{"2002:a00:1::1", false},       // 6to4 of 10.0.0.1
		{"2001:0:4136:e378::1", false}, // Teredo
		{"fec0::1", false},             // site-local
	} {
		if got := PublicAddr(netip.MustParseAddr(tc.addr)); got != tc.public {
			t.Errorf("PublicAddr(%s) = %v, want %v", tc.addr, got, tc.public)
		}
	}
}

func TestCheckURL(t *testing.T) {
	for _, tc := range []struct {
		url string
		ok  bool
	}{
		{"https://chatgpt.com/oauth/abc/client.json", true},
		{"https://vscode.dev/oauth/client-metadata.json", true},
		{"https://example.com:8443/c?x=1", true},
		{"http://example.com/client.json", false},
		{"https://example.com", false},
		{"https://example.com/", false},
		{"https://example.com/a/../b", false},
		{"https://example.com/a/./b", false},
		{"https://example.com/a/%2e%2e/b", false},
		{"https://example.com/c#frag", false},
		{"https://user:pw@example.com/c", false},
		{"https:example.com/c", false},
		{"https:///c", false},
		{"https://ｌｏｃａｌｈｏｓｔ/c.json", false},       // fullwidth: converted to "localhost" when dialled
		{"https://cl\u0430ude.ai/c.json", false},  // Cyrillic a
		{"https://xn--clude-8ve.ai/c.json", true}, // its punycode form is fine
		{"https://Example.com/c.json", false},
	} {
		if _, err := CheckURL(tc.url); (err == nil) != tc.ok {
			t.Errorf("CheckURL(%q) err = %v, want ok=%v", tc.url, err, tc.ok)
		}
	}
}

// chatgptDoc is the shape of ChatGPT's published document: it prefers
// private_key_jwt and offers none.
const chatgptDoc = `{
  "client_id": "%s",
  "client_uri": "https://chatgpt.com/",
  "redirect_uris": ["https://chatgpt.com/connector_platform_oauth_redirect"],
  "token_endpoint_auth_method": "private_key_jwt",
  "token_endpoint_auth_methods_supported": ["none", "private_key_jwt"],
  "grant_types": ["authorization_code", "refresh_token"],
  "response_types": ["code"],
  "client_name": "ChatGPT",
  "token_endpoint_auth_signing_alg": "RS256",
  "jwks_uri": "https://chatgpt.com/oauth/jwks.json"
}`

func TestParse(t *testing.T) {
	const id = "https://client.example/meta.json"
	doc := func(extra string) string {
		return `{"client_id":"` + id + `","client_name":"App","redirect_uris":["http://localhost/callback"]` + extra + `}`
	}
	for _, tc := range []struct {
		name, body string
		ok         bool
	}{
		{"minimal", doc(""), true},
		{"claude code: port-less loopback, none", doc(`,"token_endpoint_auth_method":"none"`), true},
		{"claude: jwt-bearer grant listed", doc(`,"grant_types":["authorization_code","refresh_token","urn:ietf:params:oauth:grant-type:jwt-bearer"]`), true},
		{"chatgpt: prefers private_key_jwt, offers none", fmt.Sprintf(chatgptDoc, id), true},
		{"private_key_jwt only", doc(`,"token_endpoint_auth_method":"private_key_jwt","jwks_uri":"https://client.example/jwks"`), false},
		{"client_secret_post", doc(`,"token_endpoint_auth_method":"client_secret_post"`), false},
		{"client_secret_basic offered", doc(`,"token_endpoint_auth_method":"client_secret_basic","token_endpoint_auth_methods_supported":["none"]`), false},
		{"client_secret present", doc(`,"client_secret":"s3cret"`), false},
		{"client_secret null", doc(`,"client_secret":null`), false},
		{"client_secret_expires_at", doc(`,"client_secret_expires_at":0`), false},
		{"private jwk", doc(`,"jwks":{"keys":[{"kty":"EC","crv":"P-256","x":"a","y":"b","d":"secret"}]}`), false},
		{"symmetric jwk", doc(`,"jwks":{"keys":[{"kty":"oct","k":"secret"}]}`), false},
		{"public jwk", doc(`,"jwks":{"keys":[{"kty":"EC","crv":"P-256","x":"a","y":"b"}]}`), true},
		{"client_id mismatch", strings.Replace(doc(""), id, id+"x", 1), false},
		{"client_id trailing slash", strings.Replace(doc(""), id, id+"/", 1), false},
		{"no client_id", `{"client_name":"App","redirect_uris":["http://localhost/callback"]}`, false},
		{"no client_name", `{"client_id":"` + id + `","redirect_uris":["http://localhost/callback"]}`, false},
		{"no redirect_uris", `{"client_id":"` + id + `","client_name":"App"}`, false},
		{"javascript redirect", `{"client_id":"` + id + `","client_name":"App","redirect_uris":["javascript:alert(1)"]}`, false},
		{"http non-loopback redirect", `{"client_id":"` + id + `","client_name":"App","redirect_uris":["http://evil.example/cb"]}`, false},
		{"no authorization_code grant", doc(`,"grant_types":["client_credentials"]`), false},
		{"wrong type", doc(`,"redirect_uris":"http://localhost/cb"`), false},
		{"escape in name", strings.Replace(doc(""), `"App"`, `"App\u001b[31m"`, 1), false},
		{"bidi override in name", strings.Replace(doc(""), `"App"`, `"\u202eppA"`, 1), false},
		{"not an object", `["x"]`, false},
		{"malformed", `{"client_id":`, false},
		{"too large", doc(`,"client_uri":"https://client.example/` + strings.Repeat("a", DefaultMaxBytes) + `"`), false},
	} {
		c, err := Parse(id, []byte(tc.body))
		if (err == nil) != tc.ok {
			t.Errorf("%s: err = %v, want ok=%v", tc.name, err, tc.ok)
			continue
		}
		if err != nil {
			if !errors.Is(err, oauth.ErrInvalidClient) {
				t.Errorf("%s: error %v is not invalid_client", tc.name, err)
			}
			continue
		}
		if c.ID != id || !c.Public() || c.SecretHash != "" {
			t.Errorf("%s: client %+v, want public client %s", tc.name, c, id)
		}
	}
}

// docServer serves handler over TLS on loopback, with a fetcher that trusts
// it and may reach private addresses (as the tests must).
func docServer(t *testing.T, h http.HandlerFunc, o Options) (*Fetcher, string) {
	t.Helper()
	srv := httptest.NewTLSServer(h)
	t.Cleanup(srv.Close)
	o.AllowPrivateAddresses = true
	o.RootCAs = srv.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs
	return New(o), srv.URL
}

func serveDoc(cacheControl string, hits *atomic.Int32) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Header().Set("Content-Type", "application/json")
		if cacheControl != "" {
			w.Header().Set("Cache-Control", cacheControl)
		}
		fmt.Fprintf(w, `{"client_id":"https://%s%s","client_name":"Doc","redirect_uris":["http://127.0.0.1/cb"],"token_endpoint_auth_method":"none"}`, r.Host, r.URL.Path)
	}
}

func TestFetchAndCache(t *testing.T) {
	var hits atomic.Int32
	now := time.Now()
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	f, base := docServer(t, serveDoc("max-age=60", &hits), Options{Now: clock})
	ctx := context.Background()
	id := base + "/client.json"
	c, err := f.Client(ctx, id)
	if err != nil || c.ClientName != "Doc" || c.ID != id {
		t.Fatalf("Client = %+v, %v", c, err)
	}
	// Concurrent and repeated lookups within max-age share one fetch.
	var wg sync.WaitGroup
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() { defer wg.Done(); f.Client(ctx, id) }()
	}
	wg.Wait()
	if n := hits.Load(); n != 1 {
		t.Fatalf("%d fetches within max-age, want 1", n)
	}
	c.RedirectURIs[0] = "mutated"
	if c2, _ := f.Client(ctx, id); c2.RedirectURIs[0] == "mutated" {
		t.Fatal("caller mutated the cache")
	}
	mu.Lock()
	now = now.Add(61 * time.Second)
	mu.Unlock()
	f.Client(ctx, id)
	if n := hits.Load(); n != 2 {
		t.Fatalf("%d fetches after expiry, want 2", n)
	}

	var hits2 atomic.Int32
	g, base2 := docServer(t, serveDoc("no-store", &hits2), Options{})
	g.Client(ctx, base2+"/c.json")
	g.Client(ctx, base2+"/c.json")
	if n := hits2.Load(); n != 2 {
		t.Fatalf("no-store: %d fetches, want 2", n)
	}
	// max-age beyond the cap is bounded.
	if ttl := g.freshness(http.Header{"Cache-Control": {"max-age=99999999"}}); ttl != DefaultMaxAge {
		t.Fatalf("freshness capped at %v, want %v", ttl, DefaultMaxAge)
	}
	if ttl := g.freshness(http.Header{}); ttl != DefaultMinAge {
		t.Fatalf("freshness without header %v", ttl)
	}
}

func TestFetchFailures(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		h    http.HandlerFunc
		opts Options
	}{
		{"redirect", func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "https://"+r.Host+"/other.json", http.StatusFound)
		}, Options{}},
		{"not found", func(w http.ResponseWriter, r *http.Request) { http.NotFound(w, r) }, Options{}},
		{"oversized", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.Write([]byte(`{"client_name":"` + strings.Repeat("x", DefaultMaxBytes) + `"}`))
		}, Options{}},
		{"slow", func(w http.ResponseWriter, r *http.Request) {
			time.Sleep(300 * time.Millisecond)
			serveDoc("", new(atomic.Int32))(w, r)
		}, Options{Timeout: 50 * time.Millisecond}},
		{"html", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/html")
			w.Write([]byte(`<html>`))
		}, Options{}},
		{"wrong client_id", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			w.Write([]byte(`{"client_id":"https://other.example/c.json","client_name":"x","redirect_uris":["http://127.0.0.1/cb"]}`))
		}, Options{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, base := docServer(t, tc.h, tc.opts)
			_, err := f.Client(ctx, base+"/c.json")
			e := oauth.AsError(err)
			if err == nil || e.Code != "invalid_client" {
				t.Fatalf("err = %v, want invalid_client", err)
			}
			if strings.Contains(e.Description, "127.0.0.1") || strings.Contains(e.Description, "tls") {
				t.Fatalf("description leaks internals: %q", e.Description)
			}
		})
	}
}

// TestSSRF: without AllowPrivateAddresses, every non-public destination is
// refused at connect time, whatever the URL says; the check runs on the
// resolved address, so a name that resolves to loopback (the end state of a
// DNS rebinding attack) is refused too.
func TestSSRF(t *testing.T) {
	var hits atomic.Int32
	srv := httptest.NewTLSServer(serveDoc("", &hits))
	defer srv.Close()
	port := srv.URL[strings.LastIndex(srv.URL, ":")+1:]
	f := New(Options{RootCAs: srv.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs, Timeout: time.Second})
	for _, host := range []string{
		"127.0.0.1", "localhost", "[::1]", "[::ffff:127.0.0.1]", "127.1", "0.0.0.0",
		"169.254.169.254", "10.0.0.1", "192.168.0.1", "[fe80::1]", "[fd00::1]", "[::ffff:169.254.169.254]",
	} {
		_, err := f.Client(context.Background(), "https://"+host+":"+port+"/client.json")
		if err == nil {
			t.Errorf("%s: fetched", host)
			continue
		}
		if !errors.Is(err, oauth.ErrInvalidClient) {
			t.Errorf("%s: %v", host, err)
		}
		// Where a listener exists, the refusal is the address policy's.
		if strings.Contains("127.0.0.1 localhost [::ffff:127.0.0.1]", host) && !errors.Is(err, errNotPublic) {
			t.Errorf("%s: refused for another reason: %v", host, errors.Unwrap(err))
		}
	}
	if n := hits.Load(); n != 0 {
		t.Fatalf("the loopback server was reached %d times", n)
	}
	// The same server is reachable when private addresses are allowed.
	ok := New(Options{RootCAs: srv.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs, AllowPrivateAddresses: true})
	if _, err := ok.Client(context.Background(), srv.URL+"/client.json"); err != nil {
		t.Fatalf("with private addresses allowed: %v", err)
	}
}

func TestHostPolicy(t *testing.T) {
	f := New(Options{AllowHosts: []string{"claude.ai", ".chatgpt.com"}, DenyHosts: []string{"bad.chatgpt.com"}})
	for _, tc := range []struct {
		url     string
		allowed bool
	}{
		{"https://claude.ai/oauth/client.json", true},
		{"https://x.chatgpt.com/c.json", true},
		{"https://bad.chatgpt.com/c.json", false},
		{"https://evil.example/c.json", false},
		{"https://claude.ai.evil.example/c.json", false},
	} {
		_, err := f.Client(context.Background(), tc.url)
		denied := err != nil && strings.Contains(oauth.AsError(err).Description, "not accepted")
		if denied == tc.allowed {
			t.Errorf("%s: err %v, want allowed=%v", tc.url, err, tc.allowed)
		}
	}
}

func FuzzParse(f *testing.F) {
	const id = "https://c.example/m.json"
	f.Add([]byte(fmt.Sprintf(chatgptDoc, id)))
	f.Add([]byte(`{"client_id":"` + id + `","client_name":"A","redirect_uris":["http://localhost/cb"]}`))
	f.Add([]byte(`{"client_id":"` + id + `","jwks":{"keys":[{"d":1}]}}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		c, err := Parse(id, body)
		if err != nil {
			return
		}
		if c.ID != id || !c.Public() || len(c.RedirectURIs) == 0 || c.ClientName == "" {
			t.Fatalf("accepted %q as %+v", body, c)
		}
	})
}

// TestFetchConcurrencyCap: beyond MaxConcurrentFetches outstanding fetches,
// further lookups fail fast instead of piling up.
func TestFetchConcurrencyCap(t *testing.T) {
	release := make(chan struct{})
	f, base := docServer(t, func(w http.ResponseWriter, r *http.Request) { <-release }, Options{Timeout: 5 * time.Second})
	defer close(release)
	var wg sync.WaitGroup
	var busy atomic.Int32
	for i := 0; i < MaxConcurrentFetches+8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := f.Client(context.Background(), fmt.Sprintf("%s/c%d.json", base, i))
			if oauth.AsError(err).Code == "temporarily_unavailable" {
				busy.Add(1)
			}
		}()
	}
	deadline := time.Now().Add(3 * time.Second)
	for busy.Load() < 8 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := busy.Load(); n < 8 {
		t.Fatalf("%d lookups failed fast, want at least 8", n)
	}
	release <- struct{}{}
}
