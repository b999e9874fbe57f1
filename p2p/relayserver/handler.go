package relayserver

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"

	"github.com/camagent/camagent/internal/feature/identity"
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
	var locators [][32]byte
	if err == nil && req.bind {
		locators, err = parseLocators(r.Header.Get(profile.HeaderLocator))
	}
	if err != nil {
		s.refuse(w, r, err)
		return
	}
	o := ownerOf(r, id)
	if req.bind {
		s.serveBind(w, r, locators, o)
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

// serveBind runs one registration: a public UDP socket forwarded to and
// from the client's request stream, until either side ends it.
func (s *Server) serveBind(w http.ResponseWriter, r *http.Request, locators [][32]byte, o owner) {
	sock, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(s.cfg.PublicIP, 0)))
	if err != nil {
		s.refuse(w, r, refuse(http.StatusServiceUnavailable, "public socket: %v", err))
		return
	}
	t := newTunnel(s, sock)
	conn := o.conn
	if r.TLS != nil {
		t.loc.owner = identity.PeerFingerprint(*r.TLS) // no one else can set t's locators yet
	}
	if gate, err := sfvBool(r.Header, profile.HeaderGate); err == nil && gate {
		t.gate.on = true
		if conn != nil {
			if ua, ok := conn.RemoteAddr().(*net.UDPAddr); ok {
				t.gate.ownIP = ua.AddrPort().Addr().Unmap()
			}
		}
	}
	if err := s.addTunnel(t, o); err != nil {
		sock.Close()
		s.refuse(w, r, refuse(http.StatusTooManyRequests, "%v", err))
		return
	}
	defer s.removeTunnel(t)
	h := w.Header()
	if refused := s.setLocators(t, locators); refused > 0 {
		h.Set(profile.HeaderLocatorRefused, strconv.Itoa(refused))
	}
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
	// Since quic-go v0.66.0 HTTPStream does not send the response header:
	// flush it first (writes to the stream fail until it is sent).
	if err := http.NewResponseController(w).Flush(); err != nil {
		sock.Close()
		return
	}
	str := w.(http3.HTTPStreamer).HTTPStream()
	s.metrics.RegistrationsTotal.Add(1)
	s.log.Info("registered", "remote", r.RemoteAddr, "public", t.public.String(), "locators", len(locators), "gated", t.gate.on)
	t.run(str, conn)
	s.log.Info("registration ended", "remote", r.RemoteAddr, "public", t.public.String())
}

// handleLocate answers where a camera's registration is, to whoever knows
// one of its locator secrets, and opens a gated registration to the
// asker's IP for AdmitWindow (gate.go). Unknown and malformed secrets get
// the same 404. The rate limit is per source prefix (prefixlimit.go): a
// flood from one network does not fail another network's lookups. The
// relay neither needs nor uses a client certificate here: viewers locate
// without one, so the relay cannot tie a viewer's key to the cameras it
// looks up (docs/relay.md).
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
		t = s.lookupLocator(sha256.Sum256(secret))
	}
	clientCert := r.TLS != nil && len(r.TLS.PeerCertificates) > 0
	if t == nil {
		s.metrics.LocateNotFound.Add(1)
		// Debug: strangers' guesses must not flood the log.
		s.log.Debug("locate", "result", "not_found", "remote", r.RemoteAddr, "client_cert", clientCert)
		w.WriteHeader(http.StatusNotFound)
		return
	}
	if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil {
		t.admit(ap.Addr().Unmap())
	}
	s.metrics.LocateFound.Add(1)
	s.log.Info("locate", "result", "found", "remote", r.RemoteAddr, "client_cert", clientCert, "public", t.public.String())
	w.Header().Set(profile.HeaderPublicAddress, profile.FormatPublicAddress(t.public))
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusNoContent)
}
