package relayserver_test

// The relay's STUN responder on its QUIC port, seen from outside: a real
// relay from relaytest (an external test package, since relaytest imports
// relayserver).

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

	"github.com/camagent/camagent/internal/feature/identity"
	"github.com/camagent/camagent/p2p/discovery"
	"github.com/camagent/camagent/p2p/masque/profile"
	"github.com/camagent/camagent/p2p/relayserver"
	"github.com/camagent/camagent/p2p/relayserver/relaytest"
)

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
	rl := relaytest.Start(t, relayserver.Config{})
	s, id, relayAddr := rl.Server, rl.Identity, net.UDPAddrFromAddrPort(rl.Addr)
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
	if s.Metrics().STUNAnswered.Load() == 0 {
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
			before := s.Metrics().STUNIgnored.Load()
			if _, err := c.WriteToUDP(tt.b, relayAddr); err != nil {
				t.Fatal(err)
			}
			// An answer to tt.b would arrive before this one.
			p.t = t
			p.binding()
			if got := s.Metrics().STUNIgnored.Load() - before; got != 1 {
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
	if resp.StatusCode != http.StatusNotFound || s.Metrics().LocateNotFound.Load() != 1 {
		t.Fatalf("locate: %s, not-found counter %d", resp.Status, s.Metrics().LocateNotFound.Load())
	}

	// 1 + bare + 5 probes, and more if a resent request was answered twice.
	if got := s.Metrics().STUNAnswered.Load(); got < 7 {
		t.Errorf("answered counter %d, want at least 7", got)
	}
	var out strings.Builder
	s.Metrics().WriteTo(&out)
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
