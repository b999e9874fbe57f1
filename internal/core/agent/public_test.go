package agent

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/camagent/camagent/internal/feature/identity"
	"github.com/camagent/camagent/internal/feature/pairing"
)

func TestReadPublicAddrs(t *testing.T) {
	dir := t.TempDir()
	if got, err := ReadPublicAddrs(dir); err != nil || got != nil {
		t.Fatalf("no file: %v, %v", got, err)
	}
	p, err := newPublicAddrs(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := ReadPublicAddrs(dir); err != nil || len(got) != 0 {
		t.Fatalf("fresh file: %v, %v", got, err)
	}
	p.cur["relay-b:4443"] = "203.0.113.1:40000"
	p.cur["relay-a:4443"] = "[2001:db8::1]:5000"
	if err := p.write(); err != nil {
		t.Fatal(err)
	}
	got, err := ReadPublicAddrs(dir)
	if want := []string{"[2001:db8::1]:5000", "203.0.113.1:40000"}; err != nil || !slices.Equal(got, want) {
		t.Fatalf("got %v, %v; want %v (sorted by relay)", got, err, want)
	}
	for _, bad := range []string{`{`, `{"relays":{"r":"0.0.0.0:1"}}`, `{"relays":{"r":"1.2.3.4:0"}}`,
		`{"relays":{"r":"evil.example:1"}}`, `{"relays":{"r":"1.2.3.4:1&code=x"}}`, `[]`,
		`{"relays":{"r":"` + strings.Repeat("1", maxPublicFile) + `"}}`} {
		os.WriteFile(filepath.Join(dir, PublicFile), []byte(bad), 0o644)
		if got, err := ReadPublicAddrs(dir); err == nil {
			t.Errorf("%.40q: accepted as %v", bad, got)
		}
	}
}

// FuzzParsePublicAddrs: whatever is in the file, the addresses that come
// out are IP:port literals safe to put in an offer.
func FuzzParsePublicAddrs(f *testing.F) {
	f.Add([]byte(`{"relays":{"203.0.113.1:4443":"203.0.113.1:40000"},"updated":"2026-01-01T00:00:00Z"}`))
	f.Add([]byte(`{"relays":{}}`))
	f.Add([]byte(`{"relays":{"r":"[::1]:1"}}`))
	f.Add([]byte(`null`))
	id, err := identity.LoadOrCreate(f.TempDir())
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		addrs, err := parsePublicAddrs(b)
		if err != nil {
			return
		}
		for _, a := range addrs {
			if strings.ContainsAny(a, "&=?# /\n") {
				t.Fatalf("unsafe address %q", a)
			}
			offer := pairing.Offer{Name: "porch", Fingerprint: id.Fingerprint, Code: "7KQ2-M9XD-4TRW", Addrs: []string{a}}
			back, err := pairing.ParseOffer(offer.String())
			if err != nil || !slices.Equal(back.Addrs, offer.Addrs) {
				t.Fatalf("address %q would make a bad offer: %v, %v", a, back.Addrs, err)
			}
		}
	})
}
