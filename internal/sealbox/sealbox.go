// Package sealbox seals small values with AES-256-GCM: a random 96-bit
// nonce before the ciphertext and tag, and additional data that binds a
// sealed value to where it belongs (a grant and a name, a token's jti, a
// cookie's name), so that it cannot be moved. Keys are 32 bytes and used
// for at most a few million values each, far below GCM's limits for random
// nonces.
package sealbox

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"errors"
)

// KeySize is the length of a key (AES-256).
const KeySize = 32

// Box seals and opens values under one key; it is safe for concurrent use.
type Box struct{ aead cipher.AEAD }

// New returns the Box of a 32-byte key.
func New(key []byte) (*Box, error) {
	if len(key) != KeySize {
		return nil, errors.New("sealbox: the key must be 32 bytes")
	}
	b, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	a, err := cipher.NewGCM(b)
	if err != nil {
		return nil, err
	}
	return &Box{a}, nil
}

// Overhead is how many bytes Seal adds to a value.
func (b *Box) Overhead() int { return b.aead.NonceSize() + b.aead.Overhead() }

// Seal appends to dst the sealed plaintext (nonce, then ciphertext and
// tag) bound to aad, and returns the result.
func (b *Box) Seal(dst, plaintext, aad []byte) []byte {
	n := b.aead.NonceSize()
	start := len(dst)
	dst = append(dst, make([]byte, n)...)
	if _, err := rand.Read(dst[start : start+n]); err != nil {
		panic("sealbox: no randomness: " + err.Error()) // crypto/rand never fails on supported systems
	}
	return b.aead.Seal(dst, dst[start:start+n], plaintext, aad)
}

// ErrOpen is returned for a value that does not open: malformed,
// tampered with, sealed under another key, or bound to other data.
var ErrOpen = errors.New("sealbox: the value does not open")

// Open returns the plaintext of a value sealed with aad.
func (b *Box) Open(sealed, aad []byte) ([]byte, error) {
	n := b.aead.NonceSize()
	if len(sealed) < n+b.aead.Overhead() {
		return nil, ErrOpen
	}
	pt, err := b.aead.Open(nil, sealed[:n], sealed[n:], aad)
	if err != nil {
		return nil, ErrOpen
	}
	return pt, nil
}
