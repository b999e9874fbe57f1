// Package relayserver is camagent's MASQUE relay: an HTTP/3 UDP proxy (RFC 9298)
// whose authenticated clients register listening sockets with
// connect-udp-listen (draft-ietf-masque-connect-udp-listen-14), so that a
// camera behind NAT gets a public UDP address. Viewers reach that address
// with ordinary QUIC; the relay forwards UDP and never holds the keys of the
// end-to-end TLS session inside. docs/relay.md describes the design.
package relayserver

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"

	"github.com/camagent/camagent/internal/base/logging"
	"github.com/camagent/camagent/internal/feature/identity"
	"github.com/camagent/camagent/p2p/masque/profile"
)

// Default per-registration datagram rate and burst (each way). A 4K camera
// stream peaks at about 25 Mbit/s, 2600 datagrams/s of 1200 bytes, per
// viewer, and a registration carries every viewer of its camera: 20000/s
// is about seven such viewers at their peaks at once, or 190 Mbit/s. The
// burst covers keyframes: a 4K keyframe of about 1.5 MB is about 1250
// datagrams that the camera's pacer sends within a few milliseconds, so
// 8000 lets six viewers' keyframes coincide. docs/benchmarks.md has the
// measurement.
const (
	DefaultDatagramRate  = 20000
	DefaultDatagramBurst = 8000
)

// Config is the relay's policy. Zero limits take the defaults below.
type Config struct {
	// Identity is the relay's key and certificate; clients pin its
	// fingerprint (the fp= parameter of a relay URL).
	Identity *identity.Identity
	// Tokens are bearer tokens that may register; Keys are client key
	// fingerprints that may register. A client needs one or the other.
	Tokens []string
	Keys   []string
	// PublicIP is where registration sockets are bound and what
	// Proxy-Public-Address reports.
	PublicIP netip.Addr

	// Registrations and CONNECT-UDP sockets are counted together
	// (limits.go).
	MaxRegistrations int // in total (default 10000)
	MaxPerConn       int // per client connection (default 8)
	MaxPerIdentity   int // per bearer token or allow-listed key (default 64)
	MaxPerSource     int // per client source prefix, IPv4 /24 or IPv6 /56 (default 128)
	MaxContexts      int // compression contexts per registration (default 64)
	// DatagramRate limits each registration or socket, each way; the
	// default (20000/s, burst 8000) carries about seven 4K camera streams
	// at their peaks (docs/benchmarks.md, "Default datagram rate").
	DatagramRate  float64
	DatagramBurst int
	// AggregateDatagramRate limits all registrations and sockets of one
	// identity, and of one source prefix, together, each way (default 4
	// times DatagramRate, burst 4 times DatagramBurst).
	AggregateDatagramRate  float64
	AggregateDatagramBurst int
	ContextIdle            time.Duration // proxy-assigned contexts unused this long are closed (default 60s)
	// LocateRate and STUNRate limit locate requests and STUN answers per
	// source prefix (prefixlimit.go; defaults 20/s and 20/s, bursts twice
	// that). There is no relay-wide bucket.
	LocateRate float64
	STUNRate   float64
	// AdmitWindow is how long a locate opens a gated registration to
	// the locating client's IP (default 30s; gate.go).
	AdmitWindow time.Duration
	// AllowTargets are prefixes the relay may send to although they are
	// special-purpose (target.go): loopback for tests on one host,
	// documentation ranges for the labs. Never for production. The
	// relay's own non-loopback addresses and IPv4 embedded in IPv6 stay
	// refused whatever is listed.
	AllowTargets []netip.Prefix
	// Tap, if set, sees every UDP payload the relay forwards for a
	// registration (toCamera: from a viewer). For tests and debugging;
	// it must not keep b.
	Tap func(toCamera bool, b []byte)

	Logger *slog.Logger
	Now    func() time.Time
}

func (c *Config) setDefaults() {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&c.MaxRegistrations, 10000)
	def(&c.MaxPerConn, 8)
	def(&c.MaxPerIdentity, 64)
	def(&c.MaxPerSource, 128)
	def(&c.MaxContexts, 64)
	def(&c.DatagramBurst, DefaultDatagramBurst)
	if c.DatagramRate <= 0 {
		c.DatagramRate = DefaultDatagramRate
	}
	def(&c.AggregateDatagramBurst, 4*c.DatagramBurst)
	if c.AggregateDatagramRate <= 0 {
		c.AggregateDatagramRate = 4 * c.DatagramRate
	}
	if c.ContextIdle <= 0 {
		c.ContextIdle = time.Minute
	}
	if c.LocateRate <= 0 {
		c.LocateRate = 20
	}
	if c.STUNRate <= 0 {
		c.STUNRate = 20
	}
	if c.AdmitWindow <= 0 {
		c.AdmitWindow = 30 * time.Second
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	c.Logger = logging.Discard(c.Logger)
}

// Server is a running relay.
type Server struct {
	cfg     Config
	log     *slog.Logger
	h3      *http3.Server
	metrics *Metrics

	registrations atomic.Int64
	sockets       atomic.Int64 // CONNECT-UDP sockets
	locateLimit   *prefixLimiter
	policy        *targetPolicy

	mu         sync.Mutex
	locators   map[[32]byte]*locatorEntry // SHA-256 of a locator secret -> its key and registrations (locators.go)
	perConn    map[*quic.Conn]int
	byIdentity map[string]*share
	bySource   map[netip.Prefix]*share
	tunnels    map[*tunnel]struct{}
	connects   map[*connectSession]struct{}

	done chan struct{}
	once sync.Once
}

// New prepares a relay; Serve runs it.
func New(cfg Config) (*Server, error) {
	if cfg.Identity == nil {
		return nil, errors.New("relay: no identity")
	}
	if !cfg.PublicIP.IsValid() || cfg.PublicIP.IsUnspecified() {
		return nil, fmt.Errorf("relay: public IP %v must be a specific address", cfg.PublicIP)
	}
	cfg.setDefaults()
	s := &Server{
		cfg: cfg, log: cfg.Logger, metrics: newMetrics(),
		locateLimit: newPrefixLimiter(cfg.LocateRate, int(2*cfg.LocateRate), cfg.Now),
		locators:    map[[32]byte]*locatorEntry{},
		perConn:     map[*quic.Conn]int{},
		byIdentity:  map[string]*share{},
		bySource:    map[netip.Prefix]*share{},
		tunnels:     map[*tunnel]struct{}{},
		connects:    map[*connectSession]struct{}{},
		done:        make(chan struct{}),
	}
	own, err := ownAddrs(cfg.PublicIP)
	if err != nil {
		s.log.Warn("cannot list the host's addresses; refusing only the public address as the relay's own", "err", err)
	}
	s.policy = newTargetPolicy(cfg.AllowTargets, own)
	s.metrics.active = s.Registrations
	s.metrics.sockets = s.ConnectSockets
	mux := http.NewServeMux()
	mux.HandleFunc(profile.MasquePrefix, s.handleMASQUE)
	mux.HandleFunc(profile.LocatePrefix, s.handleLocate)
	s.h3 = &http3.Server{
		Handler:         mux,
		EnableDatagrams: true,
		QUICConfig:      profile.QUICConfig(),
		TLSConfig:       s.tlsConfig(),
		Logger:          s.log,
		ConnContext: func(ctx context.Context, c *quic.Conn) context.Context {
			return context.WithValue(ctx, connKey{}, c)
		},
	}
	return s, nil
}

// tlsConfig presents the relay's certificate and asks for, without
// requiring, a client certificate: cameras on the key allow-list present
// theirs, viewers looking a camera up present none or their own.
func (s *Server) tlsConfig() *tls.Config {
	return &tls.Config{
		Certificates: []tls.Certificate{s.cfg.Identity.Certificate},
		MinVersion:   tls.VersionTLS13,
		ClientAuth:   tls.RequestClientCert,
		NextProtos:   []string{http3.NextProtoH3},
	}
}

// StatelessResetKey derives the relay's QUIC stateless reset key from its
// identity, so that after a restart the relay can still reset connections
// of the previous run: cameras then notice at their next packet instead of
// after an idle timeout, and re-register at once.
func StatelessResetKey(id *identity.Identity) *quic.StatelessResetKey {
	var key quic.StatelessResetKey
	mac := hmac.New(sha256.New, id.Certificate.PrivateKey.(interface{ Seed() []byte }).Seed())
	mac.Write([]byte("camagent relay stateless reset"))
	copy(key[:], mac.Sum(nil))
	return &key
}

// Serve runs the relay on conn until Close.
func (s *Server) Serve(conn net.PacketConn) error {
	tr := &quic.Transport{Conn: conn, StatelessResetKey: StatelessResetKey(s.cfg.Identity)}
	ln, err := tr.Listen(http3.ConfigureTLSConfig(s.h3.TLSConfig), s.h3.QUICConfig)
	if err != nil {
		return err
	}
	go s.expireContexts()
	// STUN Binding on the same port (stun.go); it stops with tr, and
	// Serve waits for it so that nothing outlives the relay.
	ctx, cancel := context.WithCancel(context.Background())
	st := newSTUNResponder(tr, s.metrics, s.log, s.cfg.Now, s.cfg.STUNRate, s.policy)
	go st.run(ctx)
	err = s.h3.ServeListener(ln)
	tr.Close()
	cancel()
	<-st.done
	if errors.Is(err, http.ErrServerClosed) || errors.Is(err, quic.ErrServerClosed) {
		return nil
	}
	return err
}

// Close stops the relay and ends every registration.
func (s *Server) Close() error {
	s.once.Do(func() { close(s.done) })
	// End the tunnels and CONNECT-UDP sockets first: their request streams
	// were taken from http3 (HTTPStream), and since quic-go v0.66 the
	// server's Close does not end them (nor return) while they are open.
	s.mu.Lock()
	tunnels := make([]*tunnel, 0, len(s.tunnels))
	for t := range s.tunnels {
		tunnels = append(tunnels, t)
	}
	connects := make([]*connectSession, 0, len(s.connects))
	for c := range s.connects {
		connects = append(connects, c)
	}
	s.mu.Unlock()
	for _, t := range tunnels {
		t.close()
	}
	for _, c := range connects {
		c.close()
	}
	return s.h3.Close()
}

// Metrics are the relay's counters.
func (s *Server) Metrics() *Metrics { return s.metrics }

// Registrations is the number of live registrations.
func (s *Server) Registrations() int { return int(s.registrations.Load()) }

// expireContexts closes proxy-assigned compression contexts nobody used for
// ContextIdle, which bounds a registration's memory under a port scan.
func (s *Server) expireContexts() {
	period := s.cfg.ContextIdle / 2
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-s.done:
			return
		case <-t.C:
		}
		s.mu.Lock()
		tunnels := make([]*tunnel, 0, len(s.tunnels))
		for t := range s.tunnels {
			tunnels = append(tunnels, t)
		}
		s.mu.Unlock()
		for _, t := range tunnels {
			t.expireIdle(s.cfg.Now().Add(-s.cfg.ContextIdle))
		}
		// Interfaces change (DHCP, a new address): the target policy
		// refuses the current ones.
		if own, err := ownAddrs(s.cfg.PublicIP); err == nil {
			s.policy.setOwn(own)
		}
		s.sweepLocators()
	}
}

// authorised reports whether the request may register: a bearer token or
// a client key on the allow-list. id names who it counts against
// (limits.go): the token when one is valid (its holder can make keys at
// will), else the key.
func (s *Server) authorised(r *http.Request) (id string, ok bool) {
	if tok, ok := bearer(r.Header.Get("Authorization")); ok {
		for _, t := range s.cfg.Tokens {
			if subtle.ConstantTimeCompare([]byte(tok), []byte(t)) == 1 {
				return tokenIdentity(t), true
			}
		}
	}
	if r.TLS != nil {
		if fp := identity.PeerFingerprint(*r.TLS); fp != "" {
			for _, k := range s.cfg.Keys {
				if want, err := identity.ParseFingerprint(k); err == nil && want == fp {
					return "key:" + k, true
				}
			}
		}
	}
	return "", false
}

func bearer(h string) (string, bool) {
	const prefix = "Bearer "
	if len(h) <= len(prefix) || h[:len(prefix)] != prefix {
		return "", false
	}
	return h[len(prefix):], true
}

type connKey struct{}

// serverConn is the QUIC connection a request arrived on (set by
// ConnContext).
func serverConn(r *http.Request) *quic.Conn {
	c, _ := r.Context().Value(connKey{}).(*quic.Conn)
	return c
}

func (s *Server) addTunnel(t *tunnel, o owner) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	g, err := s.acquireLocked(o)
	if err != nil {
		return err
	}
	t.owner, t.grant = o, g
	s.registrations.Add(1)
	s.tunnels[t] = struct{}{}
	return nil
}

func (s *Server) removeTunnel(t *tunnel) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.tunnels[t]; !ok {
		return
	}
	delete(s.tunnels, t)
	s.registrations.Add(-1)
	s.releaseLocked(t.owner)
	s.dropLocatorsLocked(t) // each falls back to the key's next newest registration
}

var errTooMany = errors.New("relay: too many registrations")
