package identity

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base32"
	"errors"
	"strings"
)

// fingerprintEncoding is lowercase RFC 4648 base32 without padding: case-
// and symbol-free, so it survives being read aloud or typed from a label.
var fingerprintEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// FingerprintLen is the length of a fingerprint: 32 bytes of SHA-256 in
// base32.
const FingerprintLen = 52

// shortGroups and groupLen shape the human form: "abcd-efgh-ijkl-mnop".
const (
	groupLen    = 4
	shortGroups = 4
)

// ErrBadFingerprint reports text that is not a fingerprint.
var ErrBadFingerprint = errors.New("identity: not a fingerprint")

// FingerprintOf is the SHA-256 of the certificate's SubjectPublicKeyInfo.
// Hashing the key rather than the whole certificate lets a certificate be
// re-issued without breaking pairings.
func FingerprintOf(cert *x509.Certificate) string {
	if cert == nil {
		return ""
	}
	return fingerprintOfSPKI(cert.RawSubjectPublicKeyInfo)
}

func fingerprintOfSPKI(spki []byte) string {
	sum := sha256.Sum256(spki)
	return fingerprintEncoding.EncodeToString(sum[:])
}

// PeerFingerprint is the fingerprint of the certificate the peer presented
// in a completed handshake, or "" if it presented none.
func PeerFingerprint(cs tls.ConnectionState) string {
	if len(cs.PeerCertificates) == 0 {
		return ""
	}
	return FingerprintOf(cs.PeerCertificates[0])
}

// ShortFingerprint is the first four groups of a fingerprint, for logs and
// for people comparing two screens: "abcd-efgh-ijkl-mnop" (80 bits).
func ShortFingerprint(fp string) string {
	fp = stripSeparators(fp)
	if len(fp) > groupLen*shortGroups {
		fp = fp[:groupLen*shortGroups]
	}
	return group(fp)
}

// FormatFingerprint groups a whole fingerprint in fours for display.
func FormatFingerprint(fp string) string { return group(stripSeparators(fp)) }

// ParseFingerprint accepts a fingerprint as people or URIs carry it (any
// case, optional '-' or ' ' separators) and returns the canonical form.
func ParseFingerprint(s string) (string, error) {
	if len(s) > 2*FingerprintLen {
		return "", ErrBadFingerprint
	}
	fp := strings.ToLower(stripSeparators(s))
	if len(fp) != FingerprintLen {
		return "", ErrBadFingerprint
	}
	raw, err := fingerprintEncoding.DecodeString(fp)
	if err != nil || len(raw) != sha256.Size {
		return "", ErrBadFingerprint
	}
	// Re-encode so that non-canonical trailing bits cannot make two
	// spellings of one key.
	if fingerprintEncoding.EncodeToString(raw) != fp {
		return "", ErrBadFingerprint
	}
	return fp, nil
}

func stripSeparators(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '-' || r == ' ' {
			return -1
		}
		return r
	}, s)
}

func group(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i += groupLen {
		if i > 0 {
			b.WriteByte('-')
		}
		b.WriteString(s[i:min(i+groupLen, len(s))])
	}
	return b.String()
}
