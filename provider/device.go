package provider

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"sync"
	"time"

	oauth "github.com/mcp-oauth/oauth"
	"github.com/mcp-oauth/oauth/internal/secret"
	"github.com/mcp-oauth/oauth/storage"
)

// The RFC 8628 device authorization grant. A device request is a pending
// request like a browser's, with the same user code and the same approval
// (Approve, Deny, the console); instead of a browser tab that carries a
// handle, the device holds a device code and polls the token endpoint.

var _ oauth.DeviceProvider = (*Provider)(nil)

const (
	// DefaultDevicePollInterval is the minimum time between two polls of
	// one device code (RFC 8628 §3.2 "interval"; 5 s is its default).
	DefaultDevicePollInterval = 5 * time.Second
	// slowDownStep is what each slow_down adds to a device's interval
	// (RFC 8628 §3.5).
	slowDownStep = 5 * time.Second
	// maxTrackedDevices bounds the poll times remembered for slow_down.
	maxTrackedDevices = 10000
)

// devicePolls remembers, per device request, when it was last polled and
// its current interval, to answer slow_down. It is per process: with
// several replicas a device that spreads its polls over them is slowed
// down by each alone, which RFC 8628 leaves to the server's discretion.
type devicePolls struct {
	mu   sync.Mutex
	last map[string]devicePoll // by pending request ID
}

type devicePoll struct {
	at       time.Time
	interval time.Duration
}

// poll records a poll of request id at now and reports whether it came
// too early; an early poll lengthens the interval by slowDownStep.
func (d *devicePolls) poll(id string, now time.Time) (tooEarly bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.last == nil {
		d.last = map[string]devicePoll{}
	}
	prev, seen := d.last[id]
	if !seen {
		if len(d.last) >= maxTrackedDevices {
			clear(d.last) // forgetting only spares a device one slow_down
		}
		prev.interval = DefaultDevicePollInterval
	}
	next := devicePoll{at: now, interval: prev.interval}
	// A little slack for network jitter: RFC 8628 clients wait exactly
	// the interval between the responses, not between the requests.
	tooEarly = seen && now.Sub(prev.at) < prev.interval-time.Second
	if tooEarly {
		next.interval += slowDownStep
	}
	d.last[id] = next
	return tooEarly
}

// forget drops the poll state of a finished request.
func (d *devicePolls) forget(id string) {
	d.mu.Lock()
	delete(d.last, id)
	d.mu.Unlock()
}

// AuthorizeDevice implements oauth.DeviceProvider (RFC 8628 §3.1, §3.2).
// The request waits for the owner like a browser's; the verification URIs
// come from Options.DeviceVerification (by default the approval page,
// which tells the owner where to approve; the complete URI carries the
// user code).
func (p *Provider) AuthorizeDevice(ctx context.Context, client *oauth.Client, params *oauth.AuthorizationParams) (*oauth.DeviceAuthorization, error) {
	device := secret.New(secret.PrefixDeviceCode)
	// Device requests have no browser tab: the handle is never given to
	// anyone, so nothing can complete the request as a browser.
	rec, code, err := p.createPending(ctx, params, secret.Hash(secret.New(secret.PrefixHandle)), secret.Hash(device))
	if err != nil {
		return nil, err
	}
	p.log.Info("mcpauth: device authorization pending", "request_id", rec.ID, "client_id", client.ID)
	uri, complete := p.approveURL, p.approveURL+"?"+url.Values{"user_code": {code}}.Encode()
	if p.opts.DeviceVerification != nil {
		uri, complete = p.opts.DeviceVerification(code)
	}
	return &oauth.DeviceAuthorization{
		DeviceCode:              device,
		UserCode:                code,
		VerificationURI:         uri,
		VerificationURIComplete: complete,
		ExpiresIn:               int64(p.opts.PendingTTL / time.Second),
		Interval:                int64(DefaultDevicePollInterval / time.Second),
	}, nil
}

// ExchangeDeviceCode implements oauth.DeviceProvider (RFC 8628 §3.4,
// §3.5). While the owner has not decided it answers
// authorization_pending, or slow_down to a device that polls faster than
// its interval; after a denial, access_denied; after expiry,
// expired_token. Once approved, the first poll creates the grant and
// receives its tokens, exactly once even if polls race; later polls get
// invalid_grant.
func (p *Provider) ExchangeDeviceCode(ctx context.Context, client *oauth.Client, deviceCode string) (*oauth.TokenResponse, error) {
	if !secret.WellFormed(secret.PrefixDeviceCode, deviceCode) {
		return nil, oauth.ErrInvalidGrant.WithDescription("invalid device code")
	}
	rec, err := p.store.GetPendingByDeviceCode(ctx, secret.Hash(deviceCode))
	if errors.Is(err, storage.ErrNotFound) {
		return nil, oauth.ErrInvalidGrant.WithDescription("unknown device code")
	}
	if err != nil {
		return nil, fmt.Errorf("provider: get device request: %w", err)
	}
	if rec.ClientID != client.ID {
		return nil, oauth.ErrInvalidGrant.WithDescription("device code was issued to another client")
	}
	now := p.now()
	if rec.Status == oauth.PendingCompleted {
		p.devices.forget(rec.ID)
		return nil, oauth.ErrInvalidGrant.WithDescription("device code already used")
	}
	if !rec.ExpiresAt.After(now) {
		p.devices.forget(rec.ID)
		return nil, oauth.ErrExpiredToken.WithDescription("the device code has expired; start again")
	}
	if p.devices.poll(rec.ID, now) {
		return nil, oauth.ErrSlowDown.WithDescription("polling too often; wait 5 seconds longer between polls")
	}
	switch rec.Status {
	case oauth.PendingWaiting:
		return nil, oauth.ErrAuthorizationPending.WithDescription("the owner has not approved the request yet")
	case oauth.PendingDenied:
		return nil, oauth.ErrAccessDenied.WithDescription("the owner denied the request").WithStatus(400)
	case oauth.PendingApproved:
	default:
		return nil, fmt.Errorf("provider: device request in unknown state %q", rec.Status)
	}
	// Approved: create the grant and an authorization code that never
	// leaves this function, then redeem it as the code flow does, so
	// that grant replacement and the token response are the same.
	setup, err := p.pendingSetup(rec, nil)
	if err != nil {
		return nil, err
	}
	grant, grec, err := p.newGrant(rec.Subject, rec.AuthorizationParams, setup, now)
	if err != nil {
		return nil, err
	}
	// The token's claims are checked before anything is stored: a failing
	// TokenClaims hook or a reserved claim leaves the request approved,
	// and the device's next poll tries again.
	if _, _, err := p.customClaimsOf(ctx, grant); err != nil {
		return nil, err
	}
	ac, grant, err := p.storeCompletion(ctx, rec.ID, grant, grec, rec.AuthorizationParams, now)
	switch {
	case errors.Is(err, storage.ErrConflict), errors.Is(err, storage.ErrNotFound):
		return nil, oauth.ErrInvalidGrant.WithDescription("device code already used")
	case err != nil:
		return nil, fmt.Errorf("provider: complete device request: %w", err)
	}
	p.devices.forget(rec.ID)
	p.log.Info("mcpauth: device authorization granted", "request_id", rec.ID, "client_id", rec.ClientID, "grant_id", grant.ID)
	return p.ExchangeAuthorizationCode(ctx, client, ac)
}
