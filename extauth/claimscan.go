package extauth

import (
	"errors"
	"strconv"

	segjson "github.com/segmentio/encoding/json"
)

// The claims of a JWT (and the members of an introspection answer) are
// decoded only as far as they are used. One pass over the validated
// object keeps the raw JSON of the claims the AccessToken's fields come
// from and decodes the claims Options.Claims keeps; role paths are
// followed in the raw JSON (see lookupPath); the rest is skipped, so
// that a large token
// (Keycloak's carry twenty claims and more) costs neither a map of
// everything nor an allocation per claim on the path of its first
// request. Nested values are decoded with segmentio/encoding, which
// go-sdk uses (so it is linked already) and which is about twice as fast
// as encoding/json; FuzzPickClaims checks the result against
// encoding/json.

// The claims read into claimSet.used.
const (
	cIss = iota
	cSub
	cAud
	cExp
	cNbf
	cIat
	cJti
	cClientID
	cAzp
	cAppid
	cCid
	cScope
	cScp
	cActive
	cTokenType
	nUsed
)

// usedIndex returns the index in claimSet.used of the claim name, or -1.
func usedIndex(name []byte) int {
	switch string(name) {
	case "iss":
		return cIss
	case "sub":
		return cSub
	case "aud":
		return cAud
	case "exp":
		return cExp
	case "nbf":
		return cNbf
	case "iat":
		return cIat
	case "jti":
		return cJti
	case "client_id":
		return cClientID
	case "azp":
		return cAzp
	case "appid":
		return cAppid
	case "cid":
		return cCid
	case "scope":
		return cScope
	case "scp":
		return cScp
	case "active":
		return cActive
	case "token_type":
		return cTokenType
	}
	return -1
}

// claimSet is a claims object, picked.
type claimSet struct {
	// raw is the whole object, valid JSON.
	raw []byte
	// used holds the raw JSON values of the claims above (slices of the
	// input), nil when absent.
	used [nUsed][]byte
	// rest holds the members kept for AccessToken.Claims (every member,
	// with "*"), decoded; nil when there are none.
	rest map[string]any
	// roots are the members role paths may start at, raw, in order.
	roots []member
}

// member is a member of a JSON object: its name, unescaped, and its raw
// value, both slices of the object (or, for a name with escapes, of a
// copy).
type member struct {
	name []byte
	raw  []byte
}

// claimPicker says which members of a claims object to decode.
type claimPicker struct {
	all   bool             // decode every member into rest
	names map[string]uint8 // else: wantRest and wantRoot by name
	keep  map[string]bool  // the names that reach AccessToken.Claims (nil with all)
	// maybe has bit nameBit(n) set for every name n of names, so that
	// most members of a token are passed over without a map lookup.
	maybe uint64
}

// nameBit is a bit of claimPicker.maybe for a member name.
func nameBit(name []byte) uint64 {
	h := uint(len(name))
	if len(name) > 0 {
		h = h*31 + uint(name[0]) + 7*uint(name[len(name)-1])
	}
	return 1 << (h % 64)
}

const (
	// wantRest: decode the member into claimSet.rest (a kept claim).
	wantRest uint8 = 1 << iota
	// wantRoot: keep its raw value in claimSet.roots (a role path may
	// start there: every prefix of a path is one).
	wantRoot
)

func newClaimPicker(keep []string, roles *roleMapper) *claimPicker {
	p := &claimPicker{names: map[string]uint8{}, keep: map[string]bool{}}
	if roles != nil {
		for _, c := range roles.claims {
			for _, prefix := range c.prefixes {
				p.names[prefix] |= wantRoot
			}
		}
	}
	for _, k := range keep {
		if k == "*" {
			p.all, p.keep = true, nil
			continue
		}
		if p.keep != nil {
			p.keep[k] = true
		}
		p.names[k] |= wantRest
	}
	for n := range p.names {
		p.maybe |= nameBit([]byte(n))
	}
	return p
}

// kept reports whether claim name reaches AccessToken.Claims.
func (p *claimPicker) kept(name string) bool { return p.all || p.keep[name] }

var errNotObject = errors.New("not a JSON object")

// pick reads the JSON object data. A name that repeats takes its last
// value, as encoding/json does (RFC 7519 §4).
func (p *claimPicker) pick(data []byte) (*claimSet, error) {
	c := new(claimSet)
	if err := p.pickInto(c, data); err != nil {
		return nil, err
	}
	return c, nil
}

// pickInto is pick into c, which must be zero.
func (p *claimPicker) pickInto(c *claimSet, data []byte) error {
	if !segjson.Valid(data) {
		return errNotObject
	}
	c.raw = data
	return eachMember(data, func(key []byte, name string, raw []byte) error {
		if u := usedIndex(key); u >= 0 {
			c.used[u] = raw
		}
		var want uint8
		if p.maybe&nameBit(key) != 0 {
			want = p.names[string(key)]
		}
		if p.all {
			want |= wantRest
		}
		if want == 0 {
			return nil
		}
		if want&wantRoot != 0 {
			if c.roots == nil {
				c.roots = make([]member, 0, 4)
			}
			c.roots = append(c.roots, member{key, raw})
		}
		if want&wantRest == 0 {
			return nil
		}
		v, err := decodeValue(raw)
		if err != nil {
			return err
		}
		if c.rest == nil {
			c.rest = make(map[string]any)
		}
		if name == "" {
			name = string(key)
		}
		c.rest[name] = v
		return nil
	})
}

// eachMember calls fn with each member of the JSON object data, which
// must be valid JSON: the name as raw bytes (unescaped) and, when it had
// escapes, as a string too; and the raw value.
func eachMember(data []byte, fn func(key []byte, name string, raw []byte) error) error {
	i := skipSpace(data, 0)
	if i == len(data) || data[i] != '{' {
		return errNotObject
	}
	i = skipSpace(data, i+1)
	if i < len(data) && data[i] == '}' {
		return nil
	}
	for i < len(data) {
		if data[i] != '"' {
			return errNotObject
		}
		kEnd := endOfString(data, i)
		rawKey := data[i:kEnd]
		if len(rawKey) < 2 {
			return errNotObject
		}
		i = skipSpace(data, kEnd)
		if i == len(data) || data[i] != ':' {
			return errNotObject
		}
		i = skipSpace(data, i+1)
		vEnd := endOfValue(data, i)
		key, name := rawKey[1:len(rawKey)-1], ""
		if !plainString(key) {
			var unq string // declared here, so that only escaped names reach the heap
			if err := segjson.Unmarshal(rawKey, &unq); err != nil {
				return err
			}
			name, key = unq, []byte(unq)
		}
		if err := fn(key, name, data[i:vEnd]); err != nil {
			return err
		}
		i = skipSpace(data, vEnd)
		if i == len(data) {
			break
		}
		switch data[i] {
		case ',':
			i = skipSpace(data, i+1)
		case '}':
			return nil
		default:
			return errNotObject
		}
	}
	return errNotObject
}

// eachElement calls fn with the raw value of each element of the JSON
// array data, which must be valid JSON.
func eachElement(data []byte, fn func(raw []byte)) {
	i := skipSpace(data, 0)
	if i == len(data) || data[i] != '[' {
		return
	}
	for i = skipSpace(data, i+1); i < len(data) && data[i] != ']'; {
		end := endOfValue(data, i)
		if end == i {
			return
		}
		fn(data[i:end])
		if i = skipSpace(data, end); i < len(data) && data[i] == ',' {
			i = skipSpace(data, i+1)
		}
	}
}

// rawString decodes a raw JSON string; ok is false for anything else.
func rawString(raw []byte) (s string, ok bool) {
	if len(raw) < 2 || raw[0] != '"' {
		return "", false
	}
	if in := raw[1 : len(raw)-1]; plainString(in) {
		return string(in), true
	}
	return unquote(raw)
}

// rawStringBytes is rawString as bytes: for a string without escapes, a
// slice of raw, so that reading it allocates nothing.
func rawStringBytes(raw []byte) ([]byte, bool) {
	if len(raw) < 2 || raw[0] != '"' {
		return nil, false
	}
	if in := raw[1 : len(raw)-1]; plainString(in) {
		return in, true
	}
	s, ok := unquote(raw)
	return []byte(s), ok
}

// unquote decodes the JSON string raw (with escapes, or not UTF-8) with
// segjson. It is a function of its own so that only such strings pay for
// the decoding target, which escapes.
func unquote(raw []byte) (string, bool) {
	var s string
	err := segjson.Unmarshal(raw, &s)
	return s, err == nil
}

// rawEquals reports whether raw is the JSON string s written without
// escapes, without decoding it.
func rawEquals(raw []byte, s string) bool {
	return len(raw) == len(s)+2 && raw[0] == '"' && string(raw[1:len(raw)-1]) == s
}

// decodeValue decodes one JSON value as encoding/json decodes into any:
// plain strings, numbers and literals directly, the rest with segjson.
func decodeValue(raw []byte) (any, error) {
	if len(raw) == 0 {
		return nil, errNotObject
	}
	switch c := raw[0]; {
	case c == '"':
		if s, ok := rawString(raw); ok {
			return s, nil
		}
		return nil, errNotObject
	case c == '-' || c >= '0' && c <= '9':
		return strconv.ParseFloat(string(raw), 64)
	case c == 't':
		return true, nil
	case c == 'f':
		return false, nil
	case c == 'n':
		return nil, nil
	}
	var v any
	err := segjson.Unmarshal(raw, &v)
	return v, err
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// endOfString returns the index after the JSON string that starts at
// b[i] (a quote), or len(b). A backslash takes the byte after it.
func endOfString(b []byte, i int) int {
	for i++; i < len(b); i += 2 {
		if i = nextQuoteOrBackslash(b, i); i < len(b) && b[i] == '"' {
			return i + 1
		}
	}
	return len(b)
}

// endOfValue returns the index after the JSON value that starts at b[i],
// which valid JSON guarantees is one.
func endOfValue(b []byte, i int) int {
	if i >= len(b) {
		return len(b)
	}
	switch b[i] {
	case '"':
		return endOfString(b, i)
	case '{', '[':
		depth := 0
		for ; i < len(b); i++ {
			switch b[i] {
			case '"':
				i = endOfString(b, i) - 1
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return i + 1
				}
			}
		}
		return len(b)
	}
	for ; i < len(b); i++ {
		switch b[i] {
		case ',', '}', ']', ' ', '\t', '\n', '\r':
			return i
		}
	}
	return len(b)
}
