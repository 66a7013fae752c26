package extauth

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

// benchClaims are Keycloak-shaped claims (~700 bytes of JSON).
func benchClaims(p *testIdP, jti string) map[string]any {
	now := p.clock.Now()
	return map[string]any{
		"exp": now.Add(time.Hour).Unix(), "iat": now.Unix(), "auth_time": now.Unix(), "jti": jti, "iss": p.issuer,
		"aud": []any{testAudience, "account"}, "sub": "8f14e45f-ceea-467f-a9f5-0b1c2d3e4f5a", "typ": "Bearer", "azp": "mcp-client",
		"sid": "0c1d2e3f-4a5b-6c7d-8e9f-0a1b2c3d4e5f", "acr": "1", "allowed-origins": []any{"http://127.0.0.1:3000"},
		"realm_access":    map[string]any{"roles": []any{"offline_access", "uma_authorization", "default-roles-acme", "notes-user"}},
		"resource_access": map[string]any{"account": map[string]any{"roles": []any{"manage-account", "view-profile"}}},
		"scope":           "openid email profile notes", "email_verified": true, "name": "Alice Liddell",
		"preferred_username": "alice", "given_name": "Alice", "family_name": "Liddell", "email": "alice@example.com",
	}
}

// smallClaims are Auth0-shaped claims (~330 bytes of JSON).
func smallClaims(p *testIdP, jti string) map[string]any {
	now := p.clock.Now()
	return map[string]any{
		"iss": p.issuer, "sub": "auth0|64f1c0ffee", "aud": []any{testAudience, p.issuer + "/userinfo"},
		"iat": now.Unix(), "exp": now.Add(time.Hour).Unix(), "azp": "Xy1abcDEF", "scope": "openid profile notes:read",
		"permissions": []any{"notes:read", "notes:write"}, "jti": jti,
	}
}

// BenchmarkVerify measures external-token verification per algorithm:
//
//   - seen: a token verified before (the verified-token cache answers);
//     also reports p50 and p99 over 20,000 timed calls;
//   - seen-parallel: the same from every core;
//   - unseen: a token never verified before: signature, claims, roles
//     and the cache insertion (the cache is emptied, untimed, after each
//     pass over 256 distinct tokens);
//   - raw: the signature check alone (golang-jwt's Verify), the floor
//     that unseen is compared with;
//   - ratio: raw and unseen of the same token in turn, reporting
//     unseen/raw (robust to load on the machine).
func BenchmarkVerify(b *testing.B) {
	ctx := context.Background()
	for _, tc := range []struct {
		alg, size string
	}{{RS256, ""}, {ES256, ""}, {EdDSA, ""}, {RS256, "-small"}, {ES256, "-small"}} {
		alg, claims := tc.alg, benchClaims
		if tc.size != "" {
			claims = smallClaims
		}
		k := newKey("k-"+alg, alg, 0)
		p := newIdP(b, "/realms/acme", k)
		v := newVerifier(b, p, func(o *Options) {
			o.Logger = nil
			o.TokenTypes = []string{"at+jwt", "JWT"}
			o.Roles.Claims = []RoleClaim{{Path: "realm_access.roles"}, {Path: "resource_access.notes-api.roles"}, {Path: "permissions"}}
		})
		pool := make([]string, 256)
		for i := range pool {
			pool[i] = sign(b, k, claims(p, fmt.Sprint("jti-", i)), "typ", "JWT")
		}
		if _, err := v.Verify(ctx, pool[0]); err != nil {
			b.Fatal(err)
		}

		b.Run(alg+tc.size+"/seen", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := v.Verify(ctx, pool[0]); err != nil {
					b.Fatal(err)
				}
			}
			lat := make([]time.Duration, 20000)
			for i := range lat {
				start := time.Now()
				v.Verify(ctx, pool[0])
				lat[i] = time.Since(start)
			}
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds()), "p50-ns")
			b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds()), "p99-ns")
		})
		b.Run(alg+tc.size+"/seen-parallel", func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := v.Verify(ctx, pool[0]); err != nil {
						b.Fatal(err)
					}
				}
			})
		})
		b.Run(alg+tc.size+"/unseen", func(b *testing.B) {
			b.ReportAllocs()
			v.cache.Clear()
			hits := v.Stats().CacheHits
			i := 0
			for b.Loop() {
				if i == len(pool) {
					b.StopTimer()
					v.cache.Clear()
					i = 0
					b.StartTimer()
				}
				if _, err := v.Verify(ctx, pool[i]); err != nil {
					b.Fatal(err)
				}
				i++
			}
			if v.Stats().CacheHits != hits {
				b.Fatal("unseen tokens were cache hits")
			}
		})
		type split struct {
			in  string
			sig []byte
		}
		raw := make([]split, len(pool))
		for i, tok := range pool {
			dot := strings.LastIndexByte(tok, '.')
			sig, _ := b64.DecodeString(tok[dot+1:])
			raw[i] = split{tok[:dot], sig}
		}
		m, pub := method(alg), k.priv.Public()
		// ratio alternates the raw check and the whole verification of
		// the same never-seen token, so that load on the machine weighs on
		// both alike, and reports the ratio of their times.
		b.Run(alg+tc.size+"/ratio", func(b *testing.B) {
			v.cache.Clear()
			var tRaw, tFull time.Duration
			i := 0
			for b.Loop() {
				if i == len(pool) {
					v.cache.Clear()
					i = 0
				}
				t0 := time.Now()
				if err := m.Verify(raw[i].in, raw[i].sig, pub); err != nil {
					b.Fatal(err)
				}
				t1 := time.Now()
				if _, err := v.Verify(ctx, pool[i]); err != nil {
					b.Fatal(err)
				}
				tFull += time.Since(t1)
				tRaw += t1.Sub(t0)
				i++
			}
			b.ReportMetric(float64(tFull)/float64(tRaw), "unseen/raw")
			b.ReportMetric(float64(tRaw.Nanoseconds())/float64(b.N), "raw-ns")
			b.ReportMetric(float64(tFull.Nanoseconds())/float64(b.N), "unseen-ns")
		})
		b.Run(alg+tc.size+"/raw", func(b *testing.B) {
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				r := raw[i%len(raw)]
				if err := m.Verify(r.in, r.sig, pub); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
	}
}
