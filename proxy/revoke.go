package proxy

import (
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"

	oauth "github.com/mcp-oauth/oauth"
	"github.com/mcp-oauth/oauth/internal/secret"
)

// ourPrefixes start the facade's sealed values. Of them only refresh
// tokens are tokens a client may revoke; the others are never active.
var ourPrefixes = []string{prefixClient, prefixState, prefixCode, prefixRefresh}

func isOurs(token string) bool {
	return slices.ContainsFunc(ourPrefixes, func(p string) bool { return strings.HasPrefix(token, p) })
}

// serveRevoke implements token revocation (RFC 7009 §2) for public
// clients (client_id in the body) by forwarding to the upstream's
// revocation endpoint with the facade's credentials. A refresh token is
// the facade's, sealed to a client: it is unsealed, checked against the
// client (§2.1) and the upstream's revoked, which ends the upstream
// grant. Any other token is taken for an upstream access token and
// forwarded as it is: whoever holds a token may end it, and the upstream
// refuses those not issued to the facade's client. An invalid token is
// no error (§2.2).
func (f *Facade) serveRevoke(w http.ResponseWriter, r *http.Request) {
	noStore(w)
	form, e := readForm(w, r)
	if e != nil {
		writeError(w, f.log, e)
		return
	}
	if r.Header.Get("Authorization") != "" || form.Get("client_secret") != "" {
		writeError(w, f.log, oauth.ErrInvalidClient.WithDescription("clients of this server are public: send client_id in the body and no credentials"))
		return
	}
	clientID := form.Get("client_id")
	if _, err := f.client(clientID); err != nil {
		writeError(w, f.log, oauth.ErrInvalidClient.WithDescription("unknown or missing client_id"))
		return
	}
	token := form.Get("token")
	if token == "" {
		writeError(w, f.log, oauth.ErrInvalidRequest.WithDescription("token is required"))
		return
	}
	up := url.Values{"token": {token}, "token_type_hint": {"access_token"}}
	if strings.HasPrefix(token, prefixRefresh) {
		var rt refreshRecord
		if f.keys.open(prefixRefresh, token, &rt) != nil {
			w.WriteHeader(http.StatusOK) // §2.2: an invalid token is no error
			return
		}
		if rt.Client != clientDigest(clientID) {
			writeError(w, f.log, oauth.ErrUnauthorizedClient.WithDescription("the token was not issued to this client"))
			return
		}
		up = url.Values{"token": {rt.Token}, "token_type_hint": {"refresh_token"}}
	} else if isOurs(token) {
		w.WriteHeader(http.StatusOK) // not a token: nothing to revoke
		return
	}
	ans, err := f.post(r.Context(), f.up.RevocationEndpoint, up)
	switch {
	case err != nil || ans.status >= 500:
		if err != nil {
			f.log.Warn("proxy: the upstream's revocation endpoint failed", "err", err)
		} else {
			f.log.Warn("proxy: the upstream's revocation endpoint failed", "status", ans.status)
		}
		// §2.2.1: 503 tells the client to try again later.
		writeError(w, f.log, oauth.ErrTemporarilyUnavailable.WithDescription("the identity provider could not revoke the token now; try again later"))
	case ans.status == http.StatusOK:
		w.WriteHeader(http.StatusOK)
	case ans.json && strings.Contains(string(ans.body), `"unsupported_token_type"`):
		writeError(w, f.log, oauth.ErrUnsupportedTokenType.WithDescription("the identity provider cannot revoke this token"))
	default:
		// The upstream refused the token: not one of its tokens for the
		// facade's client, hence invalid here (§2.2).
		f.log.Info("proxy: the upstream refused a revocation", "status", ans.status)
		w.WriteHeader(http.StatusOK)
	}
}

// serveIntrospect implements token introspection (RFC 7662 §2) for the
// resource servers of Options.ResourceServers (client_secret_basic), by
// forwarding to the upstream's introspection endpoint with the facade's
// credentials. Only tokens for this facade's server are reported active:
// an answer whose aud names none of Options.Audiences, or whose iss is
// not the upstream's, becomes {"active": false}, so that the facade never
// vouches for a token meant for another API. The facade's own sealed
// values are never active (refresh tokens are not a resource server's
// business).
func (f *Facade) serveIntrospect(w http.ResponseWriter, r *http.Request) {
	noStore(w)
	if !f.resourceServer(r) {
		w.Header().Set("WWW-Authenticate", `Basic realm="introspection"`)
		writeError(w, f.log, oauth.ErrInvalidClient.WithDescription("introspection is for the resource servers of this server (client_secret_basic)"))
		return
	}
	form, e := readForm(w, r)
	if e != nil {
		writeError(w, f.log, e)
		return
	}
	token := form.Get("token")
	if token == "" {
		writeError(w, f.log, oauth.ErrInvalidRequest.WithDescription("token is required"))
		return
	}
	inactive := map[string]bool{"active": false}
	if isOurs(token) {
		writeJSON(w, http.StatusOK, inactive)
		return
	}
	ans, err := f.post(r.Context(), f.up.IntrospectionEndpoint, url.Values{"token": {token}, "token_type_hint": {"access_token"}})
	if err != nil || ans.status != http.StatusOK || !ans.json {
		if err != nil {
			f.log.Warn("proxy: the upstream's introspection endpoint failed", "err", err)
		} else {
			f.log.Warn("proxy: the upstream's introspection endpoint failed", "status", ans.status)
		}
		writeError(w, f.log, errUpstream)
		return
	}
	var answer map[string]json.RawMessage
	if json.Unmarshal(ans.body, &answer) != nil {
		writeError(w, f.log, errUpstream)
		return
	}
	if string(answer["active"]) != "true" || !f.forUs(answer) {
		writeJSON(w, http.StatusOK, inactive)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(ans.body)
}

// forUs reports whether an active introspection answer is about a token
// of the upstream for one of Options.Audiences.
func (f *Facade) forUs(answer map[string]json.RawMessage) bool {
	if raw, ok := answer["iss"]; ok {
		var iss string
		if json.Unmarshal(raw, &iss) != nil || iss != f.opts.Upstream {
			return false
		}
	}
	var auds []string
	if raw := answer["aud"]; len(raw) > 0 && raw[0] == '"' {
		var one string
		if json.Unmarshal(raw, &one) != nil {
			return false
		}
		auds = []string{one}
	} else if json.Unmarshal(raw, &auds) != nil {
		return false
	}
	for _, a := range auds {
		if slices.Contains(f.opts.Audiences, a) {
			return true
		}
	}
	return false
}

// resourceServer reports whether r authenticates, with
// client_secret_basic (RFC 6749 §2.3.1: form-encoded, then Basic), as one
// of Options.ResourceServers. Every configured secret is compared, in
// constant time.
func (f *Facade) resourceServer(r *http.Request) bool {
	u, p, ok := r.BasicAuth()
	if !ok {
		return false
	}
	id, err1 := url.QueryUnescape(u)
	pw, err2 := url.QueryUnescape(p)
	if err1 != nil || err2 != nil {
		return false
	}
	found := false
	for _, rs := range f.opts.ResourceServers {
		if secret.Equal(rs.ClientID, id) && secret.Equal(rs.ClientSecret, pw) {
			found = true
		}
	}
	return found
}
