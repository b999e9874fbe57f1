package relayclient

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// Mux is one net.PacketConn over the direct UDP socket and any number of
// relay registrations, for a quic.Transport that serves them all with one
// listener.
//
// A peer heard through a registration is reported as a *RelayedAddr, one
// heard on the direct socket as a *net.UDPAddr, and a reply goes the way
// its address says. The two must differ even when they name the same
// IP:port, which they do behind an endpoint-independent NAT (the viewer's
// one socket talks to the relay and, after NAT traversal, to the camera):
// quic-go answers PATH_CHALLENGE and follows a migrating client only when
// the packet's address differs from the current path's
// (docs/nat-traversal.md §4). With distinct addresses, quic-go's own path
// validation and migration decide which path carries the connection.
//
// Mux deliberately does not implement quic-go's OOB interface
// (ReadMsgUDP/WriteMsgUDP/SyscallConn): quic-go would then bypass WriteTo
// and write to the UDP socket itself, skipping the routing; and every path
// of a transport must be the same kind of conn, or quic-go panics over ECN
// (shared/research/quic-p2p.md).
type Mux struct {
	direct net.PacketConn
	in     chan muxPacket
	pool   sync.Pool

	mu      sync.Mutex
	relayed map[relayedKey]*RelayedAddr // interned, so a peer's address is one value
	tunnels map[*Conn]struct{}
	// holes are extra direct sockets, each for one peer: the hole a
	// port-spray fan-out found through the camera's endpoint-dependent
	// NAT (p2p/portspray). quic-go sees one address for the peer
	// whichever socket its packets arrive on, so the Mux follows the
	// peer: replies leave from the socket its last packet came in on.
	holes     map[netip.AddrPort]*hole
	holeCount atomic.Int32
	stopped   bool // Close has run: Add and AddHole close what they get

	readDeadline deadline
	closeOnce    sync.Once
	closeErr     error
	closed       chan struct{} // closed when Close begins
	pumps        sync.WaitGroup
	done         chan struct{} // closed when Close has ended every pump
	directDone   chan struct{} // closed when the direct socket's pump has ended
	directErr    error         // the direct socket's read failure, if any; read after directDone
}

type hole struct {
	conn net.PacketConn
	used bool // the peer's last packet came in on conn
}

type muxPacket struct {
	buf  *[]byte
	n    int
	from netip.AddrPort
	via  *Conn // nil: the direct socket
}

type relayedKey struct {
	via  *Conn
	peer netip.AddrPort
}

// RelayedAddr is the address of a peer that reached the camera through a
// relay registration: its IP:port as the relay saw it, and the
// registration. quic-go compares non-UDP addresses by String, which names
// the relay, so it never equals the same IP:port heard directly.
type RelayedAddr struct {
	peer netip.AddrPort
	via  *Conn
	str  string
}

// Network is "udp".
func (a *RelayedAddr) Network() string { return "udp" }

// String is "PEER via relay PUBLIC".
func (a *RelayedAddr) String() string { return a.str }

// AddrPort is the peer's address as the relay saw it: what the peer's
// NAT mapping looks like from the internet.
func (a *RelayedAddr) AddrPort() netip.AddrPort { return a.peer }

// maxRelayed bounds the interned relayed addresses; beyond it the table
// starts afresh (a dropped entry is re-made on the next packet).
const maxRelayed = 4096

// NewMux starts reading direct (a UDP socket). The Mux runs until Close;
// Done and Err say when and why it stopped.
func NewMux(direct net.PacketConn) *Mux {
	m := &Mux{
		direct:       direct,
		in:           make(chan muxPacket, 256),
		relayed:      map[relayedKey]*RelayedAddr{},
		tunnels:      map[*Conn]struct{}{},
		holes:        map[netip.AddrPort]*hole{},
		readDeadline: newDeadline(),
		closed:       make(chan struct{}),
		done:         make(chan struct{}),
		directDone:   make(chan struct{}),
	}
	m.pool.New = func() any { b := make([]byte, 2048); return &b }
	m.pumps.Add(1)
	go func() {
		defer m.pumps.Done()
		defer close(m.directDone)
		if err := m.pump(direct, nil); err != nil {
			m.directErr = fmt.Errorf("relayclient: direct socket: %w", err)
		}
	}()
	return m
}

// Add starts serving peers that arrive through c, until c ends. After
// Close it closes c instead.
func (m *Mux) Add(c *Conn) {
	m.mu.Lock()
	if m.stopped {
		m.mu.Unlock()
		c.Close()
		return
	}
	m.tunnels[c] = struct{}{}
	m.pumps.Add(1)
	m.mu.Unlock()
	go func() {
		defer m.pumps.Done()
		m.pump(c, c)
		m.remove(c)
	}()
}

func (m *Mux) remove(c *Conn) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.tunnels, c)
	for k := range m.relayed {
		if k.via == c {
			delete(m.relayed, k)
		}
	}
}

// AddHole serves peer through c, a socket whose NAT mapping is a way for
// peer's packets to get in (a port-spray winner): what c receives is read
// as direct packets, and once peer's packets arrive on c, whatever is sent
// to peer (QUIC, echoes) leaves from c, until they arrive on the direct
// socket again or RemoveHole. first, if not empty, is a packet c already
// received from peer. A second hole for the same peer replaces the first,
// which is closed. After Close it closes c instead.
func (m *Mux) AddHole(c net.PacketConn, peer netip.AddrPort, first []byte) {
	m.mu.Lock()
	if m.stopped {
		m.mu.Unlock()
		c.Close()
		return
	}
	old := m.holes[peer]
	m.holes[peer] = &hole{conn: c}
	m.holeCount.Store(int32(len(m.holes)))
	m.pumps.Add(1)
	m.mu.Unlock()
	if old != nil {
		old.conn.Close()
	}
	if len(first) > 0 {
		buf := m.pool.Get().(*[]byte)
		p := muxPacket{buf: buf, n: copy(*buf, first), from: peer}
		select {
		case m.in <- p:
		default:
			m.pool.Put(buf)
		}
	}
	go func() {
		defer m.pumps.Done()
		m.pump(c, nil)
	}()
}

// RemoveHole stops routing through c and closes it.
func (m *Mux) RemoveHole(c net.PacketConn) {
	m.mu.Lock()
	for peer, h := range m.holes {
		if h.conn == c {
			delete(m.holes, peer)
		}
	}
	m.holeCount.Store(int32(len(m.holes)))
	m.mu.Unlock()
	c.Close()
}

// Holes is the number of hole sockets in use.
func (m *Mux) Holes() int { return int(m.holeCount.Load()) }

// heardDirect notes which socket a direct packet from peer came in on.
func (m *Mux) heardDirect(src net.PacketConn, peer netip.AddrPort) {
	if m.holeCount.Load() == 0 {
		return
	}
	m.mu.Lock()
	if h, ok := m.holes[peer]; ok {
		h.used = src == h.conn
	}
	m.mu.Unlock()
}

// directFor is the socket that reaches peer directly now.
func (m *Mux) directFor(addr net.Addr) net.PacketConn {
	ua, ok := addr.(*net.UDPAddr)
	if !ok || m.holeCount.Load() == 0 {
		return m.direct
	}
	ap := ua.AddrPort()
	m.mu.Lock()
	defer m.mu.Unlock()
	if h, ok := m.holes[netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())]; ok && h.used {
		return h.conn
	}
	return m.direct
}

// Tunnels is the number of live registrations.
func (m *Mux) Tunnels() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.tunnels)
}

// pump copies packets from one source into the shared queue until src
// fails or the Mux closes. It returns src's read error unless the Mux
// closed.
func (m *Mux) pump(src net.PacketConn, via *Conn) error {
	for {
		buf := m.pool.Get().(*[]byte)
		n, addr, err := src.ReadFrom(*buf)
		if err != nil {
			m.pool.Put(buf)
			if via == nil && !errors.Is(err, net.ErrClosed) {
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					continue
				}
			}
			select {
			case <-m.closed:
				return nil
			default:
				return err
			}
		}
		ua, ok := addr.(*net.UDPAddr)
		if !ok {
			m.pool.Put(buf)
			continue
		}
		ap := ua.AddrPort()
		p := muxPacket{buf: buf, n: n, from: netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), via: via}
		if via == nil {
			m.heardDirect(src, p.from)
		}
		select {
		case m.in <- p:
		case <-m.closed:
			m.pool.Put(buf)
			return nil
		}
	}
}

// ReadFrom returns the next packet from any path.
func (m *Mux) ReadFrom(b []byte) (int, net.Addr, error) {
	for {
		t, changed := m.readDeadline.get()
		var timeout <-chan time.Time
		if !t.IsZero() {
			d := time.Until(t)
			if d <= 0 {
				return 0, nil, errTimeout
			}
			timer := time.NewTimer(d)
			defer timer.Stop()
			timeout = timer.C
		}
		select {
		case p := <-m.in:
			n := copy(b, (*p.buf)[:p.n])
			m.pool.Put(p.buf)
			if p.via == nil {
				return n, net.UDPAddrFromAddrPort(p.from), nil
			}
			return n, m.relayedAddr(p.via, p.from), nil
		case <-timeout:
			return 0, nil, errTimeout
		case <-changed:
		case <-m.closed:
			return 0, nil, net.ErrClosed
		}
	}
}

func (m *Mux) relayedAddr(via *Conn, peer netip.AddrPort) *RelayedAddr {
	k := relayedKey{via, peer}
	m.mu.Lock()
	defer m.mu.Unlock()
	if a, ok := m.relayed[k]; ok {
		return a
	}
	if len(m.relayed) >= maxRelayed {
		clear(m.relayed)
	}
	a := &RelayedAddr{peer: peer, via: via, str: peer.String() + " via relay " + via.PublicAddr().String()}
	m.relayed[k] = a
	return a
}

// WriteTo sends b to addr: through its registration for a *RelayedAddr,
// on the direct socket otherwise.
func (m *Mux) WriteTo(b []byte, addr net.Addr) (int, error) {
	if ra, ok := addr.(*RelayedAddr); ok {
		return ra.via.WriteTo(b, net.UDPAddrFromAddrPort(ra.peer))
	}
	return m.directFor(addr).WriteTo(b, addr)
}

// WriteDirect sends b to addr on the direct socket (or addr's hole),
// whatever path addr was last heard on: punch packets must leave from the
// socket whose NAT mapping the viewer will send to, even toward a viewer
// that so far came through a relay (docs/nat-traversal.md §4).
func (m *Mux) WriteDirect(b []byte, addr net.Addr) (int, error) {
	return m.directFor(addr).WriteTo(b, addr)
}

// Close closes the direct socket, every registration and every hole, and
// waits until the goroutines reading them have ended. It returns the
// direct socket's close error; it is safe to call more than once, and
// later calls return what the first returned.
func (m *Mux) Close() error {
	m.closeOnce.Do(func() {
		close(m.closed)
		m.closeErr = m.direct.Close()
		m.mu.Lock()
		m.stopped = true
		var conns []io.Closer
		for c := range m.tunnels {
			conns = append(conns, c)
		}
		for _, h := range m.holes {
			conns = append(conns, h.conn)
		}
		m.mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
		m.pumps.Wait()
		close(m.done)
	})
	return m.closeErr
}

// Done is closed once Close has stopped the Mux and its reading
// goroutines have ended.
func (m *Mux) Done() <-chan struct{} { return m.done }

// Err is why the Mux stopped, once Done is closed. The Mux stops only by
// Close, so Err is nil unless its direct socket had failed before: then
// it is that failure (the Mux went on serving its relay registrations).
func (m *Mux) Err() error {
	<-m.done
	return m.directErr
}

// LocalAddr is the direct socket's address.
func (m *Mux) LocalAddr() net.Addr { return m.direct.LocalAddr() }

// SetDeadline sets the read deadline.
func (m *Mux) SetDeadline(t time.Time) error { return m.SetReadDeadline(t) }

// SetReadDeadline unblocks ReadFrom at t (quic-go uses it on close).
func (m *Mux) SetReadDeadline(t time.Time) error { m.readDeadline.set(t); return nil }

// SetWriteDeadline is passed to the direct socket.
func (m *Mux) SetWriteDeadline(t time.Time) error { return m.direct.SetWriteDeadline(t) }

// SetReadBuffer and SetWriteBuffer size the direct socket's buffers
// (quic-go asks for larger ones).
func (m *Mux) SetReadBuffer(n int) error {
	if c, ok := m.direct.(interface{ SetReadBuffer(int) error }); ok {
		return c.SetReadBuffer(n)
	}
	return nil
}

// SetWriteBuffer: see SetReadBuffer.
func (m *Mux) SetWriteBuffer(n int) error {
	if c, ok := m.direct.(interface{ SetWriteBuffer(int) error }); ok {
		return c.SetWriteBuffer(n)
	}
	return nil
}
