package pairing

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"strings"
)

// crockford is Crockford's base32 alphabet: digits and capitals without
// I, L, O and U, so that a code read off a screen is hard to mistype.
const crockford = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

// Code shape: 12 symbols of 5 bits (60 bits of entropy), shown in groups
// of 4: "7KQ2-M9XD-4TRW".
const (
	codeSymbols  = 12
	codeGroupLen = 4
)

// ErrMalformedCode reports text that cannot be a pairing code.
var ErrMalformedCode = errors.New("pairing: malformed code")

// GenerateCode returns a new random pairing code in display form.
func GenerateCode() (string, error) {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	v := binary.BigEndian.Uint64(b[:])
	sym := make([]byte, codeSymbols)
	for i := range sym {
		sym[i] = crockford[v&31]
		v >>= 5
	}
	return groupCode(string(sym)), nil
}

// NormalizeCode accepts a code as typed (any case, '-' or spaces anywhere,
// O for 0 and I or L for 1, as Crockford prescribes) and returns its
// display form.
func NormalizeCode(s string) (string, error) {
	if len(s) > 4*codeSymbols {
		return "", ErrMalformedCode
	}
	var b strings.Builder
	for _, r := range strings.ToUpper(s) {
		switch {
		case r == '-' || r == ' ':
			continue
		case r == 'O':
			r = '0'
		case r == 'I' || r == 'L':
			r = '1'
		}
		if r > 0x7f || strings.IndexByte(crockford, byte(r)) < 0 {
			return "", ErrMalformedCode
		}
		b.WriteRune(r)
	}
	if b.Len() != codeSymbols {
		return "", ErrMalformedCode
	}
	return groupCode(b.String()), nil
}

func groupCode(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i += codeGroupLen {
		if i > 0 {
			b.WriteByte('-')
		}
		b.WriteString(s[i:min(i+codeGroupLen, len(s))])
	}
	return b.String()
}

// hashCode is what codes.json stores instead of the code: a per-code salt
// keeps equal codes from looking equal, and the file alone no longer
// hands out a usable code.
func hashCode(salt []byte, normalized string) []byte {
	h := sha256.New()
	h.Write(salt)
	h.Write([]byte(normalized))
	return h.Sum(nil)
}

// codeMatches compares in constant time so that response timing says
// nothing about how close a guess was.
func codeMatches(salt, want []byte, normalized string) bool {
	return subtle.ConstantTimeCompare(hashCode(salt, normalized), want) == 1
}
