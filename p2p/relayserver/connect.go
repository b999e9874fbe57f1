package relayserver

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/netip"
	"time"

	"github.com/quic-go/quic-go/http3"

	"github.com/camagent/camagent/p2p/masque/wire"
)

// serveConnect is plain RFC 9298 CONNECT-UDP to one target, for
// authenticated clients only. HTTP Datagrams with Context ID 0 carry UDP
// payloads both ways (RFC 9298 section 5); other contexts are dropped.
func (s *Server) serveConnect(w http.ResponseWriter, r *http.Request, target string) {
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	ips, err := net.DefaultResolver.LookupNetIP(ctx, "ip", hostOf(target))
	cancel()
	if err != nil || len(ips) == 0 {
		s.refuse(w, r, refuse(http.StatusBadGateway, "resolve %s: %v", target, err))
		return
	}
	ip := ips[0].Unmap()
	if !s.cfg.AllowPrivateTargets && !publicTarget(ip) {
		s.refuse(w, r, refuse(http.StatusForbidden, "target %s is not a public address", ip))
		return
	}
	_, port, _ := net.SplitHostPort(target)
	raddr, err := net.ResolveUDPAddr("udp", net.JoinHostPort(ip.String(), port))
	if err != nil {
		s.refuse(w, r, refuse(http.StatusBadRequest, "%v", err))
		return
	}
	sock, err := net.DialUDP("udp", nil, raddr)
	if err != nil {
		s.refuse(w, r, refuse(http.StatusBadGateway, "%v", err))
		return
	}
	defer sock.Close()
	w.Header().Set(http3.CapsuleProtocolHeader, "?1")
	w.WriteHeader(http.StatusOK)
	str, err := w.(http3.HTTPStreamer).HTTPStream()
	if err != nil {
		return
	}
	defer str.Close()
	s.metrics.RegistrationsTotal.Add(1)
	go func() {
		buf := make([]byte, 1500)
		for {
			n, err := sock.Read(buf)
			if err != nil {
				str.Close()
				return
			}
			if err := str.SendDatagram(wire.AppendCompressed(nil, 0, buf[:n])); err != nil {
				s.metrics.DropTooLarge.Add(1)
			}
		}
	}()
	limit := newTokenBucket(s.cfg.DatagramRate, s.cfg.DatagramBurst, s.cfg.Now)
	go func() {
		// The capsule stream carries nothing we use; read it to notice the end.
		p := http3.NewCapsuleParser(str)
		for {
			if _, c, err := p.Next(); err != nil || c.Discard() != nil {
				sock.Close()
				return
			}
		}
	}()
	for {
		d, err := str.ReceiveDatagram(str.Context())
		if err != nil {
			return
		}
		id, payload, err := wire.ParseDatagram(d)
		switch {
		case err != nil:
			s.metrics.DropMalformed.Add(1)
		case id != 0:
			s.metrics.DropUnknownContext.Add(1)
		case !limit.allow():
			s.metrics.DropRate.Add(1)
		default:
			if _, err := sock.Write(payload); err != nil && errors.Is(err, net.ErrClosed) {
				return
			}
		}
	}
}

func hostOf(hostport string) string {
	h, _, _ := net.SplitHostPort(hostport)
	return h
}

// publicTarget refuses the addresses a proxy must not be turned against:
// its own loopback, private networks, link-local and multicast.
func publicTarget(ip netip.Addr) bool {
	return ip.IsGlobalUnicast() && !ip.IsPrivate()
}
