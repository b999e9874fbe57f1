package relayserver

import (
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/pion/stun/v3"
	"github.com/quic-go/quic-go"

	"github.com/camagent/camagent/internal/base/logging"
	"github.com/camagent/camagent/p2p/discovery"
)

// TestSTUNRateLimit checks the relay-wide bucket with a stopped clock: the
// burst is answered, the rest counted and dropped.
func TestSTUNRateLimit(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tr := &quic.Transport{Conn: pc}
	defer tr.Close()
	defer pc.Close()
	// The answers go to a socket nobody reads; the kernel drops what
	// does not fit.
	sink, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	m := newMetrics()
	now := time.Unix(1e9, 0)
	const stunRate, stunBurst = 20, 40
	policy := newTargetPolicy([]netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}, nil)
	r := newSTUNResponder(tr, m, logging.Discard(nil), func() time.Time { return now }, stunRate, policy)
	const extra = 10
	for range stunBurst + extra {
		r.handle(stun.MustBuild(stun.TransactionID, stun.BindingRequest).Raw, sink.LocalAddr())
	}
	if m.STUNAnswered.Load() != stunBurst || m.STUNLimited.Load() != extra || m.STUNIgnored.Load() != 0 {
		t.Fatalf("answered %d limited %d ignored %d, want %d %d 0",
			m.STUNAnswered.Load(), m.STUNLimited.Load(), m.STUNIgnored.Load(), stunBurst, extra)
	}
	now = now.Add(time.Second / stunRate) // one more token
	r.handle(stun.MustBuild(stun.TransactionID, stun.BindingRequest).Raw, sink.LocalAddr())
	if m.STUNAnswered.Load() != stunBurst+1 {
		t.Fatalf("after refill: answered %d", m.STUNAnswered.Load())
	}
}

func TestParseBindingRequest(t *testing.T) {
	from := &net.UDPAddr{IP: net.IPv4(198, 51, 100, 7), Port: 40000}
	var tx [12]byte
	copy(tx[:], "camagent-tx!")
	build := func(setters ...stun.Setter) []byte {
		return stun.MustBuild(append([]stun.Setter{stun.NewTransactionIDSetter(tx)}, setters...)...).Raw
	}
	bare := build(stun.BindingRequest)
	withFP := build(stun.BindingRequest, stun.Fingerprint)
	badFP := append([]byte(nil), withFP...)
	badFP[len(badFP)-1] ^= 1
	topBits := append([]byte(nil), bare...)
	topBits[0] |= 0x80
	tests := []struct {
		name     string
		b        []byte
		from     net.Addr
		wantLen  int // of the answer; 0: ignored
		wantFrom string
	}{
		{"bare", bare, from, 32, "198.51.100.7:40000"},
		{"with FINGERPRINT", withFP, from, 40, "198.51.100.7:40000"},
		{"SOFTWARE is optional", build(stun.BindingRequest, stun.NewSoftware("x")), from, 32, "198.51.100.7:40000"},
		{"IPv4-mapped sender", bare, &net.UDPAddr{IP: net.ParseIP("::ffff:198.51.100.7"), Port: 1}, 32, "198.51.100.7:1"},
		{"IPv6 sender", bare, &net.UDPAddr{IP: net.ParseIP("2001:db8::1"), Port: 1}, 44, "[2001:db8::1]:1"},
		{"nil", nil, from, 0, ""},
		{"path packet", []byte{0, 'c', 'a', 'm', 'p', 0, 0, 0, 0, 0, 0, 0, 1}, from, 0, ""},
		{"truncated", withFP[:len(withFP)-4], from, 0, ""},
		{"trailing bytes", append(append([]byte(nil), bare...), 0, 0, 0, 0), from, 0, ""},
		{"top bits set", topBits, from, 0, ""},
		{"success response", build(stun.BindingSuccess), from, 0, ""},
		{"error response", build(stun.BindingError, stun.CodeBadRequest), from, 0, ""},
		{"indication", build(stun.NewType(stun.MethodBinding, stun.ClassIndication)), from, 0, ""},
		{"allocate request", build(stun.NewType(stun.MethodAllocate, stun.ClassRequest)), from, 0, ""},
		{"comprehension-required attribute", build(stun.BindingRequest, stun.NewUsername("u")), from, 0, ""},
		{"bad FINGERPRINT", badFP, from, 0, ""},
		{"FINGERPRINT not last", build(stun.BindingRequest, stun.Fingerprint, stun.NewSoftware("x")), from, 0, ""},
		{"no sender", bare, nil, 0, ""},
		{"sender port 0", bare, &net.UDPAddr{IP: net.IPv4(198, 51, 100, 7)}, 0, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := parseBindingRequest(tt.b, tt.from)
			if tt.wantLen == 0 {
				if err == nil {
					t.Fatalf("accepted: %+v", req)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			resp, err := req.response()
			if err != nil {
				t.Fatal(err)
			}
			if len(resp) != tt.wantLen {
				t.Errorf("answer is %d bytes, want %d", len(resp), tt.wantLen)
			}
			got, err := discovery.ParseBindingResponse(resp, tx)
			if err != nil || got != netip.MustParseAddrPort(tt.wantFrom) {
				t.Fatalf("answer says %v, %v; want %s", got, err, tt.wantFrom)
			}
		})
	}
}

func FuzzParseBindingRequest(f *testing.F) {
	f.Add(stun.MustBuild(stun.TransactionID, stun.BindingRequest).Raw)
	f.Add(stun.MustBuild(stun.TransactionID, stun.BindingRequest, stun.NewSoftware("camagent"), stun.Fingerprint).Raw)
	f.Add(stun.MustBuild(stun.TransactionID, stun.BindingSuccess,
		&stun.XORMappedAddress{IP: net.IPv4(192, 0, 2, 1), Port: 1}).Raw)
	f.Add([]byte{0, 'c', 'a', 'm', 'p', 0, 0, 0, 0, 0, 0, 0, 1})
	from := &net.UDPAddr{IP: net.IPv4(198, 51, 100, 7), Port: 40000}
	f.Fuzz(func(t *testing.T, b []byte) {
		req, err := parseBindingRequest(b, from)
		if err != nil {
			return
		}
		resp, err := req.response()
		if err != nil {
			t.Fatal(err)
		}
		// No answer is more than twice its request: the worst case is
		// 32 bytes to a bare 20-byte request from an IPv4 sender.
		if len(resp) > 2*len(b) {
			t.Fatalf("%d-byte answer to %d bytes", len(resp), len(b))
		}
	})
}
