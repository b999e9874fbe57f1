package identity

import (
	"errors"
	"strings"
	"testing"
)

const sampleFP = "abcdefghijklmnopqrstuvwxyz234567abcdefghijklmnopqrsq"

func TestParseFingerprint(t *testing.T) {
	id := newTestIdentity(t)
	tests := []struct {
		name, in, want string
		wantErr        bool
	}{
		{"canonical", id.Fingerprint, id.Fingerprint, false},
		{"upper grouped", strings.ToUpper(FormatFingerprint(id.Fingerprint)), id.Fingerprint, false},
		{"spaces", strings.ReplaceAll(FormatFingerprint(id.Fingerprint), "-", " "), id.Fingerprint, false},
		{"empty", "", "", true},
		{"short", id.Fingerprint[:51], "", true},
		{"long", id.Fingerprint + "a", "", true},
		{"bad alphabet", "1" + id.Fingerprint[1:], "", true},
		{"non-canonical tail", id.Fingerprint[:51] + "b", "", true},
		{"huge", strings.Repeat("-", 1000), "", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseFingerprint(tc.in)
			if tc.wantErr {
				if !errors.Is(err, ErrBadFingerprint) {
					t.Fatalf("ParseFingerprint(%q) = %q, %v; want ErrBadFingerprint", tc.in, got, err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("ParseFingerprint(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
			}
		})
	}
}

func TestShortFingerprint(t *testing.T) {
	tests := []struct{ in, want string }{
		{sampleFP, "abcd-efgh-ijkl-mnop"},
		{FormatFingerprint(sampleFP), "abcd-efgh-ijkl-mnop"},
		{"abcdef", "abcd-ef"},
		{"", ""},
	}
	for _, tc := range tests {
		if got := ShortFingerprint(tc.in); got != tc.want {
			t.Errorf("ShortFingerprint(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestFingerprintOfNil(t *testing.T) {
	if got := FingerprintOf(nil); got != "" {
		t.Fatalf("FingerprintOf(nil) = %q", got)
	}
}

func FuzzParseFingerprint(f *testing.F) {
	f.Add(sampleFP)
	f.Add(FormatFingerprint(sampleFP))
	f.Add("")
	f.Add("----")
	f.Fuzz(func(t *testing.T, s string) {
		fp, err := ParseFingerprint(s)
		if err != nil {
			return
		}
		again, err := ParseFingerprint(FormatFingerprint(fp))
		if err != nil || again != fp {
			t.Fatalf("round trip of %q: %q, %v", fp, again, err)
		}
	})
}
