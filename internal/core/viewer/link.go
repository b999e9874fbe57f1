package viewer

import (
	"cmp"
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
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
	"github.com/camagent/camagent/p2p/traversal"
)

// Link is one connection to a camera. A connection that went through a
// relay runs on the viewer's own UDP socket (pathmux), so that NAT
// traversal can move it to a direct path: the socket's one NAT mapping is
// the address the camera observes and punches toward
// (docs/nat-traversal.md §3.1).
//
// A Link lives as long as its connection: Close closes it, Done is closed
// once the connection has ended and the link's sockets are released, and
// Err says why it ended.
type Link struct {
	Conn *quic.Conn
	log  *slog.Logger

	// Set only for a connection dialled through a relay.
	relay      netip.AddrPort
	sock       *pathmux.Socket
	tr         *quic.Transport
	relayRoute *pathmux.Route

	connected time.Time

	// heard is the traversal client, for the punches the socket receives.
	heard atomic.Pointer[traversal.Client]

	// Listen, if set before StartTraversal, opens the sockets of a
	// port-spray fan-out (default: any address, like the link's socket).
	// A program that dialled inside a network namespace it entered on one
	// thread (the NAT lab) opens them there.
	Listen portspray.ListenFunc

	// The viewer's mapping toward the relay's QUIC port, from STUN
	// (mapping.go), and the camera's reports of the link's address.
	stun    *stunProbe
	learner atomic.Pointer[discovery.Learner] // set by StartTraversal, read by Mapping from anywhere

	done   chan struct{}
	closed atomic.Bool // Close was called
	err    error

	mu        sync.Mutex
	trav      *traversal.Client
	path      string // "direct" or "relay"
	directIn  time.Duration
	wentDir   bool
	switches  int
	fallbacks int
}

// Connected is when the connection completed its handshake.
func (l *Link) Connected() time.Time { return l.connected }

// Relayed reports whether the connection was dialled through a relay.
func (l *Link) Relayed() bool { return l.sock != nil }

// Close closes the connection and waits until the link's sockets and NAT
// traversal are released. It is safe to call more than once.
func (l *Link) Close() error {
	l.closed.Store(true)
	l.Conn.CloseWithError(0, "bye")
	<-l.done
	return nil
}

// Done is closed once the connection has ended and the link has released
// its sockets and stopped NAT traversal.
func (l *Link) Done() <-chan struct{} { return l.done }

// Err is why the link ended, once Done is closed: nil after Close,
// otherwise the connection's close cause (an idle timeout, the camera's
// close, or a close of Conn by its user, such as stream.Client.Close).
func (l *Link) Err() error {
	<-l.done
	return l.err
}

// ended records why the connection ended and closes Done; it runs once,
// after the connection's context is done and the link has cleaned up.
func (l *Link) ended() {
	if !l.closed.Load() {
		l.err = context.Cause(l.Conn.Context())
	}
	close(l.done)
}

// directLink wraps a connection dialled straight to the camera.
func directLink(conn *quic.Conn, log *slog.Logger) *Link {
	l := &Link{Conn: conn, log: log, path: "direct", connected: time.Now(), wentDir: true, done: make(chan struct{})}
	go func() {
		<-conn.Context().Done()
		l.ended()
	}()
	return l
}

// dialRelayed dials the relay's public address for the camera from a
// socket of the viewer's own, wrapped in a pathmux.Socket whose relay route
// carries the connection until traversal finds a direct path.
//
// relay is the relay's own QUIC address: a STUN Binding there tells the
// link's mapping toward it, which against the camera's report of the
// mapping toward pub says how the viewer's NAT maps (mapping.go).
func dialRelayed(ctx context.Context, pub, relay netip.AddrPort, tlsConf *tls.Config, qconf *quic.Config, log *slog.Logger) (*Link, error) {
	udp, err := net.ListenUDP("udp", nil)
	if err != nil {
		return nil, err
	}
	// Punches from the camera reach the traversal client: one from a port
	// the camera never advertised is how a symmetric NAT's mapping toward
	// this viewer is learned (peer-reflexive). Keepalive echoes only
	// refresh LastHeard.
	l := &Link{log: log, relay: pub, path: "relay", done: make(chan struct{})}
	if relay.IsValid() {
		if l.stun, err = newSTUNProbe(relay); err != nil {
			log.Debug("no STUN request", "err", err)
		}
	}
	sock := pathmux.New(udp, l.heardNonQUIC)
	route, err := sock.Route(pub, pub)
	if err != nil {
		sock.Close()
		return nil, err
	}
	if l.stun != nil {
		l.stun.start(sock, log)
	}
	tr := &quic.Transport{Conn: route}
	conn, err := tr.Dial(ctx, net.UDPAddrFromAddrPort(pub), tlsConf, qconf)
	if err != nil {
		tr.Close()
		sock.Close()
		return nil, err
	}
	l.Conn, l.sock, l.tr, l.relayRoute, l.connected = conn, sock, tr, route, time.Now()
	go func() {
		// The transports live as long as the connection: closing one
		// earlier would close the connection (pathmux package comment).
		<-conn.Context().Done()
		l.mu.Lock()
		trav := l.trav
		l.mu.Unlock()
		if trav != nil {
			trav.Close()
		}
		if learner := l.learner.Load(); learner != nil {
			learner.Close()
		}
		if l.stun != nil {
			l.stun.close()
		}
		tr.Close()
		sock.Close()
		l.ended()
	}()
	return l, nil
}

// StartTraversal runs NAT traversal on a relayed connection over ch (the
// stream client's NATChannel): the viewer pairs its candidates (host
// addresses on its socket's port, and its address as the camera reports
// it) with the camera's, asks the camera to punch, migrates the live
// connection to the first direct path that validates and falls back to the
// relay when that path dies. onEvent, if set, hears every change of path.
// On a direct connection it does nothing.
func (l *Link) StartTraversal(ch natwire.Channel, onEvent func(traversal.Event)) error {
	if !l.Relayed() {
		return nil
	}
	local, err := discovery.AddrPort(l.sock.LocalAddr())
	if err != nil {
		return err
	}
	own := candidate.NewSet()
	// Loopback host candidates only in a loopback test, where the relay
	// is on loopback too.
	hosts, prefixes, err := candidate.HostAddrs(local.Port(), candidate.HostOptions{Loopback: l.relay.Addr().IsLoopback()})
	if err != nil {
		return err
	}
	for _, h := range hosts {
		if _, err := own.Add(h, candidate.Host, "host"); err != nil {
			l.log.Debug("host candidate not added", "addr", h, "err", err)
		}
	}
	learner := discovery.NewLearner(own, "camera")
	l.learner.Store(learner)
	listen := l.Listen
	if listen == nil {
		// Any address, as the link's own socket was opened.
		listen = portspray.ListenUDP(netip.Addr{})
	}
	cl, err := traversal.NewClient(traversal.ClientConfig{
		Conn: l.Conn, Channel: ch, Socket: l.sock, RelayTransport: l.tr, Relay: l.relay,
		Candidates: own, Learner: learner,
		Mapping: l.Mapping, Listen: listen, OnNonQUIC: l.heardNonQUIC,
		// A camera candidate on the viewer's own LAN is probed first: a
		// same-LAN viewer need not wait for the hairpin through the
		// router (often unsupported) to time out.
		LocalPrefixes: prefixes,
		OnEvent: func(e traversal.Event) {
			l.record(e)
			if onEvent != nil {
				onEvent(e)
			}
		},
		Logger: l.log.With("component", "traversal"),
	})
	if err != nil {
		return fmt.Errorf("NAT traversal: %w", err)
	}
	l.mu.Lock()
	l.trav = cl
	l.mu.Unlock()
	l.heard.Store(cl)
	if l.Conn.Context().Err() != nil {
		cl.Close() // the cleanup goroutine may have missed it
	}
	return nil
}

// AcceptTraversal runs NAT traversal on a relayed connection whose
// protocol has no control stream of its own (recordings, camagent-rec/1):
// the camera opens one bidirectional stream for the NAT traversal
// messages, and this waits for it in the background and then does what
// StartTraversal does. On a direct connection it does nothing.
func (l *Link) AcceptTraversal(onEvent func(traversal.Event)) {
	if !l.Relayed() {
		return
	}
	go func() {
		str, err := l.Conn.AcceptStream(l.Conn.Context())
		if err != nil {
			return
		}
		if err := l.StartTraversal(natwire.NewStreamChannel(str), onEvent); err != nil {
			l.log.Debug("no NAT traversal", "err", err)
		}
	}()
}

// heardNonQUIC is the socket's handler of non-QUIC packets; it runs on the
// read loop and never blocks.
func (l *Link) heardNonQUIC(b []byte, from netip.AddrPort) {
	if l.stun != nil && l.stun.take(b, from) {
		return
	}
	if cl := l.heard.Load(); cl != nil {
		cl.HeardPacket(b, from)
	}
}

func (l *Link) record(e traversal.Event) {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch e.Kind {
	case traversal.EventDirect:
		if !l.wentDir {
			l.wentDir, l.directIn = true, e.At.Sub(l.connected)
		}
		l.path = "direct"
		l.switches++
	case traversal.EventRelay:
		l.path = "relay"
		l.fallbacks++
	}
}

// PathStats say which path a viewing session used and how much each
// carried.
type PathStats struct {
	// Path is "direct" or "relay": where the connection is at the end.
	Path string `json:"path"`
	// TimeToDirectMs is from connected through the relay to running on a
	// direct path (0 when dialled directly); absent if never direct.
	TimeToDirectMs *float64 `json:"time_to_direct_ms,omitempty"`
	// BytesDirect and BytesRelay are UDP payload bytes received on each
	// path, measured on the viewer's socket (relayed connections only).
	BytesDirect uint64 `json:"bytes_direct"`
	BytesRelay  uint64 `json:"bytes_relay"`
	Switches    int    `json:"switches_to_direct"`
	Fallbacks   int    `json:"fallbacks_to_relay"`
	// NATMapping is how the viewer's NAT maps (relayed connections
	// only), and PortSprays the port-spraying attempts it asked for
	// (docs/nat-traversal.md §3.4): what explains a path.
	NATMapping string `json:"nat_mapping,omitempty"`
	PortSprays uint64 `json:"port_sprays,omitempty"`
}

// PathStats returns the link's figures so far.
func (l *Link) PathStats() PathStats {
	l.mu.Lock()
	defer l.mu.Unlock()
	ps := PathStats{Path: l.path, Switches: l.switches, Fallbacks: l.fallbacks}
	if l.wentDir {
		ms := round(float64(l.directIn)/float64(time.Millisecond), 1)
		ps.TimeToDirectMs = &ms
	}
	if l.sock != nil {
		for target, n := range l.sock.Received() {
			if target == l.relay {
				ps.BytesRelay += n
			} else {
				ps.BytesDirect += n
			}
		}
	}
	if l.trav != nil {
		ps.BytesDirect += l.trav.HoleBytes()
		ps.PortSprays = l.trav.Stats().Sprays
	}
	if l.sock != nil {
		ps.NATMapping = l.Mapping().String()
	}
	return ps
}

// Paths adds up the PathStats of the links of a resuming session: bytes
// and path changes of all, the path of the latest, the time to direct of
// the first that went direct.
type Paths struct {
	mu    sync.Mutex
	links []*Link
}

// Add counts l from now on.
func (p *Paths) Add(l *Link) {
	p.mu.Lock()
	p.links = append(p.links, l)
	p.mu.Unlock()
}

// close closes the links added.
func (p *Paths) close() {
	p.mu.Lock()
	links := p.links
	p.mu.Unlock()
	for _, l := range links {
		l.Close()
	}
}

// Stats is the sum over the links added.
func (p *Paths) Stats() PathStats {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out PathStats
	for _, l := range p.links {
		s := l.PathStats()
		out.Path = s.Path
		if out.TimeToDirectMs == nil {
			out.TimeToDirectMs = s.TimeToDirectMs
		}
		out.BytesDirect += s.BytesDirect
		out.BytesRelay += s.BytesRelay
		out.Switches += s.Switches
		out.Fallbacks += s.Fallbacks
		out.PortSprays += s.PortSprays
		out.NATMapping = cmp.Or(s.NATMapping, out.NATMapping)
	}
	return out
}

// TraversalStats are the NAT traversal client's counters (rounds, probes,
// switches); ok is false before StartTraversal and on a direct connection.
func (l *Link) TraversalStats() (st traversal.ClientStats, ok bool) {
	l.mu.Lock()
	trav := l.trav
	l.mu.Unlock()
	if trav == nil {
		return st, false
	}
	return trav.Stats(), true
}
