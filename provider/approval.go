package provider

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/google/uuid"

	oauth "github.com/mcp-oauth/oauth"
	"github.com/mcp-oauth/oauth/internal/redirect"
	"github.com/mcp-oauth/oauth/internal/secret"
	"github.com/mcp-oauth/oauth/storage"
)

// Authorize implements oauth.Provider: it records the request as pending
// and returns the approval page's URL, which carries a secret handle for this
// browser and the user code to show.
func (p *Provider) Authorize(ctx context.Context, client *oauth.Client, params *oauth.AuthorizationParams) (string, error) {
	handle := secret.New(secret.PrefixHandle)
	rec, code, err := p.createPending(ctx, params, secret.Hash(handle), "")
	if err != nil {
		return "", err
	}
	p.log.Info("mcpauth: authorization pending", "request_id", rec.ID, "client_id", client.ID)
	return p.approveURL + "?" + url.Values{"request": {handle}, "user_code": {code}}.Encode(), nil
}

// createPending stores a new waiting request with a fresh user code,
// drawing again (up to three times) when the code collides with a live
// one, and returns it with the code in display form.
func (p *Provider) createPending(ctx context.Context, params *oauth.AuthorizationParams, handleHash, deviceCodeHash string) (*storage.PendingRecord, string, error) {
	p.maybeSweep()
	now := p.now()
	for attempt := 0; ; attempt++ {
		code := secret.NewUserCode()
		rec := &storage.PendingRecord{
			ID:                  uuid.NewString(),
			HandleHash:          handleHash,
			UserCodeHash:        secret.Hash(secret.NormalizeUserCode(code)),
			DeviceCodeHash:      deviceCodeHash,
			AuthorizationParams: *params,
			Status:              oauth.PendingWaiting,
			CreatedAt:           now,
			ExpiresAt:           now.Add(p.opts.PendingTTL),
		}
		err := p.store.CreatePending(ctx, rec)
		if errors.Is(err, storage.ErrConflict) && attempt < 3 {
			continue // a user code collision among live requests; draw again
		}
		if err != nil {
			return nil, "", fmt.Errorf("provider: store pending request: %w", err)
		}
		return rec, code, nil
	}
}

var _ oauth.Approver = (*Provider)(nil)

// displayClient returns the client of a pending request for the approval
// pages: from memory when this Provider remembers it, however long since
// its states were confirmed (the lookup starts a poll, which forgets a
// client deleted elsewhere), else as GetClient does. A tab that polls its
// status every second thus costs one store read per poll, not three; the
// client is checked afresh at the token endpoint anyway.
func (p *Provider) displayClient(ctx context.Context, id string) (*oauth.Client, error) {
	if p.grants != nil && !strings.HasPrefix(id, "https://") {
		if c := p.grants.knownClient(id, p.now()); c != nil {
			p.maybePoll(p.elapsed(), false)
			return c, nil
		}
	}
	return p.GetClient(ctx, id)
}

func (p *Provider) pendingView(ctx context.Context, rec *storage.PendingRecord) (*oauth.PendingRequest, error) {
	c, err := p.displayClient(ctx, rec.ClientID)
	if err != nil && strings.HasPrefix(rec.ClientID, "https://") {
		// The document could not be fetched just now (or this process has
		// no resolver, like the example's terminal commands): the request
		// was validated when it was made, so show it by its URL alone.
		c, err = &oauth.Client{ID: rec.ClientID}, nil
	}
	if errors.Is(err, oauth.ErrInvalidClient) {
		return nil, oauth.ErrUnknownRequest
	}
	if err != nil {
		return nil, fmt.Errorf("provider: %w", err)
	}
	return &oauth.PendingRequest{ID: rec.ID, Client: c, AuthorizationParams: rec.AuthorizationParams,
		Status: rec.Status, Subject: rec.Subject,
		CreatedAt: rec.CreatedAt, ExpiresAt: rec.ExpiresAt}, nil
}

// Poll implements oauth.Approver: one read of the request while it waits;
// for an approved request (unless req.Hold) the grant and a single-use
// authorization code are created in one store transaction, so that of
// concurrent polls exactly one receives the code and the others see the
// request completed.
func (p *Provider) Poll(ctx context.Context, req *oauth.PollRequest) (*oauth.PendingRequest, string, error) {
	norm := secret.NormalizeUserCode(req.UserCode)
	if !secret.WellFormed(secret.PrefixHandle, req.Handle) || norm == "" {
		return nil, "", oauth.ErrUnknownRequest
	}
	rec, err := p.store.GetPendingByHandle(ctx, secret.Hash(req.Handle), p.now())
	if errors.Is(err, storage.ErrNotFound) {
		return nil, "", oauth.ErrUnknownRequest
	}
	if err != nil {
		return nil, "", fmt.Errorf("provider: %w", err)
	}
	if !secret.Equal(secret.Hash(norm), rec.UserCodeHash) {
		return nil, "", oauth.ErrUnknownRequest
	}
	v, err := p.pendingView(ctx, rec)
	if err != nil {
		return nil, "", err
	}
	v.UserCode = secret.DisplayUserCode(norm)
	resp := url.Values{"state": {v.State}, "iss": {p.opts.Issuer}}
	switch v.Status {
	case oauth.PendingWaiting, oauth.PendingCompleted:
		return v, "", nil
	case oauth.PendingDenied:
		resp.Set("error", oauth.ErrAccessDenied.Code)
		resp.Set("error_description", "the owner denied the request")
		to, err := redirect.With(v.RedirectURI, resp)
		return v, to, err
	case oauth.PendingApproved:
	default:
		return nil, "", fmt.Errorf("provider: pending request in unknown state %q", v.Status)
	}
	if req.Hold {
		return v, "", nil
	}
	setup, err := p.pendingSetup(rec, req.Setup)
	if err != nil {
		return nil, "", err
	}
	ac, grant, err := p.completePending(ctx, v.ID, v.Subject, v.AuthorizationParams, setup, p.now())
	switch {
	case errors.Is(err, storage.ErrConflict):
		v.Status = oauth.PendingCompleted // another poll received the code
		return v, "", nil
	case errors.Is(err, storage.ErrNotFound):
		return nil, "", oauth.ErrUnknownRequest
	case err != nil:
		return nil, "", fmt.Errorf("provider: complete: %w", err)
	}
	p.log.Info("mcpauth: authorization code issued", "request_id", v.ID, "client_id", v.ClientID, "grant_id", grant.ID)
	v.Status = oauth.PendingCompleted
	resp.Set("code", ac.Code)
	to, err := redirect.With(v.RedirectURI, resp)
	return v, to, err
}

// PendingByUserCode implements oauth.Approver.
func (p *Provider) PendingByUserCode(ctx context.Context, userCode string) (*oauth.PendingRequest, error) {
	norm := secret.NormalizeUserCode(userCode)
	if norm == "" {
		return nil, oauth.ErrUnknownRequest
	}
	rec, err := p.store.GetPendingByUserCode(ctx, secret.Hash(norm), p.now())
	if errors.Is(err, storage.ErrNotFound) {
		return nil, oauth.ErrUnknownRequest
	}
	if err != nil {
		return nil, fmt.Errorf("provider: %w", err)
	}
	return p.pendingView(ctx, rec)
}

// ListPending implements oauth.Approver. Requests whose client was deleted
// are left out.
func (p *Provider) ListPending(ctx context.Context) ([]*oauth.PendingRequest, error) {
	recs, err := p.store.ListPending(ctx, p.now())
	if err != nil {
		return nil, fmt.Errorf("provider: %w", err)
	}
	out := make([]*oauth.PendingRequest, 0, len(recs))
	for _, r := range recs {
		v, err := p.pendingView(ctx, r)
		if errors.Is(err, oauth.ErrUnknownRequest) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}

// Approve implements oauth.Approver: the browser that made the request
// then receives an authorization code (or the device, its tokens). setup
// is checked at once (oauth.ErrReservedClaim, oauth.ErrGrantDataLimit)
// and kept with the decision, sealed (with the key-encryption key when
// one is configured), until the grant is created with it.
func (p *Provider) Approve(ctx context.Context, userCode, subject string, setup *oauth.GrantSetup) (*oauth.PendingRequest, error) {
	if subject == "" || len(subject) > 255 {
		return nil, errors.New("provider: approve: subject must be 1 to 255 bytes")
	}
	if _, _, err := p.checkSetup(setup); err != nil {
		return nil, err
	}
	return p.decide(ctx, userCode, oauth.PendingApproved, subject, setup)
}

// Deny implements oauth.Approver.
func (p *Provider) Deny(ctx context.Context, userCode string) (*oauth.PendingRequest, error) {
	return p.decide(ctx, userCode, oauth.PendingDenied, "", nil)
}

func (p *Provider) decide(ctx context.Context, userCode string, status oauth.PendingStatus, subject string, setup *oauth.GrantSetup) (*oauth.PendingRequest, error) {
	v, err := p.PendingByUserCode(ctx, userCode)
	if err != nil {
		return nil, err
	}
	sealed, err := p.sealSetup(v.ID, setup)
	if err != nil {
		return nil, err
	}
	switch err := p.store.DecidePending(ctx, v.ID, status, subject, sealed, p.now()); {
	case errors.Is(err, storage.ErrConflict):
		return nil, oauth.ErrAlreadyDecided
	case errors.Is(err, storage.ErrNotFound):
		return nil, oauth.ErrUnknownRequest
	case err != nil:
		return nil, fmt.Errorf("provider: decide: %w", err)
	}
	v.Status, v.Subject = status, subject
	p.log.Info("mcpauth: authorization "+string(status), "request_id", v.ID, "client_id", v.ClientID, "subject", subject)
	return v, nil
}

// completePending turns an approved request into its grant (with a data
// key, and what setup holds) and an authorization code, stored (hashed)
// in one CompletePending, and returns the code with its value and the
// grant. Errors are the store's, or setup's validation errors (wrapping
// oauth.ErrReservedClaim or oauth.ErrGrantDataLimit).
func (p *Provider) completePending(ctx context.Context, id, subject string, params oauth.AuthorizationParams, setup *oauth.GrantSetup, now time.Time) (*oauth.AuthorizationCode, *oauth.Grant, error) {
	grant, grec, err := p.newGrant(subject, params, setup, now)
	if err != nil {
		return nil, nil, err
	}
	return p.storeCompletion(ctx, id, grant, grec, params, now)
}

// newGrant makes the grant an approved request completes into, with what
// setup holds, and its stored form; nothing is stored yet.
func (p *Provider) newGrant(subject string, params oauth.AuthorizationParams, setup *oauth.GrantSetup, now time.Time) (*oauth.Grant, *storage.GrantRecord, error) {
	claims, sealed, err := p.checkSetup(setup)
	if err != nil {
		return nil, nil, err
	}
	grant := &oauth.Grant{
		ID: uuid.NewString(), ClientID: params.ClientID, Subject: subject,
		Scopes: params.Scopes, Resource: params.Resource, RedirectURI: params.RedirectURI, CreatedAt: now, LastUsedAt: now,
	}
	if grant.Claims, err = p.storeSealedClaims(grant.ID, claims, sealed); err != nil {
		return nil, nil, err
	}
	grec, err := p.newGrantRecord(grant, setup, now)
	if err != nil {
		return nil, nil, err
	}
	return grant, grec, nil
}

// storeCompletion stores grant (as grec) and a new authorization code for
// it in one CompletePending of request id.
func (p *Provider) storeCompletion(ctx context.Context, id string, grant *oauth.Grant, grec *storage.GrantRecord, params oauth.AuthorizationParams, now time.Time) (*oauth.AuthorizationCode, *oauth.Grant, error) {
	subject := grant.Subject
	code := secret.New(secret.PrefixCode)
	rec := &storage.CodeRecord{
		Hash: secret.Hash(code),
		AuthorizationCode: oauth.AuthorizationCode{
			GrantID: grant.ID, Subject: subject, ExpiresAt: now.Add(p.opts.CodeTTL),
			AuthorizationParams: params,
		},
	}
	if err := p.store.CompletePending(ctx, id, grec, rec, now); err != nil {
		return nil, nil, err
	}
	p.created.put(grant)
	ac := rec.AuthorizationCode
	ac.Code = code
	return &ac, grant, nil
}
