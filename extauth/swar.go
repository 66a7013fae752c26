package extauth

import (
	"bytes"
	"encoding/binary"
	"math/bits"
	"unicode/utf8"
)

// The claims scanner reads strings eight bytes at a time (SWAR): most
// claims are short ASCII strings, for which a call of bytes.IndexByte and
// utf8.Valid each costs more than the scan.

const (
	swarLo = 0x0101010101010101
	swarHi = 0x8080808080808080
)

// zeroBytes has the high bit set of the lowest byte of x that is zero,
// and is zero if and only if no byte of x is zero. (Bits above the lowest
// zero byte may be set wrongly: only the lowest, or the whole, is used.)
func zeroBytes(x uint64) uint64 { return (x - swarLo) &^ x & swarHi }

// quoteOrBackslash is zeroBytes of x for the bytes '"' and '\\'.
func quoteOrBackslash(x uint64) uint64 {
	return zeroBytes(x^(swarLo*'"')) | zeroBytes(x^(swarLo*'\\'))
}

// nextQuoteOrBackslash returns the index of the first '"' or '\\' in b at
// or after i, or len(b).
func nextQuoteOrBackslash(b []byte, i int) int {
	for ; i+8 <= len(b); i += 8 {
		if m := quoteOrBackslash(binary.LittleEndian.Uint64(b[i:])); m != 0 {
			return i + bits.TrailingZeros64(m)>>3
		}
	}
	for ; i < len(b); i++ {
		if c := b[i]; c == '"' || c == '\\' {
			return i
		}
	}
	return len(b)
}

// plainString reports whether in has no backslash and is valid UTF-8:
// whether the JSON string of contents in means in itself.
func plainString(in []byte) bool {
	i := 0
	for ; i+8 <= len(in); i += 8 {
		x := binary.LittleEndian.Uint64(in[i:])
		if x&swarHi != 0 || zeroBytes(x^(swarLo*'\\')) != 0 {
			break
		}
	}
	for ; i < len(in); i++ {
		if c := in[i]; c == '\\' || c >= utf8.RuneSelf {
			// in[:i] is ASCII without a backslash.
			return bytes.IndexByte(in[i:], '\\') < 0 && utf8.Valid(in[i:])
		}
	}
	return true
}
