package clientassert

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/mcp-oauth/oauth/internal/testclock"
)

// benchPool is how many distinct assertions a benchmark signs up front;
// every pool's worth of iterations gets a fresh Verifier, so that each
// Verify is a first use of its jti, as in production.
const benchPool = 512

var benchAssertions sync.Map // alg → []string

func pool(b *testing.B, alg string, k *testKey) []string {
	if p, ok := benchAssertions.Load(alg); ok {
		return p.([]string)
	}
	p := make([]string, benchPool)
	for i := range p {
		p[i] = assertion(b, alg, k, claimsFor(clientA, t0))
	}
	benchAssertions.Store(alg, p)
	return p
}

// BenchmarkVerify measures Verify end to end (parse, key set, signature,
// claims, replay insert) with inline jwks, and with a cached jwks_uri.
func BenchmarkVerify(b *testing.B) {
	fk := fixtures()
	for _, bc := range []struct {
		name, alg string
		k         *testKey
		uri       bool
	}{
		{"RS256", "RS256", fk.rsa, false},
		{"PS256", "PS256", fk.rsa, false},
		{"ES256", "ES256", fk.ec, false},
		{"EdDSA", "EdDSA", fk.ed, false},
		{"RS256-jwks_uri", "RS256", fk.rsa, true},
		{"ES256-jwks_uri", "ES256", fk.ec, true},
	} {
		b.Run(bc.name, func(b *testing.B) {
			assertions := pool(b, bc.alg, bc.k)
			doc := jwks(b, jwk(b, fk.rsa2, nil), jwk(b, bc.k, nil))
			keys := KeySource{JWKS: doc}
			f := newFakeFetcher()
			if bc.uri {
				keys = KeySource{JWKSURI: jwksURI}
				f.set(jwksURI, doc, nil)
			}
			clock := testclock.New(t0)
			mk := func() *Verifier {
				return newVerifier(b, clock, func(o *Options) { o.Fetch = f.Fetch; o.KeySetMaxAge = time.Hour })
			}
			v := mk()
			ctx := context.Background()
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if i%benchPool == 0 && i > 0 {
					b.StopTimer()
					v = mk()
					b.StartTimer()
				}
				if err := v.Verify(ctx, clientA, keys, AssertionType, assertions[i%benchPool]); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
