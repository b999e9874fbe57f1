package traversal

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/camagent/camagent/p2p/candidate"
	"github.com/camagent/camagent/p2p/natwire"
)

const testTimeout = 20 * time.Second

// fakeClock is advanced by the test only.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// punchLog records every punch packet the Server sends.
type punchLog struct {
	mu   sync.Mutex
	sent map[netip.AddrPort]int
}

func (p *punchLog) send(b []byte, to net.Addr) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.sent[to.(*net.UDPAddr).AddrPort()]++
	return len(b), nil
}

func (p *punchLog) snapshot() map[netip.AddrPort]int {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(map[netip.AddrPort]int, len(p.sent))
	for k, v := range p.sent {
		out[k] = v
	}
	return out
}

var (
	camHost   = netip.MustParseAddrPort("192.168.1.2:4433")
	viewerPub = netip.MustParseAddrPort("198.51.100.7:40000") // where the viewer's packets come from
	viewerLAN = netip.MustParseAddrPort("192.168.1.50:40000")
	victim    = netip.MustParseAddrPort("203.0.113.66:53") // nobody's candidate
)

type serverEnv struct {
	t      *testing.T
	clock  *fakeClock
	punch  *punchLog
	srv    *Server
	viewer *natwire.Pipe
	guard  *Guard
}

func newServerEnv(t *testing.T, guardCfg GuardConfig) *serverEnv {
	return newServerEnvInterval(t, guardCfg, time.Hour) // only the first packet of a train is sent at once
}

func newServerEnvInterval(t *testing.T, guardCfg GuardConfig, interval time.Duration) *serverEnv {
	clock := &fakeClock{t: time.Unix(1_800_000_000, 0)}
	guardCfg.Now = clock.Now
	if guardCfg.LocalPrefixes == nil {
		guardCfg.LocalPrefixes = []netip.Prefix{netip.MustParsePrefix("192.168.1.0/24")}
	}
	cands := candidate.NewSet()
	cands.Add(camHost, candidate.Host, "host")
	camEnd, viewerEnd := natwire.NewPipe()
	e := &serverEnv{t: t, clock: clock, punch: &punchLog{sent: map[netip.AddrPort]int{}}, viewer: viewerEnd, guard: NewGuard(guardCfg)}
	e.srv = NewServer(ServerConfig{
		Channel: camEnd, Candidates: cands, Punch: e.punch.send, Guard: e.guard,
		Peer:           func() net.Addr { return net.UDPAddrFromAddrPort(viewerPub) },
		PunchesPerPair: 3, PunchInterval: interval,
		Now: clock.Now,
	})
	t.Cleanup(func() { e.srv.Close() })
	// The first frame is the camera's ADD_ADDRESS, sequence 0.
	f := e.receive()
	if add, ok := f.(*natwire.AddAddress); !ok || add.Seq != 0 || add.Addr != camHost {
		t.Fatalf("first frame %#v", f)
	}
	return e
}

func (e *serverEnv) receive() natwire.Frame {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	f, err := e.viewer.Receive(ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	return f
}

// ask sends PUNCH_ME_NOW and waits until the Server has handled it.
func (e *serverEnv) ask(round, paired uint64, to netip.AddrPort) {
	e.t.Helper()
	before := e.srv.Stats().PunchRequests
	if err := e.viewer.Send(&natwire.PunchMeNow{Round: round, PairedWith: paired, Addr: to}); err != nil {
		e.t.Fatal(err)
	}
	deadline := time.After(testTimeout)
	for e.srv.Stats().PunchRequests == before {
		select {
		case <-deadline:
			e.t.Fatal("PUNCH_ME_NOW not handled")
		case <-time.After(time.Millisecond):
		}
	}
}

func TestServerPunchesAllowedTargets(t *testing.T) {
	e := newServerEnv(t, GuardConfig{})
	e.ask(1, 0, viewerPub) // observed for this connection
	e.ask(1, 0, viewerLAN) // on the camera's LAN
	got := e.punch.snapshot()
	if got[viewerPub] != 1 || got[viewerLAN] != 1 || len(got) != 2 {
		t.Fatalf("punched %v", got)
	}
	if !e.guard.IsTarget(viewerPub) || e.guard.IsTarget(victim) {
		t.Fatal("guard targets wrong")
	}
	e.srv.Close()
	if e.guard.IsTarget(viewerPub) {
		t.Fatal("targets not released on Close")
	}
}

func TestServerRefusesAbuse(t *testing.T) {
	tests := []struct {
		name   string
		setup  func(e *serverEnv) // earlier, accepted requests
		round  uint64
		paired uint64
		to     netip.AddrPort
		stale  bool
	}{
		{name: "address outside the allowed set", round: 1, to: victim},
		{name: "loopback of the camera", round: 1, to: netip.MustParseAddrPort("127.0.0.1:22")},
		{name: "broadcast", round: 1, to: netip.MustParseAddrPort("255.255.255.255:9")},
		{name: "multicast", round: 1, to: netip.MustParseAddrPort("224.0.0.251:5353")},
		{name: "port zero", round: 1, to: netip.AddrPortFrom(viewerPub.Addr(), 0)},
		{name: "paired with a candidate never advertised", round: 1, paired: 99, to: viewerPub},
		{name: "round zero", round: 0, to: viewerPub, stale: true},
		{name: "replayed old round", setup: func(e *serverEnv) {
			e.ask(5, 0, viewerPub)
		}, round: 4, to: viewerLAN, stale: true},
		{name: "new round too soon", setup: func(e *serverEnv) {
			e.ask(1, 0, viewerPub)
			e.clock.add(MinRoundInterval / 2)
		}, round: 2, to: viewerLAN},
		{name: "too many pairs in a round", setup: func(e *serverEnv) {
			for i := range MaxPairsPerRound {
				e.ask(1, 0, netip.AddrPortFrom(viewerLAN.Addr(), uint16(1000+i)))
			}
		}, round: 1, to: viewerPub},
		{name: "walking the LAN", setup: func(e *serverEnv) {
			for i := range MaxTargetsPerConn {
				e.ask(uint64(i+1), 0, netip.AddrPortFrom(netip.AddrFrom4([4]byte{192, 168, 1, byte(10 + i)}), 9))
				e.clock.add(MinRoundInterval)
			}
		}, round: 100, to: netip.MustParseAddrPort("192.168.1.200:9")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newServerEnv(t, GuardConfig{})
			if tc.setup != nil {
				tc.setup(e)
			}
			before, stats := e.punch.snapshot(), e.srv.Stats()
			e.ask(tc.round, tc.paired, tc.to)
			after := e.punch.snapshot()
			if after[tc.to] != before[tc.to] {
				t.Fatalf("punched %v: %v", tc.to, after)
			}
			st := e.srv.Stats()
			if tc.stale && st.Stale != stats.Stale+1 || !tc.stale && st.Refused != stats.Refused+1 {
				t.Fatalf("not counted: %+v", st)
			}
		})
	}
}

func TestServerRemovedCandidateCannotBePaired(t *testing.T) {
	e := newServerEnv(t, GuardConfig{})
	e.srv.cfg.Candidates.(*candidate.Set).Remove(camHost, "host")
	if f, ok := e.receive().(*natwire.RemoveAddress); !ok || f.Seq != 0 {
		t.Fatalf("want REMOVE_ADDRESS 0, got %#v", f)
	}
	e.ask(1, 0, viewerPub)
	if got := e.punch.snapshot(); len(got) != 0 {
		t.Fatalf("punched for a withdrawn candidate: %v", got)
	}
}

func TestServerNewRoundCancelsOld(t *testing.T) {
	e := newServerEnvInterval(t, GuardConfig{}, time.Millisecond)
	e.ask(1, 0, viewerLAN)
	e.clock.add(MinRoundInterval)
	e.ask(2, 0, viewerPub)
	round1 := e.punch.snapshot()[viewerLAN]
	// Round 1's train is gone: only round 2's target keeps being punched.
	deadline := time.After(testTimeout)
	for e.punch.snapshot()[viewerPub] < 3 {
		e.clock.add(time.Millisecond)
		select {
		case <-deadline:
			t.Fatalf("round 2 train incomplete: %v", e.punch.snapshot())
		case <-time.After(time.Millisecond):
		}
	}
	if n := e.punch.snapshot()[viewerLAN]; n != round1 {
		t.Fatalf("round 1 target punched %d times after round 2 started", n)
	}
}

func TestGuardBudgetBoundsFlood(t *testing.T) {
	e := newServerEnv(t, GuardConfig{Rate: 1, Burst: 3})
	// A flood of rounds, each as soon as allowed, to LAN addresses.
	for i := range 20 {
		e.ask(uint64(i+1), 0, viewerLAN)
		e.clock.add(MinRoundInterval)
	}
	// 20 rounds over 10 s of fake time: at most the burst plus 1/s.
	st := e.srv.Stats()
	if st.PunchesSent > 3+10 || st.Throttled == 0 {
		t.Fatalf("budget not enforced: %+v", st)
	}
}

func TestServerProtocolViolation(t *testing.T) {
	e := newServerEnv(t, GuardConfig{})
	e.viewer.Send(&natwire.AddAddress{Seq: 1, Addr: viewerPub}) // only the camera may
	select {
	case <-e.srv.Done():
	case <-time.After(testTimeout):
		t.Fatal("server kept running")
	}
	if err := e.srv.Err(); err == nil {
		t.Fatal("no error")
	}
}

func TestResponderEchoesOnlyTargets(t *testing.T) {
	g := NewGuard(GuardConfig{})
	g.hold(viewerPub)
	type pkt struct {
		b    []byte
		from netip.AddrPort
	}
	in := make(chan pkt, 8)
	out := make(chan pkt, 8)
	r := NewResponder(ResponderConfig{
		Read: func(ctx context.Context, b []byte) (int, net.Addr, error) {
			select {
			case p := <-in:
				return copy(b, p.b), net.UDPAddrFromAddrPort(p.from), nil
			case <-ctx.Done():
				return 0, nil, ctx.Err()
			}
		},
		Write: func(b []byte, to net.Addr) (int, error) {
			out <- pkt{append([]byte(nil), b...), to.(*net.UDPAddr).AddrPort()}
			return len(b), nil
		},
		Guard: g,
	})
	defer r.Close()
	in <- pkt{KeepalivePacket(1), victim}          // spoofed source: not a target
	in <- pkt{[]byte{0, 'x'}, viewerPub}           // not a keepalive
	in <- pkt{makePacket(kindPunch, 1), viewerPub} // not a keepalive
	in <- pkt{KeepalivePacket(42), viewerPub}      // answered
	select {
	case p := <-out:
		kind, token, ok := parsePacket(p.b)
		if p.from != viewerPub || !ok || kind != kindKeepaliveEcho || token != 42 || len(p.b) != len(KeepalivePacket(42)) {
			t.Fatalf("echo %v to %v", p.b, p.from)
		}
	case <-time.After(testTimeout):
		t.Fatal("no echo")
	}
	if r.Ignored() != 3 {
		t.Fatalf("ignored %d, want 3", r.Ignored())
	}
}

func TestResponderLifecycle(t *testing.T) {
	failed := errors.New("socket closed")
	reads := make(chan error)
	newResponder := func() *Responder {
		return NewResponder(ResponderConfig{
			Read: func(ctx context.Context, b []byte) (int, net.Addr, error) {
				select {
				case err := <-reads:
					return 0, nil, err
				case <-ctx.Done():
					return 0, nil, ctx.Err()
				}
			},
			Write: func(b []byte, to net.Addr) (int, error) { return len(b), nil },
			Guard: NewGuard(GuardConfig{}),
		})
	}
	t.Run("Close", func(t *testing.T) {
		r := newResponder()
		if err := r.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		<-r.Done()
		if err := r.Err(); err != nil {
			t.Fatalf("Err after Close: %v", err)
		}
		if err := r.Close(); err != nil {
			t.Fatalf("second Close: %v", err)
		}
	})
	t.Run("read error", func(t *testing.T) {
		r := newResponder()
		reads <- failed
		<-r.Done()
		if err := r.Err(); !errors.Is(err, failed) {
			t.Fatalf("Err = %v, want %v", err, failed)
		}
		if err := r.Close(); err != nil {
			t.Fatalf("Close after failure: %v", err)
		}
	})
}
