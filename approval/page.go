// Package approval is the owner's side of an authorization: the approval
// page that the MCP client's browser tab lands on after /authorize ([Page]),
// the console where a signed-in owner approves the code that page shows and
// manages grants and clients ([Console]), and the console's built-in sign-in
// ([Accounts]). It works on any [oauth.Approver] (and, for the console's
// lists, an [oauth.Administrator]); package mcpauth mounts it.
//
// The page shows the user code, the client's name, the host of the redirect
// URI and the requested scopes, and waits for the owner to approve that code
// elsewhere (the console, the server's terminal, or Go code). Once the
// request is decided, loading the page again answers 303 to the client's
// redirect URI, so the flow finishes with JavaScript off.
//
// Templates are html/template files embedded with embed.FS: everything a
// client registered is escaped. The pages send no script but the waiting
// page's one inline poll, load nothing from elsewhere, refuse framing and
// cross-origin form posts (http.CrossOriginProtection), and carry CSRF
// tokens in every form.
//
// A setup step is a host's http.Handler that runs once the owner approved
// a request and before its grant is created: in the authorize tab of a
// browser request ([PageOptions.Step]), and on the console where the owner
// approves an RFC 8628 device request ([ConsoleOptions.Step]). The same
// handler serves both. It is called with GET to show its form and with
// POST for that form's submission, and it either answers (its form, again
// with an error if what was typed does not do) or calls [Complete] and
// writes nothing; the page or console then completes the request with
// what it gave. A request whose step is never completed keeps nothing and
// simply expires.
//
// Its form's POST reaches it only from this site (as every form's), with
// the CSRF token of [StepFields], within 64 KiB, with r.PostForm parsed.
// What the step writes is buffered until it returns and then sent with
// the page's headers (Cache-Control: no-store, the strict
// Content-Security-Policy, no framing), to which it may add its own.
package approval

import (
	"embed"
	"encoding/json"
	"errors"
	"html/template"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	oauth "github.com/mcp-oauth/oauth"
	"github.com/mcp-oauth/oauth/internal/page"
	"github.com/mcp-oauth/oauth/internal/redirect"
	"github.com/mcp-oauth/oauth/internal/secret"
)

// PageOptions configure the approval page. The zero value is usable.
type PageOptions struct {
	// ProductName is shown in the page title; empty means "MCP server".
	ProductName string
	// LogoURL, when set, is shown before the product name: an https URL
	// or a data:image/ URI (the pages' Content-Security-Policy allows
	// images from exactly that origin). Others are ignored.
	LogoURL string
	// ApproveHint returns the sentence, shown under the code, that tells the
	// user where the owner approves it (a console URL, a terminal command).
	// Nil means a generic sentence.
	ApproveHint func(userCode string) string
	// Console, when set, enables quick authorize: a browser that is
	// already signed in to this console sees an Approve button on the
	// waiting page, and approving takes that explicit click (never a
	// silent approval). mcpauth.Wrap sets it to its console.
	Console *Console
	// Step, when set, is a setup step (see [Complete]) that runs in the
	// authorize tab after the owner approved and before the browser
	// returns to the client, to collect, say, an API key for this
	// connection. It is called for the tab's GET once the request is
	// approved (never before, nor for a denied one), and for the POST of
	// its form, which carries [StepFields] (the tab's handle and code are
	// in r's query, so a form with no action attribute posts back to the
	// right place). [StepRequest] returns the request. When the step calls
	// [Complete], the request is completed with its setup and the tab
	// returns to the client. An RFC 8628 device request has no tab: its
	// step runs on the console (ConsoleOptions.Step). Nil means the tab
	// returns to the client as soon as the request is approved.
	Step http.Handler
	// ScopeDescriptions says in plain words what each scope allows; the
	// approval pages show it with the scope's name. A scope without one is
	// shown by its name alone. mcpauth.Wrap fills it (see its Options).
	ScopeDescriptions map[string]string
	// Resources describe, by canonical URL, the resources requests ask
	// for: the pages show a resource's name beside its URL, and its own
	// scope descriptions. mcpauth.Wrap fills it when it serves several.
	Resources map[string]ResourceInfo
	// RefreshSeconds is how often the waiting page reloads itself; zero
	// means 3.
	RefreshSeconds int
	// Logger receives render errors; nil discards them.
	Logger *slog.Logger
}

//go:embed templates/*.html
var files embed.FS

var templates = template.Must(template.ParseFS(files, "templates/*.html"))

// Page serves the approval page. Create it with NewPage.
type Page struct {
	a      oauth.Approver
	opts   PageOptions
	log    *slog.Logger
	origin *http.CrossOriginProtection
}

// NewPage returns the approval page of the requests of a. It serves GET
// (and HEAD) of the page at any path it is mounted at, the waiting page's
// status endpoint at that path + "/status", and the POSTs of quick
// authorize and of a setup step.
func NewPage(a oauth.Approver, opts PageOptions) *Page {
	if opts.ProductName == "" {
		opts.ProductName = "MCP server"
	}
	if opts.RefreshSeconds <= 0 {
		opts.RefreshSeconds = 3
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Page{a: a, opts: opts, log: log, origin: http.NewCrossOriginProtection()}
}

type view struct {
	Title, Heading, Message string
	ProductName, UserCode   string
	Logo                    template.URL
	ClientName, ClientID    string
	RedirectHost, Resource  string
	ResourceName            string // see ResourceInfo
	Scopes                  []scope
	// DocumentHost is the host serving the client's metadata document,
	// for clients identified by a URL.
	DocumentHost string
	// LoopbackOnly warns that the client only ever returns to this
	// computer, so any local program could be using its name.
	LoopbackOnly bool
	ApproveHint  string
	Refresh      int
	ExpiresAt    string
	Waiting      bool
	// Verify is the RFC 8628 verification page of a device request.
	Verify bool
	// Nonce allows the waiting page's one inline script (CSP script-src).
	Nonce string
	// QuickUser is the console user this browser is signed in as (quick
	// authorize); QuickCSRF and Handle fill its form.
	QuickUser, QuickCSRF, Handle string
	// SignInURL and SignInLabel link to the console's sign-in
	// (ConsoleOptions.SignInURL), coming back to this page.
	SignInURL, SignInLabel string
	// Continue is a same-site URL the page moves on to at once.
	Continue string
	// Return is the client's redirect (the Approver's answer) that the
	// page moves on to at once, after a setup step's form post.
	Return template.URL
}

// expiredView is the page for a request that expired or never existed.
var expiredView = view{Title: "Expired", Heading: "This request has expired or does not exist",
	Message: "Start the connection again from your application."}

// readPost admits a form POST only from this site (origin, the stdlib's
// check of Sec-Fetch-Site, else Origin against Host) and reads its body, of
// at most limit bytes; on failure it has answered.
func readPost(w http.ResponseWriter, r *http.Request, origin *http.CrossOriginProtection, limit int64) bool {
	if origin.Check(r) != nil {
		http.Error(w, "cross-site request refused", http.StatusForbidden)
		return false
	}
	r.Body = http.MaxBytesReader(w, r.Body, limit)
	if err := r.ParseForm(); err != nil {
		http.Error(w, "bad form", http.StatusBadRequest)
		return false
	}
	return true
}

// statusSuffix is appended to the page's path for the status endpoint that
// the waiting page's script polls.
const statusSuffix = "/status"

// ServeHTTP implements http.Handler for GET (and HEAD) of the page, and of
// its status endpoint (the page's path + "/status").
func (h *Page) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hdr := w.Header()
	hdr.Set("Cache-Control", "no-store")
	page.SetHeaders(hdr)
	if r.Method == http.MethodPost && !strings.HasSuffix(r.URL.Path, statusSuffix) && (h.opts.Step != nil || h.opts.Console != nil) {
		limit := int64(16 << 10) // quick authorize's small form
		if h.opts.Step != nil {
			limit = stepLimit
		}
		if !readPost(w, r, h.origin, limit) {
			return
		}
		if h.opts.Step != nil && r.URL.Query().Get("request") != "" && r.PostForm.Get(StepField) != "" {
			h.stepPost(w, r)
			return
		}
		if h.opts.Console != nil {
			h.quickApprove(w, r)
			return
		}
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		hdr.Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	if strings.HasSuffix(r.URL.Path, statusSuffix) {
		h.serveStatus(w, r)
		return
	}
	q := r.URL.Query()
	handle, code := q.Get("request"), q.Get("user_code")
	if len(handle) > 128 || len(code) > 32 {
		h.render(w, http.StatusBadRequest, view{Title: "Invalid request", Heading: "This link is not valid", Message: "Start the connection again from your application."})
		return
	}
	if handle == "" {
		h.serveVerification(w, code)
		return
	}
	// One read while the request waits; with a setup step, an approved
	// request is held until the step completes (see tabStep).
	ctx := r.Context()
	p, to, err := h.a.Poll(ctx, &oauth.PollRequest{Handle: handle, UserCode: code, Hold: h.opts.Step != nil})
	if err == nil && h.opts.Step != nil && p.Status == oauth.PendingApproved {
		h.tabStep(w, r, p, handle, code, false)
		return
	}
	switch {
	case errors.Is(err, oauth.ErrUnknownRequest):
		h.render(w, http.StatusNotFound, expiredView)
		return
	case err != nil:
		h.log.Error("approval: poll", "err", err)
		h.render(w, http.StatusInternalServerError, view{Title: "Error", Heading: "Something went wrong", Message: "Reload this page to try again."})
		return
	case to != "":
		http.Redirect(w, r, to, http.StatusSeeOther)
		return
	case p.Status == oauth.PendingCompleted:
		h.render(w, http.StatusOK, view{Title: "Connected", Heading: "Done", Message: "This request was completed. You can close this tab."})
		return
	case p.Status != oauth.PendingWaiting:
		// A decided request without a redirect (an Approver that gives
		// none): nothing more this tab can do.
		h.log.Error("approval: a decided request gave no redirect", "request_id", p.ID, "status", string(p.Status))
		h.render(w, http.StatusInternalServerError, view{Title: "Error", Heading: "Something went wrong", Message: "Reload this page to try again."})
		return
	}
	v := view{
		Title: "Approve " + p.UserCode, Waiting: true, UserCode: p.UserCode,
		ClientName: clientName(p), ClientID: p.ClientID, Resource: p.Resource,
		Refresh:   h.opts.RefreshSeconds,
		ExpiresAt: p.ExpiresAt.UTC().Format(time.RFC3339),
	}
	v.RedirectHost, v.DocumentHost, v.LoopbackOnly = describe(p)
	v.ResourceName, v.Scopes = describeRequest(h.opts.Resources, h.opts.ScopeDescriptions, p)
	if h.opts.ApproveHint != nil {
		v.ApproveHint = h.opts.ApproveHint(p.UserCode)
	} else {
		v.ApproveHint = "Ask the owner of this server to approve the code " + p.UserCode + "."
	}
	if h.opts.Console != nil {
		if user, session, err := h.opts.Console.user(r); err == nil && user != "" {
			session = h.opts.Console.formSession(w, session)
			v.QuickUser, v.QuickCSRF, v.Handle = user, page.CSRFToken(session), handle
		} else if co := h.opts.Console.opts; co.SignInURL != "" {
			v.SignInURL, v.SignInLabel = co.SignInURL+"?"+url.Values{"return": {r.URL.RequestURI()}}.Encode(), co.SignInLabel
			if v.SignInLabel == "" {
				v.SignInLabel = "Sign in"
			}
		}
	}
	h.render(w, http.StatusOK, v)
}

// quickApprove handles the Approve (or Deny) button of quick authorize
// (read by readPost, so from this site): the browser holds the tab's handle
// and code and is signed in to the console, and the form carries the
// console session's CSRF token. The decision is made as the signed-in user, and the tab then
// reloads into the client redirect.
func (h *Page) quickApprove(w http.ResponseWriter, r *http.Request) {
	f := r.PostForm
	user, session, err := h.opts.Console.user(r)
	if err != nil || user == "" || !page.CheckCSRF(session, f.Get("csrf")) {
		http.Error(w, "sign in to the console, then reload this page", http.StatusForbidden)
		return
	}
	handle, code := f.Get("request"), f.Get("user_code")
	if len(handle) > 128 || len(code) > 32 {
		http.Error(w, "bad form", http.StatusBadRequest)
		return
	}
	// The handle proves this browser made the request; the code alone
	// would let a signed-in owner be tricked into approving another's.
	if _, _, err := h.a.Poll(r.Context(), &oauth.PollRequest{Handle: handle, UserCode: code, Hold: true}); err != nil {
		h.render(w, http.StatusNotFound, expiredView)
		return
	}
	if f.Get("action") == "deny" {
		_, err = h.a.Deny(r.Context(), code)
	} else {
		err = h.opts.Console.approve(r, code, user, nil) // a setup step runs in the tab
	}
	if err != nil && !errors.Is(err, oauth.ErrAlreadyDecided) {
		h.log.Error("approval: quick authorize", "err", err)
		h.render(w, http.StatusConflict, view{Title: "Not decided", Heading: "This request could not be decided", Message: "It may have expired; start the connection again from your application."})
		return
	}
	// Answer with a page that moves on by itself rather than a redirect:
	// browsers check every redirect after a form post against the CSP
	// form-action 'self', which the client's redirect URI would fail.
	h.render(w, http.StatusOK, view{Title: "Approved", Heading: "Done", Message: "Returning to the application…",
		Continue: r.URL.Path + "?" + url.Values{"request": {handle}, "user_code": {code}}.Encode()})
}

// serveVerification is the RFC 8628 verification URI: a device (a CLI, a
// TV) told its user to come here, with the user code in the link or to
// type. The page says where the owner approves the code; it looks nothing
// up, so it reveals nothing about the request.
func (h *Page) serveVerification(w http.ResponseWriter, code string) {
	v := view{Title: "Approve a device", Heading: "Approve a device", Verify: true}
	if v.UserCode = secret.DisplayUserCode(code); v.UserCode != "" {
		v.Title = "Approve " + v.UserCode
	}
	if h.opts.ApproveHint != nil {
		v.ApproveHint = h.opts.ApproveHint(v.UserCode)
	} else if v.UserCode != "" {
		v.ApproveHint = "Ask the owner of this server to approve the code " + v.UserCode + "."
	} else {
		v.ApproveHint = "Ask the owner of this server to approve the code your device shows."
	}
	h.render(w, http.StatusOK, v)
}

// status is the JSON the status endpoint returns.
type status struct {
	// Status is "pending", "approved", "denied", "completed" (the
	// oauth.PendingStatus values) or "expired" (also for a request that
	// does not exist).
	Status string `json:"status"`
}

// serveStatus tells the waiting page's script whether the request has been
// decided. Like the page it needs the browser's handle and the code, so it
// tells nothing to anyone else.
func (h *Page) serveStatus(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	handle, code := q.Get("request"), q.Get("user_code")
	st := status{Status: "expired"}
	if len(handle) <= 128 && len(code) <= 32 {
		p, _, err := h.a.Poll(r.Context(), &oauth.PollRequest{Handle: handle, UserCode: code, Hold: true})
		switch {
		case err == nil:
			st.Status = string(p.Status)
		case !errors.Is(err, oauth.ErrUnknownRequest):
			h.log.Error("approval: status", "err", err)
			http.Error(w, "internal error", http.StatusInternalServerError)
			return
		}
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(st)
}

// logo returns the logo URL to show and the CSP img-src source that
// allows it, or empty strings for no (or an unacceptable) logo.
func logo(raw string) (template.URL, string) {
	if strings.HasPrefix(raw, "data:image/") && len(raw) <= 64<<10 {
		return template.URL(raw), "data:"
	}
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "https" || u.Host == "" || strings.ContainsAny(raw, " '\";") {
		return "", ""
	}
	return template.URL(raw), "https://" + u.Host
}

// withLogo returns the logo of raw (see logo) and adds the img-src that
// it needs to the response's CSP.
func withLogo(w http.ResponseWriter, raw string) template.URL {
	u, src := logo(raw)
	if src != "" {
		w.Header().Set("Content-Security-Policy", w.Header().Get("Content-Security-Policy")+"; img-src "+src)
	}
	return u
}

// writePage writes a page of the embedded templates.
func writePage(w http.ResponseWriter, log *slog.Logger, status int, name string, data any) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	if err := templates.ExecuteTemplate(w, name, data); err != nil {
		log.Debug("approval: render "+name, "err", err)
	}
}

func (h *Page) render(w http.ResponseWriter, status int, v view) {
	v.ProductName = h.opts.ProductName
	if v.Heading == "" {
		v.Heading = "Approve this connection"
	}
	if !v.Waiting {
		v.Refresh = 0
	} else {
		v.Nonce = secret.New("")[:22]
		w.Header().Set("Content-Security-Policy", page.CSP+"; script-src 'nonce-"+v.Nonce+"'; connect-src 'self'")
	}
	v.Logo = withLogo(w, h.opts.LogoURL)
	writePage(w, h.log, status, "device.html", v)
}

// scope is a requested scope as the approval pages show it: in plain
// words (Text, empty when none is configured) and by its name.
type scope struct{ Name, Text string }

func describeScopes(descriptions map[string]string, scopes []string) []scope {
	out := make([]scope, len(scopes))
	for i, s := range scopes {
		out[i] = scope{Name: s, Text: descriptions[s]}
	}
	return out
}

// clientName is the client's name as the pages show it.
func clientName(p *oauth.PendingRequest) string {
	if p.Client != nil && p.Client.ClientName != "" {
		return p.Client.ClientName
	}
	return "An unnamed application"
}

// describe returns what the approval pages show about where a request
// comes from and goes to: the host its redirect URI returns to (the MCP
// authorization specification asks that it be shown; a private-use scheme
// such as "cursor:" stands for itself, and a device request has none), the
// host publishing the client's metadata document for a client identified by
// a URL, and whether to warn that any local program could be using that
// client's name.
//
// The warning is the one the Client ID Metadata Document draft's security
// considerations ask for: the client is not a registered one (its identity is
// a metadata document) and every redirect URI it lists is a loopback one. It
// is also given when the redirect this request uses returns to the local
// machine while the document lists others, since the risk is the same for
// this request.
func describe(p *oauth.PendingRequest) (redirectHost, documentHost string, loopbackOnly bool) {
	if p.RedirectURI != "" {
		if u, err := url.Parse(p.RedirectURI); err == nil {
			switch strings.ToLower(u.Scheme) {
			case "http", "https":
				redirectHost = u.Host
			default: // an app's private-use scheme (RFC 8252 §7.1) names the app
				redirectHost = u.Scheme + ":"
				if u.Host != "" {
					redirectHost += "//" + u.Host
				}
			}
		}
	}
	if p.Client == nil {
		return redirectHost, "", false
	}
	if u, err := url.Parse(p.Client.ID); err == nil && u.Scheme == "https" && u.Host != "" {
		documentHost = u.Host
		loopbackOnly = allLoopback(p.Client.RedirectURIs) || (p.RedirectURI != "" && localRedirect(p.RedirectURI))
	}
	return redirectHost, documentHost, loopbackOnly
}

// allLoopback reports whether uris is not empty and every URI in it is http
// on a loopback host (RFC 8252 §7.3).
func allLoopback(uris []string) bool {
	for _, s := range uris {
		u, err := url.Parse(s)
		if err != nil || !strings.EqualFold(u.Scheme, "http") || !redirect.IsLoopbackHost(u.Hostname()) {
			return false
		}
	}
	return len(uris) > 0
}

// localRedirect reports whether the redirect URI this request will use
// returns to the local machine (http on a loopback host, or a private-use
// app scheme): any local program could answer it, so a metadata document's
// name proves little.
func localRedirect(uri string) bool {
	u, err := url.Parse(uri)
	if err != nil {
		return false
	}
	switch strings.ToLower(u.Scheme) {
	case "https":
		return false
	case "http":
		return redirect.IsLoopbackHost(u.Hostname())
	}
	return true
}
