package discovery

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/camagent/camagent/p2p/candidate"
	"github.com/camagent/camagent/p2p/natwire"
)

// movingPeer is a remote address that a test can change, like a quic.Conn
// after migration or NAT rebinding.
type movingPeer struct {
	mu   sync.Mutex
	addr net.Addr
}

func (p *movingPeer) Remote() net.Addr {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.addr
}

func (p *movingPeer) move(s string) {
	p.mu.Lock()
	p.addr = net.UDPAddrFromAddrPort(netip.MustParseAddrPort(s))
	p.mu.Unlock()
}

func TestReporterSequence(t *testing.T) {
	peer := &movingPeer{}
	peer.move("198.51.100.7:1000")
	var sent []*natwire.ObservedAddress
	r := &Reporter{cfg: ReporterConfig{Remote: peer.Remote, Send: func(f natwire.Frame) error {
		sent = append(sent, f.(*natwire.ObservedAddress))
		return nil
	}}}
	steps := []struct {
		move string // "" keeps the address
		sent bool
		seq  uint64
	}{
		{"", true, 0},
		{"", false, 0},
		{"198.51.100.7:2000", true, 1},  // NAT rebinding
		{"[2001:db8::7]:2000", true, 2}, // new path, IPv6
		{"", false, 0},
		{"198.51.100.7:1000", true, 3}, // back to an old address: still a new report
	}
	for i, s := range steps {
		if s.move != "" {
			peer.move(s.move)
		}
		ok, err := r.Check()
		if err != nil || ok != s.sent {
			t.Fatalf("step %d: sent=%v err=%v", i, ok, err)
		}
		if ok {
			last := sent[len(sent)-1]
			if last.Seq != s.seq || last.Addr.String() != peer.Remote().String() {
				t.Fatalf("step %d: sent %+v", i, last)
			}
		}
	}
}

func TestReporterRunsAndStopsOnSendFailure(t *testing.T) {
	peer := &movingPeer{}
	peer.move("192.0.2.1:5")
	a, b := natwire.NewPipe()
	r := NewReporter(ReporterConfig{Remote: peer.Remote, Send: a.Send, Interval: time.Millisecond})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	f, err := b.Receive(ctx)
	if err != nil || f.(*natwire.ObservedAddress).Addr.String() != "192.0.2.1:5" {
		t.Fatalf("first report %v, %v", f, err)
	}
	peer.move("192.0.2.1:6")
	f, err = b.Receive(ctx)
	if err != nil || f.(*natwire.ObservedAddress).Seq != 1 {
		t.Fatalf("second report %v, %v", f, err)
	}
	a.Close()
	peer.move("192.0.2.1:7")
	select {
	case <-r.Done():
	case <-ctx.Done():
		t.Fatal("reporter did not stop after its channel closed")
	}
	if !errors.Is(r.Err(), natwire.ErrClosed) {
		t.Fatalf("Err = %v", r.Err())
	}
	r.Close()
}

func TestLearner(t *testing.T) {
	set := candidate.NewSet()
	l := NewLearner(set, "viewer:a")
	addr := func(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }
	steps := []struct {
		seq     uint64
		addr    string
		changed bool
		want    string
	}{
		{0, "203.0.113.2:4433", true, "203.0.113.2:4433"},
		{0, "203.0.113.9:1", false, "203.0.113.2:4433"}, // replay of seq 0
		{2, "203.0.113.2:5000", true, "203.0.113.2:5000"},
		{1, "203.0.113.2:4433", false, "203.0.113.2:5000"}, // stale, reordered
		{3, "203.0.113.2:5000", false, "203.0.113.2:5000"},
	}
	for i, s := range steps {
		changed, err := l.Handle(&natwire.ObservedAddress{Seq: s.seq, Addr: addr(s.addr)})
		if err != nil || changed != s.changed {
			t.Fatalf("step %d: changed=%v err=%v", i, changed, err)
		}
		cands, _ := set.Snapshot()
		if len(cands) != 1 || cands[0].Addr.String() != s.want || cands[0].Kind != candidate.Reflexive {
			t.Fatalf("step %d: set %v", i, cands)
		}
	}
	if _, err := l.Handle(&natwire.ObservedAddress{Seq: 9, Addr: addr("0.0.0.0:1")}); err == nil {
		t.Fatal("unspecified address accepted")
	}
	l.Close()
	if cands, _ := set.Snapshot(); len(cands) != 0 {
		t.Fatalf("after Close: %v", cands)
	}
}

func TestParseProxyPublicAddress(t *testing.T) {
	tests := []struct {
		in   string
		want string
		err  bool
	}{
		{`"192.0.2.45:54321"`, "[192.0.2.45:54321]", false},
		{`"192.0.2.45:54321", "[2001:db8::1]:54321"`, "[192.0.2.45:54321 [2001:db8::1]:54321]", false},
		{` "192.0.2.45:1",` + "\t" + `"192.0.2.46:2"`, "[192.0.2.45:1 192.0.2.46:2]", false},
		{``, "", true},
		{`192.0.2.45:1`, "", true},
		{`"192.0.2.45:1",`, "", true},
		{`"192.0.2.45"`, "", true},
		{`"192.0.2.45:1";a=1`, "", true},
		{`"host:1"`, "", true},
		{`"192.0.2.45:1`, "", true},
		{`"\"192.0.2.45:1"`, "", true},
		{strings.Repeat(`"192.0.2.1:1",`, 9) + `"192.0.2.1:1"`, "", true},
	}
	for _, tc := range tests {
		got, err := ParseProxyPublicAddress(tc.in)
		if (err != nil) != tc.err {
			t.Fatalf("%q: err %v", tc.in, err)
		}
		if err == nil {
			var s []string
			for _, a := range got {
				s = append(s, a.String())
			}
			if "["+strings.Join(s, " ")+"]" != tc.want {
				t.Fatalf("%q: got %v", tc.in, got)
			}
		}
	}
}

func FuzzParseProxyPublicAddress(f *testing.F) {
	f.Add(`"192.0.2.45:54321", "[2001:db8::1]:54321"`)
	f.Add(`"[::ffff:192.0.2.1]:1"`)
	f.Add(`"a",`)
	f.Fuzz(func(t *testing.T, s string) {
		addrs, err := ParseProxyPublicAddress(s)
		if err != nil {
			return
		}
		if len(addrs) == 0 || len(addrs) > maxProxyAddrs {
			t.Fatalf("%d addresses", len(addrs))
		}
		var parts []string
		for _, a := range addrs {
			parts = append(parts, `"`+a.String()+`"`)
		}
		again, err := ParseProxyPublicAddress(strings.Join(parts, ", "))
		if err != nil || len(again) != len(addrs) {
			t.Fatalf("round trip: %v %v", again, err)
		}
	})
}
