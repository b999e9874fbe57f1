package pathmux

import (
	"errors"
	"net"
	"net/netip"
	"testing"
	"time"
)

func udp(t *testing.T) *net.UDPConn {
	t.Helper()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func ap(c net.PacketConn) netip.AddrPort { return c.LocalAddr().(*net.UDPAddr).AddrPort() }

func TestRouteRewritesAddresses(t *testing.T) {
	relay, direct := udp(t), udp(t)
	nonQUIC := make(chan string, 4)
	s := New(udp(t), func(b []byte, from netip.AddrPort) { nonQUIC <- string(b) + "@" + from.String() })
	defer s.Close()
	rr, err := s.Route(ap(relay), ap(relay))
	if err != nil {
		t.Fatal(err)
	}
	dr, err := s.Route(ap(relay), ap(direct))
	if err != nil {
		t.Fatal(err)
	}
	// quic-go writes to the relay address on both; the direct route's
	// packet goes to the direct peer.
	quicPacket := []byte{0x40, 1, 2}
	if _, err := dr.WriteTo(quicPacket, net.UDPAddrFromAddrPort(ap(relay))); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 100)
	direct.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, from, err := direct.ReadFrom(buf)
	if err != nil || n != 3 || from.(*net.UDPAddr).AddrPort() != ap(s.conn) {
		t.Fatalf("direct peer got %d bytes from %v, %v", n, from, err)
	}
	// The direct peer's answer reads as coming from the relay.
	direct.WriteTo([]byte{0x41, 9}, s.LocalAddr())
	dr.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, from, err = dr.ReadFrom(buf)
	if err != nil || n != 2 || from.(*net.UDPAddr).AddrPort() != ap(relay) {
		t.Fatalf("direct route read %d from %v, %v", n, from, err)
	}
	if dr.LastHeard().IsZero() || !rr.LastHeard().IsZero() {
		t.Fatal("LastHeard not per route")
	}
	if dr.Received() != 2 || rr.Received() != 0 || s.Received()[ap(direct)] != 2 {
		t.Fatalf("received bytes not per route: direct %d relay %d", dr.Received(), rr.Received())
	}
	// Non-QUIC packets go to the handler, not to quic-go.
	direct.WriteTo([]byte{0x00, 'k'}, s.LocalAddr())
	select {
	case got := <-nonQUIC:
		if got != "\x00k@"+ap(direct).String() {
			t.Fatalf("handler got %q", got)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("non-QUIC packet not handed over")
	}
}

func TestDetachedRouteGoesQuietWithoutFailingReads(t *testing.T) {
	relay, direct := udp(t), udp(t)
	s := New(udp(t), nil)
	dr, _ := s.Route(ap(relay), ap(direct))
	dr.Detach()
	direct.WriteTo([]byte{0x40}, s.LocalAddr())
	dr.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	_, _, err := dr.ReadFrom(make([]byte, 10))
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("detached route read: %v, want a timeout", err)
	}
	if n, err := dr.WriteTo([]byte{0x40}, net.UDPAddrFromAddrPort(ap(relay))); err != nil || n != 1 {
		t.Fatalf("detached write: %d, %v", n, err)
	}
	// Unblocking a pending read by a deadline in the past, as
	// quic.Transport.Close does.
	dr.SetReadDeadline(time.Time{})
	errc := make(chan error, 1)
	go func() { _, _, err := dr.ReadFrom(make([]byte, 10)); errc <- err }()
	dr.SetReadDeadline(time.Now())
	if err := <-errc; !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("read after deadline: %v", err)
	}
	s.Close()
	if _, _, err := dr.ReadFrom(make([]byte, 10)); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("read after socket close: %v", err)
	}
}

func TestRouteIsPlainPacketConn(t *testing.T) {
	s := New(udp(t), nil)
	defer s.Close()
	r, _ := s.Route(netip.MustParseAddrPort("127.0.0.1:1"), netip.MustParseAddrPort("127.0.0.1:2"))
	var pc net.PacketConn = r
	if _, ok := pc.(interface {
		ReadMsgUDP([]byte, []byte) (int, int, int, *net.UDPAddr, error)
	}); ok {
		t.Fatal("a Route must not look OOB-capable to quic-go")
	}
	if _, ok := pc.(interface{ SyscallConn() (any, error) }); ok {
		t.Fatal("a Route must not expose the socket")
	}
	if _, err := s.Route(netip.MustParseAddrPort("127.0.0.1:9"), netip.MustParseAddrPort("127.0.0.1:2")); err == nil {
		t.Fatal("one target under two aliases")
	}
}

func TestSocketLifecycle(t *testing.T) {
	t.Run("Close", func(t *testing.T) {
		s := New(udp(t), nil)
		r, err := s.Route(netip.MustParseAddrPort("127.0.0.1:1"), netip.MustParseAddrPort("127.0.0.1:2"))
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		<-s.Done()
		if err := s.Err(); err != nil {
			t.Fatalf("Err after Close: %v", err)
		}
		if _, _, err := r.ReadFrom(make([]byte, 8)); !errors.Is(err, net.ErrClosed) {
			t.Fatalf("route read after Close: %v", err)
		}
		if err := s.Close(); err != nil {
			t.Fatalf("second Close: %v", err)
		}
	})
	t.Run("conn fails", func(t *testing.T) {
		c := udp(t)
		s := New(c, nil)
		c.Close() // the socket goes away under the Socket
		<-s.Done()
		if err := s.Err(); !errors.Is(err, net.ErrClosed) {
			t.Fatalf("Err = %v, want %v", err, net.ErrClosed)
		}
		first := s.Close()
		if second := s.Close(); second != first {
			t.Fatalf("second Close = %v, first %v", second, first)
		}
	})
}
