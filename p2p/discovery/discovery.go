// Package discovery implements the semantics of
// draft-ietf-quic-address-discovery-00 over a natwire.Channel: the observing
// side (Reporter) tells its peer the source address the peer's packets
// arrive from, with a new sequence number each time it changes; the
// observed side (Learner) keeps the newest report as a reflexive candidate.
// quic-go exposes only the active path's remote address, so a report
// follows the path the connection is using (section "OBSERVED_ADDRESS
// Frame": sent on a new path and after NAT rebinding).
package discovery

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/camagent/camagent/p2p/candidate"
	"github.com/camagent/camagent/p2p/natwire"
)

// DefaultInterval is how often a Reporter looks at the remote address. A
// migration is noticed within this time.
const DefaultInterval = 100 * time.Millisecond

// ReporterConfig configures a Reporter.
type ReporterConfig struct {
	// Remote returns the address the peer's packets come from now; for a
	// quic.Conn that is conn.RemoteAddr.
	Remote func() net.Addr
	// Send delivers a frame to the peer (a natwire.Channel's Send).
	Send func(natwire.Frame) error
	// Interval between checks; 0 means DefaultInterval.
	Interval time.Duration
}

// Reporter sends OBSERVED_ADDRESS at start and whenever the observed
// address changes. It runs until Close or a failed Send.
type Reporter struct {
	cfg ReporterConfig

	mu   sync.Mutex
	seq  uint64
	last netip.AddrPort
	sent bool

	cancel context.CancelFunc
	done   chan struct{}
	err    error
}

// NewReporter starts a Reporter.
func NewReporter(cfg ReporterConfig) *Reporter {
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultInterval
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &Reporter{cfg: cfg, cancel: cancel, done: make(chan struct{})}
	go r.run(ctx)
	return r
}

func (r *Reporter) run(ctx context.Context) {
	defer close(r.done)
	t := time.NewTicker(r.cfg.Interval)
	defer t.Stop()
	for {
		if _, err := r.Check(); err != nil {
			r.err = err
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Check observes the remote address once and reports it if it changed. It
// returns whether a frame was sent.
func (r *Reporter) Check() (bool, error) {
	addr, err := AddrPort(r.cfg.Remote())
	if err != nil {
		return false, nil // not a UDP address (e.g. a test pipe): nothing to report
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.sent && addr == r.last {
		return false, nil
	}
	seq := r.seq
	if r.sent {
		seq++
	}
	if err := r.cfg.Send(&natwire.ObservedAddress{Seq: seq, Addr: addr}); err != nil {
		return false, fmt.Errorf("report observed address: %w", err)
	}
	r.seq, r.last, r.sent = seq, addr, true
	return true, nil
}

// Done is closed when the Reporter has stopped.
func (r *Reporter) Done() <-chan struct{} { return r.done }

// Err is the Send failure that stopped the Reporter, after Done.
func (r *Reporter) Err() error {
	<-r.done
	return r.err
}

// Close stops the Reporter and waits for it.
func (r *Reporter) Close() error {
	r.cancel()
	<-r.done
	return nil
}

// AddrPort converts a UDP net.Addr to a netip.AddrPort.
func AddrPort(a net.Addr) (netip.AddrPort, error) {
	switch a := a.(type) {
	case *net.UDPAddr:
		ap := a.AddrPort()
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), nil
	case nil:
		return netip.AddrPort{}, errors.New("no address")
	case interface{ AddrPort() netip.AddrPort }:
		// A peer reached through a relay (relayclient.RelayedAddr): its
		// address as the relay observed it.
		ap := a.AddrPort()
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), nil
	}
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("not an IP address and port: %v", a)
	}
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), nil
}

// Candidates is where a Learner keeps its report: a *candidate.Set, or
// on the camera one viewer's part of it (*candidate.Viewer), so that what
// a viewer reports is kept, capped and advertised per viewer.
type Candidates interface {
	Add(addr netip.AddrPort, kind candidate.Kind, source string) (bool, error)
	Remove(addr netip.AddrPort, source string)
	RemoveSource(source string)
}

// Learner keeps the newest OBSERVED_ADDRESS from one peer in a candidate
// set, under one source name. It is safe for concurrent use. It has no
// goroutine of its own (Handle runs in the caller's); its lifecycle is
// NewLearner, Close, Done and Err all the same.
type Learner struct {
	set    Candidates
	source string
	done   chan struct{}

	mu      sync.Mutex
	seen    bool
	seq     uint64
	current netip.AddrPort
	closed  bool
}

// ErrLearnerClosed is Handle's answer after Close.
var ErrLearnerClosed = errors.New("discovery: learner closed")

// NewLearner returns a Learner that records reports as reflexive
// candidates of set under source (e.g. "relay" or a viewer's connection).
func NewLearner(set Candidates, source string) *Learner {
	return &Learner{set: set, source: source, done: make(chan struct{})}
}

// Handle applies one report. Reports with a sequence number not above the
// newest seen are stale and ignored (section "OBSERVED_ADDRESS Frame");
// it returns whether the reflexive address changed.
func (l *Learner) Handle(f *natwire.ObservedAddress) (bool, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return false, ErrLearnerClosed // the peer is gone: no candidate comes back
	}
	if l.seen && f.Seq <= l.seq {
		return false, nil
	}
	if err := candidate.Usable(f.Addr); err != nil {
		return false, fmt.Errorf("observed address: %w", err)
	}
	l.seen, l.seq = true, f.Seq
	if f.Addr == l.current {
		return false, nil
	}
	if l.current.IsValid() {
		l.set.Remove(l.current, l.source)
	}
	l.current = f.Addr
	if _, err := l.set.Add(f.Addr, candidate.Reflexive, l.source); err != nil {
		return true, fmt.Errorf("observed address: %w", err)
	}
	return true, nil
}

// Current returns the newest observed address.
func (l *Learner) Current() (netip.AddrPort, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.current, l.current.IsValid()
}

// Close withdraws this peer's report from the set (the peer is gone);
// Handle refuses later reports. It is safe to call more than once.
func (l *Learner) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil
	}
	l.closed = true
	l.set.RemoveSource(l.source)
	close(l.done)
	return nil
}

// Done is closed once Close has withdrawn the peer's report.
func (l *Learner) Done() <-chan struct{} { return l.done }

// Err is why the Learner stopped, once Done is closed: always nil, since
// it stops only by Close.
func (l *Learner) Err() error {
	<-l.done
	return nil
}
