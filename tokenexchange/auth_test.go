package tokenexchange

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

var (
	keysOnce sync.Once
	rsaKey   *rsa.PrivateKey
	ecKey    *ecdsa.PrivateKey
	edKey    ed25519.PrivateKey
)

func testKeys(t testing.TB) {
	t.Helper()
	keysOnce.Do(func() {
		var err error
		if rsaKey, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
			panic(err)
		}
		if ecKey, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
			panic(err)
		}
		if _, edKey, err = ed25519.GenerateKey(rand.Reader); err != nil {
			panic(err)
		}
	})
}

// opaqueSigner hides the concrete key type, as a KMS signer does.
type opaqueSigner struct{ crypto.Signer }

// TestClientAuthentication: each method sends its credentials, and only
// them: Basic with the form-urlencoded id and secret (RFC 6749 §2.3.1),
// the form for client_secret_post, and for private_key_jwt a fresh
// assertion (RFC 7523 §3) whose signature, kid, iss, sub, aud, exp, iat
// and jti check out.
func TestClientAuthentication(t *testing.T) {
	testKeys(t)
	const id, secret = "mcp notes:1", "s e/c+r%t:x"
	s := newSTS(t)
	endpoint := s.URL + "/token"
	now := time.Now().Truncate(time.Second)
	checkJWT := func(t *testing.T, c *stsCall, pub crypto.PublicKey, alg, aud string, life time.Duration) string {
		t.Helper()
		if c.header.Get("Authorization") != "" || c.form.Has("client_secret") {
			t.Error("private_key_jwt also sent a secret")
		}
		if c.form.Get("client_assertion_type") != ClientAssertionType || c.form.Get("client_id") != id {
			t.Errorf("form %v", c.form)
		}
		var claims jwt.RegisteredClaims
		tok, err := jwt.ParseWithClaims(c.form.Get("client_assertion"), &claims, func(tok *jwt.Token) (any, error) {
			if tok.Header["kid"] != "key-1" {
				t.Errorf("kid %v", tok.Header["kid"])
			}
			return pub, nil
		}, jwt.WithValidMethods([]string{alg}), jwt.WithTimeFunc(func() time.Time { return now }),
			jwt.WithIssuer(id), jwt.WithSubject(id), jwt.WithAudience(aud), jwt.WithIssuedAt(), jwt.WithExpirationRequired())
		if err != nil {
			t.Fatalf("the assertion does not verify: %v", err)
		}
		if tok.Method.Alg() != alg || !claims.IssuedAt.Equal(now) || !claims.ExpiresAt.Equal(now.Add(life)) || len(claims.ID) < 16 {
			t.Errorf("alg %s, claims %+v", tok.Method.Alg(), claims)
		}
		return claims.ID
	}
	tests := []struct {
		name  string
		opts  Options
		check func(t *testing.T, c *stsCall) string // returns the jti, if any
	}{
		{"client_secret_basic", Options{ClientSecret: secret}, func(t *testing.T, c *stsCall) string {
			want := "Basic " + base64.StdEncoding.EncodeToString([]byte("mcp+notes%3A1:s+e%2Fc%2Br%25t%3Ax"))
			if got := c.header.Get("Authorization"); got != want {
				t.Errorf("Authorization %q, want %q", got, want)
			}
			if gid, gsecret, _ := c.r.BasicAuth(); gid != "mcp+notes%3A1" || gsecret != "s+e%2Fc%2Br%25t%3Ax" {
				t.Errorf("Basic credentials %q %q", gid, gsecret)
			}
			if c.form.Has("client_id") || c.form.Has("client_secret") || c.form.Has("client_assertion") {
				t.Errorf("Basic also sent form credentials: %v", c.form)
			}
			return ""
		}},
		{"client_secret_post", Options{ClientSecret: secret, AuthMethod: AuthClientSecretPost}, func(t *testing.T, c *stsCall) string {
			if c.form.Get("client_id") != id || c.form.Get("client_secret") != secret || c.header.Get("Authorization") != "" {
				t.Errorf("form %v, Authorization %q", c.form, c.header.Get("Authorization"))
			}
			return ""
		}},
		{"private_key_jwt RS256", Options{PrivateKey: rsaKey, KeyID: "key-1"}, func(t *testing.T, c *stsCall) string {
			return checkJWT(t, c, &rsaKey.PublicKey, "RS256", endpoint, DefaultAssertionLifetime)
		}},
		{"private_key_jwt PS256", Options{PrivateKey: rsaKey, KeyID: "key-1", Algorithm: PS256}, func(t *testing.T, c *stsCall) string {
			return checkJWT(t, c, &rsaKey.PublicKey, "PS256", endpoint, DefaultAssertionLifetime)
		}},
		{"private_key_jwt ES256, a KMS-like signer", Options{PrivateKey: opaqueSigner{ecKey}, KeyID: "key-1"}, func(t *testing.T, c *stsCall) string {
			return checkJWT(t, c, &ecKey.PublicKey, "ES256", endpoint, DefaultAssertionLifetime)
		}},
		{"private_key_jwt EdDSA, issuer audience, 30 s", Options{PrivateKey: edKey, KeyID: "key-1", AssertionAudience: "https://sts.example.com", AssertionLifetime: 30 * time.Second},
			func(t *testing.T, c *stsCall) string {
				return checkJWT(t, c, edKey.Public(), "EdDSA", "https://sts.example.com", 30*time.Second)
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := tt.opts
			opts.TokenURL, opts.ClientID, opts.CacheSize = endpoint, id, -1
			opts.Now = func() time.Time { return now }
			c, err := New(opts)
			if err != nil {
				t.Fatal(err)
			}
			jtis := map[string]bool{}
			for range 2 {
				if _, err := c.Exchange(context.Background(), &Request{SubjectToken: "subj"}); err != nil {
					t.Fatal(err)
				}
				if jti := tt.check(t, s.last(t)); jti != "" {
					if jtis[jti] {
						t.Errorf("jti %q reused", jti)
					}
					jtis[jti] = true
				}
			}
		})
	}
}

// TestMutualTLS: with tls_client_auth the certificate goes in the TLS
// handshake of the HTTPClient's transport and client_id in the form
// (RFC 8705 §2); an STS that requires a certificate refuses a client
// without one.
func TestMutualTLS(t *testing.T) {
	ca, caKey := newCA(t)
	clientCert := issueCert(t, ca, caKey, "mcp-notes")
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	s := &testSTS{}
	s.Server = httptest.NewUnstartedServer(http.HandlerFunc(s.serve))
	s.TLS = &tls.Config{ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: pool}
	s.StartTLS()
	t.Cleanup(s.Close)
	serverRoots := x509.NewCertPool()
	serverRoots.AddCert(s.Certificate())

	for _, method := range []string{AuthTLSClient, AuthSelfSignedTLSClient} {
		t.Run(method, func(t *testing.T) {
			hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{
				RootCAs: serverRoots, Certificates: []tls.Certificate{clientCert},
			}}}
			c, err := New(Options{TokenURL: s.URL + "/token", ClientID: "mcp-notes", AuthMethod: method, HTTPClient: hc, CacheSize: -1})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := c.Exchange(context.Background(), &Request{SubjectToken: "subj"}); err != nil {
				t.Fatal(err)
			}
			got := s.last(t)
			if got.r.TLS == nil || len(got.r.TLS.PeerCertificates) == 0 || got.r.TLS.PeerCertificates[0].Subject.CommonName != "mcp-notes" {
				t.Fatal("no client certificate reached the STS")
			}
			if got.form.Get("client_id") != "mcp-notes" || got.form.Has("client_secret") || got.form.Has("client_assertion") || got.header.Get("Authorization") != "" {
				t.Errorf("form %v, Authorization %q", got.form, got.header.Get("Authorization"))
			}
		})
	}

	t.Run("without a certificate", func(t *testing.T) {
		// A custom RoundTripper is trusted to present one; this one does not.
		hc := &http.Client{Transport: roundTripper{&http.Transport{TLSClientConfig: &tls.Config{RootCAs: serverRoots}}}}
		c, err := New(Options{TokenURL: s.URL + "/token", ClientID: "mcp-notes", AuthMethod: AuthTLSClient, HTTPClient: hc})
		if err != nil {
			t.Fatal(err)
		}
		before := s.calls.Load()
		if _, err := c.Exchange(context.Background(), &Request{SubjectToken: "subj"}); err == nil {
			t.Fatal("the STS accepted a client without a certificate")
		}
		if s.calls.Load() != before {
			t.Error("the request reached the handler")
		}
	})
}

type roundTripper struct{ rt http.RoundTripper }

func (r roundTripper) RoundTrip(req *http.Request) (*http.Response, error) {
	return r.rt.RoundTrip(req)
}

func newCA(t *testing.T) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return cert, key
}

func issueCert(t *testing.T, ca *x509.Certificate, caKey *ecdsa.PrivateKey, cn string) tls.Certificate {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// TestNewRefuses: New refuses options that could not authenticate, or
// not safely.
func TestNewRefuses(t *testing.T) {
	testKeys(t)
	small, _ := rsa.GenerateKey(rand.Reader, 1024)
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	certClient := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return nil, nil }}}}
	const ep = "https://sts.example.com/token"
	tests := []struct {
		name string
		opts Options
		want string
	}{
		{"no client id", Options{TokenURL: ep, ClientSecret: "s"}, "ClientID"},
		{"no endpoint", Options{ClientID: "c", ClientSecret: "s"}, "TokenURL or Issuer"},
		{"both endpoints", Options{TokenURL: ep, Issuer: "https://sts.example.com", ClientID: "c", ClientSecret: "s"}, "not both"},
		{"http token URL", Options{TokenURL: "http://sts.example.com/token", ClientID: "c", ClientSecret: "s"}, "https"},
		{"relative token URL", Options{TokenURL: "/token", ClientID: "c", ClientSecret: "s"}, "absolute"},
		{"issuer with a query", Options{Issuer: "https://sts.example.com?x=1", ClientID: "c", ClientSecret: "s"}, "query"},
		{"no credential", Options{TokenURL: ep, ClientID: "c"}, "exactly one"},
		{"secret and key", Options{TokenURL: ep, ClientID: "c", ClientSecret: "s", PrivateKey: ecKey}, "exactly one"},
		{"secret and mTLS", Options{TokenURL: ep, ClientID: "c", ClientSecret: "s", AuthMethod: AuthTLSClient, HTTPClient: certClient}, "exactly one"},
		{"unknown method", Options{TokenURL: ep, ClientID: "c", ClientSecret: "s", AuthMethod: "client_secret_jwt"}, "AuthMethod"},
		{"basic without a secret", Options{TokenURL: ep, ClientID: "c", PrivateKey: ecKey, AuthMethod: AuthClientSecretBasic}, "ClientSecret"},
		{"secret with private_key_jwt", Options{TokenURL: ep, ClientID: "c", ClientSecret: "s", AuthMethod: AuthPrivateKeyJWT}, "does not use ClientSecret"},
		{"RSA 1024", Options{TokenURL: ep, ClientID: "c", PrivateKey: small}, "2048"},
		{"P-384", Options{TokenURL: ep, ClientID: "c", PrivateKey: p384}, "P-256"},
		{"ES256 for an RSA key", Options{TokenURL: ep, ClientID: "c", PrivateKey: rsaKey, Algorithm: ES256}, "does not fit"},
		{"HS256", Options{TokenURL: ep, ClientID: "c", PrivateKey: rsaKey, Algorithm: "HS256"}, "does not fit"},
		{"none", Options{TokenURL: ep, ClientID: "c", PrivateKey: edKey, Algorithm: "none"}, "does not fit"},
		{"negative lifetime", Options{TokenURL: ep, ClientID: "c", PrivateKey: edKey, AssertionLifetime: -time.Second}, "AssertionLifetime"},
		{"key id without a key", Options{TokenURL: ep, ClientID: "c", ClientSecret: "s", KeyID: "k"}, "PrivateKey is not set"},
		{"assertion audience without a key", Options{TokenURL: ep, ClientID: "c", ClientSecret: "s", AssertionAudience: "x"}, "PrivateKey is not set"},
		{"mTLS without a client", Options{TokenURL: ep, ClientID: "c", AuthMethod: AuthTLSClient}, "HTTPClient is required"},
		{"mTLS with the default transport", Options{TokenURL: ep, ClientID: "c", AuthMethod: AuthTLSClient, HTTPClient: &http.Client{}}, "no client certificate"},
		{"mTLS with a transport without a certificate", Options{TokenURL: ep, ClientID: "c", AuthMethod: AuthSelfSignedTLSClient,
			HTTPClient: &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{}}}}, "no client certificate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.opts)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("New = %v, want an error about %q", err, tt.want)
			}
		})
	}
	// And the accepted shapes.
	for _, opts := range []Options{
		{TokenURL: ep, ClientID: "c", ClientSecret: "s"},
		{TokenURL: "http://127.0.0.1:8080/token", ClientID: "c", ClientSecret: "s"},
		{TokenURL: "http://localhost/token", ClientID: "c", PrivateKey: edKey},
		{Issuer: "https://sts.example.com/realms/a", ClientID: "c", AuthMethod: AuthTLSClient, HTTPClient: certClient},
		{TokenURL: ep, ClientID: "c", AuthMethod: AuthTLSClient, HTTPClient: &http.Client{Transport: roundTripper{}}},
	} {
		if _, err := New(opts); err != nil {
			t.Errorf("New(%+v) = %v", opts, err)
		}
	}
}
