package traversal

import (
	"context"
	"net"
	"net/netip"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/camagent/camagent/p2p/candidate"
	"github.com/camagent/camagent/p2p/discovery"
	"github.com/camagent/camagent/p2p/natwire"
	"github.com/camagent/camagent/p2p/pathmux"
	"github.com/camagent/camagent/p2p/portspray"
)

// Port spraying: the birthday half of a round, for a camera and viewer of
// which one maps endpoint-dependently and the other endpoint-independently
// (docs/nat-traversal.md §3.4, p2p/portspray). The viewer decides from
// both sides' mapping (its own measured with STUN at the relay, the
// camera's from NAT_BEHAVIOR) and sends PUNCH_MANY after its PUNCH_ME_NOWs:
//
//   - camera endpoint-dependent: the camera fans out (many sockets, one
//     packet each toward the viewer's reflexive address), the viewer sprays
//     guesses at the camera's public IP from its one socket. The camera's
//     socket that hears a guess is the hole: it joins the camera's QUIC
//     socket (relayclient.Mux.AddHole) and punches toward the viewer, whose
//     traversal client learns the hole's port as a peer-reflexive
//     candidate and probes it.
//   - viewer endpoint-dependent: the viewer fans out toward the camera's
//     reflexive address, the camera sprays guesses at the viewer's IP from
//     its QUIC socket. The viewer's socket that hears a guess is the hole:
//     a new path of the connection over its own pathmux.Socket.
//
// What a PUNCH_MANY can make a camera send is bounded harder than a
// PUNCH_ME_NOW (Guard): only toward the viewer's own observed address (a
// fan-out) or its IP (a spray), at most MaxSpraysPerConn per connection
// MinSprayInterval apart, and MaxSpraysPerMinute camera-wide.
const (
	// MaxSpraysPerConn bounds the birthday attempts of one connection.
	MaxSpraysPerConn = 3
	// MinSprayInterval spaces the birthday attempts of one connection.
	MinSprayInterval = 10 * time.Second
	// MaxSpraysPerMinute bounds birthday attempts camera-wide: each is
	// portspray.DefaultGuesses packets of 13 bytes (about 110 KB with
	// headers) or portspray.DefaultSockets sockets.
	MaxSpraysPerMinute = 6
	// SprayAnswerWindow is how long after a spray the camera answers a
	// fan-out packet from the sprayed IP with a punch: a viewer socket
	// whose mapping was made after the guess that matches it reached the
	// viewer's NAT is still found.
	SprayAnswerWindow = 3 * time.Second
	// holdPeerEvery is how often a Server checks the viewer's current
	// address, to answer keepalives on a path the viewer found itself.
	holdPeerEvery = 250 * time.Millisecond
)

type fanResult struct {
	w   *portspray.Winner
	to  netip.AddrPort
	err error
}

// fanOut runs one fan-out toward to and hands the result to a run loop
// (done), or closes the winner if the loop is gone.
func fanOut(ctx context.Context, listen portspray.ListenFunc, to netip.AddrPort, round uint64, done chan<- fanResult) {
	w, err := portspray.FanOut(ctx, portspray.FanOutConfig{Listen: listen, Target: to, Packet: makePacket(kindFan, round)})
	select {
	case done <- fanResult{w: w, to: to, err: err}:
	case <-ctx.Done():
		if w != nil {
			w.Conn.Close()
		}
	}
}

// punchMany starts the camera's half of a birthday attempt if every rule
// allows it.
func (s *Server) punchMany(ctx context.Context, f *natwire.PunchMany) {
	if reason := s.sprayRefusal(f); reason != "" {
		s.log.Debug("refusing PUNCH_MANY", "round", f.Round, "mode", f.Mode, "addr", f.Addr, "reason", reason)
		s.count(func(st *ServerStats) { st.Refused++ })
		return
	}
	s.sprays++
	s.lastSpray = s.cfg.Now()
	to := unmap(f.Addr)
	s.count(func(st *ServerStats) { st.Sprays++ })
	s.log.Info("port spraying", "mode", f.Mode, "peer", to, "round", f.Round)
	switch f.Mode {
	case natwire.SprayFanOut:
		s.holdTarget(to)
		s.spawn(func() {
			defer s.cfg.Guard.endFanOut()
			fanOut(ctx, s.cfg.Listen, to, f.Round, s.fanCh)
		})
	case natwire.SprayPorts:
		s.cfg.Guard.answerFans(to.Addr(), s.cfg.Now().Add(SprayAnswerWindow))
		write := func(b []byte, a netip.AddrPort) error {
			_, err := s.cfg.Punch(b, net.UDPAddrFromAddrPort(a))
			return err
		}
		s.spawn(func() {
			n, err := portspray.Spray(ctx, write, to.Addr(), portspray.DefaultGuesses, makePacket(kindGuess, f.Round))
			s.count(func(st *ServerStats) { st.Guesses += uint64(n) })
			if err != nil {
				s.log.Debug("spray incomplete", "sent", n, "err", err)
			}
		})
	}
}

// sprayRefusal says why f must not make the camera spray or fan out, or "".
func (s *Server) sprayRefusal(f *natwire.PunchMany) string {
	s.notePeer()
	to := unmap(f.Addr)
	mapping := natwire.MappingUnknown
	if s.cfg.Mapping != nil {
		mapping = s.cfg.Mapping()
	}
	switch {
	case f.Round == 0 || f.Round < s.round:
		return "stale round"
	case !s.isAdvertised(f.PairedWith):
		return "paired with an unknown or withdrawn candidate"
	case candidate.Usable(to) != nil:
		return "unusable address"
	case s.sprays >= MaxSpraysPerConn:
		return "too many birthday attempts on this connection"
	case s.sprays > 0 && s.cfg.Now().Sub(s.lastSpray) < MinSprayInterval:
		return "birthday attempts too frequent"
	case f.Mode == natwire.SprayFanOut && mapping != natwire.MappingDependent:
		return "camera's NAT does not map endpoint-dependently: nothing to fan out"
	case f.Mode == natwire.SprayFanOut && (s.cfg.Listen == nil || s.cfg.Hole == nil):
		return "fan-out not supported here"
	case f.Mode == natwire.SprayFanOut && !s.observed[to]:
		return "fan-out target is not an address this viewer was observed at"
	case f.Mode == natwire.SprayFanOut && !s.targets[to] && len(s.targets) >= MaxTargetsPerConn:
		return "too many distinct targets"
	case f.Mode == natwire.SprayPorts && mapping != natwire.MappingIndependent:
		return "camera's NAT does not map endpoint-independently: a spray would leave from random ports"
	case f.Mode == natwire.SprayPorts && !s.observedIP(to.Addr()):
		return "spray target is not the IP address this viewer was observed at"
	case f.Mode == natwire.SprayFanOut && !s.cfg.Guard.beginFanOut():
		return "another fan-out holds its sockets"
	case !s.cfg.Guard.takeSpray():
		if f.Mode == natwire.SprayFanOut {
			s.cfg.Guard.endFanOut()
		}
		return "camera-wide birthday budget spent"
	}
	return ""
}

// fanDone takes a finished fan-out: its hole joins the camera's socket,
// and a punch train from it tells the viewer the hole's port.
func (s *Server) fanDone(r fanResult) {
	if r.err != nil {
		s.log.Info("fan-out found no hole", "peer", r.to, "err", r.err)
		return
	}
	s.holes = append(s.holes, s.cfg.Hole(r.w.Conn, r.to, r.w.First))
	s.count(func(st *ServerStats) { st.Holes++ })
	s.log.Info("fan-out found a hole", "peer", r.to, "local", r.w.Conn.LocalAddr(), "sockets", r.w.Opened)
	s.train = append(s.train, &punchTrain{to: r.to, left: s.cfg.PunchesPerPair, next: s.cfg.Now(), via: r.w.Conn.WriteTo})
	s.punch()
}

// observedIP reports whether ip is the address of one this viewer was
// observed at.
func (s *Server) observedIP(ip netip.Addr) bool {
	for a := range s.observed {
		if a.Addr() == ip {
			return true
		}
	}
	return false
}

// notePeer records the viewer's current address as observed.
func (s *Server) notePeer() netip.AddrPort {
	peer, err := discovery.AddrPort(s.cfg.Peer())
	if err == nil {
		s.observed[peer] = true
	}
	return peer
}

// holdPeer makes the viewer's current direct address a target, so the
// Responder answers its keepalives, whichever way the viewer found it (a
// viewer-side fan-out's hole is nothing the camera punched).
func (s *Server) holdPeer() {
	if _, direct := s.cfg.Peer().(*net.UDPAddr); !direct {
		return
	}
	peer := s.notePeer()
	if peer.IsValid() && !s.targets[peer] && len(s.targets) < MaxTargetsPerConn {
		s.holdTarget(peer)
	}
}

func (s *Server) holdTarget(a netip.AddrPort) {
	if !s.targets[a] {
		s.targets[a] = true
		s.cfg.Guard.hold(a)
	}
}

// birthdayDelay is how long after a round's probes may start its birthday
// half waits: a pair that ordinary punching connects (a symmetric NAT
// against a full-cone or public peer: 50-110 ms in the NAT lab) needs no
// hundreds of sockets and guesses, and a second path to the same peer
// would only compete with the first.
const birthdayDelay = 150 * time.Millisecond

// sprayLead is how long, beyond a round trip of the connection after
// PUNCH_MANY, the viewer's guesses wait when the camera fans out: time
// for the camera to open its sockets once PUNCH_MANY arrives. Guesses that arrive first are not
// lost: they open the viewer's filter, and the fan-out's resends then get
// through (portspray.DefaultResend).
const sprayLead = 50 * time.Millisecond

// punchMany sends the core's PUNCH_MANY.
func (c *Client) punchMany(a punchMany) {
	if err := c.cfg.Channel.Send(a.f); err != nil {
		c.log.Debug("PUNCH_MANY not sent", "err", err)
		return
	}
	c.count(func(s *ClientStats) { s.Sprays++ })
	c.log.Info("port spraying", "mode", a.f.Mode, "camera", a.camera, "self", a.f.Addr, "round", a.f.Round)
}

// sprayMode says what PUNCH_MANY asks of the camera, given both sides'
// mapping behaviour and whether the viewer can fan out, and whether a
// birthday attempt can help at all: only when exactly one side maps
// endpoint-dependently and the other is known to map independently.
func sprayMode(camera, viewer natwire.Mapping, viewerCanFanOut bool) (natwire.SprayMode, bool) {
	switch {
	case camera == natwire.MappingDependent && viewer == natwire.MappingIndependent:
		return natwire.SprayFanOut, true
	case viewer == natwire.MappingDependent && camera == natwire.MappingIndependent && viewerCanFanOut:
		return natwire.SprayPorts, true
	}
	return 0, false
}

// spray sends the viewer's guesses at the camera's public IP from its
// socket, whose mapping the camera's fan-out targets.
func (c *Client) spray(ctx context.Context, ip netip.Addr, round uint64) {
	write := func(b []byte, a netip.AddrPort) error { return c.cfg.Socket.WriteRaw(b, a) }
	c.spawn(func() {
		n, err := portspray.Spray(ctx, write, ip, portspray.DefaultGuesses, makePacket(kindGuess, round))
		c.count(func(s *ClientStats) { s.Guesses += uint64(n) })
		if err != nil {
			c.log.Debug("spray incomplete", "sent", n, "err", err)
		}
	})
}

// fanDone takes a finished viewer-side fan-out: the core decides whether
// its winner becomes a path (useHole) or is closed (dropHole).
func (c *Client) fanDone(r fanResult) event {
	if r.err != nil {
		c.log.Info("fan-out found no hole", "camera", r.to, "err", r.err)
		return nil
	}
	c.count(func(s *ClientStats) { s.Holes++ })
	c.log.Info("fan-out found a hole", "camera", r.to, "local", r.w.Conn.LocalAddr(), "sockets", r.w.Opened)
	if old := c.winners[r.to]; old != nil {
		old.Conn.Close()
	}
	c.winners[r.to] = r.w
	return holeFound{r.to}
}

// useHole makes the winning socket of a fan-out toward to a path of its
// own to the camera: the next probe of to goes over it.
func (c *Client) useHole(to netip.AddrPort) {
	w := c.winners[to]
	if w == nil {
		return
	}
	delete(c.winners, to)
	// Kept until Close: once quic-go has a path on it, closing it would
	// close the connection (pathmux package comment).
	sock := pathmux.New(w.Conn, c.cfg.OnNonQUIC)
	c.mu.Lock()
	c.holes = append(c.holes, sock)
	c.mu.Unlock()
	route, err := sock.Route(c.cfg.Relay, to)
	if err != nil {
		c.log.Debug("hole not usable", "camera", to, "err", err)
		return
	}
	c.direct[to] = &directPath{addr: to, sock: sock, route: route, tr: &quic.Transport{Conn: route}}
}

// HoleBytes is how many bytes of UDP payload the hole sockets of
// viewer-side fan-outs received: direct traffic that Socket did not see.
func (c *Client) HoleBytes() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	var n uint64
	for _, h := range c.holes {
		for _, b := range h.Received() {
			n += b
		}
	}
	return n
}
