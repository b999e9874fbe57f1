package candidate

import (
	"fmt"
	"net"
	"net/netip"
)

// HostOptions control host candidate gathering.
type HostOptions struct {
	// Loopback includes 127.0.0.0/8 and ::1: only for tests on one host.
	Loopback bool
	// InterfaceAddrs lists interface addresses; nil means
	// net.InterfaceAddrs. Injected by tests.
	InterfaceAddrs func() ([]net.Addr, error)
}

// HostAddrs returns the host candidates for a socket bound to all
// interfaces on port, IPv4 and IPv6, and the on-link prefixes they belong
// to (the LAN a same-network peer would be on). Link-local addresses are
// left out: the frames carry no zone, so the peer could not use them.
func HostAddrs(port uint16, opts HostOptions) ([]netip.AddrPort, []netip.Prefix, error) {
	list := opts.InterfaceAddrs
	if list == nil {
		list = net.InterfaceAddrs
	}
	addrs, err := list()
	if err != nil {
		return nil, nil, fmt.Errorf("list interface addresses: %w", err)
	}
	var cands []netip.AddrPort
	var prefixes []netip.Prefix
	for _, a := range addrs {
		ipnet, ok := a.(*net.IPNet)
		if !ok {
			continue
		}
		ip, ok := netip.AddrFromSlice(ipnet.IP)
		if !ok {
			continue
		}
		ip = ip.Unmap()
		if !wantHost(ip, opts.Loopback) {
			continue
		}
		ones, _ := ipnet.Mask.Size()
		cands = append(cands, netip.AddrPortFrom(ip, port))
		prefixes = append(prefixes, netip.PrefixFrom(ip, ones).Masked())
	}
	return cands, prefixes, nil
}

func wantHost(ip netip.Addr, loopback bool) bool {
	switch {
	case ip.IsLoopback():
		return loopback
	case ip.IsLinkLocalUnicast(), ip.IsMulticast(), ip.IsUnspecified():
		return false
	}
	return true
}
