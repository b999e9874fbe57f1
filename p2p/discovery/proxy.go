package discovery

import (
	"fmt"
	"net/netip"
	"strings"
)

// maxProxyAddrs bounds the list a relay may return.
const maxProxyAddrs = 8

// ParseProxyPublicAddress parses the Proxy-Public-Address response header
// of draft-ietf-masque-connect-udp-listen (a structured-field List of
// Strings such as "192.0.2.45:54321", "[2001:db8::1]:54321") into the
// addresses the relay receives on for us. Parameters on list members are
// not defined there and are refused rather than misread.
func ParseProxyPublicAddress(v string) ([]netip.AddrPort, error) {
	var out []netip.AddrPort
	rest := strings.TrimLeft(v, " ")
	for rest != "" {
		if len(out) == maxProxyAddrs {
			return nil, fmt.Errorf("Proxy-Public-Address: more than %d addresses", maxProxyAddrs)
		}
		if rest[0] != '"' {
			return nil, fmt.Errorf("Proxy-Public-Address: want a string at %q", rest)
		}
		end := strings.IndexByte(rest[1:], '"')
		if end < 0 {
			return nil, fmt.Errorf("Proxy-Public-Address: unterminated string")
		}
		s := rest[1 : 1+end]
		if strings.ContainsAny(s, "\\") {
			return nil, fmt.Errorf("Proxy-Public-Address: escapes are not valid in an address")
		}
		ap, err := netip.ParseAddrPort(s)
		if err != nil {
			return nil, fmt.Errorf("Proxy-Public-Address: %w", err)
		}
		out = append(out, netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()))
		rest = strings.TrimLeft(rest[2+end:], " \t")
		if rest == "" {
			break
		}
		if rest[0] != ',' {
			return nil, fmt.Errorf("Proxy-Public-Address: want ',' at %q", rest)
		}
		rest = strings.TrimLeft(rest[1:], " \t")
		if rest == "" {
			return nil, fmt.Errorf("Proxy-Public-Address: trailing comma")
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("Proxy-Public-Address: empty")
	}
	return out, nil
}
