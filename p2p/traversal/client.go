package traversal

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
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

// Client is the viewer side of NAT traversal for one connection. It is
// the driver of a clientCore (clientcore.go), which makes every decision:
// the Client turns frames, probe results, punches heard and fan-out
// results into the core's events and performs its actions with quic-go
// paths, pathmux routes, portspray and one timer, all from one goroutine
// (loop.go).
type Client struct {
	loop
	cfg  ClientConfig
	log  *slog.Logger
	core *clientCore

	results chan probeResult
	heard   chan netip.AddrPort // sources of punch packets
	fanCh   chan fanResult

	// Owned by the run loop.
	direct     map[netip.AddrPort]*directPath
	probes     map[probeID]*probe // probes under way, and the active path
	active     *probe
	winners    map[netip.AddrPort]*portspray.Winner // fan-out holes the core is deciding on
	relayPath  *quic.Path
	relayRoute *pathmux.Route // Socket's route to Relay, under relayPath

	onDirect atomic.Bool // the connection runs on a direct path

	stats counters[ClientStats]
	mu    sync.Mutex
	holes []*pathmux.Socket // fan-out winners, closed with the Client
}

// directPath is the route and transport toward one camera address.
type directPath struct {
	addr  netip.AddrPort
	sock  *pathmux.Socket // Socket, or a fan-out's hole
	route *pathmux.Route
	tr    *quic.Transport
}

// probe is one quic-go path over a directPath.
type probe struct {
	dp   *directPath
	path *quic.Path
}

type probeResult struct {
	id  probeID
	err error
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
		core:       newClientCore(coreConfigOf(cfg)),
		results:    make(chan probeResult, 8),
		heard:      make(chan netip.AddrPort, 4),
		fanCh:      make(chan fanResult, 1),
		direct:     make(map[netip.AddrPort]*directPath),
		probes:     make(map[probeID]*probe),
		winners:    make(map[netip.AddrPort]*portspray.Winner),
		relayPath:  relayPath,
		relayRoute: relayRoute,
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

func coreConfigOf(cfg ClientConfig) coreConfig {
	return coreConfig{
		Relay: cfg.Relay, LocalPrefixes: cfg.LocalPrefixes, CanFanOut: cfg.Listen != nil,
		ProbeTimeout: cfg.ProbeTimeout, Keepalive: cfg.Keepalive, DeadAfter: cfg.DeadAfter,
		RetryMin: cfg.RetryMin, RetryMax: cfg.RetryMax, RelayRefresh: cfg.RelayRefresh,
	}
}

func (c *Client) run(ctx context.Context, readErr <-chan error) error {
	eng := newEngine(c.core, c.cfg.Now, c.sense, func(a action) event { return c.perform(ctx, a) })
	defer eng.stop()
	for {
		var ev event
		select {
		case <-ctx.Done():
			return nil
		case err := <-readErr:
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("NAT traversal channel: %w", err)
		case f := <-c.frames:
			var err error
			if ev, err = c.frameEvent(f); err != nil {
				return err
			}
		case r := <-c.results:
			if r.err != nil {
				c.log.Debug("probe failed", "err", r.err)
			}
			ev = probeDone{id: r.id, ok: r.err == nil}
		case a := <-c.heard:
			ev = punchHeard{a}
		case r := <-c.fanCh:
			ev = c.fanDone(r)
		case <-eng.timer.C:
			ev = timerFired{}
		}
		if ev != nil {
			eng.dispatch(ev)
		}
	}
}

// frameEvent is the core's event for a frame from the camera, or nil.
func (c *Client) frameEvent(f natwire.Frame) (event, error) {
	switch f := f.(type) {
	case *natwire.AddAddress:
		return candidateAdded{f}, nil
	case *natwire.RemoveAddress:
		return candidateRemoved{f.Seq}, nil
	case *natwire.NATBehavior:
		return cameraMapping{f.Mapping}, nil
	case *natwire.ObservedAddress:
		if c.cfg.Learner != nil {
			if changed, _ := c.cfg.Learner.Handle(f); changed {
				return reflexiveLearned{}, nil
			}
		}
		return nil, nil
	default:
		return nil, fmt.Errorf("%w: camera sent %v", ErrProtocolViolation, f.Type())
	}
}

// sense reads what the core's decisions need of state the Client does
// not own.
func (c *Client) sense() senses {
	var s senses
	if c.cfg.Candidates != nil {
		local, _ := c.cfg.Candidates.Snapshot()
		for _, l := range local {
			s.local = append(s.local, l.Addr)
		}
	}
	if c.cfg.Mapping != nil {
		s.ownMapping = c.cfg.Mapping()
	}
	if c.cfg.Learner != nil {
		s.self, _ = c.cfg.Learner.Current()
	}
	s.rtt = c.smoothedRTT()
	if c.active != nil {
		s.lastHeard = c.active.dp.route.LastHeard()
	}
	return s
}

// smoothedRTT is the connection's smoothed RTT (RFC 9002 §5.3), through
// the relay until the switch; 0 if Conn does not say.
func (c *Client) smoothedRTT() time.Duration {
	if r, ok := c.cfg.Conn.(interface{ ConnectionStats() quic.ConnectionStats }); ok {
		return r.ConnectionStats().SmoothedRTT
	}
	return 0
}

// perform does one of the core's actions; an action that can fail is
// answered with the event that reports how it went.
func (c *Client) perform(ctx context.Context, a action) event {
	switch a := a.(type) {
	case sendFrame:
		if err := c.cfg.Channel.Send(a.f); err != nil {
			c.log.Debug("frame not sent", "type", a.f.Type(), "err", err)
		}
	case roundStarted:
		c.count(func(s *ClientStats) { s.Rounds++ })
		c.log.Debug("punch round", "round", a.round, "pairs", a.pairs, "candidates", a.candidates)
	case startProbe:
		if err := c.probe(ctx, a.id, a.addr); err != nil {
			c.log.Debug("cannot probe", "addr", a.addr, "err", err)
			return probeDone{id: a.id}
		}
	case abandonProbe:
		c.abandon(a.id)
	case switchPath:
		return switchDone{id: a.id, ok: c.switchTo(a.id)}
	case muteRelay:
		c.muteRelay(a.mute)
	case sendKeepalive:
		c.keepalive(a.addr)
	case validateRelay:
		c.validateRelay(ctx)
	case fallBack:
		return fallbackDone{ok: c.fallBack(ctx)}
	case sendRelayKeepalive:
		_ = c.cfg.Socket.WriteRaw(makePacket(kindRelayKeepalive, uint64(c.cfg.Now().UnixNano())), c.cfg.Relay)
	case emit:
		c.emit(a.e)
	case peerReflexive:
		c.log.Debug("peer-reflexive candidate", "addr", a.addr)
	case punchMany:
		c.punchMany(a)
	case startSpray:
		c.spray(ctx, a.ip, a.round)
	case startFanOut:
		c.spawn(func() { fanOut(ctx, c.cfg.Listen, a.to, a.round, c.fanCh) })
	case useHole:
		c.useHole(a.to)
	case dropHole:
		if w := c.winners[a.to]; w != nil {
			delete(c.winners, a.to)
			w.Conn.Close() // direct already: nothing will use it
		}
	}
	return nil
}

// HeardPacket takes a non-QUIC packet that arrived on the viewer's socket
// (pathmux's non-QUIC handler calls it); it never blocks. A punch packet
// from a port the camera did not advertise is a peer-reflexive candidate
// (clientCore.punchHeard): the camera's NAT maps per destination
// (symmetric), so the address the relay observed is good for the relay
// only, and the port its punch toward us came from is the one way
// through. A full-cone or public viewer sees these punches arrive.
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

// probe starts validating a path to addr (RFC 9000 §8.2: quic-go sends
// PATH_CHALLENGE and retransmits it) and reports to results.
func (c *Client) probe(ctx context.Context, id probeID, addr netip.AddrPort) error {
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
	c.probes[id] = &probe{dp: dp, path: p}
	c.count(func(s *ClientStats) { s.Probes++ })
	c.spawn(func() {
		pctx, cancel := context.WithTimeout(ctx, c.cfg.ProbeTimeout)
		defer cancel()
		err := p.Probe(pctx)
		select {
		case c.results <- probeResult{id: id, err: err}:
		case <-ctx.Done():
		}
	})
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

// switchTo moves the connection to probe id's validated path (RFC 9000
// §9.2); the core muted the relay route first.
func (c *Client) switchTo(id probeID) bool {
	p := c.probes[id]
	if p == nil {
		return false
	}
	if err := p.path.Switch(); err != nil {
		c.log.Warn("switch to direct path failed", "addr", p.dp.addr, "err", err)
		return false
	}
	c.active = p
	c.onDirect.Store(true)
	return true
}

// abandon closes probe id's path (its Probe returns ErrPathClosed) and
// quiets its route, which stays for the life of the connection.
func (c *Client) abandon(id probeID) {
	p := c.probes[id]
	if p == nil {
		return // it never started
	}
	delete(c.probes, id)
	p.dp.route.MuteWhenHeard(nil)
	_ = p.path.Close()
	p.dp.route.Detach()
}

func (c *Client) keepalive(to netip.AddrPort) {
	if c.active == nil {
		return
	}
	if err := c.active.dp.sock.WriteRaw(KeepalivePacket(uint64(c.cfg.Now().UnixNano())), to); err == nil {
		c.count(func(s *ClientStats) { s.Keepalives++ })
	}
}

// validateRelay validates the relay path in the background, so that a
// fallback finds it validated and switches at once, without a round trip
// through the relay that a lost packet could stretch past the fallback's
// second.
func (c *Client) validateRelay(ctx context.Context) {
	p := c.relayPath
	c.spawn(func() {
		pctx, cancel := context.WithTimeout(ctx, c.cfg.DeadAfter)
		defer cancel()
		if err := p.Probe(pctx); err != nil && ctx.Err() == nil {
			c.log.Debug("relay path not validated ahead of a fallback", "err", err)
		}
	})
}

// fallBack moves the connection back to the relay path, validating it
// first if validateRelay has not (one round trip through the relay).
func (c *Client) fallBack(ctx context.Context) bool {
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
		c.log.Warn("cannot fall back to the relay path", "err", err)
		return false
	}
	c.active = nil
	c.onDirect.Store(false)
	return true
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
	// smoothed RTT is: an answer comes within it (and clientCore's
	// punchLead margin) or not at all, and the camera's sending is held
	// back for at most about one round trip (its congestion window covers
	// that) per failed probe.
	time.AfterFunc(c.smoothedRTT()+20*time.Millisecond, func() {
		if !c.onDirect.Load() && dp.route.LastHeard().Before(start) {
			relay.Unmute()
		}
	})
}

func (c *Client) emit(e Event) {
	e.At = c.cfg.Now()
	switch e.Kind {
	case EventDirect:
		c.count(func(s *ClientStats) { s.Validated++; s.Switches++; s.Direct = true })
	case EventRelay:
		c.count(func(s *ClientStats) { s.Fallbacks++; s.Direct = false })
	}
	c.log.Info("path event", "kind", e.Kind, "addr", e.Addr, "round", e.Round)
	if c.cfg.OnEvent != nil {
		c.cfg.OnEvent(e)
	}
}

func (c *Client) count(f func(*ClientStats)) { c.stats.add(f) }

// Stats returns a snapshot of the counters.
func (c *Client) Stats() ClientStats { return c.stats.get() }

// Close stops the Client and waits for the probes, sprays and fan-outs
// it started. The connection stays on whatever path it uses;
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
