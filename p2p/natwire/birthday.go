package natwire

import (
	"fmt"
	"net/netip"

	"github.com/quic-go/quic-go/quicvarint"
)

// camagent's extension for NAT pairs the drafts leave on the relay: one side
// maps endpoint-dependently ("symmetric", a new public port per
// destination), the other endpoint-independently but filters by address
// and port (a home router). draft-seemann-quic-nat-traversal-02 punches
// toward advertised addresses only, and the symmetric side's address toward
// the peer is never advertised: nobody knows it. Port prediction by the
// birthday paradox finds one anyway (docs/nat-traversal.md §3.4): the
// symmetric side opens many sockets toward the peer's known address (many
// random mappings), the other side sends to many random ports of the
// symmetric side's public IP, and with 256 mappings and 2048 guesses out of
// 64512 ports a guess hits a mapping with probability 1-e^-8.
//
// Two frames carry it, in control messages of type TypeCamagentNAT (0x41,
// in the NAT traversal range of docs/protocol.md §3), so a peer that does
// not know them skips them and stays on the relay for these pairs. The
// codepoints are camagent's own (0xca4dxx), outside the drafts' ranges.
const (
	// TypeNATBehavior is NAT_BEHAVIOR: the sender's mapping behaviour.
	TypeNATBehavior FrameType = 0xca4d00
	// TypePunchManyV4 and TypePunchManyV6 are PUNCH_MANY.
	TypePunchManyV4 FrameType = 0xca4d02
	TypePunchManyV6 FrameType = 0xca4d03
)

// Mapping is a NAT's mapping behaviour (RFC 4787 §4.1) as the sender
// measured it for the socket the connection uses.
type Mapping uint8

// Mapping behaviours.
const (
	MappingUnknown     Mapping = 0 // not measured (yet), or no answer
	MappingIndependent Mapping = 1 // endpoint-independent: one public port for every destination
	MappingDependent   Mapping = 2 // address(-and-port)-dependent: a new public port per destination
)

func (m Mapping) String() string {
	switch m {
	case MappingIndependent:
		return "endpoint-independent"
	case MappingDependent:
		return "endpoint-dependent"
	}
	return "unknown"
}

// NATBehavior tells the peer how the sender's NAT maps (camera -> viewer):
// the viewer decides from both sides' behaviour whether a PUNCH_MANY can
// help. Frame: Type (i) = 0xca4d00, Mapping (8). The latest one counts.
type NATBehavior struct {
	Mapping Mapping
}

// Spray modes of PUNCH_MANY: what the receiver (the camera) is asked to
// do.
type SprayMode uint8

const (
	// SprayFanOut: the camera maps endpoint-dependently; it sends one packet
	// toward Addr from each of many fresh sockets, while the viewer sends
	// to many ports of the camera's public IP.
	SprayFanOut SprayMode = 1
	// SprayPorts: the viewer maps endpoint-dependently and opens many
	// sockets toward the camera; the camera sends from its QUIC socket to
	// many random ports of Addr's IP (Addr's port is ignored).
	SprayPorts SprayMode = 2
)

func (m SprayMode) String() string {
	switch m {
	case SprayFanOut:
		return "fan-out"
	case SprayPorts:
		return "ports"
	}
	return fmt.Sprintf("mode-%d", uint8(m))
}

// PunchMany asks the camera for the birthday half of round Round (viewer
// -> camera), paired like PUNCH_ME_NOW with an advertised candidate.
// Frame: Type (i) = 0xca4d02 | 0xca4d03, Round (i), Paired With (i),
// Mode (8), Address (32|128), Port (16).
type PunchMany struct {
	Round      uint64
	PairedWith uint64
	Mode       SprayMode
	Addr       netip.AddrPort
}

// Type returns TypeNATBehavior.
func (*NATBehavior) Type() FrameType { return TypeNATBehavior }

// Type returns TypePunchManyV4 or TypePunchManyV6.
func (f *PunchMany) Type() FrameType { return familyType(f.Addr, TypePunchManyV4) }

// Append encodes the frame.
func (f *NATBehavior) Append(b []byte) ([]byte, error) {
	if f.Mapping > MappingDependent {
		return b, fmt.Errorf("encode %v: mapping %d", f.Type(), f.Mapping)
	}
	b = quicvarint.Append(b, uint64(f.Type()))
	return append(b, byte(f.Mapping)), nil
}

// Append encodes the frame.
func (f *PunchMany) Append(b []byte) ([]byte, error) {
	if f.Mode != SprayFanOut && f.Mode != SprayPorts {
		return b, fmt.Errorf("encode %v: mode %d", f.Type(), f.Mode)
	}
	return appendFrameWith(b, f.Type(), []uint64{f.Round, f.PairedWith}, []byte{byte(f.Mode)}, f.Addr)
}

func parseNATBehavior(d *decoder) Frame {
	m := Mapping(d.byte())
	if d.err == nil && m > MappingDependent {
		d.err = fmt.Errorf("mapping %d", m)
	}
	return &NATBehavior{Mapping: m}
}

func parsePunchMany(d *decoder, v6 bool) Frame {
	round := d.varint()
	paired := d.varint()
	mode := SprayMode(d.byte())
	if d.err == nil && mode != SprayFanOut && mode != SprayPorts {
		d.err = fmt.Errorf("spray mode %d", mode)
	}
	return &PunchMany{Round: round, PairedWith: paired, Mode: mode, Addr: d.addrPort(v6)}
}

func (d *decoder) byte() byte {
	if d.err != nil {
		return 0
	}
	if len(d.b) < 1 {
		d.err = errTruncated
		return 0
	}
	v := d.b[0]
	d.b = d.b[1:]
	return v
}
