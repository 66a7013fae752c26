package keywrap

import (
	"bytes"
	"crypto/rand"
	"errors"
	"testing"
)

func key() []byte { k := make([]byte, KeySize); rand.Read(k); return k }

func TestSealOpen(t *testing.T) {
	k1, k2 := key(), key()
	r1, err := NewRing([][]byte{k1})
	if err != nil {
		t.Fatal(err)
	}
	secret := []byte("pkcs8 private key bytes")
	sealed, err := r1.Seal("kid-1", secret)
	if err != nil || !IsSealed(sealed) || bytes.Contains(sealed, secret) {
		t.Fatalf("Seal = %x, %v", sealed, err)
	}
	if pt, err := r1.Open("kid-1", sealed); err != nil || !bytes.Equal(pt, secret) {
		t.Fatalf("Open = %q, %v", pt, err)
	}
	// Bound to its record.
	if _, err := r1.Open("kid-2", sealed); err == nil {
		t.Fatal("opened under another key ID")
	}
	// Tampering is detected.
	bad := bytes.Clone(sealed)
	bad[len(bad)-1] ^= 1
	if _, err := r1.Open("kid-1", bad); err == nil {
		t.Fatal("opened a tampered value")
	}
	// Rotation: new KEK first seals, old one still opens.
	r21, _ := NewRing([][]byte{k2, k1})
	if pt, err := r21.Open("kid-1", sealed); err != nil || !bytes.Equal(pt, secret) {
		t.Fatalf("rotated ring cannot open old value: %v", err)
	}
	newSealed, _ := r21.Seal("kid-3", secret)
	if _, err := r1.Open("kid-3", newSealed); !errors.Is(err, ErrNoKEK) {
		t.Fatalf("old ring opened a value sealed with the new KEK: %v", err)
	}
	// A ring without the KEK says so; without a ring, plaintext passes through.
	if _, err := (&Ring{}).Open("kid-1", sealed); !errors.Is(err, ErrNoKEK) {
		t.Fatalf("empty ring: %v", err)
	}
	var none *Ring
	if pt, _ := none.Seal("k", secret); !bytes.Equal(pt, secret) {
		t.Fatal("nil ring changed plaintext")
	}
	if pt, _ := r1.Open("k", secret); !bytes.Equal(pt, secret) {
		t.Fatal("plaintext value not passed through")
	}
}

func TestNewRingValidates(t *testing.T) {
	k := key()
	for name, keys := range map[string][][]byte{
		"short":     {k[:16]},
		"duplicate": {k, bytes.Clone(k)},
	} {
		if _, err := NewRing(keys); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
