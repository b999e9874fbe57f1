package identity

import (
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// MaxNameLen bounds viewer and camera names in bytes.
const MaxNameLen = 64

// ErrBadName reports an unusable viewer or camera name.
var ErrBadName = errors.New("identity: bad name")

// CheckName reports whether name can label a viewer or camera. Names
// arrive from the network during pairing and are printed in terminals and
// logs, so control and format characters (terminal escape sequences,
// bidi overrides) are refused.
func CheckName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("%w: empty", ErrBadName)
	case len(name) > MaxNameLen:
		return fmt.Errorf("%w: longer than %d bytes", ErrBadName, MaxNameLen)
	case !utf8.ValidString(name):
		return fmt.Errorf("%w: not UTF-8", ErrBadName)
	case strings.TrimSpace(name) != name:
		return fmt.Errorf("%w: leading or trailing space", ErrBadName)
	}
	for _, r := range name {
		if !unicode.IsPrint(r) {
			return fmt.Errorf("%w: unprintable character %U", ErrBadName, r)
		}
	}
	return nil
}
