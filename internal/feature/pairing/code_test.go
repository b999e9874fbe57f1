package pairing

import (
	"errors"
	"regexp"
	"testing"
)

func TestGenerateCode(t *testing.T) {
	shape := regexp.MustCompile(`^[0-9A-HJKMNP-TV-Z]{4}-[0-9A-HJKMNP-TV-Z]{4}-[0-9A-HJKMNP-TV-Z]{4}$`)
	seen := map[string]bool{}
	for range 200 {
		c, err := GenerateCode()
		if err != nil {
			t.Fatal(err)
		}
		if !shape.MatchString(c) {
			t.Fatalf("code %q has the wrong shape", c)
		}
		if seen[c] {
			t.Fatalf("duplicate code %q", c)
		}
		seen[c] = true
		if n, err := NormalizeCode(c); err != nil || n != c {
			t.Fatalf("NormalizeCode(%q) = %q, %v", c, n, err)
		}
	}
}

func TestNormalizeCode(t *testing.T) {
	tests := []struct {
		in, want string
	}{
		{"7KQ2-M9XD-4TRW", "7KQ2-M9XD-4TRW"},
		{"7kq2m9xd4trw", "7KQ2-M9XD-4TRW"},
		{" 7kq2 m9xd 4trw ", "7KQ2-M9XD-4TRW"},
		{"OIL0-0000-0000", "0110-0000-0000"}, // Crockford's look-alikes
		{"7KQ2-M9XD-4TR", ""},                // short
		{"7KQ2-M9XD-4TRWX", ""},              // long
		{"7KQ2-M9XD-4TRU", ""},               // U is not in the alphabet
		{"7KQ2-M9XD-4TRé", ""},
		{"", ""},
	}
	for _, tc := range tests {
		got, err := NormalizeCode(tc.in)
		if tc.want == "" {
			if !errors.Is(err, ErrMalformedCode) {
				t.Errorf("NormalizeCode(%q) = %q, %v; want ErrMalformedCode", tc.in, got, err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("NormalizeCode(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}
