package candidate

import (
	"net"
	"net/netip"
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
