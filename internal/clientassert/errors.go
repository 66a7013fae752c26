package clientassert

import "errors"

// The reasons an assertion or a key set is refused. Every error that
// Verify and ValidateKeys return wraps exactly one of them, so callers
// pick their response with errors.Is. All of them mean invalid_client at
// the token endpoint (RFC 6749 §5.2, RFC 7521 §4.2.1), except
// ErrKeysUnavailable and ErrReplayCacheFull, which are the server's
// trouble (a caller may answer temporarily_unavailable) and
// ErrInvalidKeys, which is invalid_client_metadata at registration
// (RFC 7591 §3.2.2).
var (
	// ErrMalformed: the assertion is not a compact JWS (RFC 7515 §7.1)
	// with a JSON claims set (RFC 7519 §7.2), is too large, uses a JOSE
	// extension this verifier does not implement (crit, b64, zip, JWE),
	// or lacks a required claim (exp, jti; RFC 7523 §3 items 4 and 7).
	ErrMalformed = errors.New("clientassert: malformed client assertion")
	// ErrAssertionType: client_assertion_type is not
	// urn:ietf:params:oauth:client-assertion-type:jwt-bearer (RFC 7523
	// §2.2).
	ErrAssertionType = errors.New("clientassert: wrong client_assertion_type")
	// ErrAlgorithm: the alg header is not allowed (never none or HMAC,
	// RFC 8725 §3.1), or does not fit the key it selects (RFC 8725 §3.1,
	// RFC 7517 §4.4).
	ErrAlgorithm = errors.New("clientassert: signature algorithm not allowed")
	// ErrUnknownKey: no signing key of the client matches the kid header
	// (RFC 7515 §4.1.4), or there is no kid and no single key fits.
	ErrUnknownKey = errors.New("clientassert: no matching client key")
	// ErrSignature: the signature does not verify (RFC 7523 §3 item 9).
	ErrSignature = errors.New("clientassert: bad signature")
	// ErrIssuer: iss or sub is not the client_id (RFC 7523 §3 items 1
	// and 2.B, OIDC Core §9).
	ErrIssuer = errors.New("clientassert: iss and sub must be the client_id")
	// ErrAudience: aud names none of the accepted audiences (RFC 7523 §3
	// item 3).
	ErrAudience = errors.New("clientassert: wrong audience")
	// ErrExpired: exp has passed, beyond the clock skew (RFC 7523 §3
	// item 4).
	ErrExpired = errors.New("clientassert: assertion expired")
	// ErrNotYetValid: nbf or iat is in the future, beyond the clock skew
	// (RFC 7523 §3 items 5 and 6).
	ErrNotYetValid = errors.New("clientassert: assertion not yet valid")
	// ErrLifetime: exp is further ahead than the maximum lifetime, or
	// exp − iat exceeds it (RFC 7523 §3 item 4: the server "MAY reject
	// JWTs with an exp claim value that is unreasonably far in the
	// future").
	ErrLifetime = errors.New("clientassert: assertion lifetime too long")
	// ErrReplayed: the client used this jti before, within the
	// assertion's lifetime (RFC 7523 §3 item 7).
	ErrReplayed = errors.New("clientassert: assertion replayed")
	// ErrReplayCacheFull: the replay cache holds only live identifiers, so
	// a new one cannot be remembered and the assertion is refused (fail
	// closed rather than forget).
	ErrReplayCacheFull = errors.New("clientassert: too many assertions in flight")
	// ErrKeysUnavailable: the client's keys could not be obtained: no
	// key source, jwks_uri fetch failed with no usable cached copy, or
	// the document is not an acceptable JWK Set (RFC 7517 §5).
	ErrKeysUnavailable = errors.New("clientassert: client keys unavailable")
	// ErrInvalidKeys: registration metadata for private_key_jwt is
	// unacceptable (RFC 7591 §2: jwks and jwks_uri are mutually
	// exclusive; RFC 7517 §5): returned by ValidateKeys.
	ErrInvalidKeys = errors.New("clientassert: invalid client keys")
)

// Error is a refusal: one of the reasons above, a fixed description of
// what failed, and, for failures of the caller's fetcher or of a key
// set, the underlying cause. Its text never quotes the assertion or any
// value taken from it. Send Detail as the error_description; log
// Error(), which adds the cause (a fetch error may name hosts and
// addresses that a client should not learn).
type Error struct {
	// Reason is one of the Err* sentinels.
	Reason error
	// Detail says what failed, in words suitable for an RFC 6749 §5.2
	// error_description.
	Detail string
	cause  error
}

// Error implements error: the reason, the detail and any cause.
func (e *Error) Error() string {
	s := e.Reason.Error() + ": " + e.Detail
	if e.cause != nil {
		s += ": " + e.cause.Error()
	}
	return s
}

// Unwrap returns the reason and, if any, the cause.
func (e *Error) Unwrap() []error {
	if e.cause == nil {
		return []error{e.Reason}
	}
	return []error{e.Reason, e.cause}
}

// refuse returns an *Error with no cause.
func refuse(reason error, detail string) error {
	return &Error{Reason: reason, Detail: detail}
}

// refuseWith returns an *Error keeping cause, whose text must not hold
// assertion content.
func refuseWith(reason error, detail string, cause error) error {
	return &Error{Reason: reason, Detail: detail, cause: cause}
}
