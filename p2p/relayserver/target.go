package relayserver

import (
	"fmt"
	"net"
	"net/netip"
	"sync/atomic"
)

// The relay sends UDP to addresses its clients name: the target of plain
// CONNECT-UDP, the address in every uncompressed datagram of a bind
// registration, the peer of every compression context. Without a policy it
// is a UDP proxy into the network it runs in: its own loopback services,
// the provider's metadata endpoint, private networks behind it. One policy
// (targetPolicy.check) decides every one of those sends, and a packet that
// arrives at a registration from an address the relay would not send to is
// dropped too (no reply could go back, and no context is opened for it).
//
// A target is admitted when it is global unicast (IPv4 outside every block
// below; IPv6 inside 2000::/3, the only space IANA allocates global unicast
// from, RFC 4291 section 2.4, and outside every block below), is not one of
// the relay's own addresses, and does not embed an IPv4 address (which
// would reach IPv4 space through a translator: NAT64, 6to4, Teredo,
// IPv4-mapped or -compatible, ISATAP). The blocks are the IANA IPv4 and
// IPv6 Special-Purpose Address Registries (RFC 6890 and the RFCs that
// added entries since), as of 2026, plus multicast and the deprecated
// site-local space.
//
// The operator override (Config.AllowTargets, --allow-target) admits the
// listed prefixes past the special-purpose check: the test relays on
// loopback and the labs in documentation ranges (203.0.113.0/24,
// 198.51.100.0/24) need it. It is narrow on purpose: it never admits
// embedded IPv4, and it admits one of the relay's own addresses only when
// that address is loopback (a relay whose clients are on its own host can
// be reached on loopback and nowhere else). So a lab relay allowed
// 203.0.113.0/24 still refuses 203.0.113.1 when that is its own address,
// and 127.0.0.1 whatever documentation ranges it was given.

// specialPurpose is one registry entry (or a block the relay also refuses).
type specialPurpose struct {
	prefix netip.Prefix
	name   string
}

func sp(prefix, name string) specialPurpose {
	return specialPurpose{netip.MustParsePrefix(prefix), name}
}

// specialPurpose4 is the IANA IPv4 Special-Purpose Address Registry, plus
// multicast (RFC 5771), which the registry lists elsewhere.
var specialPurpose4 = []specialPurpose{
	sp("0.0.0.0/8", `"this network" (RFC 791)`),
	sp("10.0.0.0/8", "private-use (RFC 1918)"),
	sp("100.64.0.0/10", "shared address space (RFC 6598)"),
	sp("127.0.0.0/8", "loopback (RFC 1122)"),
	sp("169.254.0.0/16", "link local (RFC 3927)"),
	sp("172.16.0.0/12", "private-use (RFC 1918)"),
	sp("192.0.0.0/24", "IETF protocol assignments (RFC 6890)"),
	sp("192.0.2.0/24", "documentation TEST-NET-1 (RFC 5737)"),
	sp("192.31.196.0/24", "AS112-v4 (RFC 7535)"),
	sp("192.52.193.0/24", "AMT (RFC 7450)"),
	sp("192.88.99.0/24", "deprecated 6to4 relay anycast (RFC 7526)"),
	sp("192.168.0.0/16", "private-use (RFC 1918)"),
	sp("192.175.48.0/24", "direct delegation AS112 service (RFC 7534)"),
	sp("198.18.0.0/15", "benchmarking (RFC 2544)"),
	sp("198.51.100.0/24", "documentation TEST-NET-2 (RFC 5737)"),
	sp("203.0.113.0/24", "documentation TEST-NET-3 (RFC 5737)"),
	sp("224.0.0.0/4", "multicast (RFC 5771)"),
	sp("240.0.0.0/4", "reserved (RFC 1112)"),
	sp("255.255.255.255/32", "limited broadcast (RFC 919)"),
}

// specialPurpose6 is the IANA IPv6 Special-Purpose Address Registry
// entries inside 2000::/3 (everything outside it is refused already), plus
// the embedded-IPv4 blocks, which embeddedIPv4 names more precisely.
var specialPurpose6 = []specialPurpose{
	sp("2001::/23", "IETF protocol assignments (RFC 2928): Teredo, PCP/TURN/DNS-SD anycast, benchmarking, AMT, AS112, ORCHID, DET"),
	sp("2001:db8::/32", "documentation (RFC 3849)"),
	sp("2002::/16", "6to4 (RFC 3056)"),
	sp("2620:4f:8000::/48", "direct delegation AS112 service (RFC 7534)"),
	sp("3fff::/20", "documentation (RFC 9637)"),
}

// notGlobal6 names the IPv6 blocks outside 2000::/3, for the refusal
// message only.
var notGlobal6 = []specialPurpose{
	sp("::/128", "unspecified (RFC 4291)"),
	sp("::1/128", "loopback (RFC 4291)"),
	sp("64:ff9b::/96", "IPv4-IPv6 translation (RFC 6052)"),
	sp("64:ff9b:1::/48", "local-use IPv4/IPv6 translation (RFC 8215)"),
	sp("100::/64", "discard-only (RFC 6666)"),
	sp("100:0:0:1::/64", "dummy IPv6 prefix (RFC 9780)"),
	sp("5f00::/16", "SRv6 SIDs (RFC 9602)"),
	sp("fc00::/7", "unique local (RFC 4193)"),
	sp("fe80::/10", "link-local unicast (RFC 4291)"),
	sp("fec0::/10", "deprecated site-local (RFC 3879)"),
	sp("ff00::/8", "multicast (RFC 4291)"),
}

var global6 = netip.MustParsePrefix("2000::/3")

// targetRefusal says why a target was refused. Its Error text goes to the
// relay's log and the Proxy-Status details of a refused request.
type targetRefusal struct {
	target netip.Addr
	reason string
}

func (e *targetRefusal) Error() string {
	return fmt.Sprintf("target %s refused: %s", e.target, e.reason)
}

// targetPolicy is the one place that decides where the relay may send.
// It is safe for concurrent use; check allocates only when it refuses.
type targetPolicy struct {
	allow []netip.Prefix
	own   atomic.Pointer[map[netip.Addr]struct{}]
}

func newTargetPolicy(allow []netip.Prefix, own []netip.Addr) *targetPolicy {
	p := &targetPolicy{}
	for _, a := range allow {
		p.allow = append(p.allow, a.Masked())
	}
	p.setOwn(own)
	return p
}

// setOwn replaces the relay's own addresses (they change when interfaces
// do; the server refreshes them).
func (p *targetPolicy) setOwn(own []netip.Addr) {
	m := make(map[netip.Addr]struct{}, len(own))
	for _, a := range own {
		m[a.Unmap().WithZone("")] = struct{}{}
	}
	p.own.Store(&m)
}

// check returns nil if the relay may send to ap, else a *targetRefusal.
func (p *targetPolicy) check(ap netip.AddrPort) error {
	ip := ap.Addr().WithZone("")
	if !ip.IsValid() {
		return &targetRefusal{ip, "not an IP address"}
	}
	if ap.Port() == 0 {
		return &targetRefusal{ip, "port 0"}
	}
	if ip.Is6() {
		if why := embeddedIPv4(ip); why != "" {
			return &targetRefusal{ip, "IPv4 embedded in IPv6 (" + why + ")"}
		}
	}
	_, own := (*p.own.Load())[ip]
	for _, a := range p.allow {
		if a.Contains(ip) {
			if own && !ip.IsLoopback() {
				return &targetRefusal{ip, "the relay's own address"}
			}
			return nil
		}
	}
	if own {
		return &targetRefusal{ip, "the relay's own address"}
	}
	if why := specialPurposeOf(ip); why != "" {
		return &targetRefusal{ip, why}
	}
	return nil
}

// specialPurposeOf names the block that makes ip no global unicast target,
// or returns "".
func specialPurposeOf(ip netip.Addr) string {
	if ip.Is4() {
		for _, s := range specialPurpose4 {
			if s.prefix.Contains(ip) {
				return "special-purpose " + s.prefix.String() + ", " + s.name
			}
		}
		return ""
	}
	if !global6.Contains(ip) {
		for _, s := range notGlobal6 {
			if s.prefix.Contains(ip) {
				return "special-purpose " + s.prefix.String() + ", " + s.name
			}
		}
		return "outside global unicast 2000::/3 (RFC 4291)"
	}
	for _, s := range specialPurpose6 {
		if s.prefix.Contains(ip) {
			return "special-purpose " + s.prefix.String() + ", " + s.name
		}
	}
	return ""
}

// embeddedIPv4 names the way an IPv6 address carries an IPv4 address that
// a translator or tunnel on the relay's path could deliver to, or "".
func embeddedIPv4(ip netip.Addr) string {
	b := ip.As16()
	zero := func(from, to int) bool {
		for _, x := range b[from:to] {
			if x != 0 {
				return false
			}
		}
		return true
	}
	switch {
	case ip.Is4In6():
		return "IPv4-mapped ::ffff:0:0/96"
	case zero(0, 12) && !zero(12, 16) && ip != netip.IPv6Loopback():
		return "IPv4-compatible ::/96"
	case b[0] == 0x00 && b[1] == 0x64 && b[2] == 0xff && b[3] == 0x9b && zero(4, 12):
		return "NAT64 64:ff9b::/96"
	case b[0] == 0x00 && b[1] == 0x64 && b[2] == 0xff && b[3] == 0x9b && b[4] == 0 && b[5] == 1:
		return "local NAT64 64:ff9b:1::/48"
	case b[0] == 0x20 && b[1] == 0x02:
		return "6to4 2002::/16"
	case b[0] == 0x20 && b[1] == 0x01 && b[2] == 0 && b[3] == 0:
		return "Teredo 2001::/32"
	case (b[8]&^0x02) == 0 && b[9] == 0 && b[10] == 0x5e && b[11] == 0xfe:
		return "ISATAP interface identifier ::5efe:0:0/96 (RFC 5214)"
	}
	return ""
}

// interfaceAddrs lists the host's addresses; a variable for tests.
var interfaceAddrs = net.InterfaceAddrs

// ownAddrs is every address of the relay's host plus its public address:
// a datagram to any of them reaches the relay's own services.
func ownAddrs(public netip.Addr) ([]netip.Addr, error) {
	out := []netip.Addr{public.Unmap()}
	addrs, err := interfaceAddrs()
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok {
			if ip, ok := netip.AddrFromSlice(n.IP); ok {
				out = append(out, ip.Unmap())
			}
		}
	}
	return out, err
}
