package pairing

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"
)

const (
	testFP   = "abcdefghijklmnopqrstuvwxyz234567abcdefghijklmnopqrsq"
	testCode = "7KQ2-M9XD-4TRW"
)

func sampleOffer() Offer {
	return Offer{
		Name:        "front door",
		Fingerprint: testFP,
		Code:        testCode,
		Addrs:       []string{"192.168.1.20:4433", "[2001:db8::1]:4433", "cam.local:4433"},
	}
}

func TestOfferRoundTrip(t *testing.T) {
	for _, o := range []Offer{
		sampleOffer(),
		{Name: "über-cam & co", Fingerprint: testFP, Code: testCode, Addrs: []string{"10.0.0.1:1"},
			Relays: []string{"https://relay.example/r?a=1&b=2"}},
		{Name: "porch", Fingerprint: testFP, Code: testCode, Relays: []string{"https://203.0.113.1:4443/?fp=x&rv=y"},
			RelayAddrs: []string{"203.0.113.1:40000", "[2001:db8::2]:1"}},
	} {
		s := o.String()
		got, err := ParseOffer(s)
		if err != nil {
			t.Fatalf("ParseOffer(%q): %v", s, err)
		}
		if !reflect.DeepEqual(got, o) {
			t.Fatalf("round trip:\n got %+v\nwant %+v", got, o)
		}
	}
}

func TestOfferStringShape(t *testing.T) {
	want := "camagent://pair?v=1&name=front+door&fp=" + testFP + "&code=" + testCode +
		"&addr=192.168.1.20:4433&addr=%5B2001:db8::1%5D:4433&addr=cam.local:4433"
	if got := sampleOffer().String(); got != want {
		t.Fatalf("String() =\n%s\nwant\n%s", got, want)
	}
}

func TestParseOfferLenient(t *testing.T) {
	s := "  camagent://pair/?v=1&name=porch&fp=" + strings.ToUpper(testFP) +
		"&code=7kq2m9xd4trw&addr=10.0.0.2%3A4433&future=x  "
	o, err := ParseOffer(s)
	if err != nil {
		t.Fatal(err)
	}
	if o.Fingerprint != testFP || o.Code != testCode || o.Addrs[0] != "10.0.0.2:4433" {
		t.Fatalf("%+v", o)
	}
}

func TestParseOfferRejects(t *testing.T) {
	base := sampleOffer().String()
	tests := map[string]string{
		"empty":          "",
		"scheme":         strings.Replace(base, "camagent://", "https://", 1),
		"host":           strings.Replace(base, "//pair", "//pear", 1),
		"userinfo":       strings.Replace(base, "//pair", "//u@pair", 1),
		"version":        strings.Replace(base, "v=1", "v=2", 1),
		"no version":     strings.Replace(base, "v=1&", "", 1),
		"no name":        strings.Replace(base, "name=front+door&", "", 1),
		"control name":   strings.Replace(base, "name=front+door", "name=a%1B%5B2J", 1),
		"bad fp":         strings.Replace(base, "fp=abcd", "fp=abc1", 1),
		"bad code":       strings.Replace(base, testCode, "7KQ2-M9XD", 1),
		"no addr":        "camagent://pair?v=1&name=x&fp=" + testFP + "&code=" + testCode,
		"addr no port":   strings.Replace(base, "cam.local:4433", "cam.local", 1),
		"addr port 0":    strings.Replace(base, "cam.local:4433", "cam.local:0", 1),
		"addr bad host":  strings.Replace(base, "cam.local:4433", "cam%2Flocal:4433", 1),
		"addr big port":  strings.Replace(base, "cam.local:4433", "cam.local:70000", 1),
		"relay space":    base + "&relay=a+b",
		"bad raddr":      base + "&raddr=1.2.3.4",
		"too many raddr": base + strings.Repeat("&raddr=1.2.3.4:5", maxRelays+1),
		"too long":       base + "&x=" + strings.Repeat("a", maxOfferLen),
		"too many addrs": base + strings.Repeat("&addr=1.2.3.4:5", maxAddrs),
		"bad query":      base + "&%zz",
	}
	for name, s := range tests {
		t.Run(name, func(t *testing.T) {
			if o, err := ParseOffer(s); !errors.Is(err, ErrBadOffer) {
				t.Fatalf("ParseOffer(%q) = %+v, %v; want ErrBadOffer", s, o, err)
			}
		})
	}
}

func TestRenderQR(t *testing.T) {
	var buf bytes.Buffer
	if err := RenderQR(&buf, sampleOffer().String()); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimRight(buf.String(), "\n"), "\n")
	if len(lines) < 10 || len(lines) > 40 {
		t.Fatalf("QR is %d lines; half blocks should fit a terminal", len(lines))
	}
	if !strings.ContainsAny(buf.String(), "▀▄█") {
		t.Fatal("no half-block characters in output")
	}
	if err := RenderQR(&buf, strings.Repeat("x", 5000)); err == nil {
		t.Fatal("text too long for a QR code accepted")
	}
}

func FuzzParseOffer(f *testing.F) {
	f.Add(sampleOffer().String())
	f.Add("camagent://pair?v=1&name=x&fp=" + testFP + "&code=" + testCode + "&relay=https://r.example")
	f.Add("camagent://pair?v=1&name=%ff&addr=[::1]:1")
	f.Add("camagent://pair?v=1&name=x&fp=" + testFP + "&code=" + testCode + "&raddr=203.0.113.1:40000")
	f.Add("camagent:pair")
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		o, err := ParseOffer(s)
		if err != nil {
			return
		}
		again, err := ParseOffer(o.String())
		if err != nil {
			t.Fatalf("String() of a parsed offer does not parse: %q: %v", o.String(), err)
		}
		if !reflect.DeepEqual(again, o) {
			t.Fatalf("round trip changed the offer:\n%+v\n%+v", o, again)
		}
	})
}
