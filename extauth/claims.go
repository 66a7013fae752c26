package extauth

import (
	"bytes"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	oauth "github.com/mcp-oauth/oauth"
)

// registered are the claims the AccessToken's own fields carry; they are
// never passed on in AccessToken.Claims.
var registered = []string{"iss", "sub", "aud", "exp", "nbf", "iat", "jti", "active"}

// source says where claims come from: a verified JWT, or an introspection
// answer (RFC 7662 §2.2, in which iss, aud and exp are optional).
type source int

const (
	fromJWT source = iota
	fromIntrospection
)

// accessToken checks claims (RFC 7519 §4.1, RFC 9068 §2.2, RFC 7662 §2.2)
// at now and converts them. It takes ownership of c.rest.
func (v *Verifier) accessToken(c *claimSet, now time.Time, src source) (*oauth.AccessToken, error) {
	at := &oauth.AccessToken{}
	if raw := c.used[cIss]; raw != nil || src == fromJWT {
		if !rawEquals(raw, v.issuer) {
			if iss, _ := rawString(raw); iss != v.issuer {
				return nil, reject(ErrWrongIssuer, "")
			}
		}
	}
	resource, present, ok := v.audience(c.used[cAud])
	switch {
	case !ok:
		return nil, reject(ErrMalformed, "aud is neither a string nor an array of strings")
	case !present && src == fromIntrospection && v.opts.Introspection.AllowMissingAudience:
		at.Resource = v.audiences[0]
	case resource == "":
		return nil, reject(ErrWrongAudience, "")
	default:
		at.Resource = resource
	}
	exp, hasExp, ok := numericDate(c.used[cExp])
	switch {
	case !ok:
		return nil, reject(ErrMalformed, "exp is not a NumericDate")
	case !hasExp && src == fromJWT:
		return nil, reject(ErrMalformed, "the token has no exp")
	case hasExp && !now.Before(exp.Add(v.skew)):
		return nil, reject(ErrExpired, "")
	}
	nbf, hasNbf, ok := numericDate(c.used[cNbf])
	if !ok {
		return nil, reject(ErrMalformed, "nbf is not a NumericDate")
	}
	if hasNbf && now.Add(v.skew).Before(nbf) {
		return nil, reject(ErrNotYetValid, "nbf is in the future")
	}
	iat, hasIat, ok := numericDate(c.used[cIat])
	if !ok {
		return nil, reject(ErrMalformed, "iat is not a NumericDate")
	}
	if hasIat && now.Add(v.skew).Before(iat) {
		return nil, reject(ErrNotYetValid, "iat is in the future")
	}
	sub, _ := rawStringBytes(c.used[cSub])
	if len(sub) == 0 {
		return nil, reject(ErrMalformed, "the token has no sub")
	}
	jti, _ := rawStringBytes(c.used[cJti])
	var clientID []byte
	for _, i := range [...]int{cClientID, cAzp, cAppid, cCid} {
		if s, _ := rawStringBytes(c.used[i]); len(s) > 0 {
			clientID = s
			break
		}
	}
	scope, hasScope := rawStringBytes(c.used[cScope])
	// Subject, ID, ClientID and scope share one allocation.
	var sb strings.Builder
	sb.Grow(len(sub) + len(jti) + len(clientID) + len(scope))
	sb.Write(sub)
	sb.Write(jti)
	sb.Write(clientID)
	sb.Write(scope)
	strs := sb.String()
	at.Subject, strs = strs[:len(sub)], strs[len(sub):]
	at.ID, strs = strs[:len(jti)], strs[len(jti):]
	at.ClientID, strs = strs[:len(clientID)], strs[len(clientID):]
	at.ExpiresAt, at.IssuedAt = exp, iat
	if hasScope {
		at.Scopes = strings.Fields(strs)
	} else if raw := c.used[cScp]; raw != nil {
		scp, _ := decodeValue(raw)
		at.Scopes = claimStrings(scp)
	}
	if len(at.Scopes) == 0 {
		at.Scopes = nil
	}
	at.Roles = v.roles.roles(c, at.Scopes)
	for name := range c.rest {
		if slices.Contains(registered, name) || !v.picker.kept(name) {
			delete(c.rest, name)
		}
	}
	if len(c.rest) > 0 {
		at.Claims = c.rest
	}
	return at, nil
}

// audience reads aud (RFC 7519 §4.1.3), a string or an array of
// strings, and returns the first of Options.Audiences it names, or "".
// present is false when the claim is absent; ok is false when it has
// another shape.
func (v *Verifier) audience(raw []byte) (resource string, present, ok bool) {
	if raw == nil {
		return "", false, true
	}
	var buf [8][]byte // most tokens name few audiences: no allocation
	names := buf[:0]
	switch raw[0] {
	case '"':
		names = append(names, raw)
	case '[':
		ok = true
		eachElement(raw, func(e []byte) {
			ok = ok && len(e) > 0 && e[0] == '"'
			names = append(names, e)
		})
		if !ok {
			return "", true, false
		}
	default:
		return "", true, false
	}
	for _, a := range v.audiences {
		for _, n := range names {
			if rawEquals(n, a) {
				return a, true, true
			}
			if bytes.IndexByte(n, '\\') >= 0 { // an escaped spelling
				if s, isStr := rawString(n); !isStr {
					return "", true, false
				} else if s == a {
					return a, true, true
				}
			}
		}
	}
	return "", true, true
}

// maxNumericDate bounds a NumericDate (about the year 36812), so that the
// conversion to time.Time cannot overflow.
const maxNumericDate = 1 << 40

// numericDate reads a NumericDate (RFC 7519 §2): seconds since the
// epoch, possibly fractional. present is false when the claim is absent.
func numericDate(raw []byte) (t time.Time, present, ok bool) {
	if raw == nil {
		return time.Time{}, false, true
	}
	if c := raw[0]; c != '-' && (c < '0' || c > '9') {
		return time.Time{}, true, false
	}
	f, err := strconv.ParseFloat(string(raw), 64)
	if err != nil || math.IsNaN(f) || f < 0 || f > maxNumericDate {
		return time.Time{}, true, false
	}
	sec, frac := math.Modf(f)
	return time.Unix(int64(sec), int64(frac*1e9)), true, true
}
