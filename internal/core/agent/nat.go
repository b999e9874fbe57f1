package agent

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"

	"github.com/quic-go/quic-go"

	"github.com/camagent/camagent/p2p/candidate"
	"github.com/camagent/camagent/p2p/discovery"
	"github.com/camagent/camagent/p2p/natwire"
	"github.com/camagent/camagent/p2p/portspray"
	"github.com/camagent/camagent/p2p/relayclient"
	"github.com/camagent/camagent/p2p/traversal"
)

// natState is the camera's side of NAT traversal (docs/nat-traversal.md
// §6): one candidate set, one Guard and one Responder for the agent, and a
// Reporter and traversal.Server per video connection. It exists only with
// relays: without one, every viewer is already on a direct path.
type natState struct {
	cands *candidate.Set
	guard *traversal.Guard
	resp  *traversal.Responder
	mux   *relayclient.Mux
	// punch sends from the Mux's direct socket: the NAT mapping that is
	// punched open must be the one viewers' packets arrive on, whichever
	// path the viewer was last heard on.
	punch func([]byte, net.Addr) (int, error)
	// listen opens the sockets of a fan-out (traversal spray.go).
	listen portspray.ListenFunc
	probes *mappingProbes
	log    *slog.Logger

	mu       sync.Mutex
	live     map[*traversal.Server]struct{}
	finished traversal.ServerStats // of the Servers that ended
}

// hostAddrs lists the host candidates; a test makes it fail.
var hostAddrs = candidate.HostAddrs

// newNATState gathers host candidates on the direct socket's port and
// starts the Responder on the transport's non-QUIC packets.
func newNATState(tr *quic.Transport, mux *relayclient.Mux, log *slog.Logger) (*natState, error) {
	local, err := discovery.AddrPort(mux.LocalAddr())
	if err != nil {
		return nil, err
	}
	// Listing interfaces needs a netlink socket, which a sandbox may refuse
	// (RestrictAddressFamilies= without AF_NETLINK). Host candidates only
	// serve same-LAN viewers: without them the camera still has the
	// reflexive candidates its relays observe, so carry on (logged once,
	// here) rather than fail the agent and have systemd restart it forever.
	hosts, prefixes, err := hostAddrs(local.Port(), candidate.HostOptions{Loopback: local.Addr().IsLoopback()})
	if err != nil {
		log.Warn("no host candidates: same-LAN viewers go through the relay", "err", err)
		hosts, prefixes = nil, nil
	}
	n := &natState{
		cands:  candidate.NewSet(),
		guard:  traversal.NewGuard(traversal.GuardConfig{LocalPrefixes: prefixes}),
		mux:    mux,
		punch:  mux.WriteDirect,
		listen: portspray.ListenUDP(local.Addr()),
		log:    log,
		live:   make(map[*traversal.Server]struct{}),
	}
	n.probes = newMappingProbes(mux.WriteDirect, log)
	for _, h := range hosts {
		// A socket bound to one address is reachable only there.
		if !local.Addr().IsUnspecified() && h.Addr() != local.Addr() {
			continue
		}
		if _, err := n.cands.Add(h, candidate.Host, "host"); err != nil {
			log.Debug("host candidate not added", "addr", h, "err", err)
		}
	}
	n.resp = traversal.NewResponder(traversal.ResponderConfig{
		Read: tr.ReadNonQUICPacket, Write: mux.WriteDirect, Guard: n.guard,
		OnMappingProbe: n.probes.answered,
	})
	return n, nil
}

// relayChanged adds the address a relay observed the camera's QUIC socket
// at as a reflexive candidate, and withdraws it when the registration ends.
func (n *natState) relayChanged(relay string, c *relayclient.Conn) {
	source := "relay:" + relay
	n.cands.RemoveSource(source)
	n.probes.registered(relay, c)
	if c == nil || !c.ObservedAddr().IsValid() {
		return
	}
	if _, err := n.cands.Add(c.ObservedAddr(), candidate.Reflexive, source); err != nil {
		n.log.Debug("reflexive candidate not added", "addr", c.ObservedAddr(), "err", err)
		return
	}
	n.log.Info("reflexive address from relay", "relay", relay, "addr", c.ObservedAddr())
}

// serve runs NAT traversal for one video connection until ctx ends (the
// session ended) or the peer breaks the traversal protocol. A failure here
// leaves the viewer where it is (on the relay), so it does not close the
// connection.
func (n *natState) serve(ctx context.Context, conn *quic.Conn, fp string, ch natwire.Channel, log *slog.Logger) {
	rep := discovery.NewReporter(discovery.ReporterConfig{Remote: conn.RemoteAddr, Send: ch.Send})
	defer rep.Close()
	// Report the viewer's address before advertising candidates, so its
	// first punching round already pairs with its reflexive address
	// (another goroutine may have sent it; Check then does nothing).
	if _, err := rep.Check(); err != nil {
		log.Debug("observed address not reported", "err", err)
	}
	// What this viewer reports about the camera is kept under its key,
	// capped, and advertised back to it alone (candidate.Viewer): one
	// viewer cannot fill the camera's set or aim others' probes.
	view := n.cands.Viewer(fp)
	defer view.Close()
	srv := traversal.NewServer(traversal.ServerConfig{
		Channel: ch, Candidates: view, Punch: n.punch, Guard: n.guard,
		Peer:    conn.RemoteAddr,
		Learner: discovery.NewLearner(view, fmt.Sprintf("conn:%p", conn)),
		Mapping: n.probes.mapping,
		Listen:  n.listen,
		Hole: func(c net.PacketConn, peer netip.AddrPort, first []byte) func() {
			n.mux.AddHole(c, peer, first)
			return func() { n.mux.RemoveHole(c) }
		},
		Logger: log.With("component", "traversal"),
	})
	n.track(srv, true)
	defer n.track(srv, false)
	defer srv.Close()
	select {
	case <-ctx.Done():
	case <-srv.Done():
		if err := srv.Err(); err != nil {
			log.Warn("NAT traversal stopped", "err", err)
		}
	}
	st := srv.Stats()
	log.Debug("NAT traversal ended", "punch_requests", st.PunchRequests, "punches", st.PunchesSent,
		"refused", st.Refused, "throttled", st.Throttled, "sprays", st.Sprays, "holes", st.Holes)
}

// track adds a Server to the live ones, or moves its counts to the
// finished totals once it has ended.
func (n *natState) track(srv *traversal.Server, live bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if live {
		n.live[srv] = struct{}{}
		return
	}
	delete(n.live, srv)
	addStats(&n.finished, srv.Stats())
}

// totals are the traversal counters of every connection since start.
func (n *natState) totals() traversal.ServerStats {
	n.mu.Lock()
	defer n.mu.Unlock()
	t := n.finished
	for srv := range n.live {
		addStats(&t, srv.Stats())
	}
	return t
}

func addStats(t *traversal.ServerStats, s traversal.ServerStats) {
	t.PunchRequests += s.PunchRequests
	t.PunchesSent += s.PunchesSent
	t.Refused += s.Refused
	t.Stale += s.Stale
	t.Throttled += s.Throttled
	t.Sprays += s.Sprays
	t.Guesses += s.Guesses
	t.Holes += s.Holes
}

// candidates is the current candidate set, for tests and status.
func (n *natState) candidates() []netip.AddrPort {
	cs, _ := n.cands.Snapshot()
	out := make([]netip.AddrPort, len(cs))
	for i, c := range cs {
		out[i] = c.Addr
	}
	return out
}

// Mapping is the camera's NAT mapping behaviour as measured through its
// relay registrations.
func (n *natState) Mapping() natwire.Mapping { return n.probes.mapping() }

func (n *natState) close() {
	if n != nil {
		n.probes.close()
		n.resp.Close()
	}
}
