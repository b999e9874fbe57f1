package traversal

import (
	"net/netip"
	"slices"
	"time"

	"github.com/camagent/camagent/p2p/candidate"
	"github.com/camagent/camagent/p2p/natwire"
)

// clientCore holds every decision of the viewer's side of NAT traversal
// and nothing else: no sockets, no goroutines, no clock. The Client (the
// driver, client.go) turns what happens into events, hands each to handle
// with the time and what it senses of the outside, and performs the
// actions it gets back: quic-go paths, pathmux routes, portspray, timers.
// quic-go's path_manager.go has the same split, so that path decisions
// can be tested without a connection (clientcore_test.go).
type clientCore struct {
	cfg coreConfig

	// Of the call being handled.
	now  time.Time
	seen senses
	out  []action

	remote        map[uint64]netip.AddrPort // the camera's candidates, by sequence number
	round         uint64
	queue         []netip.AddrPort // candidates of this round not yet probed
	probeAt       time.Time        // when this round's probes may start
	probing       map[netip.AddrPort]probeID
	inFlight      int // probes started whose result has not come
	lastProbe     probeID
	learned       []netip.AddrPort // peer-reflexive candidates accepted so far
	nextRound     time.Time
	backoff       time.Duration
	camMapping    natwire.Mapping // from NAT_BEHAVIOR
	sprays        int
	lastSpray     time.Time
	sprayAt       time.Time // when this round's guesses go out, if any
	sprayIP       netip.Addr
	birthdayRound uint64 // the round whose PUNCH_MANY went out

	// The direct path in use, if any, and what watches it.
	active         probeID
	activeAddr     netip.AddrPort
	switching      probeID // a switch the driver has not answered yet
	fallingBack    bool    // a fallback the driver has not answered yet
	lastFallback   time.Time
	lastRelayProbe time.Time
	lastKeepalive  time.Time
	relayWarm      bool // the relay path is validated for this quiet spell
}

// coreConfig is the part of ClientConfig the decisions use, defaults set.
type coreConfig struct {
	Relay         netip.AddrPort
	LocalPrefixes []netip.Prefix
	CanFanOut     bool // ClientConfig.Listen is set

	ProbeTimeout, Keepalive, DeadAfter time.Duration
	RetryMin, RetryMax, RelayRefresh   time.Duration
}

// probeID names one probe of one path: a result or a switch that answers
// an abandoned probe is told apart from one of its address's next probe.
type probeID uint64

// senses is what the driver reads of state it does not own, just before
// each call of handle: the values the decisions of that moment see.
type senses struct {
	local      []netip.AddrPort // the viewer's own candidates (candidate.Set)
	ownMapping natwire.Mapping  // the viewer's NAT, measured with STUN at the relay
	self       netip.AddrPort   // the viewer's address as the camera reports it; invalid if unknown
	rtt        time.Duration    // the connection's smoothed RTT (through the relay)
	lastHeard  time.Time        // the last packet on the active direct path's route
}

// Events: what the driver saw.
type (
	event interface{ coreEvent() }

	candidateAdded   struct{ add *natwire.AddAddress }
	candidateRemoved struct{ seq uint64 }
	// cameraMapping is the camera's NAT_BEHAVIOR.
	cameraMapping struct{ mapping natwire.Mapping }
	// reflexiveLearned: the camera reported a new address of the viewer.
	reflexiveLearned struct{}
	// punchHeard: a punch or fan-out packet of the camera's arrived.
	punchHeard struct{ from netip.AddrPort }
	// holeFound: a viewer-side fan-out socket heard the camera's guess.
	holeFound struct{ to netip.AddrPort }
	probeDone struct {
		id probeID
		ok bool
	}
	switchDone struct {
		id probeID
		ok bool
	}
	fallbackDone struct{ ok bool }
	// timerFired: the time of the last armTimer came.
	timerFired struct{}
)

func (candidateAdded) coreEvent()   {}
func (candidateRemoved) coreEvent() {}
func (cameraMapping) coreEvent()    {}
func (reflexiveLearned) coreEvent() {}
func (punchHeard) coreEvent()       {}
func (holeFound) coreEvent()        {}
func (probeDone) coreEvent()        {}
func (switchDone) coreEvent()       {}
func (fallbackDone) coreEvent()     {}
func (timerFired) coreEvent()       {}

// Actions: what the driver is to do, in order. Those that can fail and
// whose failure changes a decision (startProbe, switchPath, fallBack) are
// answered with an event (probeDone, switchDone, fallbackDone).
type (
	action interface{ coreAction() }

	// sendFrame sends PUNCH_ME_NOW (or PUNCH_MANY) to the camera.
	sendFrame struct{ f natwire.Frame }
	// roundStarted reports a round's pairs and probe order.
	roundStarted struct {
		round      uint64
		pairs      int
		candidates []netip.AddrPort
	}
	// startProbe validates a path to addr (RFC 9000 §8.2) within
	// ProbeTimeout; the result comes back as probeDone.
	startProbe struct {
		id   probeID
		addr netip.AddrPort
	}
	// abandonProbe closes the probed (or formerly active) path.
	abandonProbe struct{ id probeID }
	// switchPath moves the connection to the validated path id (RFC 9000
	// §9.2); the result comes back as switchDone.
	switchPath struct {
		id   probeID
		addr netip.AddrPort
	}
	// muteRelay stops (or resumes) quic-go's sending on the relay route.
	muteRelay struct{ mute bool }
	// sendKeepalive sends a keepalive packet on the active direct path.
	sendKeepalive struct{ addr netip.AddrPort }
	// validateRelay validates the relay path in the background, within
	// DeadAfter, ahead of a fallback that may come.
	validateRelay struct{}
	// fallBack moves the connection back to the relay path; the result
	// comes back as fallbackDone.
	fallBack struct{}
	// sendRelayKeepalive holds the viewer's NAT mapping toward the relay.
	sendRelayKeepalive struct{}
	// emit reports a change of path (Event.At is the driver's).
	emit struct{ e Event }
	// peerReflexive reports a candidate learned from a punch.
	peerReflexive struct{ addr netip.AddrPort }
	// punchMany sends PUNCH_MANY: the camera's half of a birthday attempt.
	punchMany struct {
		f      *natwire.PunchMany
		camera netip.AddrPort
	}
	// startSpray sends the viewer's guesses at ip from its socket.
	startSpray struct {
		ip    netip.Addr
		round uint64
	}
	// startFanOut opens the viewer's fan-out toward the camera's address.
	startFanOut struct {
		to    netip.AddrPort
		round uint64
	}
	// useHole makes the fan-out socket that found to a path of its own;
	// dropHole closes it.
	useHole  struct{ to netip.AddrPort }
	dropHole struct{ to netip.AddrPort }
	// armTimer asks for a timerFired at the time (none if zero); the last
	// one replaces those before it.
	armTimer struct{ at time.Time }
)

func (sendFrame) coreAction()          {}
func (roundStarted) coreAction()       {}
func (startProbe) coreAction()         {}
func (abandonProbe) coreAction()       {}
func (switchPath) coreAction()         {}
func (muteRelay) coreAction()          {}
func (sendKeepalive) coreAction()      {}
func (validateRelay) coreAction()      {}
func (fallBack) coreAction()           {}
func (sendRelayKeepalive) coreAction() {}
func (emit) coreAction()               {}
func (peerReflexive) coreAction()      {}
func (punchMany) coreAction()          {}
func (startSpray) coreAction()         {}
func (startFanOut) coreAction()        {}
func (useHole) coreAction()            {}
func (dropHole) coreAction()           {}
func (armTimer) coreAction()           {}

func newClientCore(cfg coreConfig) *clientCore {
	return &clientCore{
		cfg:     cfg,
		remote:  make(map[uint64]netip.AddrPort),
		probing: make(map[netip.AddrPort]probeID),
		backoff: cfg.RetryMin,
	}
}

// handle takes one event at now, with what the driver senses, and returns
// what to do: the event's own consequences, whatever time has made due,
// and last the armTimer for the next decision that time will bring.
func (d *clientCore) handle(ev event, now time.Time, seen senses) []action {
	d.now, d.seen, d.out = now, seen, nil
	switch ev := ev.(type) {
	case candidateAdded:
		d.candidateAdded(ev.add)
	case candidateRemoved:
		delete(d.remote, ev.seq)
	case cameraMapping:
		d.camMapping = ev.mapping
	case reflexiveLearned:
		d.scheduleSoon()
	case punchHeard:
		d.punchHeard(ev.from)
	case holeFound:
		d.holeFound(ev.to)
	case probeDone:
		d.probeDone(ev.id, ev.ok)
	case switchDone:
		d.switchDone(ev.id, ev.ok)
	case fallbackDone:
		d.fallbackDone(ev.ok)
	case timerFired:
	}
	d.step()
	d.do(armTimer{d.wake()})
	return d.out
}

func (d *clientCore) do(a action) { d.out = append(d.out, a) }

// direct reports whether the connection runs on a direct path.
func (d *clientCore) direct() bool { return d.active != 0 }

// candidateAdded takes an ADD_ADDRESS frame of the camera's
// (draft-seemann-quic-nat-traversal-02); unusable addresses and more than
// candidate.MaxCandidates are ignored, so a camera cannot aim the viewer's
// probes at a broadcast address or make it probe without end.
func (d *clientCore) candidateAdded(f *natwire.AddAddress) {
	if candidate.Usable(f.Addr) != nil || len(d.remote) >= candidate.MaxCandidates {
		return
	}
	d.remote[f.Seq] = f.Addr
	d.scheduleSoon()
}

// scheduleSoon plans a round after gatherDelay, unless one is planned
// earlier or the backoff after a failure says to wait.
func (d *clientCore) scheduleSoon() {
	if d.nextRound.IsZero() {
		d.nextRound = d.now.Add(gatherDelay)
	}
}

// step does whatever time has made due: a spray, a round, its probes, its
// birthday half, or the direct path's keepalives and fallback.
func (d *clientCore) step() {
	if !d.sprayAt.IsZero() && !d.now.Before(d.sprayAt) {
		d.do(startSpray{ip: d.sprayIP, round: d.round})
		d.sprayAt = time.Time{}
	}
	switch {
	case d.switching != 0 || d.fallingBack:
		return // the driver answers before the next event
	case d.direct():
		d.watchDirect()
		return
	}
	if d.birthdayPending() {
		d.birthday()
	}
	if d.inFlight == 0 && len(d.queue) > 0 {
		if !d.now.Before(d.probeAt) {
			d.probeNext()
		}
		return
	}
	if d.roundDue() && !d.now.Before(d.nextRound) {
		d.startRound()
	}
}

// roundDue reports whether a round is planned and nothing of the last one
// is left.
func (d *clientCore) roundDue() bool {
	return d.inFlight == 0 && len(d.queue) == 0 && len(d.remote) > 0 && !d.nextRound.IsZero()
}

// startRound sends PUNCH_ME_NOW for every pair and plans the probes of
// the camera's candidates (draft-seemann-quic-nat-traversal-02, section
// "Hole Punching"). A higher round number cancels the camera's punches of
// earlier rounds.
func (d *clientCore) startRound() {
	d.round++
	d.nextRound = time.Time{}
	seqs := make([]uint64, 0, len(d.remote))
	for seq := range d.remote {
		seqs = append(seqs, seq)
	}
	slices.Sort(seqs) // the camera advertises host candidates first
	pairs := 0
	d.queue = d.queue[:0]
	for _, seq := range seqs {
		addr := d.remote[seq]
		matched := false
		for _, l := range d.seen.local {
			if l.Addr().Is4() != addr.Addr().Is4() || pairs >= MaxPairsPerRound {
				continue
			}
			matched = true
			pairs++
			d.do(sendFrame{&natwire.PunchMeNow{Round: d.round, PairedWith: seq, Addr: l}})
		}
		if matched {
			d.queue = append(d.queue, addr)
		}
	}
	slices.SortStableFunc(d.queue, func(a, b netip.AddrPort) int {
		return rank(d.cfg.LocalPrefixes, a) - rank(d.cfg.LocalPrefixes, b)
	})
	d.do(roundStarted{round: d.round, pairs: pairs, candidates: slices.Clone(d.queue)})
	// Probe only once the camera's punches can have opened its NAT: the
	// PUNCH_ME_NOW travels through the relay, a probe goes straight, so a
	// probe sent at once reaches a port-restricted NAT first and is
	// dropped (seen in the kernel-NAT lab, where quic-go did not
	// retransmit it within the probe timeout). One round trip of the
	// connection covers the PUNCH_ME_NOW and the punch.
	d.probeAt = d.now.Add(d.punchLead())
	if len(d.queue) == 0 {
		d.roundFailed()
	}
}

// rank orders a round's probes: a candidate on the viewer's own LAN
// first (a same-LAN viewer goes direct over host candidates), then public
// addresses (the camera's reflexive ones), then private addresses of
// other networks, which are reachable only by chance (a VPN, a routed
// LAN).
func rank(localPrefixes []netip.Prefix, a netip.AddrPort) int {
	ip := a.Addr().Unmap()
	for _, p := range localPrefixes {
		if p.Contains(ip) {
			return 0
		}
	}
	if ip.IsPrivate() || ip.IsLoopback() || sharedAddressSpace.Contains(ip) {
		return 2
	}
	return 1
}

// sharedAddressSpace is RFC 6598's carrier-grade NAT range.
var sharedAddressSpace = netip.MustParsePrefix("100.64.0.0/10")

// punchLead is how long probes wait after PUNCH_ME_NOW: the connection's
// smoothed RTT (through the relay) plus a margin.
func (d *clientCore) punchLead() time.Duration {
	const margin = 10 * time.Millisecond
	return d.seen.rtt + margin
}

// probeNext starts probes up to maxProbes, in queue order.
func (d *clientCore) probeNext() {
	for d.inFlight < maxProbes && len(d.queue) > 0 {
		addr := d.queue[0]
		d.queue = d.queue[1:]
		d.lastProbe++
		d.probing[addr] = d.lastProbe
		d.inFlight++
		d.do(startProbe{id: d.lastProbe, addr: addr})
	}
}

// probeAddr is the address whose current probe is id.
func (d *clientCore) probeAddr(id probeID) (netip.AddrPort, bool) {
	for addr, p := range d.probing {
		if p == id {
			return addr, true
		}
	}
	return netip.AddrPort{}, false
}

// probeDone takes a probe's result. The first path that validates gets
// the connection, by ordinary client migration (RFC 9000 §9.2, as
// draft-seemann-quic-nat-traversal-02's "Hole Punching" has it); a
// result of a probe abandoned meanwhile only frees its slot.
func (d *clientCore) probeDone(id probeID, ok bool) {
	d.inFlight--
	addr, current := d.probeAddr(id)
	switch {
	case ok && current && !d.direct():
		// Muted first: quic-go may send once more on the old path while
		// it switches.
		d.do(muteRelay{true})
		d.do(switchPath{id: id, addr: addr})
		d.switching = id
		return
	case current:
		d.abandon(addr)
	}
	d.probeNextOrFail()
}

// probeNextOrFail goes on with the round after a probe that did not
// lead to a switch, and fails the round when nothing is left.
func (d *clientCore) probeNextOrFail() {
	if !d.direct() {
		d.do(muteRelay{false}) // a failed probe's answer may have muted it
	}
	d.probeNext()
	if d.inFlight == 0 && len(d.queue) == 0 && !d.direct() {
		d.roundFailed()
	}
}

func (d *clientCore) switchDone(id probeID, ok bool) {
	d.switching = 0
	addr, _ := d.probeAddr(id)
	if !ok {
		d.abandon(addr)
		d.probeNextOrFail()
		return
	}
	delete(d.probing, addr)
	d.active, d.activeAddr = id, addr
	d.backoff = d.cfg.RetryMin
	d.lastRelayProbe = d.now
	d.lastKeepalive = time.Time{}
	d.relayWarm = false
	d.do(emit{Event{Kind: EventDirect, Addr: addr, Round: d.round}})
	d.queue = nil
	for other := range d.probing {
		d.abandon(other) // their Probe returns ErrPathClosed
	}
}

func (d *clientCore) abandon(addr netip.AddrPort) {
	if id, ok := d.probing[addr]; ok {
		delete(d.probing, addr)
		d.do(abandonProbe{id})
	}
}

func (d *clientCore) roundFailed() {
	d.queue = nil
	d.do(emit{Event{Kind: EventRoundFailed, Round: d.round}})
	d.retryLater()
}

// retryLater plans the next round after the backoff, which doubles up
// to RetryMax: a pair that cannot go direct costs the camera a punch
// train a minute, not one every two seconds.
func (d *clientCore) retryLater() {
	d.nextRound = d.now.Add(d.backoff)
	d.backoff = min(2*d.backoff, d.cfg.RetryMax)
}

// punchHeard probes a peer-reflexive candidate next (RFC 8445
// §7.2.5.3.1 has the same idea): behind an endpoint-dependent NAT the
// camera's punches leave from a port it did not advertise, and that port
// is the one way through. Only the IP address of a candidate the camera
// advertised qualifies (NATs keep one public address per host, RFC 4787
// REQ-2), so a forged punch cannot point the viewer's probes at an
// arbitrary target, and only maxPeerReflexive per connection. A probe of
// the advertised address with the same IP and another port is given up
// for it: that mapping was the relay's. A candidate learned earlier whose
// probe failed (a loaded host, a lost packet) is probed again when its
// punches come again: the next round's.
func (d *clientCore) punchHeard(from netip.AddrPort) {
	if d.direct() || d.switching != 0 || from == d.cfg.Relay || slices.Contains(d.queue, from) {
		return
	}
	if _, probing := d.probing[from]; probing {
		return
	}
	if !slices.Contains(d.learned, from) {
		if len(d.learned) >= maxPeerReflexive || !d.advertisedIP(from) {
			return
		}
		d.learned = append(d.learned, from)
		d.do(peerReflexive{from})
	}
	d.queue = append([]netip.AddrPort{from}, d.queue...)
	for addr := range d.probing {
		if addr.Addr() == from.Addr() {
			d.abandon(addr) // its result frees the slot for this one
		}
	}
	d.probeNext()
}

// advertisedIP reports whether from has the IP address, but not the port,
// of a candidate the camera advertised.
func (d *clientCore) advertisedIP(from netip.AddrPort) bool {
	sameIP := false
	for _, a := range d.remote {
		if a == from {
			return false
		}
		sameIP = sameIP || a.Addr() == from.Addr()
	}
	return sameIP
}

// holeFound takes a viewer-side fan-out's winner (spray.go): its socket
// becomes a path of its own to the camera, probed next, unless the
// connection is direct already.
func (d *clientCore) holeFound(to netip.AddrPort) {
	if d.direct() || d.switching != 0 {
		d.do(dropHole{to})
		return
	}
	d.abandon(to) // a probe of to over the main socket; its result frees the slot
	d.do(useHole{to})
	d.queue = append([]netip.AddrPort{to}, slices.DeleteFunc(d.queue, func(a netip.AddrPort) bool { return a == to })...)
	d.probeNext()
}

// watchDirect keeps the direct path alive and falls back when it is dead:
// a keepalive once it has been quiet for Keepalive (and every
// Keepalive/2 after), the relay path validated at DeadAfter/2 (a healthy
// path is never that quiet: its keepalives are answered), and the
// fallback at DeadAfter: a migration back to the relay path (RFC 9000
// §9.2), which must be validated first (§8.2); validating it ahead of
// time keeps a lost packet through the relay from stretching the switch
// past DeadAfter.
func (d *clientCore) watchDirect() {
	quiet := d.now.Sub(d.seen.lastHeard)
	switch {
	case quiet >= d.cfg.DeadAfter:
		if d.now.Sub(d.lastFallback) >= d.pollEvery() { // not again at once after a failure
			d.fallingBack, d.lastFallback = true, d.now
			d.do(fallBack{})
		}
		return
	case quiet >= d.cfg.Keepalive:
		if d.now.Sub(d.lastKeepalive) >= d.pollEvery() {
			d.lastKeepalive = d.now
			d.do(sendKeepalive{d.activeAddr})
		}
		if quiet >= d.cfg.DeadAfter/2 && !d.relayWarm {
			// Only a direct path in trouble costs the relay these
			// packets.
			d.relayWarm = true
			d.do(muteRelay{false})
			d.do(validateRelay{})
		}
	case d.relayWarm:
		// The direct path recovered: nothing goes to the relay again.
		d.relayWarm = false
		d.do(muteRelay{true})
	}
	if d.now.Sub(d.lastRelayProbe) >= d.cfg.RelayRefresh {
		d.lastRelayProbe = d.now
		d.do(sendRelayKeepalive{})
	}
}

func (d *clientCore) fallbackDone(ok bool) {
	d.fallingBack = false
	if !ok {
		d.do(muteRelay{true}) // still direct; tried again after pollEvery
		return
	}
	id, addr := d.active, d.activeAddr
	d.active, d.activeAddr = 0, netip.AddrPort{}
	d.relayWarm = false
	d.do(abandonProbe{id})
	d.do(emit{Event{Kind: EventRelay, Addr: addr, Round: d.round}})
	d.retryLater()
}

// pollEvery is how often the core looks again at what it senses but is
// told of by no event (the direct route's last packet, the viewer's own
// mapping) while a decision waits on it: the old client's tick.
func (d *clientCore) pollEvery() time.Duration { return d.cfg.Keepalive / 2 }

// wake is when time next makes a decision due: the earliest deadline
// after now, or zero for none.
func (d *clientCore) wake() time.Time {
	w := deadlines{now: d.now}
	w.add(d.sprayAt)
	switch {
	case d.switching != 0 || d.fallingBack:
		// The driver answers before any other event.
	case d.direct():
		d.directDeadlines(&w)
	default:
		d.roundDeadlines(&w)
	}
	return w.soonest
}

// directDeadlines are the times the direct path's watch may act: its
// quiet reaching Keepalive, DeadAfter/2 and DeadAfter (the last packet
// heard is sensed, so these move on with every packet: a timer set by an
// older one fires early and is set again), the next keepalive while quiet,
// a fallback's retry and the relay keepalive.
func (d *clientCore) directDeadlines(w *deadlines) {
	heard := d.seen.lastHeard
	quiet := d.now.Sub(heard)
	if quiet < d.cfg.Keepalive {
		w.add(heard.Add(d.cfg.Keepalive))
	} else {
		w.add(d.lastKeepalive.Add(d.pollEvery()))
	}
	if !d.relayWarm {
		w.add(heard.Add(d.cfg.DeadAfter / 2))
	}
	w.add(heard.Add(d.cfg.DeadAfter))
	if quiet >= d.cfg.DeadAfter {
		w.add(d.lastFallback.Add(d.pollEvery())) // a fallback that failed is tried again
	}
	w.add(d.lastRelayProbe.Add(d.cfg.RelayRefresh))
}

// roundDeadlines are the times a round may act: its probes' start, its
// birthday half (and, once that is due, a look every pollEvery at a
// mapping learned late) and the next round.
func (d *clientCore) roundDeadlines(w *deadlines) {
	if d.inFlight == 0 && len(d.queue) > 0 {
		w.add(d.probeAt)
	}
	if d.birthdayPending() {
		due := d.probeAt.Add(birthdayDelay)
		w.add(due)
		if !d.now.Before(due) {
			w.add(d.now.Add(d.pollEvery()))
		}
	}
	if d.roundDue() {
		w.add(d.nextRound)
	}
}

// deadlines keeps the soonest of the times it is given that are after
// now: a time already past is one whose decision waits on something else.
type deadlines struct{ now, soonest time.Time }

func (w *deadlines) add(t time.Time) {
	if t.After(w.now) && (w.soonest.IsZero() || t.Before(w.soonest)) {
		w.soonest = t
	}
}

// birthdayPending reports whether this round may still get its birthday
// half: ordinary punching is under way and no PUNCH_MANY went out for it,
// and the connection may make another.
func (d *clientCore) birthdayPending() bool {
	return d.round > 0 && d.birthdayRound != d.round && (d.inFlight > 0 || len(d.queue) > 0) &&
		d.sprays < MaxSpraysPerConn
}

// birthday adds the birthday half to a round when one side maps
// endpoint-dependently and the other does not (spray.go's comment), once
// ordinary punching had birthdayDelay to succeed: it sends PUNCH_MANY and
// plans the viewer's own half.
func (d *clientCore) birthday() {
	if d.now.Before(d.probeAt.Add(birthdayDelay)) {
		return
	}
	mode, ok := sprayMode(d.camMapping, d.seen.ownMapping, d.cfg.CanFanOut)
	if !ok || (d.sprays > 0 && d.now.Sub(d.lastSpray) < MinSprayInterval) {
		return
	}
	seq, cam, ok := d.publicCandidate()
	self := d.seen.self
	if !ok || !self.IsValid() {
		return
	}
	d.do(punchMany{f: &natwire.PunchMany{Round: d.round, PairedWith: seq, Mode: mode, Addr: self}, camera: cam})
	d.sprays++
	d.lastSpray = d.now
	d.birthdayRound = d.round
	switch mode {
	case natwire.SprayFanOut:
		d.sprayAt, d.sprayIP = d.now.Add(d.punchLead()+sprayLead), cam.Addr()
	case natwire.SprayPorts:
		d.do(startFanOut{to: cam, round: d.round})
	}
}

// publicCandidate is the camera's first advertised public address: its
// reflexive address at the relay.
func (d *clientCore) publicCandidate() (uint64, netip.AddrPort, bool) {
	best, found := uint64(0), false
	for seq, a := range d.remote {
		if rank(d.cfg.LocalPrefixes, a) == 1 && (!found || seq < best) {
			best, found = seq, true
		}
	}
	return best, d.remote[best], found
}
