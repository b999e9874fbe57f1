package traversal

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/camagent/camagent/p2p/candidate"
	"github.com/camagent/camagent/p2p/discovery"
	"github.com/camagent/camagent/p2p/natwire"
)

// TestServerViewerReportsStayWithTheirViewer is issue 11 item 7: a paired
// viewer floods fake OBSERVED_ADDRESS reports from several connections.
// Another viewer is still advertised the camera's candidates and none of
// the attacker's; the camera can still add its own; the attacker's
// reports are capped and advertised to the attacker alone.
func TestServerViewerReportsStayWithTheirViewer(t *testing.T) {
	cands := candidate.NewSet()
	cands.Add(camHost, candidate.Host, "host")
	guard := NewGuard(GuardConfig{})
	serve := func(key string, conn int) natwire.Channel {
		camEnd, viewerEnd := natwire.NewPipe()
		view := cands.Viewer(key)
		srv := NewServer(ServerConfig{
			Channel: camEnd, Candidates: view, Guard: guard,
			Punch:   func(b []byte, _ net.Addr) (int, error) { return len(b), nil },
			Peer:    func() net.Addr { return net.UDPAddrFromAddrPort(viewerPub) },
			Learner: discovery.NewLearner(view, fmt.Sprintf("conn:%d", conn)),
		})
		t.Cleanup(func() { srv.Close(); view.Close() })
		return viewerEnd
	}
	// advertised follows what one viewer is told (ADD_ADDRESS and
	// REMOVE_ADDRESS) until it is quiet for 200 ms.
	type view map[uint64]netip.AddrPort
	advertised := func(ch natwire.Channel, have view) map[netip.AddrPort]bool {
		for {
			ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
			f, err := ch.Receive(ctx)
			cancel()
			if err != nil {
				break
			}
			switch f := f.(type) {
			case *natwire.AddAddress:
				have[f.Seq] = f.Addr
			case *natwire.RemoveAddress:
				delete(have, f.Seq)
			}
		}
		out := map[netip.AddrPort]bool{}
		for _, a := range have {
			out[a] = true
		}
		return out
	}
	victim := serve("victim", 0)
	var attackers []natwire.Channel
	fake := func(i int) netip.AddrPort {
		return netip.AddrPortFrom(netip.AddrFrom4([4]byte{203, 0, 113, byte(i)}), 9)
	}
	for c := range 6 {
		ch := serve("attacker", 1+c)
		attackers = append(attackers, ch)
		for r := range 4 { // each connection moves its report around as well
			if err := ch.Send(&natwire.ObservedAddress{Seq: uint64(r), Addr: fake(10*c + r)}); err != nil {
				t.Fatal(err)
			}
		}
	}
	relay := netip.MustParseAddrPort("198.51.100.1:4433")
	time.Sleep(100 * time.Millisecond) // let the Servers handle the reports
	if _, err := cands.Add(relay, candidate.Reflexive, "relay:r"); err != nil {
		t.Fatalf("the camera's own candidate refused after the flood: %v", err)
	}
	got := advertised(victim, view{})
	want := map[netip.AddrPort]bool{camHost: true, relay: true}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("victim was advertised %v, want only the camera's %v", got, want)
	}
	// Each attacker connection is advertised the camera's candidates and
	// the attacker's own reports, at most MaxReportsPerViewer of them.
	for i, ch := range attackers {
		var theirs int
		for a := range advertised(ch, view{}) {
			if !want[a] {
				theirs++
			}
		}
		if theirs > candidate.MaxReportsPerViewer || theirs == 0 {
			t.Fatalf("attacker connection %d: %d of its own reports advertised (cap %d)", i, theirs, candidate.MaxReportsPerViewer)
		}
	}
}
