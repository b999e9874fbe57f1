package natwire

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net/netip"
	"reflect"
	"testing"
)

var (
	v4   = netip.MustParseAddrPort("192.0.2.45:54321")
	v6   = netip.MustParseAddrPort("[2001:db8::1]:443")
	v4in = netip.MustParseAddrPort("[::ffff:198.51.100.7]:9")
)

func TestRoundTrip(t *testing.T) {
	tests := []struct {
		name  string
		frame Frame
		typ   FrameType
		wire  []byte // full encoding, when pinned
	}{
		{"observed v4", &ObservedAddress{Seq: 1, Addr: v4}, TypeObservedAddressV4,
			[]byte{0x80, 0x9f, 0x81, 0xa6, 0x01, 192, 0, 2, 45, 0xd4, 0x31}},
		{"observed v6", &ObservedAddress{Seq: 1 << 40, Addr: v6}, TypeObservedAddressV6, nil},
		{"add v4", &AddAddress{Seq: 7, Addr: v4}, TypeAddAddressV4,
			[]byte{0x80, 0x3d, 0x7e, 0x90, 0x07, 192, 0, 2, 45, 0xd4, 0x31}},
		{"add v6", &AddAddress{Seq: 0, Addr: v6}, TypeAddAddressV6, nil},
		{"punch v4", &PunchMeNow{Round: 3, PairedWith: 7, Addr: v4}, TypePunchMeNowV4,
			[]byte{0x80, 0x3d, 0x7e, 0x92, 0x03, 0x07, 192, 0, 2, 45, 0xd4, 0x31}},
		{"punch v6", &PunchMeNow{Round: 1<<62 - 1, PairedWith: 0, Addr: v6}, TypePunchMeNowV6, nil},
		{"remove", &RemoveAddress{Seq: 300}, TypeRemoveAddress,
			[]byte{0x80, 0x3d, 0x7e, 0x94, 0x41, 0x2c}},
		{"nat behavior", &NATBehavior{Mapping: MappingDependent}, TypeNATBehavior,
			[]byte{0x80, 0xca, 0x4d, 0x00, 0x02}},
		{"punch many v4", &PunchMany{Round: 2, PairedWith: 1, Mode: SprayPorts, Addr: v4}, TypePunchManyV4,
			[]byte{0x80, 0xca, 0x4d, 0x02, 0x02, 0x01, 0x02, 192, 0, 2, 45, 0xd4, 0x31}},
		{"punch many v6", &PunchMany{Round: 9, PairedWith: 0, Mode: SprayFanOut, Addr: v6}, TypePunchManyV6, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.frame.Type(); got != tc.typ {
				t.Fatalf("Type() = %v (%#x), want %#x", got, uint64(got), uint64(tc.typ))
			}
			b, err := tc.frame.Append(nil)
			if err != nil {
				t.Fatal(err)
			}
			if tc.wire != nil && !bytes.Equal(b, tc.wire) {
				t.Fatalf("encoding % x, want % x", b, tc.wire)
			}
			f, n, err := ParseFrame(append(b, 0xff)) // a trailing byte is not consumed
			if err != nil {
				t.Fatal(err)
			}
			if n != len(b) || !reflect.DeepEqual(f, tc.frame) {
				t.Fatalf("parsed %#v (%d bytes), want %#v (%d)", f, n, tc.frame, len(b))
			}
			msg, err := AppendMessage(nil, tc.frame)
			if err != nil {
				t.Fatal(err)
			}
			got, err := ReadMessage(bufio.NewReader(bytes.NewReader(msg)))
			if err != nil || !reflect.DeepEqual(got, tc.frame) {
				t.Fatalf("message round trip %#v, %v", got, err)
			}
		})
	}
}

func TestMappedAddressTravelsAsIPv4(t *testing.T) {
	f := &AddAddress{Seq: 1, Addr: v4in}
	if f.Type() != TypeAddAddressV4 {
		t.Fatalf("type %v", f.Type())
	}
	b, err := f.Append(nil)
	if err != nil {
		t.Fatal(err)
	}
	got, _, err := ParseFrame(b)
	if err != nil {
		t.Fatal(err)
	}
	if a := got.(*AddAddress).Addr; a != netip.MustParseAddrPort("198.51.100.7:9") {
		t.Fatalf("got %v", a)
	}
}

func TestEncodeErrors(t *testing.T) {
	tests := []struct {
		name  string
		frame Frame
	}{
		{"no address", &AddAddress{Seq: 1}},
		{"zone", &PunchMeNow{Addr: netip.MustParseAddrPort("[fe80::1%eth0]:1")}},
		{"seq too large", &ObservedAddress{Seq: 1 << 62, Addr: v4}},
		{"round too large", &PunchMeNow{Round: 1 << 62, Addr: v4}},
		{"remove too large", &RemoveAddress{Seq: 1 << 63}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := tc.frame.Append(nil); err == nil {
				t.Fatal("no error")
			}
			if _, err := AppendMessage(nil, tc.frame); err == nil {
				t.Fatal("no error from AppendMessage")
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	full, _ := (&PunchMeNow{Round: 1, PairedWith: 2, Addr: v6}).Append(nil)
	tests := []struct {
		name string
		b    []byte
	}{
		{"empty", nil},
		{"truncated type", []byte{0x80, 0x3d}},
		{"unknown type", []byte{0x01}},
		{"stream frame type", []byte{0x08, 0x00}},
		{"no sequence", []byte{0x80, 0x3d, 0x7e, 0x94}},
		{"short v4 address", []byte{0x80, 0x3d, 0x7e, 0x90, 0x01, 1, 2, 3, 4, 5}},
		{"short v6 address", full[:len(full)-1]},
		{"missing paired with", []byte{0x80, 0x3d, 0x7e, 0x92, 0x01}},
		{"nat behavior without mapping", []byte{0x80, 0xca, 0x4d, 0x00}},
		{"nat behavior out of range", []byte{0x80, 0xca, 0x4d, 0x00, 0x03}},
		{"punch many bad mode", []byte{0x80, 0xca, 0x4d, 0x02, 0x01, 0x01, 0x00, 192, 0, 2, 45, 0xd4, 0x31}},
		{"punch many without mode", []byte{0x80, 0xca, 0x4d, 0x02, 0x01, 0x01}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := ParseFrame(tc.b)
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("err = %v, want ErrMalformed", err)
			}
		})
	}
}

func TestCarrierRejectsMisfiledFrames(t *testing.T) {
	obs, _ := (&ObservedAddress{Seq: 1, Addr: v4}).Append(nil)
	add, _ := (&AddAddress{Seq: 1, Addr: v4}).Append(nil)
	tests := []struct {
		name    string
		typ     uint64
		payload []byte
	}{
		{"observed under NAT type", TypeNATTraversal, obs},
		{"add under discovery type", TypeAddressDiscovery, add},
		{"trailing bytes", TypeNATTraversal, append(add, 0)},
		{"nat behavior under NAT type", TypeNATTraversal, []byte{0x80, 0xca, 0x4d, 0x00, 0x01}},
		{"add under camagent type", TypeCamagentNAT, add},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := ParsePayload(tc.typ, tc.payload); !errors.Is(err, ErrMalformed) {
				t.Fatalf("err = %v", err)
			}
		})
	}
}

func TestReadMessageErrors(t *testing.T) {
	tests := []struct {
		name string
		b    []byte
		want error
	}{
		{"clean end", nil, io.EOF},
		{"end in type", []byte{0x40}, io.ErrUnexpectedEOF},
		{"end in length", []byte{0x40, 0x40}, io.ErrUnexpectedEOF},
		{"end in payload", []byte{0x40, 0x40, 0x05, 0x80}, io.ErrUnexpectedEOF},
		{"other message type", []byte{0x01, 0x00}, ErrMalformed},
		{"too long", []byte{0x40, 0x40, 0x7f, 0xff}, ErrMalformed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ReadMessage(bufio.NewReader(bytes.NewReader(tc.b)))
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestStreamChannel(t *testing.T) {
	var buf bytes.Buffer
	ch := NewStreamChannel(&buf)
	frames := []Frame{
		&ObservedAddress{Seq: 1, Addr: v4},
		&AddAddress{Seq: 2, Addr: v6},
		&PunchMeNow{Round: 1, PairedWith: 2, Addr: v4},
		&RemoveAddress{Seq: 2},
	}
	for _, f := range frames {
		if err := ch.Send(f); err != nil {
			t.Fatal(err)
		}
	}
	for _, want := range frames {
		got, err := ch.Receive(context.Background())
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Fatalf("got %#v, %v; want %#v", got, err, want)
		}
	}
	if _, err := ch.Receive(context.Background()); err != io.EOF {
		t.Fatalf("after the last frame: %v", err)
	}
}

func TestPipe(t *testing.T) {
	a, b := NewPipe()
	want := &PunchMeNow{Round: 2, PairedWith: 1, Addr: v6}
	if err := a.Send(want); err != nil {
		t.Fatal(err)
	}
	got, err := b.Receive(context.Background())
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("got %#v, %v", got, err)
	}
	a.Close()
	if err := b.Send(want); !errors.Is(err, ErrClosed) {
		t.Fatalf("send after close: %v", err)
	}
}

func TestMappingString(t *testing.T) {
	for m, want := range map[Mapping]string{
		MappingUnknown:     "unknown",
		MappingIndependent: "endpoint-independent",
		MappingDependent:   "endpoint-dependent",
		Mapping(9):         "unknown",
	} {
		if got := m.String(); got != want {
			t.Errorf("%d: %q, want %q", m, got, want)
		}
	}
}
