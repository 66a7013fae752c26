package tokenexchange

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
)

// Endpoint returns the token endpoint exchanges are posted to:
// Options.TokenURL, or the one discovered from Options.Issuer (see
// there), which it discovers on its first call. A server that wants to
// fail at startup when its STS is unreachable calls it once there.
func (c *Client) Endpoint(ctx context.Context) (string, error) {
	c.mu.Lock()
	ep := c.endpoint
	c.mu.Unlock()
	if ep != "" {
		return ep, nil
	}
	// One discovery at a time; the others wait for its answer.
	select {
	case c.discover <- struct{}{}:
		defer func() { <-c.discover }()
	case <-ctx.Done():
		return "", fmt.Errorf("tokenexchange: discovery: %w", ctx.Err())
	}
	c.mu.Lock()
	ep = c.endpoint
	c.mu.Unlock()
	if ep != "" {
		return ep, nil
	}
	ep, err := c.discoverEndpoint(ctx)
	if err != nil {
		c.log.WarnContext(ctx, "tokenexchange: discovery failed", "issuer", c.opts.Issuer, "err", err.Error())
		return "", err
	}
	c.mu.Lock()
	c.endpoint = ep
	c.mu.Unlock()
	return ep, nil
}

// metadata is what a Client uses of an RFC 8414 §2 (or OpenID Connect
// Discovery 1.0 §3) document.
type metadata struct {
	Issuer        string `json:"issuer"`
	TokenEndpoint string `json:"token_endpoint"`
	// MTLSEndpointAliases (mtls_endpoint_aliases) are the endpoints a
	// client authenticating with mutual TLS uses (RFC 8705 §5).
	MTLSEndpointAliases struct {
		TokenEndpoint string `json:"token_endpoint"`
	} `json:"mtls_endpoint_aliases"`
	GrantTypesSupported []string `json:"grant_types_supported"`
}

// discoverEndpoint fetches the issuer's metadata: first at the RFC 8414
// §3.1 well-known URI, then at the OpenID Connect Discovery 1.0 §4 one. A
// document whose issuer differs from Options.Issuer is refused (RFC 8414
// §3.3), not skipped.
func (c *Client) discoverEndpoint(ctx context.Context) (string, error) {
	issuer := c.opts.Issuer
	u, err := url.Parse(issuer)
	if err != nil {
		return "", fmt.Errorf("tokenexchange: Issuer: %w", err)
	}
	rfc8414 := u.Scheme + "://" + u.Host + "/.well-known/oauth-authorization-server" + strings.TrimSuffix(u.Path, "/")
	oidc := strings.TrimSuffix(issuer, "/") + "/.well-known/openid-configuration"
	var errs []error
	for _, where := range []string{rfc8414, oidc} {
		body, err := c.get(ctx, where)
		if err != nil {
			if ctx.Err() != nil {
				return "", fmt.Errorf("tokenexchange: discovery: %w", err)
			}
			errs = append(errs, err)
			continue
		}
		var m metadata
		if err := json.Unmarshal(body, &m); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", where, err))
			continue
		}
		if m.Issuer != issuer {
			return "", fmt.Errorf("tokenexchange: the metadata at %s names issuer %q, not %q (RFC 8414 §3.3)", where, m.Issuer, issuer)
		}
		ep := m.TokenEndpoint
		if c.auth.mtls() && m.MTLSEndpointAliases.TokenEndpoint != "" {
			ep = m.MTLSEndpointAliases.TokenEndpoint
		}
		if ep == "" {
			return "", fmt.Errorf("tokenexchange: the metadata at %s has no token_endpoint", where)
		}
		if err := checkURL(ep); err != nil {
			return "", fmt.Errorf("tokenexchange: the metadata at %s: token_endpoint: %w", where, err)
		}
		if len(m.GrantTypesSupported) > 0 && !slices.Contains(m.GrantTypesSupported, GrantType) {
			// RFC 8414 §2 makes the list optional and many servers
			// leave grants out of it: say so, but try.
			c.log.WarnContext(ctx, "tokenexchange: the issuer's metadata does not list the token exchange grant", "issuer", issuer)
		}
		return ep, nil
	}
	return "", fmt.Errorf("tokenexchange: no authorization server metadata for issuer %q: %w", issuer, errors.Join(errs...))
}

// get fetches a discovery document of at most MaxResponseBytes; anything
// but 200 is an error.
func (c *Client) get(ctx context.Context, u string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
		return nil, fmt.Errorf("GET %s: status %d", u, resp.StatusCode)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, MaxResponseBytes+1))
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", u, err)
	}
	if len(b) > MaxResponseBytes {
		return nil, fmt.Errorf("GET %s: response over %d bytes", u, MaxResponseBytes)
	}
	return b, nil
}

// checkIssuer enforces RFC 8414 §2 on an issuer: an https URL (http on a
// loopback host) without query or fragment.
func checkIssuer(s string) error {
	u, err := url.Parse(s)
	if err != nil || u.RawQuery != "" || u.ForceQuery || u.Opaque != "" {
		return fmt.Errorf("%q is not an absolute URL without query, fragment or userinfo", s)
	}
	return checkURL(s)
}

func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
