package traversal

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/camagent/camagent/p2p/candidate"
	"github.com/camagent/camagent/p2p/discovery"
	"github.com/camagent/camagent/p2p/natwire"
	"github.com/camagent/camagent/p2p/pathmux"
	"github.com/camagent/camagent/p2p/portspray"
)

// Client timing defaults (docs/nat-traversal.md §3).
const (
	// DefaultProbeTimeout bounds one candidate's path validation; quic-go
	// retransmits PATH_CHALLENGE at 200, 400 and 800 ms.
	DefaultProbeTimeout = 1500 * time.Millisecond
	// DefaultKeepalive is how long a direct path may be quiet before the
	// viewer sends a keepalive; it also holds NAT mappings open.
	DefaultKeepalive = 100 * time.Millisecond
	// DefaultDeadAfter is how long without any packet on the direct path
	// makes the viewer fall back to the relay: with the switch itself
	// (the relay path is kept validated) well inside 1 s.
	DefaultDeadAfter = 500 * time.Millisecond
	// DefaultRetryMin and DefaultRetryMax bound the backoff between
	// punching rounds after a failure or a fallback.
	DefaultRetryMin = 2 * time.Second
	DefaultRetryMax = 60 * time.Second
	// DefaultRelayRefresh is how often, while direct, the viewer sends a
	// relay keepalive packet toward the relay: 13 bytes that hold its NAT
	// mapping toward the relay (and the relay's toward the camera) open
	// for the fallback. The relay path is validated only when a fallback
	// needs it: a validation is two padded 1200-byte packets each way
	// through the relay, which at a low bitrate would be more than 1 % of
	// what the relay carries after the switch.
	DefaultRelayRefresh = 15 * time.Second
	// maxProbes bounds concurrent candidate probes: one. quic-go v0.65
	// sends PATH_CHALLENGEs from one FIFO queue that stops at its head
	// while that path has no connection ID of the peer's (it holds 4: one
	// in use, one for the relay path, and retired ones come back only a
	// round trip later); a second probe can thus block the first one's
	// retransmissions for the whole probe timeout, which the NAT lab
	// showed (a punched path validated only in the next round, 3.6 s
	// late). Probing in turn, the likeliest candidate first (rank), is
	// faster on real NATs.
	maxProbes = 1
	// gatherDelay lets a burst of ADD_ADDRESS frames arrive before a round.
	gatherDelay = 20 * time.Millisecond
	// maxPeerReflexive bounds the peer-reflexive candidates one connection
	// learns from punch packets (HeardPacket).
	maxPeerReflexive = 2
)

// PathAdder is the part of *quic.Conn the Client needs.
type PathAdder interface {
	AddPath(*quic.Transport) (*quic.Path, error)
}

// ClientConfig configures the viewer side of one connection.
type ClientConfig struct {
	Conn    PathAdder
	Channel natwire.Channel
	// Socket is the viewer's one UDP socket; RelayTransport is the
	// quic.Transport the connection was dialled on, over Socket's route to
	// Relay, the address the connection was dialled to.
	Socket         *pathmux.Socket
	RelayTransport *quic.Transport
	Relay          netip.AddrPort
	// Candidates are the viewer's own (host addresses with the socket's
	// port); Learner adds the reflexive address the camera reports.
	Candidates *candidate.Set
	// LocalPrefixes are the viewer's on-link prefixes (from
	// candidate.HostAddrs): a camera candidate inside one is on the same
	// LAN and is probed first.
	LocalPrefixes []netip.Prefix
	Learner       *discovery.Learner

	// Mapping, if set, is the viewer's own NAT mapping behaviour (the
	// Link measures it with STUN at the relay); with the camera's
	// NAT_BEHAVIOR it decides whether a round adds PUNCH_MANY (spray.go).
	Mapping func() natwire.Mapping
	// Listen opens the sockets of a viewer-side fan-out, in the viewer
	// socket's network namespace; nil means no fan-out.
	Listen portspray.ListenFunc
	// OnNonQUIC handles the non-QUIC packets of a fan-out's hole socket,
	// as it does Socket's.
	OnNonQUIC func(b []byte, from netip.AddrPort)

	ProbeTimeout, Keepalive, DeadAfter time.Duration
	RetryMin, RetryMax, RelayRefresh   time.Duration
	// OnEvent, if set, is called from the run loop for every migration.
	OnEvent func(Event)
	Now     func() time.Time
	Logger  *slog.Logger
}

// EventKind says what an Event reports.
type EventKind int

const (
	// EventDirect: the connection now uses a direct path to Addr.
	EventDirect EventKind = iota + 1
	// EventRelay: the direct path died and the connection is back on the
	// relay path.
	EventRelay
	// EventRoundFailed: no candidate of a round validated.
	EventRoundFailed
)

func (k EventKind) String() string {
	return [...]string{"", "direct", "relay", "round-failed"}[k]
}

// Event is one change of path.
type Event struct {
	Kind  EventKind
	Addr  netip.AddrPort // the direct address, for EventDirect and EventRelay
	Round uint64
	At    time.Time
}

// ClientStats count what a Client did.
type ClientStats struct {
	Rounds, Probes, Validated, Switches, Fallbacks, Keepalives uint64
	// Sprays are PUNCH_MANY sent, Guesses the spray packets sent, Holes
	// the viewer-side fan-outs that found one (spray.go).
	Sprays, Guesses, Holes uint64
	Direct                 bool
}

// Client is the viewer side of NAT traversal for one connection.
type Client struct {
	loop
	cfg ClientConfig
	log *slog.Logger

	results chan probeResult
	heard   chan netip.AddrPort // sources of punch packets
	fanCh   chan fanResult

	// Owned by the run loop.
	remote         map[uint64]netip.AddrPort
	direct         map[netip.AddrPort]*directPath
	active         *directPath
	relayPath      *quic.Path
	relayRoute     *pathmux.Route // Socket's route to Relay, under relayPath
	round          uint64
	queue          []netip.AddrPort // candidates of this round not yet probed
	probeAt        time.Time        // when this round's probes may start
	inFlight       int
	peerReflexive  int
	learned        []netip.AddrPort // peer-reflexive candidates accepted so far
	nextRound      time.Time
	backoff        time.Duration
	lastRelayProbe time.Time
	camMapping     natwire.Mapping // from NAT_BEHAVIOR
	sprays         int
	lastSpray      time.Time
	sprayAt        time.Time // when this round's guesses go out, if any
	sprayIP        netip.Addr
	birthdayRound  uint64 // the round whose PUNCH_MANY went out
	relayWarm      bool   // warmRelay ran for this quiet spell of the direct path

	onDirect atomic.Bool // the connection runs on a direct path

	stats counters[ClientStats]
	mu    sync.Mutex
	holes []*pathmux.Socket // fan-out winners, closed with the Client
}

type directPath struct {
	addr  netip.AddrPort
	sock  *pathmux.Socket // Socket, or a fan-out's hole
	route *pathmux.Route
	tr    *quic.Transport
	path  *quic.Path
}

type probeResult struct {
	dp   *directPath
	path *quic.Path
	err  error
}

// NewClient starts the viewer side. It runs until Close, a Channel failure
// or a protocol violation.
func NewClient(cfg ClientConfig) (*Client, error) {
	setClientDefaults(&cfg)
	relayPath, err := cfg.Conn.AddPath(cfg.RelayTransport)
	if err != nil {
		return nil, fmt.Errorf("relay path: %w", err)
	}
	// The route RelayTransport runs on: muted while direct (muteRelay).
	relayRoute, err := cfg.Socket.Route(cfg.Relay, cfg.Relay)
	if err != nil {
		return nil, fmt.Errorf("relay route: %w", err)
	}
	c := &Client{
		cfg:        cfg,
		log:        cfg.Logger,
		results:    make(chan probeResult, 8),
		heard:      make(chan netip.AddrPort, 4),
		fanCh:      make(chan fanResult, 1),
		remote:     make(map[uint64]netip.AddrPort),
		direct:     make(map[netip.AddrPort]*directPath),
		relayPath:  relayPath,
		relayRoute: relayRoute,
		backoff:    cfg.RetryMin,
	}
	c.start(cfg.Channel, c.run, nil)
	return c, nil
}

func setClientDefaults(cfg *ClientConfig) {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&cfg.ProbeTimeout, DefaultProbeTimeout)
	def(&cfg.Keepalive, DefaultKeepalive)
	def(&cfg.DeadAfter, DefaultDeadAfter)
	def(&cfg.RetryMin, DefaultRetryMin)
	def(&cfg.RetryMax, DefaultRetryMax)
	def(&cfg.RelayRefresh, DefaultRelayRefresh)
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
}

func (c *Client) run(ctx context.Context, readErr <-chan error) error {
	tick := time.NewTicker(c.cfg.Keepalive / 2)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-readErr:
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("NAT traversal channel: %w", err)
		case f := <-c.frames:
			if err := c.handle(f); err != nil {
				return err
			}
		case r := <-c.results:
			c.probed(ctx, r)
		case a := <-c.heard:
			c.heardPunch(ctx, a)
		case r := <-c.fanCh:
			c.holeFound(ctx, r)
		case <-tick.C:
		}
		c.step(ctx)
	}
}

// step does whatever time has made due: a round, keepalives, a fallback,
// a relay refresh.
func (c *Client) step(ctx context.Context) {
	now := c.cfg.Now()
	if !c.sprayAt.IsZero() && !now.Before(c.sprayAt) {
		c.spray(ctx)
	}
	if c.active != nil {
		c.watchDirect(ctx, now)
		return
	}
	if c.round > 0 && c.birthdayRound != c.round && (c.inFlight > 0 || len(c.queue) > 0) {
		// The round's birthday half (spray.go), once ordinary punching
		// had its chance, or once a mapping learned late (NAT_BEHAVIOR,
		// the STUN answer) allows it.
		c.birthday(ctx)
	}
	if c.inFlight == 0 && len(c.queue) > 0 && !now.Before(c.probeAt) {
		c.probeNext(ctx)
		if c.inFlight == 0 {
			c.queue = nil
			c.roundFailed()
		}
		return
	}
	if c.inFlight == 0 && len(c.queue) == 0 && len(c.remote) > 0 && !c.nextRound.IsZero() && !now.Before(c.nextRound) {
		c.startRound(ctx)
	}
}

func (c *Client) handle(f natwire.Frame) error {
	switch f := f.(type) {
	case *natwire.AddAddress:
		if candidate.Usable(f.Addr) != nil || len(c.remote) >= candidate.MaxCandidates {
			return nil
		}
		c.remote[f.Seq] = f.Addr
		c.scheduleSoon()
	case *natwire.RemoveAddress:
		delete(c.remote, f.Seq)
	case *natwire.NATBehavior:
		c.camMapping = f.Mapping
	case *natwire.ObservedAddress:
		if c.cfg.Learner != nil {
			if changed, _ := c.cfg.Learner.Handle(f); changed {
				c.scheduleSoon()
			}
		}
	default:
		return fmt.Errorf("%w: camera sent %v", ErrProtocolViolation, f.Type())
	}
	return nil
}

// scheduleSoon plans a round shortly, unless one is planned earlier or
// the backoff after a failure says to wait.
func (c *Client) scheduleSoon() {
	soon := c.cfg.Now().Add(gatherDelay)
	if c.nextRound.IsZero() {
		c.nextRound = soon
	}
}

// HeardPacket takes a non-QUIC packet that arrived on the viewer's socket
// (pathmux's non-QUIC handler calls it); it never blocks. A punch packet
// from a port the camera did not advertise is a peer-reflexive candidate
// (RFC 8445 §7.2.5.3.1 has the same idea): the camera's NAT maps per
// destination (symmetric), so the address the relay observed is good for
// the relay only, and the port its punch toward us came from is the one
// way through. A full-cone or public viewer sees these punches arrive.
func (c *Client) HeardPacket(b []byte, from netip.AddrPort) {
	// A fan-out packet of the camera's that got in (a guess of ours
	// opened the way first) names its hole just as a punch does.
	if kind, _, ok := parsePacket(b); !ok || (kind != kindPunch && kind != kindFan) {
		return
	}
	select {
	case c.heard <- unmap(from):
	default: // a train is 10 packets: dropping some loses nothing
	}
}

// heardPunch probes a peer-reflexive candidate next. Only the IP address
// of a candidate the camera advertised qualifies (NATs keep one public
// address per host, RFC 4787 REQ-2), so a forged punch cannot point the
// viewer's probes at an arbitrary target, and only maxPeerReflexive per
// connection. A probe of the advertised address with the same IP and
// another port is given up for it: that mapping was the relay's. A
// candidate learned earlier whose probe failed (a loaded host, a lost
// packet) is probed again when its punches come again: the next round's.
func (c *Client) heardPunch(ctx context.Context, from netip.AddrPort) {
	if c.active != nil || from == c.cfg.Relay || slices.Contains(c.queue, from) {
		return
	}
	if dp, known := c.direct[from]; known && dp.path != nil {
		return // being probed now
	}
	if !slices.Contains(c.learned, from) {
		if c.peerReflexive >= maxPeerReflexive || !c.advertisedIP(from) {
			return
		}
		c.peerReflexive++
		c.learned = append(c.learned, from)
		c.log.Debug("peer-reflexive candidate", "addr", from)
	}
	c.queue = append([]netip.AddrPort{from}, c.queue...)
	for _, dp := range c.direct {
		if dp.path != nil && dp.addr.Addr() == from.Addr() {
			c.abandon(dp) // its Probe returns, and probed starts the new one
		}
	}
	c.probeNext(ctx)
}

// advertisedIP reports whether from has the IP address, but not the port,
// of a candidate the camera advertised.
func (c *Client) advertisedIP(from netip.AddrPort) bool {
	sameIP := false
	for _, a := range c.remote {
		if a == from {
			return false
		}
		sameIP = sameIP || a.Addr() == from.Addr()
	}
	return sameIP
}

// startRound sends PUNCH_ME_NOW for every pair and starts probing the
// camera's candidates (draft-seemann-quic-nat-traversal-02, section
// "Hole Punching").
func (c *Client) startRound(ctx context.Context) {
	c.round++
	c.nextRound = time.Time{}
	c.count(func(s *ClientStats) { s.Rounds++ })
	local, _ := c.cfg.Candidates.Snapshot()
	seqs := make([]uint64, 0, len(c.remote))
	for seq := range c.remote {
		seqs = append(seqs, seq)
	}
	slices.Sort(seqs) // the camera advertises host candidates first
	pairs := 0
	c.queue = c.queue[:0]
	for _, seq := range seqs {
		addr := c.remote[seq]
		matched := false
		for _, l := range local {
			if l.Addr.Addr().Is4() != addr.Addr().Is4() || pairs >= MaxPairsPerRound {
				continue
			}
			matched = true
			pairs++
			if err := c.cfg.Channel.Send(&natwire.PunchMeNow{Round: c.round, PairedWith: seq, Addr: l.Addr}); err != nil {
				c.log.Debug("PUNCH_ME_NOW not sent", "err", err)
			}
		}
		if matched {
			c.queue = append(c.queue, addr)
		}
	}
	slices.SortStableFunc(c.queue, func(a, b netip.AddrPort) int { return c.rank(a) - c.rank(b) })
	c.log.Debug("punch round", "round", c.round, "pairs", pairs, "candidates", c.queue)
	// Probe only once the camera's punches can have opened its NAT: the
	// PUNCH_ME_NOW travels through the relay, a probe goes straight, so a
	// probe sent at once reaches a port-restricted NAT first and is
	// dropped (seen in the kernel-NAT lab, where quic-go did not
	// retransmit it within the probe timeout). One round trip of the
	// connection covers the PUNCH_ME_NOW and the punch.
	c.probeAt = c.cfg.Now().Add(c.punchLead())
	if len(c.queue) == 0 {
		c.roundFailed()
	}
}

// rank orders a round's probes: a candidate on the viewer's own LAN
// first (a same-LAN viewer goes direct over host candidates), then public
// addresses (the camera's reflexive ones), then private addresses of
// other networks, which are reachable only by chance (a VPN, a routed
// LAN).
func (c *Client) rank(a netip.AddrPort) int {
	ip := a.Addr().Unmap()
	for _, p := range c.cfg.LocalPrefixes {
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
func (c *Client) punchLead() time.Duration {
	const margin = 10 * time.Millisecond
	if r, ok := c.cfg.Conn.(interface{ ConnectionStats() quic.ConnectionStats }); ok {
		return r.ConnectionStats().SmoothedRTT + margin
	}
	return margin
}

// probeNext starts probes up to maxProbes.
func (c *Client) probeNext(ctx context.Context) {
	for c.inFlight < maxProbes && len(c.queue) > 0 {
		addr := c.queue[0]
		c.queue = c.queue[1:]
		if err := c.probe(ctx, addr); err != nil {
			c.log.Debug("cannot probe", "addr", addr, "err", err)
		}
	}
}

func (c *Client) probe(ctx context.Context, addr netip.AddrPort) error {
	dp, err := c.directPath(addr)
	if err != nil {
		return err
	}
	p, err := c.cfg.Conn.AddPath(dp.tr)
	if err != nil {
		return err
	}
	dp.route.Attach()
	c.muteWhileProbing(dp)
	dp.path = p
	c.inFlight++
	c.count(func(s *ClientStats) { s.Probes++ })
	go func() {
		pctx, cancel := context.WithTimeout(ctx, c.cfg.ProbeTimeout)
		defer cancel()
		err := p.Probe(pctx)
		select {
		case c.results <- probeResult{dp: dp, path: p, err: err}:
		case <-ctx.Done():
		}
	}()
	return nil
}

// directPath returns the route and transport for addr, made once per
// address and kept for the life of the connection (closing a quic-go
// Transport would close the connection registered on it).
func (c *Client) directPath(addr netip.AddrPort) (*directPath, error) {
	if dp, ok := c.direct[addr]; ok {
		return dp, nil
	}
	route, err := c.cfg.Socket.Route(c.cfg.Relay, addr)
	if err != nil {
		return nil, err
	}
	dp := &directPath{addr: addr, sock: c.cfg.Socket, route: route, tr: &quic.Transport{Conn: route}}
	c.direct[addr] = dp
	return dp, nil
}

func (c *Client) probed(ctx context.Context, r probeResult) {
	c.inFlight--
	switch {
	case r.err == nil && c.active == nil && r.dp.path == r.path:
		// Muted first: quic-go may send once more on the old path while
		// it switches.
		c.muteRelay(true)
		if err := r.path.Switch(); err != nil {
			c.muteRelay(false)
			c.log.Warn("switch to direct path failed", "addr", r.dp.addr, "err", err)
			c.abandon(r.dp)
			break
		}
		c.active = r.dp
		c.onDirect.Store(true)
		c.backoff = c.cfg.RetryMin
		c.lastRelayProbe = c.cfg.Now()
		c.count(func(s *ClientStats) { s.Validated++; s.Switches++; s.Direct = true })
		c.emit(Event{Kind: EventDirect, Addr: r.dp.addr, Round: c.round})
		c.queue = nil
		for _, dp := range c.direct {
			if dp != r.dp && dp.path != nil {
				c.abandon(dp) // their Probe returns ErrPathClosed
			}
		}
		return
	case r.dp.path == r.path:
		c.abandon(r.dp)
	}
	if c.active == nil {
		c.muteRelay(false) // a failed probe's answer may have muted it
	}
	c.probeNext(ctx)
	if c.inFlight == 0 && len(c.queue) == 0 && c.active == nil {
		c.roundFailed()
	}
}

func (c *Client) abandon(dp *directPath) {
	dp.route.MuteWhenHeard(nil)
	if dp.path != nil {
		_ = dp.path.Close()
		dp.path = nil
	}
	dp.route.Detach()
}

func (c *Client) roundFailed() {
	c.emit(Event{Kind: EventRoundFailed, Round: c.round})
	c.retryLater()
}

func (c *Client) retryLater() {
	c.nextRound = c.cfg.Now().Add(c.backoff)
	c.backoff = min(2*c.backoff, c.cfg.RetryMax)
}

// watchDirect keeps the direct path alive and falls back when it is dead.
func (c *Client) watchDirect(ctx context.Context, now time.Time) {
	dp := c.active
	quiet := now.Sub(dp.route.LastHeard())
	switch {
	case quiet > c.cfg.DeadAfter:
		c.fallBack(ctx)
	case quiet >= c.cfg.Keepalive:
		if err := dp.sock.WriteRaw(KeepalivePacket(uint64(now.UnixNano())), dp.addr); err == nil {
			c.count(func(s *ClientStats) { s.Keepalives++ })
		}
		if quiet > c.cfg.DeadAfter/2 && !c.relayWarm {
			c.warmRelay(ctx)
		}
	case c.relayWarm:
		// The direct path recovered: nothing goes to the relay again.
		c.relayWarm = false
		c.muteRelay(true)
	}
	if c.active != nil && now.Sub(c.lastRelayProbe) >= c.cfg.RelayRefresh {
		c.lastRelayProbe = now
		_ = c.cfg.Socket.WriteRaw(makePacket(kindRelayKeepalive, uint64(now.UnixNano())), c.cfg.Relay)
	}
}

// warmRelay validates the relay path in the background once the direct
// path has been quiet for half of DeadAfter (a healthy one never is: its
// keepalives are answered every 100 ms), so that a fallback finds it
// validated and switches at once, without a round trip through the relay
// that a lost packet could stretch past the fallback's second. Only a
// direct path in trouble costs the relay these few packets.
func (c *Client) warmRelay(ctx context.Context) {
	c.relayWarm = true
	c.muteRelay(false)
	p := c.relayPath
	go func() {
		pctx, cancel := context.WithTimeout(ctx, c.cfg.DeadAfter)
		defer cancel()
		if err := p.Probe(pctx); err != nil && ctx.Err() == nil {
			c.log.Debug("relay path not validated ahead of a fallback", "err", err)
		}
	}()
}

// fallBack moves the connection back to the relay path, validating it
// first if warmRelay has not (one round trip through the relay).
func (c *Client) fallBack(ctx context.Context) {
	dp := c.active
	c.muteRelay(false)
	err := c.relayPath.Switch()
	if errors.Is(err, quic.ErrPathNotValidated) {
		pctx, cancel := context.WithTimeout(ctx, c.cfg.DeadAfter)
		err = c.relayPath.Probe(pctx)
		cancel()
		if err == nil {
			err = c.relayPath.Switch()
		}
	}
	if err != nil {
		c.muteRelay(true)
		c.log.Warn("cannot fall back to the relay path", "err", err)
		return // try again at the next tick
	}
	c.active = nil
	c.relayWarm = false
	c.onDirect.Store(false)
	c.abandon(dp)
	c.count(func(s *ClientStats) { s.Fallbacks++; s.Direct = false })
	c.emit(Event{Kind: EventRelay, Addr: dp.addr, Round: c.round})
	c.retryLater()
}

// muteRelay stops or resumes quic-go's sending on the relay route
// (pathmux Route.Mute): nothing is sent there while direct.
func (c *Client) muteRelay(mute bool) {
	if mute {
		c.relayRoute.Mute()
	} else {
		c.relayRoute.Unmute()
	}
}

// muteWhileProbing mutes the relay route from the start of a probe until
// a round trip (and a margin) has passed without an answer on the probed
// route, and for good once one arrives (pathmux Route.MuteWhenHeard). The
// camera's quic-go switches to the direct path as soon as the viewer
// answers its PATH_CHALLENGE there (the answer carries an ACK, a
// non-probing frame), a moment before the viewer switches; a packet the
// viewer sent through the relay just before it heard the challenge
// arrives after that, the relay being the longer way, and the camera
// validates the relay path anew: padded 1200-byte packets through the
// relay after the switch. Muting from the probe's start leaves no such
// packet in flight; what it costs is the viewer's ACKs through the relay
// for a round trip per probe that fails.
func (c *Client) muteWhileProbing(dp *directPath) {
	relay := c.relayRoute
	start := c.cfg.Now()
	relay.Mute()
	dp.route.MuteWhenHeard(relay)
	// A direct path's round trip is shorter than the relay path's, whose
	// smoothed RTT punchLead holds: an answer comes within it or not at
	// all, and the camera's sending is held back for at most about one
	// round trip (its congestion window covers that) per failed probe.
	time.AfterFunc(c.punchLead()+10*time.Millisecond, func() {
		if !c.onDirect.Load() && dp.route.LastHeard().Before(start) {
			relay.Unmute()
		}
	})
}

func (c *Client) emit(e Event) {
	e.At = c.cfg.Now()
	c.log.Info("path event", "kind", e.Kind, "addr", e.Addr, "round", e.Round)
	if c.cfg.OnEvent != nil {
		c.cfg.OnEvent(e)
	}
}

func (c *Client) count(f func(*ClientStats)) { c.stats.add(f) }

// Stats returns a snapshot of the counters.
func (c *Client) Stats() ClientStats { return c.stats.get() }

// Close stops the Client. The connection stays on whatever path it uses;
// the transports it made on Socket live until Socket is closed. Close also
// closes the hole sockets of fan-outs, which ends a connection still using
// one: close the Client once the connection is over.
func (c *Client) Close() error {
	c.stop()
	c.mu.Lock()
	holes := c.holes
	c.mu.Unlock()
	for _, h := range holes {
		h.Close()
	}
	return nil
}
