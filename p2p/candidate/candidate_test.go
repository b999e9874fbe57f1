package candidate

import (
	"net"
	"net/netip"
	"slices"
	"testing"
)

var (
	pub  = netip.MustParseAddrPort("203.0.113.2:4433")
	lan  = netip.MustParseAddrPort("192.168.1.2:4433")
	pub6 = netip.MustParseAddrPort("[2001:db8::2]:4433")
)

func TestSetSources(t *testing.T) {
	s := NewSet()
	_, changed := s.Snapshot()
	if added, err := s.Add(pub, Reflexive, "relay"); err != nil || !added {
		t.Fatalf("Add = %v, %v", added, err)
	}
	select {
	case <-changed:
	default:
		t.Fatal("no change signalled")
	}
	if added, _ := s.Add(pub, Reflexive, "viewer:a"); added {
		t.Fatal("second source reported as new")
	}
	s.Add(lan, Host, "host")
	s.Remove(pub, "relay")
	if got, _ := s.Snapshot(); len(got) != 2 {
		t.Fatalf("candidate vouched for by viewer:a removed: %v", got)
	}
	s.RemoveSource("viewer:a")
	got, _ := s.Snapshot()
	if len(got) != 1 || got[0] != (Candidate{lan, Host}) {
		t.Fatalf("got %v", got)
	}
}

func TestSetOrderAndPromotion(t *testing.T) {
	s := NewSet()
	s.Add(pub6, Reflexive, "relay")
	s.Add(pub, Reflexive, "relay")
	s.Add(lan, Reflexive, "viewer:a")
	s.Add(lan, Host, "host") // a host address is host, whoever saw it
	got, _ := s.Snapshot()
	want := []Candidate{{lan, Host}, {pub, Reflexive}, {pub6, Reflexive}}
	if len(got) != len(want) {
		t.Fatalf("got %v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("got %v, want %v", got, want)
		}
	}
}

func TestSetRejects(t *testing.T) {
	s := NewSet()
	for _, a := range []string{"0.0.0.0:1", "192.0.2.1:0", "224.0.0.1:5", "255.255.255.255:9", "[ff02::1]:5", "[fe80::1%eth0]:5"} {
		if _, err := s.Add(netip.MustParseAddrPort(a), Reflexive, "viewer:x"); err == nil {
			t.Errorf("%s accepted", a)
		}
	}
	if _, err := s.Add(netip.AddrPort{}, Host, "host"); err == nil {
		t.Error("zero address accepted")
	}
}

func TestSetBounded(t *testing.T) {
	s := NewSet()
	for i := range MaxCandidates + 5 {
		_, err := s.Add(netip.AddrPortFrom(netip.AddrFrom4([4]byte{198, 51, 100, byte(i)}), 1), Reflexive, "viewer:flood")
		if (err != nil) != (i >= MaxCandidates) {
			t.Fatalf("candidate %d: err %v", i, err)
		}
	}
}

func TestHostAddrs(t *testing.T) {
	fake := func() ([]net.Addr, error) {
		return []net.Addr{
			&net.IPNet{IP: net.ParseIP("127.0.0.1"), Mask: net.CIDRMask(8, 32)},
			&net.IPNet{IP: net.ParseIP("192.168.1.2").To4(), Mask: net.CIDRMask(24, 32)},
			&net.IPNet{IP: net.ParseIP("fe80::1"), Mask: net.CIDRMask(64, 128)},
			&net.IPNet{IP: net.ParseIP("2001:db8::2"), Mask: net.CIDRMask(64, 128)},
			&net.IPAddr{IP: net.ParseIP("10.0.0.1")},
		}, nil
	}
	tests := []struct {
		loopback bool
		want     []string
		prefixes []string
	}{
		{false, []string{"192.168.1.2:4433", "[2001:db8::2]:4433"}, []string{"192.168.1.0/24", "2001:db8::/64"}},
		{true, []string{"127.0.0.1:4433", "192.168.1.2:4433", "[2001:db8::2]:4433"}, []string{"127.0.0.0/8", "192.168.1.0/24", "2001:db8::/64"}},
	}
	for _, tc := range tests {
		got, prefixes, err := HostAddrs(4433, HostOptions{Loopback: tc.loopback, InterfaceAddrs: fake})
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(tc.want) || len(prefixes) != len(tc.prefixes) {
			t.Fatalf("loopback=%v: got %v %v", tc.loopback, got, prefixes)
		}
		for i := range got {
			if got[i].String() != tc.want[i] || prefixes[i].String() != tc.prefixes[i] {
				t.Fatalf("loopback=%v: got %v %v", tc.loopback, got, prefixes)
			}
		}
	}
	// The real interfaces, for a smoke check that enumeration works here.
	if _, _, err := HostAddrs(1, HostOptions{Loopback: true}); err != nil {
		t.Fatal(err)
	}
}

func TestViewerReportsStayWithTheirViewer(t *testing.T) {
	s := NewSet()
	s.Add(lan, Host, "host")
	a, b := s.Viewer("a"), s.Viewer("b")
	defer a.Close()
	defer b.Close()
	_, bChanged := b.Snapshot()
	// Viewer a floods fake reports from several connections.
	accepted := 0
	for i := range 3 * MaxCandidates {
		fake := netip.AddrPortFrom(netip.AddrFrom4([4]byte{198, 51, 100, byte(i)}), 9)
		if ok, err := a.Add(fake, Reflexive, "conn"+string(rune('0'+i%5))); ok && err == nil {
			accepted++
		}
	}
	if accepted != MaxReportsPerViewer {
		t.Fatalf("accepted %d reports from one viewer, want %d", accepted, MaxReportsPerViewer)
	}
	select {
	case <-bChanged:
		t.Fatal("viewer b woken by viewer a's reports")
	default:
	}
	// The camera's own candidates are neither evicted nor crowded out.
	if ok, err := s.Add(pub, Reflexive, "relay:x"); !ok || err != nil {
		t.Fatalf("relay candidate refused after a viewer's flood: %v %v", ok, err)
	}
	select {
	case <-bChanged:
	default:
		t.Fatal("viewer b not told of the camera's new candidate")
	}
	own := []Candidate{{lan, Host}, {pub, Reflexive}}
	if got, _ := b.Snapshot(); !slices.Equal(got, own) {
		t.Fatalf("viewer b sees %v, want only the camera's %v", got, own)
	}
	if got, _ := s.Snapshot(); !slices.Equal(got, own) {
		t.Fatalf("camera-wide snapshot %v, want %v", got, own)
	}
	if got, _ := a.Snapshot(); len(got) != len(own)+MaxReportsPerViewer {
		t.Fatalf("viewer a sees %v", got)
	}
	// A report of one of the camera's addresses is listed once, as the camera's.
	b.Add(lan, Reflexive, "c")
	if got, _ := b.Snapshot(); !slices.Equal(got, own) {
		t.Fatalf("viewer b sees %v", got)
	}
	for i := range 5 {
		a.RemoveSource("conn" + string(rune('0'+i)))
	}
	b.RemoveSource("c")
	if got, _ := a.Snapshot(); !slices.Equal(got, own) {
		t.Fatalf("after withdrawal viewer a sees %v", got)
	}
	a.Close()
	b.Close()
	s.mu.Lock()
	n := len(s.viewers)
	s.mu.Unlock()
	if n != 0 {
		t.Fatalf("%d viewer states left after every view closed", n)
	}
}

func TestViewerReportMoves(t *testing.T) {
	s := NewSet()
	v := s.Viewer("a")
	defer v.Close()
	// One connection's report moves (NAT rebinding): the cap counts
	// addresses held now, not ever.
	for i := range 3 * MaxReportsPerViewer {
		addr := netip.AddrPortFrom(netip.AddrFrom4([4]byte{198, 51, 100, byte(i)}), 9)
		if i > 0 {
			v.Remove(netip.AddrPortFrom(netip.AddrFrom4([4]byte{198, 51, 100, byte(i - 1)}), 9), "conn")
		}
		if _, err := v.Add(addr, Reflexive, "conn"); err != nil {
			t.Fatalf("move %d: %v", i, err)
		}
	}
	if got := v.Reports(); len(got) != 1 {
		t.Fatalf("reports %v", got)
	}
	if _, err := v.Add(pub, Host, "conn2"); err != nil {
		t.Fatal(err)
	}
	if got, _ := v.Snapshot(); got[0].Kind != Reflexive {
		t.Fatalf("a viewer's report became a host candidate: %v", got)
	}
}
