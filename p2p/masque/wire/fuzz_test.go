package wire

import (
	"bytes"
	"net/netip"
	"testing"
)

// FuzzCapsules feeds arbitrary bytes through the capsule framing and the
// COMPRESSION_* parsers; whatever parses must re-encode to the same bytes.
func FuzzCapsules(f *testing.F) {
	f.Add(AppendCapsule(nil, CapsuleCompressionAssign, Assign{ContextID: 2}.Append(nil)))
	f.Add(AppendCapsule(nil, CapsuleCompressionAssign, Assign{ContextID: 3, Target: netip.MustParseAddrPort("192.0.2.1:80")}.Append(nil)))
	f.Add(AppendCapsule(nil, CapsuleCompressionAck, []byte{2}))
	f.Add(AppendCapsule(nil, CapsuleCompressionClose, []byte{0x40, 0x03}))
	f.Add([]byte{0x11, 0x40})
	f.Fuzz(func(t *testing.T, b []byte) {
		for len(b) > 0 {
			typ, v, n, err := ParseCapsule(b)
			if err != nil {
				return
			}
			b = b[n:]
			switch typ {
			case CapsuleCompressionAssign:
				a, err := ParseAssign(v)
				if err != nil {
					continue
				}
				if re, err := ParseAssign(a.Append(nil)); err != nil || re != a {
					t.Fatalf("assign %+v re-parsed as %+v, %v", a, re, err)
				}
			case CapsuleCompressionAck, CapsuleCompressionClose:
				_, _ = ParseContextCapsule(v)
			}
		}
	})
}

// FuzzDatagram parses arbitrary HTTP Datagram payloads both ways.
func FuzzDatagram(f *testing.F) {
	f.Add(AppendUncompressed(nil, 2, netip.MustParseAddrPort("[2001:db8::1]:1"), []byte("quic")))
	f.Add(AppendCompressed(nil, 5, []byte("quic")))
	f.Add([]byte{0x02, 0x04, 1, 2})
	f.Fuzz(func(t *testing.T, b []byte) {
		id, rest, err := ParseDatagram(b)
		if err != nil {
			return
		}
		addr, payload, err := ParseUncompressed(rest)
		if err != nil {
			return
		}
		re := AppendUncompressed(nil, id, addr, payload)
		id2, rest2, err := ParseDatagram(re)
		if err != nil || id2 != id {
			t.Fatalf("re-encoded datagram: %v", err)
		}
		addr2, payload2, err := ParseUncompressed(rest2)
		if err != nil || addr2 != addr || !bytes.Equal(payload, payload2) {
			t.Fatalf("re-encoded datagram differs: %v", err)
		}
	})
}
