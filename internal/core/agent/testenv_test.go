package agent

import (
	"context"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/camagent/camagent/internal/base/config"
	"github.com/camagent/camagent/internal/feature/identity"
	"github.com/camagent/camagent/internal/feature/pairing"
	"github.com/camagent/camagent/p2p/relayclient"
	"github.com/camagent/camagent/p2p/relayserver"
)

// startTestRelay runs a MASQUE relay on 127.0.0.1 that admits cameras with
// the token "tok". tap, if not nil, sees every payload the relay forwards
// (to check that none of it is plaintext media).
func startTestRelay(t *testing.T, tap func(toCamera bool, b []byte)) (*relayserver.Server, relayclient.RelayURL) {
	return startTestRelayAt(t, netip.MustParseAddr("127.0.0.1"), tap)
}

// startTestRelayAt is startTestRelay on loopback address ip (127.0.0.1 or
// ::1): its QUIC port and the registrations' public sockets.
func startTestRelayAt(t *testing.T, ip netip.Addr, tap func(toCamera bool, b []byte)) (*relayserver.Server, relayclient.RelayURL) {
	t.Helper()
	rid, err := identity.LoadOrCreate(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	// Viewers are on loopback too, which the relay's target policy
	// refuses unless told otherwise.
	srv, err := relayserver.New(relayserver.Config{Identity: rid, PublicIP: ip, Tokens: []string{"tok"}, Tap: tap,
		AllowTargets: []netip.Prefix{netip.PrefixFrom(ip, ip.BitLen())}})
	if err != nil {
		t.Fatal(err)
	}
	pc, err := net.ListenPacket("udp", net.JoinHostPort(ip.String(), "0"))
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(pc)
	t.Cleanup(func() { srv.Close(); pc.Close() })
	return srv, relayclient.RelayURL{Addr: pc.LocalAddr().String(), Fingerprint: rid.Fingerprint}
}

// useRelay points an agent's configuration at relay r with the token
// startTestRelay admits.
func useRelay(c *config.Config, r relayclient.RelayURL) {
	c.Relay.URLs = []string{r.String()}
	c.Relay.Token = "tok"
}

// waitRegistered waits until a has registered with relay r and returns
// its public address there.
func waitRegistered(ctx context.Context, t *testing.T, a *Agent, r relayclient.RelayURL) string {
	t.Helper()
	select {
	case <-a.RelayKeeper().Registered():
	case <-ctx.Done():
		t.Fatal("agent never registered with the relay")
	}
	return a.RelayKeeper().Public()[r.Addr]
}

// joinOffer pairs a new viewer called name with a through an offer that
// lists addr as the camera's only address plus the agent's relays (if
// any), as `camagent pair` would print it; it returns Join's result.
func joinOffer(ctx context.Context, t *testing.T, a *Agent, name, addr string) (*identity.Identity, identity.Camera, error) {
	t.Helper()
	codes, err := pairing.OpenCodeStore(pairing.CodesPath(a.cfg.StateDir))
	if err != nil {
		t.Fatal(err)
	}
	issued, err := codes.Create("", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	relays, err := relayclient.OfferURLs(a.cfg.Relay.URLs, a.Identity())
	if err != nil {
		t.Fatal(err)
	}
	offer := pairing.Offer{Name: a.cfg.Name, Fingerprint: a.Identity().Fingerprint, Code: issued.Code,
		Addrs: []string{addr}, Relays: relays}
	vdir := t.TempDir()
	vid, err := identity.LoadOrCreate(vdir)
	if err != nil {
		t.Fatal(err)
	}
	cams, err := identity.OpenCameraStore(identity.CamerasPath(vdir))
	if err != nil {
		t.Fatal(err)
	}
	cam, err := pairing.Join(ctx, offer, vid, name, cams)
	return vid, cam, err
}
