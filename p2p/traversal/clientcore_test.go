package traversal

import (
	"fmt"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/camagent/camagent/p2p/candidate"
	"github.com/camagent/camagent/p2p/natwire"
)

// The viewer's side of the decision tests: a LAN 192.168.1.0/24 shared
// with the camera's host candidate camHost (server_test.go), a relay, and
// the camera's public (reflexive) and far private candidates.
var (
	viewerLANs = []netip.Prefix{netip.MustParsePrefix("192.168.1.0/24")}
	relayAddr  = netip.MustParseAddrPort("203.0.113.1:443")
	camPub     = netip.MustParseAddrPort("198.51.100.20:4433")
	camFar     = netip.MustParseAddrPort("10.9.0.2:4433")
	camHost6   = netip.MustParseAddrPort("[2001:db8::2]:4433")
	viewer6    = netip.MustParseAddrPort("[2001:db8::50]:40000")
	coreRTT    = 40 * time.Millisecond
	coreStart  = time.Unix(1_800_000_000, 0)
)

// coreTest drives a clientCore by hand: events in at a fake time, with
// what the driver would sense, actions out.
type coreTest struct {
	t    *testing.T
	d    *clientCore
	now  time.Time
	seen senses
	wake time.Time // of the last armTimer
}

func newCoreTest(t *testing.T, mutate func(*coreConfig)) *coreTest {
	cfg := coreConfig{
		Relay: relayAddr, LocalPrefixes: viewerLANs,
		ProbeTimeout: DefaultProbeTimeout, Keepalive: DefaultKeepalive, DeadAfter: DefaultDeadAfter,
		RetryMin: DefaultRetryMin, RetryMax: DefaultRetryMax, RelayRefresh: DefaultRelayRefresh,
	}
	if mutate != nil {
		mutate(&cfg)
	}
	return &coreTest{t: t, d: newClientCore(cfg), now: coreStart,
		seen: senses{local: []netip.AddrPort{viewerLAN}, rtt: coreRTT}}
}

func (c *coreTest) handle(ev event) []action {
	c.t.Helper()
	acts := c.d.handle(ev, c.now, c.seen)
	last, ok := acts[len(acts)-1].(armTimer)
	if !ok {
		c.t.Fatalf("%T: last action %T, want armTimer", ev, acts[len(acts)-1])
	}
	if !last.at.IsZero() && !last.at.After(c.now) {
		c.t.Fatalf("%T: timer armed at %v, not after now %v: the driver would spin", ev, last.at.Sub(coreStart), c.now.Sub(coreStart))
	}
	c.wake = last.at
	return acts
}

// add advertises the camera's candidate addr as seq.
func (c *coreTest) add(seq uint64, addr netip.AddrPort) []action {
	return c.handle(candidateAdded{&natwire.AddAddress{Seq: seq, Addr: addr}})
}

// timed is an action and when it was taken.
type timed struct {
	at time.Duration // since coreStart
	a  action
}

// fireUntil fires the core's timer each time it is due, up to end, and
// returns what it did.
func (c *coreTest) fireUntil(end time.Time) []timed {
	c.t.Helper()
	var out []timed
	for !c.wake.IsZero() && !c.wake.After(end) {
		c.now = c.wake
		for _, a := range c.handle(timerFired{}) {
			out = append(out, timed{c.now.Sub(coreStart), a})
		}
	}
	c.now = end
	return out
}

// firstProbe adds candidates and runs the timer until the round's first
// probe starts; now is then the time it started.
func (c *coreTest) firstProbe(cands ...netip.AddrPort) startProbe {
	c.t.Helper()
	for i, a := range cands {
		c.add(uint64(i), a)
	}
	for end := c.now.Add(time.Second); !c.wake.IsZero() && !c.wake.After(end); {
		c.now = c.wake
		if p := actionsOf[startProbe](c.handle(timerFired{})); len(p) > 0 {
			return p[0]
		}
	}
	c.t.Fatal("no probe within 1 s")
	return startProbe{}
}

// goDirect takes the connection direct over the first probe's address.
func (c *coreTest) goDirect(cands ...netip.AddrPort) startProbe {
	c.t.Helper()
	p := c.firstProbe(cands...)
	c.handle(probeDone{id: p.id, ok: true})
	c.seen.lastHeard = c.now
	c.handle(switchDone{id: p.id, ok: true})
	if !c.d.direct() {
		c.t.Fatal("not direct after a validated probe and switch")
	}
	return p
}

func actionsOf[T action](acts []action) []T {
	var out []T
	for _, a := range acts {
		if v, ok := a.(T); ok {
			out = append(out, v)
		}
	}
	return out
}

func timedOf[T action](acts []timed) []timed {
	var out []timed
	for _, ta := range acts {
		if _, ok := ta.a.(T); ok {
			out = append(out, ta)
		}
	}
	return out
}

func events(acts []action) []EventKind {
	var out []EventKind
	for _, e := range actionsOf[emit](acts) {
		out = append(out, e.e.Kind)
	}
	return out
}

// TestCoreRoundStart: a round pairs each camera candidate with the
// viewer's candidates of its family (at most MaxPairsPerRound), sends a
// PUNCH_ME_NOW per pair, and probes the paired candidates one at a time,
// likeliest first, one RTT (+10 ms) after the PUNCH_ME_NOWs.
func TestCoreRoundStart(t *testing.T) {
	tests := []struct {
		name      string
		camera    []netip.AddrPort // advertised as seq 0, 1, ...
		local     []netip.AddrPort
		wantPairs []string // "seq>viewer address"
		wantOrder []netip.AddrPort
	}{
		{"one pair", []netip.AddrPort{camPub}, []netip.AddrPort{viewerLAN},
			[]string{"0>" + viewerLAN.String()}, []netip.AddrPort{camPub}},
		{"LAN first, then public, then other private networks",
			[]netip.AddrPort{camFar, camPub, camHost}, []netip.AddrPort{viewerLAN},
			[]string{"0>" + viewerLAN.String(), "1>" + viewerLAN.String(), "2>" + viewerLAN.String()},
			[]netip.AddrPort{camHost, camPub, camFar}},
		{"families pair only with their own", []netip.AddrPort{camHost6, camPub}, []netip.AddrPort{viewerLAN, viewer6},
			[]string{"0>" + viewer6.String(), "1>" + viewerLAN.String()}, []netip.AddrPort{camHost6, camPub}},
		{"an IPv6 candidate with no IPv6 of the viewer's is not probed", []netip.AddrPort{camHost6, camPub}, []netip.AddrPort{viewerLAN},
			[]string{"1>" + viewerLAN.String()}, []netip.AddrPort{camPub}},
		{"at most MaxPairsPerRound pairs", []netip.AddrPort{camHost, camPub, camFar},
			[]netip.AddrPort{viewerLAN, viewerPub},
			[]string{"0>" + viewerLAN.String(), "0>" + viewerPub.String(), "1>" + viewerLAN.String(), "1>" + viewerPub.String()},
			[]netip.AddrPort{camHost, camPub}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := newCoreTest(t, nil)
			c.seen.local = tc.local
			for i, a := range tc.camera {
				c.add(uint64(i), a)
			}
			if want := coreStart.Add(gatherDelay); !c.wake.Equal(want) {
				t.Fatalf("round planned at %v, want after gatherDelay", c.wake.Sub(coreStart))
			}
			c.now = c.wake
			acts := c.handle(timerFired{})
			var pairs []string
			for _, f := range actionsOf[sendFrame](acts) {
				p := f.f.(*natwire.PunchMeNow)
				if p.Round != 1 {
					t.Errorf("PUNCH_ME_NOW round %d, want 1", p.Round)
				}
				pairs = append(pairs, fmt.Sprintf("%d>%v", p.PairedWith, p.Addr))
			}
			if !slices.Equal(pairs, tc.wantPairs) {
				t.Errorf("pairs %v, want %v", pairs, tc.wantPairs)
			}
			started := actionsOf[roundStarted](acts)
			if len(started) != 1 || !slices.Equal(started[0].candidates, tc.wantOrder) {
				t.Fatalf("round %+v, want probe order %v", started, tc.wantOrder)
			}
			if len(actionsOf[startProbe](acts)) != 0 {
				t.Fatal("probed with the PUNCH_ME_NOWs: the probe would overtake the camera's punch")
			}
			// One probe at a time (maxProbes), one RTT and a margin after
			// the PUNCH_ME_NOWs.
			probes := timedOf[startProbe](c.fireUntil(c.now.Add(time.Second)))
			wantAt := gatherDelay + coreRTT + 10*time.Millisecond
			if len(probes) != 1 || probes[0].at != wantAt || probes[0].a.(startProbe).addr != tc.wantOrder[0] {
				t.Fatalf("probes %v, want one of %v at %v", probes, tc.wantOrder[0], wantAt)
			}
		})
	}
}

// TestCoreProbesInTurn: a failed probe starts the next candidate's; the
// round fails when none is left, and a validated probe switches and
// abandons the others.
func TestCoreProbesInTurn(t *testing.T) {
	c := newCoreTest(t, nil)
	first := c.firstProbe(camHost, camPub)
	acts := c.handle(probeDone{id: first.id})
	next := actionsOf[startProbe](acts)
	if len(next) != 1 || next[0].addr != camPub {
		t.Fatalf("after a failure: %v, want the probe of %v", acts, camPub)
	}
	if got := actionsOf[abandonProbe](acts); len(got) != 1 || got[0].id != first.id {
		t.Fatalf("failed probe not closed: %v", acts)
	}
	acts = c.handle(probeDone{id: next[0].id})
	if got := events(acts); !slices.Equal(got, []EventKind{EventRoundFailed}) {
		t.Fatalf("events %v after the last probe failed, want round-failed", got)
	}
	if want := c.now.Add(DefaultRetryMin); !c.wake.Equal(want) {
		t.Fatalf("next round at %v, want RetryMin later", c.wake.Sub(c.now))
	}

	// Round 2: the first probe validates.
	c.fireUntil(c.wake)
	p := timedOf[startProbe](c.fireUntil(c.now.Add(time.Second)))
	if len(p) != 1 {
		t.Fatalf("round 2 probes %v", p)
	}
	acts = c.handle(probeDone{id: p[0].a.(startProbe).id, ok: true})
	if len(acts) != 3 || acts[0] != (muteRelay{true}) || acts[1] != (switchPath{p[0].a.(startProbe).id, camHost}) {
		t.Fatalf("after validation %v, want the relay muted, then the switch", acts)
	}
	c.seen.lastHeard = c.now
	acts = c.handle(switchDone{id: p[0].a.(startProbe).id, ok: true})
	if got := events(acts); !slices.Equal(got, []EventKind{EventDirect}) {
		t.Fatalf("events %v, want direct", got)
	}
}

// TestCoreStaleProbeResult: the result of a probe the core abandoned
// (a peer-reflexive candidate of the same IP came) never switches.
func TestCoreStaleProbeResult(t *testing.T) {
	c := newCoreTest(t, nil)
	p := c.firstProbe(camPub)
	reflexive := netip.AddrPortFrom(camPub.Addr(), 50001)
	acts := c.handle(punchHeard{reflexive})
	if got := actionsOf[abandonProbe](acts); len(got) != 1 || got[0].id != p.id {
		t.Fatalf("probe of the same IP not abandoned: %v", acts)
	}
	acts = c.handle(probeDone{id: p.id, ok: true})
	if len(actionsOf[switchPath](acts)) != 0 {
		t.Fatal("switched to an abandoned probe's path")
	}
	if next := actionsOf[startProbe](acts); len(next) != 1 || next[0].addr != reflexive {
		t.Fatalf("%v, want the peer-reflexive candidate probed next", acts)
	}
}

// TestCoreSwitchFails: a switch quic-go refuses abandons the path and
// goes on with the round.
func TestCoreSwitchFails(t *testing.T) {
	c := newCoreTest(t, nil)
	p := c.firstProbe(camHost, camPub)
	c.handle(probeDone{id: p.id, ok: true})
	acts := c.handle(switchDone{id: p.id})
	if c.d.direct() || len(actionsOf[abandonProbe](acts)) != 1 || !slices.Contains(acts, action(muteRelay{false})) {
		t.Fatalf("after a failed switch: %v", acts)
	}
	if next := actionsOf[startProbe](acts); len(next) != 1 || next[0].addr != camPub {
		t.Fatalf("%v, want the next candidate probed", acts)
	}
}

// TestCoreIgnoresUnusableCandidates: a camera's ADD_ADDRESS cannot aim the
// viewer's probes at an unusable address, nor grow its candidates past
// candidate.MaxCandidates.
func TestCoreIgnoresUnusableCandidates(t *testing.T) {
	for _, a := range []string{"0.0.0.0:4433", "192.168.1.2:0", "255.255.255.255:4433", "224.0.0.1:4433", "[ff02::1]:4433"} {
		c := newCoreTest(t, nil)
		c.add(0, netip.MustParseAddrPort(a))
		if len(c.d.remote) != 0 || !c.wake.IsZero() {
			t.Errorf("%s taken as a candidate", a)
		}
	}
	c := newCoreTest(t, nil)
	for i := range candidate.MaxCandidates + 4 {
		c.add(uint64(i), netip.AddrPortFrom(camPub.Addr(), uint16(1000+i)))
	}
	if len(c.d.remote) != candidate.MaxCandidates {
		t.Fatalf("%d candidates kept, want at most %d", len(c.d.remote), candidate.MaxCandidates)
	}
}

// TestCorePeerReflexive: which punches make a peer-reflexive candidate
// (clientCore.punchHeard). Each case starts with the camera's public
// candidate advertised and its round over.
func TestCorePeerReflexive(t *testing.T) {
	otherPort := netip.AddrPortFrom(camPub.Addr(), 50001)
	tests := []struct {
		name  string
		setup func(c *coreTest)
		from  netip.AddrPort
		want  bool // from is probed next
	}{
		{"another port of an advertised IP", nil, otherPort, true},
		{"an advertised address itself", nil, camPub, false},
		{"an IP the camera never advertised", nil, victim, false},
		{"the relay", func(c *coreTest) { c.add(5, netip.AddrPortFrom(relayAddr.Addr(), 9)) }, relayAddr, false},
		{"more than maxPeerReflexive", func(c *coreTest) {
			for i := range maxPeerReflexive {
				c.handle(punchHeard{netip.AddrPortFrom(camPub.Addr(), uint16(40000+i))})
				c.handle(probeDone{id: c.d.lastProbe})
			}
		}, otherPort, false},
		{"one learned before whose probe failed, heard again", func(c *coreTest) {
			c.handle(punchHeard{otherPort})
			c.handle(probeDone{id: c.d.lastProbe})
		}, otherPort, true},
		{"while direct", func(c *coreTest) {
			c.handle(punchHeard{otherPort})
			c.handle(probeDone{id: c.d.lastProbe, ok: true})
			c.seen.lastHeard = c.now
			c.handle(switchDone{id: c.d.lastProbe, ok: true})
		}, netip.AddrPortFrom(camPub.Addr(), 50002), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := newCoreTest(t, nil)
			p := c.firstProbe(camPub)
			c.handle(probeDone{id: p.id}) // the round fails
			if tc.setup != nil {
				tc.setup(c)
			}
			c.handle(punchHeard{tc.from})
			_, probing := c.d.probing[tc.from]
			if probed := probing || slices.Contains(c.d.queue, tc.from); probed != tc.want {
				t.Fatalf("punch from %v: probed %v, want %v", tc.from, probed, tc.want)
			}
		})
	}
}

// TestCorePeerReflexiveReplacesProbe: a peer-reflexive candidate goes
// first, and the probe of its IP's advertised port is given up for it.
func TestCorePeerReflexiveReplacesProbe(t *testing.T) {
	c := newCoreTest(t, nil)
	p := c.firstProbe(camPub, camFar)
	reflexive := netip.AddrPortFrom(camPub.Addr(), 50001)
	acts := c.handle(punchHeard{reflexive})
	if got := actionsOf[abandonProbe](acts); len(got) != 1 || got[0].id != p.id {
		t.Fatalf("%v, want the probe of %v abandoned", acts, camPub)
	}
	if !slices.Equal(c.d.queue, []netip.AddrPort{reflexive, camFar}) {
		t.Fatalf("queue %v, want the peer-reflexive candidate first", c.d.queue)
	}
}

// TestCoreWatchesDirectPath: while direct, what the core does after the
// direct path has been quiet for a while: a keepalive from Keepalive on,
// the relay path validated from DeadAfter/2, the fallback at DeadAfter.
func TestCoreWatchesDirectPath(t *testing.T) {
	tests := []struct {
		quiet time.Duration
		want  []action
	}{
		{DefaultKeepalive - time.Millisecond, nil},
		{DefaultKeepalive, []action{sendKeepalive{camHost}}},
		{DefaultDeadAfter/2 - time.Millisecond, []action{sendKeepalive{camHost}}},
		{DefaultDeadAfter / 2, []action{sendKeepalive{camHost}, muteRelay{false}, validateRelay{}}},
		{DefaultDeadAfter - time.Millisecond, []action{sendKeepalive{camHost}, muteRelay{false}, validateRelay{}}},
		{DefaultDeadAfter, []action{fallBack{}}},
	}
	for _, tc := range tests {
		t.Run(tc.quiet.String(), func(t *testing.T) {
			c := newCoreTest(t, nil)
			c.goDirect(camHost)
			c.now = c.seen.lastHeard.Add(tc.quiet)
			acts := c.handle(timerFired{})
			if got := acts[:len(acts)-1]; !slices.Equal(got, tc.want) {
				t.Fatalf("quiet %v: %v, want %v", tc.quiet, got, tc.want)
			}
		})
	}
}

// TestCoreFallback: a fallback that works abandons the direct path, says
// so and plans a round after the backoff; one that fails is tried again
// pollEvery later, not at once.
func TestCoreFallback(t *testing.T) {
	c := newCoreTest(t, nil)
	p := c.goDirect(camHost)
	c.now = c.seen.lastHeard.Add(DefaultDeadAfter)
	c.handle(timerFired{})
	acts := c.handle(fallbackDone{})
	if len(actionsOf[fallBack](acts)) != 0 || acts[0] != (muteRelay{true}) {
		t.Fatalf("after a failed fallback: %v", acts)
	}
	if want := c.now.Add(c.d.pollEvery()); !c.wake.Equal(want) {
		t.Fatalf("fallback tried again %v later, want %v", c.wake.Sub(c.now), c.d.pollEvery())
	}
	c.now = c.wake
	if acts := c.handle(timerFired{}); len(actionsOf[fallBack](acts)) != 1 {
		t.Fatalf("no second try: %v", acts)
	}
	acts = c.handle(fallbackDone{ok: true})
	if got := actionsOf[abandonProbe](acts); len(got) != 1 || got[0].id != p.id {
		t.Fatalf("direct path not closed: %v", acts)
	}
	if got := events(acts); !slices.Equal(got, []EventKind{EventRelay}) || c.d.direct() {
		t.Fatalf("events %v, want relay", got)
	}
	if want := c.now.Add(DefaultRetryMin); !c.wake.Equal(want) {
		t.Fatalf("next round %v later, want RetryMin", c.wake.Sub(c.now))
	}
}

// TestCoreDirectPathRecovers: packets on the direct path again after the
// relay path was validated mute the relay route again.
func TestCoreDirectPathRecovers(t *testing.T) {
	c := newCoreTest(t, nil)
	c.goDirect(camHost)
	c.now = c.seen.lastHeard.Add(DefaultDeadAfter / 2)
	c.handle(timerFired{})
	c.seen.lastHeard = c.now.Add(10 * time.Millisecond)
	c.now = c.seen.lastHeard
	acts := c.handle(timerFired{})
	if got := acts[:len(acts)-1]; !slices.Equal(got, []action{muteRelay{true}}) {
		t.Fatalf("after recovery: %v, want the relay route muted", got)
	}
}

// TestCoreRelayRefresh: while direct, a relay keepalive every
// RelayRefresh holds the viewer's mapping toward the relay.
func TestCoreRelayRefresh(t *testing.T) {
	c := newCoreTest(t, nil)
	c.goDirect(camHost)
	start := c.now
	var sent []time.Duration
	for c.now.Sub(start) < 2*DefaultRelayRefresh+time.Second {
		c.seen.lastHeard = c.now // a healthy path: always heard
		c.now = c.wake
		for range actionsOf[sendRelayKeepalive](c.handle(timerFired{})) {
			sent = append(sent, c.now.Sub(start))
		}
	}
	if want := []time.Duration{DefaultRelayRefresh, 2 * DefaultRelayRefresh}; !slices.Equal(sent, want) {
		t.Fatalf("relay keepalives at %v, want %v", sent, want)
	}
}

// TestCoreBackoff: the wait between rounds doubles after each failure up
// to RetryMax, and starts again at RetryMin once direct.
func TestCoreBackoff(t *testing.T) {
	c := newCoreTest(t, nil)
	p := c.firstProbe(camPub)
	var waits []time.Duration
	for range 8 {
		c.handle(probeDone{id: p.id})
		waits = append(waits, c.wake.Sub(c.now))
		ps := timedOf[startProbe](c.fireUntil(c.wake.Add(time.Second)))
		if len(ps) != 1 {
			t.Fatalf("round %d: probes %v", c.d.round, ps)
		}
		p = ps[0].a.(startProbe)
	}
	want := []time.Duration{2 * time.Second, 4 * time.Second, 8 * time.Second, 16 * time.Second,
		32 * time.Second, 60 * time.Second, 60 * time.Second, 60 * time.Second}
	if !slices.Equal(waits, want) {
		t.Fatalf("waits %v, want %v", waits, want)
	}
	c.handle(probeDone{id: p.id, ok: true})
	c.seen.lastHeard = c.now
	c.handle(switchDone{id: p.id, ok: true})
	c.now = c.now.Add(DefaultDeadAfter)
	c.handle(timerFired{})
	c.handle(fallbackDone{ok: true})
	if got := c.wake.Sub(c.now); got != DefaultRetryMin {
		t.Fatalf("after a fallback the next round waits %v, want RetryMin", got)
	}
}

// TestCoreBirthday: the birthday half of a round (spray.go): which
// PUNCH_MANY the viewer sends and what it does itself, given both sides'
// mapping, once ordinary punching had birthdayDelay to succeed.
func TestCoreBirthday(t *testing.T) {
	const (
		unknown = natwire.MappingUnknown
		eim     = natwire.MappingIndependent
		edm     = natwire.MappingDependent
	)
	tests := []struct {
		name           string
		camera, viewer natwire.Mapping
		self           netip.AddrPort
		want           natwire.SprayMode // 0: none
	}{
		{"camera symmetric: it fans out, the viewer sprays", edm, eim, viewerPub, natwire.SprayFanOut},
		{"viewer symmetric: it fans out, the camera sprays", eim, edm, viewerPub, natwire.SprayPorts},
		{"both independent: ordinary punching's case", eim, eim, viewerPub, 0},
		{"camera's mapping unknown", unknown, edm, viewerPub, 0},
		{"viewer's own address unknown", edm, eim, netip.AddrPort{}, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := newCoreTest(t, func(cfg *coreConfig) { cfg.CanFanOut = true })
			c.seen.ownMapping, c.seen.self = tc.viewer, tc.self
			c.handle(cameraMapping{tc.camera})
			c.firstProbe(camHost, camPub) // camHost's probe hangs
			probeAt := c.now
			acts := c.fireUntil(probeAt.Add(time.Second))
			many := timedOf[punchMany](acts)
			if tc.want == 0 {
				if len(many) != 0 {
					t.Fatalf("PUNCH_MANY sent: %v", many)
				}
				return
			}
			wantAt := probeAt.Add(birthdayDelay).Sub(coreStart)
			if len(many) != 1 || many[0].at != wantAt {
				t.Fatalf("PUNCH_MANY %v, want one at %v", many, wantAt)
			}
			f := many[0].a.(punchMany).f
			if f.Mode != tc.want || f.Round != 1 || f.PairedWith != 1 || f.Addr != tc.self {
				t.Fatalf("PUNCH_MANY %+v, want mode %v paired with the camera's public candidate", f, tc.want)
			}
			switch tc.want {
			case natwire.SprayFanOut:
				sprays := timedOf[startSpray](acts)
				sprayAt := wantAt + coreRTT + 10*time.Millisecond + sprayLead
				if len(sprays) != 1 || sprays[0].at != sprayAt || sprays[0].a.(startSpray).ip != camPub.Addr() {
					t.Fatalf("sprays %v, want one at %v toward %v", sprays, sprayAt, camPub.Addr())
				}
			case natwire.SprayPorts:
				fans := actionsOf[startFanOut](timedActions(acts))
				if len(fans) != 1 || fans[0].to != camPub {
					t.Fatalf("fan-outs %v, want one toward %v", fans, camPub)
				}
			}
		})
	}
}

func timedActions(ts []timed) []action {
	out := make([]action, len(ts))
	for i, ta := range ts {
		out[i] = ta.a
	}
	return out
}

// TestCoreBirthdayLimits: at most MaxSpraysPerConn birthday attempts per
// connection, MinSprayInterval apart, and none once direct.
func TestCoreBirthdayLimits(t *testing.T) {
	c := newCoreTest(t, nil)
	c.seen.ownMapping, c.seen.self = natwire.MappingIndependent, viewerPub
	c.handle(cameraMapping{natwire.MappingDependent})
	p := c.firstProbe(camPub)
	var at []time.Duration
	for range 6 {
		acts := c.fireUntil(c.now.Add(time.Second))
		c.handle(probeDone{id: p.id}) // the round fails
		acts = append(acts, c.fireUntil(c.wake.Add(time.Second))...)
		for _, m := range timedOf[punchMany](acts) {
			at = append(at, m.at)
		}
		p = startProbe{id: c.d.lastProbe}
	}
	if len(at) != MaxSpraysPerConn {
		t.Fatalf("birthday attempts at %v, want %d", at, MaxSpraysPerConn)
	}
	for i := 1; i < len(at); i++ {
		if at[i]-at[i-1] < MinSprayInterval {
			t.Fatalf("attempts at %v: closer than MinSprayInterval", at)
		}
	}
}

// TestCoreHoleFound: a viewer-side fan-out's winner becomes the next
// probe (replacing a probe of the same address), unless direct already.
func TestCoreHoleFound(t *testing.T) {
	c := newCoreTest(t, nil)
	p := c.firstProbe(camPub)
	acts := c.handle(holeFound{camPub})
	if got := actionsOf[abandonProbe](acts); len(got) != 1 || got[0].id != p.id {
		t.Fatalf("the main socket's probe of the hole's address not abandoned: %v", acts)
	}
	if len(actionsOf[useHole](acts)) != 1 {
		t.Fatalf("hole not used: %v", acts)
	}
	acts = c.handle(probeDone{id: p.id}) // the abandoned probe returns
	if next := actionsOf[startProbe](acts); len(next) != 1 || next[0].addr != camPub || next[0].id == p.id {
		t.Fatalf("%v, want a new probe of %v (over the hole)", acts, camPub)
	}

	d := newCoreTest(t, nil)
	d.goDirect(camHost)
	if acts := d.handle(holeFound{camPub}); len(actionsOf[dropHole](acts)) != 1 || len(actionsOf[startProbe](acts)) != 0 {
		t.Fatalf("while direct: %v, want the hole closed", acts)
	}
}

// TestCoreRemovedCandidate: a candidate the camera withdrew is not
// paired in the next round.
func TestCoreRemovedCandidate(t *testing.T) {
	c := newCoreTest(t, nil)
	c.add(0, camHost)
	c.add(1, camPub)
	c.handle(candidateRemoved{0})
	acts := timedActions(c.fireUntil(c.now.Add(time.Second)))
	started := actionsOf[roundStarted](acts)
	if len(started) != 1 || !slices.Equal(started[0].candidates, []netip.AddrPort{camPub}) {
		t.Fatalf("round %v, want only %v", started, camPub)
	}
}

// TestCoreReflexiveLearned: a new address of the viewer's, reported by the
// camera, plans a round (its pairs change), unless one is planned already.
func TestCoreReflexiveLearned(t *testing.T) {
	c := newCoreTest(t, nil)
	c.add(0, camPub)
	first := c.wake
	c.now = c.now.Add(5 * time.Millisecond)
	c.handle(reflexiveLearned{})
	if !c.wake.Equal(first) {
		t.Fatalf("round moved from %v to %v", first.Sub(coreStart), c.wake.Sub(coreStart))
	}
}
