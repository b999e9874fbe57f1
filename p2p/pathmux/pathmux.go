// Package pathmux lets one UDP socket carry several QUIC paths of a client
// connection: a relay route and direct routes to candidate addresses.
//
// quic-go's client migration (Conn.AddPath) needs a new quic.Transport per
// path, and keeps sending to the address the connection was dialled to
// (the relay). Each Route is a net.PacketConn for one such Transport: quic-go
// writes to the relay address and the Route sends to its target instead;
// packets from the target are handed to quic-go as if from the relay. All
// routes share one socket, so the viewer has one NAT mapping, which is the
// reflexive address the camera learns and punches toward.
//
// Two quic-go traps shape this (see docs/nat-traversal.md §4): quic-go
// type-asserts a *net.UDPConn and then calls ReadMsgUDP/WriteMsgUDP itself,
// bypassing any rewriting, and a connection whose paths mix ECN-capable and
// plain conns panics. Every Route is therefore a plain net.PacketConn with
// no other methods, the relay route included. And a Route must never fail
// reads while its connection lives: a read error makes quic-go close the
// Transport, which destroys every connection registered on it, so a Route
// that is no longer wanted is detached (it goes quiet) rather than closed.
package pathmux

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// queueLen is how many datagrams a route buffers for quic-go.
const queueLen = 256

// Socket demultiplexes one UDP socket by remote address.
type Socket struct {
	conn      net.PacketConn
	onNonQUIC func(b []byte, from netip.AddrPort)

	mu     sync.Mutex
	routes map[netip.AddrPort]*Route // by target
	closed bool

	dropped atomic.Uint64
	done    chan struct{}
	err     error       // why readLoop ended (nil after Close); read after done
	closing atomic.Bool // Close has begun: a read error is the expected end

	closeOnce sync.Once
	closeErr  error
}

// New starts demultiplexing conn. onNonQUIC, if not nil, receives packets
// whose first byte has the QUIC fixed bit clear (RFC 9000 §17, RFC 9287):
// punch and keepalive packets, never handed to quic-go. It runs on the read
// loop and must not block; b is only valid during the call. The Socket
// runs until Close or until reading conn fails; Done and Err tell.
func New(conn net.PacketConn, onNonQUIC func(b []byte, from netip.AddrPort)) *Socket {
	s := &Socket{
		conn:      conn,
		onNonQUIC: onNonQUIC,
		routes:    make(map[netip.AddrPort]*Route),
		done:      make(chan struct{}),
	}
	go s.readLoop()
	return s
}

func (s *Socket) readLoop() {
	defer close(s.done)
	buf := make([]byte, 1<<16)
	for {
		n, addr, err := s.conn.ReadFrom(buf)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			if !s.closing.Load() {
				s.err = fmt.Errorf("pathmux: read: %w", err)
			}
			s.closeRoutes()
			return
		}
		from, ok := addrPort(addr)
		if !ok || n == 0 {
			continue
		}
		s.dispatch(buf[:n], from)
	}
}

func (s *Socket) dispatch(b []byte, from netip.AddrPort) {
	s.mu.Lock()
	r := s.routes[from]
	s.mu.Unlock()
	if r != nil {
		r.heard.Store(time.Now().UnixNano())
		r.received.Add(uint64(len(b)))
	}
	if b[0]&0x40 == 0 {
		if s.onNonQUIC != nil {
			s.onNonQUIC(b, from)
		}
		return
	}
	if r != nil {
		if other := r.muteOnHeard.Swap(nil); other != nil {
			other.Mute()
		}
	}
	if r == nil || !r.deliver(b) {
		s.dropped.Add(1)
	}
}

func addrPort(a net.Addr) (netip.AddrPort, bool) {
	ua, ok := a.(*net.UDPAddr)
	if !ok {
		return netip.AddrPort{}, false
	}
	ap := ua.AddrPort()
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), true
}

// Route returns a PacketConn on which quic-go's writes to alias go to
// target and packets from target read as coming from alias. A Route for a
// target that already has one is that Route (re-attached if detached).
func (s *Socket) Route(alias, target netip.AddrPort) (*Route, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, net.ErrClosed
	}
	if r, ok := s.routes[target]; ok {
		if r.alias != alias {
			return nil, errors.New("pathmux: target already routed under another alias")
		}
		return r, nil
	}
	r := &Route{
		s:       s,
		alias:   alias,
		aliasUA: net.UDPAddrFromAddrPort(alias),
		target:  target,
		in:      make(chan []byte, queueLen),
		closed:  make(chan struct{}),
		changed: make(chan struct{}),
	}
	s.routes[target] = r
	return r, nil
}

// Received returns the bytes received per route target so far.
func (s *Socket) Received() map[netip.AddrPort]uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[netip.AddrPort]uint64, len(s.routes))
	for t, r := range s.routes {
		out[t] = r.Received()
	}
	return out
}

// WriteRaw sends b to addr outside any route (keepalives).
func (s *Socket) WriteRaw(b []byte, to netip.AddrPort) error {
	_, err := s.conn.WriteTo(b, net.UDPAddrFromAddrPort(to))
	return err
}

// Dropped counts QUIC packets from addresses with no route, or that a full
// route queue could not take.
func (s *Socket) Dropped() uint64 { return s.dropped.Load() }

// LocalAddr is the socket's address.
func (s *Socket) LocalAddr() net.Addr { return s.conn.LocalAddr() }

// Close closes the socket and every route, and waits until the read loop
// has ended: only once the connection using them is gone, since quic-go
// closes a Transport whose reads fail. It is safe to call more than once;
// later calls return what the first returned.
func (s *Socket) Close() error {
	s.closeOnce.Do(func() {
		s.closing.Store(true)
		s.closeErr = s.conn.Close()
		<-s.done
	})
	return s.closeErr
}

// Done is closed when the Socket has stopped reading (Close, or its conn
// failed); its routes are closed by then.
func (s *Socket) Done() <-chan struct{} { return s.done }

// Err is why the Socket stopped, once Done is closed: nil after Close,
// otherwise the read error that ended it (conn was closed under it).
func (s *Socket) Err() error {
	<-s.done
	return s.err
}

func (s *Socket) closeRoutes() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	for _, r := range s.routes {
		r.closeOnce.Do(func() { close(r.closed) })
	}
}

// Route is one path's view of the socket. It implements net.PacketConn and
// nothing else, on purpose (see the package comment).
type Route struct {
	s       *Socket
	alias   netip.AddrPort
	aliasUA *net.UDPAddr
	target  netip.AddrPort
	in      chan []byte

	heard    atomic.Int64  // unix nanoseconds of the last packet from target
	received atomic.Uint64 // bytes of UDP payload from target, QUIC or not
	detached atomic.Bool
	muted    atomic.Bool
	// muteOnHeard is muted when this route's first QUIC packet arrives.
	muteOnHeard atomic.Pointer[Route]

	closeOnce sync.Once
	closed    chan struct{}

	mu       sync.Mutex
	deadline time.Time
	changed  chan struct{} // closed and replaced when the deadline changes
}

func (r *Route) deliver(b []byte) bool {
	if r.detached.Load() {
		return false
	}
	select {
	case r.in <- append([]byte(nil), b...):
		return true
	default:
		return false
	}
}

// Target is the address this route sends to.
func (r *Route) Target() netip.AddrPort { return r.target }

// LastHeard is when a packet (QUIC or not) last arrived from the target;
// zero if never.
func (r *Route) LastHeard() time.Time {
	ns := r.heard.Load()
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, ns)
}

// Received is how many bytes of UDP payload arrived from the target: the
// traffic each path carried, for figures.
func (r *Route) Received() uint64 { return r.received.Load() }

// Detach stops the route carrying packets in either direction, without
// failing quic-go's reads. Attach undoes it.
func (r *Route) Detach() { r.detached.Store(true) }

// Attach resumes a detached route.
func (r *Route) Attach() { r.detached.Store(false) }

// Mute makes the route drop what quic-go sends on it while still
// delivering what arrives; Unmute undoes it. A viewer mutes the relay
// route while the connection is direct: a stray packet of its on the old
// path (a late ACK) would make the camera's quic-go validate that path
// anew with a padded 1200-byte PATH_CHALLENGE through the relay.
func (r *Route) Mute() { r.muted.Store(true) }

// Unmute resumes sending on a muted route.
func (r *Route) Unmute() { r.muted.Store(false) }

// MuteWhenHeard mutes other as soon as a QUIC packet arrives on r, before
// quic-go sees it; nil cancels. A viewer probing a direct path mutes the
// relay route this way: the camera answers the probe with a
// PATH_CHALLENGE that the viewer's answer (with an ACK in it, a
// non-probing frame) validates, so the camera switches to the direct
// path a moment before the viewer does, and any packet the viewer still
// sent through the relay in that moment would make the camera's quic-go
// validate the relay path anew with a padded 1200-byte PATH_CHALLENGE.
func (r *Route) MuteWhenHeard(other *Route) { r.muteOnHeard.Store(other) }

// ReadFrom returns the next packet from the target, reported as from the
// alias.
func (r *Route) ReadFrom(b []byte) (int, net.Addr, error) {
	for {
		r.mu.Lock()
		deadline, changed := r.deadline, r.changed
		r.mu.Unlock()
		n, err, again := r.wait(b, deadline, changed)
		if !again {
			return n, r.aliasUA, err
		}
	}
}

// wait waits for one packet until deadline; again reports a deadline
// change, after which the caller waits anew.
func (r *Route) wait(b []byte, deadline time.Time, changed <-chan struct{}) (n int, err error, again bool) {
	select {
	case <-r.closed:
		return 0, net.ErrClosed, false
	default:
	}
	var timeout <-chan time.Time
	if !deadline.IsZero() {
		d := time.Until(deadline)
		if d <= 0 {
			return 0, timeoutError{}, false
		}
		t := time.NewTimer(d)
		defer t.Stop()
		timeout = t.C
	}
	select {
	case p := <-r.in:
		return copy(b, p), nil, false
	case <-r.closed:
		return 0, net.ErrClosed, false
	case <-timeout:
		return 0, timeoutError{}, false
	case <-changed:
		return 0, nil, true
	}
}

// WriteTo sends b to the target if addr is the alias. A detached route
// drops what quic-go still sends on it.
func (r *Route) WriteTo(b []byte, addr net.Addr) (int, error) {
	select {
	case <-r.closed:
		return 0, net.ErrClosed
	default:
	}
	if r.detached.Load() || r.muted.Load() {
		return len(b), nil
	}
	to := r.target
	if ap, ok := addrPort(addr); !ok || ap != r.alias {
		// Not quic-go's connection address: e.g. a stateless reset
		// answer to a stray packet. Send where it asks.
		if !ok {
			return 0, errors.New("pathmux: not a UDP address")
		}
		to = ap
	}
	return r.s.conn.WriteTo(b, net.UDPAddrFromAddrPort(to))
}

// Close detaches the route. The socket's Close ends its reads.
func (r *Route) Close() error {
	r.Detach()
	return nil
}

// LocalAddr is the shared socket's address.
func (r *Route) LocalAddr() net.Addr { return r.s.conn.LocalAddr() }

// SetDeadline sets the read deadline; writes do not block.
func (r *Route) SetDeadline(t time.Time) error { return r.SetReadDeadline(t) }

// SetReadDeadline makes a pending and future ReadFrom return a timeout at t.
func (r *Route) SetReadDeadline(t time.Time) error {
	r.mu.Lock()
	r.deadline = t
	close(r.changed)
	r.changed = make(chan struct{})
	r.mu.Unlock()
	return nil
}

// SetWriteDeadline is a no-op: writes go straight to the socket.
func (r *Route) SetWriteDeadline(time.Time) error { return nil }

type timeoutError struct{}

func (timeoutError) Error() string   { return "pathmux: read deadline exceeded" }
func (timeoutError) Timeout() bool   { return true }
func (timeoutError) Temporary() bool { return true }
