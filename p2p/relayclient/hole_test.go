package relayclient

import (
	"errors"
	"net"
	"net/netip"
	"testing"
	"time"
)

func udpLoopback(t *testing.T) *net.UDPConn {
	t.Helper()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// A hole carries a peer's replies only while the peer's packets come in
// on it: quic-go sees one address for the peer on either socket, and the
// Mux follows the peer.
func TestMuxHoleFollowsThePeer(t *testing.T) {
	direct, holeConn, peer := udpLoopback(t), udpLoopback(t), udpLoopback(t)
	m := NewMux(direct)
	defer m.Close()
	peerAddr := peer.LocalAddr().(*net.UDPAddr)
	peerAP := netip.AddrPortFrom(peerAddr.AddrPort().Addr().Unmap(), peerAddr.AddrPort().Port())

	// replyFrom sends through the Mux and says which socket it left from.
	replyFrom := func() net.Addr {
		t.Helper()
		if _, err := m.WriteTo([]byte("reply"), peerAddr); err != nil {
			t.Fatal(err)
		}
		peer.SetReadDeadline(time.Now().Add(5 * time.Second))
		buf := make([]byte, 64)
		_, from, err := peer.ReadFrom(buf)
		if err != nil {
			t.Fatal(err)
		}
		return from
	}
	// send makes the peer send to to, and reads it from the Mux.
	send := func(to net.Addr, payload string) {
		t.Helper()
		if _, err := peer.WriteTo([]byte(payload), to); err != nil {
			t.Fatal(err)
		}
		m.SetReadDeadline(time.Now().Add(5 * time.Second))
		buf := make([]byte, 64)
		n, from, err := m.ReadFrom(buf)
		if err != nil || string(buf[:n]) != payload {
			t.Fatalf("read %q from %v, %v; want %q", buf[:n], from, err, payload)
		}
		if ua, ok := from.(*net.UDPAddr); !ok || ua.AddrPort() != peerAP {
			t.Fatalf("read from %v, want the peer as a direct address", from)
		}
	}

	send(direct.LocalAddr(), "hello")
	m.AddHole(holeConn, peerAP, []byte("first"))
	// The packet the fan-out already received is read first.
	m.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 64)
	if n, _, err := m.ReadFrom(buf); err != nil || string(buf[:n]) != "first" {
		t.Fatalf("first packet: %q, %v", buf[:n], err)
	}
	if got := replyFrom(); got.String() != direct.LocalAddr().String() {
		t.Fatalf("before the peer used the hole, a reply left from %v", got)
	}
	send(holeConn.LocalAddr(), "via hole")
	if got := replyFrom(); got.String() != holeConn.LocalAddr().String() {
		t.Fatalf("after the peer used the hole, a reply left from %v", got)
	}
	send(direct.LocalAddr(), "back")
	if got := replyFrom(); got.String() != direct.LocalAddr().String() {
		t.Fatalf("after the peer came back, a reply left from %v", got)
	}
	if m.Holes() != 1 {
		t.Fatalf("Holes() = %d", m.Holes())
	}
	m.RemoveHole(holeConn)
	if _, err := holeConn.WriteTo([]byte("x"), peerAddr); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("hole socket not closed: %v", err)
	}
	if m.Holes() != 0 {
		t.Fatalf("Holes() = %d after RemoveHole", m.Holes())
	}
}

func TestMuxLifecycle(t *testing.T) {
	t.Run("Close", func(t *testing.T) {
		m := NewMux(udpLoopback(t))
		hole := udpLoopback(t)
		m.AddHole(hole, netip.MustParseAddrPort("127.0.0.1:9"), nil)
		if err := m.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		<-m.Done()
		if err := m.Err(); err != nil {
			t.Fatalf("Err after Close: %v", err)
		}
		if _, _, err := hole.ReadFrom(make([]byte, 8)); !errors.Is(err, net.ErrClosed) {
			t.Fatalf("hole after Close: %v, want it closed", err)
		}
		if _, _, err := m.ReadFrom(make([]byte, 8)); !errors.Is(err, net.ErrClosed) {
			t.Fatalf("ReadFrom after Close: %v", err)
		}
		if err := m.Close(); err != nil {
			t.Fatalf("second Close: %v", err)
		}
		late := udpLoopback(t)
		m.AddHole(late, netip.MustParseAddrPort("127.0.0.1:9"), nil)
		if _, _, err := late.ReadFrom(make([]byte, 8)); !errors.Is(err, net.ErrClosed) {
			t.Fatalf("hole added after Close: %v, want it closed", err)
		}
	})
	t.Run("direct socket fails", func(t *testing.T) {
		direct := udpLoopback(t)
		m := NewMux(direct)
		direct.Close() // the socket goes away under the Mux
		<-m.directDone
		first := m.Close()
		<-m.Done()
		if err := m.Err(); !errors.Is(err, net.ErrClosed) {
			t.Fatalf("Err = %v, want the direct socket's failure", err)
		}
		if second := m.Close(); second != first {
			t.Fatalf("second Close = %v, first %v", second, first)
		}
	})
}
