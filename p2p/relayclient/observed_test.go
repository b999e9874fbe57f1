package relayclient

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/camagent/camagent/p2p/relayserver"
)

// TestRegisterFromQUICSocket registers on the camera's own transport (over
// the Mux): the relay reports the camera's QUIC socket as the observed
// address, and viewers still reach the listener that shares that socket
// with the registration.
func TestRegisterFromQUICSocket(t *testing.T) {
	r := startRelay(t, relayserver.Config{})
	cam := startCamera(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := Register(ctx, Options{Relay: r.url, Identity: cam.id, Token: r.Token, Transport: cam.tr})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	want := netip.MustParseAddrPort(cam.mux.LocalAddr().String())
	if c.ObservedAddr() != want {
		t.Fatalf("relay observed %v, want the camera's QUIC socket %v", c.ObservedAddr(), want)
	}
	cam.mux.Add(c)
	conn := dialViewer(t, ctx, cam, c.PublicAddr())
	roundTrip(t, conn, 100_000)

	// Registered from a socket of its own, the observed address is that
	// socket, not the camera's QUIC socket.
	other, err := Register(ctx, Options{Relay: r.url, Identity: cam.id, Token: r.Token})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if !other.ObservedAddr().IsValid() || other.ObservedAddr() == want {
		t.Fatalf("registration from its own socket observed at %v", other.ObservedAddr())
	}
}
