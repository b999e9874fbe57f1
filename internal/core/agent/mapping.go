package agent

import (
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/camagent/camagent/p2p/natwire"
	"github.com/camagent/camagent/p2p/relayclient"
	"github.com/camagent/camagent/p2p/traversal"
)

// mappingProbeAt are the times after a registration at which the camera
// probes its own NAT, until one probe comes back.
var mappingProbeAt = []time.Duration{0, 250 * time.Millisecond, time.Second, 3 * time.Second}

// mappingProbes measure the camera's NAT mapping behaviour (RFC 5780 §4.3)
// with nothing but its relay registrations: the relay observed the
// registration come from A1, the mapping toward the relay's QUIC port. The
// camera sends a probe from the same socket to its own public address at
// the relay (another port), the relay forwards it back through the
// registration as from A2, the mapping toward that address
// (connect-udp-listen forwards whatever arrives there, with its source).
// A1 == A2: endpoint-independent; otherwise endpoint-dependent. A relay
// that drops it (its firewall mode admits only peers the camera wrote to
// first) leaves the mapping unknown, and the birthday half of NAT
// traversal unused (docs/nat-traversal.md §3.4).
type mappingProbes struct {
	write func([]byte, net.Addr) (int, error)
	log   *slog.Logger

	mu      sync.Mutex
	pending map[uint64]probeState // by token
	result  map[string]natwire.Mapping
	timers  map[string]*time.Timer
	closed  bool
}

type probeState struct {
	relay    string
	observed netip.AddrPort // A1
}

func newMappingProbes(write func([]byte, net.Addr) (int, error), log *slog.Logger) *mappingProbes {
	return &mappingProbes{
		write: write, log: log,
		pending: map[uint64]probeState{},
		result:  map[string]natwire.Mapping{},
		timers:  map[string]*time.Timer{},
	}
}

// registered starts probing through a new registration c of relay, or
// forgets the relay's result when its registration ended (c nil).
func (p *mappingProbes) registered(relay string, c *relayclient.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.stopLocked(relay)
	delete(p.result, relay)
	if c == nil || p.closed || !c.ObservedAddr().IsValid() || !c.PublicAddr().IsValid() {
		return
	}
	token := rand.Uint64()
	p.pending[token] = probeState{relay: relay, observed: c.ObservedAddr()}
	to := net.UDPAddrFromAddrPort(c.PublicAddr())
	p.schedule(relay, token, to, 0)
}

// schedule sends probe i now and plans the next one.
func (p *mappingProbes) schedule(relay string, token uint64, to net.Addr, i int) {
	wait := mappingProbeAt[i]
	if i > 0 {
		wait -= mappingProbeAt[i-1]
	}
	p.timers[relay] = time.AfterFunc(wait, func() {
		p.mu.Lock()
		defer p.mu.Unlock()
		if _, open := p.pending[token]; !open || p.closed {
			return
		}
		if _, err := p.write(traversal.MappingProbePacket(token), to); err != nil {
			p.log.Debug("mapping probe not sent", "relay", relay, "err", err)
		}
		if i+1 < len(mappingProbeAt) {
			p.schedule(relay, token, to, i+1)
		}
	})
}

// answered takes a probe that came back through a registration (the
// Responder calls it), from the mapping toward the camera's public address.
func (p *mappingProbes) answered(token uint64, from netip.AddrPort) {
	p.mu.Lock()
	defer p.mu.Unlock()
	st, ok := p.pending[token]
	if !ok {
		return // a stale or forged probe: nothing to learn
	}
	delete(p.pending, token)
	p.stopLocked(st.relay)
	m := natwire.MappingIndependent
	if from != st.observed {
		m = natwire.MappingDependent
	}
	p.result[st.relay] = m
	p.log.Info("NAT mapping measured", "relay", st.relay, "mapping", m.String(), "toward_relay", st.observed, "toward_public_address", from)
}

// mapping combines the relays' results: endpoint-dependent if any saw
// it (a NAT that maps per destination somewhere does so everywhere).
func (p *mappingProbes) mapping() natwire.Mapping {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := natwire.MappingUnknown
	for _, m := range p.result {
		out = max(out, m)
	}
	return out
}

func (p *mappingProbes) stopLocked(relay string) {
	if t := p.timers[relay]; t != nil {
		t.Stop()
		delete(p.timers, relay)
	}
	for tok, st := range p.pending {
		if st.relay == relay {
			delete(p.pending, tok)
		}
	}
}

func (p *mappingProbes) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	for relay := range p.timers {
		p.stopLocked(relay)
	}
}
