package discovery

import (
	"github.com/camagent/camagent/p2p/natwire"

	"errors"
	"net"
	"net/netip"
	"testing"

	"github.com/pion/stun/v3"
)

// pathPacket is camagent's 13-byte punch packet (p2p/traversal), which
// shares the QUIC socket with STUN.
var pathPacket = []byte{0, 'c', 'a', 'm', 'p', 0, 0, 0, 0, 0, 0, 0, 1}

// respond builds what a STUN server would send back for tx, with pion, as
// the relay does.
func respond(t testing.TB, tx [12]byte, setters ...stun.Setter) []byte {
	t.Helper()
	m, err := stun.Build(append([]stun.Setter{stun.NewTransactionIDSetter(tx)}, setters...)...)
	if err != nil {
		t.Fatal(err)
	}
	return m.Raw
}

func xorAddr(s string) stun.Setter {
	ap := netip.MustParseAddrPort(s)
	return &stun.XORMappedAddress{IP: net.IP(ap.Addr().AsSlice()), Port: int(ap.Port())}
}

func TestBindingRoundTrip(t *testing.T) {
	req, tx, err := NewBindingRequest()
	if err != nil {
		t.Fatal(err)
	}
	if !IsSTUN(req) {
		t.Fatal("request is not STUN")
	}
	// The server side: decode the request as pion would and answer it.
	var m stun.Message
	if err := stun.Decode(req, &m); err != nil {
		t.Fatal(err)
	}
	if m.Type != stun.BindingRequest || m.TransactionID != tx {
		t.Fatalf("request %v tx %x, want Binding request %x", m.Type, m.TransactionID, tx)
	}
	if err := stun.Fingerprint.Check(&m); err != nil {
		t.Fatalf("request fingerprint: %v", err)
	}
	for _, want := range []string{"198.51.100.7:40000", "[2001:db8::7]:1", "192.0.2.1:65535"} {
		t.Run(want, func(t *testing.T) {
			for _, fp := range []bool{false, true} {
				setters := []stun.Setter{stun.BindingSuccess, xorAddr(want)}
				if fp {
					setters = append(setters, stun.Fingerprint)
				}
				got, err := ParseBindingResponse(respond(t, tx, setters...), tx)
				if err != nil {
					t.Fatal(err)
				}
				if got != netip.MustParseAddrPort(want) {
					t.Fatalf("fingerprint %v: got %v, want %s", fp, got, want)
				}
			}
		})
	}
}

func TestParseBindingResponseAddresses(t *testing.T) {
	tx := stun.NewTransactionID()
	tests := []struct {
		name    string
		setters []stun.Setter
		want    string
	}{
		{"IPv4-mapped IPv6 is unmapped", []stun.Setter{xorAddr("[::ffff:203.0.113.9]:5000")}, "203.0.113.9:5000"},
		{"MAPPED-ADDRESS when no XOR form", []stun.Setter{&stun.MappedAddress{IP: net.IPv4(192, 0, 2, 8), Port: 9}}, "192.0.2.8:9"},
		{"XOR-MAPPED-ADDRESS wins", []stun.Setter{
			&stun.MappedAddress{IP: net.IPv4(192, 0, 2, 8), Port: 9}, xorAddr("198.51.100.1:7"),
		}, "198.51.100.1:7"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := respond(t, tx, append([]stun.Setter{stun.BindingSuccess}, tt.setters...)...)
			got, err := ParseBindingResponse(b, tx)
			if err != nil {
				t.Fatal(err)
			}
			if got != netip.MustParseAddrPort(tt.want) {
				t.Fatalf("got %v, want %s", got, tt.want)
			}
		})
	}
}

func TestParseBindingResponseRefuses(t *testing.T) {
	tx := stun.NewTransactionID()
	valid := respond(t, tx, stun.BindingSuccess, xorAddr("198.51.100.7:40000"))
	withFP := respond(t, tx, stun.BindingSuccess, xorAddr("198.51.100.7:40000"), stun.Fingerprint)
	other := tx
	other[11] ^= 1
	badFP := append([]byte(nil), withFP...)
	badFP[len(badFP)-1] ^= 1
	trailing := append(append([]byte(nil), valid...), 0, 0, 0, 0)
	questionable := append([]byte(nil), valid...)
	questionable[0] |= 0x40 // QUIC fixed bit: not STUN by RFC 9443
	tests := []struct {
		name string
		b    []byte
	}{
		{"nil", nil},
		{"garbage", []byte("GET / HTTP/1.1\r\n\r\nxxxxxxxx")},
		{"path packet", pathPacket},
		{"header only, truncated", valid[:stunHeaderLen-1]},
		{"truncated attribute", valid[:len(valid)-4]},
		{"trailing bytes", trailing},
		{"first bits set", questionable},
		{"wrong transaction", respond(t, other, stun.BindingSuccess, xorAddr("198.51.100.7:40000"))},
		{"request", respond(t, tx, stun.BindingRequest)},
		{"indication", respond(t, tx, stun.NewType(stun.MethodBinding, stun.ClassIndication))},
		{"error response", respond(t, tx, stun.BindingError, stun.CodeBadRequest)},
		{"other method", respond(t, tx, stun.NewType(stun.MethodAllocate, stun.ClassSuccessResponse), xorAddr("198.51.100.7:1"))},
		{"no address", respond(t, tx, stun.BindingSuccess)},
		{"port zero", respond(t, tx, stun.BindingSuccess, xorAddr("198.51.100.7:0"))},
		{"unspecified address", respond(t, tx, stun.BindingSuccess, xorAddr("0.0.0.0:1"))},
		{"short IPv6 value", respond(t, tx, stun.BindingSuccess, rawAttr(stun.AttrXORMappedAddress, []byte{0, 2, 0, 1, 1, 2, 3, 4}))},
		{"bad family", respond(t, tx, stun.BindingSuccess, rawAttr(stun.AttrXORMappedAddress, []byte{0, 3, 0, 1, 1, 2, 3, 4}))},
		{"bad fingerprint", badFP},
		{"fingerprint not last", respond(t, tx, stun.BindingSuccess, stun.Fingerprint, xorAddr("198.51.100.7:1"))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := ParseBindingResponse(tt.b, tx)
			if !errors.Is(err, ErrNotBindingResponse) {
				t.Fatalf("got %v, %v; want ErrNotBindingResponse", a, err)

			}
		})
	}
}

// rawAttr adds an attribute with a value pion would not produce.
func rawAttr(t stun.AttrType, v []byte) stun.Setter { return rawSetter{t, v} }

type rawSetter struct {
	t stun.AttrType
	v []byte
}

func (s rawSetter) AddTo(m *stun.Message) error { m.Add(s.t, s.v); return nil }

func TestIsSTUN(t *testing.T) {
	req, _, err := NewBindingRequest()
	if err != nil {
		t.Fatal(err)
	}
	quic := append([]byte{0xc0}, req[1:]...) // a long-header QUIC first byte
	tests := []struct {
		name string
		b    []byte
		want bool
	}{
		{"binding request", req, true},
		{"header only", req[:stunHeaderLen], true},
		{"too short", req[:stunHeaderLen-1], false},
		{"path packet", pathPacket, false},
		{"QUIC first byte", quic, false},
		{"no cookie", make([]byte, 20), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := IsSTUN(tt.b); got != tt.want {
				t.Fatalf("IsSTUN = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestNewBindingRequestFreshIDs(t *testing.T) {
	_, a, err := NewBindingRequest()
	if err != nil {
		t.Fatal(err)
	}
	_, b, err := NewBindingRequest()
	if err != nil {
		t.Fatal(err)
	}
	if a == b {
		t.Fatalf("two requests share transaction ID %x", a)
	}
}

func TestCompareMappings(t *testing.T) {
	ap := netip.MustParseAddrPort
	tests := []struct {
		name string
		a, b netip.AddrPort
		want natwire.Mapping
	}{
		{"same address and port", ap("198.51.100.7:40000"), ap("198.51.100.7:40000"), natwire.MappingIndependent},
		{"same, one IPv4-mapped", ap("[::ffff:198.51.100.7]:40000"), ap("198.51.100.7:40000"), natwire.MappingIndependent},
		{"same IPv6", ap("[2001:db8::1]:5"), ap("[2001:db8::1]:5"), natwire.MappingIndependent},
		{"port changed", ap("198.51.100.7:40000"), ap("198.51.100.7:40001"), natwire.MappingDependent},
		{"address changed (pooling not paired)", ap("198.51.100.7:40000"), ap("198.51.100.8:40000"), natwire.MappingDependent},
		{"both changed", ap("198.51.100.7:40000"), ap("198.51.100.8:1"), natwire.MappingDependent},
		{"first missing", netip.AddrPort{}, ap("198.51.100.7:40000"), natwire.MappingUnknown},
		{"second missing", ap("198.51.100.7:40000"), netip.AddrPort{}, natwire.MappingUnknown},
		{"both missing", netip.AddrPort{}, netip.AddrPort{}, natwire.MappingUnknown},
		{"port zero", ap("198.51.100.7:0"), ap("198.51.100.7:0"), natwire.MappingUnknown},
		{"unspecified", ap("0.0.0.0:1"), ap("0.0.0.0:1"), natwire.MappingUnknown},
		{"IPv4 against IPv6", ap("198.51.100.7:40000"), ap("[2001:db8::1]:40000"), natwire.MappingUnknown},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := CompareMappings(tt.a, tt.b); got != tt.want {
				t.Fatalf("CompareMappings(%v, %v) = %v, want %v", tt.a, tt.b, got, tt.want)
			}
			if got := CompareMappings(tt.b, tt.a); got != tt.want {
				t.Fatalf("not symmetric: CompareMappings(%v, %v) = %v", tt.b, tt.a, got)
			}
		})
	}
}

func FuzzParseBindingResponse(f *testing.F) {
	var tx [12]byte
	copy(tx[:], "camagent-fuz")
	build := func(setters ...stun.Setter) []byte {
		m, err := stun.Build(append([]stun.Setter{stun.NewTransactionIDSetter(tx)}, setters...)...)
		if err != nil {
			f.Fatal(err)
		}
		return m.Raw
	}
	valid := build(stun.BindingSuccess, xorAddr("198.51.100.7:40000"), stun.Fingerprint)
	f.Add(valid)
	f.Add(build(stun.BindingSuccess, xorAddr("[2001:db8::7]:1")))
	f.Add(build(stun.BindingSuccess, &stun.MappedAddress{IP: net.IPv4(192, 0, 2, 8), Port: 9}))
	f.Add(build(stun.BindingError, stun.CodeBadRequest))
	f.Add(valid[:len(valid)-5])
	f.Add(pathPacket)
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := ParseBindingResponse(b, tx)
		if err != nil {
			if !errors.Is(err, ErrNotBindingResponse) {
				t.Fatalf("error %v does not wrap ErrNotBindingResponse", err)
			}
			return
		}
		if !validObservation(a) || a.Addr().Is4In6() {
			t.Fatalf("accepted %v", a)
		}
		if !IsSTUN(b) {
			t.Fatal("accepted a packet IsSTUN refuses")
		}
	})
}
