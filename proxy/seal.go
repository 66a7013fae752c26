package proxy

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/mcp-oauth/oauth/internal/sealbox"
)

// The facade keeps no state: what it must remember between two requests
// travels with the client, sealed (AES-256-GCM under Options.Keys, with
// the kind's prefix as additional data, so that a value of one kind never
// opens as another). Each kind has a prefix, so a value of the wrong kind
// is refused before any decryption, and a leaked value is recognizable.
const (
	// prefixClient starts a client_id: a clientRecord.
	prefixClient = "mcpp_cid_"
	// prefixState starts the state the facade sends the upstream: a
	// stateRecord.
	prefixState = "mcpp_st_"
	// prefixCode starts the code the facade gives the client: a codeRecord
	// around the upstream's code.
	prefixCode = "mcpp_code_"
	// prefixRefresh starts the refresh token the facade gives the client:
	// a refreshRecord around the upstream's.
	prefixRefresh = "mcpp_rt_"
)

// Bounds on sealed values and on what they carry.
const (
	// maxSealedLen bounds a sealed value read from a request.
	maxSealedLen = 12 << 10
	// maxUpstreamCode bounds the upstream's authorization code (Entra ID's
	// run to about 1.5 KB).
	maxUpstreamCode = 4096
	// maxUpstreamRefresh bounds the upstream's refresh token.
	maxUpstreamRefresh = 8192
)

// errSealed is returned for a client_id, state, code or refresh token
// that the facade did not seal (with a key it still has), or that was
// sealed as another kind, or tampered with.
var errSealed = errors.New("proxy: not a value sealed by this facade")

// clientRecord is a registration (RFC 7591 §3.2.1), carried in the
// client_id. Only what the facade checks is kept: the redirect URIs.
type clientRecord struct {
	RedirectURIs []string `json:"r"`
	IssuedAt     int64    `json:"i"`
}

// stateRecord is an authorization request on its way through the
// upstream (RFC 6749 §4.1.1 state): whose it is and where its answer goes.
type stateRecord struct {
	Client      string `json:"c"` // clientDigest of the client_id
	RedirectURI string `json:"r"` // the client's, validated at /authorize
	State       string `json:"s"` // the client's state, returned as is
	Expires     int64  `json:"e"` // Unix seconds
}

// codeRecord binds the upstream's authorization code to the client and
// redirect URI it was issued for (OAuth 2.1 §4.1.3): every client of the
// facade is one client at the upstream, which cannot tell them apart.
type codeRecord struct {
	Client   string `json:"c"` // clientDigest
	Redirect string `json:"r"` // digest of the redirect URI
	Code     string `json:"u"` // the upstream's code
	Expires  int64  `json:"e"`
}

// refreshRecord binds the upstream's refresh token to the client it was
// issued to (OAuth 2.1 §4.3.1).
type refreshRecord struct {
	Client string `json:"c"`
	Token  string `json:"u"`
}

// keyRing seals with its first key and opens with any.
type keyRing struct{ boxes []*sealbox.Box }

func newKeyRing(keys [][]byte) (*keyRing, error) {
	r := &keyRing{}
	for i, k := range keys {
		b, err := sealbox.New(k)
		if err != nil {
			return nil, fmt.Errorf("key %d: %w", i, err)
		}
		r.boxes = append(r.boxes, b)
	}
	return r, nil
}

// seal returns prefix followed by the sealed JSON of v, base64url.
func (r *keyRing) seal(prefix string, v any) string {
	pt, err := json.Marshal(v)
	if err != nil {
		panic("proxy: a sealed record does not marshal: " + err.Error()) // records are plain structs
	}
	return prefix + base64.RawURLEncoding.EncodeToString(r.boxes[0].Seal(nil, pt, []byte(prefix)))
}

// open unseals a value of prefix's kind into v; any failure is errSealed.
func (r *keyRing) open(prefix, s string, v any) error {
	body, ok := strings.CutPrefix(s, prefix)
	if !ok || len(s) > maxSealedLen {
		return errSealed
	}
	b, err := base64.RawURLEncoding.DecodeString(body)
	if err != nil {
		return errSealed
	}
	for _, box := range r.boxes {
		if pt, err := box.Open(b, []byte(prefix)); err == nil {
			if json.Unmarshal(pt, v) != nil {
				return errSealed
			}
			return nil
		}
	}
	return errSealed
}

// clientDigest names a client_id in the records bound to it, at a fixed
// size whatever the client_id's.
func clientDigest(clientID string) string { return digest("client", clientID) }

// digest is a domain-separated SHA-256, base64url.
func digest(kind, v string) string {
	sum := sha256.Sum256([]byte("mcpp " + kind + "\x00" + v))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// client opens a client_id, validating what it carries (belt and braces:
// only this facade can seal one).
func (f *Facade) client(clientID string) (*clientRecord, error) {
	var c clientRecord
	if err := f.keys.open(prefixClient, clientID, &c); err != nil {
		return nil, err
	}
	if len(c.RedirectURIs) == 0 || len(c.RedirectURIs) > maxRedirectURIs {
		return nil, errSealed
	}
	return &c, nil
}
