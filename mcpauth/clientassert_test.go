package mcpauth

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/modelcontextprotocol/go-sdk/oauthex"

	oauth "github.com/mcp-oauth/oauth"
	"github.com/mcp-oauth/oauth/provider"
)

// assertionSigner signs client assertions with one key.
type assertionSigner struct {
	key crypto.Signer
	alg jose.SignatureAlgorithm
	kid string
}

func newRSASigner(t *testing.T, kid string) *assertionSigner {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return &assertionSigner{key: k, alg: jose.RS256, kid: kid}
}

// jwks is the JWK Set of the signers' public keys.
func jwks(t *testing.T, signers ...*assertionSigner) string {
	var set jose.JSONWebKeySet
	for _, s := range signers {
		set.Keys = append(set.Keys, jose.JSONWebKey{Key: s.key.Public(), KeyID: s.kid, Use: "sig", Algorithm: string(s.alg)})
	}
	b, err := json.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// sign returns a compact JWS of claims, signed with alg (s.alg when "").
func (s *assertionSigner) sign(t *testing.T, claims map[string]any, alg jose.SignatureAlgorithm) string {
	if alg == "" {
		alg = s.alg
	}
	opts := (&jose.SignerOptions{}).WithType("JWT")
	if s.kid != "" {
		opts = opts.WithHeader("kid", s.kid)
	}
	sig, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: s.key}, opts)
	if err != nil {
		t.Fatal(err)
	}
	payload, _ := json.Marshal(claims)
	obj, err := sig.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	out, err := obj.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestPrivateKeyJWT: a client configured with public keys authenticates
// at the token endpoint with an RFC 7523 §2.2 assertion (here for the
// client credentials grant, as a machine client of SEP-1046 does), and
// every malformed, misdirected, stale or replayed assertion is
// invalid_client.
func TestPrivateKeyJWT(t *testing.T) {
	rsaKey := newRSASigner(t, "r1")
	ecPriv, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ecKey := &assertionSigner{key: ecPriv, alg: jose.ES256, kid: "e1"}
	stranger := newRSASigner(t, "r1") // same kid, another key
	keysDoc := jwks(t, ecKey)
	docs := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(keysDoc))
	}))
	defer docs.Close()
	pool := docs.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs
	md := func(keys, keysURI string) oauthex.ClientRegistrationMetadata {
		return oauthex.ClientRegistrationMetadata{GrantTypes: []string{oauth.GrantTypeClientCredentials},
			TokenEndpointAuthMethod: oauth.AuthMethodPrivateKeyJWT, JWKS: keys, JWKSURI: keysURI}
	}
	f := newMachineFixture(t, func(o *Options) {
		o.ProviderOptions.Clients = []provider.StaticClient{
			{ID: "job", ClientRegistrationMetadata: md(jwks(t, rsaKey), "")},
			{ID: "remote-keys", ClientRegistrationMetadata: md("", docs.URL+"/jwks.json")},
		}
		o.ClientIDMetadataDocuments.AllowPrivateAddresses, o.ClientIDMetadataDocuments.RootCAs = true, pool
	})
	meta := f.get("/.well-known/oauth-authorization-server")
	if got, _ := json.Marshal(meta.json["token_endpoint_auth_methods_supported"]); string(got) != `["none","client_secret_basic","client_secret_post","private_key_jwt"]` {
		t.Errorf("token_endpoint_auth_methods_supported = %s", got)
	}
	tokenURL := f.base + "/token"
	claims := func(id string, kv ...any) map[string]any {
		now := time.Now()
		c := map[string]any{"iss": id, "sub": id, "aud": tokenURL, "jti": rand.Text(), "iat": now.Unix(), "exp": now.Add(time.Minute).Unix()}
		for i := 0; i+1 < len(kv); i += 2 {
			if kv[i+1] == nil {
				delete(c, kv[i].(string))
			} else {
				c[kv[i].(string)] = kv[i+1]
			}
		}
		return c
	}
	post := func(assertion string, kv ...string) *response {
		form := url.Values{"grant_type": {"client_credentials"}, "client_assertion_type": {ClientAssertionType}, "client_assertion": {assertion}}
		for i := 0; i+1 < len(kv); i += 2 {
			form.Set(kv[i], kv[i+1])
		}
		return f.post("/token", form, nil)
	}
	for _, tc := range []struct {
		name      string
		assertion string
		kv        []string
	}{
		{"RS256, aud the token endpoint", rsaKey.sign(t, claims("job"), ""), []string{"client_id", "job"}},
		{"without client_id", rsaKey.sign(t, claims("job"), ""), nil},
		{"aud with a trailing slash", rsaKey.sign(t, claims("job", "aud", tokenURL+"/"), ""), nil},
		{"aud the issuer, in an array", rsaKey.sign(t, claims("job", "aud", []string{"https://other.example", f.base}), ""), nil},
		{"ES256 key from jwks_uri", ecKey.sign(t, claims("remote-keys"), ""), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if r := post(tc.assertion, tc.kv...); r.status != 200 || r.str("access_token") == "" {
				t.Errorf("got %d %s", r.status, r.body)
			}
		})
	}
	replayed := rsaKey.sign(t, claims("job"), "")
	if r := post(replayed); r.status != 200 {
		t.Fatalf("first use: %d %s", r.status, r.body)
	}
	for _, tc := range []struct {
		name      string
		assertion string
		kv        []string
		code      string
	}{
		{"replayed jti", replayed, nil, "invalid_client"},
		{"PS256 with a key whose alg is RS256", rsaKey.sign(t, claims("job"), jose.PS256), nil, "invalid_client"},
		{"wrong assertion type", rsaKey.sign(t, claims("job"), ""), []string{"client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:saml2-bearer"}, "invalid_client"},
		{"and a secret too", rsaKey.sign(t, claims("job"), ""), []string{"client_secret", "x"}, "invalid_request"},
		{"another client's id", rsaKey.sign(t, claims("job"), ""), []string{"client_id", "remote-keys"}, "invalid_client"},
		{"iss not the client", rsaKey.sign(t, claims("job", "iss", "someone"), ""), nil, "invalid_client"},
		{"another audience", rsaKey.sign(t, claims("job", "aud", "https://other.example/token"), ""), nil, "invalid_client"},
		{"expired", rsaKey.sign(t, claims("job", "exp", time.Now().Add(-time.Hour).Unix()), ""), nil, "invalid_client"},
		{"no exp", rsaKey.sign(t, claims("job", "exp", nil), ""), nil, "invalid_client"},
		{"exp an hour ahead", rsaKey.sign(t, claims("job", "exp", time.Now().Add(time.Hour).Unix()), ""), nil, "invalid_client"},
		{"not yet valid", rsaKey.sign(t, claims("job", "nbf", time.Now().Add(time.Hour).Unix()), ""), nil, "invalid_client"},
		{"no jti", rsaKey.sign(t, claims("job", "jti", nil), ""), nil, "invalid_client"},
		{"signed by another key of the same kid", stranger.sign(t, claims("job"), ""), nil, "invalid_client"},
		{"unknown kid", (&assertionSigner{key: rsaKey.key, alg: jose.RS256, kid: "r2"}).sign(t, claims("job"), ""), nil, "invalid_client"},
		{"ES256 header, RSA client key", (&assertionSigner{key: ecPriv, alg: jose.ES256, kid: "r1"}).sign(t, claims("job"), ""), nil, "invalid_client"},
		{"HS256 with the public key as secret", hs256(t, claims("job")), nil, "invalid_client"},
		{"alg none", unsigned(claims("job")), nil, "invalid_client"},
		{"garbage", "not.a.jws", []string{"client_id", "job"}, "invalid_client"},
		{"a secret client's assertion", rsaKey.sign(t, claims("svc"), ""), []string{"client_id", "svc"}, "invalid_client"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if r := post(tc.assertion, tc.kv...); r.str("error") != tc.code {
				t.Errorf("got %d %s, want %s", r.status, r.body, tc.code)
			}
		})
	}
}

// hs256 signs claims with HMAC, keyed by some bytes an attacker knows.
func hs256(t *testing.T, claims map[string]any) string {
	sig, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.HS256, Key: []byte("the client's public key bytes, as an attacker would use them")},
		(&jose.SignerOptions{}).WithHeader("kid", "r1"))
	if err != nil {
		t.Fatal(err)
	}
	payload, _ := json.Marshal(claims)
	obj, _ := sig.Sign(payload)
	s, _ := obj.CompactSerialize()
	return s
}

func unsigned(claims map[string]any) string {
	payload, _ := json.Marshal(claims)
	b64 := base64.RawURLEncoding.EncodeToString
	return b64([]byte(`{"alg":"none","kid":"r1"}`)) + "." + b64(payload) + "."
}

// TestRegisterPrivateKeyJWT: registration accepts private_key_jwt with
// inline public keys or an https jwks_uri, issues no secret, and refuses
// private keys, both or neither, and non-https URIs.
func TestRegisterPrivateKeyJWT(t *testing.T) {
	f := newFixture(t, nil)
	k := newRSASigner(t, "k1")
	pub := jwks(t, k)
	priv, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: k.key, KeyID: "k1"}}})
	reg := func(extra string) *response {
		return f.postJSON("/register", `{"redirect_uris":["https://app.example.com/cb"],"token_endpoint_auth_method":"private_key_jwt"`+extra+`}`, nil)
	}
	keysJSON, _ := json.Marshal(pub)
	if r := reg(`,"jwks":` + string(keysJSON)); r.status != 201 || r.str("client_secret") != "" {
		t.Errorf("inline jwks: %d %s", r.status, r.body)
	}
	if r := reg(`,"jwks_uri":"https://app.example.com/jwks.json"`); r.status != 201 || r.str("client_secret") != "" {
		t.Errorf("jwks_uri: %d %s", r.status, r.body)
	}
	privJSON, _ := json.Marshal(string(priv))
	for name, extra := range map[string]string{
		"private key": `,"jwks":` + string(privJSON),
		"neither":     ``,
		"both":        `,"jwks":` + string(keysJSON) + `,"jwks_uri":"https://app.example.com/jwks.json"`,
		"http uri":    `,"jwks_uri":"http://app.example.com/jwks.json"`,
		"not a JWKS":  `,"jwks":"{\"keys\":7}"`,
	} {
		if r := reg(extra); r.status != 400 || r.str("error") != "invalid_client_metadata" {
			t.Errorf("%s: %d %s", name, r.status, r.body)
		}
	}
}

// FuzzClientAssertion: whatever the assertion and its client_id, the token
// endpoint refuses it (no client has keys that signed it) without a
// panic, and the description never quotes it.
func FuzzClientAssertion(f *testing.F) {
	s, _ := fuzzServer(f)
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	c := &oauth.Client{ID: "job", ClientRegistrationMetadata: oauthex.ClientRegistrationMetadata{
		TokenEndpointAuthMethod: oauth.AuthMethodPrivateKeyJWT, JWKS: `{"keys":[{"kty":"EC","crv":"P-256","kid":"e1","x":"` +
			base64.RawURLEncoding.EncodeToString(k.X.FillBytes(make([]byte, 32))) + `","y":"` + base64.RawURLEncoding.EncodeToString(k.Y.FillBytes(make([]byte, 32))) + `"}]}`}}
	f.Add("eyJhbGciOiJFUzI1NiIsImtpZCI6ImUxIn0.eyJpc3MiOiJqb2IiLCJzdWIiOiJqb2IifQ.AAAA")
	f.Add("eyJhbGciOiJub25lIn0.eyJzdWIiOiJqb2IifQ.")
	f.Add("..")
	f.Fuzz(func(t *testing.T, assertion string) {
		s.assertions.UnverifiedClientID(assertion)
		e := s.verifyClientAssertion(context.Background(), c, ClientAssertionType, assertion)
		if e == nil {
			t.Fatalf("assertion %q accepted", assertion)
		}
		if len(assertion) > 8 && strings.Contains(e.Description, assertion) {
			t.Fatalf("description quotes the assertion: %s", e.Description)
		}
	})
}

// TestDocumentClientAssertion: a metadata-document client that prefers
// private_key_jwt and offers none (ChatGPT's document) is used as a public
// client, and when it sends an assertion anyway, the assertion is verified
// with the document's keys: a good one passes, a forged one is refused.
func TestDocumentClientAssertion(t *testing.T) {
	docs := newDocHost(t)
	f := newFixture(t, docs.options)
	key := newRSASigner(t, "chatgpt-1")
	keys, _ := json.Marshal(json.RawMessage(jwks(t, key)))
	id := docs.add("/oauth/client.json", `{"client_id":"%s","client_name":"ChatGPT","redirect_uris":["https://chatgpt.example/cb"],
		"token_endpoint_auth_method":"private_key_jwt","token_endpoint_auth_methods_supported":["none","private_key_jwt"],"jwks":`+string(keys)+`}`)
	c := client{id: id, redirect: "https://chatgpt.example/cb"}
	assertion := func(s *assertionSigner) string {
		now := time.Now()
		return s.sign(t, map[string]any{"iss": id, "sub": id, "aud": f.base + "/token", "jti": rand.Text(), "iat": now.Unix(), "exp": now.Add(time.Minute).Unix()}, "")
	}
	exchange := func(a string) *response {
		u := f.authorize(authParams(c), f.approve("alice"))
		form := url.Values{"grant_type": {"authorization_code"}, "code": {u.Query().Get("code")}, "code_verifier": {verifier},
			"redirect_uri": {c.redirect}, "client_id": {id}}
		if a != "" {
			form.Set("client_assertion_type", ClientAssertionType)
			form.Set("client_assertion", a)
		}
		return f.post("/token", form, nil)
	}
	if r := exchange(assertion(key)); r.status != 200 {
		t.Errorf("with the document's key: %d %s", r.status, r.body)
	}
	if r := exchange(""); r.status != 200 {
		t.Errorf("as a public client: %d %s", r.status, r.body)
	}
	if r := exchange(assertion(newRSASigner(t, "chatgpt-1"))); r.status != 401 || r.str("error") != "invalid_client" {
		t.Errorf("with a forged assertion: %d %s", r.status, r.body)
	}
}
