package secret

import (
	"strings"
	"testing"
)

func TestNewAndWellFormed(t *testing.T) {
	a, b := New(PrefixCode), New(PrefixCode)
	if a == b {
		t.Fatal("two secrets are equal")
	}
	if !WellFormed(PrefixCode, a) {
		t.Fatalf("%q not well formed", a)
	}
	for _, tc := range []struct {
		name, prefix, s string
	}{
		{"other prefix", PrefixRefreshToken, a},
		{"short", PrefixCode, a[:len(a)-1]},
		{"long", PrefixCode, a + "A"},
		{"bad char", PrefixCode, a[:len(a)-1] + "="},
		{"empty", PrefixCode, ""},
	} {
		if WellFormed(tc.prefix, tc.s) {
			t.Errorf("%s: WellFormed(%q) = true", tc.name, tc.s)
		}
	}
}

func TestHash(t *testing.T) {
	// SHA-256("abc"), FIPS 180-2 appendix B.1.
	if got := Hash("abc"); got != "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad" {
		t.Fatalf("Hash(abc) = %s", got)
	}
}

func TestUserCodes(t *testing.T) {
	seen := map[string]bool{}
	for i := 0; i < 2000; i++ {
		c := NewUserCode()
		if len(c) != 9 || c[4] != '-' {
			t.Fatalf("code %q is not four letters, a hyphen, four letters", c)
		}
		n := NormalizeUserCode(c)
		if n != strings.ReplaceAll(c, "-", "") {
			t.Fatalf("Normalize(%q) = %q", c, n)
		}
		seen[n] = true
	}
	if len(seen) < 1990 {
		t.Fatalf("only %d distinct codes in 2000", len(seen))
	}
	for in, want := range map[string]string{
		"bcdf-ghjk":             "BCDFGHJK",
		"BCDFGHJK":              "BCDFGHJK",
		" bcdf ghjk ":           "BCDFGHJK",
		"BCDF-GHJ":              "",
		"BCDF-GHJA":             "", // vowel: not in the alphabet
		"BCDF-GHJ0":             "",
		"":                      "",
		strings.Repeat("B", 40): "",
	} {
		if got := NormalizeUserCode(in); got != want {
			t.Errorf("NormalizeUserCode(%q) = %q, want %q", in, got, want)
		}
		wantDisplay := ""
		if want != "" {
			wantDisplay = want[:4] + "-" + want[4:]
		}
		if got := DisplayUserCode(in); got != wantDisplay {
			t.Errorf("DisplayUserCode(%q) = %q, want %q", in, got, wantDisplay)
		}
	}
}

func FuzzNormalizeUserCode(f *testing.F) {
	for _, s := range []string{"BCDF-GHJK", "bcdf ghjk", "", "----", "ÄÖÜ"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n := NormalizeUserCode(s)
		if n == "" {
			return
		}
		if len(n) != UserCodeLen {
			t.Fatalf("normalized %q has length %d", n, len(n))
		}
		for _, c := range n {
			if !strings.ContainsRune(UserCodeAlphabet, c) {
				t.Fatalf("normalized %q has %q", n, c)
			}
		}
		if NormalizeUserCode(n) != n {
			t.Fatal("not idempotent")
		}
	})
}
