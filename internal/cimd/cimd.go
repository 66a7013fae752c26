// Package cimd resolves OAuth Client ID Metadata Documents
// (draft-ietf-oauth-client-id-metadata-document): a client whose client_id
// is an https URL is described by the JSON document at that URL.
//
// Fetching a URL that any client can choose is a server-side request
// forgery risk (draft §8.6), so the fetcher only speaks https, dials only
// public addresses (checked on the resolved IP at connect time, so DNS
// rebinding cannot get around it), follows no redirects, ignores proxy
// settings, bounds time and size (draft §8.7: 5 KB), and caches documents
// per Cache-Control within bounds (draft §5.2).
package cimd

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/modelcontextprotocol/go-sdk/oauthex"

	oauth "github.com/mcp-oauth/oauth"
	"github.com/mcp-oauth/oauth/internal/redirect"
)

// Defaults.
const (
	DefaultMaxBytes   = 5 << 10
	DefaultTimeout    = 5 * time.Second
	DefaultMaxAge     = 24 * time.Hour
	DefaultMinAge     = 5 * time.Minute // used when the response sets no freshness
	DefaultMaxEntries = 1024
	failureTTL        = 10 * time.Second
	// MaxConcurrentFetches bounds outbound fetches at once, so unauthenticated
	// requests naming random client_id URLs cannot pile up goroutines or use
	// the server to reflect traffic; beyond it, requests fail fast.
	MaxConcurrentFetches = 16
)

// Options configure a Fetcher. The zero value is the safe default.
type Options struct {
	// AllowHosts, if non-empty, lists the only hosts whose documents are
	// fetched. An entry "example.com" matches that host; ".example.com"
	// matches its subdomains.
	AllowHosts []string
	// DenyHosts lists hosts never fetched, in the same syntax.
	DenyHosts []string
	// AllowPrivateAddresses permits loopback, private and link-local
	// destinations: for tests and intranets only.
	AllowPrivateAddresses bool
	// RootCAs replaces the system roots (tests).
	RootCAs *x509.CertPool
	// Timeout bounds a whole fetch; zero means DefaultTimeout.
	Timeout time.Duration
	// MaxAge caps how long a document is cached; zero means 24 h.
	MaxAge time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Fetcher resolves client_id URLs to clients. It is safe for concurrent use.
type Fetcher struct {
	opts   Options
	client *http.Client

	mu       sync.Mutex
	cache    map[string]*entry
	inflight map[string]*call
	slots    chan struct{} // bounds concurrent fetches
}

type entry struct {
	client  *oauth.Client
	err     error
	expires time.Time
}

type call struct {
	done   chan struct{}
	client *oauth.Client
	err    error
}

// New returns a Fetcher.
func New(opts Options) *Fetcher {
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.MaxAge <= 0 {
		opts.MaxAge = DefaultMaxAge
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	dialer := &net.Dialer{Timeout: opts.Timeout, Control: func(network, address string, _ syscall.RawConn) error {
		if opts.AllowPrivateAddresses {
			return nil
		}
		ap, err := netip.ParseAddrPort(address)
		if err != nil {
			return fmt.Errorf("cimd: unexpected dial address: %w", err)
		}
		if !PublicAddr(ap.Addr()) {
			return errNotPublic
		}
		return nil
	}}
	tr := &http.Transport{
		Proxy:                  nil, // a proxy would make the address check meaningless
		DialContext:            dialer.DialContext,
		TLSClientConfig:        &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: opts.RootCAs},
		TLSHandshakeTimeout:    opts.Timeout,
		ResponseHeaderTimeout:  opts.Timeout,
		MaxResponseHeaderBytes: 16 << 10,
		DisableCompression:     true,
		MaxIdleConns:           16,
		IdleConnTimeout:        30 * time.Second,
		ForceAttemptHTTP2:      true,
	}
	return &Fetcher{
		opts: opts,
		client: &http.Client{
			Transport: tr,
			Timeout:   opts.Timeout,
			CheckRedirect: func(*http.Request, []*http.Request) error {
				return errRedirect // draft §5: the document is served directly
			},
		},
		cache:    map[string]*entry{},
		inflight: map[string]*call{},
		slots:    make(chan struct{}, MaxConcurrentFetches),
	}
}

var (
	errNotPublic = errors.New("cimd: destination address is not public")
	errRedirect  = errors.New("cimd: redirects are not followed")
)

// IsClientIDURL reports whether a client_id is meant as a metadata
// document URL (an https URL), as opposed to a registered identifier.
func IsClientIDURL(clientID string) bool {
	return strings.HasPrefix(clientID, "https://")
}

// CheckURL enforces the client identifier URL rules of draft §3: https, a
// host, a path other than "/", no dot segments, no fragment, no userinfo.
func CheckURL(s string) (*url.URL, error) {
	if len(s) > 2048 {
		return nil, errors.New("client_id URL too long")
	}
	u, err := url.Parse(s)
	if err != nil || u.Scheme != "https" || u.Host == "" || u.Opaque != "" {
		return nil, errors.New("client_id must be an https URL")
	}
	if u.User != nil || u.Fragment != "" || strings.Contains(s, "#") {
		return nil, errors.New("client_id URL must not contain userinfo or a fragment")
	}
	if u.Path == "" || u.Path == "/" {
		return nil, errors.New("client_id URL must have a path")
	}
	// Only lower-case ASCII host names: the HTTP client would convert an
	// internationalized name to ASCII before dialling, which lets a
	// look-alike (fullwidth "ｌｏｃａｌｈｏｓｔ", Cyrillic "clаude.ai") slip past host
	// policy and be shown as another host on the approval page.
	for i := 0; i < len(u.Host); i++ {
		if c := u.Host[i]; c >= 0x80 || (c >= 'A' && c <= 'Z') {
			return nil, errors.New("client_id URL host must be lower-case ASCII (use the punycode form)")
		}
	}
	for _, seg := range strings.Split(u.EscapedPath(), "/") {
		if seg == "." || seg == ".." || strings.EqualFold(seg, "%2e") || strings.EqualFold(seg, "%2e%2e") || strings.EqualFold(seg, ".%2e") || strings.EqualFold(seg, "%2e.") {
			return nil, errors.New("client_id URL must not contain dot segments")
		}
	}
	return u, nil
}

func hostMatch(list []string, host string) bool {
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	for _, e := range list {
		e = strings.ToLower(e)
		if strings.HasPrefix(e, ".") {
			if strings.HasSuffix(host, e) {
				return true
			}
		} else if host == e {
			return true
		}
	}
	return false
}

// Client returns the client described by the document at clientID, from
// the cache when fresh. Every failure is oauth.ErrInvalidClient with a
// description that names no internals; the cause is kept for logs.
func (f *Fetcher) Client(ctx context.Context, clientID string) (*oauth.Client, error) {
	u, err := CheckURL(clientID)
	if err != nil {
		return nil, oauth.ErrInvalidClient.WithDescription(err.Error())
	}
	if !f.hostAllowed(u) {
		return nil, oauth.ErrInvalidClient.WithDescription("client metadata documents from this host are not accepted")
	}
	now := f.opts.Now()
	f.mu.Lock()
	if e, ok := f.cache[clientID]; ok && now.Before(e.expires) {
		f.mu.Unlock()
		return cloneResult(e.client, e.err)
	}
	if c, ok := f.inflight[clientID]; ok {
		f.mu.Unlock()
		select {
		case <-c.done:
			return cloneResult(c.client, c.err)
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	select {
	case f.slots <- struct{}{}:
	default:
		f.mu.Unlock()
		return nil, oauth.ErrTemporarilyUnavailable.WithDescription("too many client metadata documents are being fetched; try again")
	}
	c := &call{done: make(chan struct{})}
	f.inflight[clientID] = c
	f.mu.Unlock()
	defer func() { <-f.slots }()

	client, ttl, err := f.fetch(context.WithoutCancel(ctx), clientID)
	if err != nil {
		ttl = failureTTL
	}
	f.mu.Lock()
	delete(f.inflight, clientID)
	if ttl > 0 {
		if len(f.cache) >= DefaultMaxEntries {
			f.evictLocked(now)
		}
		f.cache[clientID] = &entry{client: client, err: err, expires: now.Add(ttl)}
	}
	f.mu.Unlock()
	c.client, c.err = client, err
	close(c.done)
	return cloneResult(client, err)
}

func cloneResult(c *oauth.Client, err error) (*oauth.Client, error) {
	if err != nil {
		return nil, err
	}
	d := *c
	d.RedirectURIs = slices.Clone(c.RedirectURIs)
	d.GrantTypes = slices.Clone(c.GrantTypes)
	d.ResponseTypes = slices.Clone(c.ResponseTypes)
	d.Contacts = slices.Clone(c.Contacts)
	return &d, nil
}

// evictLocked drops expired entries, or, if none, the one expiring first.
func (f *Fetcher) evictLocked(now time.Time) {
	var oldest string
	for k, e := range f.cache {
		if !now.Before(e.expires) {
			delete(f.cache, k)
			continue
		}
		if oldest == "" || e.expires.Before(f.cache[oldest].expires) {
			oldest = k
		}
	}
	if len(f.cache) >= DefaultMaxEntries && oldest != "" {
		delete(f.cache, oldest)
	}
}

// fetch retrieves and validates one document, returning how long it may
// be cached.
func (f *Fetcher) fetch(ctx context.Context, clientID string) (*oauth.Client, time.Duration, error) {
	fail := func(desc string, cause error) (*oauth.Client, time.Duration, error) {
		return nil, 0, oauth.ErrInvalidClient.WithDescription(desc).WithCause(cause)
	}
	body, header, err := f.getJSON(ctx, clientID, DefaultMaxBytes)
	switch {
	case errors.Is(err, errNotJSON):
		return fail("client metadata document is not JSON", err)
	case errors.Is(err, errTooLarge):
		return fail("client metadata document is larger than 5 KB", nil)
	case err != nil:
		return fail("client metadata document could not be retrieved", err)
	}
	c, err := Parse(clientID, body)
	if err != nil {
		return nil, 0, err
	}
	return c, f.freshness(header), nil
}

var (
	errNotJSON  = errors.New("cimd: the document is not JSON")
	errTooLarge = errors.New("cimd: the document is too large")
)

// getJSON GETs the JSON document at u through the guarded client, within
// Timeout, and reads at most maxBytes of it: errNotJSON for another
// content type, errTooLarge beyond maxBytes.
func (f *Fetcher) getJSON(ctx context.Context, u string, maxBytes int64) ([]byte, http.Header, error) {
	ctx, cancel := context.WithTimeout(ctx, f.opts.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, nil, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := f.client.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, nil, fmt.Errorf("cimd: status %d", resp.StatusCode)
	}
	if mt, _, err := mime.ParseMediaType(resp.Header.Get("Content-Type")); err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
		return nil, nil, fmt.Errorf("%w: content type %q", errNotJSON, resp.Header.Get("Content-Type"))
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBytes+1))
	if err != nil {
		return nil, nil, err
	}
	if int64(len(body)) > maxBytes {
		return nil, nil, errTooLarge
	}
	return body, resp.Header, nil
}

// hostAllowed applies Options.AllowHosts and DenyHosts to u's host.
func (f *Fetcher) hostAllowed(u *url.URL) bool {
	host := u.Hostname()
	return !hostMatch(f.opts.DenyHosts, host) && (len(f.opts.AllowHosts) == 0 || hostMatch(f.opts.AllowHosts, host))
}

// freshness derives the cache lifetime from Cache-Control (RFC 9111 §5.2):
// no-store and no-cache mean "do not reuse"; max-age is honoured up to
// MaxAge; without either, DefaultMinAge.
func (f *Fetcher) freshness(h http.Header) time.Duration {
	ttl := DefaultMinAge
	for _, d := range strings.Split(h.Get("Cache-Control"), ",") {
		d = strings.ToLower(strings.TrimSpace(d))
		switch {
		case d == "no-store" || d == "no-cache":
			return 0
		case strings.HasPrefix(d, "max-age="):
			if n, err := strconv.Atoi(strings.Trim(d[len("max-age="):], `"`)); err == nil && n >= 0 {
				ttl = time.Duration(n) * time.Second
			}
		}
	}
	return min(ttl, f.opts.MaxAge)
}

// document is a client metadata document: RFC 7591 metadata plus the
// members this package inspects.
type document struct {
	oauthex.ClientRegistrationMetadata
	ClientID                          string          `json:"client_id"`
	TokenEndpointAuthMethodsSupported []string        `json:"token_endpoint_auth_methods_supported"`
	ClientSecret                      *string         `json:"client_secret"`
	ClientSecretExpiresAt             json.RawMessage `json:"client_secret_expires_at"`
	RawJWKS                           json.RawMessage `json:"jwks"`
}

// symmetric lists the token endpoint methods built on a shared secret,
// which a public document must not use (draft §4.1).
var symmetric = []string{"client_secret_basic", "client_secret_post", "client_secret_jwt"}

// Parse validates a document fetched from clientID (draft §4, §8.1) and
// returns the public client it describes.
func Parse(clientID string, body []byte) (*oauth.Client, error) {
	bad := func(desc string) (*oauth.Client, error) {
		return nil, oauth.ErrInvalidClient.WithDescription("invalid client metadata document: " + desc)
	}
	if len(body) > DefaultMaxBytes {
		return bad("larger than 5 KB")
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(body, &raw); err != nil {
		return bad("not a JSON object")
	}
	var d document
	if err := json.Unmarshal(body, &d); err != nil {
		return bad("a member has the wrong type")
	}
	if d.ClientID != clientID {
		return bad("client_id does not equal the document's URL")
	}
	if strings.TrimSpace(d.ClientName) == "" || len(d.ClientName) > 200 || redirect.HasControl(d.ClientName) {
		return bad("client_name is required: at most 200 bytes, no control or formatting characters")
	}
	if len(d.RedirectURIs) == 0 || len(d.RedirectURIs) > 20 {
		return bad("redirect_uris is required (at most 20)")
	}
	for _, u := range d.RedirectURIs {
		if e := redirect.Check(u); e != nil {
			return bad(e.Description)
		}
	}
	if _, ok := raw["client_secret"]; ok || d.ClientSecretExpiresAt != nil {
		return bad("a public document must not contain a client secret")
	}
	if len(d.RawJWKS) > 0 && hasPrivateKey(d.RawJWKS) {
		return bad("jwks contains private key material")
	}
	if slices.Contains(symmetric, d.TokenEndpointAuthMethod) {
		return bad("token_endpoint_auth_method must not use a shared secret")
	}
	// Negotiate: a client that offers "none" among its methods is used as
	// a public client even if it prefers another (ChatGPT prefers
	// private_key_jwt but lists none). No method at all means none.
	offered := append(slices.Clone(d.TokenEndpointAuthMethodsSupported), d.TokenEndpointAuthMethod)
	if d.TokenEndpointAuthMethod != "" && d.TokenEndpointAuthMethod != oauth.AuthMethodNone && !slices.Contains(offered, oauth.AuthMethodNone) {
		return bad("token_endpoint_auth_method " + d.TokenEndpointAuthMethod + " is not supported; offer none")
	}
	// Grant types we do not support (Claude lists the jwt-bearer grant)
	// are ignored, not refused; authorization_code must be among them.
	if len(d.GrantTypes) > 0 && !slices.Contains(d.GrantTypes, oauth.GrantTypeAuthorizationCode) {
		return bad("grant_types must include authorization_code")
	}
	if len(d.ResponseTypes) > 0 && !slices.Contains(d.ResponseTypes, "code") {
		return bad("response_types must include code")
	}
	md := d.ClientRegistrationMetadata
	md.TokenEndpointAuthMethod = oauth.AuthMethodNone
	md.GrantTypes = []string{oauth.GrantTypeAuthorizationCode, oauth.GrantTypeRefreshToken}
	md.ResponseTypes = []string{"code"}
	// The document's keys are kept: a client that offers none but sends a
	// private_key_jwt assertion anyway (ChatGPT) has it verified by them.
	md.JWKS, md.SoftwareStatement = string(d.RawJWKS), ""
	if md.ApplicationType == "" {
		if redirect.AllNative(md.RedirectURIs) {
			md.ApplicationType = "native"
		} else {
			md.ApplicationType = "web"
		}
	}
	return &oauth.Client{ClientRegistrationMetadata: md, ID: clientID}, nil
}

// hasPrivateKey reports whether a JWK Set carries private members
// (RFC 7518 §6.2.2, §6.3.2, §6.4.1; RFC 8037 §2).
func hasPrivateKey(raw json.RawMessage) bool {
	var set struct {
		Keys []map[string]json.RawMessage `json:"keys"`
	}
	if json.Unmarshal(raw, &set) != nil {
		return true // unreadable: treat as unsafe
	}
	for _, k := range set.Keys {
		for _, m := range []string{"d", "p", "q", "dp", "dq", "qi", "k", "oth"} {
			if _, ok := k[m]; ok {
				return true
			}
		}
	}
	return false
}

// PublicAddr reports whether a destination is on the public internet: not
// loopback, private (RFC 1918, RFC 4193), link-local, shared (RFC 6598),
// unspecified, multicast, broadcast, reserved, documentation or benchmark
// space, nor an IPv6 form that embeds or translates to IPv4 (mapped,
// NAT64, 6to4, Teredo), whose IPv4 part would escape these checks.
func PublicAddr(a netip.Addr) bool {
	a = a.Unmap()
	if !a.IsValid() || a.IsLoopback() || a.IsPrivate() || a.IsLinkLocalUnicast() || a.IsLinkLocalMulticast() ||
		a.IsInterfaceLocalMulticast() || a.IsMulticast() || a.IsUnspecified() {
		return false
	}
	for _, p := range nonPublic {
		if p.Contains(a) {
			return false
		}
	}
	return true
}

var nonPublic = func() []netip.Prefix {
	var out []netip.Prefix
	for _, s := range []string{
		"0.0.0.0/8", "100.64.0.0/10", "192.0.0.0/24", "192.0.2.0/24", "198.18.0.0/15", "198.51.100.0/24",
		"203.0.113.0/24", "240.0.0.0/4", "255.255.255.255/32",
		"64:ff9b::/96", "64:ff9b:1::/48", "100::/64", "2001::/32", "2001:db8::/32", "2002::/16", "fc00::/7", "fec0::/10",
	} {
		out = append(out, netip.MustParsePrefix(s))
	}
	return out
}()

// Get fetches a JSON document other than a client's metadata (a client's
// jwks_uri, RFC 7591 §2) through the same guard: https only, the host
// policy, public addresses, no redirects, the fetch-slot bound, Timeout,
// a JSON content type, and at most maxBytes.
func (f *Fetcher) Get(ctx context.Context, rawURL string, maxBytes int64) ([]byte, error) {
	u, err := CheckURL(rawURL)
	if err != nil {
		return nil, err
	}
	if !f.hostAllowed(u) {
		return nil, errors.New("cimd: host not allowed")
	}
	select {
	case f.slots <- struct{}{}:
		defer func() { <-f.slots }()
	default:
		return nil, errors.New("cimd: too many fetches in flight")
	}
	body, _, err := f.getJSON(ctx, u.String(), maxBytes)
	return body, err
}
