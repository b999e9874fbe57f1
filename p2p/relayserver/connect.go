package relayserver

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"
	"github.com/quic-go/quic-go/quicvarint"

	"github.com/camagent/camagent/p2p/masque/wire"
)

// connectSession is one plain RFC 9298 CONNECT-UDP socket. It counts like
// a registration (limits.go), is closed by Server.Close, and is rate
// limited both ways.
type connectSession struct {
	srv      *Server
	sock     *net.UDPConn
	target   netip.AddrPort
	owner    owner
	grant    grant
	limitIn  *tokenBucket // target -> client
	limitOut *tokenBucket // client -> target

	mu     sync.Mutex
	closed bool
	str    tunnelStream // set once the response is sent
}

// close ends the session, from either side or from Server.Close.
func (c *connectSession) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return
	}
	c.closed = true
	c.sock.Close()
	if c.str != nil {
		c.str.Close()
		c.str.CancelRead(quic.StreamErrorCode(http3.ErrCodeNoError))
	}
}

// setStream gives the session its stream, unless it was closed meanwhile.
func (c *connectSession) setStream(str tunnelStream) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		str.Close()
		str.CancelRead(quic.StreamErrorCode(http3.ErrCodeNoError))
		return false
	}
	c.str = str
	return true
}

// resolveTarget resolves a CONNECT-UDP target and picks the first address
// the target policy admits; the socket is then connected to that address,
// so a DNS answer that changes later cannot move it (no rebinding).
func (s *Server) resolveTarget(ctx context.Context, host, port string) (netip.AddrPort, error) {
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return netip.AddrPort{}, refuse(http.StatusBadRequest, "target port %q", port)
	}
	var ips []netip.Addr
	if ip, err := netip.ParseAddr(host); err == nil {
		ips = []netip.Addr{ip} // a literal is checked as written: ::ffff:127.0.0.1 is embedded IPv4
	} else {
		ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		ips, err = net.DefaultResolver.LookupNetIP(ctx, "ip", host)
		cancel()
		if err != nil || len(ips) == 0 {
			return netip.AddrPort{}, refuseAs(http.StatusBadGateway, proxyErrDNS, "resolve %s: %v", host, err)
		}
		for i := range ips {
			ips[i] = ips[i].Unmap()
		}
	}
	var first error
	for _, ip := range ips {
		ap := netip.AddrPortFrom(ip, uint16(p))
		err := s.policy.check(ap)
		if err == nil {
			return ap, nil
		}
		if first == nil {
			first = err
		}
	}
	s.metrics.ConnectRefused.Add(1)
	return netip.AddrPort{}, refuseAs(http.StatusForbidden, proxyErrDestinationIPProhibited, "%v", first)
}

// serveConnect is plain RFC 9298 CONNECT-UDP to one target, for
// authenticated clients only. HTTP Datagrams with Context ID 0 carry UDP
// payloads both ways (RFC 9298 section 5), in QUIC DATAGRAM frames or in
// DATAGRAM capsules (RFC 9297 section 3.5); other contexts are dropped.
func (s *Server) serveConnect(w http.ResponseWriter, r *http.Request, target string, o owner) {
	host, port, _ := net.SplitHostPort(target)
	raddr, err := s.resolveTarget(r.Context(), host, port)
	if err != nil {
		s.refuse(w, r, err)
		return
	}
	sock, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(raddr))
	if err != nil {
		s.refuse(w, r, refuseAs(http.StatusBadGateway, "destination_unavailable", "%v", err))
		return
	}
	c := &connectSession{
		srv: s, sock: sock, target: raddr, owner: o,
		limitIn:  newTokenBucket(s.cfg.DatagramRate, s.cfg.DatagramBurst, s.cfg.Now),
		limitOut: newTokenBucket(s.cfg.DatagramRate, s.cfg.DatagramBurst, s.cfg.Now),
	}
	if err := s.addConnect(c); err != nil {
		sock.Close()
		s.refuse(w, r, refuse(http.StatusTooManyRequests, "%v", err))
		return
	}
	defer s.removeConnect(c)
	defer c.close()
	w.Header().Set(http3.CapsuleProtocolHeader, "?1")
	w.WriteHeader(http.StatusOK)
	// Since quic-go v0.66.0 HTTPStream does not send the response header:
	// flush it first (writes to the stream fail until it is sent).
	if err := http.NewResponseController(w).Flush(); err != nil {
		return
	}
	str := w.(http3.HTTPStreamer).HTTPStream()
	if !c.setStream(str) {
		return
	}
	s.metrics.RegistrationsTotal.Add(1)
	s.log.Info("connect-udp", "remote", r.RemoteAddr, "target", raddr.String())
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); c.readUDP(o.conn) }()
	go func() { defer wg.Done(); c.readCapsules() }()
	ctx := str.Context()
	for {
		d, err := str.ReceiveDatagram(ctx)
		if err != nil {
			break
		}
		c.fromClient(d)
	}
	c.close()
	wg.Wait()
}

// fromClient sends the payload of one HTTP Datagram to the target.
func (c *connectSession) fromClient(d []byte) {
	m := c.srv.metrics
	id, payload, err := wire.ParseDatagram(d)
	switch {
	case err != nil:
		m.DropMalformed.Add(1)
	case id != 0:
		m.DropUnknownContext.Add(1)
	case !c.allowOut():
		m.DropRate.Add(1)
	default:
		if _, err := c.sock.Write(payload); err != nil {
			m.DropTooLarge.Add(1)
			return
		}
		m.BytesFromCamera.Add(uint64(len(payload)))
	}
}

func (c *connectSession) allowOut() bool {
	now := c.srv.cfg.Now()
	return c.limitOut.allowAt(now) && c.grant.allowOut(now)
}

// readCapsules forwards DATAGRAM capsules and skips others, until the
// stream ends.
func (c *connectSession) readCapsules() {
	defer c.close()
	p := http3.NewCapsuleParser(c.str)
	for {
		typ, r, err := p.Next()
		if err != nil {
			return
		}
		if wire.CapsuleType(typ) == capsuleDatagram {
			d, err := readDatagramCapsule(r)
			if err != nil {
				return
			}
			c.fromClient(d)
			continue
		}
		if r.Remaining() > maxUnknownCapsule || r.Discard() != nil {
			return
		}
	}
}

// readUDP forwards the target's packets to the client. As the
// registration's readUDP does, it reads batches (recvmmsg) and frames the
// HTTP Datagram itself (Quarter Stream ID, Context ID 0, payload) into a
// reused buffer that quic-go copies once, instead of http3's SendDatagram,
// which allocates and copies per datagram.
func (c *connectSession) readUDP(qconn *quic.Conn) {
	defer c.close()
	m := c.srv.metrics
	send := c.str.SendDatagram
	var out []byte
	if qconn != nil {
		out = quicvarint.Append(make([]byte, 0, maxUDPRead+16), uint64(c.str.StreamID()/4))
		send = qconn.SendDatagram
	}
	out = append(out, 0) // Context ID 0 (RFC 9298 section 5)
	head := len(out)
	batch, err := newBatchReader(c.sock, udpBatch, maxUDPRead)
	if err != nil {
		return
	}
	for {
		n, err := batch.readBatch()
		if err != nil {
			return
		}
		now := c.srv.cfg.Now() // one reading for the batch
		for i := range n {
			if !c.limitIn.allowAt(now) || !c.grant.allowIn(now) {
				m.DropRate.Add(1)
				continue
			}
			payload := batch.packet(i)
			d := append(out[:head], payload...)
			out = d[:head]
			if err := send(d); err != nil {
				var tooLarge *quic.DatagramTooLargeError
				if errors.As(err, &tooLarge) {
					m.DropTooLarge.Add(1)
					continue
				}
				return
			}
			m.BytesToCamera.Add(uint64(len(payload)))
		}
	}
}

// addConnect counts a CONNECT-UDP socket against its owner and the relay's
// limits, like a registration.
func (s *Server) addConnect(c *connectSession) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	g, err := s.acquireLocked(c.owner)
	if err != nil {
		return err
	}
	c.grant = g
	s.sockets.Add(1)
	s.connects[c] = struct{}{}
	return nil
}

func (s *Server) removeConnect(c *connectSession) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.connects[c]; !ok {
		return
	}
	delete(s.connects, c)
	s.sockets.Add(-1)
	s.releaseLocked(c.owner)
}

// ConnectSockets is the number of open CONNECT-UDP sockets.
func (s *Server) ConnectSockets() int { return int(s.sockets.Load()) }
