// Package profile holds what the relay server (p2p/relayserver) and its
// clients (p2p/relayclient) must agree on beyond the capsule and datagram
// formats of p2p/masque/wire: header names, the URI paths, the format of
// Proxy-Public-Address, and the QUIC settings of relay connections. It is a
// leaf: it imports no other camagent package, so a client never pulls in the
// server.
package profile

import (
	"fmt"
	"net/http"
	"net/netip"
	"time"

	"github.com/dunglas/httpsfv"
	"github.com/quic-go/quic-go"
)

// MasquePrefix is the default URI template of RFC 9298 section 3:
// https://$PROXY/.well-known/masque/udp/{target_host}/{target_port}/
const MasquePrefix = "/.well-known/masque/udp/"

// LocatePrefix is the path under which a paired viewer looks up a camera's
// registration by its locator secret (docs/relay.md).
const LocatePrefix = "/.well-known/camagent/locate/"

// Header names of draft-ietf-masque-connect-udp-listen-14 section 4, and
// camagent's own.
const (
	HeaderBind          = "Connect-UDP-Bind"
	HeaderPublicAddress = "Proxy-Public-Address"
	// HeaderLocator, in a bind request, carries the locators under which
	// viewers find this registration: a comma-separated list of SHA-256
	// (hex) of locator secrets, at most MaxLocators (docs/relay.md). The
	// relay binds each to the registering client's key.
	HeaderLocator = "Camagent-Locator"
	// HeaderLocatorRefused, in a bind response, is how many of the
	// requested locators the relay refused because another key holds
	// them.
	HeaderLocatorRefused = "Camagent-Locator-Refused"
	// HeaderGate: ?1 in a bind request asks the relay to drop packets
	// to the public address from peers that have not located the
	// registration (docs/relay.md, "Not enumerable").
	HeaderGate = "Camagent-Gate"
	// HeaderObservedAddress, in a bind response, is the address the relay
	// sees the registering connection come from, in the format of
	// Proxy-Public-Address: for a camera that registers from its QUIC
	// socket, the public side of its NAT mapping, which it advertises as a
	// reflexive candidate (docs/nat-traversal.md §6). It plays the role of
	// OBSERVED_ADDRESS (draft-ietf-quic-address-discovery), which quic-go
	// cannot send.
	HeaderObservedAddress = "Camagent-Observed-Address"
)

// CapsuleLocators (camagent's own capsule type, camera to relay on a bind
// request stream) replaces the registration's set of locators: its value
// is the SHA-256 of each locator secret, 32 bytes each, at most
// MaxLocators. Relays that do not know it skip it (RFC 9297 section 3.2).
const CapsuleLocators uint64 = 0x2ca3c1

// MaxLocators bounds the locators of one registration.
const MaxLocators = 256

// QUICConfig is the transport configuration of relay connections, on both
// ends. Packets start large (1400 bytes, safe on 1500-byte links) so that a
// full 1280-byte QUIC packet of the inner, end-to-end connection fits in
// one HTTP Datagram from the start.
func QUICConfig() *quic.Config {
	return &quic.Config{
		EnableDatagrams:    true,
		InitialPacketSize:  1400,
		MaxIdleTimeout:     10 * time.Second,
		KeepAlivePeriod:    time.Second,
		MaxIncomingStreams: 64,
	}
}

// FormatPublicAddress renders the Proxy-Public-Address field: an sf-list
// of sf-strings, "ip:port" or "[ipv6]:port" (listen draft section 4.1).
func FormatPublicAddress(addrs ...netip.AddrPort) string {
	list := make(httpsfv.List, 0, len(addrs))
	for _, a := range addrs {
		list = append(list, httpsfv.NewItem(a.String()))
	}
	s, _ := httpsfv.Marshal(list) // strings of printable ASCII always marshal
	return s
}

// ParsePublicAddress parses Proxy-Public-Address.
func ParsePublicAddress(h http.Header) ([]netip.AddrPort, error) {
	return parseAddressList(h, HeaderPublicAddress)
}

// ParseObservedAddress parses Camagent-Observed-Address.
func ParseObservedAddress(h http.Header) ([]netip.AddrPort, error) {
	return parseAddressList(h, HeaderObservedAddress)
}

func parseAddressList(h http.Header, name string) ([]netip.AddrPort, error) {
	v := h.Values(name)
	if len(v) == 0 {
		return nil, fmt.Errorf("no %s", name)
	}
	list, err := httpsfv.UnmarshalList(v)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	var out []netip.AddrPort
	for _, m := range list {
		item, ok := m.(httpsfv.Item)
		if !ok {
			return nil, fmt.Errorf("%s: inner list", name)
		}
		s, ok := item.Value.(string)
		if !ok {
			return nil, fmt.Errorf("%s: member is not a string", name)
		}
		ap, err := netip.ParseAddrPort(s)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		out = append(out, ap)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: empty", name)
	}
	return out, nil
}
