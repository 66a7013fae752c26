package approval

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"html/template"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	oauth "github.com/mcp-oauth/oauth"
	"github.com/mcp-oauth/oauth/internal/page"
	"github.com/mcp-oauth/oauth/internal/ratelimit"
	"github.com/mcp-oauth/oauth/internal/secret"
)

// The console: where a signed-in owner enters the code that a connecting
// client's tab (or a device) shows, checks what is asked, and approves or
// denies; and where they see and revoke grants and delete clients. No
// password is ever typed into a page an MCP client opened: the console is
// a page the owner opens themselves.

// ConsoleOptions configure the console.
type ConsoleOptions struct {
	// Admin, when set, gives the console its lists of grants and clients,
	// with their revoke and delete buttons. Nil means the console shows
	// and decides pending requests only. mcpauth.Wrap sets it when the
	// Provider is an oauth.Administrator.
	Admin oauth.Administrator
	// ProductName is shown in page titles; empty means "MCP server".
	ProductName string
	// LogoURL is as PageOptions.LogoURL.
	LogoURL string
	// Accounts is the built-in sign-in. Nil means Identity decides.
	Accounts *Accounts
	// Identity, when set, replaces the built-in sign-in: the host
	// application says who the console user of a request is (from its own
	// session, SSO, or a header set by a trusted proxy). The console then
	// shows no sign-in form, only a link to SignInURL.
	Identity Identity
	// SignInURL is where a visitor signs in when Identity is set. The
	// approval page links to it too, with ?return= its own URL, so that
	// the person who started a request can sign in and approve it
	// (package upstream serves such a sign-in).
	SignInURL string
	// SignInLabel is the text of that link; empty means "Sign in".
	SignInLabel string
	// ScopeDescriptions and Resources are as in PageOptions, for the
	// confirmation screen.
	ScopeDescriptions map[string]string
	Resources         map[string]ResourceInfo
	// ClientIP, when set, returns the client's address of a request, for
	// the per-address limits of sign-in and code entry. Nil, or "" from
	// it, means the connection's peer (r.RemoteAddr), which behind a
	// reverse proxy is the proxy: every client would then share one limit.
	// mcpauth.Wrap sets it from X-Forwarded-For when TrustProxyHeaders is
	// set.
	ClientIP func(r *http.Request) string
	// Step, when set, is the setup step (see [Complete]) of RFC 8628
	// device requests, which have no authorize tab: the owner's Approve
	// click on the confirmation page shows it instead of approving, its
	// form (carrying [StepFields]) posts back to the console, and the
	// request is approved, with the step's setup, when it completes.
	// Denying never runs it; a step left unfinished leaves the request
	// waiting until it expires. A browser request's step runs in its tab
	// (PageOptions.Step), so mcpauth.Wrap gives both the same handler. Nil
	// means Approve approves at once.
	Step http.Handler
	// Secure marks cookies Secure and gives them the __Host- prefix; set
	// it when the console is served over HTTPS.
	Secure bool
	// Logger receives errors; nil discards them.
	Logger *slog.Logger
}

// Identity is a host application's sign-in for the console.
type Identity interface {
	// ConsoleUser returns the console user of r, or "" when nobody is
	// signed in. An error is logged and answered with 500.
	ConsoleUser(r *http.Request) (string, error)
}

// IdentityFunc adapts a function to Identity, as http.HandlerFunc does for
// http.Handler.
type IdentityFunc func(r *http.Request) (string, error)

// ConsoleUser calls f(r).
func (f IdentityFunc) ConsoleUser(r *http.Request) (string, error) { return f(r) }

// Code-entry limits: wrong user codes are limited per console user, per
// client network (see clientNet) and overall, so that guessing a live code
// is hopeless (see the README's security section for the arithmetic).
const (
	codeTriesPerUser = 10
	codeTriesPerIP   = 20
	codeTriesGlobal  = 200
	codeTriesWindow  = time.Minute
	// codeTriesAll is the key of the overall count.
	codeTriesAll = "*"
)

// Console serves the console. Create it with NewConsole and mount it at a
// path prefix (mcpauth mounts it at /console).
type Console struct {
	a      oauth.Approver
	opts   ConsoleOptions
	log    *slog.Logger
	prefix string
	mux    *http.ServeMux
	origin *http.CrossOriginProtection

	confirmKey [32]byte // see confirmToken

	tries *ratelimit.Window // wrong codes by "u:"+user, "ip:"+client network and codeTriesAll
}

// NewConsole returns the console that decides the requests of a, served
// under prefix (such as "/console"; "" means the root). Its routes:
//
//	GET  prefix, prefix/          the home page: pending requests, grants, clients
//	GET  prefix/approve           the confirmation of ?user_code=
//	POST prefix/signin            the built-in sign-in (ConsoleOptions.Accounts)
//	POST prefix/signout
//	POST prefix/decide            approve or deny a code (and a setup step's form)
//	POST prefix/grants/revoke     (with ConsoleOptions.Admin)
//	POST prefix/clients/delete    (with ConsoleOptions.Admin)
func NewConsole(a oauth.Approver, prefix string, opts ConsoleOptions) *Console {
	if opts.ProductName == "" {
		opts.ProductName = "MCP server"
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	c := &Console{a: a, opts: opts, log: log, prefix: strings.TrimSuffix(prefix, "/"), tries: ratelimit.New(codeTriesWindow, codeTriesAll),
		mux: http.NewServeMux(), origin: http.NewCrossOriginProtection()}
	rand.Read(c.confirmKey[:]) // never fails (crypto/rand panics rather than return short)
	p := c.prefix
	if p != "" {
		c.mux.HandleFunc("GET "+p, c.signedIn(c.home))
	}
	c.mux.HandleFunc("GET "+p+"/{$}", c.signedIn(c.home))
	c.mux.HandleFunc("GET "+p+"/approve", c.signedIn(func(w http.ResponseWriter, r *http.Request, s *session) {
		c.confirm(w, r, s.v, r.URL.Query().Get("user_code"))
	}))
	c.mux.HandleFunc("POST "+p+"/signin", c.form(c.signIn))
	c.mux.HandleFunc("POST "+p+"/signout", c.form(c.signedIn(c.checked(c.signOut))))
	c.mux.HandleFunc("POST "+p+"/decide", c.decideRoute())
	if opts.Admin != nil {
		c.mux.HandleFunc("POST "+p+"/grants/revoke", c.form(c.signedIn(c.checked(c.revokeGrant))))
		c.mux.HandleFunc("POST "+p+"/clients/delete", c.form(c.signedIn(c.checked(c.deleteClient))))
	}
	return c
}

// cookie names: the session, and the pre-session cookie that protects the
// sign-in form against login CSRF.
func (c *Console) cookieName(base string) string {
	if c.opts.Secure {
		return "__Host-" + base
	}
	return base
}

func (c *Console) setCookie(w http.ResponseWriter, base, value string, maxAge int) {
	http.SetCookie(w, &http.Cookie{Name: c.cookieName(base), Value: value, Path: "/", MaxAge: maxAge,
		HttpOnly: true, Secure: c.opts.Secure, SameSite: http.SameSiteLaxMode})
}

func cookieValue(r *http.Request, name string) string {
	if ck, err := r.Cookie(name); err == nil {
		return ck.Value
	}
	return ""
}

// consoleView is what the console template renders.
type consoleView struct {
	ProductName, Title, Prefix string
	Logo                       template.URL
	User, CSRF                 string
	Error, Notice              string
	SignIn, SignInURL          string // SignIn: the pre-session CSRF token of the form
	SignInCode                 string // a user code to confirm after signing in
	Confirm                    *oauth.PendingRequest
	ConfirmCode, RedirectHost  string
	ResourceName               string // see ResourceInfo
	ConfirmToken               string // see confirmToken
	DocumentHost               string // see describe
	Scopes                     []scope
	LoopbackOnly               bool
	Pending                    []*oauth.PendingRequest
	Grants                     []*oauth.Grant
	Clients                    []*oauth.Client
	ClientNames                map[string]string // client ID to name, for the grants
	// MorePending, MoreGrants and MoreClients are the full counts of lists
	// cut to their newest consoleListMax entries; zero when not cut.
	MorePending, MoreGrants, MoreClients int
	ListMax                              int
	Home                                 bool
	// Admin shows the lists of grants and clients.
	Admin bool
}

// ServeHTTP implements http.Handler.
func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hdr := w.Header()
	hdr.Set("Cache-Control", "no-store")
	page.SetHeaders(hdr)
	c.mux.ServeHTTP(w, r)
}

// session is a request of a signed-in console user.
type session struct {
	user string
	// cookie is what the user's CSRF tokens derive from (see user).
	cookie string
	// v is the page to render, with the user and the CSRF token set.
	v consoleView
}

// form admits a form POST only from this site and reads its body, of at
// most 16 KiB (see readPost); on failure it has answered.
func (c *Console) form(next http.HandlerFunc) http.HandlerFunc { return c.formLimit(16<<10, next) }

// formLimit is form with a body of at most limit bytes.
func (c *Console) formLimit(limit int64, next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if readPost(w, r, c.origin, limit) {
			next(w, r)
		}
	}
}

// signedIn runs next for a signed-in user, and otherwise shows the
// sign-in form: for a GET of the confirmation page, with the code to
// confirm once signed in; for a POST, saying that nothing was changed.
func (c *Console) signedIn(next func(http.ResponseWriter, *http.Request, *session)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		user, cookie, err := c.user(r)
		if err != nil {
			c.log.Error("approval: console session", "err", err)
			http.Error(w, "internal error", http.StatusInternalServerError)
			return
		}
		if user == "" {
			if r.Method == http.MethodPost {
				c.showSignIn(w, r, http.StatusForbidden, "Your session has ended, so nothing was changed. Sign in and try again.", "")
				return
			}
			code := ""
			if strings.TrimPrefix(r.URL.Path, c.prefix) == "/approve" {
				code = r.URL.Query().Get("user_code")
			}
			c.showSignIn(w, r, http.StatusOK, "", code)
			return
		}
		cookie = c.formSession(w, cookie)
		next(w, r, &session{user: user, cookie: cookie,
			v: consoleView{User: user, CSRF: page.CSRFToken(cookie), Admin: c.opts.Admin != nil}})
	}
}

// checked runs next for a POST whose CSRF token is the session's, and
// otherwise answers that nothing changed.
func (c *Console) checked(next func(http.ResponseWriter, *http.Request, *session)) func(http.ResponseWriter, *http.Request, *session) {
	return func(w http.ResponseWriter, r *http.Request, s *session) {
		if !page.CheckCSRF(s.cookie, r.PostForm.Get("csrf")) {
			s.v.Title, s.v.Error = "Nothing changed", staleForm
			c.render(w, http.StatusForbidden, s.v)
			return
		}
		next(w, r, s)
	}
}

// user returns the signed-in user and the cookie its forms' CSRF tokens
// derive from: the session cookie, or with a host Identity the browser's
// mcpauth_pre cookie ("" until formSession sets it).
func (c *Console) user(r *http.Request) (string, string, error) {
	if c.opts.Identity != nil {
		u, err := c.opts.Identity.ConsoleUser(r)
		return u, cookieValue(r, c.cookieName("mcpauth_pre")), err
	}
	if c.opts.Accounts == nil {
		return "", "", nil
	}
	cookie := cookieValue(r, c.cookieName("mcpauth_console"))
	if cookie == "" {
		return "", "", nil
	}
	u, err := c.opts.Accounts.User(r.Context(), cookie)
	if errors.Is(err, ErrNoSession) {
		return "", "", nil
	}
	return u, cookie, err
}

// formSession returns the cookie value that a signed-in browser's CSRF
// tokens derive from: its session, or with a host Identity a random
// cookie of this browser, set now if it has none yet.
func (c *Console) formSession(w http.ResponseWriter, session string) string {
	if c.opts.Identity != nil && session == "" {
		session = secret.New("mcp_pre_")
		c.setCookie(w, "mcpauth_pre", session, 12*3600)
	}
	return session
}

// staleForm answers a form post whose CSRF token is missing or wrong: a
// form left open across a sign-out, or one another page forged.
const staleForm = "This form was out of date or did not come from this console, so nothing was changed. Try again."

// showSignIn renders the sign-in form with a fresh pre-session cookie,
// whose derived token the form must return (login CSRF).
func (c *Console) showSignIn(w http.ResponseWriter, r *http.Request, status int, msg, userCode string) {
	v := consoleView{Error: msg, SignInURL: c.opts.SignInURL, SignInCode: secret.DisplayUserCode(userCode)}
	if c.opts.Accounts != nil {
		pre := secret.New("mcp_pre_")
		c.setCookie(w, "mcpauth_pre", pre, 3600)
		v.SignIn = page.CSRFToken(pre)
	}
	v.Title = "Sign in"
	c.render(w, status, v)
}

func (c *Console) signIn(w http.ResponseWriter, r *http.Request) {
	if c.opts.Accounts == nil {
		http.NotFound(w, r)
		return
	}
	pre := cookieValue(r, c.cookieName("mcpauth_pre"))
	if !page.CheckCSRF(pre, r.PostForm.Get("csrf")) {
		c.showSignIn(w, r, http.StatusForbidden, staleForm, r.PostForm.Get("user_code"))
		return
	}
	in, err := c.opts.Accounts.SignIn(r.Context(), SignInAttempt{Name: r.PostForm.Get("name"), Password: r.PostForm.Get("password"),
		ClientIP: c.clientIP(r), Device: cookieValue(r, c.cookieName("mcpauth_device"))})
	switch {
	case errors.Is(err, ErrSignInFailed), errors.Is(err, ErrThrottled):
		c.showSignIn(w, r, http.StatusOK, strings.TrimPrefix(err.Error(), "approval: "), r.PostForm.Get("user_code"))
		return
	case err != nil:
		c.log.Error("approval: sign in", "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	c.setCookie(w, "mcpauth_pre", "", -1)
	c.setCookie(w, "mcpauth_console", in.Session, int(c.opts.Accounts.opts.SessionLifetime/time.Second))
	c.setCookie(w, "mcpauth_device", in.Device, int(DeviceCookieLifetime/time.Second))
	to := c.prefix + "/"
	// Only a code-shaped user_code: the sign-in page names the code it will
	// confirm, and must not show a link's arbitrary text.
	if code := secret.DisplayUserCode(r.PostForm.Get("user_code")); code != "" {
		to = c.prefix + "/approve?" + url.Values{"user_code": {code}}.Encode()
	}
	http.Redirect(w, r, to, http.StatusSeeOther)
}

// clientIP is the client's address: ConsoleOptions.ClientIP's answer, or
// the connection's peer.
func (c *Console) clientIP(r *http.Request) string { return ratelimit.ClientIP(r, c.opts.ClientIP) }

func (c *Console) home(w http.ResponseWriter, r *http.Request, s *session) {
	ctx, v := r.Context(), s.v
	var err error
	if v.Pending, err = c.a.ListPending(ctx); err == nil && c.opts.Admin != nil {
		if v.Grants, err = c.opts.Admin.ListGrants(ctx); err == nil {
			v.Clients, err = c.opts.Admin.ListClients(ctx)
		}
	}
	if err != nil {
		c.log.Error("approval: console lists", "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	// A page of bounded size, whatever a flood of registrations or
	// requests left in the store: the newest consoleListMax of each.
	v.ListMax = consoleListMax
	v.MorePending, v.Pending = newest(v.Pending)
	v.MoreGrants, v.Grants = newest(v.Grants)
	v.MoreClients, v.Clients = newest(v.Clients)
	v.ClientNames = make(map[string]string, len(v.Clients))
	for _, cl := range v.Clients {
		v.ClientNames[cl.ID] = cl.ClientName
	}
	v.Home, v.Title = true, "Console"
	// The notice is chosen by a key, never taken from the URL: a link
	// must not be able to put its own words on the console.
	v.Notice = notice(r.URL.Query().Get("done"))
	c.render(w, http.StatusOK, v)
}

// consoleListMax bounds each list on the console's home page.
const consoleListMax = 100

// newest returns the last consoleListMax entries of list (the stores list
// oldest first) and, when it cut any, the full count.
func newest[T any](list []T) (int, []T) {
	if len(list) <= consoleListMax {
		return 0, list
	}
	return len(list), list[len(list)-consoleListMax:]
}

// confirm shows what approving a code grants, or an error for a code that
// matches no live request (counted against the code-entry limits).
func (c *Console) confirm(w http.ResponseWriter, r *http.Request, v consoleView, code string) {
	try, ok := c.tryCode(r, v.User)
	if !ok {
		c.tooManyCodes(w, v)
		return
	}
	p, err := c.a.PendingByUserCode(r.Context(), code)
	if err == nil {
		c.found(try) // a real code, even if decided already
	}
	if err != nil || p.Status != oauth.PendingWaiting {
		if err != nil && !errors.Is(err, oauth.ErrUnknownRequest) {
			c.log.Error("approval: look up code", "err", err)
		}
		v.Title, v.Error = "Unknown code", "No connection is waiting for this code. Check it, or ask for a new one."
		c.render(w, http.StatusNotFound, v)
		return
	}
	v.Confirm = p
	// The code in display form when it has this library's shape; an
	// Approver of another kind issues codes of its own, which this page
	// shows and posts back as the owner typed them (it found a request,
	// so the text is a live code, not a link's).
	if v.ConfirmCode = secret.DisplayUserCode(code); v.ConfirmCode == "" {
		v.ConfirmCode = strings.TrimSpace(code)
	}
	v.Title = "Approve " + v.ConfirmCode
	v.ConfirmToken = c.confirmToken(v.CSRF, secret.NormalizeUserCode(code))
	v.RedirectHost, v.DocumentHost, v.LoopbackOnly = describe(p)
	v.ResourceName, v.Scopes = describeRequest(c.opts.Resources, c.opts.ScopeDescriptions, p)
	c.render(w, http.StatusOK, v)
}

func (c *Console) signOut(w http.ResponseWriter, r *http.Request, s *session) {
	var err error
	if c.opts.Accounts != nil {
		err = c.opts.Accounts.SignOut(r.Context(), s.cookie)
	}
	c.setCookie(w, "mcpauth_console", "", -1)
	if err != nil {
		c.failed(w, r, s, err)
		return
	}
	http.Redirect(w, r, c.prefix+"/", http.StatusSeeOther)
}

// decide approves or denies a code; with a setup step, approving a device
// request shows the step instead (see ConsoleOptions.Step). A decision
// from the confirmation page names a code that page found (and counted);
// any other is a code tried here, counted against the code-entry limits.
func (c *Console) decide(w http.ResponseWriter, r *http.Request, s *session) {
	ctx, f := r.Context(), r.PostForm
	code := f.Get("user_code")
	norm := secret.NormalizeUserCode(code)
	confirmed := norm != "" && hmac.Equal([]byte(c.confirmToken(s.v.CSRF, norm)), []byte(f.Get("confirm")))
	var try codeTry
	if !confirmed {
		var ok bool
		if try, ok = c.tryCode(r, s.user); !ok {
			c.tooManyCodes(w, s.v)
			return
		}
	}
	var err error
	done := "approved"
	switch {
	case f.Get("action") != "approve":
		_, err = c.a.Deny(ctx, code)
		done = "denied"
	case c.opts.Step != nil:
		// A device request's setup step runs here, before it is approved
		// (a browser request's runs in its tab, after).
		var p *oauth.PendingRequest
		if p, err = c.a.PendingByUserCode(ctx, code); err == nil && p.Status != oauth.PendingWaiting {
			err = oauth.ErrAlreadyDecided
		}
		if err == nil && p.RedirectURI == "" {
			if try != nil {
				c.found(try)
			}
			c.showStep(w, r, s, p, code)
			return
		}
		if err == nil {
			err = c.approve(r, code, s.user, nil)
		}
	default:
		err = c.approve(r, code, s.user, nil)
	}
	if try != nil && (err == nil || errors.Is(err, oauth.ErrAlreadyDecided)) {
		c.found(try)
	}
	if errors.Is(err, oauth.ErrUnknownRequest) || errors.Is(err, oauth.ErrAlreadyDecided) {
		s.v.Title, s.v.Error = "Not decided", "This request expired or was decided already."
		c.render(w, http.StatusConflict, s.v)
		return
	}
	c.finish(w, r, s, err, done)
}

func (c *Console) revokeGrant(w http.ResponseWriter, r *http.Request, s *session) {
	c.finish(w, r, s, c.opts.Admin.RevokeGrant(r.Context(), r.PostForm.Get("grant_id")), "revoked")
}

func (c *Console) deleteClient(w http.ResponseWriter, r *http.Request, s *session) {
	c.finish(w, r, s, c.opts.Admin.DeleteClient(r.Context(), r.PostForm.Get("client_id")), "deleted")
}

// finish answers a console action: back to the home page with the notice
// of done, or a page saying it failed.
func (c *Console) finish(w http.ResponseWriter, r *http.Request, s *session, err error, done string) {
	if err != nil {
		c.failed(w, r, s, err)
		return
	}
	http.Redirect(w, r, c.prefix+"/?"+url.Values{"done": {done}}.Encode(), http.StatusSeeOther)
}

func (c *Console) failed(w http.ResponseWriter, r *http.Request, s *session, err error) {
	c.log.Error("approval: console action", "path", r.URL.Path, "err", err)
	s.v.Title, s.v.Error = "Failed", "That did not work; reload the console and try again."
	c.render(w, http.StatusBadRequest, s.v)
}

// notice is the console's message after a post, by the key that the
// post's redirect carries; unknown keys show none.
func notice(key string) string {
	switch key {
	case "approved":
		return "Approved. The application continues by itself."
	case "denied":
		return "Denied."
	case "revoked":
		return "Grant revoked."
	case "deleted":
		return "Client deleted, and its grants revoked."
	}
	return ""
}

func (c *Console) tooManyCodes(w http.ResponseWriter, v consoleView) {
	v.Title, v.Error = "Too many codes", "Too many codes tried; wait a minute and try again."
	c.render(w, http.StatusTooManyRequests, v)
}

// confirmToken binds a decision form to the code its confirmation page
// found, for the session whose CSRF token is csrf: a MAC under a key of
// this process, since a signed-in user knows their own CSRF token. On
// another replica it does not verify, and the decision's code is simply
// counted as a tried one.
func (c *Console) confirmToken(csrf, normCode string) string {
	m := hmac.New(sha256.New, c.confirmKey[:])
	m.Write([]byte(csrf + "\x00" + normCode))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// codeTry is a code counted against the code-entry limits (see tryCode).
type codeTry []string

// tryCode counts a code about to be looked up (by the confirmation page,
// or by Approve or Deny, which take a code too) against the user, the
// client's network and everyone, and reports whether it is within the
// limits. The count is taken before the lookup, so that concurrent guesses
// cannot all pass; found takes it back when the code was a live one: only
// wrong codes count.
func (c *Console) tryCode(r *http.Request, user string) (codeTry, bool) {
	user, ip := "u:"+user, "ip:"+ratelimit.Network(c.clientIP(r))
	ok := c.tries.Reserve(time.Now(), map[string]int{user: codeTriesPerUser, ip: codeTriesPerIP, codeTriesAll: codeTriesGlobal})
	return codeTry{user, ip, codeTriesAll}, ok
}

// found takes back a counted code that matched a request.
func (c *Console) found(t codeTry) { c.tries.Refund(t...) }

func (c *Console) render(w http.ResponseWriter, status int, v consoleView) {
	v.ProductName, v.Prefix = c.opts.ProductName, c.prefix
	v.Logo = withLogo(w, c.opts.LogoURL)
	writePage(w, c.log, status, "console.html", v)
}
