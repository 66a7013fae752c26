// Package keywrap encrypts signing keys at rest with key-encryption keys
// (KEKs): AES-256-GCM, the record's key ID as additional data (so a
// ciphertext cannot be moved to another record), and the KEK's ID in the
// header (so several KEKs can be configured while one is being rotated out).
//
// Sealed form: "mcpkek1" || kekID (8 bytes) || nonce (12) || ciphertext+tag.
// A value without the magic prefix is a plaintext PKCS #8 key, as stored
// when no KEK was configured.
package keywrap

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
)

var magic = []byte("mcpkek1")

// KeySize is the length of a key-encryption key (AES-256).
const KeySize = 32

// Ring is an ordered set of KEKs: the first seals, all of them open.
type Ring struct {
	keys []kek
}

type kek struct {
	id   [8]byte
	aead cipher.AEAD
}

// NewRing returns a ring of the given 32-byte keys; nil or empty means no
// encryption. Keys must be distinct.
func NewRing(keys [][]byte) (*Ring, error) {
	r := &Ring{}
	for i, k := range keys {
		if len(k) != KeySize {
			return nil, fmt.Errorf("keywrap: key-encryption key %d has %d bytes, want %d", i, len(k), KeySize)
		}
		block, err := aes.NewCipher(k)
		if err != nil {
			return nil, fmt.Errorf("keywrap: %w", err)
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return nil, fmt.Errorf("keywrap: %w", err)
		}
		sum := sha256.Sum256(append([]byte("mcpkek-id:"), k...))
		var id [8]byte
		copy(id[:], sum[:8])
		for _, o := range r.keys {
			if o.id == id {
				return nil, errors.New("keywrap: duplicate key-encryption key")
			}
		}
		r.keys = append(r.keys, kek{id: id, aead: aead})
	}
	return r, nil
}

// Enabled reports whether the ring seals.
func (r *Ring) Enabled() bool { return r != nil && len(r.keys) > 0 }

// Seal encrypts plaintext for the record keyID with the first KEK; with no
// KEK it returns plaintext unchanged.
func (r *Ring) Seal(keyID string, plaintext []byte) ([]byte, error) {
	if !r.Enabled() {
		return plaintext, nil
	}
	k := r.keys[0]
	out := make([]byte, 0, len(magic)+8+12+len(plaintext)+16)
	out = append(out, magic...)
	out = append(out, k.id[:]...)
	nonce := make([]byte, 12)
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	out = append(out, nonce...)
	return k.aead.Seal(out, nonce, plaintext, []byte(keyID)), nil
}

// IsSealed reports whether a stored value is encrypted.
func IsSealed(v []byte) bool { return bytes.HasPrefix(v, magic) }

// ErrNoKEK is returned when a value is sealed with a KEK the ring lacks.
var ErrNoKEK = errors.New("keywrap: the value is sealed with a key-encryption key that is not configured")

// Open decrypts a stored value for record keyID; a plaintext value is
// returned as is.
func (r *Ring) Open(keyID string, v []byte) ([]byte, error) {
	if !IsSealed(v) {
		return v, nil
	}
	rest := v[len(magic):]
	if len(rest) < 8+12+16 {
		return nil, errors.New("keywrap: sealed value too short")
	}
	var id [8]byte
	copy(id[:], rest[:8])
	if r != nil {
		for _, k := range r.keys {
			if k.id == id {
				pt, err := k.aead.Open(nil, rest[8:20], rest[20:], []byte(keyID))
				if err != nil {
					return nil, fmt.Errorf("keywrap: the sealed value of %s does not decrypt (tampered, or moved from another record)", keyID)
				}
				return pt, nil
			}
		}
	}
	return nil, ErrNoKEK
}
