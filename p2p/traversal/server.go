// Package traversal is the NAT traversal state machine of
// draft-seemann-quic-nat-traversal-02 for camagent, where the camera is the
// QUIC server and the viewer the QUIC client. Server (camera) advertises
// its candidates with ADD_ADDRESS/REMOVE_ADDRESS and punches toward the
// viewer when asked by PUNCH_ME_NOW, within the limits of a shared Guard;
// Client (viewer) pairs candidates, sends PUNCH_ME_NOW in rounds, probes
// each candidate with quic-go path validation, migrates the live connection
// to the first direct path that validates, holds it with keepalives and
// falls back to the relay path when it dies. Responder answers keepalives
// on the camera's socket. docs/nat-traversal.md describes the procedure.
package traversal

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"time"

	"github.com/camagent/camagent/p2p/candidate"
	"github.com/camagent/camagent/p2p/discovery"
	"github.com/camagent/camagent/p2p/natwire"
	"github.com/camagent/camagent/p2p/portspray"
)

// ErrProtocolViolation is wrapped by the error that ends a Server or
// Client whose peer sent a frame its role must not send.
var ErrProtocolViolation = errors.New("NAT traversal protocol violation")

// ServerConfig configures the camera side of one connection.
type ServerConfig struct {
	// Channel carries frames to and from this viewer.
	Channel natwire.Channel
	// Candidates is what this connection advertises: the camera's
	// candidate set shared by all connections (*candidate.Set), or this
	// viewer's view of it (*candidate.Viewer: the camera's own candidates
	// and what this viewer itself reported, never another viewer's
	// reports).
	Candidates CandidateSource
	// Punch sends a raw packet from the camera's QUIC socket:
	// quic.Transport.WriteTo.
	Punch func(b []byte, to net.Addr) (int, error)
	// Guard is the camera-wide limit on punching, shared by all connections.
	Guard *Guard
	// Peer returns the address the viewer's packets come from now
	// (quic.Conn.RemoteAddr); every address it returns may be punched.
	Peer func() net.Addr
	// Learner, if set, takes the viewer's OBSERVED_ADDRESS reports about
	// the camera into the candidate set.
	Learner *discovery.Learner
	// Mapping, if set, is the camera's NAT mapping behaviour as the agent
	// measured it; it is sent as NAT_BEHAVIOR and decides which half of a
	// PUNCH_MANY the camera may play (spray.go).
	Mapping func() natwire.Mapping
	// Listen opens the sockets of a fan-out, and Hole hands the winning
	// one to the camera's QUIC socket for the viewer at peer
	// (relayclient.Mux.AddHole) and returns what removes it again. Without
	// them the camera refuses fan-outs.
	Listen portspray.ListenFunc
	Hole   func(c net.PacketConn, peer netip.AddrPort, first []byte) (remove func())
	// PunchesPerPair and PunchInterval shape the punch train of one pair;
	// 0 means the defaults.
	PunchesPerPair int
	PunchInterval  time.Duration
	// Now is the clock; nil means time.Now.
	Now    func() time.Time
	Logger *slog.Logger
}

// CandidateSource is the candidates a Server advertises and a channel
// closed when they change.
type CandidateSource interface {
	Snapshot() ([]candidate.Candidate, <-chan struct{})
}

// ServerStats count what a Server did and refused.
type ServerStats struct {
	Added, Removed   uint64 // ADD_ADDRESS and REMOVE_ADDRESS sent
	PunchRequests    uint64 // PUNCH_ME_NOW received
	Rounds           uint64 // rounds that punched
	PunchesSent      uint64 // punch packets sent
	Stale            uint64 // PUNCH_ME_NOW of an old round
	Refused          uint64 // PUNCH_ME_NOW refused by policy (target, pairing, limits)
	Throttled        uint64 // punch packets not sent for the camera-wide budget
	ObservedReceived uint64 // OBSERVED_ADDRESS from the viewer
	Sprays           uint64 // PUNCH_MANY acted on
	Guesses          uint64 // spray packets sent
	Holes            uint64 // fan-outs that found a hole
}

// Server is the camera side of NAT traversal for one connection.
type Server struct {
	loop
	cfg ServerConfig
	log *slog.Logger

	observeCh chan netip.AddrPort
	fanCh     chan fanResult

	// Owned by the run loop.
	advertised map[netip.AddrPort]uint64 // candidate -> sequence number
	nextSeq    uint64
	observed   map[netip.AddrPort]bool
	targets    map[netip.AddrPort]bool // ever punched, held in the Guard
	round      uint64
	roundStart time.Time
	roundPairs int
	train      []*punchTrain
	mapping    natwire.Mapping // last sent in NAT_BEHAVIOR (never Unknown once sent)
	sprays     int
	lastSpray  time.Time
	holes      []func()

	stats counters[ServerStats]
}

type punchTrain struct {
	to   netip.AddrPort
	left int
	next time.Time
	// via, if set, sends instead of Punch: a fan-out's hole announces
	// itself from its own socket.
	via func([]byte, net.Addr) (int, error)
}

// NewServer starts the camera side for one connection. It runs until
// Close, a Channel failure or a protocol violation.
func NewServer(cfg ServerConfig) *Server {
	if cfg.PunchesPerPair <= 0 {
		cfg.PunchesPerPair = DefaultPunchesPerPair
	}
	if cfg.PunchInterval <= 0 {
		cfg.PunchInterval = DefaultPunchInterval
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	s := &Server{
		cfg:        cfg,
		log:        log,
		observeCh:  make(chan netip.AddrPort, 4),
		fanCh:      make(chan fanResult, 1),
		advertised: make(map[netip.AddrPort]uint64),
		observed:   make(map[netip.AddrPort]bool),
		targets:    make(map[netip.AddrPort]bool),
	}
	s.start(cfg.Channel, s.run, func() {
		for _, remove := range s.holes {
			remove()
		}
		for a := range s.targets {
			cfg.Guard.release(a)
		}
		if cfg.Learner != nil {
			cfg.Learner.Close()
		}
	})
	return s
}

func (s *Server) run(ctx context.Context, readErr <-chan error) error {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	peerTick := time.NewTicker(holdPeerEvery)
	defer peerTick.Stop()
	for {
		changed, err := s.advertise()
		if err != nil {
			return err
		}
		timer.Reset(s.punchDue())
		select {
		case <-ctx.Done():
			return nil
		case err := <-readErr:
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("NAT traversal channel: %w", err)
		case f := <-s.frames:
			if err := s.handle(ctx, f); err != nil {
				return err
			}
		case r := <-s.fanCh:
			s.fanDone(r)
		case <-peerTick.C:
			s.holdPeer()
		case a := <-s.observeCh:
			s.observed[a] = true
		case <-changed:
		case <-timer.C:
			s.punch()
		}
	}
}

// Observe adds a to the addresses this viewer is known at (e.g. its
// address as reported by the relay), which may be punched.
func (s *Server) Observe(a netip.AddrPort) {
	select {
	case s.observeCh <- unmap(a):
	case <-s.Done():
	}
}

// advertise sends ADD_ADDRESS for new candidates and REMOVE_ADDRESS for
// withdrawn ones (draft-seemann-quic-nat-traversal-02, sections
// "ADD_ADDRESS Frame" and "REMOVE_ADDRESS Frame").
func (s *Server) advertise() (<-chan struct{}, error) {
	if err := s.sendMapping(); err != nil {
		return nil, err
	}
	cands, changed := s.cfg.Candidates.Snapshot()
	current := make(map[netip.AddrPort]bool, len(cands))
	for _, c := range cands {
		current[c.Addr] = true
		if _, ok := s.advertised[c.Addr]; ok {
			continue
		}
		seq := s.nextSeq
		if err := s.cfg.Channel.Send(&natwire.AddAddress{Seq: seq, Addr: c.Addr}); err != nil {
			return nil, err
		}
		s.nextSeq++
		s.advertised[c.Addr] = seq
		s.count(func(st *ServerStats) { st.Added++ })
	}
	for addr, seq := range s.advertised {
		if current[addr] {
			continue
		}
		if err := s.cfg.Channel.Send(&natwire.RemoveAddress{Seq: seq}); err != nil {
			return nil, err
		}
		delete(s.advertised, addr)
		s.count(func(st *ServerStats) { st.Removed++ })
	}
	return changed, nil
}

// sendMapping sends NAT_BEHAVIOR when the camera's mapping is known and
// differs from what was sent; before any ADD_ADDRESS, so the viewer's
// first round knows it.
func (s *Server) sendMapping() error {
	if s.cfg.Mapping == nil {
		return nil
	}
	m := s.cfg.Mapping()
	if m == natwire.MappingUnknown || m == s.mapping {
		return nil
	}
	if err := s.cfg.Channel.Send(&natwire.NATBehavior{Mapping: m}); err != nil {
		return err
	}
	s.mapping = m
	return nil
}

func (s *Server) handle(ctx context.Context, f natwire.Frame) error {
	switch f := f.(type) {
	case *natwire.PunchMany:
		s.punchMany(ctx, f)
	case *natwire.NATBehavior:
		// The viewer's own; its PUNCH_MANY says what it implies.
	case *natwire.PunchMeNow:
		s.punchMeNow(f)
		// Counted once handled, so that whoever sees the count also sees
		// the outcome (Refused, Stale, Rounds).
		s.count(func(st *ServerStats) { st.PunchRequests++ })
	case *natwire.ObservedAddress:
		s.count(func(st *ServerStats) { st.ObservedReceived++ })
		if s.cfg.Learner != nil {
			if _, err := s.cfg.Learner.Handle(f); err != nil {
				s.log.Debug("ignoring observed address", "err", err)
			}
		}
	default:
		// ADD_ADDRESS and REMOVE_ADDRESS go from server to client only.
		return fmt.Errorf("%w: viewer sent %v", ErrProtocolViolation, f.Type())
	}
	return nil
}

// punchMeNow starts or extends a punch round if every rule allows it.
func (s *Server) punchMeNow(f *natwire.PunchMeNow) {
	if reason := s.refusal(f); reason != "" {
		s.log.Debug("refusing PUNCH_ME_NOW", "round", f.Round, "addr", f.Addr, "reason", reason)
		if reason == "stale round" {
			s.count(func(st *ServerStats) { st.Stale++ })
		} else {
			s.count(func(st *ServerStats) { st.Refused++ })
		}
		return
	}
	now := s.cfg.Now()
	to := unmap(f.Addr)
	if f.Round > s.round {
		// A higher round cancels the punching of earlier rounds.
		s.round, s.roundStart, s.roundPairs, s.train = f.Round, now, 0, nil
		s.count(func(st *ServerStats) { st.Rounds++ })
	}
	for _, t := range s.train {
		if t.to == to {
			return // one train per target and round
		}
	}
	s.roundPairs++
	s.holdTarget(to)
	s.train = append(s.train, &punchTrain{to: to, left: s.cfg.PunchesPerPair, next: now})
	s.punch()
}

// refusal says why f must not make the camera send anything, or "".
func (s *Server) refusal(f *natwire.PunchMeNow) string {
	s.notePeer()
	to := unmap(f.Addr)
	switch {
	case f.Round < s.round || f.Round == 0:
		return "stale round"
	case f.Round > s.round && !s.roundStart.IsZero() && s.cfg.Now().Sub(s.roundStart) < MinRoundInterval:
		return "rounds too frequent"
	case f.Round == s.round && s.roundPairs >= MaxPairsPerRound:
		return "too many pairs in round"
	case !s.isAdvertised(f.PairedWith):
		return "paired with an unknown or withdrawn candidate"
	case candidate.Usable(to) != nil:
		return "unusable address"
	case !s.observed[to] && !s.cfg.Guard.onLink(to.Addr()):
		return "address neither observed for this viewer nor on the camera's network"
	case !s.targets[to] && len(s.targets) >= MaxTargetsPerConn:
		return "too many distinct targets"
	}
	return ""
}

func (s *Server) isAdvertised(seq uint64) bool {
	for _, v := range s.advertised {
		if v == seq {
			return true
		}
	}
	return false
}

// punch sends the punch packets that are due.
func (s *Server) punch() {
	now := s.cfg.Now()
	keep := s.train[:0]
	for _, t := range s.train {
		if !now.Before(t.next) {
			s.send(t)
			t.left--
			t.next = now.Add(s.cfg.PunchInterval)
		}
		if t.left > 0 {
			keep = append(keep, t)
		}
	}
	s.train = keep
}

func (s *Server) send(t *punchTrain) {
	to := t.to
	if !s.cfg.Guard.take() {
		s.count(func(st *ServerStats) { st.Throttled++ })
		return
	}
	write := s.cfg.Punch
	if t.via != nil {
		write = t.via
	}
	if _, err := write(makePacket(kindPunch, s.round), net.UDPAddrFromAddrPort(to)); err != nil {
		s.log.Debug("punch packet not sent", "to", to, "err", err)
		return
	}
	s.count(func(st *ServerStats) { st.PunchesSent++ })
}

// punchDue is how long until the next punch packet is due.
func (s *Server) punchDue() time.Duration {
	if len(s.train) == 0 {
		return time.Hour
	}
	next := s.train[0].next
	for _, t := range s.train[1:] {
		if t.next.Before(next) {
			next = t.next
		}
	}
	return max(next.Sub(s.cfg.Now()), 0)
}

func (s *Server) count(f func(*ServerStats)) { s.stats.add(f) }

// Stats returns a snapshot of the counters.
func (s *Server) Stats() ServerStats { return s.stats.get() }

// Close stops the Server, waits for the sprays and fan-outs it started,
// releases its punch targets and withdraws what its viewer reported. It
// is safe to call more than once.
func (s *Server) Close() error {
	s.stop()
	return nil
}
