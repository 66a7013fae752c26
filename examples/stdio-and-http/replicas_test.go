package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/modelcontextprotocol/go-sdk/oauthex"

	oauth "github.com/mcp-oauth/oauth"
	"github.com/mcp-oauth/oauth/mcpauth"
)

// pgSchemaURL returns MCPAUTH_TEST_POSTGRES pointed at a fresh schema that
// is dropped after the test, or skips when the variable is unset.
func pgSchemaURL(t testing.TB) string {
	t.Helper()
	base := os.Getenv("MCPAUTH_TEST_POSTGRES")
	if base == "" {
		t.Skip("MCPAUTH_TEST_POSTGRES not set; skipping PostgreSQL tests (set it to a postgres:// URL)")
	}
	var b [6]byte
	rand.Read(b[:])
	schema := "mcpauth_e2e_" + hex.EncodeToString(b[:])
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
		t.Fatal(err)
	}
	conn.Close(ctx)
	t.Cleanup(func() {
		conn, err := pgx.Connect(context.Background(), base)
		if err == nil {
			conn.Exec(context.Background(), "DROP SCHEMA "+schema+" CASCADE")
			conn.Close(context.Background())
		}
	})
	u, _ := url.Parse(base)
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

// startReplica runs the example server on ln against db, with the shared
// public issuer.
func startReplica(t testing.TB, ln net.Listener, issuer, db string) *mcpauth.Handler {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan *mcpauth.Handler, 1)
	done := make(chan error, 1)
	go func() {
		done <- serveHTTP(ctx, ln, serveOptions{issuer: issuer, db: db}, io.Discard, func(h *mcpauth.Handler) { ready <- h })
	}()
	var h *mcpauth.Handler
	select {
	case h = <-ready:
	case err := <-done:
		t.Fatalf("replica did not start: %v", err)
	}
	t.Cleanup(func() { cancel(); <-done })
	return h
}

func listen(t testing.TB) (net.Listener, string) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln, "http://" + ln.Addr().String()
}

// TestTwoReplicasOneDatabase: two server instances on two ports share one
// PostgreSQL database behind one issuer and behave as one server: register
// on A, authorize on B, approve via A, redeem the code on B, refresh on A,
// revoke on B, and A refuses the access token at once.
func TestTwoReplicasOneDatabase(t *testing.T) {
	db := pgSchemaURL(t)
	lnA, a := listen(t)
	lnB, b := listen(t)
	issuer := a // the public URL both replicas serve
	hA := startReplica(t, lnA, issuer, db)
	startReplica(t, lnB, issuer, db)

	resp, err := http.Post(a+"/register", "application/json", strings.NewReader(
		`{"redirect_uris":["`+testRedirect+`"],"token_endpoint_auth_method":"none","client_name":"replicas"}`))
	if err != nil {
		t.Fatal(err)
	}
	var reg struct {
		ClientID string `json:"client_id"`
	}
	json.NewDecoder(resp.Body).Decode(&reg)
	resp.Body.Close()

	const verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
	q := url.Values{"response_type": {"code"}, "client_id": {reg.ClientID}, "redirect_uri": {testRedirect}, "state": {"s"},
		"code_challenge": {"E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"}, "code_challenge_method": {"S256"}}
	// Authorize on B; the approval page lives at the issuer.
	loc, err := browse(t, b+"/authorize?"+q.Encode(), "127.0.0.1:49152", func(code string) error {
		_, err := hA.Approve(context.Background(), code, "alice") // approve via A
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	token := func(base string, form url.Values) map[string]any {
		t.Helper()
		resp, err := http.PostForm(base+"/token", form)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var m map[string]any
		json.NewDecoder(resp.Body).Decode(&m)
		if resp.StatusCode != 200 {
			t.Fatalf("token on %s: %d %v", base, resp.StatusCode, m)
		}
		return m
	}
	tok := token(b, url.Values{"grant_type": {"authorization_code"}, "code": {loc.Query().Get("code")}, // redeem on B
		"code_verifier": {verifier}, "redirect_uri": {testRedirect}, "client_id": {reg.ClientID}})
	ref := token(a, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok["refresh_token"].(string)}, // refresh on A
		"client_id": {reg.ClientID}})
	at := ref["access_token"].(string)
	for _, base := range []string{a, b} {
		if st := mcpStatus(t, base, at); st != 200 {
			t.Fatalf("access token on %s: %d", base, st)
		}
	}
	resp, err = http.PostForm(b+"/revoke", url.Values{"token": {ref["refresh_token"].(string)}, "client_id": {reg.ClientID}}) // revoke on B
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	deadline := time.Now().Add(time.Second)
	for {
		st, _ := ping(t, a, at)
		if st == http.StatusUnauthorized {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("A still accepts the revoked grant's access token after 1 s (status %d)", st)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// BenchmarkTokenExchangeReplicas measures POST /token (authorization_code)
// over HTTP with parallel clients against one replica and against two
// replicas sharing one PostgreSQL database, requests spread round-robin.
func BenchmarkTokenExchangeReplicas(b *testing.B) {
	for _, n := range []int{1, 2} {
		b.Run(fmt.Sprintf("replicas=%d", n), func(b *testing.B) {
			db := pgSchemaURL(b)
			var bases []string
			var hs []*mcpauth.Handler
			issuer := ""
			for i := 0; i < n; i++ {
				ln, base := listen(b)
				if issuer == "" {
					issuer = base
				}
				hs = append(hs, startReplica(b, ln, issuer, db))
				bases = append(bases, base)
			}
			p := hs[0].DefaultProvider()
			ctx := context.Background()
			reg, err := p.RegisterClient(ctx, &oauthex.ClientRegistrationMetadata{RedirectURIs: []string{testRedirect}, TokenEndpointAuthMethod: "none", ClientName: "bench"})
			if err != nil {
				b.Fatal(err)
			}
			c, _ := p.GetClient(ctx, reg.ClientID)
			codes := make([]string, b.N)
			for i := range codes {
				to, err := p.Authorize(ctx, c, &oauth.AuthorizationParams{ClientID: c.ID, RedirectURI: testRedirect, RedirectURIExplicit: true,
					Scopes: []string{"mcp"}, CodeChallenge: "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM", Resource: issuer + "/mcp"})
				if err != nil {
					b.Fatal(err)
				}
				u, _ := url.Parse(to)
				p.Approve(ctx, u.Query().Get("user_code"), fmt.Sprintf("user%d", i), nil) // distinct subjects: no grant replacement
				_, back, err := p.Poll(ctx, &oauth.PollRequest{Handle: u.Query().Get("request"), UserCode: u.Query().Get("user_code")})
				if err != nil || back == "" {
					b.Fatal("poll of an approved request:", back, err)
				}
				bu, _ := url.Parse(back)
				codes[i] = bu.Query().Get("code")
			}
			hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
			var next atomic.Int64
			b.SetParallelism(8)
			b.ResetTimer()
			start := time.Now()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					i := next.Add(1) - 1
					form := url.Values{"grant_type": {"authorization_code"}, "code": {codes[i]}, "code_verifier": {"dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"},
						"redirect_uri": {testRedirect}, "client_id": {c.ID}}
					resp, err := hc.PostForm(bases[int(i)%len(bases)]+"/token", form)
					if err != nil {
						b.Fatal(err)
					}
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != 200 {
						b.Fatalf("status %d", resp.StatusCode)
					}
				}
			})
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "exchanges/s")
		})
	}
}
