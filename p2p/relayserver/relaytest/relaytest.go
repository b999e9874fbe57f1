package relaytest

import (
	"crypto/rand"
	"encoding/hex"
	"net"
	"net/netip"
	"testing"

	"github.com/camagent/camagent/internal/base/testtier"
	"github.com/camagent/camagent/internal/feature/identity"
	"github.com/camagent/camagent/p2p/relayserver"
)

// Relay is a relay server serving on a UDP socket until the test ends.
type Relay struct {
	Server   *relayserver.Server
	Identity *identity.Identity // the relay's key (cfg.Identity if given)
	Conn     net.PacketConn     // the socket it serves on

	// Addr is the relay's UDP address (host:port), Fingerprint its key
	// as clients pin it, URL the relay URL cameras register with
	// (https://Addr/?fp=Fingerprint, docs/relay.md).
	Addr        netip.AddrPort
	Fingerprint string
	URL         string
	// Token is a bearer token the relay admits cameras with: the first
	// of cfg.Tokens, or a fresh random one if cfg.Tokens was nil; empty
	// if cfg.Tokens was empty but not nil (keys only).
	Token string
}

// Start runs a relay on 127.0.0.1 (any free port) with cfg; see StartOn.
func Start(tb testing.TB, cfg relayserver.Config) *Relay {
	tb.Helper()
	return StartAt(tb, netip.MustParseAddr("127.0.0.1"), cfg)
}

// StartAt runs a relay on ip (any free port), e.g. ::1 for IPv6; see
// StartOn.
func StartAt(tb testing.TB, ip netip.Addr, cfg relayserver.Config) *Relay {
	tb.Helper()
	pc, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(ip, 0)))
	if err != nil {
		tb.Fatal(err)
	}
	return StartOn(tb, pc, cfg)
}

// StartOn runs a relay on pc, which it closes at the end of the test. Zero
// fields of cfg are filled in: Identity with a fresh key, PublicIP
// (where registrations are bound) with pc's address, Tokens (if nil) with
// one fresh token. The relay stops, and Serve's error is checked, in
// tb.Cleanup.
func StartOn(tb testing.TB, pc net.PacketConn, cfg relayserver.Config) *Relay {
	tb.Helper()
	if testing.Short() {
		pc.Close() // Slow skips, and nothing else would close it
	}
	testtier.Slow(tb, "a MASQUE relay over QUIC on loopback")
	addr := pc.LocalAddr().(*net.UDPAddr).AddrPort()
	addr = netip.AddrPortFrom(addr.Addr().Unmap(), addr.Port())
	if cfg.Identity == nil {
		id, err := identity.LoadOrCreate(tb.TempDir())
		if err != nil {
			pc.Close()
			tb.Fatal(err)
		}
		cfg.Identity = id
	}
	if !cfg.PublicIP.IsValid() {
		cfg.PublicIP = addr.Addr()
	}
	if cfg.AllowTargets == nil {
		// Cameras and viewers of tests are on the relay's own loopback
		// address, which the target policy refuses by default.
		cfg.AllowTargets = []netip.Prefix{netip.PrefixFrom(addr.Addr(), addr.Addr().BitLen())}
	}
	if cfg.Tokens == nil {
		b := make([]byte, 8)
		rand.Read(b)
		cfg.Tokens = []string{"relaytest-" + hex.EncodeToString(b)}
	}
	srv, err := relayserver.New(cfg)
	if err != nil {
		pc.Close()
		tb.Fatal(err)
	}
	r := &Relay{Server: srv, Identity: cfg.Identity, Conn: pc, Addr: addr, Fingerprint: cfg.Identity.Fingerprint}
	r.URL = "https://" + addr.String() + "/?fp=" + r.Fingerprint
	if len(cfg.Tokens) > 0 {
		r.Token = cfg.Tokens[0]
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(pc) }()
	tb.Cleanup(func() {
		srv.Close()
		if err := <-done; err != nil {
			tb.Errorf("relay Serve: %v", err)
		}
		pc.Close()
	})
	return r
}
