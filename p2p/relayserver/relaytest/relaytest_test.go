package relaytest_test

import (
	"context"
	"testing"
	"time"

	"github.com/camagent/camagent/internal/feature/identity"
	"github.com/camagent/camagent/p2p/relayclient"
	"github.com/camagent/camagent/p2p/relayserver"
	"github.com/camagent/camagent/p2p/relayserver/relaytest"
)

// TestStart: the relay's URL parses, and a camera registers with the
// token it was given.
func TestStart(t *testing.T) {
	r := relaytest.Start(t, relayserver.Config{})
	u, err := relayclient.ParseRelayURL(r.URL)
	if err != nil {
		t.Fatal(err)
	}
	if u.Addr != r.Addr.String() || u.Fingerprint != r.Fingerprint || r.Token == "" {
		t.Fatalf("URL %s, addr %s, fingerprint %s, token %q", r.URL, r.Addr, r.Fingerprint, r.Token)
	}
	cam, err := identity.LoadOrCreate(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := relayclient.Register(ctx, relayclient.Options{Relay: u, Identity: cam, Token: r.Token})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if c.PublicAddr().Addr() != r.Addr.Addr() {
		t.Fatalf("registered at %v, relay on %v", c.PublicAddr(), r.Addr)
	}
	if _, err := relayclient.Register(ctx, relayclient.Options{Relay: u, Identity: cam, Token: "wrong"}); err == nil {
		t.Fatal("a wrong token registered")
	}
}
