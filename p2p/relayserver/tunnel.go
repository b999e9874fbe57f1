package relayserver

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"
	"github.com/quic-go/quic-go/quicvarint"

	"github.com/camagent/camagent/p2p/masque/profile"
	"github.com/camagent/camagent/p2p/masque/wire"
)

// tunnelStream is the part of an HTTP/3 request stream a tunnel uses.
type tunnelStream interface {
	Read([]byte) (int, error)
	Write([]byte) (int, error)
	Close() error
	CancelRead(quic.StreamErrorCode)
	CancelWrite(quic.StreamErrorCode)
	Context() context.Context
	StreamID() quic.StreamID
	SendDatagram([]byte) error
	ReceiveDatagram(context.Context) ([]byte, error)
}

// peerContext is one compression context: a peer address that datagrams
// name by Context ID alone (listen draft section 5).
type peerContext struct {
	id       uint64
	peer     netip.AddrPort
	acked    bool // usable: assigned by the client and acknowledged by us, or the reverse
	byProxy  bool
	lastUsed time.Time
}

// tunnel is one bind registration.
type tunnel struct {
	srv      *Server
	sock     *net.UDPConn
	public   netip.AddrPort
	loc      tunnelLocators // guarded by srv.mu (locators.go)
	limitIn  *tokenBucket   // peer -> camera
	limitOut *tokenBucket   // camera -> peer
	owner    owner          // who it counts against (limits.go)
	grant    grant          // its owner's aggregate buckets

	str tunnelStream
	// qconn is the QUIC connection of str, if known: readUDP then frames
	// HTTP Datagrams itself and sends them on it (see readUDP).
	qconn *quic.Conn
	wmu   sync.Mutex // capsule writes

	mu           sync.Mutex
	uncompressed uint64 // Context ID of the uncompressed context; 0: closed (firewall mode)
	byID         map[uint64]*peerContext
	byPeer       map[netip.AddrPort]*peerContext
	nextProxyID  uint64    // proxy-allocated IDs are odd
	gate         gateState // who may reach the camera without a context (gate.go)

	closeOnce sync.Once
	done      chan struct{}
}

func newTunnel(s *Server, sock *net.UDPConn) *tunnel {
	local := sock.LocalAddr().(*net.UDPAddr).AddrPort()
	return &tunnel{
		srv: s, sock: sock,
		public:      netip.AddrPortFrom(s.cfg.PublicIP, local.Port()),
		limitIn:     newTokenBucket(s.cfg.DatagramRate, s.cfg.DatagramBurst, s.cfg.Now),
		limitOut:    newTokenBucket(s.cfg.DatagramRate, s.cfg.DatagramBurst, s.cfg.Now),
		byID:        map[uint64]*peerContext{},
		byPeer:      map[netip.AddrPort]*peerContext{},
		nextProxyID: 1,
		done:        make(chan struct{}),
	}
}

// run forwards until the stream or the socket ends. qconn is the
// connection str belongs to, or nil.
func (t *tunnel) run(str tunnelStream, qconn *quic.Conn) {
	t.str, t.qconn = str, qconn
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); t.readUDP() }()
	go func() { defer wg.Done(); t.readDatagrams() }()
	err := t.readCapsules()
	if errors.Is(err, wire.ErrMalformed) {
		// RFC 9297 section 3.3: a malformed capsule makes the message
		// malformed; only this stream is aborted.
		t.srv.metrics.StreamErrors.Add(1)
		t.srv.log.Info("aborting tunnel", "public", t.public.String(), "err", err)
		str.CancelRead(quic.StreamErrorCode(http3.ErrCodeMessageError))
		str.CancelWrite(quic.StreamErrorCode(http3.ErrCodeMessageError))
	}
	t.close()
	wg.Wait()
}

func (t *tunnel) close() {
	t.closeOnce.Do(func() {
		close(t.done)
		t.sock.Close()
		if t.str != nil {
			t.str.Close()
			t.str.CancelRead(quic.StreamErrorCode(http3.ErrCodeNoError))
		}
	})
}

// udpBatch is how many packets readUDP takes from the public socket per
// system call (recvmmsg), as quic-go does on its own sockets. Besides
// saving system calls, a burst then reaches quic-go at once, which sends
// it to the client in fewer, GSO-batched writes. The buffers cost 12 KB
// per registration that has had traffic.
const udpBatch = 8

// maxUDPRead is the read size of the public socket: a packet off a
// 1500-byte Internet path fits, and a bigger one would not fit one HTTP
// Datagram on the relay connection anyway.
const maxUDPRead = 1500

// readUDP forwards packets arriving at the public socket into the tunnel.
//
// This is the relay's busiest path. http3's SendDatagram copies every
// payload into a fresh buffer to put the Quarter Stream ID in front, and
// quic-go then copies it again; so when the connection is known, readUDP
// writes the whole HTTP Datagram (RFC 9297 section 2.1: Quarter Stream
// ID, then our Context ID and payload) into one reused buffer and hands
// it to quic-go, which makes the only copy.
func (t *tunnel) readUDP() {
	f := &toClient{t: t, send: t.str.SendDatagram, out: make([]byte, 0, 1600)}
	if t.qconn != nil {
		f.out = quicvarint.Append(f.out, uint64(t.str.StreamID()/4))
		f.send = t.qconn.SendDatagram
	}
	f.head = len(f.out)
	// Most registrations sit idle (nobody watching): until its first
	// packet a registration waits in a plain read, which needs one buffer
	// and a small goroutine stack; batches are for registrations with
	// traffic.
	buf := make([]byte, maxUDPRead)
	n, peer, err := t.sock.ReadFromUDPAddrPort(buf)
	if err != nil || !f.forward(peer, buf[:n]) {
		t.close()
		return
	}
	batch, err := newBatchReader(t.sock, udpBatch, maxUDPRead)
	if err != nil {
		t.close()
		return
	}
	for {
		n, err := batch.readBatch()
		if err != nil {
			t.close()
			return
		}
		for i := range n {
			if !f.forward(batch.addrs[i], batch.packet(i)) {
				t.close()
				return
			}
		}
	}
}

// toClient is readUDP's state for forwarding one packet.
type toClient struct {
	t    *tunnel
	send func([]byte) error
	out  []byte // datagram buffer; out[:head] is the Quarter Stream ID, if we frame it
	head int
}

// forward sends payload from peer to the client; false means the tunnel is
// broken.
func (f *toClient) forward(peer netip.AddrPort, payload []byte) bool {
	t, m := f.t, f.t.srv.metrics
	if now := t.srv.cfg.Now(); !t.limitIn.allowAt(now) || !t.grant.allowIn(now) {
		m.DropRate.Add(1)
		return true
	}
	peer = netip.AddrPortFrom(peer.Addr().Unmap(), peer.Port())
	// A packet from an address the relay would not send to gets no
	// context and no forwarding: no reply could go back (target.go).
	if t.srv.policy.check(peer) != nil {
		m.DropTarget.Add(1)
		return true
	}
	if tap := t.srv.cfg.Tap; tap != nil {
		tap(true, payload)
	}
	d, assign := t.encodeForClient(f.out[:f.head], peer, payload)
	if d == nil {
		m.DropFirewall.Add(1)
		return true
	}
	if assign != nil {
		t.writeCapsule(wire.CapsuleCompressionAssign, assign.Append(nil))
	}
	f.out = d[:f.head] // keep a grown buffer
	if err := f.send(d); err != nil {
		var tooLarge *quic.DatagramTooLargeError
		if errors.As(err, &tooLarge) {
			m.DropTooLarge.Add(1)
			return true
		}
		return false
	}
	m.BytesToCamera.Add(uint64(len(payload)))
	return true
}

// encodeForClient picks the context for a packet from peer: its
// acknowledged compressed context, else the uncompressed one (and then it
// offers a compressed context for next time); nil when the uncompressed
// context is closed and the peer has none (firewall mode, draft section 7).
func (t *tunnel) encodeForClient(b []byte, peer netip.AddrPort, payload []byte) ([]byte, *wire.Assign) {
	t.mu.Lock()
	defer t.mu.Unlock()
	c := t.byPeer[peer]
	if c != nil && c.acked {
		c.lastUsed = t.srv.cfg.Now()
		return wire.AppendCompressed(b, c.id, payload), nil
	}
	if t.uncompressed == 0 || (c == nil && !t.admitsLocked(peer)) {
		return nil, nil
	}
	b = wire.AppendUncompressed(b, t.uncompressed, peer, payload)
	if c != nil || len(t.byID) >= t.srv.cfg.MaxContexts {
		return b, nil
	}
	c = &peerContext{id: t.nextProxyID, peer: peer, byProxy: true, lastUsed: t.srv.cfg.Now()}
	t.nextProxyID += 2
	t.byID[c.id] = c
	t.byPeer[peer] = c
	return b, &wire.Assign{ContextID: c.id, Target: peer}
}

// readDatagrams forwards the client's HTTP Datagrams out of the public
// socket. Unknown contexts and bad payloads are dropped (RFC 9298 section
// 5: unknown Context IDs are dropped or buffered).
func (t *tunnel) readDatagrams() {
	ctx := t.str.Context()
	for {
		d, err := t.str.ReceiveDatagram(ctx)
		if err != nil {
			t.close()
			return
		}
		t.fromClient(d)
	}
}

// fromClient sends one HTTP Datagram of the client's (from a QUIC
// DATAGRAM frame or a DATAGRAM capsule) out of the public socket.
func (t *tunnel) fromClient(d []byte) {
	m := t.srv.metrics
	if now := t.srv.cfg.Now(); !t.limitOut.allowAt(now) || !t.grant.allowOut(now) {
		m.DropRate.Add(1)
		return
	}
	peer, payload, err := t.decodeFromClient(d)
	if err != nil {
		switch {
		case errors.Is(err, errUnknownContext):
			m.DropUnknownContext.Add(1)
		case errors.As(err, new(*targetRefusal)):
			m.DropTarget.Add(1)
		default:
			m.DropMalformed.Add(1)
		}
		return
	}
	if tap := t.srv.cfg.Tap; tap != nil {
		tap(false, payload)
	}
	if _, err := t.sock.WriteToUDPAddrPort(payload, peer); err != nil {
		m.DropTooLarge.Add(1) // EMSGSIZE and friends: the packet is lost, the tunnel lives
		return
	}
	m.BytesFromCamera.Add(uint64(len(payload)))
}

var errUnknownContext = errors.New("unknown context")

func (t *tunnel) decodeFromClient(d []byte) (netip.AddrPort, []byte, error) {
	id, rest, err := wire.ParseDatagram(d)
	if err != nil {
		return netip.AddrPort{}, nil, err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if id != 0 && id == t.uncompressed {
		// Each uncompressed datagram names its own target: the policy
		// decides every one (compressed contexts were decided once, at
		// COMPRESSION_ASSIGN).
		peer, payload, err := wire.ParseUncompressed(rest)
		if err == nil {
			err = t.srv.policy.check(peer)
		}
		if err == nil {
			t.permitLocked(peer)
		}
		return peer, payload, err
	}
	c := t.byID[id]
	if c == nil || !c.acked {
		return netip.AddrPort{}, nil, errUnknownContext
	}
	c.lastUsed = t.srv.cfg.Now()
	return c.peer, rest, nil
}

// maxUnknownCapsule bounds capsules of types we skip, so a client cannot
// make us read forever without a frame boundary.
const maxUnknownCapsule = 16 << 10

// readCapsules handles the client's COMPRESSION_* capsules until the
// stream ends. A wire.ErrMalformed error means the client broke the rules.
func (t *tunnel) readCapsules() error {
	p := http3.NewCapsuleParser(t.str)
	for {
		typ, r, err := p.Next()
		if err != nil {
			return err
		}
		if typ == http3.CapsuleType(profile.CapsuleLocators) {
			if err := t.readLocators(r); err != nil {
				return err
			}
			continue
		}
		ct := wire.CapsuleType(typ)
		switch ct {
		case wire.CapsuleCompressionAssign, wire.CapsuleCompressionAck, wire.CapsuleCompressionClose:
		case capsuleDatagram:
			// RFC 9297 section 3.5: an HTTP Datagram in a capsule is the
			// same datagram as one in a QUIC DATAGRAM frame.
			d, err := readDatagramCapsule(r)
			if err != nil {
				return err
			}
			t.fromClient(d)
			continue
		default:
			if r.Remaining() > maxUnknownCapsule {
				return errors.Join(wire.ErrMalformed, errors.New("oversized unknown capsule"))
			}
			if err := r.Discard(); err != nil {
				return err
			}
			continue
		}
		if r.Remaining() > wire.MaxCompressionCapsule {
			return errors.Join(wire.ErrMalformed, errors.New("oversized compression capsule"))
		}
		value := make([]byte, r.Remaining())
		if _, err := ioReadFull(r, value); err != nil {
			return err
		}
		if err := t.handleCapsule(ct, value); err != nil {
			return err
		}
	}
}

func (t *tunnel) handleCapsule(ct wire.CapsuleType, value []byte) error {
	switch ct {
	case wire.CapsuleCompressionAssign:
		a, err := wire.ParseAssign(value)
		if err != nil {
			return err
		}
		return t.clientAssign(a)
	case wire.CapsuleCompressionAck:
		id, err := wire.ParseContextCapsule(value)
		if err != nil {
			return err
		}
		return t.clientAck(id)
	default:
		id, err := wire.ParseContextCapsule(value)
		if err != nil {
			return err
		}
		t.clientClose(id)
		return nil
	}
}

// clientAssign handles a context the client opens (listen draft 5.1):
// even IDs only, at most one uncompressed context, no reused IDs. Beyond
// the context limit the proxy answers COMPRESSION_CLOSE.
func (t *tunnel) clientAssign(a wire.Assign) error {
	if a.ContextID%2 != 0 {
		return errors.Join(wire.ErrMalformed, errors.New("client assigned an odd context id"))
	}
	t.mu.Lock()
	if _, used := t.byID[a.ContextID]; used || a.ContextID == t.uncompressed {
		t.mu.Unlock()
		return errors.Join(wire.ErrMalformed, errors.New("context id reused"))
	}
	if a.Uncompressed() {
		if t.uncompressed != 0 {
			t.mu.Unlock()
			return errors.Join(wire.ErrMalformed, errors.New("second uncompressed context"))
		}
		t.uncompressed = a.ContextID
		t.mu.Unlock()
		t.writeCapsule(wire.CapsuleCompressionAck, quicvarintAppend(a.ContextID))
		return nil
	}
	if len(t.byID) >= t.srv.cfg.MaxContexts || t.byPeer[a.Target] != nil {
		t.mu.Unlock()
		t.writeCapsule(wire.CapsuleCompressionClose, quicvarintAppend(a.ContextID))
		return nil
	}
	if err := t.srv.policy.check(a.Target); err != nil {
		// A context to a refused target is refused like one over the
		// limit (listen draft section 5.1: COMPRESSION_CLOSE).
		t.mu.Unlock()
		t.srv.metrics.ContextsRefused.Add(1)
		t.srv.log.Info("refused context", "public", t.public.String(), "context", a.ContextID, "err", err)
		t.writeCapsule(wire.CapsuleCompressionClose, quicvarintAppend(a.ContextID))
		return nil
	}
	c := &peerContext{id: a.ContextID, peer: a.Target, acked: true, lastUsed: t.srv.cfg.Now()}
	t.byID[c.id] = c
	t.byPeer[c.peer] = c
	t.mu.Unlock()
	t.writeCapsule(wire.CapsuleCompressionAck, quicvarintAppend(a.ContextID))
	return nil
}

func (t *tunnel) clientAck(id uint64) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	c := t.byID[id]
	if c == nil {
		if id%2 == 1 && id < t.nextProxyID {
			return nil // a context we closed meanwhile
		}
		return errors.Join(wire.ErrMalformed, errors.New("ack for a context never assigned"))
	}
	if !c.byProxy {
		return errors.Join(wire.ErrMalformed, errors.New("ack for the client's own context"))
	}
	c.acked = true
	return nil
}

// clientClose removes a context; closing the uncompressed one turns the
// registration into a firewall for unassigned peers (draft section 7).
func (t *tunnel) clientClose(id uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if id == t.uncompressed {
		t.uncompressed = 0
		return
	}
	if c := t.byID[id]; c != nil {
		delete(t.byID, id)
		delete(t.byPeer, c.peer)
	}
}

// expireIdle closes proxy-assigned contexts unused since before.
func (t *tunnel) expireIdle(before time.Time) {
	t.mu.Lock()
	var ids []uint64
	for id, c := range t.byID {
		if c.byProxy && c.lastUsed.Before(before) {
			delete(t.byID, id)
			delete(t.byPeer, c.peer)
			ids = append(ids, id)
		}
	}
	t.mu.Unlock()
	for _, id := range ids {
		t.writeCapsule(wire.CapsuleCompressionClose, quicvarintAppend(id))
	}
}

func (t *tunnel) writeCapsule(ct wire.CapsuleType, value []byte) {
	t.wmu.Lock()
	defer t.wmu.Unlock()
	if _, err := t.str.Write(wire.AppendCapsule(nil, ct, value)); err != nil {
		t.close()
	}
}
