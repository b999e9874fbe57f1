package viewer

import (
	"log/slog"
	"net/netip"
	"sync"
	"time"

	"github.com/camagent/camagent/p2p/discovery"
	"github.com/camagent/camagent/p2p/natwire"
	"github.com/camagent/camagent/p2p/pathmux"
)

// stunAt are the times after dialling at which the link asks the relay
// (STUN Binding, RFC 8489) for its address, until one answer arrives.
var stunAt = []time.Duration{0, 200 * time.Millisecond, 600 * time.Millisecond, 1500 * time.Millisecond}

// stunProbe learns the link socket's mapping toward the relay's QUIC port.
// Compared with the camera's OBSERVED_ADDRESS report (the mapping toward
// the camera's public address at the relay, another port) it tells the
// viewer's NAT mapping behaviour (RFC 5780 §4.3): what decides the
// viewer's role in port spraying (docs/nat-traversal.md §3.4).
type stunProbe struct {
	relay netip.AddrPort
	req   []byte
	tx    [12]byte

	mu       sync.Mutex
	observed netip.AddrPort
	timer    *time.Timer
	closed   bool
}

// newSTUNProbe prepares a Binding request to relay. It is made before the
// socket that carries it, whose read loop may hand take an answer at once.
func newSTUNProbe(relay netip.AddrPort) (*stunProbe, error) {
	req, tx, err := discovery.NewBindingRequest()
	if err != nil {
		return nil, err
	}
	return &stunProbe{relay: relay, req: req, tx: tx}, nil
}

// start sends the request from sock at the times of stunAt, until an
// answer arrives or close.
func (p *stunProbe) start(sock *pathmux.Socket, log *slog.Logger) {
	var send func(i int)
	send = func(i int) {
		p.mu.Lock()
		defer p.mu.Unlock()
		if p.closed || p.observed.IsValid() {
			return
		}
		if err := sock.WriteRaw(p.req, p.relay); err != nil {
			log.Debug("STUN request not sent", "relay", p.relay, "err", err)
		}
		if i+1 < len(stunAt) {
			p.timer = time.AfterFunc(stunAt[i+1]-stunAt[i], func() { send(i + 1) })
		}
	}
	send(0)
}

// take consumes b if it is the relay's answer (from the socket's
// non-QUIC handler; it never blocks).
func (p *stunProbe) take(b []byte, from netip.AddrPort) bool {
	if !discovery.IsSTUN(b) {
		return false
	}
	if from != p.relay {
		return true // STUN from elsewhere: not ours to believe
	}
	addr, err := discovery.ParseBindingResponse(b, p.tx)
	if err != nil {
		return true
	}
	p.mu.Lock()
	p.observed = addr
	if p.timer != nil {
		p.timer.Stop()
	}
	p.mu.Unlock()
	return true
}

// towardRelay is the mapping the relay's QUIC port saw, if it answered.
func (p *stunProbe) towardRelay() netip.AddrPort {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.observed
}

func (p *stunProbe) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	if p.timer != nil {
		p.timer.Stop()
	}
}

// Mapping is the viewer's NAT mapping behaviour: unknown until both the
// relay's STUN answer and the camera's report of the viewer's address are
// in, and for a connection dialled straight to the camera.
func (l *Link) Mapping() natwire.Mapping {
	learner := l.learner.Load()
	if l.stun == nil || learner == nil {
		return natwire.MappingUnknown
	}
	reported, ok := learner.Current()
	if !ok {
		return natwire.MappingUnknown
	}
	return discovery.CompareMappings(l.stun.towardRelay(), reported)
}
