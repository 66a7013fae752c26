package extauth

import (
	"context"
	"slices"
	"testing"
	"time"
)

// TestIdentityProviderTokens: access tokens shaped like those of
// Keycloak, Entra ID (v2 delegated and v1 app-only), Auth0 and Okta —
// their claims, typ, kid style and algorithms — verify with the options
// their guides give, and map to the subject, client, scopes and roles
// a tool sees.
func TestIdentityProviderTokens(t *testing.T) {
	relaxed := []string{"at+jwt", "JWT", ""}
	for _, tc := range []struct {
		name   string
		path   string // the issuer's path
		key    *testKey
		header []any
		claims func(p *testIdP, now time.Time) map[string]any
		opts   func(o *Options)

		subject, clientID string
		scopes, roles     []string
	}{{
		name: "Keycloak", path: "/realms/acme",
		key: newKey("kKZxXQn8O2aN0Tw2wWV1tU9Lh7e3cYb6pHsDf4gJqRk", RS256, 0), header: []any{"typ", "JWT"},
		claims: func(p *testIdP, now time.Time) map[string]any {
			return map[string]any{
				"exp": now.Add(5 * time.Minute).Unix(), "iat": now.Unix(), "auth_time": now.Unix(),
				"jti": "onrtac:5b2f0c1e-3a5d-4b6e-9f1a-2c3d4e5f6a7b", "iss": p.issuer,
				"aud": []any{"notes-api", "account"}, "sub": "8f14e45f-ceea-467f-a9f5-0b1c2d3e4f5a", "typ": "Bearer",
				"azp": "mcp-client", "sid": "0c1d2e3f", "acr": "1", "allowed-origins": []any{"http://127.0.0.1:3000"},
				"realm_access":    map[string]any{"roles": []any{"offline_access", "uma_authorization", "default-roles-acme", "notes-user"}},
				"resource_access": map[string]any{"notes-api": map[string]any{"roles": []any{"notes-admin"}}, "account": map[string]any{"roles": []any{"manage-account"}}},
				"scope":           "openid email profile notes", "email_verified": true, "preferred_username": "alice",
			}
		},
		opts: func(o *Options) {
			o.Audiences, o.TokenTypes = []string{"notes-api"}, relaxed
			o.Roles.Claims = []RoleClaim{{Path: "realm_access.roles", Map: map[string][]string{"notes-user": {"user"}}}, {Path: "resource_access.notes-api.roles"}}
		},
		subject: "8f14e45f-ceea-467f-a9f5-0b1c2d3e4f5a", clientID: "mcp-client",
		scopes: []string{"openid", "email", "profile", "notes"}, roles: []string{"user", "notes-admin"},
	}, {
		name: "Keycloak with ES256 realm keys", path: "/realms/ec",
		key: newKey("Xr0b4c1e5c", ES256, 0), header: []any{"typ", "JWT"},
		claims: func(p *testIdP, now time.Time) map[string]any {
			return map[string]any{"exp": now.Add(time.Minute).Unix(), "iat": now.Unix(), "iss": p.issuer, "aud": "notes-api",
				"sub": "u1", "azp": "cli", "scope": "notes", "resource_access": map[string]any{"api.example.com": map[string]any{"roles": []any{"reader"}}}}
		},
		opts: func(o *Options) {
			o.Audiences, o.TokenTypes = []string{"notes-api"}, relaxed
			o.Roles.Claims = []RoleClaim{{Path: "resource_access.api.example.com.roles"}} // a client ID with dots
		},
		subject: "u1", clientID: "cli", scopes: []string{"notes"}, roles: []string{"reader"},
	}, {
		name: "Entra ID v2, delegated", path: "/72f988bf-86f1-41af-91ab-2d7cd011db47/v2.0",
		key: newKey("nOo3ZDrODXEK1jKWhXslHR_KXEg", RS256, 1, "-"), header: []any{"typ", "JWT"},
		claims: func(p *testIdP, now time.Time) map[string]any {
			return map[string]any{
				"aud": "api://notes", "iss": p.issuer, "iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(time.Hour).Unix(),
				"aio": "AXQAi/8TAAAA", "azp": "0d3b1b0e-7a2f-4f7e-9a63-1e2b3c4d5e6f", "azpacr": "0", "name": "Alice",
				"oid": "00000000-0000-0000-66f3-3332eca7ea81", "preferred_username": "alice@contoso.com",
				"rh": "0.AAAA", "roles": []any{"Notes.Admin"}, "scp": "Notes.Read Notes.Write",
				"sub": "AAAAAAAAAAAAAAAAAAAAAIkzqFVrSaSaFHy782bbtaQ", "tid": "72f988bf-86f1-41af-91ab-2d7cd011db47",
				"uti": "fqiBqXLPj0eQa82S-IYFAA", "ver": "2.0",
			}
		},
		opts: func(o *Options) {
			o.Audiences, o.TokenTypes = []string{"api://notes"}, relaxed
			o.Roles.Claims = []RoleClaim{{Path: "roles"}, {Path: "scp"}}
		},
		subject: "AAAAAAAAAAAAAAAAAAAAAIkzqFVrSaSaFHy782bbtaQ", clientID: "0d3b1b0e-7a2f-4f7e-9a63-1e2b3c4d5e6f",
		scopes: []string{"Notes.Read", "Notes.Write"}, roles: []string{"Notes.Admin", "Notes.Read", "Notes.Write"},
	}, {
		name: "Entra ID v1, app-only", path: "/72f988bf-86f1-41af-91ab-2d7cd011db47",
		key: newKey("-KI3Q9nNR7bRofxmeZoXqbHZGew", RS256, 2, "-"), header: []any{"typ", "JWT", "x5t", "-KI3Q9nNR7bRofxmeZoXqbHZGew"},
		claims: func(p *testIdP, now time.Time) map[string]any {
			return map[string]any{
				"aud": "https://notes.example.com/mcp", "iss": p.issuer, "iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(time.Hour).Unix(),
				"appid": "11111111-2222-3333-4444-555555555555", "appidacr": "1", "idp": p.issuer, "oid": "9c6f", "roles": []any{"Notes.ReadWrite.All"},
				"sub": "9c6f", "tid": "72f988bf-86f1-41af-91ab-2d7cd011db47", "ver": "1.0",
			}
		},
		opts: func(o *Options) {
			o.TokenTypes = relaxed
			o.Roles.Claims = []RoleClaim{{Path: "roles", Map: map[string][]string{"Notes.ReadWrite.All": {"writer", "reader"}}}}
		},
		subject: "9c6f", clientID: "11111111-2222-3333-4444-555555555555", roles: []string{"writer", "reader"},
	}, {
		name: "Auth0", path: "/",
		key: newKey("QzBCMDlBRjE0RjUxQkY3NDlFMzkxMjgwRkJGRjdGOTQ3NjhCNjJCNQ", RS256, 3), header: []any{"typ", "at+jwt"},
		claims: func(p *testIdP, now time.Time) map[string]any {
			return map[string]any{
				"iss": p.issuer, "sub": "auth0|64f1c0ffee", "aud": []any{"https://notes.example.com/mcp", p.issuer + "userinfo"},
				"iat": now.Unix(), "exp": now.Add(24 * time.Hour).Unix(), "azp": "Xy1abcDEF", "scope": "openid profile notes:read",
				"permissions": []any{"notes:read", "notes:write"}, "https://notes.example.com/roles": []any{"admin"},
				"jti": "8Jf3", "client_id": "Xy1abcDEF",
			}
		},
		opts: func(o *Options) {
			o.Roles.Claims = []RoleClaim{{Path: "permissions"}, {Path: "https://notes.example.com/roles"}}
			o.Roles.Scopes = map[string][]string{"notes:read": {"reader"}}
		},
		subject: "auth0|64f1c0ffee", clientID: "Xy1abcDEF", scopes: []string{"openid", "profile", "notes:read"},
		roles: []string{"reader", "notes:read", "notes:write", "admin"},
	}, {
		name: "Okta", path: "/oauth2/default",
		key: newKey("Ckbx4LxeGb4o-GG5J0Z3tXq0Sv1V5Lw0-Qo5fcq7tZg", RS256, 0), header: []any{"typ", nil},
		claims: func(p *testIdP, now time.Time) map[string]any {
			return map[string]any{
				"ver": 1, "jti": "AT.abc", "iss": p.issuer, "aud": "api://default", "iat": now.Unix(), "exp": now.Add(time.Hour).Unix(),
				"cid": "0oa1b2c3d4", "uid": "00u1b2c3d4", "scp": []any{"openid", "notes.read"}, "auth_time": now.Unix(),
				"sub": "alice@example.com", "groups": []any{"Everyone", "Notes Admins"},
			}
		},
		opts: func(o *Options) {
			o.Audiences, o.TokenTypes = []string{"api://default"}, relaxed
			o.Roles.Claims = []RoleClaim{{Path: "groups", Map: map[string][]string{"Notes Admins": {"admin"}, "Admins": {"never"}}}}
		},
		// An array element is one value, spaces and all.
		subject: "alice@example.com", clientID: "0oa1b2c3d4", scopes: []string{"openid", "notes.read"}, roles: []string{"admin"},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			p := newIdP(t, tc.path, tc.key)
			if tc.name == "Entra ID v2, delegated" || tc.name == "Okta" {
				p.oidcOnly = true
			}
			v := newVerifier(t, p, tc.opts)
			tok := sign(t, tc.key, tc.claims(p, p.clock.Now()), tc.header...)
			at, err := v.Verify(context.Background(), tok)
			if err != nil {
				t.Fatal(err)
			}
			if at.Subject != tc.subject || at.ClientID != tc.clientID || !slices.Equal(at.Scopes, tc.scopes) || !slices.Equal(at.Roles, tc.roles) {
				t.Errorf("got sub %q client %q scopes %q roles %q", at.Subject, at.ClientID, at.Scopes, at.Roles)
			}
			if at.Claims["iss"] != nil || at.Claims["exp"] != nil {
				t.Errorf("registered claims in Claims: %v", at.Claims)
			}
			// Without the relaxed typ, an IdP that sends JWT is refused.
			if tc.header[1] != "at+jwt" {
				strict := newVerifier(t, p, func(o *Options) { tc.opts(o); o.TokenTypes = nil })
				if _, err := strict.Verify(context.Background(), tok); err == nil {
					t.Error("the strict typ check accepted it")
				}
			}
		})
	}
}

// TestRolePaths: nested paths, names with dots, strings and arrays, and
// maps.
func TestRolePaths(t *testing.T) {
	claims := []byte(`{
		"roles": ["a", "b", 7, "a"],
		"scp": "x  y",
		"realm_access": {"roles": ["r1"]},
		"resource_access": {"my": {"client": {"roles": ["wrong"]}}, "my.client": {"roles": ["c1"]}},
		"https://example.com/roles": ["ns"],
		"num": 3,
		"obj": {"x": "y"},
		"dup": ["first"], "dup": ["last"],
		"esc\u0061ped": ["e"]
	}`)
	for _, tc := range []struct {
		path string
		want []string
	}{
		{"roles", []string{"a", "b"}},
		{"scp", []string{"x", "y"}},
		{"realm_access.roles", []string{"r1"}},
		{"resource_access.my.client.roles", []string{"c1"}}, // the longest name wins
		{"https://example.com/roles", []string{"ns"}},
		{"num", nil},
		{"obj", nil},
		{"obj.x", []string{"y"}},
		{"missing", nil},
		{"roles.deeper", nil},
		{"realm_access.missing", nil},
		{"dup", []string{"last"}},
		{"escaped", []string{"e"}},
	} {
		m, err := compileRoles(RoleOptions{Claims: []RoleClaim{{Path: tc.path}}})
		if err != nil {
			t.Fatal(err)
		}
		c, err := newClaimPicker(nil, m).pick(claims)
		if err != nil {
			t.Fatal(err)
		}
		if got := m.roles(c, nil); !slices.Equal(got, tc.want) {
			t.Errorf("%s: %q, want %q", tc.path, got, tc.want)
		}
	}
	m, _ := compileRoles(RoleOptions{Scopes: map[string][]string{"s": {"from-scope", "a"}}, Claims: []RoleClaim{{Path: "roles"}}})
	c, _ := newClaimPicker(nil, m).pick(claims)
	if got := m.roles(c, []string{"s", "t"}); !slices.Equal(got, []string{"from-scope", "a", "b"}) {
		t.Errorf("scopes then claims: %q", got)
	}
	for _, bad := range []string{"", ".", "a.", ".a", "a..b", "1.2.3.4.5.6.7.8.9"} {
		if _, err := compileRoles(RoleOptions{Claims: []RoleClaim{{Path: bad}}}); err == nil {
			t.Errorf("path %q accepted", bad)
		}
	}
	if m, _ := compileRoles(RoleOptions{}); m.roles(c, []string{"s"}) != nil {
		t.Error("no options, but roles")
	}
}
