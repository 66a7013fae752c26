package proxy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/modelcontextprotocol/go-sdk/oauthex"

	oauth "github.com/mcp-oauth/oauth"
)

// Bounds on what the upstream sends back.
const (
	// maxMetadataBytes bounds the upstream's metadata document.
	maxMetadataBytes = 256 << 10
	// maxUpstreamBytes bounds an answer of the upstream's token,
	// revocation or introspection endpoint (JWT access tokens of Entra ID
	// reach a few kilobytes).
	maxUpstreamBytes = 64 << 10
)

// upstreamMeta is the upstream's authorization server metadata (RFC 8414
// §2, or OpenID Provider metadata, which has the same members).
type upstreamMeta struct {
	oauthex.AuthServerMeta
	// basic: authenticate with client_secret_basic, else client_secret_post
	// (or none, without a secret).
	basic bool
}

// discover fetches the upstream's metadata: at the RFC 8414 §3.1
// well-known URI (path insertion), else at the OpenID Connect Discovery
// 1.0 §4 one (path appended). A document naming another issuer is refused
// (RFC 8414 §3.3), not skipped. It does not use go-sdk's client-side
// discovery, whose protection against server-side request forgery refuses
// private addresses: an operator's identity provider on the company
// network is configuration, not untrusted input.
func discover(ctx context.Context, hc *http.Client, issuer string) (*upstreamMeta, error) {
	u, _ := url.Parse(issuer)
	where := []string{
		u.Scheme + "://" + u.Host + MetadataPath + strings.TrimSuffix(u.EscapedPath(), "/"),
		strings.TrimSuffix(issuer, "/") + "/.well-known/openid-configuration",
	}
	var errs []error
	for _, w := range where {
		var m upstreamMeta
		if err := getJSON(ctx, hc, w, &m.AuthServerMeta); err != nil {
			errs = append(errs, err)
			continue
		}
		if m.Issuer != issuer {
			return nil, fmt.Errorf("proxy: the metadata at %s names issuer %q, not %q (RFC 8414 §3.3)", w, m.Issuer, issuer)
		}
		if err := m.check(strings.HasPrefix(issuer, "https:")); err != nil {
			return nil, fmt.Errorf("proxy: the metadata at %s: %w", w, err)
		}
		return &m, nil
	}
	return nil, fmt.Errorf("proxy: no authorization server metadata for upstream %q: %w", issuer, errors.Join(errs...))
}

// check validates what the facade relies on and picks the client
// authentication.
func (m *upstreamMeta) check(https bool) error {
	if m.AuthorizationEndpoint == "" || m.TokenEndpoint == "" {
		return errors.New("authorization_endpoint and token_endpoint are required")
	}
	for _, e := range []struct{ name, v string }{
		{"authorization_endpoint", m.AuthorizationEndpoint}, {"token_endpoint", m.TokenEndpoint},
		{"revocation_endpoint", m.RevocationEndpoint}, {"introspection_endpoint", m.IntrospectionEndpoint},
	} {
		if e.v == "" {
			continue
		}
		u, err := url.Parse(e.v)
		if err != nil || u.Host == "" || u.Fragment != "" || !(u.Scheme == "https" || u.Scheme == "http" && !https) {
			return fmt.Errorf("%s %q is not an absolute %s URL", e.name, e.v, map[bool]string{true: "https", false: "http(s)"}[https])
		}
	}
	// PKCE runs end to end: the upstream must take S256. Providers that do
	// not list the member (Entra ID) support it nonetheless.
	if c := m.CodeChallengeMethodsSupported; len(c) > 0 && !slices.Contains(c, "S256") {
		return errors.New("the upstream does not support PKCE with S256 (code_challenge_methods_supported)")
	}
	// RFC 8414 §2: client_secret_basic when the member is absent.
	am := m.TokenEndpointAuthMethodsSupported
	m.basic = len(am) == 0 || slices.Contains(am, oauth.AuthMethodClientSecretBasic) || !slices.Contains(am, oauth.AuthMethodClientSecretPost)
	return nil
}

// getJSON fetches a JSON document of at most maxMetadataBytes into v.
func getJSON(ctx context.Context, hc *http.Client, u string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
		return fmt.Errorf("GET %s: status %d", u, resp.StatusCode)
	}
	b, err := readBounded(resp.Body, maxMetadataBytes)
	if err != nil {
		return fmt.Errorf("GET %s: %w", u, err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("GET %s: %w", u, err)
	}
	return nil
}

// readBounded reads r to its end, failing past max bytes.
func readBounded(r io.Reader, max int64) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > max {
		return nil, fmt.Errorf("answer over %d bytes", max)
	}
	return b, nil
}

// upstreamAnswer is what an upstream endpoint answered.
type upstreamAnswer struct {
	status int
	json   bool // Content-Type application/json
	body   []byte
}

// post sends form to an upstream endpoint, authenticated as the facade's
// client (RFC 6749 §2.3.1), and reads the bounded answer. An error means
// the upstream could not be reached or answered too much.
func (f *Facade) post(ctx context.Context, endpoint string, form url.Values) (*upstreamAnswer, error) {
	switch {
	case f.opts.ClientSecret == "":
		form.Set("client_id", f.opts.ClientID)
	case !f.up.basic:
		form.Set("client_id", f.opts.ClientID)
		form.Set("client_secret", f.opts.ClientSecret)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, fmt.Errorf("proxy: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	if f.opts.ClientSecret != "" && f.up.basic {
		req.SetBasicAuth(url.QueryEscape(f.opts.ClientID), url.QueryEscape(f.opts.ClientSecret))
	}
	resp, err := f.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("proxy: POST %s: %w", endpoint, err)
	}
	defer resp.Body.Close()
	b, err := readBounded(resp.Body, maxUpstreamBytes)
	if err != nil {
		return nil, fmt.Errorf("proxy: POST %s: %w", endpoint, err)
	}
	mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	return &upstreamAnswer{status: resp.StatusCode, json: mt == "application/json", body: b}, nil
}

// addParams adds the configured extra parameters to form, never replacing
// one the facade set.
func addParams(form url.Values, extra map[string]string) {
	for k, v := range extra {
		if _, ok := form[k]; !ok && !reservedParam[k] {
			form.Set(k, v)
		}
	}
}

// reservedParam are the parameters the facade owns at the upstream.
var reservedParam = map[string]bool{
	"client_id": true, "client_secret": true, "redirect_uri": true, "response_type": true, "scope": true,
	"state": true, "code_challenge": true, "code_challenge_method": true, "resource": true, "grant_type": true,
	"code": true, "code_verifier": true, "refresh_token": true, "client_assertion": true, "client_assertion_type": true,
}
