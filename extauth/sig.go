package extauth

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"math/big"
	"unsafe"
)

// maxSigBytes is the longest signature of an accepted key: RSA of
// maxRSABits. verifyJWT decodes signatures up to this length into a
// buffer on its stack.
const maxSigBytes = maxRSABits / 8

// pssVerify are the PSS options of verification: the salt length is read
// from the signature, as golang-jwt verifies PS256, PS384 and PS512
// (tokens signed with rsa.PSSSaltLengthEqualsHash, as RFC 7518 §3.5 says,
// and with older libraries' PSSSaltLengthAuto).
var pssVerify = &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthAuto}

// verifySignature reports whether sig is the signature of signingInput by
// pub under alg, one of the algorithms of method. It makes the calls
// golang-jwt's methods (jwt.SigningMethodRSA, RSAPSS, ECDSA, Ed25519)
// make, with the same checks, but on a digest computed without copying
// the signing input and kept on the stack: crypto/rsa.VerifyPKCS1v15 for
// RS*, VerifyPSS for PS*, ecdsa.Verify of r and s (each exactly half of
// sig) for ES*, ed25519.Verify for EdDSA. A key of another type than alg's
// is refused (keySnap.find returns only keys that fit alg anyway).
func verifySignature(alg, signingInput string, sig []byte, pub crypto.PublicKey) bool {
	// The signing input, read without copying (the hash functions and
	// ed25519.Verify only read their input).
	msg := unsafe.Slice(unsafe.StringData(signingInput), len(signingInput))
	if alg == EdDSA {
		k, ok := pub.(ed25519.PublicKey)
		return ok && len(k) == ed25519.PublicKeySize && ed25519.Verify(k, msg, sig)
	}
	if len(alg) != 5 {
		return false
	}
	var buf [sha512.Size]byte
	var h crypto.Hash
	var digest []byte
	ecSize := 0 // golang-jwt's SigningMethodECDSA.KeySize
	switch alg[2:] {
	case "256":
		d := sha256.Sum256(msg)
		h, digest, ecSize = crypto.SHA256, append(buf[:0], d[:]...), 32
	case "384":
		d := sha512.Sum384(msg)
		h, digest, ecSize = crypto.SHA384, append(buf[:0], d[:]...), 48
	case "512":
		buf = sha512.Sum512(msg)
		h, digest, ecSize = crypto.SHA512, buf[:], 66
	default:
		return false
	}
	switch alg[:2] {
	case "RS":
		k, ok := pub.(*rsa.PublicKey)
		return ok && rsa.VerifyPKCS1v15(k, h, digest, sig) == nil
	case "PS":
		k, ok := pub.(*rsa.PublicKey)
		// The digest escapes in VerifyPSS: a copy, so that buf stays on the stack.
		return ok && rsa.VerifyPSS(k, h, append([]byte(nil), digest...), sig, pssVerify) == nil
	case "ES":
		k, ok := pub.(*ecdsa.PublicKey)
		if !ok || len(sig) != 2*ecSize {
			return false
		}
		r := new(big.Int).SetBytes(sig[:ecSize])
		s := new(big.Int).SetBytes(sig[ecSize:])
		return ecdsa.Verify(k, digest, r, s)
	}
	return false
}
