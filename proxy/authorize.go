package proxy

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	oauth "github.com/mcp-oauth/oauth"
	"github.com/mcp-oauth/oauth/internal/page"
	"github.com/mcp-oauth/oauth/internal/redirect"
)

// codeTTL bounds the life of the facade's code around the upstream's
// (whose own, shorter or not, still applies): OAuth 2.1 §4.1.2 wants
// codes short-lived.
const codeTTL = 5 * time.Minute

// browserParams reads the parameters of a browser request: the query of
// a GET, the form of a POST (OAuth 2.1 §4.1.1 allows both at /authorize),
// within MaxFormBytes, with no parameter repeated (RFC 6749 §3.1) or too
// long. The message is for showError.
func browserParams(w http.ResponseWriter, r *http.Request) (url.Values, int, string) {
	switch r.Method {
	case http.MethodGet:
		if len(r.URL.RawQuery) > MaxFormBytes {
			return nil, http.StatusRequestURITooLong, "The request is too long."
		}
		q, err := url.ParseQuery(r.URL.RawQuery)
		if err != nil {
			return nil, http.StatusBadRequest, "The request could not be read."
		}
		if e := checkParams(q); e != nil {
			return nil, http.StatusBadRequest, "The request is malformed: " + e.Description + "."
		}
		return q, 0, ""
	case http.MethodPost:
		q, e := readForm(w, r)
		if e != nil {
			return nil, e.HTTPStatus(), "The request is malformed: " + e.Description + "."
		}
		return q, 0, ""
	}
	w.Header().Set("Allow", "GET, POST")
	return nil, http.StatusMethodNotAllowed, "This address takes GET and POST only."
}

// serveAuthorize implements the authorization endpoint (OAuth 2.1
// §4.1.1, RFC 7636 §4.3, RFC 8707 §2) by sending the browser on to the
// upstream's. Until the client and its redirect URI are known to be
// valid, errors are shown on a page and never redirected (OAuth 2.1
// §4.1.2.1: no open redirect); after that they return to the client with
// error, state and iss (RFC 9207).
func (f *Facade) serveAuthorize(w http.ResponseWriter, r *http.Request) {
	q, status, msg := browserParams(w, r)
	if q == nil {
		f.showError(w, status, msg)
		return
	}
	clientID := q.Get("client_id")
	if clientID == "" {
		f.showError(w, http.StatusBadRequest, "The request has no client_id.")
		return
	}
	client, err := f.client(clientID)
	if err != nil {
		f.showError(w, http.StatusBadRequest, "This application is not registered with this server (unknown client_id). Ask it to connect again.")
		return
	}
	redirectURI := q.Get("redirect_uri")
	switch {
	case redirectURI != "" && !redirect.Match(client.RedirectURIs, redirectURI):
		f.showError(w, http.StatusBadRequest, "The redirect URI in this request is not one this application registered, so the server will not send you there.")
		return
	case redirectURI == "" && len(client.RedirectURIs) != 1:
		f.showError(w, http.StatusBadRequest, "The request has no redirect_uri, and the application registered more than one.")
		return
	case redirectURI == "":
		redirectURI = client.RedirectURIs[0]
	}

	// From here on the redirect URI is trusted: errors go back to the client.
	state := q.Get("state")
	fail := func(e *oauth.Error) { f.redirectError(w, r, redirectURI, state, e) }
	if len(state) > MaxStateLen {
		state = ""
		fail(oauth.ErrInvalidRequest.WithDescription("state is too long"))
		return
	}
	if rt := q.Get("response_type"); rt != "code" {
		if rt == "" {
			fail(oauth.ErrInvalidRequest.WithDescription("response_type is required"))
		} else {
			fail(oauth.ErrUnsupportedResponseType.WithDescription("only response_type=code is supported"))
		}
		return
	}
	challenge, method := q.Get("code_challenge"), q.Get("code_challenge_method")
	switch {
	case challenge == "":
		fail(oauth.ErrInvalidRequest.WithDescription("code_challenge is required (PKCE, S256)"))
		return
	case method != "S256":
		fail(oauth.ErrInvalidRequest.WithDescription("code_challenge_method must be S256"))
		return
	case len(challenge) != 43 || !isUnreserved(challenge) || strings.ContainsAny(challenge, ".~"):
		fail(oauth.ErrInvalidRequest.WithDescription("code_challenge must be the base64url SHA-256 of the verifier (43 characters)"))
		return
	}
	if res := q.Get("resource"); res != "" && !redirect.SameResource(f.opts.Resource, res) {
		fail(oauth.ErrInvalidTarget.WithDescription("unknown resource; this server issues tokens for " + f.opts.Resource))
		return
	}
	scopes := f.scopes(q.Get("scope"))
	sealed := f.keys.seal(prefixState, stateRecord{
		Client: clientDigest(clientID), RedirectURI: redirectURI, State: state,
		Expires: f.opts.Now().Add(f.opts.StateTTL).Unix(),
	})
	up := url.Values{
		"response_type": {"code"}, "client_id": {f.opts.ClientID}, "redirect_uri": {f.callback},
		"state": {sealed}, "code_challenge": {challenge}, "code_challenge_method": {"S256"},
	}
	if len(scopes) > 0 {
		up.Set("scope", strings.Join(scopes, " "))
	}
	if !f.opts.OmitResource {
		up.Set("resource", f.opts.Resource)
	}
	addParams(up, f.opts.AuthParams)
	to, err := redirect.With(f.up.AuthorizationEndpoint, up)
	if err != nil {
		fail(oauth.ErrServerError.WithDescription("the upstream's authorization endpoint is malformed"))
		return
	}
	noStore(w)
	page.SetHeaders(w.Header())
	http.Redirect(w, r, to, http.StatusFound)
}

// scopes resolves a requested scope (RFC 6749 §3.3) against
// Options.Scopes: scopes not offered are ignored (as §3.3 allows), so
// that no client obtains a token for another API through the facade's
// client; none left means all of Options.Scopes.
func (f *Facade) scopes(requested string) []string {
	if out := f.offered(requested); len(out) > 0 {
		return out
	}
	return f.opts.Scopes
}

// offered returns the requested scopes that Options.Scopes offers, each
// once.
func (f *Facade) offered(requested string) []string {
	var out []string
	for _, s := range strings.Fields(requested) {
		if slices.Contains(f.opts.Scopes, s) && !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

// redirectError returns an authorization error to the client's
// validated redirect URI (OAuth 2.1 §4.1.2.1), with its state and this
// facade's iss (RFC 9207 §2).
func (f *Facade) redirectError(w http.ResponseWriter, r *http.Request, redirectURI, state string, e *oauth.Error) {
	f.log.Info("proxy: authorization error returned to the client", "error", e.Code, "description", e.Description)
	to, err := redirect.With(redirectURI, url.Values{
		"error": {e.Code}, "error_description": {e.Description}, "state": {state}, "iss": {f.opts.Issuer},
	})
	if err != nil {
		f.showError(w, http.StatusBadRequest, "The redirect URI is malformed.")
		return
	}
	noStore(w)
	page.SetHeaders(w.Header())
	http.Redirect(w, r, to, http.StatusFound)
}

// authorizationErrors are the codes of RFC 6749 §4.1.2.1 relayed from the
// upstream as they are; any other becomes server_error.
var authorizationErrors = map[string]bool{
	"invalid_request": true, "unauthorized_client": true, "access_denied": true, "unsupported_response_type": true,
	"invalid_scope": true, "server_error": true, "temporarily_unavailable": true, "invalid_target": true,
	"login_required": true, "consent_required": true, "interaction_required": true, "account_selection_required": true,
}

// serveCallback receives the upstream's authorization response (RFC 6749
// §4.1.2) and returns it to the client: the state must be one this facade
// sealed and not expired, the iss the upstream's (RFC 9207 §2.4: required
// when the upstream advertises it). The code goes back sealed to the
// client and redirect URI it is for, with the client's state and this
// facade's iss.
func (f *Facade) serveCallback(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", "GET")
		f.showError(w, http.StatusMethodNotAllowed, "This address takes GET only.")
		return
	}
	q, status, msg := browserParams(w, r)
	if q == nil {
		f.showError(w, status, msg)
		return
	}
	var st stateRecord
	if err := f.keys.open(prefixState, q.Get("state"), &st); err != nil || st.RedirectURI == "" {
		f.showError(w, http.StatusBadRequest, "This answer from the identity provider does not belong to a sign-in this server started.")
		return
	}
	// The record is authentic: its redirect URI was validated at /authorize.
	fail := func(e *oauth.Error) { f.redirectError(w, r, st.RedirectURI, st.State, e) }
	if f.opts.Now().Unix() > st.Expires {
		fail(oauth.ErrAccessDenied.WithDescription("the sign-in at the identity provider took too long; start again"))
		return
	}
	if iss, ok := q["iss"]; (ok && iss[0] != f.opts.Upstream) || (!ok && f.up.AuthorizationResponseIssParameterSupported) {
		f.log.Warn("proxy: the upstream's authorization response has the wrong iss (RFC 9207)")
		fail(oauth.ErrServerError.WithDescription("the identity provider's answer came from the wrong issuer"))
		return
	}
	if code := q.Get("error"); code != "" {
		e := oauth.ErrServerError.WithDescription("the identity provider refused the request")
		if authorizationErrors[code] {
			e = &oauth.Error{Code: code, Description: "the identity provider refused the request"}
			if d := q.Get("error_description"); d != "" && len(d) <= 300 && validErrorText(d) {
				e.Description += ": " + d
			}
		}
		fail(e)
		return
	}
	code := q.Get("code")
	if code == "" || len(code) > maxUpstreamCode || !validErrorText(code) {
		fail(oauth.ErrServerError.WithDescription("the identity provider sent no usable code"))
		return
	}
	ours := f.keys.seal(prefixCode, codeRecord{
		Client: st.Client, Redirect: digest("redirect", st.RedirectURI), Code: code,
		Expires: f.opts.Now().Add(codeTTL).Unix(),
	})
	to, err := redirect.With(st.RedirectURI, url.Values{"code": {ours}, "state": {st.State}, "iss": {f.opts.Issuer}})
	if err != nil {
		f.showError(w, http.StatusBadRequest, "The redirect URI is malformed.")
		return
	}
	noStore(w)
	page.SetHeaders(w.Header())
	http.Redirect(w, r, to, http.StatusFound)
}
