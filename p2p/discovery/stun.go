package discovery

// STUN Binding (RFC 8489) client helpers: a viewer asks a second server
// (the relay's QUIC port answers Binding requests, docs/relay.md "Address
// observation") which address its socket maps to, and compares that with
// the address the camera's registration port saw, to learn the mapping
// behaviour of its NAT (RFC 5780 §4.3). Encoding and decoding are pion's;
// what is here is the policy of what to accept.

import (
	"github.com/camagent/camagent/p2p/natwire"

	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/pion/stun/v3"
)

// stunHeaderLen is the fixed STUN header: type, length, magic cookie,
// transaction ID (RFC 8489 §5).
const stunHeaderLen = 20

// ErrNotBindingResponse is wrapped by every error of ParseBindingResponse:
// the packet is not the Binding success response that was asked for.
var ErrNotBindingResponse = errors.New("not a STUN Binding success response")

// NewBindingRequest returns a Binding request (RFC 8489 §6.1) with a fresh
// random transaction ID, and that ID. It carries FINGERPRINT (RFC 8489
// §14.7) because it is sent on a socket that also carries QUIC and
// camagent's path packets: the relay echoes FINGERPRINT in its answer,
// which lets the receiver tell a STUN response from a stray packet that
// happens to contain the magic cookie. 28 bytes.
func NewBindingRequest() (b []byte, tx [12]byte, err error) {
	m, err := stun.Build(stun.TransactionID, stun.BindingRequest, stun.Fingerprint)
	if err != nil {
		return nil, tx, fmt.Errorf("stun: binding request: %w", err)
	}
	return m.Raw, m.TransactionID, nil
}

// IsSTUN reports whether b looks like a STUN message: at least a header,
// the first two bits zero and the magic cookie at bytes 4..8 (RFC 8489
// §5). That is how a STUN packet is told from QUIC (fixed bit 0x40 set,
// RFC 9000 §17) and from camagent's 13-byte path packets ("\x00cam..."),
// which share a socket with it (RFC 7983 §7, RFC 9443 §3: STUN is first
// byte 0..3). It does not decode b.
func IsSTUN(b []byte) bool {
	return len(b) >= stunHeaderLen && b[0]&0xC0 == 0 && stun.IsMessage(b)
}

// ParseBindingResponse returns the mapped address of a Binding success
// response (RFC 8489 §6.3.3) to the request with transaction ID tx:
// XOR-MAPPED-ADDRESS, or MAPPED-ADDRESS from a RFC 3489 server that has
// no XOR form (RFC 8489 §14.1); IPv4-mapped IPv6 addresses are unmapped.
// Any other packet, including an error response, gives an error wrapping
// ErrNotBindingResponse.
func ParseBindingResponse(b []byte, tx [12]byte) (netip.AddrPort, error) {
	if !IsSTUN(b) {
		return netip.AddrPort{}, fmt.Errorf("%w: no STUN header", ErrNotBindingResponse)
	}
	// One message per UDP datagram, and every attribute padded to 4
	// bytes, so the length field says exactly what is left (RFC 8489 §5).
	// pion tolerates trailing bytes; a response with any is not trusted.
	if n := int(binary.BigEndian.Uint16(b[2:4])); n != len(b)-stunHeaderLen || n%4 != 0 {
		return netip.AddrPort{}, fmt.Errorf("%w: length field %d for %d bytes", ErrNotBindingResponse, n, len(b))
	}
	var m stun.Message
	if err := stun.Decode(b, &m); err != nil {
		return netip.AddrPort{}, fmt.Errorf("%w: %v", ErrNotBindingResponse, err)
	}
	if m.TransactionID != tx {
		// Late answer to an earlier request, or someone guessing.
		return netip.AddrPort{}, fmt.Errorf("%w: transaction ID %x, want %x", ErrNotBindingResponse, m.TransactionID, tx)
	}
	if m.Type != stun.BindingSuccess {
		if m.Type == stun.BindingError {
			var ec stun.ErrorCodeAttribute
			if ec.GetFrom(&m) == nil {
				return netip.AddrPort{}, fmt.Errorf("%w: error response %d %q", ErrNotBindingResponse, ec.Code, ec.Reason)
			}
		}
		return netip.AddrPort{}, fmt.Errorf("%w: message type %v", ErrNotBindingResponse, m.Type)
	}
	if m.Contains(stun.AttrFingerprint) {
		// FINGERPRINT MUST be last (RFC 8489 §14.7); pion's Check assumes so.
		if last := m.Attributes[len(m.Attributes)-1].Type; last != stun.AttrFingerprint {
			return netip.AddrPort{}, fmt.Errorf("%w: FINGERPRINT is not the last attribute", ErrNotBindingResponse)
		}
		if err := stun.Fingerprint.Check(&m); err != nil {
			return netip.AddrPort{}, fmt.Errorf("%w: FINGERPRINT: %v", ErrNotBindingResponse, err)
		}
	}
	a, err := mappedAddress(&m)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("%w: %v", ErrNotBindingResponse, err)
	}
	return a, nil
}

// mappedAddress reads XOR-MAPPED-ADDRESS, or failing that MAPPED-ADDRESS.
// pion decodes a value shorter than its family's address by zero-filling
// the rest, so the value length is checked against the decoded family:
// 4 bytes of family and port, then 4 (IPv4) or 16 (IPv6) (RFC 8489 §14.1,
// §14.2).
func mappedAddress(m *stun.Message) (netip.AddrPort, error) {
	var (
		ip   net.IP
		port int
		attr = stun.AttrXORMappedAddress
	)
	var xa stun.XORMappedAddress
	err := xa.GetFrom(m)
	if errors.Is(err, stun.ErrAttributeNotFound) {
		attr = stun.AttrMappedAddress
		var ma stun.MappedAddress
		err = ma.GetFrom(m)
		if errors.Is(err, stun.ErrAttributeNotFound) {
			return netip.AddrPort{}, errors.New("no XOR-MAPPED-ADDRESS or MAPPED-ADDRESS")
		}
		ip, port = ma.IP, ma.Port
	} else {
		ip, port = xa.IP, xa.Port
	}
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("%v: %v", attr, err)
	}
	if v, _ := m.Get(attr); len(v) != 4+len(ip) {
		return netip.AddrPort{}, fmt.Errorf("%v: %d bytes for a %d-byte address", attr, len(v), len(ip))
	}
	addr, ok := netip.AddrFromSlice(ip)
	if !ok {
		return netip.AddrPort{}, fmt.Errorf("%v: bad address %v", attr, ip)
	}
	ap := netip.AddrPortFrom(addr.Unmap(), uint16(port))
	if !validObservation(ap) {
		return netip.AddrPort{}, fmt.Errorf("%v: %v is not a usable address", attr, ap)
	}
	return ap, nil
}

// validObservation: a mapped address must name a reachable endpoint; an
// unspecified address or port 0 is a broken or lying server.
func validObservation(a netip.AddrPort) bool {
	return a.IsValid() && !a.Addr().IsUnspecified() && a.Port() != 0
}

// CompareMappings classifies two observations of the same local socket
// made by two different destinations (the relay's QUIC port and the
// camera's registration port, say): RFC 5780 §4.3 test I against test II,
// with the destinations differing in address or port or both. Two
// destinations do not tell address-dependent from address-and-port-
// dependent; both are MappingDependent, which is all port prediction
// needs to know.
func CompareMappings(a, b netip.AddrPort) natwire.Mapping {
	a = netip.AddrPortFrom(a.Addr().Unmap(), a.Port())
	b = netip.AddrPortFrom(b.Addr().Unmap(), b.Port())
	if !validObservation(a) || !validObservation(b) {
		return natwire.MappingUnknown
	}
	if a.Addr().Is4() != b.Addr().Is4() {
		// An IPv4 and an IPv6 observation went out by different routes
		// (and through different NATs, if any): they say nothing about
		// one mapping.
		return natwire.MappingUnknown
	}
	switch {
	case a == b:
		return natwire.MappingIndependent
	case a.Addr() == b.Addr():
		return natwire.MappingDependent
	default:
		// Same socket, different public IP: a NAT with an address pool
		// that is not "paired" (RFC 4787 §4.1, REQ-2). For the peer it is
		// as unpredictable as a new port, since it must guess the address
		// as well: endpoint-dependent.
		return natwire.MappingDependent
	}
}
