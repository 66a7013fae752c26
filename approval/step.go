package approval

import (
	"bytes"
	"context"
	"crypto/hmac"
	"errors"
	"html/template"
	"net/http"
	"net/url"
	"sync"

	oauth "github.com/mcp-oauth/oauth"
	"github.com/mcp-oauth/oauth/internal/page"
	"github.com/mcp-oauth/oauth/internal/secret"
)

// StepField names the hidden form field that routes a POST of the
// authorize tab or of the console to the setup step. [StepFields] writes
// it; a step's own fields must not start with "mcpauth_".
const StepField = "mcpauth_step"

// The other hidden fields of a step's form (see StepFields): the CSRF
// token and, on the console, the code being approved and its confirmation
// token.
const (
	stepCSRFField    = "mcpauth_csrf"
	stepCodeField    = "mcpauth_user_code"
	stepConfirmField = "mcpauth_confirm"
)

// stepLimit bounds the body of a step's form post: a host's setup form may
// carry more than the pages' own small forms.
const stepLimit = 64 << 10

type stepKey struct{}

// stepState is what a step's request carries in its context.
type stepState struct {
	p      *oauth.PendingRequest
	fields template.HTML

	mu       sync.Mutex
	complete bool
	closed   bool // the step returned: a later Complete is ignored
	setup    *oauth.GrantSetup
}

func stepOf(r *http.Request) *stepState {
	st, _ := r.Context().Value(stepKey{}).(*stepState)
	return st
}

// StepRequest returns the request that the setup step serving r sets up,
// or nil when r is not a setup step's request. Its Subject is the owner
// who approves it: in the authorize tab the one who approved, on the
// console the signed-in user whose approval the step completes.
//
// In the authorize tab the step is shown to whoever started the request,
// who need not be that owner (anyone can start a request and ask the
// owner to approve its code): a step there must not show the owner's
// private data (their accounts, organizations) on the strength of
// Subject alone.
func StepRequest(r *http.Request) *oauth.PendingRequest {
	if st := stepOf(r); st != nil {
		return st.p
	}
	return nil
}

// Complete marks the setup step serving r done: the request is completed
// with setup (nil completes it with nothing kept); its grant keeps the
// values and gives its access tokens the claims. The step must then write
// nothing (headers it set are dropped): once it returns, the authorize tab
// returns to the client, and the console approves the device request and
// returns home. If the Approver refuses the setup (a reserved claim,
// values over its limits: oauth.ErrReservedClaim, oauth.ErrGrantDataLimit),
// the owner sees an error page (500) and the error is logged, never the
// values. A step that both completes and writes, or does neither, is a
// bug: nothing is completed, the error is logged, and the owner sees an
// error page (a reload of the tab shows the step again). Complete must be
// called before the step returns; outside a step, or later, it does
// nothing. When called more than once, the last setup wins.
func Complete(r *http.Request, setup *oauth.GrantSetup) {
	st := stepOf(r)
	if st == nil {
		return
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	if !st.closed {
		st.complete, st.setup = true, setup
	}
}

// StepFields returns the hidden inputs that a setup step's form must
// carry, to put inside it with html/template ({{.Fields}}): StepField,
// which routes the post to the step, a CSRF token, and on the console the
// code being approved. A form with no action attribute then posts back
// to where it was shown. Outside a step it returns "".
func StepFields(r *http.Request) template.HTML {
	if st := stepOf(r); st != nil {
		return st.fields
	}
	return ""
}

// stepFields renders hidden inputs, in the order given (name, value, ...).
func stepFields(nameValues ...string) template.HTML {
	var b bytes.Buffer
	for i := 0; i+1 < len(nameValues); i += 2 {
		b.WriteString(`<input type="hidden" name="` + template.HTMLEscapeString(nameValues[i]) +
			`" value="` + template.HTMLEscapeString(nameValues[i+1]) + `">`)
	}
	return template.HTML(b.String())
}

// tabCSRF is the CSRF token of a tab's step form, derived from the tab's
// secret handle, which a cross-site page does not know; "" for no handle.
func tabCSRF(handle string) string {
	if handle == "" {
		return ""
	}
	return page.CSRFToken("mcpauth step\x00" + handle)
}

// errStepWrote and errStepSilent are the step's own bugs.
var (
	errStepWrote  = errors.New("approval: the setup step called Complete and also wrote a response; nothing was completed")
	errStepSilent = errors.New("approval: the setup step neither called Complete nor wrote a response")
)

// serveStep runs step for r on behalf of p, with the hidden fields of its
// forms. If the step answered, serveStep sends its answer and returns
// done false; if it completed, it returns done true and its setup, having
// written nothing; a step that did both or neither is an error, and
// nothing was written either.
func serveStep(step http.Handler, w http.ResponseWriter, r *http.Request, p *oauth.PendingRequest, fields template.HTML) (setup *oauth.GrantSetup, done bool, err error) {
	st := &stepState{p: p, fields: fields}
	sw := &stepWriter{header: w.Header().Clone()}
	step.ServeHTTP(sw, r.WithContext(context.WithValue(r.Context(), stepKey{}, st)))
	st.mu.Lock()
	st.closed = true
	complete, setup := st.complete, st.setup
	st.mu.Unlock()
	switch {
	case complete && sw.wrote:
		return nil, false, errStepWrote
	case complete:
		return setup, true, nil
	case !sw.wrote:
		return nil, false, errStepSilent
	}
	hdr := w.Header()
	for k := range hdr {
		delete(hdr, k)
	}
	for k, v := range sw.header {
		hdr[k] = v
	}
	w.WriteHeader(sw.status)
	w.Write(sw.body.Bytes())
	return nil, false, nil
}

// stepWriter buffers a step's response, so that a step that completes can
// be told from one that answers before anything is sent.
type stepWriter struct {
	header http.Header
	status int
	wrote  bool
	body   bytes.Buffer
}

func (w *stepWriter) Header() http.Header { return w.header }

func (w *stepWriter) WriteHeader(status int) {
	if w.wrote || status < 200 { // informational answers are not kept
		return
	}
	w.status, w.wrote = status, true
}

func (w *stepWriter) Write(b []byte) (int, error) {
	w.WriteHeader(http.StatusOK)
	return w.body.Write(b)
}

// tabStep runs the setup step in the authorize tab of the approved request
// p (handle and code from the tab's URL; posted: for the post of the
// step's form) and, once it completes, completes the request with its
// setup and sends the tab on to the client.
func (h *Page) tabStep(w http.ResponseWriter, r *http.Request, p *oauth.PendingRequest, handle, code string, posted bool) {
	fields := stepFields(StepField, "1", stepCSRFField, tabCSRF(handle))
	setup, done, err := serveStep(h.opts.Step, w, r, p, fields)
	if err != nil {
		h.log.Error("approval: setup step", "request_id", p.ID, "err", err)
		h.render(w, http.StatusInternalServerError, view{Title: "Error", Heading: "Something went wrong", Message: "Reload this page to try again."})
		return
	}
	if !done {
		return
	}
	q, to, err := h.a.Poll(r.Context(), &oauth.PollRequest{Handle: handle, UserCode: code, Setup: setup})
	switch {
	case errors.Is(err, oauth.ErrUnknownRequest):
		h.render(w, http.StatusNotFound, expiredView)
	case err != nil:
		// The values are the host's secrets: the error is logged, never
		// the setup.
		h.log.Error("approval: complete with the setup step's data", "request_id", p.ID, "err", err)
		h.render(w, http.StatusInternalServerError, view{Title: "Error", Heading: "This connection could not be set up",
			Message: "The server could not keep what this step collected. Start the connection again from your application."})
	case to == "" && q.Status == oauth.PendingCompleted:
		// Completed meanwhile (another post of the same tab won): this
		// setup is not kept.
		h.render(w, http.StatusOK, view{Title: "Connected", Heading: "Done", Message: "This request was completed. You can close this tab."})
	case to == "":
		h.log.Error("approval: a completed step gave no redirect", "request_id", p.ID, "status", string(q.Status))
		h.render(w, http.StatusInternalServerError, view{Title: "Error", Heading: "Something went wrong", Message: "Reload this page to try again."})
	case posted:
		// A page that moves on by itself, not a redirect: see quickApprove.
		h.render(w, http.StatusOK, view{Title: "Done", Heading: "Done", Message: "Returning to the application…", Return: template.URL(to)})
	default:
		http.Redirect(w, r, to, http.StatusSeeOther)
	}
}

// stepPost handles a POST of a setup step's form in the authorize tab
// (read by readPost, so from this site): only with the tab's CSRF token,
// for the browser holding the tab's handle and code, and only once the
// request is approved; a post for a request in any other state moves the
// tab on to its page, which shows that state.
func (h *Page) stepPost(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	handle, code := q.Get("request"), q.Get("user_code")
	if len(handle) > 128 || len(code) > 32 {
		http.Error(w, "bad form", http.StatusBadRequest)
		return
	}
	if handle == "" || !secret.Equal(tabCSRF(handle), r.PostForm.Get(stepCSRFField)) {
		http.Error(w, "this form is out of date or did not come from this page; reload the page", http.StatusForbidden)
		return
	}
	p, _, err := h.a.Poll(r.Context(), &oauth.PollRequest{Handle: handle, UserCode: code, Hold: true})
	switch {
	case errors.Is(err, oauth.ErrUnknownRequest):
		h.render(w, http.StatusNotFound, expiredView)
	case err != nil:
		h.log.Error("approval: poll", "err", err)
		h.render(w, http.StatusInternalServerError, view{Title: "Error", Heading: "Something went wrong", Message: "Reload this page to try again."})
	case p.Status != oauth.PendingApproved:
		h.render(w, http.StatusOK, view{Title: "Continue", Heading: "Continue", Message: "Returning to the request…",
			Continue: r.URL.Path + "?" + url.Values{"request": {handle}, "user_code": {code}}.Encode()})
	default:
		h.tabStep(w, r, p, handle, code, true)
	}
}

// consoleStep runs the setup step on the console for the waiting device
// request p with user code code, approved by the signed-in s.user once the
// step completes.
func (c *Console) consoleStep(w http.ResponseWriter, r *http.Request, s *session, p *oauth.PendingRequest, code string) {
	// The step sees who approves (see StepRequest), on a copy.
	shown := *p
	shown.Subject = s.user
	fields := stepFields(StepField, "1", stepCSRFField, s.v.CSRF, stepCodeField, code,
		stepConfirmField, c.confirmToken(s.v.CSRF, secret.NormalizeUserCode(code)))
	setup, done, err := serveStep(c.opts.Step, w, r, &shown, fields)
	if err != nil {
		c.log.Error("approval: setup step", "request_id", p.ID, "err", err)
		s.v.Title, s.v.Error = "Failed", "The setup step failed, so nothing was approved. Try again."
		c.render(w, http.StatusInternalServerError, s.v)
		return
	}
	if !done {
		return
	}
	err = c.approve(r, code, s.user, setup)
	switch {
	case errors.Is(err, oauth.ErrUnknownRequest), errors.Is(err, oauth.ErrAlreadyDecided):
		s.v.Title, s.v.Error = "Not decided", "This request expired or was decided already."
		c.render(w, http.StatusConflict, s.v)
	case err != nil:
		// Never the setup: its values are the host's secrets.
		c.log.Error("approval: approve with the setup step's data", "request_id", p.ID, "err", err)
		s.v.Title, s.v.Error = "Failed", "The server could not keep what the setup step collected, so nothing was approved."
		c.render(w, http.StatusInternalServerError, s.v)
	default:
		http.Redirect(w, r, c.prefix+"/?"+url.Values{"done": {"approved"}}.Encode(), http.StatusSeeOther)
	}
}

// showStep starts the setup step of the device request p, in answer to
// its Approve button: the step sees a GET with no form, as in the tab.
func (c *Console) showStep(w http.ResponseWriter, r *http.Request, s *session, p *oauth.PendingRequest, code string) {
	show := r.Clone(r.Context())
	show.Method, show.Body, show.ContentLength = http.MethodGet, http.NoBody, 0
	show.Form, show.PostForm = url.Values{}, url.Values{}
	show.Header.Del("Content-Type")
	show.Header.Del("Content-Length")
	c.consoleStep(w, show, s, p, code)
}

// decideRoute is the handler of POST prefix/decide: the decide form and,
// with a setup step, its form (by StepField), whose body may be larger.
func (c *Console) decideRoute() http.HandlerFunc {
	if c.opts.Step == nil {
		return c.form(c.signedIn(c.checked(c.decide)))
	}
	return c.formLimit(stepLimit, c.signedIn(func(w http.ResponseWriter, r *http.Request, s *session) {
		if r.PostForm.Get(StepField) != "" {
			c.stepPost(w, r, s)
			return
		}
		c.checked(c.decide)(w, r, s)
	}))
}

// stepPost handles a POST of a setup step's form on the console (read by
// form, so from this site, of a signed-in user): only with the session's
// CSRF token, and only for a device request that still waits. A code
// without its confirmation token is counted against the code-entry
// limits, as in decide.
func (c *Console) stepPost(w http.ResponseWriter, r *http.Request, s *session) {
	f := r.PostForm
	if !page.CheckCSRF(s.cookie, f.Get(stepCSRFField)) {
		s.v.Title, s.v.Error = "Nothing changed", staleForm
		c.render(w, http.StatusForbidden, s.v)
		return
	}
	code := f.Get(stepCodeField)
	norm := secret.NormalizeUserCode(code)
	var try codeTry
	if norm == "" || !hmac.Equal([]byte(c.confirmToken(s.v.CSRF, norm)), []byte(f.Get(stepConfirmField))) {
		var ok bool
		if try, ok = c.tryCode(r, s.user); !ok {
			c.tooManyCodes(w, s.v)
			return
		}
	}
	p, err := c.a.PendingByUserCode(r.Context(), code)
	if err == nil && try != nil {
		c.found(try)
	}
	if err != nil || p.Status != oauth.PendingWaiting || p.RedirectURI != "" {
		if err != nil && !errors.Is(err, oauth.ErrUnknownRequest) {
			c.log.Error("approval: look up code", "err", err)
		}
		s.v.Title, s.v.Error = "Not decided", "This request expired or was decided already."
		c.render(w, http.StatusConflict, s.v)
		return
	}
	c.consoleStep(w, r, s, p, code)
}
