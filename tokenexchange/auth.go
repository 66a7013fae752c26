package tokenexchange

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/asn1"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"net/url"
	"time"
)

// ClientAssertionType is the client_assertion_type of private_key_jwt
// (RFC 7523 §2.2).
const ClientAssertionType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

// JWS algorithms of client assertions (RFC 7518 §3.1, RFC 8037 §3.1).
const (
	RS256 = "RS256"
	PS256 = "PS256"
	ES256 = "ES256"
	EdDSA = "EdDSA"
)

// authenticator adds the client's credentials to a token request.
type authenticator struct {
	method     string
	id, secret string
	signer     crypto.Signer
	alg, kid   string
	lifetime   time.Duration
	aud        string // "" means the token endpoint
}

func (a *authenticator) mtls() bool {
	return a.method == AuthTLSClient || a.method == AuthSelfSignedTLSClient
}

// newAuthenticator checks that opts name exactly one client credential
// and that it fits AuthMethod.
func newAuthenticator(opts *Options) (authenticator, error) {
	a := authenticator{method: opts.AuthMethod, id: opts.ClientID, secret: opts.ClientSecret, kid: opts.KeyID, aud: opts.AssertionAudience}
	switch opts.AuthMethod {
	case "", AuthClientSecretBasic, AuthClientSecretPost, AuthPrivateKeyJWT, AuthTLSClient, AuthSelfSignedTLSClient:
	default:
		return a, fmt.Errorf("AuthMethod %q: want %s, %s, %s, %s or %s", opts.AuthMethod,
			AuthClientSecretBasic, AuthClientSecretPost, AuthPrivateKeyJWT, AuthTLSClient, AuthSelfSignedTLSClient)
	}
	n := 0
	for _, set := range []bool{opts.ClientSecret != "", opts.PrivateKey != nil, a.mtls()} {
		if set {
			n++
		}
	}
	if n != 1 {
		return a, errors.New("set exactly one client credential: ClientSecret, PrivateKey, or AuthMethod tls_client_auth / self_signed_tls_client_auth")
	}
	if opts.ClientSecret == "" && (a.method == AuthClientSecretBasic || a.method == AuthClientSecretPost) {
		return a, fmt.Errorf("AuthMethod %s needs ClientSecret", a.method)
	}
	if (opts.KeyID != "" || opts.Algorithm != "" || opts.AssertionLifetime != 0) && opts.PrivateKey == nil {
		return a, errors.New("KeyID, Algorithm and AssertionLifetime are for private_key_jwt; PrivateKey is not set")
	}
	switch {
	case opts.ClientSecret != "":
		if a.method == "" {
			a.method = AuthClientSecretBasic
		}
		if a.method != AuthClientSecretBasic && a.method != AuthClientSecretPost {
			return a, fmt.Errorf("AuthMethod %s does not use ClientSecret", a.method)
		}
	case opts.PrivateKey != nil:
		if a.method != "" && a.method != AuthPrivateKeyJWT {
			return a, fmt.Errorf("AuthMethod %s does not use PrivateKey", a.method)
		}
		a.method, a.signer = AuthPrivateKeyJWT, opts.PrivateKey
		alg, err := keyAlgorithm(opts.PrivateKey.Public(), opts.Algorithm)
		if err != nil {
			return a, fmt.Errorf("PrivateKey: %w", err)
		}
		a.alg = alg
		switch l := opts.AssertionLifetime; {
		case l == 0:
			a.lifetime = DefaultAssertionLifetime
		case l < 0 || l > 10*time.Minute:
			return a, fmt.Errorf("AssertionLifetime %v: want a positive duration of at most 10 minutes", l)
		default:
			a.lifetime = l
		}
	default: // mutual TLS
		if err := checkClientCert(opts.HTTPClient); err != nil {
			return a, fmt.Errorf("AuthMethod %s: %w", a.method, err)
		}
	}
	return a, nil
}

// checkClientCert requires an HTTP client whose transport can present a
// client certificate, as far as it can tell: a custom RoundTripper is
// trusted to.
func checkClientCert(hc *http.Client) error {
	if hc == nil {
		return errors.New("HTTPClient is required: its transport presents the client certificate (RFC 8705 §2)")
	}
	var t *http.Transport
	switch rt := hc.Transport.(type) {
	case nil:
		t, _ = http.DefaultTransport.(*http.Transport)
	case *http.Transport:
		t = rt
	default:
		return nil
	}
	if t == nil || t.TLSClientConfig == nil || (len(t.TLSClientConfig.Certificates) == 0 && t.TLSClientConfig.GetClientCertificate == nil) {
		return errors.New("HTTPClient's transport has no client certificate (TLSClientConfig.Certificates or GetClientCertificate)")
	}
	return nil
}

// keyAlgorithm checks that alg (or, if empty, the default for the key)
// fits the public key pub.
func keyAlgorithm(pub crypto.PublicKey, alg string) (string, error) {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		if k.N.BitLen() < 2048 {
			return "", fmt.Errorf("an RSA key of %d bits: want 2048 or more", k.N.BitLen())
		}
		switch alg {
		case "":
			return RS256, nil
		case RS256, PS256:
			return alg, nil
		}
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() {
			return "", errors.New("an ECDSA key not on P-256: want P-256 (ES256)")
		}
		if alg == "" || alg == ES256 {
			return ES256, nil
		}
	case ed25519.PublicKey:
		if alg == "" || alg == EdDSA {
			return EdDSA, nil
		}
	default:
		return "", fmt.Errorf("a %T key: want RSA, ECDSA P-256 or Ed25519", pub)
	}
	return "", fmt.Errorf("Algorithm %q does not fit a %T key", alg, pub)
}

// authenticate adds the credentials to the form and headers of a request
// to endpoint.
func (a *authenticator) authenticate(form url.Values, h http.Header, endpoint string, now time.Time) error {
	switch a.method {
	case AuthClientSecretBasic:
		// RFC 6749 §2.3.1: the id and secret are form-urlencoded before
		// they are joined and base64-encoded.
		cred := url.QueryEscape(a.id) + ":" + url.QueryEscape(a.secret)
		h.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(cred)))
	case AuthClientSecretPost:
		form.Set("client_id", a.id)
		form.Set("client_secret", a.secret)
	case AuthPrivateKeyJWT:
		aud := a.aud
		if aud == "" {
			aud = endpoint
		}
		jwt, err := a.assertion(aud, now)
		if err != nil {
			return fmt.Errorf("sign the client assertion: %w", err)
		}
		form.Set("client_id", a.id)
		form.Set("client_assertion_type", ClientAssertionType)
		form.Set("client_assertion", jwt)
	default: // mutual TLS: the certificate is in the handshake (RFC 8705 §2)
		form.Set("client_id", a.id)
	}
	return nil
}

var b64 = base64.RawURLEncoding

// assertion signs a client assertion (RFC 7523 §3, OpenID Connect Core
// 1.0 §9): iss and sub the client_id, aud the token endpoint (or
// AssertionAudience), a fresh jti, iat now and exp a lifetime later.
func (a *authenticator) assertion(aud string, now time.Time) (string, error) {
	header := map[string]string{"alg": a.alg, "typ": "JWT"}
	if a.kid != "" {
		header["kid"] = a.kid
	}
	hb, err := json.Marshal(header)
	if err != nil {
		return "", err
	}
	cb, err := json.Marshal(map[string]any{
		"iss": a.id, "sub": a.id, "aud": aud,
		"jti": rand.Text(), // 130 random bits
		"iat": now.Unix(), "exp": now.Add(a.lifetime).Unix(),
	})
	if err != nil {
		return "", err
	}
	input := b64.EncodeToString(hb) + "." + b64.EncodeToString(cb)
	sig, err := sign(a.signer, a.alg, []byte(input))
	if err != nil {
		return "", err
	}
	return input + "." + b64.EncodeToString(sig), nil
}

// sign computes the JWS signature of input (RFC 7518 §3.3-§3.5, RFC 8037
// §3.1) with any crypto.Signer, so that keys held by a KMS or HSM work.
func sign(s crypto.Signer, alg string, input []byte) ([]byte, error) {
	if alg == EdDSA {
		return s.Sign(rand.Reader, input, crypto.Hash(0))
	}
	digest := sha256.Sum256(input)
	switch alg {
	case RS256:
		return s.Sign(rand.Reader, digest[:], crypto.SHA256)
	case PS256:
		return s.Sign(rand.Reader, digest[:], &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash, Hash: crypto.SHA256})
	case ES256:
		der, err := s.Sign(rand.Reader, digest[:], crypto.SHA256)
		if err != nil {
			return nil, err
		}
		// A crypto.Signer answers ASN.1; JWS wants R || S, 32 bytes each
		// (RFC 7518 §3.4).
		var rs struct{ R, S *big.Int }
		if rest, err := asn1.Unmarshal(der, &rs); err != nil || len(rest) > 0 || rs.R == nil || rs.S == nil ||
			rs.R.Sign() <= 0 || rs.S.Sign() <= 0 || rs.R.BitLen() > 256 || rs.S.BitLen() > 256 {
			return nil, errors.New("the ECDSA signer answered a malformed signature")
		}
		out := make([]byte, 64)
		rs.R.FillBytes(out[:32])
		rs.S.FillBytes(out[32:])
		return out, nil
	}
	return nil, fmt.Errorf("unsupported algorithm %q", alg)
}
