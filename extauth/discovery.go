package extauth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
)

// maxMetadataBytes bounds an authorization server metadata document.
const maxMetadataBytes = 256 << 10

// Metadata is what a Verifier uses of the issuer's authorization server
// metadata (RFC 8414 §2) or OpenID Provider metadata (OpenID Connect
// Discovery 1.0 §3).
type Metadata struct {
	// Issuer (issuer) is the issuer identifier; it must equal
	// Options.Issuer exactly (RFC 8414 §3.3).
	Issuer string `json:"issuer"`
	// JWKSURI (jwks_uri) is where the issuer publishes its signing keys;
	// empty when it issues no JWTs (then only introspection verifies).
	JWKSURI string `json:"jwks_uri,omitempty"`
	// IntrospectionEndpoint (introspection_endpoint) is the RFC 7662
	// endpoint, if any.
	IntrospectionEndpoint string `json:"introspection_endpoint,omitempty"`
	// ScopesSupported (scopes_supported) are the scopes the issuer names.
	ScopesSupported []string `json:"scopes_supported,omitempty"`
}

// discover fetches the issuer's metadata: first at the RFC 8414 §3.1
// well-known URI (/.well-known/oauth-authorization-server inserted before
// the issuer's path), then at the OpenID Connect Discovery 1.0 §4 one
// (/.well-known/openid-configuration appended). A document whose issuer
// differs from issuer is refused (RFC 8414 §3.3), not skipped.
func discover(ctx context.Context, get getFunc, issuer string) (*Metadata, error) {
	u, err := url.Parse(issuer)
	if err != nil {
		return nil, err
	}
	rfc8414 := u.Scheme + "://" + u.Host + "/.well-known/oauth-authorization-server" + strings.TrimSuffix(u.Path, "/")
	oidc := strings.TrimSuffix(issuer, "/") + "/.well-known/openid-configuration"
	var errs []error
	for _, where := range []string{rfc8414, oidc} {
		body, _, err := get(ctx, where, maxMetadataBytes)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		var m Metadata
		if err := json.Unmarshal(body, &m); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", where, err))
			continue
		}
		if m.Issuer != issuer {
			return nil, fmt.Errorf("extauth: the metadata at %s names issuer %q, not %q (RFC 8414 §3.3)", where, m.Issuer, issuer)
		}
		for _, e := range []struct{ name, v string }{{"jwks_uri", m.JWKSURI}, {"introspection_endpoint", m.IntrospectionEndpoint}} {
			if e.v != "" {
				if err := checkURL(e.v, strings.HasPrefix(issuer, "https:")); err != nil {
					return nil, fmt.Errorf("extauth: the metadata at %s: %s: %w", where, e.name, err)
				}
			}
		}
		return &m, nil
	}
	return nil, fmt.Errorf("extauth: no authorization server metadata for issuer %q: %w", issuer, errors.Join(errs...))
}

// checkIssuer enforces RFC 8414 §2 on an issuer: an https URL without
// query or fragment; http only on a loopback host (tests, development).
func checkIssuer(s string) error {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" || u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || u.User != nil || u.Opaque != "" {
		return fmt.Errorf("%q is not an absolute URL without query, fragment or userinfo", s)
	}
	return checkURL(s, true)
}

// checkURL requires an absolute https URL, or http on a loopback host;
// with https false, http is allowed anywhere.
func checkURL(s string, https bool) error {
	u, err := url.Parse(s)
	if err != nil || u.Host == "" {
		return fmt.Errorf("%q is not an absolute URL", s)
	}
	switch {
	case u.Scheme == "https":
		return nil
	case u.Scheme == "http" && (!https || isLoopback(u.Hostname())):
		return nil
	}
	return fmt.Errorf("%q is not an https URL (http is for loopback hosts only)", s)
}

func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// get fetches u with a body of at most max bytes; anything but 200 is an
// error.
func (v *Verifier) get(ctx context.Context, u string, max int64) ([]byte, http.Header, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, nil, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := v.hc.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
		return nil, nil, fmt.Errorf("GET %s: status %d", u, resp.StatusCode)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, max+1))
	if err != nil {
		return nil, nil, fmt.Errorf("GET %s: %w", u, err)
	}
	if int64(len(b)) > max {
		return nil, nil, fmt.Errorf("GET %s: response over %d bytes", u, max)
	}
	return b, resp.Header, nil
}
