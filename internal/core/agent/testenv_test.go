package agent

import (
	"context"
	"testing"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/camagent/camagent/internal/base/config"
	"github.com/camagent/camagent/internal/core/viewer"
	"github.com/camagent/camagent/internal/feature/identity"
	"github.com/camagent/camagent/internal/feature/pairing"
	"github.com/camagent/camagent/p2p/relayclient"
	"github.com/camagent/camagent/p2p/relayserver/relaytest"
)

// useRelay points an agent's configuration at relay r (relaytest) with
// the token r admits.
func useRelay(c *config.Config, r *relaytest.Relay) {
	c.Relay.URLs = []string{r.URL}
	c.Relay.Token = r.Token
}

// waitRegistered waits until a has registered with relay r and returns
// its public address there.
func waitRegistered(ctx context.Context, t *testing.T, a *Agent, r *relaytest.Relay) string {
	t.Helper()
	select {
	case <-a.RelayKeeper().Registered():
	case <-ctx.Done():
		t.Fatal("agent never registered with the relay")
	}
	return a.RelayKeeper().Public()[r.Addr.String()]
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
	a.relays.refreshLocators() // the code's locator now, not at the agent's next second
	relays, err := relayclient.OfferURLs(a.cfg.Relay.URLs, a.Identity(), issued.ID)
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

// dial connects viewer id to cam's known addresses for protocol alpn, as
// viewers do (viewer.Dialer), and returns the connection.
func dial(ctx context.Context, id *identity.Identity, cam identity.Camera, alpn string) (*quic.Conn, error) {
	link, err := viewer.Dialer{Identity: id, Route: viewer.RouteDirect, ALPN: alpn}.Dial(ctx, cam)
	if err != nil {
		return nil, err
	}
	return link.Conn, nil
}
