package viewer

import (
	"context"
	"net"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/camagent/camagent/internal/base/logging"
	"github.com/camagent/camagent/internal/base/testtier"
	"github.com/camagent/camagent/p2p/candidate"
	"github.com/camagent/camagent/p2p/natwire"
)

// relayedLink dials a relayed Link to a plain QUIC server on loopback
// standing in for the relay's public address, and starts traversal on it
// with the returned channel end playing the camera.
func relayedLink(t *testing.T, ctx context.Context) (*Link, netip.AddrPort, *natwire.Pipe) {
	t.Helper()
	testtier.Slow(t, "a QUIC link on loopback")
	relay, conns := quicServer(t)
	go func() {
		for c := range conns {
			t.Cleanup(func() { c.CloseWithError(0, "") })
		}
	}()
	l, err := dialRelayed(ctx, relay, netip.AddrPort{}, testClientTLS, &quic.Config{}, logging.Discard(nil))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Conn.CloseWithError(0, "") })
	camera, viewerEnd := natwire.NewPipe()
	t.Cleanup(func() { camera.Close() })
	if err := l.StartTraversal(viewerEnd, nil); err != nil {
		t.Fatal(err)
	}
	return l, relay, camera
}

// awaitQUIC waits on c for a QUIC packet (a probe) from port, writing
// send (if any) to to before each wait.
func awaitQUIC(c *net.UDPConn, port int, send []byte, to *net.UDPAddr, within time.Duration) bool {
	buf := make([]byte, 2048)
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		if send != nil {
			c.WriteTo(send, to)
		}
		c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		n, from, err := c.ReadFromUDP(buf)
		if err == nil && from.Port == port && n > 0 && buf[0]&0x40 != 0 {
			return true
		}
	}
	return false
}

// TestRelayedLinkProbesPeerReflexivePunch: a punch reaching a relayed
// link's socket from a port the camera never advertised (its symmetric
// NAT's mapping toward this viewer) must reach NAT traversal, which then
// probes that address. The link's socket once dropped such punches, so a
// symmetric camera never went direct to a public or full-cone viewer (the
// NAT matrix found it).
func TestRelayedLinkProbesPeerReflexivePunch(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	l, relay, camera := relayedLink(t, ctx)
	// The camera advertises an address on 127.0.0.1; its punches come
	// from another port of that address.
	if err := camera.Send(&natwire.AddAddress{Seq: 1, Addr: netip.AddrPortFrom(relay.Addr(), 9)}); err != nil {
		t.Fatal(err)
	}
	mapping, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer mapping.Close()
	port := l.sock.LocalAddr().(*net.UDPAddr).Port
	// Packet { Zero (8) = 0, Magic (24) = "cam", Kind (8) = 'p', Token (64) }
	punch := []byte{0, 'c', 'a', 'm', 'p', 0, 0, 0, 0, 0, 0, 0, 1}
	if !awaitQUIC(mapping, port, punch, &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port}, 5*time.Second) {
		t.Fatal("the viewer never probed the address the camera's punches came from")
	}
}

// TestRelayedLinkProbesSameLANFirst: a camera candidate on the viewer's
// own network is probed before a public one, so a same-LAN viewer does not
// wait out the probe of the reflexive address (a hairpin through the
// router, often unsupported). The link once passed no on-link prefixes to
// traversal, and the NAT matrix's same-LAN pair took 1.6 s to go direct.
func TestRelayedLinkProbesSameLANFirst(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	l, _, camera := relayedLink(t, ctx)
	host, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer host.Close()
	// A public address off this host's networks that answers nothing,
	// advertised first.
	public := netip.MustParseAddrPort("198.51.100.9:9")
	if _, prefixes, _ := candidate.HostAddrs(1, candidate.HostOptions{}); slices.ContainsFunc(prefixes, func(p netip.Prefix) bool { return p.Contains(public.Addr()) }) {
		t.Skipf("%v is on this host's network", public)
	}
	for i, a := range []netip.AddrPort{public, netip.MustParseAddrPort(host.LocalAddr().String())} {
		if err := camera.Send(&natwire.AddAddress{Seq: uint64(i + 1), Addr: a}); err != nil {
			t.Fatal(err)
		}
	}
	// The probe timeout is 1.5 s: the host candidate must be probed
	// before a probe of the public address could have given up.
	if !awaitQUIC(host, l.sock.LocalAddr().(*net.UDPAddr).Port, nil, nil, time.Second) {
		t.Fatal("the camera's candidate on the viewer's network was not probed first")
	}
}
