package relayserver

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
)

// Own addresses of the test policies: a global address stands for the
// relay's public IP, 192.0.2.2 and 203.0.113.1 for interface addresses in
// documentation ranges (as in this machine and the labs), 127.0.0.1 for
// loopback.
var testOwn = []netip.Addr{
	netip.MustParseAddr("8.8.4.4"),
	netip.MustParseAddr("2001:4860:4860::8844"),
	netip.MustParseAddr("192.0.2.2"),
	netip.MustParseAddr("203.0.113.1"),
	netip.MustParseAddr("127.0.0.1"),
	netip.MustParseAddr("::1"),
}

var labOverride = []netip.Prefix{
	netip.MustParsePrefix("203.0.113.0/24"),
	netip.MustParsePrefix("198.51.100.0/24"),
	netip.MustParsePrefix("192.0.2.0/24"),
}

var loopbackOverride = []netip.Prefix{
	netip.MustParsePrefix("127.0.0.1/32"),
	netip.MustParsePrefix("::1/128"),
}

func TestTargetPolicy(t *testing.T) {
	def := newTargetPolicy(nil, testOwn)
	lab := newTargetPolicy(labOverride, testOwn)
	loop := newTargetPolicy(loopbackOverride, testOwn)
	tests := []struct {
		target         string
		def, lab, loop bool   // admitted by the default, lab and loopback policies
		why            string // part of the default policy's refusal
	}{
		// Global unicast.
		{"1.1.1.1:53", true, true, true, ""},
		{"93.184.216.34:443", true, true, true, ""},
		{"[2606:4700:4700::1111]:53", true, true, true, ""},
		{"[2a00:1450:4001:80b::200e]:443", true, true, true, ""},
		// IPv4 special-purpose registry.
		{"0.0.0.0:53", false, false, false, "0.0.0.0/8"},
		{"0.1.2.3:53", false, false, false, "0.0.0.0/8"},
		{"10.0.0.1:53", false, false, false, "10.0.0.0/8"},
		{"10.255.255.255:53", false, false, false, "10.0.0.0/8"},
		{"100.64.0.1:53", false, false, false, "100.64.0.0/10"},
		{"100.100.100.200:80", false, false, false, "100.64.0.0/10"}, // a cloud metadata address
		{"100.127.255.255:53", false, false, false, "100.64.0.0/10"},
		{"100.128.0.1:53", true, true, true, ""},
		{"127.0.0.1:53", false, false, true, "own address"},
		{"127.0.0.2:53", false, false, false, "127.0.0.0/8"},
		{"127.255.255.254:53", false, false, false, "127.0.0.0/8"},
		{"169.254.169.254:80", false, false, false, "169.254.0.0/16"},
		{"172.16.0.1:53", false, false, false, "172.16.0.0/12"},
		{"172.31.255.255:53", false, false, false, "172.16.0.0/12"},
		{"172.32.0.1:53", true, true, true, ""},
		{"192.0.0.1:53", false, false, false, "192.0.0.0/24"},
		{"192.0.0.170:53", false, false, false, "192.0.0.0/24"},
		{"192.0.2.7:53", false, true, false, "192.0.2.0/24"},
		{"192.31.196.1:53", false, false, false, "192.31.196.0/24"},
		{"192.52.193.1:53", false, false, false, "192.52.193.0/24"},
		{"192.88.99.1:53", false, false, false, "192.88.99.0/24"},
		{"192.168.1.1:53", false, false, false, "192.168.0.0/16"},
		{"192.175.48.1:53", false, false, false, "192.175.48.0/24"},
		{"198.18.0.1:53", false, false, false, "198.18.0.0/15"},
		{"198.19.255.255:53", false, false, false, "198.18.0.0/15"},
		{"198.51.100.2:53", false, true, false, "198.51.100.0/24"},
		{"203.0.113.2:53", false, true, false, "203.0.113.0/24"},
		{"224.0.0.251:5353", false, false, false, "224.0.0.0/4"},
		{"239.255.255.250:1900", false, false, false, "224.0.0.0/4"},
		{"240.0.0.1:53", false, false, false, "240.0.0.0/4"},
		{"255.255.255.255:53", false, false, false, "240.0.0.0/4"},
		// The relay's own addresses: refused even inside an override,
		// except loopback the override names.
		{"8.8.4.4:53", false, false, false, "own address"},
		{"[2001:4860:4860::8844]:53", false, false, false, "own address"},
		{"192.0.2.2:22", false, false, false, "own address"},
		{"203.0.113.1:4443", false, false, false, "own address"},
		{"[::1]:53", false, false, true, "own address"},
		// IPv6 outside 2000::/3 and special-purpose inside it.
		{"[::]:53", false, false, false, "::/128"},
		{"[::2]:53", false, false, false, "IPv4-compatible"},
		{"[100::1]:53", false, false, false, "100::/64"},
		{"[5f00::1]:53", false, false, false, "5f00::/16"},
		{"[fc00::1]:53", false, false, false, "fc00::/7"},
		{"[fd00::2]:53", false, false, false, "fc00::/7"},
		{"[fe80::1]:53", false, false, false, "fe80::/10"},
		{"[fec0::1]:53", false, false, false, "fec0::/10"},
		{"[ff02::1]:53", false, false, false, "ff00::/8"},
		{"[ff0e::1]:53", false, false, false, "ff00::/8"},
		{"[4000::1]:53", false, false, false, "2000::/3"},
		{"[2001:db8::1]:53", false, false, false, "2001:db8::/32"},
		{"[2001:2::1]:53", false, false, false, "2001::/23"},
		{"[2001:1::1]:53", false, false, false, "2001::/23"},
		{"[2001:10::1]:53", false, false, false, "2001::/23"},
		{"[2001:20::1]:53", false, false, false, "2001::/23"},
		{"[2620:4f:8000::1]:53", false, false, false, "2620:4f:8000::/48"},
		{"[3fff::1]:53", false, false, false, "3fff::/20"},
		// IPv4 embedded in IPv6, whatever the override.
		{"[::ffff:127.0.0.1]:53", false, false, false, "IPv4-mapped"},
		{"[::ffff:1.1.1.1]:53", false, false, false, "IPv4-mapped"},
		{"[::127.0.0.1]:53", false, false, false, "IPv4-compatible"},
		{"[64:ff9b::7f00:1]:53", false, false, false, "NAT64"},
		{"[64:ff9b::a9fe:a9fe]:80", false, false, false, "NAT64"},
		{"[64:ff9b:1::a00:1]:53", false, false, false, "local NAT64"},
		{"[2002:7f00:1::1]:53", false, false, false, "6to4"},
		{"[2001:0:4136:e378:8000:63bf:3fff:fdd2]:53", false, false, false, "Teredo"},
		{"[2a00:1450:4001:80b:0:5efe:a00:1]:53", false, false, false, "ISATAP"},
		{"[2a00:1450:4001:80b:200:5efe:a00:1]:53", false, false, false, "ISATAP"},
		// No port.
		{"1.1.1.1:0", false, false, false, "port 0"},
	}
	for _, tt := range tests {
		t.Run(tt.target, func(t *testing.T) {
			ap := netip.MustParseAddrPort(tt.target)
			for _, c := range []struct {
				name string
				p    *targetPolicy
				want bool
			}{{"default", def, tt.def}, {"lab", lab, tt.lab}, {"loopback", loop, tt.loop}} {
				err := c.p.check(ap)
				if (err == nil) != c.want {
					t.Errorf("%s policy: admitted=%v, want %v (%v)", c.name, err == nil, c.want, err)
				}
				if err != nil && !errors.As(err, new(*targetRefusal)) {
					t.Errorf("%s policy: error %T is no *targetRefusal", c.name, err)
				}
			}
			if err := def.check(ap); err != nil && tt.why != "" {
				why := tt.why
				if why == "own address" {
					why = "the relay's own address"
				}
				if !strings.Contains(err.Error(), why) {
					t.Errorf("default policy says %q, want it to mention %q", err, why)
				}
			}
		})
	}
}

// TestTargetPolicyOwnAddressesRefresh: a new interface address is refused
// once the policy learns it.
func TestTargetPolicyOwnAddressesRefresh(t *testing.T) {
	p := newTargetPolicy(nil, nil)
	ap := netip.MustParseAddrPort("9.9.9.9:53")
	if err := p.check(ap); err != nil {
		t.Fatal(err)
	}
	p.setOwn([]netip.Addr{ap.Addr()})
	if err := p.check(ap); err == nil {
		t.Fatal("own address admitted")
	}
}

func TestTargetPolicyCheckDoesNotAllocate(t *testing.T) {
	p := newTargetPolicy(labOverride, testOwn)
	ok := netip.MustParseAddrPort("[2a00:1450:4001:80b::200e]:443")
	lab := netip.MustParseAddrPort("198.51.100.2:443")
	if n := testing.AllocsPerRun(100, func() { p.check(ok); p.check(lab) }); n != 0 {
		t.Fatalf("%v allocations per admitted check", n)
	}
}

// referenceRefused is an independent statement of the policy for the
// fuzzer: what a target must not be, from the standard library's own
// classification and the registries' blocks.
func referenceRefused(ip netip.Addr) bool {
	if ip.Is4In6() || !ip.IsGlobalUnicast() || ip.IsPrivate() || ip.IsLoopback() || ip.IsLinkLocalUnicast() || ip.IsMulticast() {
		return true
	}
	for _, s := range specialPurpose4 {
		if s.prefix.Contains(ip) {
			return true
		}
	}
	for _, s := range specialPurpose6 {
		if s.prefix.Contains(ip) {
			return true
		}
	}
	return ip.Is6() && (!global6.Contains(ip) || embeddedIPv4(ip) != "")
}

func FuzzTargetPolicy(f *testing.F) {
	for _, s := range []string{"1.1.1.1", "127.0.0.1", "::ffff:127.0.0.1", "64:ff9b::a9fe:a9fe", "2002:a00:1::1", "2001::1",
		"203.0.113.9", "192.0.2.2", "fe80::1", "2606:4700::1111", "100.100.100.200", "::1", "255.255.255.255"} {
		ip := netip.MustParseAddr(s)
		b := ip.AsSlice()
		f.Add(b, uint16(443))
	}
	def := newTargetPolicy(nil, testOwn)
	lab := newTargetPolicy(labOverride, testOwn)
	f.Fuzz(func(t *testing.T, b []byte, port uint16) {
		ip, ok := netip.AddrFromSlice(b)
		if !ok {
			return
		}
		ap := netip.AddrPortFrom(ip, port)
		errDef, errLab := def.check(ap), lab.check(ap)
		if errDef == nil {
			if port == 0 || referenceRefused(ip) {
				t.Fatalf("default policy admits %v", ap)
			}
			for _, o := range testOwn {
				if o == ip {
					t.Fatalf("default policy admits own address %v", ap)
				}
			}
			if errLab != nil {
				t.Fatalf("the override refuses %v, which the default admits: %v", ap, errLab)
			}
		}
		if errLab == nil && errDef != nil {
			// Only the override's prefixes are admitted beyond the default.
			in := false
			for _, p := range labOverride {
				in = in || p.Contains(ip)
			}
			if !in || ip.IsLoopback() || ip.Is4In6() {
				t.Fatalf("the lab override admits %v outside its prefixes", ap)
			}
		}
	})
}

// BenchmarkTargetPolicyCheck: the check runs on every uncompressed
// datagram and every packet arriving at a registration (about 70 ns for an
// admitted global address here, against about 9 us of CPU per forwarded
// datagram).
func BenchmarkTargetPolicyCheck(b *testing.B) {
	p := newTargetPolicy(labOverride, testOwn)
	v4 := netip.MustParseAddrPort("93.184.216.34:443")
	v6 := netip.MustParseAddrPort("[2a00:1450:4001:80b::200e]:443")
	for b.Loop() {
		p.check(v4)
		p.check(v6)
	}
}
