package extauth

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/mcp-oauth/oauth/internal/testclock"
)

// testEpoch is the fixed time of the tests' clocks.
var testEpoch = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

// RSA key generation is slow; the tests share a few keys.
var rsaKeys = sync.OnceValue(func() []*rsa.PrivateKey {
	out := make([]*rsa.PrivateKey, 4)
	for i := range out {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			panic(err)
		}
		out[i] = k
	}
	return out
})

// testKey is a signing key of the test issuer and its JWK.
type testKey struct {
	kid, alg string
	priv     crypto.Signer
	jwk      map[string]any
}

// newKey returns a key for alg: RSA (the n-th shared key) for RS*/PS*,
// EC for ES*, Ed25519 for EdDSA. The JWK names alg unless jwkAlg is
// "-" (none) or another value.
func newKey(kid, alg string, n int, jwkAlg ...string) *testKey {
	k := &testKey{kid: kid, alg: alg}
	switch {
	case strings.HasPrefix(alg, "RS"), strings.HasPrefix(alg, "PS"):
		k.priv = rsaKeys()[n%len(rsaKeys())]
	case alg == ES256:
		k.priv, _ = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case alg == ES384:
		k.priv, _ = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case alg == ES512:
		k.priv, _ = ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	case alg == EdDSA:
		_, k.priv, _ = ed25519.GenerateKey(rand.Reader)
	default:
		panic("alg " + alg)
	}
	k.jwk = publicJWK(k.priv.Public())
	k.jwk["kid"], k.jwk["use"], k.jwk["alg"] = kid, "sig", alg
	if len(jwkAlg) > 0 {
		if jwkAlg[0] == "-" {
			delete(k.jwk, "alg")
		} else {
			k.jwk["alg"] = jwkAlg[0]
		}
	}
	if kid == "" {
		delete(k.jwk, "kid")
	}
	return k
}

func publicJWK(pub crypto.PublicKey) map[string]any {
	switch p := pub.(type) {
	case *rsa.PublicKey:
		e := []byte{byte(p.E >> 16), byte(p.E >> 8), byte(p.E)}
		return map[string]any{"kty": "RSA", "n": b64.EncodeToString(p.N.Bytes()), "e": b64.EncodeToString(bytes.TrimLeft(e, "\x00"))}
	case *ecdsa.PublicKey:
		size := (p.Curve.Params().BitSize + 7) / 8
		x, y := make([]byte, size), make([]byte, size)
		p.X.FillBytes(x)
		p.Y.FillBytes(y)
		return map[string]any{"kty": "EC", "crv": p.Curve.Params().Name, "x": b64.EncodeToString(x), "y": b64.EncodeToString(y)}
	case ed25519.PublicKey:
		return map[string]any{"kty": "OKP", "crv": "Ed25519", "x": b64.EncodeToString(p)}
	}
	panic("key type")
}

// testIdP is an issuer on httptest: metadata, JWK Set and introspection.
type testIdP struct {
	t      testing.TB
	srv    *httptest.Server
	issuer string
	clock  *testclock.Clock

	mu           sync.Mutex
	keys         []*testKey // published in the JWK Set
	down         bool       // the JWK Set and introspection answer 503
	cacheControl string
	oidcOnly     bool // no RFC 8414 document, only OIDC discovery
	metaIssuer   string
	introspect   func(token string, r *http.Request) (int, map[string]any)

	jwksFetches    atomic.Int64
	introspections atomic.Int64
	jwksGate       chan struct{} // when set, JWK Set requests wait on it
}

// newIdP starts an issuer at path (such as "" or "/realms/acme") that
// publishes keys.
func newIdP(t testing.TB, path string, keys ...*testKey) *testIdP {
	p := &testIdP{t: t, keys: keys, clock: testclock.New(testEpoch)}
	p.srv = httptest.NewServer(http.HandlerFunc(p.serve))
	t.Cleanup(p.srv.Close)
	p.issuer = p.srv.URL + path
	return p
}

func (p *testIdP) serve(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	down, cc, oidcOnly, keys, intro, gate := p.down, p.cacheControl, p.oidcOnly, p.keys, p.introspect, p.jwksGate
	metaIssuer := p.metaIssuer
	p.mu.Unlock()
	if metaIssuer == "" {
		metaIssuer = p.issuer
	}
	base := strings.TrimPrefix(p.issuer, p.srv.URL)
	meta := map[string]any{"issuer": metaIssuer, "jwks_uri": p.srv.URL + "/jwks", "introspection_endpoint": p.srv.URL + "/introspect"}
	switch r.URL.Path {
	case "/.well-known/oauth-authorization-server" + strings.TrimSuffix(base, "/"):
		if oidcOnly {
			http.NotFound(w, r)
			return
		}
		json.NewEncoder(w).Encode(meta)
	case strings.TrimSuffix(base, "/") + "/.well-known/openid-configuration":
		json.NewEncoder(w).Encode(meta)
	case "/jwks":
		p.jwksFetches.Add(1)
		if gate != nil {
			<-gate
		}
		if down {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		set := map[string]any{"keys": []map[string]any{}}
		for _, k := range keys {
			set["keys"] = append(set["keys"].([]map[string]any), k.jwk)
		}
		if cc != "" {
			w.Header().Set("Cache-Control", cc)
		}
		json.NewEncoder(w).Encode(set)
	case "/introspect":
		p.introspections.Add(1)
		if down || intro == nil {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		r.ParseForm()
		status, body := intro(r.PostForm.Get("token"), r)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		json.NewEncoder(w).Encode(body)
	default:
		http.NotFound(w, r)
	}
}

func (p *testIdP) set(f func(p *testIdP)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	f(p)
}

const testAudience = "https://notes.example.com/mcp"

// claims returns valid claims for a token of p at its clock, changed by
// the pairs kv (a nil value deletes).
func (p *testIdP) claims(kv ...any) map[string]any {
	now := p.clock.Now()
	c := map[string]any{
		"iss": p.issuer, "sub": "alice", "aud": testAudience, "client_id": "cli",
		"exp": now.Add(5 * time.Minute).Unix(), "iat": now.Unix(), "jti": "j1", "scope": "notes.read notes.write",
	}
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] == nil {
			delete(c, kv[i].(string))
		} else {
			c[kv[i].(string)] = kv[i+1]
		}
	}
	return c
}

// sign returns a JWS of claims by k with typ at+jwt and k's kid, the
// header changed by the pairs hdr (a nil value deletes).
func sign(t testing.TB, k *testKey, claims map[string]any, hdr ...any) string {
	t.Helper()
	tok := jwt.NewWithClaims(method(k.alg), jwt.MapClaims(maps.Clone(claims)))
	tok.Header["typ"] = "at+jwt"
	if k.kid != "" {
		tok.Header["kid"] = k.kid
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		if hdr[i+1] == nil {
			delete(tok.Header, hdr[i].(string))
		} else {
			tok.Header[hdr[i].(string)] = hdr[i+1]
		}
	}
	s, err := tok.SignedString(k.priv)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// newVerifier returns a Verifier of p on p's clock, with the options
// changed by mut.
func newVerifier(t testing.TB, p *testIdP, mut func(*Options)) *Verifier {
	t.Helper()
	o := Options{Issuer: p.issuer, Audiences: []string{testAudience}, Now: p.clock.Now, Logger: testLogger(t)}
	if mut != nil {
		mut(&o)
	}
	v, err := New(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// logBuffer collects log output, so tests can check what was logged.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// testLogs maps a test to its log buffer.
var testLogs sync.Map

func testLogger(t testing.TB) *slog.Logger {
	lb := &logBuffer{}
	testLogs.Store(t, lb)
	t.Cleanup(func() { testLogs.Delete(t) })
	return slog.New(slog.NewTextHandler(lb, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// logsOf returns what the verifiers of t logged.
func logsOf(t testing.TB) string {
	if lb, ok := testLogs.Load(t); ok {
		return lb.(*logBuffer).String()
	}
	return ""
}

// waitFor polls cond for up to two seconds.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); time.Sleep(2 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("timed out waiting for %s", what)
}
