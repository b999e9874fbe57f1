package traversal

import (
	"context"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/camagent/camagent/p2p/candidate"
	"github.com/camagent/camagent/p2p/natwire"
	"github.com/camagent/camagent/p2p/portspray"
)

// sprayEnv is a Server whose camera has a measured mapping, fan-out
// sockets on loopback and a recorded Hole hand-over; the viewer's
// packets come from peer.
type sprayEnv struct {
	*serverEnv
	peer netip.AddrPort

	mu    sync.Mutex
	holes []netip.AddrPort // peers handed a hole
	conns []net.PacketConn
}

func newSprayEnv(t *testing.T, mapping natwire.Mapping, peer netip.AddrPort) *sprayEnv {
	clock := &fakeClock{t: time.Unix(1_800_000_000, 0)}
	cands := candidate.NewSet()
	cands.Add(camHost, candidate.Host, "host")
	camEnd, viewerEnd := natwire.NewPipe()
	e := &sprayEnv{peer: peer, serverEnv: &serverEnv{
		t: t, clock: clock, punch: &punchLog{sent: map[netip.AddrPort]int{}}, viewer: viewerEnd,
		guard: NewGuard(GuardConfig{Now: clock.Now}),
	}}
	e.srv = NewServer(ServerConfig{
		Channel: camEnd, Candidates: cands, Punch: e.punch.send, Guard: e.guard,
		Peer:    func() net.Addr { return net.UDPAddrFromAddrPort(peer) },
		Mapping: func() natwire.Mapping { return mapping },
		Listen:  portspray.ListenUDP(netip.MustParseAddr("127.0.0.1")),
		Hole: func(c net.PacketConn, p netip.AddrPort, first []byte) func() {
			e.mu.Lock()
			e.holes = append(e.holes, p)
			e.conns = append(e.conns, c)
			e.mu.Unlock()
			return func() { c.Close() }
		},
		PunchesPerPair: 3, PunchInterval: time.Hour,
		Now: clock.Now,
	})
	t.Cleanup(func() { e.srv.Close() })
	// NAT_BEHAVIOR comes before the first ADD_ADDRESS, so the viewer's
	// first round knows the camera's mapping.
	if f, ok := e.receive().(*natwire.NATBehavior); !ok || f.Mapping != mapping {
		t.Fatalf("first frame %#v, want NAT_BEHAVIOR %v", f, mapping)
	}
	if f, ok := e.receive().(*natwire.AddAddress); !ok || f.Addr != camHost {
		t.Fatalf("second frame %#v", f)
	}
	return e
}

// many sends PUNCH_MANY and waits until the Server has handled it.
func (e *sprayEnv) many(f *natwire.PunchMany) {
	e.t.Helper()
	before := e.srv.Stats()
	if err := e.viewer.Send(f); err != nil {
		e.t.Fatal(err)
	}
	e.waitFor("PUNCH_MANY handled", func(st ServerStats) bool {
		return st.Sprays != before.Sprays || st.Refused != before.Refused
	})
}

func (e *sprayEnv) waitFor(what string, cond func(ServerStats) bool) {
	e.t.Helper()
	deadline := time.After(testTimeout)
	for !cond(e.srv.Stats()) {
		select {
		case <-deadline:
			e.t.Fatalf("%s: not within %v (%+v)", what, testTimeout, e.srv.Stats())
		case <-time.After(time.Millisecond):
		}
	}
}

// Behind an endpoint-independent NAT the camera sprays 2048 guesses at
// distinct ports of the viewer's observed IP, and answers fan-out
// packets from that IP for a while.
func TestServerSpraysTheViewersIP(t *testing.T) {
	e := newSprayEnv(t, natwire.MappingIndependent, viewerPub)
	e.many(&natwire.PunchMany{Round: 1, PairedWith: 0, Mode: natwire.SprayPorts, Addr: viewerPub})
	e.waitFor("guesses sent", func(st ServerStats) bool { return st.Guesses == portspray.DefaultGuesses })
	ports := 0
	for to, n := range e.punch.snapshot() {
		if to.Addr() != viewerPub.Addr() || n != 1 {
			t.Fatalf("guess to %v (%d times)", to, n)
		}
		ports++
	}
	if ports != portspray.DefaultGuesses {
		t.Fatalf("%d distinct ports", ports)
	}
	if !e.guard.answersFan(viewerPub.Addr()) || e.guard.answersFan(victim.Addr()) {
		t.Fatal("fan-out answers not limited to the sprayed IP")
	}
	e.clock.add(SprayAnswerWindow + time.Second)
	if e.guard.answersFan(viewerPub.Addr()) {
		t.Fatal("fan-out answered after the window")
	}
}

// Behind an endpoint-dependent NAT the camera fans out toward the
// viewer; the socket the viewer answers is handed over as the hole and
// punches from there.
func TestServerFanOutHandsOverTheHole(t *testing.T) {
	peer, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	peerAddr := peer.LocalAddr().(*net.UDPAddr).AddrPort()
	e := newSprayEnv(t, natwire.MappingDependent, peerAddr)
	// The viewer answers the first fan-out packet, as its guess would,
	// and keeps reading (256 fan-out packets would fill a socket buffer).
	fanFrom := make(chan net.Addr, 1)
	punchFrom := make(chan net.Addr, 16)
	go func() {
		buf := make([]byte, 64)
		answered := false
		for {
			n, from, err := peer.ReadFrom(buf)
			if err != nil {
				return
			}
			switch kind, _, _ := parsePacket(buf[:n]); {
			case kind == kindFan && !answered:
				answered = true
				peer.WriteTo(makePacket(kindGuess, 1), from)
				fanFrom <- from
			case kind == kindPunch:
				select {
				case punchFrom <- from:
				default:
				}
			}
		}
	}()
	e.many(&natwire.PunchMany{Round: 1, PairedWith: 0, Mode: natwire.SprayFanOut, Addr: peerAddr})
	e.waitFor("hole", func(st ServerStats) bool { return st.Holes == 1 })
	hole := <-fanFrom
	e.mu.Lock()
	if len(e.holes) != 1 || e.holes[0] != peerAddr || e.conns[0].LocalAddr().String() != hole.String() {
		t.Fatalf("hole handed over for %v on %v, the viewer answered %v", e.holes, e.conns, hole)
	}
	e.mu.Unlock()
	// The punch train leaves from the hole, not the QUIC socket.
	select {
	case from := <-punchFrom:
		if from.String() != hole.String() {
			t.Fatalf("punch from %v, want the hole %v", from, hole)
		}
	case <-time.After(testTimeout):
		t.Fatal("no punch from the hole")
	}
	if len(e.punch.snapshot()) != 0 {
		t.Fatalf("punched from the QUIC socket: %v", e.punch.snapshot())
	}
	if !e.guard.IsTarget(peerAddr) {
		t.Fatal("fan-out target not held: its keepalives would go unanswered")
	}
}

func TestServerRefusesPunchMany(t *testing.T) {
	other := netip.MustParseAddrPort("198.51.100.7:40001") // the viewer's IP, another port
	tests := []struct {
		name    string
		mapping natwire.Mapping
		setup   func(e *sprayEnv)
		f       natwire.PunchMany
	}{
		{"spray at an IP the viewer was not observed at", natwire.MappingIndependent, nil,
			natwire.PunchMany{Round: 1, Mode: natwire.SprayPorts, Addr: victim}},
		{"fan-out toward an address the viewer was not observed at", natwire.MappingDependent, nil,
			natwire.PunchMany{Round: 1, Mode: natwire.SprayFanOut, Addr: other}},
		{"spray from behind an endpoint-dependent NAT", natwire.MappingDependent, nil,
			natwire.PunchMany{Round: 1, Mode: natwire.SprayPorts, Addr: viewerPub}},
		{"fan-out from behind an endpoint-independent NAT", natwire.MappingIndependent, nil,
			natwire.PunchMany{Round: 1, Mode: natwire.SprayFanOut, Addr: viewerPub}},
		{"paired with a candidate never advertised", natwire.MappingIndependent, nil,
			natwire.PunchMany{Round: 1, PairedWith: 7, Mode: natwire.SprayPorts, Addr: viewerPub}},
		{"stale round", natwire.MappingIndependent, func(e *sprayEnv) { e.ask(3, 0, viewerPub) },
			natwire.PunchMany{Round: 2, Mode: natwire.SprayPorts, Addr: viewerPub}},
		{"again too soon", natwire.MappingIndependent, func(e *sprayEnv) {
			e.many(&natwire.PunchMany{Round: 1, Mode: natwire.SprayPorts, Addr: viewerPub})
			e.clock.add(MinSprayInterval / 2)
		}, natwire.PunchMany{Round: 2, Mode: natwire.SprayPorts, Addr: viewerPub}},
		{"too many on one connection", natwire.MappingIndependent, func(e *sprayEnv) {
			for i := range MaxSpraysPerConn {
				e.many(&natwire.PunchMany{Round: uint64(i + 1), Mode: natwire.SprayPorts, Addr: viewerPub})
				e.clock.add(MinSprayInterval)
			}
		}, natwire.PunchMany{Round: 10, Mode: natwire.SprayPorts, Addr: viewerPub}},
		{"another fan-out holds its sockets", natwire.MappingDependent, func(e *sprayEnv) {
			if !e.guard.beginFanOut() {
				e.t.Fatal("no fan-out allowed at all")
			}
		}, natwire.PunchMany{Round: 1, Mode: natwire.SprayFanOut, Addr: viewerPub}},
		{"camera-wide budget spent", natwire.MappingIndependent, func(e *sprayEnv) {
			for range MaxSpraysPerMinute {
				if !e.guard.takeSpray() {
					e.t.Fatal("budget smaller than MaxSpraysPerMinute")
				}
			}
		}, natwire.PunchMany{Round: 1, Mode: natwire.SprayPorts, Addr: viewerPub}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newSprayEnv(t, tc.mapping, viewerPub)
			if tc.setup != nil {
				tc.setup(e)
			}
			before := e.srv.Stats()
			e.many(&tc.f)
			st := e.srv.Stats()
			if st.Refused != before.Refused+1 || st.Sprays != before.Sprays {
				t.Fatalf("not refused: %+v", st)
			}
		})
	}
}

// The Responder answers a fan-out packet only from a sprayed IP, with a
// punch of the same size, and hands the camera's own mapping probes on.
func TestResponderFanAndMappingProbe(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1_800_000_000, 0)}
	g := NewGuard(GuardConfig{Now: clock.Now})
	g.answerFans(viewerPub.Addr(), clock.Now().Add(time.Second))
	var mu sync.Mutex
	var sent []netip.AddrPort
	var probes []netip.AddrPort
	in := make(chan struct {
		b    []byte
		from net.Addr
	}, 4)
	r := NewResponder(ResponderConfig{
		Read: func(ctx context.Context, b []byte) (int, net.Addr, error) {
			select {
			case p := <-in:
				return copy(b, p.b), p.from, nil
			case <-ctx.Done():
				return 0, nil, ctx.Err()
			}
		},
		Write: func(b []byte, to net.Addr) (int, error) {
			if kind, _, ok := parsePacket(b); !ok || kind != kindPunch {
				t.Errorf("answered with %q", b)
			}
			mu.Lock()
			sent = append(sent, to.(*net.UDPAddr).AddrPort())
			mu.Unlock()
			return len(b), nil
		},
		Guard: g,
		OnMappingProbe: func(token uint64, from netip.AddrPort) {
			mu.Lock()
			probes = append(probes, from)
			mu.Unlock()
		},
	})
	defer r.Close()
	send := func(b []byte, from netip.AddrPort) {
		in <- struct {
			b    []byte
			from net.Addr
		}{b, net.UDPAddrFromAddrPort(from)}
	}
	fromViewer := netip.AddrPortFrom(viewerPub.Addr(), 5555)
	send(makePacket(kindFan, 1), victim)     // not sprayed: ignored
	send(makePacket(kindFan, 1), fromViewer) // answered
	send(MappingProbePacket(9), victim)      // handed on
	deadline := time.After(testTimeout)
	for {
		mu.Lock()
		done := len(sent) == 1 && len(probes) == 1 && r.Ignored() == 1
		mu.Unlock()
		if done {
			break
		}
		select {
		case <-deadline:
			t.Fatalf("sent %v, probes %v, ignored %d", sent, probes, r.Ignored())
		case <-time.After(time.Millisecond):
		}
	}
	if sent[0] != fromViewer || probes[0] != victim {
		t.Fatalf("answered %v, probe from %v", sent, probes)
	}
}

func TestSprayMode(t *testing.T) {
	const (
		unknown = natwire.MappingUnknown
		eim     = natwire.MappingIndependent
		edm     = natwire.MappingDependent
	)
	tests := []struct {
		camera, viewer natwire.Mapping
		canFanOut      bool
		want           natwire.SprayMode
		ok             bool
	}{
		{edm, eim, true, natwire.SprayFanOut, true},  // symmetric camera, home-router viewer
		{edm, eim, false, natwire.SprayFanOut, true}, // the camera fans out, not the viewer
		{eim, edm, true, natwire.SprayPorts, true},   // home-router camera, symmetric (mobile) viewer
		{eim, edm, false, 0, false},                  // a viewer that cannot open sockets
		{edm, edm, true, 0, false},                   // symmetric / symmetric: nothing to aim at
		{eim, eim, true, 0, false},                   // ordinary punching's case
		{unknown, edm, true, 0, false},               // an old camera, or a relay in firewall mode
		{edm, unknown, true, 0, false},               // the viewer's STUN went unanswered
	}
	for _, tc := range tests {
		got, ok := sprayMode(tc.camera, tc.viewer, tc.canFanOut)
		if got != tc.want || ok != tc.ok {
			t.Errorf("sprayMode(camera %v, viewer %v, fan-out %v) = %v, %v; want %v, %v",
				tc.camera, tc.viewer, tc.canFanOut, got, ok, tc.want, tc.ok)
		}
	}
}
