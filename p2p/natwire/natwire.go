// Package natwire is the wire format of camagent's address discovery and NAT
// traversal messages: the frames of draft-ietf-quic-address-discovery-00
// (OBSERVED_ADDRESS) and draft-seemann-quic-nat-traversal-02 (ADD_ADDRESS,
// PUNCH_ME_NOW, REMOVE_ADDRESS), byte for byte with their real frame type
// codepoints.
//
// quic-go has no hook for extension frames (an unknown frame type closes the
// connection), so these frames travel as the payload of camagent/1 control
// messages (docs/nat-traversal.md §2): one frame per message, message type
// TypeAddressDiscovery (0x20) or TypeNATTraversal (0x40). Code above this
// package sees only Frame values and a Channel, so native QUIC frames can
// replace the carrier later without touching it.
//
// Parsers bounds-check everything and return errors wrapping ErrMalformed;
// they never panic.
package natwire

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/quic-go/quic-go/quicvarint"
)

// FrameType is a QUIC frame type codepoint.
type FrameType uint64

// Frame type codepoints. The low bit of each address-carrying pair selects
// the address family: even IPv4, odd IPv6.
const (
	// draft-ietf-quic-address-discovery-00, section "OBSERVED_ADDRESS Frame".
	TypeObservedAddressV4 FrameType = 0x9f81a6
	TypeObservedAddressV6 FrameType = 0x9f81a7
	// draft-seemann-quic-nat-traversal-02, sections "ADD_ADDRESS Frame",
	// "PUNCH_ME_NOW Frame" and "REMOVE_ADDRESS Frame".
	TypeAddAddressV4  FrameType = 0x3d7e90
	TypeAddAddressV6  FrameType = 0x3d7e91
	TypePunchMeNowV4  FrameType = 0x3d7e92
	TypePunchMeNowV6  FrameType = 0x3d7e93
	TypeRemoveAddress FrameType = 0x3d7e94
)

// Transport parameters that negotiate the extensions natively. They are not
// sent (quic-go cannot), but are listed so the carrier's negotiation
// (docs/nat-traversal.md §2.2) maps onto them one to one.
const (
	// ParamAddressDiscovery is address_discovery (draft-ietf-quic-address-discovery-00,
	// section "Negotiating Extension Use"): 0 provide, 1 receive, 2 both.
	ParamAddressDiscovery uint64 = 0x9f81a176
	// ParamNATTraversal is nat_traversal (draft-seemann-quic-nat-traversal-02,
	// section "Negotiating Extension Use").
	ParamNATTraversal uint64 = 0x3d7e9f0bca12fea6
)

func (t FrameType) String() string {
	switch t {
	case TypeObservedAddressV4, TypeObservedAddressV6:
		return "OBSERVED_ADDRESS"
	case TypeAddAddressV4, TypeAddAddressV6:
		return "ADD_ADDRESS"
	case TypePunchMeNowV4, TypePunchMeNowV6:
		return "PUNCH_ME_NOW"
	case TypeRemoveAddress:
		return "REMOVE_ADDRESS"
	case TypeNATBehavior:
		return "NAT_BEHAVIOR"
	case TypePunchManyV4, TypePunchManyV6:
		return "PUNCH_MANY"
	}
	return fmt.Sprintf("FRAME_%#x", uint64(t))
}

var (
	// ErrMalformed is wrapped by every parse error.
	ErrMalformed = errors.New("malformed NAT traversal frame")
	// ErrUnknownFrame is returned for a frame type this package does not
	// define. It wraps ErrMalformed: the carrier never holds other frames.
	ErrUnknownFrame = fmt.Errorf("%w: unknown frame type", ErrMalformed)
)

// Frame is one address discovery or NAT traversal frame. The concrete
// types are *ObservedAddress, *AddAddress, *PunchMeNow, *RemoveAddress and
// camagent's *NATBehavior and *PunchMany (birthday.go).
type Frame interface {
	// Type returns the frame type as it goes on the wire, which depends on
	// the address family for address-carrying frames.
	Type() FrameType
	// Append appends the whole frame, type included.
	Append(b []byte) ([]byte, error)
}

// ObservedAddress tells the peer the source address its packets arrived
// from on the path the frame is sent on (draft-ietf-quic-address-discovery-00,
// section "OBSERVED_ADDRESS Frame"). A receiver keeps only the report with
// the highest sequence number.
type ObservedAddress struct {
	Seq  uint64
	Addr netip.AddrPort
}

// AddAddress advertises a server address candidate
// (draft-seemann-quic-nat-traversal-02, section "ADD_ADDRESS Frame").
type AddAddress struct {
	Seq  uint64
	Addr netip.AddrPort
}

// PunchMeNow asks the server to send packets toward Addr, the client's
// side of the pair formed with the server candidate PairedWith
// (draft-seemann-quic-nat-traversal-02, section "PUNCH_ME_NOW Frame"). A
// higher Round cancels punching for earlier rounds.
type PunchMeNow struct {
	Round      uint64
	PairedWith uint64
	Addr       netip.AddrPort
}

// RemoveAddress withdraws the candidate advertised with Seq
// (draft-seemann-quic-nat-traversal-02, section "REMOVE_ADDRESS Frame").
type RemoveAddress struct {
	Seq uint64
}

// Type returns TypeObservedAddressV4 or TypeObservedAddressV6.
func (f *ObservedAddress) Type() FrameType {
	return familyType(f.Addr, TypeObservedAddressV4)
}

// Type returns TypeAddAddressV4 or TypeAddAddressV6.
func (f *AddAddress) Type() FrameType { return familyType(f.Addr, TypeAddAddressV4) }

// Type returns TypePunchMeNowV4 or TypePunchMeNowV6.
func (f *PunchMeNow) Type() FrameType { return familyType(f.Addr, TypePunchMeNowV4) }

// Type returns TypeRemoveAddress.
func (*RemoveAddress) Type() FrameType { return TypeRemoveAddress }

// familyType picks the odd (IPv6) codepoint of a pair for an IPv6 address.
// IPv4-mapped IPv6 addresses are sent as IPv4, which is what they are.
func familyType(a netip.AddrPort, v4 FrameType) FrameType {
	if a.Addr().Unmap().Is4() {
		return v4
	}
	return v4 | 1
}

// Append encodes the frame: Type (i), Sequence Number (i), address, port.
func (f *ObservedAddress) Append(b []byte) ([]byte, error) {
	return appendFrame(b, f.Type(), []uint64{f.Seq}, f.Addr)
}

// Append encodes the frame: Type (i), Sequence Number (i), address, port.
func (f *AddAddress) Append(b []byte) ([]byte, error) {
	return appendFrame(b, f.Type(), []uint64{f.Seq}, f.Addr)
}

// Append encodes the frame: Type (i), Round (i), Paired With Sequence
// Number (i), address, port.
func (f *PunchMeNow) Append(b []byte) ([]byte, error) {
	return appendFrame(b, f.Type(), []uint64{f.Round, f.PairedWith}, f.Addr)
}

// Append encodes the frame: Type (i), Sequence Number (i).
func (f *RemoveAddress) Append(b []byte) ([]byte, error) {
	if f.Seq > quicvarint.Max {
		return b, fmt.Errorf("encode %v: sequence %d does not fit a varint", f.Type(), f.Seq)
	}
	b = quicvarint.Append(b, uint64(f.Type()))
	return quicvarint.Append(b, f.Seq), nil
}

func appendFrame(b []byte, t FrameType, ints []uint64, a netip.AddrPort) ([]byte, error) {
	return appendFrameWith(b, t, ints, nil, a)
}

// appendFrameWith encodes Type (i), the varints, the fixed bytes, then the
// address and port.
func appendFrameWith(b []byte, t FrameType, ints []uint64, fixed []byte, a netip.AddrPort) ([]byte, error) {
	if !a.IsValid() || !a.Addr().IsValid() {
		return b, fmt.Errorf("encode %v: invalid address %v", t, a)
	}
	if a.Addr().Zone() != "" {
		// The frames have no zone field; a scoped address would arrive
		// meaning a different interface on the peer.
		return b, fmt.Errorf("encode %v: address %v has a zone", t, a)
	}
	for _, v := range ints {
		if v > quicvarint.Max {
			return b, fmt.Errorf("encode %v: value %d does not fit a varint", t, v)
		}
	}
	b = quicvarint.Append(b, uint64(t))
	for _, v := range ints {
		b = quicvarint.Append(b, v)
	}
	b = append(b, fixed...)
	ip := a.Addr().Unmap()
	if ip.Is4() {
		v4 := ip.As4()
		b = append(b, v4[:]...)
	} else {
		v6 := ip.As16()
		b = append(b, v6[:]...)
	}
	return append(b, byte(a.Port()>>8), byte(a.Port())), nil
}

// ParseFrame parses one frame from the start of b and returns it with the
// number of bytes consumed.
func ParseFrame(b []byte) (Frame, int, error) {
	d := decoder{b: b}
	t := FrameType(d.varint())
	if d.err != nil {
		return nil, 0, fmt.Errorf("%w: frame type: %v", ErrMalformed, d.err)
	}
	var f Frame
	switch t {
	case TypeObservedAddressV4, TypeObservedAddressV6:
		seq := d.varint()
		f = &ObservedAddress{Seq: seq, Addr: d.addrPort(t&1 == 1)}
	case TypeAddAddressV4, TypeAddAddressV6:
		seq := d.varint()
		f = &AddAddress{Seq: seq, Addr: d.addrPort(t&1 == 1)}
	case TypePunchMeNowV4, TypePunchMeNowV6:
		round := d.varint()
		paired := d.varint()
		f = &PunchMeNow{Round: round, PairedWith: paired, Addr: d.addrPort(t&1 == 1)}
	case TypeRemoveAddress:
		f = &RemoveAddress{Seq: d.varint()}
	case TypeNATBehavior:
		f = parseNATBehavior(&d)
	case TypePunchManyV4, TypePunchManyV6:
		f = parsePunchMany(&d, t&1 == 1)
	default:
		return nil, 0, fmt.Errorf("%w %#x", ErrUnknownFrame, uint64(t))
	}
	if d.err != nil {
		return nil, 0, fmt.Errorf("%w: %v: %v", ErrMalformed, t, d.err)
	}
	return f, len(b) - len(d.b), nil
}

// decoder reads fields; the first failure sticks.
type decoder struct {
	b   []byte
	err error
}

var errTruncated = errors.New("truncated")

func (d *decoder) varint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n, err := quicvarint.Parse(d.b)
	if err != nil {
		d.err = errTruncated
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) addrPort(v6 bool) netip.AddrPort {
	size := 4
	if v6 {
		size = 16
	}
	if d.err != nil {
		return netip.AddrPort{}
	}
	if len(d.b) < size+2 {
		d.err = errTruncated
		return netip.AddrPort{}
	}
	ip, _ := netip.AddrFromSlice(d.b[:size])
	// An IPv4-mapped address in an IPv6 frame is an IPv4 address: keep one
	// representation so that comparisons and re-encoding agree.
	ip = ip.Unmap()
	port := uint16(d.b[size])<<8 | uint16(d.b[size+1])
	d.b = d.b[size+2:]
	return netip.AddrPortFrom(ip, port)
}
