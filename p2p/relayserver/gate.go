package relayserver

import (
	"net/netip"
	"time"
)

// The gate keeps a camera's public address at the relay shut to whoever
// has not proved it may look the camera up (docs/relay.md, "Not
// enumerable"). A registration asks for it with Camagent-Gate: ?1. The
// relay then treats the uncompressed context as the listen draft's
// firewall mode (draft-ietf-masque-connect-udp-listen-14 section 7) for
// unknown peers: a packet from a peer without a compression context is
// dropped unless
//
//   - its source IP located this registration within AdmitWindow (any
//     port: a browser's locate request and its WebTransport connection
//     leave from different ports, and no SNI or ALPN tells them apart);
//   - the camera itself sent to that exact address and port within
//     permitTTL (its NAT traversal punches through the relay, like a
//     NAT's outbound permission, RFC 4787 section 5);
//   - it comes from the IP the registration came from (the camera's own
//     NAT: its mapping probe, internal/core/agent/mapping.go, is sent
//     from its QUIC socket to its own public address).
//
// An admitted peer gets a compression context as before, and keeps it
// while it is used (ContextIdle): admission is needed once per peer.
type gateState struct {
	on       bool
	ownIP    netip.Addr
	admitted map[netip.Addr]time.Time     // source IP -> end of its window
	permits  map[netip.AddrPort]time.Time // peer the camera wrote to -> until
}

const (
	// permitTTL is how long a packet from the camera to a peer opens
	// the way back from that peer.
	permitTTL = 30 * time.Second
	// maxAdmitted and maxPermits bound a registration's gate state.
	maxAdmitted = 64
	maxPermits  = 1024
)

// admitsLocked reports whether a packet from peer, which has no
// compression context, may reach the camera. t.mu is held.
func (t *tunnel) admitsLocked(peer netip.AddrPort) bool {
	g := &t.gate
	if !g.on {
		return true
	}
	if peer.Addr() == g.ownIP {
		return true
	}
	now := t.srv.cfg.Now()
	if until, ok := g.permits[peer]; ok {
		if now.Before(until) {
			return true
		}
		delete(g.permits, peer)
	}
	if until, ok := g.admitted[peer.Addr()]; ok {
		if now.Before(until) {
			return true
		}
		delete(g.admitted, peer.Addr())
	}
	return false
}

// admit opens the registration to ip for AdmitWindow (after a locate).
func (t *tunnel) admit(ip netip.Addr) {
	t.mu.Lock()
	defer t.mu.Unlock()
	g := &t.gate
	if !g.on {
		return
	}
	now := t.srv.cfg.Now()
	if g.admitted == nil {
		g.admitted = map[netip.Addr]time.Time{}
	}
	if _, ok := g.admitted[ip]; !ok && len(g.admitted) >= maxAdmitted {
		pruneTimes(g.admitted, now)
	}
	if _, ok := g.admitted[ip]; !ok && len(g.admitted) >= maxAdmitted {
		return // a flood of locates from many IPs; those admitted keep their window
	}
	g.admitted[ip] = now.Add(t.srv.cfg.AdmitWindow)
}

// permitLocked records that the camera sent to peer. t.mu is held.
func (t *tunnel) permitLocked(peer netip.AddrPort) {
	g := &t.gate
	if !g.on {
		return
	}
	now := t.srv.cfg.Now()
	if g.permits == nil {
		g.permits = map[netip.AddrPort]time.Time{}
	}
	if _, ok := g.permits[peer]; !ok && len(g.permits) >= maxPermits {
		pruneTimes(g.permits, now)
		if len(g.permits) >= maxPermits {
			return
		}
	}
	g.permits[peer] = now.Add(permitTTL)
}

func pruneTimes[K comparable](m map[K]time.Time, now time.Time) {
	for k, until := range m {
		if !now.Before(until) {
			delete(m, k)
		}
	}
}
