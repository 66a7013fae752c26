package oauth

import (
	"errors"
	"net/http"
)

// Error is an OAuth 2.0 error response (RFC 6749 §4.1.2.1 and §5.2, RFC 7591
// §3.2.2, RFC 6750 §3.1). Its JSON form is the error response body: the error
// code in "error", the human-readable text in "error_description" and an
// optional "error_uri". Status is the HTTP status an endpoint answers with and
// is not serialized.
//
// Values are immutable: the With* methods return a modified copy, so the
// package-level sentinels can be shared and compared with [errors.Is], which
// matches on Code alone.
type Error struct {
	// Code (error) is the ASCII error code from the RFC registries, such as
	// "invalid_grant". Required.
	Code string `json:"error"`
	// Description (error_description) is human-readable text for the client
	// developer. It never contains a secret, token or internal detail.
	Description string `json:"error_description,omitempty"`
	// URI (error_uri) identifies a page with more information. Optional.
	URI string `json:"error_uri,omitempty"`
	// Status is the HTTP status code of the response (400 unless the RFC
	// says otherwise).
	Status int `json:"-"`
	// cause is an internal error kept for logs and errors.Unwrap; never sent.
	cause error
}

// Error implements error. It renders the code and description only.
func (e *Error) Error() string {
	if e.Description == "" {
		return e.Code
	}
	return e.Code + ": " + e.Description
}

// Is reports whether target is an *Error with the same Code, so that
// errors.Is(err, oauth.ErrInvalidGrant) holds for any description.
func (e *Error) Is(target error) bool {
	var t *Error
	if !errors.As(target, &t) {
		return false
	}
	return t.Code == e.Code
}

// Unwrap returns the internal cause attached by [Error.WithCause], if any.
func (e *Error) Unwrap() error { return e.cause }

// WithDescription returns a copy of e with error_description set to desc.
func (e *Error) WithDescription(desc string) *Error {
	c := *e
	c.Description = desc
	return &c
}

// WithStatus returns a copy of e that is answered with HTTP status code.
func (e *Error) WithStatus(code int) *Error {
	c := *e
	c.Status = code
	return &c
}

// WithCause returns a copy of e that wraps cause for logging; cause is never
// written to a response.
func (e *Error) WithCause(cause error) *Error {
	c := *e
	c.cause = cause
	return &c
}

// HTTPStatus returns e.Status, or 400 when it is unset.
func (e *Error) HTTPStatus() int {
	if e.Status == 0 {
		return http.StatusBadRequest
	}
	return e.Status
}

func newErr(code string, status int, desc string) *Error {
	return &Error{Code: code, Status: status, Description: desc}
}

// The error codes of RFC 6749 §4.1.2.1 and §5.2, RFC 6750 §3.1, RFC 7591 §3.2.2,
// RFC 8707 §2 and RFC 8628 §3.5. Use the With* methods to add detail.
var (
	// ErrInvalidRequest: a parameter is missing, invalid, repeated or malformed.
	ErrInvalidRequest = newErr("invalid_request", http.StatusBadRequest, "")
	// ErrInvalidClient: client authentication failed or the client is unknown
	// (RFC 6749 §5.2); answered with 401.
	ErrInvalidClient = newErr("invalid_client", http.StatusUnauthorized, "")
	// ErrInvalidGrant: the code or refresh token is invalid, expired, revoked,
	// spent, or was issued to another client or redirect URI.
	ErrInvalidGrant = newErr("invalid_grant", http.StatusBadRequest, "")
	// ErrUnauthorizedClient: the client may not use this grant type.
	ErrUnauthorizedClient = newErr("unauthorized_client", http.StatusBadRequest, "")
	// ErrUnsupportedGrantType: the grant type is not supported.
	ErrUnsupportedGrantType = newErr("unsupported_grant_type", http.StatusBadRequest, "")
	// ErrUnsupportedResponseType: the response type is not supported (§4.1.2.1).
	ErrUnsupportedResponseType = newErr("unsupported_response_type", http.StatusBadRequest, "")
	// ErrUnsupportedTokenType: RFC 7009 §2.2.1, the token type cannot be revoked.
	ErrUnsupportedTokenType = newErr("unsupported_token_type", http.StatusBadRequest, "")
	// ErrInvalidScope: the requested scope is invalid, unknown or exceeds the grant.
	ErrInvalidScope = newErr("invalid_scope", http.StatusBadRequest, "")
	// ErrInvalidTarget: RFC 8707 §2, the resource is not one this server serves.
	ErrInvalidTarget = newErr("invalid_target", http.StatusBadRequest, "")
	// ErrAccessDenied: the resource owner denied the request.
	ErrAccessDenied = newErr("access_denied", http.StatusForbidden, "")
	// ErrServerError: an unexpected condition; the description never carries
	// the internal cause.
	ErrServerError = newErr("server_error", http.StatusInternalServerError, "")
	// ErrTemporarilyUnavailable: the server is overloaded or in maintenance.
	ErrTemporarilyUnavailable = newErr("temporarily_unavailable", http.StatusServiceUnavailable, "")
	// ErrInvalidToken: RFC 6750 §3.1, the access token is invalid, expired,
	// revoked or for another audience; answered with 401.
	ErrInvalidToken = newErr("invalid_token", http.StatusUnauthorized, "")
	// ErrInsufficientScope: RFC 6750 §3.1, the token lacks a needed scope; 403.
	ErrInsufficientScope = newErr("insufficient_scope", http.StatusForbidden, "")
	// ErrInvalidRedirectURI: RFC 7591 §3.2.2, a redirect URI is not acceptable.
	ErrInvalidRedirectURI = newErr("invalid_redirect_uri", http.StatusBadRequest, "")
	// ErrInvalidClientMetadata: RFC 7591 §3.2.2, a metadata field is invalid.
	ErrInvalidClientMetadata = newErr("invalid_client_metadata", http.StatusBadRequest, "")
	// ErrAuthorizationPending: RFC 8628 §3.5, the user has not yet decided.
	ErrAuthorizationPending = newErr("authorization_pending", http.StatusBadRequest, "")
	// ErrExpiredToken: RFC 8628 §3.5, the device code has expired.
	ErrExpiredToken = newErr("expired_token", http.StatusBadRequest, "")
	// ErrSlowDown: RFC 8628 §3.5, the device polls too often; it must add
	// 5 seconds to its interval.
	ErrSlowDown = newErr("slow_down", http.StatusBadRequest, "")
)

// AsError converts any error to an *Error suitable for a response. An *Error
// anywhere in err's chain is returned as is; anything else becomes
// server_error with no detail, so internals never leak (the original is kept
// as the cause for logging).
func AsError(err error) *Error {
	if err == nil {
		return nil
	}
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return ErrServerError.WithCause(err)
}

// Errors of the approval contract ([Approver]). They are not OAuth error
// responses: the approval page and the console turn them into pages.
var (
	// ErrUnknownRequest: no live request has this user code or handle
	// (it never existed, expired, or its client was deleted).
	ErrUnknownRequest = errors.New("oauth: no such pending request (unknown or expired)")
	// ErrAlreadyDecided: the request was approved or denied already.
	ErrAlreadyDecided = errors.New("oauth: request already decided")
)

// Errors of grant data and token claims ([GrantSetup], [GrantDataProvider]).
var (
	// ErrNoGrantData: the grant has no unexpired value of that name, or
	// the grant is no longer active.
	ErrNoGrantData = errors.New("oauth: no such grant data")
	// ErrGrantNotActive: the grant does not exist or was revoked, so
	// nothing can be stored with it.
	ErrGrantNotActive = errors.New("oauth: grant is not active")
	// ErrGrantDataLimit: a value, its name or the number of values of a
	// grant is over the Provider's limits.
	ErrGrantDataLimit = errors.New("oauth: grant data over the limit")
	// ErrReservedClaim: a custom claim would replace a registered JWT claim
	// (RFC 7519 §4.1) or one of the library's own; it is refused when the
	// token would be issued, never silently overwritten.
	ErrReservedClaim = errors.New("oauth: reserved claim")
)
