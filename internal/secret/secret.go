// Package secret generates the high-entropy credentials the authorization
// server hands out (authorization codes, refresh tokens, client secrets,
// browser handles) and the human-typable user codes, and hashes them for
// storage. A 256-bit random value needs a fast hash, not a slow one: SHA-256
// costs about 90 ns, bcrypt would cap /token at a few requests per second.
package secret

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"strings"
)

// Prefixes name what a credential is, so a leaked value is recognizable in
// secret scanners and a value of the wrong kind is rejected before any I/O.
const (
	PrefixCode         = "mcp_code_"
	PrefixRefreshToken = "mcp_rt_"
	PrefixClientSecret = "mcp_cs_"
	PrefixHandle       = "mcp_req_"
	PrefixDeviceCode   = "mcp_dc_"
)

// bodyLen is the length of the base64url (unpadded) encoding of 32 bytes.
const bodyLen = 43

// New returns prefix followed by 256 random bits in unpadded base64url.
func New(prefix string) string {
	var b [32]byte
	rand.Read(b[:]) // never fails (crypto/rand panics rather than return short).
	return prefix + base64.RawURLEncoding.EncodeToString(b[:])
}

// WellFormed reports whether s could have been made by New(prefix): the right
// prefix, length and alphabet. It lets endpoints reject junk before I/O.
func WellFormed(prefix, s string) bool {
	if len(s) != len(prefix)+bodyLen || !strings.HasPrefix(s, prefix) {
		return false
	}
	for i := len(prefix); i < len(s); i++ {
		c := s[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// Hash returns the hex SHA-256 of s, the form in which credentials are stored.
func Hash(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// Equal compares two strings in time that depends only on their lengths.
func Equal(a, b string) bool {
	return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}

// UserCodeAlphabet is the RFC 8628 §6.1 style alphabet of user codes: 20
// upper-case consonants, no vowels (no words), no look-alikes such as 0/O, 1/I.
const UserCodeAlphabet = "BCDFGHJKLMNPQRSTVWXZ"

// UserCodeLen is the number of characters in a user code: 20^8 ≈ 2^34.6.
const UserCodeLen = 8

// NewUserCode returns a random user code in its display form: four
// letters, a hyphen, four letters (e.g. KXWT-BMRD).
func NewUserCode() string {
	var b [UserCodeLen]byte
	const n = byte(len(UserCodeAlphabet))
	buf := make([]byte, 0, UserCodeLen+1)
	for i := 0; i < UserCodeLen; {
		rand.Read(b[:1])
		if b[0] >= 240 { // reject to keep the distribution uniform (240 = 12*20)
			continue
		}
		buf = append(buf, UserCodeAlphabet[b[0]%n])
		i++
		if i == UserCodeLen/2 {
			buf = append(buf, '-')
		}
	}
	return string(buf)
}

// DisplayUserCode returns a typed user code in display form (KXWT-BMRD),
// or "" when it is not one (see NormalizeUserCode).
func DisplayUserCode(s string) string {
	norm := NormalizeUserCode(s)
	if norm == "" {
		return ""
	}
	return norm[:UserCodeLen/2] + "-" + norm[UserCodeLen/2:]
}

// NormalizeUserCode returns the canonical form of a typed user code: upper
// case, with hyphens and spaces removed. It returns "" when the result is
// not UserCodeLen characters of UserCodeAlphabet.
func NormalizeUserCode(s string) string {
	if len(s) > 32 {
		return ""
	}
	out := make([]byte, 0, UserCodeLen)
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '-' || c == ' ':
			continue
		case c >= 'a' && c <= 'z':
			c -= 'a' - 'A'
		}
		if strings.IndexByte(UserCodeAlphabet, c) < 0 {
			return ""
		}
		out = append(out, c)
	}
	if len(out) != UserCodeLen {
		return ""
	}
	return string(out)
}
