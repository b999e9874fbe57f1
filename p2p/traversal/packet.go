package traversal

import (
	"bytes"
	"encoding/binary"
	"net/netip"
)

// Punch and keepalive packets travel on the QUIC socket but are not QUIC:
// their first byte has the fixed bit (0x40) clear, so quic-go hands them to
// Transport.ReadNonQUICPacket and pathmux to its non-QUIC handler
// (docs/nat-traversal.md §3.3). They are the same small size in both
// directions, so answering one amplifies nothing.
//
//	Packet { Zero (8) = 0, Magic (24) = "cam", Kind (8), Token (64) }
const packetLen = 13

// Packet kinds.
const (
	kindPunch         = 'p' // camera -> viewer, opens the camera's NAT toward the viewer
	kindKeepalive     = 'k' // viewer -> camera on a direct path
	kindKeepaliveEcho = 'K' // camera -> viewer, answers a keepalive
	// kindRelayKeepalive holds the viewer's NAT mapping toward the relay
	// while the connection is direct; the relay forwards it to the camera,
	// which ignores it.
	kindRelayKeepalive = 'r'
	// Port spraying (p2p/portspray, docs/nat-traversal.md §3.4).
	kindFan   = 'f' // from each socket of a fan-out, to the peer's known address
	kindGuess = 'g' // a spray's guess at one port of the peer's public IP
	// kindMappingProbe is the camera's probe of its own NAT: sent from its
	// QUIC socket to its public address at the relay, it comes back
	// through the registration from the mapping toward that address
	// (MappingProbe).
	kindMappingProbe = 'm'
)

var magic = []byte{0, 'c', 'a', 'm'}

func makePacket(kind byte, token uint64) []byte {
	b := make([]byte, packetLen)
	copy(b, magic)
	b[4] = kind
	binary.BigEndian.PutUint64(b[5:], token)
	return b
}

// parsePacket returns the kind and token of a punch or keepalive packet.
func parsePacket(b []byte) (kind byte, token uint64, ok bool) {
	if len(b) != packetLen || !bytes.Equal(b[:4], magic) {
		return 0, 0, false
	}
	return b[4], binary.BigEndian.Uint64(b[5:]), true
}

// KeepalivePacket is what a viewer sends on a quiet direct path; a camera's
// Responder echoes it.
func KeepalivePacket(token uint64) []byte { return makePacket(kindKeepalive, token) }

// MappingProbePacket is the camera's probe of its own NAT mapping.
func MappingProbePacket(token uint64) []byte { return makePacket(kindMappingProbe, token) }

// IsPathPacket reports whether b is a punch, keepalive or echo packet.
func IsPathPacket(b []byte) bool {
	_, _, ok := parsePacket(b)
	return ok
}

func unmap(a netip.AddrPort) netip.AddrPort {
	return netip.AddrPortFrom(a.Addr().Unmap(), a.Port())
}
