package relayclient

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"
	"github.com/quic-go/quic-go/quicvarint"

	"github.com/camagent/camagent/internal/base/logging"
	"github.com/camagent/camagent/internal/feature/identity"
	"github.com/camagent/camagent/p2p/masque/profile"
	"github.com/camagent/camagent/p2p/masque/wire"
)

// uncompressedID is the Context ID the camera opens the uncompressed
// context with (client IDs are even and 0 is not used, draft section 5).
const uncompressedID = 2

// Options are how a camera registers.
type Options struct {
	Relay    RelayURL
	Identity *identity.Identity // the camera's key: TLS client certificate and locator
	Token    string             // bearer token, if the relay wants one
	Logger   *slog.Logger
	// Locators are the hashes (LocatorHash) to register under; the relay
	// binds them to Identity's key. None: viewers cannot look this
	// registration up.
	Locators [][32]byte
	// Gate asks the relay to drop packets from peers that did not
	// locate the registration first (Camagent-Gate, docs/relay.md "Not
	// enumerable"): a stranger who scans the relay's ports hears nothing.
	Gate bool
	// Transport, if set, is the quic.Transport to dial the relay on: the
	// agent's own, over the Mux, so that the registration leaves from the
	// camera's QUIC socket and the address the relay observes
	// (ObservedAddr) is that socket's NAT mapping, the one viewers punch
	// toward. nil dials from a socket of its own.
	Transport *quic.Transport
}

// Conn is a registration: a net.PacketConn whose peers are the viewers
// that send to the relay's public address for it.
type Conn struct {
	qconn  *quic.Conn
	str    *http3.RequestStream
	qsid   uint64 // Quarter Stream ID of str, the prefix of its HTTP Datagrams
	public netip.AddrPort
	// observed is where the relay saw the registration come from (zero if
	// the relay did not say).
	observed netip.AddrPort
	// locatorsRefused is how many of the locators the relay refused at
	// registration (bound to another key).
	locatorsRefused int
	log             *slog.Logger

	lmu      sync.Mutex
	locators [][32]byte // the set last sent to the relay

	wmu sync.Mutex // capsule writes

	mu     sync.Mutex
	byID   map[uint64]netip.AddrPort // proxy-assigned compressed contexts
	byPeer map[netip.AddrPort]uint64
	acked  chan struct{} // closed when the relay acknowledged the uncompressed context

	ctx          context.Context // ends at Close, unblocking ReadFrom
	cancel       context.CancelFunc
	readDeadline deadline
	closeOnce    sync.Once
	done         chan struct{} // closed when the registration ends
	err          error         // what reads and writes return once done
	byClose      bool          // Close ended it: Err is nil
	reading      chan struct{} // closed when readCapsules has returned
}

// Register dials the relay and registers a listening socket
// (draft-ietf-masque-connect-udp-listen-14 section 4). It returns once the
// relay has acknowledged the uncompressed context, so peers can reach the
// camera from then on.
func Register(ctx context.Context, opts Options) (*Conn, error) {
	log := logging.Discard(opts.Logger)
	qconn, err := dial(ctx, opts)
	if err != nil {
		return nil, fmt.Errorf("relay %s: %w", opts.Relay.Addr, err)
	}
	cc, err := clientConn(ctx, qconn)
	if err != nil {
		qconn.CloseWithError(0, "")
		return nil, fmt.Errorf("relay %s: %w", opts.Relay.Addr, err)
	}
	c, err := register(ctx, qconn, cc, opts, log)
	if err != nil {
		qconn.CloseWithError(0, "registration failed")
		return nil, fmt.Errorf("relay %s: %w", opts.Relay.Addr, err)
	}
	return c, nil
}

func dial(ctx context.Context, opts Options) (*quic.Conn, error) {
	if opts.Transport == nil {
		return quic.DialAddr(ctx, opts.Relay.Addr, opts.Relay.tlsConfig(opts.Identity), profile.QUICConfig())
	}
	ua, err := net.ResolveUDPAddr("udp", opts.Relay.Addr)
	if err != nil {
		return nil, err
	}
	return opts.Transport.Dial(ctx, ua, opts.Relay.tlsConfig(opts.Identity), profile.QUICConfig())
}

// clientConn starts HTTP/3 on qconn and checks that the relay offers
// HTTP Datagrams and Extended CONNECT (RFC 9297 section 2.1.1, RFC 9220).
func clientConn(ctx context.Context, qconn *quic.Conn) (*http3.ClientConn, error) {
	cc := (&http3.Transport{EnableDatagrams: true}).NewClientConn(qconn)
	select {
	case <-cc.ReceivedSettings():
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if s := cc.Settings(); !s.EnableDatagrams || !s.EnableExtendedConnect {
		return nil, errors.New("relay supports neither HTTP datagrams nor Extended CONNECT")
	}
	return cc, nil
}

// register sends one bind request on cc (several may share a connection).
func register(ctx context.Context, qconn *quic.Conn, cc *http3.ClientConn, opts Options, log *slog.Logger) (*Conn, error) {
	str, err := cc.OpenRequestStream(ctx)
	if err != nil {
		return nil, err
	}
	if err := str.SendRequestHeader(bindRequest(opts)); err != nil {
		return nil, err
	}
	resp, err := str.ReadResponse()
	if err != nil {
		return nil, err
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		str.CancelRead(quic.StreamErrorCode(http3.ErrCodeRequestCanceled))
		return nil, fmt.Errorf("registration refused: %s", resp.Status)
	}
	if !sfvTrue(resp.Header.Get(profile.HeaderBind)) {
		return nil, errors.New("relay did not confirm Connect-UDP-Bind")
	}
	pub, err := profile.ParsePublicAddress(resp.Header)
	if err != nil {
		return nil, err
	}
	c := &Conn{
		qconn: qconn, str: str, qsid: uint64(str.StreamID() / 4), public: pub[0], log: log,
		byID: map[uint64]netip.AddrPort{}, byPeer: map[netip.AddrPort]uint64{},
		acked: make(chan struct{}), done: make(chan struct{}), reading: make(chan struct{}),
		readDeadline: newDeadline(),
	}
	c.locators = opts.Locators
	if n, err := strconv.Atoi(resp.Header.Get(profile.HeaderLocatorRefused)); err == nil && n > 0 {
		c.locatorsRefused = n
		log.Warn("relay refused locators: another key holds them", "refused", n)
	}
	if obs, err := profile.ParseObservedAddress(resp.Header); err == nil {
		c.observed = netip.AddrPortFrom(obs[0].Addr().Unmap(), obs[0].Port())
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	go c.readCapsules()
	c.writeCapsule(wire.CapsuleCompressionAssign, wire.Assign{ContextID: uncompressedID}.Append(nil))
	select {
	case <-c.acked:
		return c, nil
	case <-c.done:
		return nil, c.err
	case <-ctx.Done():
		c.Close()
		return nil, ctx.Err()
	}
}

func sfvTrue(v string) bool { return v == "?1" }

// bindRequest is the Extended CONNECT of the listen draft: target host and
// port "*" (percent-encoded) and Connect-UDP-Bind: ?1.
func bindRequest(opts Options) *http.Request {
	h := http.Header{}
	h.Set(http3.CapsuleProtocolHeader, "?1")
	h.Set(profile.HeaderBind, "?1")
	if opts.Token != "" {
		h.Set("Authorization", "Bearer "+opts.Token)
	}
	if len(opts.Locators) > 0 {
		h.Set(profile.HeaderLocator, formatLocators(opts.Locators))
	}
	if opts.Gate {
		h.Set(profile.HeaderGate, "?1")
	}
	return &http.Request{
		Method: http.MethodConnect,
		Proto:  "connect-udp",
		Host:   opts.Relay.Addr,
		Header: h,
		URL: &url.URL{
			Scheme: "https", Host: opts.Relay.Addr,
			Path:    "/.well-known/masque/udp/*/*/",
			RawPath: "/.well-known/masque/udp/%2A/%2A/",
		},
	}
}

// LocatorsRefused is how many locators the relay refused at registration
// because another key registered them first.
func (c *Conn) LocatorsRefused() int { return c.locatorsRefused }

// SetLocators replaces the locators the registration is found under (a
// viewer was paired or revoked, a pairing code was made or used up),
// without registering again: the public address and the viewers on it
// stay. It does nothing if hashes is the set last sent.
func (c *Conn) SetLocators(hashes [][32]byte) {
	c.lmu.Lock()
	defer c.lmu.Unlock()
	if slices.Equal(c.locators, hashes) {
		return
	}
	c.locators = slices.Clone(hashes)
	v := make([]byte, 0, 32*len(hashes))
	for _, h := range hashes {
		v = append(v, h[:]...)
	}
	c.writeCapsule(wire.CapsuleType(profile.CapsuleLocators), v)
}

// ObservedAddr is the address the relay saw this registration come from
// (Camagent-Observed-Address): the camera's reflexive address when it
// registered from its QUIC socket. Invalid if the relay did not say.
func (c *Conn) ObservedAddr() netip.AddrPort { return c.observed }

// PublicAddr is the relay's UDP address for this camera
// (Proxy-Public-Address).
func (c *Conn) PublicAddr() netip.AddrPort { return c.public }

// Done is closed when the registration ends; Err then says why.
func (c *Conn) Done() <-chan struct{} { return c.done }

// Err is why the registration ended, once Done is closed: nil after
// Close, otherwise the failure (the relay closed it, the stream broke).
// Reads and writes after the end return net.ErrClosed or the failure.
func (c *Conn) Err() error {
	<-c.done
	if c.byClose {
		return nil
	}
	return c.err
}

func (c *Conn) fail(err error) {
	c.closeOnce.Do(func() {
		if err == nil {
			c.byClose = true
			err = net.ErrClosed
		}
		c.err = err
		close(c.done)
		c.cancel()
		c.str.CancelRead(quic.StreamErrorCode(http3.ErrCodeNoError))
		c.str.Close()
		c.qconn.CloseWithError(0, "")
	})
}

// Close ends the registration (the relay closes the public socket) and
// waits until the goroutine reading the relay's capsules has returned. It
// is safe to call more than once.
func (c *Conn) Close() error {
	c.fail(nil)
	<-c.reading
	return nil
}

// readCapsules handles the relay's capsules: ACK of our uncompressed
// context, ASSIGN of compressed contexts for peers (we acknowledge them
// and use them for replies), CLOSE of either.
func (c *Conn) readCapsules() {
	defer close(c.reading)
	p := http3.NewCapsuleParser(c.str)
	for {
		typ, r, err := p.Next()
		if err != nil {
			c.fail(fmt.Errorf("tunnel stream: %w", err))
			return
		}
		if r.Remaining() > wire.MaxCompressionCapsule {
			if err := r.Discard(); err != nil {
				c.fail(err)
				return
			}
			continue
		}
		value, err := io.ReadAll(r)
		if err != nil {
			c.fail(err)
			return
		}
		if err := c.handleCapsule(wire.CapsuleType(typ), value); err != nil {
			c.fail(err)
			return
		}
	}
}

func (c *Conn) handleCapsule(ct wire.CapsuleType, value []byte) error {
	switch ct {
	case wire.CapsuleCompressionAck:
		id, err := wire.ParseContextCapsule(value)
		if err != nil {
			return err
		}
		if id == uncompressedID {
			select {
			case <-c.acked:
			default:
				close(c.acked)
			}
		}
	case wire.CapsuleCompressionAssign:
		a, err := wire.ParseAssign(value)
		if err != nil {
			return err
		}
		if a.ContextID%2 != 1 || a.Uncompressed() {
			return fmt.Errorf("%w: relay assigned context %d", wire.ErrMalformed, a.ContextID)
		}
		c.mu.Lock()
		c.byID[a.ContextID] = a.Target
		c.byPeer[a.Target] = a.ContextID
		c.mu.Unlock()
		c.writeCapsule(wire.CapsuleCompressionAck, wire.AppendContextID(nil, a.ContextID))
	case wire.CapsuleCompressionClose:
		id, err := wire.ParseContextCapsule(value)
		if err != nil {
			return err
		}
		if id == uncompressedID {
			return errors.New("relay closed the uncompressed context")
		}
		c.mu.Lock()
		if peer, ok := c.byID[id]; ok {
			delete(c.byID, id)
			delete(c.byPeer, peer)
		}
		c.mu.Unlock()
	}
	return nil
}

func (c *Conn) writeCapsule(ct wire.CapsuleType, value []byte) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if _, err := c.str.Write(wire.AppendCapsule(nil, ct, value)); err != nil {
		c.fail(err)
	}
}

// ReadFrom returns the next UDP payload a peer sent to the public address.
// Datagrams in unknown contexts are skipped (RFC 9298 section 5).
func (c *Conn) ReadFrom(b []byte) (int, net.Addr, error) {
	for {
		// A deadline set while a read blocks applies from the next read.
		ctx, cancel := c.ctx, context.CancelFunc(func() {})
		if t, _ := c.readDeadline.get(); !t.IsZero() {
			ctx, cancel = context.WithDeadline(c.ctx, t)
		}
		d, err := c.str.ReceiveDatagram(ctx)
		cancel()
		if err != nil {
			if c.readDeadline.expired() {
				return 0, nil, errTimeout
			}
			c.fail(err)
			return 0, nil, c.err
		}
		peer, payload, ok := c.decode(d)
		if !ok {
			continue
		}
		return copy(b, payload), net.UDPAddrFromAddrPort(peer), nil
	}
}

func (c *Conn) decode(d []byte) (netip.AddrPort, []byte, bool) {
	id, rest, err := wire.ParseDatagram(d)
	if err != nil {
		return netip.AddrPort{}, nil, false
	}
	if id == uncompressedID {
		peer, payload, err := wire.ParseUncompressed(rest)
		return peer, payload, err == nil
	}
	c.mu.Lock()
	peer, ok := c.byID[id]
	c.mu.Unlock()
	return peer, rest, ok
}

// datagramBufs holds WriteTo's scratch buffers: WriteTo runs on every
// QUIC connection's send goroutine at once, and quic-go copies what it
// is given, so a buffer is free again as soon as SendDatagram returns.
var datagramBufs = sync.Pool{New: func() any { b := make([]byte, 0, 1600); return &b }}

// WriteTo sends b to peer through the relay, compressed when the relay has
// assigned peer a context. A packet too large for one datagram is dropped,
// as a network would; QUIC's loss recovery and path MTU discovery cope.
//
// It runs for every packet the camera sends through the relay, so it
// frames the whole HTTP Datagram (RFC 9297 section 2.1: Quarter Stream
// ID, then Context ID and payload) in a pooled buffer and sends it on the
// QUIC connection itself; http3's SendDatagram would allocate and copy
// each packet once more to add the Quarter Stream ID.
func (c *Conn) WriteTo(b []byte, addr net.Addr) (int, error) {
	ua, ok := addr.(*net.UDPAddr)
	if !ok {
		return 0, fmt.Errorf("tunnel: address %v is not UDP", addr)
	}
	peer := ua.AddrPort()
	peer = netip.AddrPortFrom(peer.Addr().Unmap(), peer.Port())
	c.mu.Lock()
	id, compressed := c.byPeer[peer]
	c.mu.Unlock()
	select {
	case <-c.done: // the stream is gone; http3 would refuse too
		return 0, c.err
	default:
	}
	bp := datagramBufs.Get().(*[]byte)
	d := quicvarint.Append((*bp)[:0], c.qsid)
	if compressed {
		d = wire.AppendCompressed(d, id, b)
	} else {
		d = wire.AppendUncompressed(d, uncompressedID, peer, b)
	}
	err := c.qconn.SendDatagram(d)
	*bp = d[:0]
	datagramBufs.Put(bp)
	if err != nil {
		var tooLarge *quic.DatagramTooLargeError
		if errors.As(err, &tooLarge) {
			return len(b), nil
		}
		c.fail(err)
		return 0, err
	}
	return len(b), nil
}

// LocalAddr is the relay's public address for us.
func (c *Conn) LocalAddr() net.Addr { return net.UDPAddrFromAddrPort(c.public) }

// SetDeadline sets the read deadline (writes do not block for long).
func (c *Conn) SetDeadline(t time.Time) error { return c.SetReadDeadline(t) }

// SetReadDeadline makes a blocked or later ReadFrom return a timeout.
func (c *Conn) SetReadDeadline(t time.Time) error { c.readDeadline.set(t); return nil }

// SetWriteDeadline is accepted and ignored.
func (c *Conn) SetWriteDeadline(time.Time) error { return nil }
