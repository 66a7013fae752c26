package proxy

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	oauth "github.com/mcp-oauth/oauth"
	"github.com/mcp-oauth/oauth/internal/redirect"
)

// errUpstream answers a client when the upstream cannot be reached or
// fails: the fault is neither the client's nor ours to detail.
var errUpstream = oauth.ErrServerError.WithDescription("the identity provider did not answer as expected").WithStatus(http.StatusBadGateway)

// serveToken implements the token endpoint (OAuth 2.1 §3.2) for public
// clients (token_endpoint_auth_method none: client_id in the body, no
// secret) by forwarding to the upstream's with the facade's credentials:
// the authorization_code grant (§4.1.3), its code unsealed and checked
// against the client and redirect URI, the code_verifier passed through
// (RFC 7636 §4.5), the redirect URI the facade's callback; and the
// refresh_token grant (§4.3), its refresh token unsealed and checked
// against the client. Errors are RFC 6749 §5.2 JSON.
func (f *Facade) serveToken(w http.ResponseWriter, r *http.Request) {
	noStore(w)
	form, e := readForm(w, r)
	if e != nil {
		writeError(w, f.log, e)
		return
	}
	if r.Header.Get("Authorization") != "" || form.Get("client_secret") != "" || form.Get("client_assertion") != "" {
		writeError(w, f.log, oauth.ErrInvalidClient.WithDescription("clients of this server are public (token_endpoint_auth_method none): send client_id in the body and no credentials"))
		return
	}
	clientID := form.Get("client_id")
	if clientID == "" {
		writeError(w, f.log, oauth.ErrInvalidRequest.WithDescription("client_id is required"))
		return
	}
	if _, err := f.client(clientID); err != nil {
		writeError(w, f.log, oauth.ErrInvalidClient.WithDescription("unknown client_id"))
		return
	}
	if res := form.Get("resource"); res != "" && !redirect.SameResource(f.opts.Resource, res) {
		writeError(w, f.log, oauth.ErrInvalidTarget.WithDescription("unknown resource; this server issues tokens for "+f.opts.Resource))
		return
	}
	var up url.Values
	switch gt := form.Get("grant_type"); gt {
	case oauth.GrantTypeAuthorizationCode:
		up, e = f.codeGrant(form, clientID)
	case oauth.GrantTypeRefreshToken:
		up, e = f.refreshGrant(form, clientID)
	case "":
		e = oauth.ErrInvalidRequest.WithDescription("grant_type is required")
	default:
		e = oauth.ErrUnsupportedGrantType.WithDescription("grant_type must be authorization_code or refresh_token")
	}
	if e != nil {
		f.log.Info("proxy: token request refused", "error", e.Code, "description", e.Description)
		writeError(w, f.log, e)
		return
	}
	if !f.opts.OmitResource {
		up.Set("resource", f.opts.Resource)
	}
	addParams(up, f.opts.TokenParams)
	resp, e := f.exchange(r.Context(), up, clientDigest(clientID))
	if e != nil {
		writeError(w, f.log, e)
		return
	}
	writeJSON(w, http.StatusOK, resp)
}

// codeGrant checks an authorization_code request and returns the
// upstream's.
func (f *Facade) codeGrant(form url.Values, clientID string) (url.Values, *oauth.Error) {
	var c codeRecord
	if err := f.keys.open(prefixCode, form.Get("code"), &c); err != nil || f.opts.Now().Unix() > c.Expires {
		return nil, oauth.ErrInvalidGrant.WithDescription("the code is invalid or expired")
	}
	if c.Client != clientDigest(clientID) {
		return nil, oauth.ErrInvalidGrant.WithDescription("the code was issued to another client")
	}
	// OAuth 2.1 §4.1.3: the redirect URI, when sent, must be the
	// authorization request's.
	if ru := form.Get("redirect_uri"); ru != "" && digest("redirect", ru) != c.Redirect {
		return nil, oauth.ErrInvalidGrant.WithDescription("redirect_uri is not the authorization request's")
	}
	verifier := form.Get("code_verifier")
	if !isUnreserved(verifier) {
		return nil, oauth.ErrInvalidRequest.WithDescription("code_verifier is required: 43 to 128 characters (RFC 7636 §4.1)")
	}
	return url.Values{
		"grant_type": {oauth.GrantTypeAuthorizationCode}, "code": {c.Code},
		"redirect_uri": {f.callback}, "code_verifier": {verifier},
	}, nil
}

// refreshGrant checks a refresh_token request and returns the upstream's.
// A scope narrows to what Options.Scopes offers; none left means the
// grant's scope.
func (f *Facade) refreshGrant(form url.Values, clientID string) (url.Values, *oauth.Error) {
	var rt refreshRecord
	if err := f.keys.open(prefixRefresh, form.Get("refresh_token"), &rt); err != nil || rt.Token == "" {
		return nil, oauth.ErrInvalidGrant.WithDescription("the refresh token is invalid")
	}
	if rt.Client != clientDigest(clientID) {
		return nil, oauth.ErrInvalidGrant.WithDescription("the refresh token was issued to another client")
	}
	up := url.Values{"grant_type": {oauth.GrantTypeRefreshToken}, "refresh_token": {rt.Token}}
	if s := form.Get("scope"); s != "" {
		if scopes := f.offered(s); len(scopes) > 0 {
			up.Set("scope", strings.Join(scopes, " "))
		}
	}
	return up, nil
}

// tokenResponse is the answer of the token endpoint (RFC 6749 §5.1): the
// upstream's access token as it is, its refresh token sealed to the
// client. The upstream's id_token is not relayed: its audience is the
// facade's client at the upstream, not the MCP client.
type tokenResponse struct {
	AccessToken  string `json:"access_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int64  `json:"expires_in,omitempty"`
	RefreshToken string `json:"refresh_token,omitempty"`
	Scope        string `json:"scope,omitempty"`
}

// upstreamToken is the upstream's answer; expires_in is a number, or a
// string for providers that send one.
type upstreamToken struct {
	AccessToken  string          `json:"access_token"`
	TokenType    string          `json:"token_type"`
	ExpiresIn    json.RawMessage `json:"expires_in"`
	RefreshToken string          `json:"refresh_token"`
	Scope        string          `json:"scope"`
}

// relayedTokenErrors are the RFC 6749 §5.2 codes that are the client's
// business and relayed as they are. invalid_client and
// unauthorized_client are about the facade's own client at the upstream:
// a server misconfiguration, answered as server_error.
var relayedTokenErrors = map[string]bool{
	"invalid_request": true, "invalid_grant": true, "invalid_scope": true, "invalid_target": true,
}

// exchange sends a token request to the upstream and returns the answer
// for the client.
func (f *Facade) exchange(ctx context.Context, form url.Values, client string) (*tokenResponse, *oauth.Error) {
	ans, err := f.post(ctx, f.up.TokenEndpoint, form)
	if err != nil {
		f.log.Warn("proxy: the upstream's token endpoint failed", "err", err)
		return nil, errUpstream
	}
	if ans.status != http.StatusOK {
		return nil, f.upstreamError("token", ans)
	}
	var ut upstreamToken
	if !ans.json || json.Unmarshal(ans.body, &ut) != nil || ut.AccessToken == "" || ut.TokenType == "" {
		f.log.Warn("proxy: the upstream's token response is not an RFC 6749 §5.1 answer", "status", ans.status)
		return nil, errUpstream
	}
	out := &tokenResponse{AccessToken: ut.AccessToken, TokenType: ut.TokenType, Scope: ut.Scope, ExpiresIn: expiresIn(ut.ExpiresIn)}
	switch {
	case ut.RefreshToken == "":
	case len(ut.RefreshToken) > maxUpstreamRefresh:
		f.log.Warn("proxy: the upstream's refresh token is too long to seal; it is dropped", "len", len(ut.RefreshToken))
	default:
		out.RefreshToken = f.keys.seal(prefixRefresh, refreshRecord{Client: client, Token: ut.RefreshToken})
	}
	return out, nil
}

// expiresIn reads expires_in as a number or a numeric string; 0 when
// absent or malformed.
func expiresIn(raw json.RawMessage) int64 {
	s := string(bytes.Trim(raw, `"`))
	if n, err := strconv.ParseFloat(s, 64); err == nil && n > 0 && n < 1<<31 {
		return int64(n)
	}
	return 0
}

// upstreamError turns an upstream error answer into the client's: the
// codes that are the client's business relayed with a sanitized
// description, anything else server_error (and logged).
func (f *Facade) upstreamError(endpoint string, ans *upstreamAnswer) *oauth.Error {
	var ue struct {
		Code        string `json:"error"`
		Description string `json:"error_description"`
	}
	if ans.json {
		_ = json.Unmarshal(ans.body, &ue)
	}
	if ans.status == http.StatusBadRequest && relayedTokenErrors[ue.Code] {
		e := &oauth.Error{Code: ue.Code, Status: http.StatusBadRequest, Description: "refused by the identity provider"}
		if d := ue.Description; d != "" && len(d) <= 300 && validErrorText(d) {
			e.Description += ": " + d
		}
		return e
	}
	code := ue.Code
	if !validScopeToken(code) {
		code = "(none)"
	}
	f.log.Warn("proxy: the upstream refused a request", "endpoint", endpoint, "status", ans.status, "error", code)
	return errUpstream
}
