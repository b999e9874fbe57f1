package traversal

import (
	"net/netip"
	"testing"
)

// TestRankOrdersProbes: candidates on the viewer's own LAN first, public
// addresses next, other private networks last (probes run one at a time,
// so the order is the time to direct).
func TestRankOrdersProbes(t *testing.T) {
	lan := []netip.Prefix{netip.MustParsePrefix("192.168.1.0/24")}
	for _, tc := range []struct {
		addr string
		want int
	}{
		{"192.168.1.7:4433", 0},
		{"203.0.113.2:4433", 1},
		{"[2001:db8::1]:4433", 1},
		{"10.0.0.2:4433", 2},
		{"100.64.0.2:4433", 2},
		{"192.168.2.7:4433", 2},
	} {
		if got := rank(lan, netip.MustParseAddrPort(tc.addr)); got != tc.want {
			t.Errorf("rank(%s) = %d, want %d", tc.addr, got, tc.want)
		}
	}
}

// TestHeardPacketTakesOnlyPunches: keepalive echoes and foreign packets
// are not candidates, and a full queue never blocks the socket's reader.
func TestHeardPacketTakesOnlyPunches(t *testing.T) {
	c := &Client{heard: make(chan netip.AddrPort, 1)}
	from := netip.MustParseAddrPort("203.0.113.2:5000")
	c.HeardPacket(makePacket(kindKeepaliveEcho, 1), from)
	c.HeardPacket([]byte("not a path packet"), from)
	if len(c.heard) != 0 {
		t.Fatal("a non-punch packet was taken as a candidate")
	}
	c.HeardPacket(makePacket(kindPunch, 1), from)
	c.HeardPacket(makePacket(kindPunch, 1), from) // queue full: dropped, not blocked
	if got := <-c.heard; got != from {
		t.Fatalf("heard %v", got)
	}
}
