package relayserver

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/pion/stun/v3"
	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"

	"github.com/camagent/camagent/internal/base/logging"
	"github.com/camagent/camagent/internal/feature/identity"
	"github.com/camagent/camagent/p2p/discovery"
	"github.com/camagent/camagent/p2p/masque/profile"
)

// startTestRelay runs a relay on 127.0.0.1 until the test ends.
func startTestRelay(t *testing.T) (*Server, *identity.Identity, *net.UDPAddr) {
	t.Helper()
	id, err := identity.LoadOrCreate(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(Config{Identity: id, PublicIP: netip.MustParseAddr("127.0.0.1"), Tokens: []string{"secret-token"},
		AllowTargets: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}})
	if err != nil {
		t.Fatal(err)
	}
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Serve(pc) }()
	t.Cleanup(func() {
		s.Close()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
		pc.Close()
	})
	return s, id, pc.LocalAddr().(*net.UDPAddr)
}

// stunProbe is a STUN client on a plain UDP socket.
type stunProbe struct {
	t     *testing.T
	c     *net.UDPConn
	relay *net.UDPAddr
	sent  [][12]byte // transaction IDs asked before
}

// roundTrip sends req until the answer to tx arrives, resending as a STUN
// client over UDP does (RFC 8489 §6.2.1): the relay reads non-QUIC
// packets only once Serve has started, and quic-go drops those that come
// earlier. Late duplicates of earlier answers are skipped; any other
// packet read first fails the test, which is how callers check that what
// they sent before got no answer (the relay handles packets in order).
// It returns the mapped address and the answer's size.
func (p *stunProbe) roundTrip(req []byte, tx [12]byte) (netip.AddrPort, int) {
	t := p.t
	t.Helper()
	defer func() { p.sent = append(p.sent, tx) }()
	buf := make([]byte, 1500)
	for attempt := 0; attempt < 50; attempt++ {
		if _, err := p.c.WriteToUDP(req, p.relay); err != nil {
			t.Fatal(err)
		}
		p.c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	read:
		n, _, err := p.c.ReadFromUDP(buf)
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		a, err := discovery.ParseBindingResponse(buf[:n], tx)
		if err == nil {
			return a, n
		}
		for _, old := range p.sent {
			if _, e := discovery.ParseBindingResponse(buf[:n], old); e == nil {
				goto read
			}
		}
		t.Fatalf("first packet back is not the answer: %v", err)
	}
	t.Fatal("no answer to a Binding request")
	return netip.AddrPort{}, 0
}

// binding asks with discovery's request.
func (p *stunProbe) binding() netip.AddrPort {
	p.t.Helper()
	req, tx, err := discovery.NewBindingRequest()
	if err != nil {
		p.t.Fatal(err)
	}
	a, _ := p.roundTrip(req, tx)
	return a
}

func TestSTUNBindingOnQUICPort(t *testing.T) {
	s, id, relayAddr := startTestRelay(t)
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	local := c.LocalAddr().(*net.UDPAddr).AddrPort()

	p := &stunProbe{t: t, c: c, relay: relayAddr}
	if got := p.binding(); got != local {
		t.Fatalf("XOR-MAPPED-ADDRESS %v, want %v", got, local)
	}
	if s.metrics.STUNAnswered.Load() == 0 {
		t.Fatal("answer not counted")
	}

	// A bare request (no FINGERPRINT) gets a bare 32-byte answer.
	bare := stun.MustBuild(stun.TransactionID, stun.BindingRequest)
	if got, n := p.roundTrip(bare.Raw, bare.TransactionID); got != local || n != 32 {
		t.Fatalf("bare request: %v in %d bytes, want %v in 32", got, n, local)
	}

	var tx [12]byte
	copy(tx[:], "not-answered")
	ignored := []struct {
		name string
		b    []byte
	}{
		{"garbage", []byte{0x01, 0xff, 0xfe, 0x00, 1, 2, 3}},
		{"path packet", []byte{0, 'c', 'a', 'm', 'p', 0, 0, 0, 0, 0, 0, 0, 1}},
		{"binding response", stun.MustBuild(stun.NewTransactionIDSetter(tx), stun.BindingSuccess,
			&stun.XORMappedAddress{IP: net.IPv4(192, 0, 2, 1), Port: 1}).Raw},
		{"allocate request", stun.MustBuild(stun.NewTransactionIDSetter(tx), stun.NewType(stun.MethodAllocate, stun.ClassRequest)).Raw},
		{"binding indication", stun.MustBuild(stun.NewTransactionIDSetter(tx), stun.NewType(stun.MethodBinding, stun.ClassIndication)).Raw},
	}
	for _, tt := range ignored {
		t.Run(tt.name, func(t *testing.T) {
			before := s.metrics.STUNIgnored.Load()
			if _, err := c.WriteToUDP(tt.b, relayAddr); err != nil {
				t.Fatal(err)
			}
			// An answer to tt.b would arrive before this one.
			p.t = t
			p.binding()
			if got := s.metrics.STUNIgnored.Load() - before; got != 1 {
				t.Fatalf("ignored counter moved by %d, want 1", got)
			}
		})
	}

	// QUIC and HTTP/3 still work on the port: a locate for an unknown
	// secret gets its 404.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	tlsConf := identity.ClientTLSConfig(&identity.Identity{}, id.Fingerprint, http3.NextProtoH3)
	tlsConf.Certificates = nil
	qconn, err := quic.DialAddr(ctx, relayAddr.String(), tlsConf, profile.QUICConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer qconn.CloseWithError(0, "")
	secret := make([]byte, 32)
	rand.Read(secret)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+relayAddr.String()+profile.LocatePrefix+hex.EncodeToString(secret), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := (&http3.Transport{}).NewClientConn(qconn).RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound || s.metrics.LocateNotFound.Load() != 1 {
		t.Fatalf("locate: %s, not-found counter %d", resp.Status, s.metrics.LocateNotFound.Load())
	}

	// 1 + bare + 5 probes, and more if a resent request was answered twice.
	if got := s.metrics.STUNAnswered.Load(); got < 7 {
		t.Errorf("answered counter %d, want at least 7", got)
	}
	var out strings.Builder
	s.metrics.WriteTo(&out)
	for _, want := range []string{
		`camagent_relay_stun_total{result="answered"} `,
		`camagent_relay_stun_total{result="ignored"} 5`,
		`camagent_relay_stun_total{result="limited"} 0`,
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("metrics lack %s:\n%s", want, out.String())
		}
	}
}

// TestSTUNRateLimit checks the per-prefix bucket with a stopped clock: the
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
