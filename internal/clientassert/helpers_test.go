package clientassert

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/mcp-oauth/oauth/internal/testclock"
)

// Test fixtures shared by every test of the package.
const (
	tokenURL = "https://as.example/token"
	issuer   = "https://as.example"
	clientA  = "client-a"
	clientB  = "https://chatgpt.example/oauth/client.json"
)

var t0 = time.Unix(1_700_000_000, 0)

// testKey is a private key and its kid.
type testKey struct {
	kid  string
	priv crypto.Signer
}

// fixtureKeys are generated once per test binary: RSA generation is slow.
type fixtureKeys struct {
	rsa, rsa2, rsaSmall, ec, ec384, ed *testKey
}

var fixtures = sync.OnceValue(func() *fixtureKeys {
	must := func(k crypto.Signer, err error) crypto.Signer {
		if err != nil {
			panic(err)
		}
		return k
	}
	_, edPriv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		panic(err)
	}
	return &fixtureKeys{
		rsa:      &testKey{"rsa-1", must(rsa.GenerateKey(rand.Reader, 2048))},
		rsa2:     &testKey{"rsa-2", must(rsa.GenerateKey(rand.Reader, 2048))},
		rsaSmall: &testKey{"rsa-small", must(rsa.GenerateKey(rand.Reader, 1024))},
		ec:       &testKey{"ec-1", must(ecdsa.GenerateKey(elliptic.P256(), rand.Reader))},
		ec384:    &testKey{"ec-384", must(ecdsa.GenerateKey(elliptic.P384(), rand.Reader))},
		ed:       &testKey{"ed-1", edPriv},
	}
})

// jwk returns the public JWK of k as a map, with extra members added
// (a nil value deletes a member).
func jwk(t testing.TB, k *testKey, extra map[string]any) map[string]any {
	t.Helper()
	b, err := jose.JSONWebKey{Key: k.priv.Public(), KeyID: k.kid}.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	for name, v := range extra {
		if v == nil {
			delete(m, name)
		} else {
			m[name] = v
		}
	}
	return m
}

// privateJWK returns the private JWK of k.
func privateJWK(t testing.TB, k *testKey) map[string]any {
	t.Helper()
	b, err := jose.JSONWebKey{Key: k.priv, KeyID: k.kid}.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// jwks returns a JWK Set document of keys.
func jwks(t testing.TB, keys ...map[string]any) []byte {
	t.Helper()
	if keys == nil {
		keys = []map[string]any{}
	}
	b, err := json.Marshal(map[string]any{"keys": keys})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

var jtiSeq atomic.Int64

// claimsFor returns valid claims for client at now, with a unique jti.
func claimsFor(client string, now time.Time) map[string]any {
	return map[string]any{
		"iss": client,
		"sub": client,
		"aud": tokenURL,
		"iat": now.Unix(),
		"exp": now.Add(time.Minute).Unix(),
		"jti": fmt.Sprintf("jti-%d", jtiSeq.Add(1)),
	}
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// signJWS builds a compact JWS from header and claims (maps, or raw JSON
// given as []byte), signed with alg by key, whatever the header says.
func signJWS(t testing.TB, alg string, key any, header, claims any) string {
	t.Helper()
	enc := func(v any) string {
		if b, ok := v.([]byte); ok {
			return b64(b)
		}
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return b64(b)
	}
	input := enc(header) + "." + enc(claims)
	sig, err := rawSign(alg, key, []byte(input))
	if err != nil {
		t.Fatal(err)
	}
	return input + "." + b64(sig)
}

// rawSign computes a JWS signature (RFC 7518 §3) with no checks, so that
// tests can build the forgeries a verifier must refuse.
func rawSign(alg string, key any, input []byte) ([]byte, error) {
	h256 := sha256.Sum256(input)
	switch alg {
	case "none":
		return nil, nil
	case "HS256":
		m := hmac.New(sha256.New, key.([]byte))
		m.Write(input)
		return m.Sum(nil), nil
	case "RS256":
		return rsa.SignPKCS1v15(rand.Reader, key.(*rsa.PrivateKey), crypto.SHA256, h256[:])
	case "PS256":
		return rsa.SignPSS(rand.Reader, key.(*rsa.PrivateKey), crypto.SHA256, h256[:], &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash})
	case "RS384":
		h := sha512.Sum384(input)
		return rsa.SignPKCS1v15(rand.Reader, key.(*rsa.PrivateKey), crypto.SHA384, h[:])
	case "ES256", "ES384":
		k := key.(*ecdsa.PrivateKey)
		digest := h256[:]
		if alg == "ES384" {
			h := sha512.Sum384(input)
			digest = h[:]
		}
		r, s, err := ecdsa.Sign(rand.Reader, k, digest)
		if err != nil {
			return nil, err
		}
		n := (k.Curve.Params().BitSize + 7) / 8
		out := make([]byte, 2*n)
		r.FillBytes(out[:n])
		s.FillBytes(out[n:])
		return out, nil
	case "EdDSA":
		return ed25519.Sign(key.(ed25519.PrivateKey), input), nil
	}
	return nil, errors.New("rawSign: unknown alg " + alg)
}

// assertion signs claims with k under alg, with kid k.kid.
func assertion(t testing.TB, alg string, k *testKey, claims map[string]any) string {
	t.Helper()
	return signJWS(t, alg, k.priv, map[string]any{"alg": alg, "kid": k.kid, "typ": "JWT"}, claims)
}

// newVerifier returns a Verifier on clock with the test audiences.
func newVerifier(t testing.TB, clock *testclock.Clock, mod func(*Options)) *Verifier {
	t.Helper()
	o := Options{Audiences: []string{tokenURL, tokenURL + "/", issuer}, Now: clock.Now}
	if mod != nil {
		mod(&o)
	}
	v, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// checkRefusal asserts that err is an *Error wrapping want whose text
// does not quote the assertion or any of its segments.
func checkRefusal(t testing.TB, err, want error, assertion string) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("error = %v, want %v", err, want)
	}
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("error %T is not an *Error", err)
	}
	msg := err.Error()
	for _, seg := range append(strings.Split(assertion, "."), assertion) {
		if len(seg) >= 8 && strings.Contains(msg, seg) {
			t.Fatalf("error text %q quotes the assertion", msg)
		}
	}
}

// fakeFetcher serves JWK Set documents and counts fetches.
type fakeFetcher struct {
	mu    sync.Mutex
	body  map[string][]byte
	err   error
	calls map[string]int
	// gate, if set, is received from before each fetch returns
	// (unless the fetch's context ends first).
	gate    chan struct{}
	started chan string
	// hang makes fetches wait for their context to end.
	hang bool
}

func newFakeFetcher() *fakeFetcher {
	return &fakeFetcher{body: map[string][]byte{}, calls: map[string]int{}}
}

func (f *fakeFetcher) set(url string, body []byte, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.body[url], f.err = body, err
}

func (f *fakeFetcher) count(url string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[url]
}

func (f *fakeFetcher) Fetch(ctx context.Context, url string, maxBytes int64) ([]byte, error) {
	f.mu.Lock()
	f.calls[url]++
	body, err, gate, started, hang := f.body[url], f.err, f.gate, f.started, f.hang
	f.mu.Unlock()
	if _, ok := ctx.Deadline(); !ok {
		return nil, errors.New("fetch without a deadline")
	}
	if hang {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	if started != nil {
		started <- url
	}
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if maxBytes != MaxJWKSBytes {
		return nil, fmt.Errorf("maxBytes = %d", maxBytes)
	}
	if err != nil {
		return nil, err
	}
	if body == nil {
		return nil, errors.New("404")
	}
	return body, nil
}
