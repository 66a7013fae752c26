package mcpauth

import (
	"net/http"
	"net/url"
	"slices"

	oauth "github.com/mcp-oauth/oauth"
)

// exchangeDeviceCode answers a device's poll (RFC 8628 §3.4, §3.5).
func (s *AuthorizationServer) exchangeDeviceCode(r *http.Request, client *oauth.Client, form url.Values) (*oauth.TokenResponse, error) {
	dp, ok := s.p.(oauth.DeviceProvider)
	if !ok {
		return nil, oauth.ErrUnsupportedGrantType.WithDescription("this server does not support the device_code grant")
	}
	if !slices.Contains(client.GrantTypes, oauth.GrantTypeDeviceCode) {
		return nil, oauth.ErrUnauthorizedClient.WithDescription("client is not registered for the device_code grant")
	}
	dc := form.Get("device_code")
	if dc == "" {
		return nil, oauth.ErrInvalidRequest.WithDescription("device_code is required")
	}
	return dp.ExchangeDeviceCode(r.Context(), client, dc)
}

// serveDeviceAuthorization implements the device authorization endpoint
// (RFC 8628 §3.1, §3.2) for clients registered for the device_code grant.
// scope works as at /authorize; resource (RFC 8707), if given, must name
// the protected MCP endpoint.
func (s *AuthorizationServer) serveDeviceAuthorization(w http.ResponseWriter, r *http.Request, dp oauth.DeviceProvider) {
	form, client, ok := s.clientRequest(w, r)
	if !ok {
		return
	}
	fail := func(e *oauth.Error) { writeError(w, s.log, e) }
	if !slices.Contains(client.GrantTypes, oauth.GrantTypeDeviceCode) {
		fail(oauth.ErrUnauthorizedClient.WithDescription("client is not registered for the device_code grant"))
		return
	}
	resource, scopes, e := s.requestedAccess(form.Get("resource"), form.Get("scope"))
	if e != nil {
		fail(e)
		return
	}
	if !s.allow(w, r, s.auths, s.authLimit) {
		fail(tooMany("authorization requests"))
		return
	}
	da, err := dp.AuthorizeDevice(r.Context(), client, &oauth.AuthorizationParams{ClientID: client.ID, Scopes: scopes, Resource: resource})
	if err != nil {
		writeError(w, s.log, err)
		return
	}
	writeJSON(w, http.StatusOK, da)
}
