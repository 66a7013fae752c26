package proxy

import (
	"encoding/json"
	"errors"
	"mime"
	"net/http"
	"slices"
	"time"

	"github.com/modelcontextprotocol/go-sdk/oauthex"

	oauth "github.com/mcp-oauth/oauth"
	"github.com/mcp-oauth/oauth/internal/redirect"
)

// serveRegister implements dynamic client registration (RFC 7591 §3)
// without storage and without the upstream: the client_id it issues is
// the sealed registration, whose redirect URIs /authorize checks. Every
// client is public (token_endpoint_auth_method "none", OAuth 2.1 §2.1):
// it holds no secret, and PKCE protects its codes. A request for another
// method is answered with "none" (RFC 7591 §3.2.1 lets the server replace
// metadata values), never refused: clients that omit the member mean
// client_secret_basic by default.
func (f *Facade) serveRegister(w http.ResponseWriter, r *http.Request) {
	noStore(w)
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		writeError(w, f.log, oauth.ErrInvalidRequest.WithDescription("use POST").WithStatus(http.StatusMethodNotAllowed))
		return
	}
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/json" {
		writeError(w, f.log, oauth.ErrInvalidClientMetadata.WithDescription("Content-Type must be application/json"))
		return
	}
	var md oauthex.ClientRegistrationMetadata
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, MaxRegistrationBytes))
	if err := dec.Decode(&md); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			writeError(w, f.log, oauth.ErrInvalidClientMetadata.WithDescription("registration request too large").WithStatus(http.StatusRequestEntityTooLarge))
			return
		}
		writeError(w, f.log, oauth.ErrInvalidClientMetadata.WithDescription("the body is not a JSON client metadata object"))
		return
	}
	if dec.More() {
		writeError(w, f.log, oauth.ErrInvalidClientMetadata.WithDescription("the body has data after the metadata object"))
		return
	}
	if e := f.checkRegistration(&md); e != nil {
		writeError(w, f.log, e)
		return
	}
	now := f.opts.Now()
	id := f.keys.seal(prefixClient, clientRecord{RedirectURIs: md.RedirectURIs, IssuedAt: now.Unix()})
	f.log.Info("proxy: client registered", "redirect_uris", len(md.RedirectURIs), "client_name", md.ClientName)
	writeJSON(w, http.StatusCreated, &oauthex.ClientRegistrationResponse{
		ClientRegistrationMetadata: oauthex.ClientRegistrationMetadata{
			RedirectURIs:            md.RedirectURIs,
			TokenEndpointAuthMethod: oauth.AuthMethodNone,
			GrantTypes:              md.GrantTypes,
			ResponseTypes:           []string{"code"},
			ClientName:              md.ClientName,
			ApplicationType:         md.ApplicationType,
		},
		ClientID:         id,
		ClientIDIssuedAt: time.Unix(now.Unix(), 0),
	})
}

// checkRegistration validates client metadata (RFC 7591 §2) as an
// authorization server of the code flow does, and fills the values the
// facade decides: redirect URIs that are https, loopback http or a
// private-use scheme (RFC 8252 §7), without fragment, within the bounds
// a client_id can carry; grant types authorization_code and
// refresh_token; response type code.
func (f *Facade) checkRegistration(md *oauthex.ClientRegistrationMetadata) *oauth.Error {
	bad := oauth.ErrInvalidClientMetadata.WithDescription
	if len(md.RedirectURIs) == 0 {
		return oauth.ErrInvalidRedirectURI.WithDescription("redirect_uris is required")
	}
	if len(md.RedirectURIs) > maxRedirectURIs {
		return oauth.ErrInvalidRedirectURI.WithDescription("too many redirect_uris")
	}
	total := 0
	for _, u := range md.RedirectURIs {
		if e := redirect.Check(u); e != nil {
			return e
		}
		total += len(u)
	}
	if total > maxRedirectBytes {
		return oauth.ErrInvalidRedirectURI.WithDescription("the redirect_uris are too long together")
	}
	md.RedirectURIs = slices.Compact(slices.Clone(md.RedirectURIs))
	for _, g := range md.GrantTypes {
		if g != oauth.GrantTypeAuthorizationCode && g != oauth.GrantTypeRefreshToken {
			return bad("grant_types may be authorization_code and refresh_token only")
		}
	}
	if len(md.GrantTypes) > 0 && !slices.Contains(md.GrantTypes, oauth.GrantTypeAuthorizationCode) {
		return bad("grant_types must include authorization_code")
	}
	md.GrantTypes = []string{oauth.GrantTypeAuthorizationCode, oauth.GrantTypeRefreshToken}
	if len(md.ResponseTypes) > 0 && !slices.Equal(md.ResponseTypes, []string{"code"}) {
		return bad("response_types may be code only")
	}
	switch md.ApplicationType {
	case "":
		if redirect.AllNative(md.RedirectURIs) {
			md.ApplicationType = "native"
		} else {
			md.ApplicationType = "web"
		}
	case "web", "native":
	default:
		return bad("application_type must be web or native")
	}
	if len(md.ClientName) > 200 || redirect.HasControl(md.ClientName) {
		return bad("client_name is too long or has control characters")
	}
	if len(md.Scope) > MaxParamLen {
		return bad("scope is too long")
	}
	return nil
}
