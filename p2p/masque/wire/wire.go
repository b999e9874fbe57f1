// Package wire encodes and parses the MASQUE UDP proxying formats: the
// HTTP Datagram payloads of RFC 9298 and the COMPRESSION_* capsules and
// context payloads of draft-ietf-masque-connect-udp-listen-14. It does no
// I/O; every parser returns an error on bad input and never panics.
package wire

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/quic-go/quic-go/quicvarint"
)

// CapsuleType is a capsule type from the HTTP Capsule registry (RFC 9297
// section 3.2).
type CapsuleType uint64

// Capsule types of draft-ietf-masque-connect-udp-listen-14, section 5.
const (
	CapsuleCompressionAssign CapsuleType = 0x11
	CapsuleCompressionAck    CapsuleType = 0x12
	CapsuleCompressionClose  CapsuleType = 0x13
)

// IP Version values of a COMPRESSION_ASSIGN capsule and of an
// uncompressed datagram (draft section 5.1 and 6).
const (
	ipVersionNone = 0 // the uncompressed context: no address follows
	ipVersion4    = 4
	ipVersion6    = 6
)

// MaxUDPPayload is the largest UDP payload (65535 - 8 byte header); a
// datagram asking for more is malformed.
const MaxUDPPayload = 65527

// MaxCompressionCapsule bounds the value of a COMPRESSION_* capsule: an
// 8-byte varint, a version byte, 16 address bytes and a port.
const MaxCompressionCapsule = 8 + 1 + 16 + 2

// ErrMalformed reports bytes that do not follow the formats above.
var ErrMalformed = errors.New("masque: malformed")

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(format, args...))
}

// Assign is a COMPRESSION_ASSIGN capsule (draft section 5.1). A zero Target
// (IP Version 0) assigns the uncompressed context; otherwise the context
// stands for exactly that peer address and port.
type Assign struct {
	ContextID uint64
	Target    netip.AddrPort
}

// Uncompressed reports whether a assigns the uncompressed context.
func (a Assign) Uncompressed() bool { return !a.Target.IsValid() }

// ParseAssign parses a COMPRESSION_ASSIGN capsule value. Context ID 0 is
// reserved for RFC 9298's default context and is malformed here.
func ParseAssign(b []byte) (Assign, error) {
	id, n, err := quicvarint.Parse(b)
	if err != nil {
		return Assign{}, malformed("assign: context id: %v", err)
	}
	if id == 0 {
		return Assign{}, malformed("assign: context id 0")
	}
	b = b[n:]
	if len(b) < 1 {
		return Assign{}, malformed("assign: no ip version")
	}
	a := Assign{ContextID: id}
	ver := b[0]
	b = b[1:]
	if ver == ipVersionNone {
		if len(b) != 0 {
			return Assign{}, malformed("assign: %d bytes after ip version 0", len(b))
		}
		return a, nil
	}
	target, rest, err := parseAddrPort(ver, b)
	if err != nil {
		return Assign{}, malformed("assign: %v", err)
	}
	if len(rest) != 0 {
		return Assign{}, malformed("assign: %d trailing bytes", len(rest))
	}
	a.Target = target
	return a, nil
}

// Append appends the capsule value (not the type and length) of a.
func (a Assign) Append(b []byte) []byte {
	b = quicvarint.Append(b, a.ContextID)
	if a.Uncompressed() {
		return append(b, ipVersionNone)
	}
	return appendAddrPort(b, a.Target)
}

// ParseContextCapsule parses the value of COMPRESSION_ACK or
// COMPRESSION_CLOSE: exactly one non-zero Context ID (draft 5.2, 5.3).
func ParseContextCapsule(b []byte) (uint64, error) {
	id, n, err := quicvarint.Parse(b)
	if err != nil {
		return 0, malformed("context capsule: %v", err)
	}
	if id == 0 {
		return 0, malformed("context capsule: context id 0")
	}
	if n != len(b) {
		return 0, malformed("context capsule: %d trailing bytes", len(b)-n)
	}
	return id, nil
}

// AppendCapsule appends a whole capsule (RFC 9297 section 3.2): type,
// length, value.
func AppendCapsule(b []byte, t CapsuleType, value []byte) []byte {
	b = quicvarint.Append(b, uint64(t))
	b = quicvarint.Append(b, uint64(len(value)))
	return append(b, value...)
}

// ParseCapsule splits one capsule off the front of b, for tests and fuzzing;
// on a stream the http3 capsule parser does this.
func ParseCapsule(b []byte) (t CapsuleType, value []byte, n int, err error) {
	typ, tn, err := quicvarint.Parse(b)
	if err != nil {
		return 0, nil, 0, malformed("capsule type: %v", err)
	}
	l, ln, err := quicvarint.Parse(b[tn:])
	if err != nil {
		return 0, nil, 0, malformed("capsule length: %v", err)
	}
	start := tn + ln
	if l > uint64(len(b)-start) {
		return 0, nil, 0, malformed("capsule length %d exceeds %d bytes", l, len(b)-start)
	}
	end := start + int(l)
	return CapsuleType(typ), b[start:end], end, nil
}

// ParseDatagram splits an HTTP Datagram payload into its Context ID and the
// rest (RFC 9298 section 5).
func ParseDatagram(b []byte) (contextID uint64, rest []byte, err error) {
	id, n, err := quicvarint.Parse(b)
	if err != nil {
		return 0, nil, malformed("datagram context id: %v", err)
	}
	if len(b)-n > MaxUDPPayload+19 {
		return 0, nil, malformed("datagram of %d bytes", len(b))
	}
	return id, b[n:], nil
}

// ParseUncompressed parses the rest of a datagram in the uncompressed
// context: IP Version, IP Address, UDP Port, UDP Payload (draft section 6).
func ParseUncompressed(rest []byte) (netip.AddrPort, []byte, error) {
	if len(rest) < 1 {
		return netip.AddrPort{}, nil, malformed("uncompressed datagram: empty")
	}
	addr, payload, err := parseAddrPort(rest[0], rest[1:])
	if err != nil {
		return netip.AddrPort{}, nil, malformed("uncompressed datagram: %v", err)
	}
	if len(payload) > MaxUDPPayload {
		return netip.AddrPort{}, nil, malformed("uncompressed datagram: %d byte payload", len(payload))
	}
	return addr, payload, nil
}

// AppendUncompressed appends a datagram in the uncompressed context.
func AppendUncompressed(b []byte, contextID uint64, peer netip.AddrPort, payload []byte) []byte {
	b = quicvarint.Append(b, contextID)
	b = appendAddrPort(b, peer)
	return append(b, payload...)
}

// AppendCompressed appends a datagram in a compressed context: the Context
// ID then the UDP payload alone.
func AppendCompressed(b []byte, contextID uint64, payload []byte) []byte {
	b = quicvarint.Append(b, contextID)
	return append(b, payload...)
}

// UncompressedOverhead is the most an uncompressed datagram adds to a UDP
// payload besides the Context ID (an IPv6 address).
const UncompressedOverhead = 1 + 16 + 2

func parseAddrPort(ver byte, b []byte) (netip.AddrPort, []byte, error) {
	var n int
	switch ver {
	case ipVersion4:
		n = 4
	case ipVersion6:
		n = 16
	default:
		return netip.AddrPort{}, nil, fmt.Errorf("ip version %d", ver)
	}
	if len(b) < n+2 {
		return netip.AddrPort{}, nil, fmt.Errorf("%d bytes for an IPv%d address and port", len(b), ver)
	}
	// A v4-mapped IPv6 address is the IPv4 peer it maps: normalise, so
	// the same peer never gets two identities (and two contexts).
	addr, _ := netip.AddrFromSlice(b[:n])
	addr = addr.Unmap()
	port := uint16(b[n])<<8 | uint16(b[n+1])
	return netip.AddrPortFrom(addr, port), b[n+2:], nil
}

func appendAddrPort(b []byte, ap netip.AddrPort) []byte {
	addr := ap.Addr().Unmap()
	if addr.Is4() {
		b = append(b, ipVersion4)
	} else {
		b = append(b, ipVersion6)
	}
	b = append(b, addr.AsSlice()...)
	return append(b, byte(ap.Port()>>8), byte(ap.Port()))
}

// AppendContextID appends the value of a COMPRESSION_ACK or
// COMPRESSION_CLOSE capsule.
func AppendContextID(b []byte, id uint64) []byte { return quicvarint.Append(b, id) }
