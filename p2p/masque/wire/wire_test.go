package wire

import (
	"bytes"
	"errors"
	"net/netip"
	"testing"
)

func TestAssignRoundTrip(t *testing.T) {
	tests := []Assign{
		{ContextID: 2},
		{ContextID: 3, Target: netip.MustParseAddrPort("192.0.2.45:54321")},
		{ContextID: 1 << 40, Target: netip.MustParseAddrPort("[2001:db8::1]:443")},
	}
	for _, a := range tests {
		b := a.Append(nil)
		got, err := ParseAssign(b)
		if err != nil {
			t.Fatalf("%+v: %v", a, err)
		}
		if got != a {
			t.Errorf("round trip %+v = %+v", a, got)
		}
	}
}

func TestAssignMapsV4InV6(t *testing.T) {
	a := Assign{ContextID: 4, Target: netip.MustParseAddrPort("[::ffff:198.51.100.7]:9")}
	got, err := ParseAssign(a.Append(nil))
	if err != nil || got.Target.String() != "198.51.100.7:9" {
		t.Fatalf("got %v, %v", got, err)
	}
}

func TestAssignMalformed(t *testing.T) {
	tests := map[string][]byte{
		"empty":            {},
		"context 0":        {0x00, 0x00},
		"no version":       {0x02},
		"bad version":      {0x02, 0x05, 1, 2, 3, 4, 0, 1},
		"short v4":         {0x02, 0x04, 1, 2, 3},
		"short v6":         {0x02, 0x06, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 0},
		"trailing v4":      {0x02, 0x04, 1, 2, 3, 4, 0, 1, 9},
		"trailing after 0": {0x02, 0x00, 0x00},
		"truncated varint": {0x40},
	}
	for name, b := range tests {
		if _, err := ParseAssign(b); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: err = %v, want ErrMalformed", name, err)
		}
	}
}

func TestContextCapsule(t *testing.T) {
	if id, err := ParseContextCapsule([]byte{0x41, 0x00}); err != nil || id != 256 {
		t.Fatalf("got %d, %v", id, err)
	}
	for name, b := range map[string][]byte{"empty": {}, "zero": {0}, "trailing": {2, 0}} {
		if _, err := ParseContextCapsule(b); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: err = %v", name, err)
		}
	}
}

func TestCapsuleFraming(t *testing.T) {
	b := AppendCapsule(nil, CapsuleCompressionAck, []byte{2})
	b = AppendCapsule(b, CapsuleType(0x2ff), bytes.Repeat([]byte{7}, 300))
	typ, v, n, err := ParseCapsule(b)
	if err != nil || typ != CapsuleCompressionAck || !bytes.Equal(v, []byte{2}) {
		t.Fatalf("first: %v %v %v", typ, v, err)
	}
	typ, v, _, err = ParseCapsule(b[n:])
	if err != nil || typ != 0x2ff || len(v) != 300 {
		t.Fatalf("second: %v %d %v", typ, len(v), err)
	}
	if _, _, _, err := ParseCapsule(b[:len(b)-1]); err == nil {
		// The first capsule is complete; cut the second.
		_, _, _, err = ParseCapsule(b[n : len(b)-1])
		if !errors.Is(err, ErrMalformed) {
			t.Fatalf("truncated capsule: %v", err)
		}
	}
}

func TestDatagrams(t *testing.T) {
	peer := netip.MustParseAddrPort("203.0.113.9:4433")
	b := AppendUncompressed(nil, 2, peer, []byte("hello"))
	id, rest, err := ParseDatagram(b)
	if err != nil || id != 2 {
		t.Fatalf("ParseDatagram: %d %v", id, err)
	}
	got, payload, err := ParseUncompressed(rest)
	if err != nil || got != peer || string(payload) != "hello" {
		t.Fatalf("ParseUncompressed: %v %q %v", got, payload, err)
	}
	b = AppendCompressed(nil, 7, []byte("x"))
	id, rest, err = ParseDatagram(b)
	if err != nil || id != 7 || string(rest) != "x" {
		t.Fatalf("compressed: %d %q %v", id, rest, err)
	}
	for name, in := range map[string][]byte{"empty": {}, "no version": {}, "bad version": {9, 1, 2}, "short": {4, 1, 2, 3, 4, 0}} {
		if _, _, err := ParseUncompressed(in); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, _, err := ParseDatagram(make([]byte, 70000)); !errors.Is(err, ErrMalformed) {
		t.Errorf("oversized datagram: %v", err)
	}
}
