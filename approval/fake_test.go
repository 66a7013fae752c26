package approval_test

import (
	"context"
	"net/url"
	"strings"
	"sync"
	"time"

	oauth "github.com/mcp-oauth/oauth"
)

// fakeApprover is an in-memory oauth.Approver that records every call.
type fakeApprover struct {
	mu   sync.Mutex
	reqs []*fakeRequest
	// failSetup, when set, is what completing a request (Poll) or
	// approving one (Approve) with a non-nil setup returns, as a Provider
	// refusing it would.
	failSetup error

	polls    []oauth.PollRequest
	approves []approveCall
	denies   []string
}

// fakeRequest is one request of a fakeApprover.
type fakeRequest struct {
	p      oauth.PendingRequest
	handle string
	// setup is what the request was completed (browser) or approved
	// (device) with.
	setup *oauth.GrantSetup
}

type approveCall struct {
	UserCode, Subject string
	Setup             *oauth.GrantSetup
}

// add adds a waiting request with user code code: a browser request
// returning to redirect, or a device request when redirect is "".
func (a *fakeApprover) add(code, handle, redirect string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	now := time.Now()
	p := oauth.PendingRequest{ID: "req-" + code, UserCode: code, Status: oauth.PendingWaiting,
		Client: &oauth.Client{ID: "client-1"}, CreatedAt: now, ExpiresAt: now.Add(10 * time.Minute)}
	p.Client.ClientName = "Notes <CLI>"
	p.ClientID, p.RedirectURI, p.Scopes, p.Resource = "client-1", redirect, []string{"mcp"}, "https://as.example/mcp"
	p.State = "xyz"
	a.reqs = append(a.reqs, &fakeRequest{p: p, handle: handle})
}

// set sets the status of the request with code (and its subject).
func (a *fakeApprover) set(code string, st oauth.PendingStatus, subject string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	r := a.find(code)
	r.p.Status, r.p.Subject = st, subject
}

func norm(code string) string {
	return strings.ToUpper(strings.ReplaceAll(strings.TrimSpace(code), "-", ""))
}

func (a *fakeApprover) find(code string) *fakeRequest {
	for _, r := range a.reqs {
		if norm(r.p.UserCode) == norm(code) && norm(code) != "" {
			return r
		}
	}
	return nil
}

// calls returns copies of the recorded calls.
func (a *fakeApprover) calls() (polls []oauth.PollRequest, approves []approveCall, denies []string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]oauth.PollRequest(nil), a.polls...), append([]approveCall(nil), a.approves...), append([]string(nil), a.denies...)
}

// completions returns the recorded polls that would complete a request
// (without Hold).
func (a *fakeApprover) completions() []oauth.PollRequest {
	polls, _, _ := a.calls()
	var out []oauth.PollRequest
	for _, p := range polls {
		if !p.Hold {
			out = append(out, p)
		}
	}
	return out
}

func (a *fakeApprover) PendingByUserCode(ctx context.Context, code string) (*oauth.PendingRequest, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	r := a.find(code)
	if r == nil {
		return nil, oauth.ErrUnknownRequest
	}
	p := r.p
	return &p, nil
}

func (a *fakeApprover) ListPending(ctx context.Context) ([]*oauth.PendingRequest, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []*oauth.PendingRequest
	for _, r := range a.reqs {
		if r.p.Status == oauth.PendingWaiting {
			p := r.p
			out = append(out, &p)
		}
	}
	return out, nil
}

func (a *fakeApprover) Approve(ctx context.Context, code, subject string, setup *oauth.GrantSetup) (*oauth.PendingRequest, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.approves = append(a.approves, approveCall{code, subject, setup})
	r := a.find(code)
	switch {
	case r == nil:
		return nil, oauth.ErrUnknownRequest
	case r.p.Status != oauth.PendingWaiting:
		return nil, oauth.ErrAlreadyDecided
	case setup != nil && a.failSetup != nil:
		return nil, a.failSetup
	}
	r.p.Status, r.p.Subject, r.setup = oauth.PendingApproved, subject, setup
	p := r.p
	return &p, nil
}

func (a *fakeApprover) Deny(ctx context.Context, code string) (*oauth.PendingRequest, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.denies = append(a.denies, code)
	r := a.find(code)
	switch {
	case r == nil:
		return nil, oauth.ErrUnknownRequest
	case r.p.Status != oauth.PendingWaiting:
		return nil, oauth.ErrAlreadyDecided
	}
	r.p.Status = oauth.PendingDenied
	p := r.p
	return &p, nil
}

func (a *fakeApprover) Poll(ctx context.Context, req *oauth.PollRequest) (*oauth.PendingRequest, string, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.polls = append(a.polls, *req)
	var r *fakeRequest
	for _, x := range a.reqs {
		if x.handle != "" && x.handle == req.Handle && norm(x.p.UserCode) == norm(req.UserCode) {
			r = x
		}
	}
	if r == nil {
		return nil, "", oauth.ErrUnknownRequest
	}
	switch r.p.Status {
	case oauth.PendingDenied:
		p := r.p
		return &p, r.p.RedirectURI + "?" + url.Values{"error": {"access_denied"}, "state": {r.p.State}}.Encode(), nil
	case oauth.PendingApproved:
		if req.Hold {
			break
		}
		if req.Setup != nil && a.failSetup != nil {
			return nil, "", a.failSetup
		}
		r.p.Status, r.setup = oauth.PendingCompleted, req.Setup
		p := r.p
		return &p, r.p.RedirectURI + "?" + url.Values{"code": {"c0de"}, "state": {r.p.State}}.Encode(), nil
	}
	p := r.p
	return &p, "", nil
}
