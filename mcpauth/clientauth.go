package mcpauth

import (
	"errors"
	"net/http"
	"net/url"
	"strings"

	oauth "github.com/mcp-oauth/oauth"
	"github.com/mcp-oauth/oauth/internal/secret"
)

// parseForm reads an application/x-www-form-urlencoded body of at most
// MaxFormBytes and rejects repeated or oversized parameters (RFC 6749 §3.2).
func parseForm(w http.ResponseWriter, r *http.Request) (url.Values, *oauth.Error) {
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(strings.ToLower(ct), "application/x-www-form-urlencoded") {
		return nil, oauth.ErrInvalidRequest.WithDescription("Content-Type must be application/x-www-form-urlencoded")
	}
	r.Body = http.MaxBytesReader(w, r.Body, MaxFormBytes)
	if err := r.ParseForm(); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, oauth.ErrInvalidRequest.WithDescription("request body too large").WithStatus(http.StatusRequestEntityTooLarge)
		}
		return nil, oauth.ErrInvalidRequest.WithDescription("malformed form body")
	}
	if r.URL.RawQuery != "" {
		// OAuth 2.1 §3.2: token endpoint parameters travel in the body;
		// credentials in a URL end up in logs.
		return nil, oauth.ErrInvalidRequest.WithDescription("parameters must be sent in the request body, not the URL")
	}
	for k, v := range r.PostForm {
		if len(v) > 1 {
			return nil, oauth.ErrInvalidRequest.WithDescription("parameter " + k + " is repeated")
		}
		if len(v[0]) > MaxParamLen && !tokenParams[k] {
			return nil, oauth.ErrInvalidRequest.WithDescription("parameter " + k + " is too long")
		}
	}
	return r.PostForm, nil
}

// tokenParams are the parameters that carry a token or an assertion
// (RFC 7009 §2.1, RFC 8693 §2.1, RFC 7523 §2.1 and §2.2): they may be
// longer than MaxParamLen, within MaxFormBytes.
var tokenParams = map[string]bool{"token": true, "subject_token": true, "assertion": true, "client_assertion": true}

// authenticateClient identifies and authenticates the client of a token,
// revocation or introspection request (RFC 6749 §2.3.1, OAuth 2.1 §2.4):
// HTTP Basic (client_secret_basic), client_secret in the body
// (client_secret_post), a JWT client assertion (private_key_jwt, RFC 7523
// §2.2), or client_id alone for a public client ("none").
// Using two methods at once is invalid_request. Failures are invalid_client
// (401), which also makes clients such as Claude register again.
func (s *AuthorizationServer) authenticateClient(r *http.Request, form url.Values) (*oauth.Client, *oauth.Error) {
	if form.Has("client_assertion") || form.Has("client_assertion_type") {
		return s.authenticateAssertion(r, form)
	}
	id, sec, basic := r.BasicAuth()
	if basic {
		var err1, err2 error
		id, err1 = url.QueryUnescape(id)
		sec, err2 = url.QueryUnescape(sec)
		if err1 != nil || err2 != nil {
			return nil, oauth.ErrInvalidClient.WithDescription("malformed HTTP Basic credentials")
		}
		if form.Has("client_secret") {
			return nil, oauth.ErrInvalidRequest.WithDescription("use one client authentication method, not two")
		}
		if fid := form.Get("client_id"); fid != "" && fid != id {
			return nil, oauth.ErrInvalidRequest.WithDescription("client_id does not match the HTTP Basic credentials")
		}
	} else if r.Header.Get("Authorization") != "" {
		return nil, oauth.ErrInvalidClient.WithDescription("unsupported Authorization scheme; use HTTP Basic")
	} else {
		id, sec = form.Get("client_id"), form.Get("client_secret")
	}
	client, e := s.clientOf(r, id)
	if e != nil {
		return nil, e
	}
	if client.Public() {
		if sec != "" {
			return nil, oauth.ErrInvalidClient.WithDescription("public client must not send a secret")
		}
		return client, nil
	}
	if sec == "" {
		return nil, oauth.ErrInvalidClient.WithDescription("client secret required")
	}
	var ok bool
	if sc, has := s.p.(oauth.ClientAuthenticator); has {
		ok = sc.AuthenticateClient(client, sec)
	} else {
		ok = client.SecretHash != "" && secret.Equal(secret.Hash(sec), client.SecretHash)
	}
	if !ok {
		return nil, oauth.ErrInvalidClient.WithDescription("client authentication failed")
	}
	return client, nil
}

// clientOf returns the client id names: invalid_client when id is empty
// or unknown, server_error when the lookup failed.
func (s *AuthorizationServer) clientOf(r *http.Request, id string) (*oauth.Client, *oauth.Error) {
	if id == "" {
		return nil, oauth.ErrInvalidClient.WithDescription("client authentication required")
	}
	client, err := s.p.GetClient(r.Context(), id)
	if err != nil {
		e := oauth.AsError(err)
		if e.Code == oauth.ErrServerError.Code {
			return nil, e
		}
		return nil, oauth.ErrInvalidClient.WithDescription("unknown client")
	}
	return client, nil
}

// authenticateAssertion authenticates a private_key_jwt client (RFC 7523
// §2.2); client_id is optional beside the assertion (RFC 7521 §4.2) and
// must then be the assertion's sub.
func (s *AuthorizationServer) authenticateAssertion(r *http.Request, form url.Values) (*oauth.Client, *oauth.Error) {
	if _, _, basic := r.BasicAuth(); basic || r.Header.Get("Authorization") != "" || form.Has("client_secret") {
		return nil, oauth.ErrInvalidRequest.WithDescription("use one client authentication method, not two")
	}
	assertion := form.Get("client_assertion")
	id := form.Get("client_id")
	if id == "" {
		id, _ = s.assertions.UnverifiedClientID(assertion)
	}
	client, e := s.clientOf(r, id)
	if e != nil {
		return nil, e
	}
	if e := s.verifyClientAssertion(r.Context(), client, form.Get("client_assertion_type"), assertion); e != nil {
		return nil, e
	}
	return client, nil
}

// clientRequest does what /token, /revoke and /introspect share: the
// no-store headers, the bounded form body and client authentication. On
// failure it has written the RFC 6749 §5.2 error and returns ok false.
func (s *AuthorizationServer) clientRequest(w http.ResponseWriter, r *http.Request) (url.Values, *oauth.Client, bool) {
	noStore(w)
	form, e := parseForm(w, r)
	if e == nil {
		var client *oauth.Client
		if client, e = s.authenticateClient(r, form); e == nil {
			return form, client, true
		}
	}
	writeError(w, s.log, e)
	return nil, nil, false
}
