package relayserver

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net"
	"net/http"
	"net/netip"
	"strings"

	"github.com/camagent/camagent/p2p/masque/profile"
	"github.com/quic-go/quic-go/http3"
)

// profile.LocatePrefix is the lookup endpoint: GET profile.LocatePrefix + hex(secret)
// answers the public address of the registration whose locator is
// SHA-256(secret), or 404 (docs/relay.md, "Finding the camera").

func (s *Server) handleMASQUE(w http.ResponseWriter, r *http.Request) {
	req, err := parseConnectRequest(r)
	var id string
	if err == nil {
		var ok bool
		if id, ok = s.authorised(r); !ok {
			err = refuse(http.StatusUnauthorized, "not on the allow-list")
		}
	}
	var locator *[32]byte
	if err == nil && req.bind {
		locator, err = parseLocator(r.Header.Get(profile.HeaderLocator))
	}
	if err != nil {
		s.refuse(w, r, err)
		return
	}
	o := ownerOf(r, id)
	if req.bind {
		s.serveBind(w, r, locator, o)
		return
	}
	s.serveConnect(w, r, req.target, o)
}

func (s *Server) refuse(w http.ResponseWriter, r *http.Request, err error) {
	s.metrics.RegistrationsRefuse.Add(1)
	status, proxyErr, details := http.StatusInternalServerError, "", ""
	var he *httpError
	if errors.As(err, &he) {
		status, proxyErr, details = he.status, he.proxyErr, he.msg
	}
	s.log.Info("refused request", "remote", r.RemoteAddr, "path", r.URL.Path, "status", status, "err", err)
	writeRefusal(w, status, proxyErr, details, http.MethodConnect)
}

func parseLocator(h string) (*[32]byte, error) {
	if h == "" {
		return nil, nil
	}
	b, err := hex.DecodeString(h)
	if err != nil || len(b) != 32 {
		return nil, refuse(http.StatusBadRequest, "%s must be 64 hex digits", profile.HeaderLocator)
	}
	var l [32]byte
	copy(l[:], b)
	return &l, nil
}

// serveBind runs one registration: a public UDP socket forwarded to and
// from the client's request stream, until either side ends it.
func (s *Server) serveBind(w http.ResponseWriter, r *http.Request, locator *[32]byte, o owner) {
	sock, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(s.cfg.PublicIP, 0)))
	if err != nil {
		s.refuse(w, r, refuse(http.StatusServiceUnavailable, "public socket: %v", err))
		return
	}
	t := newTunnel(s, sock, locator)
	conn := o.conn
	if err := s.addTunnel(t, o); err != nil {
		sock.Close()
		s.refuse(w, r, refuse(http.StatusTooManyRequests, "%v", err))
		return
	}
	defer s.removeTunnel(t)
	h := w.Header()
	h.Set(http3.CapsuleProtocolHeader, "?1")
	h.Set(profile.HeaderBind, "?1")
	h.Set(profile.HeaderPublicAddress, profile.FormatPublicAddress(t.public))
	if conn != nil {
		if ua, ok := conn.RemoteAddr().(*net.UDPAddr); ok {
			ap := ua.AddrPort()
			h.Set(profile.HeaderObservedAddress, profile.FormatPublicAddress(netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())))
		}
	}
	w.WriteHeader(http.StatusOK)
	str, err := w.(http3.HTTPStreamer).HTTPStream()
	if err != nil {
		sock.Close()
		return
	}
	s.metrics.RegistrationsTotal.Add(1)
	s.log.Info("registered", "remote", r.RemoteAddr, "public", t.public.String())
	t.run(str, conn)
	s.log.Info("registration ended", "remote", r.RemoteAddr, "public", t.public.String())
}

// handleLocate answers where a camera's registration is, to whoever knows
// its locator secret. Unknown and malformed secrets get the same 404, so
// the endpoint tells a stranger nothing. The rate limit is per source
// prefix (prefixlimit.go): a flood from one network does not fail another
// network's lookups.
func (s *Server) handleLocate(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		writeRefusal(w, http.StatusMethodNotAllowed, "", "locate takes GET", http.MethodGet)
		return
	}
	if !s.locateLimit.allow(remoteAddr(r)) {
		s.metrics.LocateLimited.Add(1)
		writeRefusal(w, http.StatusTooManyRequests, proxyErrLimit, "locate rate of this network", "")
		return
	}
	secret, err := hex.DecodeString(strings.TrimPrefix(r.URL.Path, profile.LocatePrefix))
	var t *tunnel
	if err == nil && len(secret) == 32 {
		key := sha256.Sum256(secret)
		s.mu.Lock()
		t = s.locators[key]
		s.mu.Unlock()
	}
	if t == nil {
		s.metrics.LocateNotFound.Add(1)
		w.WriteHeader(http.StatusNotFound)
		return
	}
	s.metrics.LocateFound.Add(1)
	w.Header().Set(profile.HeaderPublicAddress, profile.FormatPublicAddress(t.public))
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusNoContent)
}
