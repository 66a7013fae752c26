package mcpauth

import (
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"

	"github.com/modelcontextprotocol/go-sdk/oauthex"

	oauth "github.com/mcp-oauth/oauth"
	"github.com/mcp-oauth/oauth/internal/clientassert"
	"github.com/mcp-oauth/oauth/internal/redirect"
	"github.com/mcp-oauth/oauth/internal/secret"
)

// serveRegister implements dynamic client registration, RFC 7591 §3.
func (s *AuthorizationServer) serveRegister(w http.ResponseWriter, r *http.Request) {
	noStore(w)
	if s.opts.InitialAccessToken != "" {
		tok, ok := bearerToken(r)
		if !ok || !secret.Equal(tok, s.opts.InitialAccessToken) {
			w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
			writeError(w, s.log, oauth.ErrInvalidToken.WithDescription("registration requires a valid initial access token"))
			return
		}
	}
	if s.opts.InitialAccessToken == "" && !s.allow(w, r, s.regs, s.regLimit) {
		writeError(w, s.log, tooMany("registrations"))
		return
	}
	if ct := r.Header.Get("Content-Type"); ct != "" && !strings.HasPrefix(strings.ToLower(ct), "application/json") {
		writeError(w, s.log, oauth.ErrInvalidClientMetadata.WithDescription("Content-Type must be application/json"))
		return
	}
	var md oauthex.ClientRegistrationMetadata
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, MaxRegistrationBytes))
	if err := dec.Decode(&md); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			writeError(w, s.log, oauth.ErrInvalidClientMetadata.WithDescription("registration request too large").WithStatus(http.StatusRequestEntityTooLarge))
			return
		}
		writeError(w, s.log, oauth.ErrInvalidClientMetadata.WithDescription("body is not a JSON client metadata object"))
		return
	}
	_, devices := s.p.(oauth.DeviceProvider)
	_, issuer := s.p.(oauth.TokenIssuer)
	if e := normalizeRegistration(&md, devices, issuer && len(s.opts.Assertions) > 0); e != nil {
		writeError(w, s.log, e)
		return
	}
	if e := s.checkClientKeys(&md); e != nil {
		writeError(w, s.log, e)
		return
	}
	resp, err := s.p.RegisterClient(r.Context(), &md)
	if err != nil {
		writeError(w, s.log, err)
		return
	}
	writeJSON(w, http.StatusCreated, registrationResponse{resp})
}

// checkClientKeys checks the keys of a private_key_jwt registration (RFC
// 7591 §2): jwks or jwks_uri, one of them; inline keys public signing
// keys; jwks_uri an https URL (internal/clientassert's ValidateKeys).
func (s *AuthorizationServer) checkClientKeys(md *oauthex.ClientRegistrationMetadata) *oauth.Error {
	if md.TokenEndpointAuthMethod != oauth.AuthMethodPrivateKeyJWT {
		return nil
	}
	if md.JWKS == "" && md.JWKSURI == "" {
		return oauth.ErrInvalidClientMetadata.WithDescription("private_key_jwt needs jwks or jwks_uri")
	}
	if err := s.assertions.ValidateKeys(keysOf(&oauth.Client{ClientRegistrationMetadata: *md})); err != nil {
		desc := "the keys are not acceptable"
		var e *clientassert.Error
		if errors.As(err, &e) && e.Detail != "" {
			desc = e.Detail
		}
		return oauth.ErrInvalidClientMetadata.WithDescription(desc)
	}
	return nil
}

// registrationResponse adds client_secret_expires_at, which RFC 7591 §3.2.1
// requires whenever a secret is issued (0: it does not expire) and which
// oauthex omits when zero.
type registrationResponse struct {
	*oauthex.ClientRegistrationResponse
}

func (r registrationResponse) MarshalJSON() ([]byte, error) {
	b, err := r.ClientRegistrationResponse.MarshalJSON()
	if err != nil || r.ClientSecret == "" {
		return b, err
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	m["client_secret_expires_at"] = json.RawMessage("0")
	return json.Marshal(m)
}

// normalizeRegistration validates client metadata and fills defaults
// (RFC 7591 §2): token_endpoint_auth_method defaults to client_secret_basic;
// grant types are those we support: authorization_code (the default), with
// refresh_token, which every client gets since MCP clients rely on it, and
// the RFC 8628 device_code grant when devices is set and the client asks
// for it; response_types is ["code"] for the code flow; application_type is
// inferred from the redirect URIs. A client of the device grant alone needs
// no redirect URI. The RFC 7523 JWT grant (an ID-JAG's, SEP-990) is kept
// when assertions is set and the client asks for it; client_credentials
// and token exchange are never registered here: they are for clients
// configured in code (provider.Options.Clients), since a client that
// registered itself must not get tokens without an owner's approval.
func normalizeRegistration(md *oauthex.ClientRegistrationMetadata, devices, assertions bool) *oauth.Error {
	bad := oauth.ErrInvalidClientMetadata.WithDescription
	codeFlow := len(md.GrantTypes) == 0 || slices.Contains(md.GrantTypes, oauth.GrantTypeAuthorizationCode)
	device := slices.Contains(md.GrantTypes, oauth.GrantTypeDeviceCode)
	jwtGrant := slices.Contains(md.GrantTypes, oauth.GrantTypeJWTBearer)
	switch {
	case device && !devices:
		return bad("this server does not support the device_code grant")
	case !codeFlow && !device:
		return bad("grant_types must include authorization_code or " + oauth.GrantTypeDeviceCode)
	}
	if len(md.RedirectURIs) == 0 && codeFlow {
		return oauth.ErrInvalidRedirectURI.WithDescription("redirect_uris is required")
	}
	if len(md.RedirectURIs) > maxRedirectURIs {
		return oauth.ErrInvalidRedirectURI.WithDescription("too many redirect_uris")
	}
	for _, u := range md.RedirectURIs {
		if e := redirect.Check(u); e != nil {
			return e
		}
	}
	switch md.TokenEndpointAuthMethod {
	case "":
		md.TokenEndpointAuthMethod = oauth.AuthMethodClientSecretBasic
	case oauth.AuthMethodNone, oauth.AuthMethodClientSecretBasic, oauth.AuthMethodClientSecretPost:
	case oauth.AuthMethodPrivateKeyJWT: // its keys: checkClientKeys
	default:
		return bad("unsupported token_endpoint_auth_method; use none, client_secret_basic, client_secret_post or private_key_jwt")
	}
	md.GrantTypes = nil
	if codeFlow {
		md.GrantTypes = append(md.GrantTypes, oauth.GrantTypeAuthorizationCode)
	}
	if device {
		md.GrantTypes = append(md.GrantTypes, oauth.GrantTypeDeviceCode)
	}
	if assertions && jwtGrant {
		md.GrantTypes = append(md.GrantTypes, oauth.GrantTypeJWTBearer)
	}
	md.GrantTypes = append(md.GrantTypes, oauth.GrantTypeRefreshToken)
	if codeFlow {
		if len(md.ResponseTypes) > 0 && !slices.Contains(md.ResponseTypes, "code") {
			return bad("response_types must include code")
		}
		md.ResponseTypes = []string{"code"}
	} else {
		md.ResponseTypes = []string{} // RFC 7591 §2: none, for a client that uses no redirect
	}
	if md.ApplicationType == "" && len(md.RedirectURIs) == 0 {
		md.ApplicationType = "native"
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
	if redirect.HasControl(md.ClientName) {
		return bad("client_name must not contain control or formatting characters")
	}
	for _, f := range []struct {
		name, v string
		max     int
	}{
		{"client_name", md.ClientName, 200},
		{"client_uri", md.ClientURI, MaxParamLen},
		{"logo_uri", md.LogoURI, MaxParamLen},
		{"tos_uri", md.TOSURI, MaxParamLen},
		{"policy_uri", md.PolicyURI, MaxParamLen},
		{"jwks_uri", md.JWKSURI, MaxParamLen},
		{"scope", md.Scope, MaxParamLen},
		{"software_id", md.SoftwareID, 256},
		{"software_version", md.SoftwareVersion, 256},
		{"software_statement", md.SoftwareStatement, 8192},
		{"jwks", md.JWKS, 8192},
	} {
		if len(f.v) > f.max {
			return bad(f.name + " is too long")
		}
	}
	if len(md.Contacts) > 10 {
		return bad("too many contacts")
	}
	for _, c := range md.Contacts {
		if len(c) > 256 {
			return bad("contact is too long")
		}
	}
	return nil
}
