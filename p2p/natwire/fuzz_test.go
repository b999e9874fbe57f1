package natwire

import (
	"bufio"
	"bytes"
	"reflect"
	"testing"
)

// Each target checks that parsing never panics and that whatever parses
// re-encodes to bytes that parse to the same value.

func seedFrames() []Frame {
	return []Frame{
		&ObservedAddress{Seq: 1, Addr: v4}, &ObservedAddress{Seq: 9, Addr: v6},
		&AddAddress{Seq: 3, Addr: v4}, &AddAddress{Seq: 4, Addr: v6},
		&PunchMeNow{Round: 1, PairedWith: 3, Addr: v4}, &PunchMeNow{Round: 2, PairedWith: 4, Addr: v6},
		&RemoveAddress{Seq: 3},
		&NATBehavior{Mapping: MappingDependent},
		&PunchMany{Round: 3, PairedWith: 1, Mode: SprayFanOut, Addr: v4},
		&PunchMany{Round: 4, PairedWith: 2, Mode: SprayPorts, Addr: v6},
	}
}

func FuzzParseFrame(f *testing.F) {
	for _, fr := range seedFrames() {
		b, err := fr.Append(nil)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		fr, n, err := ParseFrame(b)
		if err != nil {
			return
		}
		if n > len(b) {
			t.Fatalf("consumed %d of %d bytes", n, len(b))
		}
		again, err := fr.Append(nil)
		if err != nil {
			t.Fatalf("re-encode %#v: %v", fr, err)
		}
		fr2, _, err := ParseFrame(again)
		if err != nil || !reflect.DeepEqual(fr, fr2) {
			t.Fatalf("round trip %#v -> %#v, %v", fr, fr2, err)
		}
	})
}

func FuzzReadMessage(f *testing.F) {
	for _, fr := range seedFrames() {
		b, err := AppendMessage(nil, fr)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{0x40, 0x40, 0x3f})
	f.Fuzz(func(t *testing.T, b []byte) {
		fr, err := ReadMessage(bufio.NewReader(bytes.NewReader(b)))
		if err != nil {
			return
		}
		// ParsePayload must agree with the stream reader.
		again, err := AppendMessage(nil, fr)
		if err != nil {
			t.Fatalf("re-encode %#v: %v", fr, err)
		}
		fr2, err := ReadMessage(bufio.NewReader(bytes.NewReader(again)))
		if err != nil || !reflect.DeepEqual(fr, fr2) {
			t.Fatalf("round trip %#v -> %#v, %v", fr, fr2, err)
		}
		typ, payload, err := SplitMessage(again)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ParsePayload(typ, payload); err != nil {
			t.Fatalf("ParsePayload rejects what ReadMessage accepted: %v", err)
		}
	})
}

func FuzzParsePayload(f *testing.F) {
	for _, fr := range seedFrames() {
		b, _ := fr.Append(nil)
		f.Add(MessageType(fr), b)
	}
	f.Add(TypeAddressDiscovery, []byte{0x80, 0x3d, 0x7e, 0x94, 0x01})
	f.Fuzz(func(t *testing.T, typ uint64, payload []byte) {
		fr, err := ParsePayload(typ, payload)
		if err != nil {
			return
		}
		if MessageType(fr) != typ {
			t.Fatalf("%v accepted under type %#x", fr.Type(), typ)
		}
		b, err := fr.Append(nil)
		if err != nil || !bytes.Equal(b, payload) && len(b) > len(payload) {
			t.Fatalf("re-encode %#v: % x, %v", fr, b, err)
		}
	})
}
