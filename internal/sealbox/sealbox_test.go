package sealbox

import (
	"bytes"
	"errors"
	"testing"
)

// TestSealOpen: a value opens with its key and additional data only, and
// every change to it is detected.
func TestSealOpen(t *testing.T) {
	k1, k2 := bytes.Repeat([]byte{1}, KeySize), bytes.Repeat([]byte{2}, KeySize)
	b1, _ := New(k1)
	b2, _ := New(k2)
	s := b1.Seal([]byte("v1"), []byte("secret"), []byte("grant-1"))
	if !bytes.HasPrefix(s, []byte("v1")) || len(s) != 2+len("secret")+b1.Overhead() {
		t.Fatalf("sealed %x", s)
	}
	s = s[2:]
	if pt, err := b1.Open(s, []byte("grant-1")); err != nil || string(pt) != "secret" {
		t.Fatalf("Open = %q, %v", pt, err)
	}
	again := b1.Seal(nil, []byte("secret"), []byte("grant-1"))
	if bytes.Equal(again, s) {
		t.Fatal("two seals of one value are equal: the nonce repeats")
	}
	flipped := bytes.Clone(s)
	flipped[len(flipped)-1] ^= 1
	for name, tc := range map[string]struct {
		b   *Box
		v   []byte
		aad string
	}{
		"other key": {b2, s, "grant-1"}, "other data": {b1, s, "grant-2"}, "tampered": {b1, flipped, "grant-1"},
		"short": {b1, s[:10], "grant-1"}, "empty": {b1, nil, "grant-1"},
	} {
		if _, err := tc.b.Open(tc.v, []byte(tc.aad)); !errors.Is(err, ErrOpen) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := New([]byte("short")); err == nil {
		t.Error("a 5-byte key was accepted")
	}
}
