package relayclient

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/camagent/camagent/internal/feature/identity"
	"github.com/camagent/camagent/p2p/relayserver"
)

func newKey(t *testing.T) *identity.Identity {
	t.Helper()
	id, err := identity.LoadOrCreate(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// locateEventually locates r until it answers want (the relay handles a
// registration's end or a LOCATORS capsule on its own schedule).
func locateEventually(t *testing.T, ctx context.Context, r RelayURL, want netip.AddrPort) {
	t.Helper()
	var got netip.AddrPort
	var err error
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		got, err = Locate(ctx, r, nil)
		if (want.IsValid() && err == nil && got == want) || (!want.IsValid() && errors.Is(err, ErrNotRegistered)) {
			return
		}
	}
	t.Fatalf("locate: %v, %v; want %v", got, err, want)
}

// TestLocatorBoundToKey: a locator registered by one key is refused to
// another (no takeover), and a leave falls back to the key's surviving
// registration instead of leaving the camera unfindable.
func TestLocatorBoundToKey(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	rl := startRelay(t, relayserver.Config{})
	cam, thief := newKey(t), newKey(t)
	secret := testSecret(cam, rl.url)
	loc := [][32]byte{LocatorHash(secret)}
	find := rl.url.WithSecret(secret)

	c1, err := Register(ctx, Options{Relay: rl.url, Identity: cam, Token: rl.Token, Locators: loc})
	if err != nil {
		t.Fatal(err)
	}
	defer c1.Close()
	locateEventually(t, ctx, find, c1.PublicAddr())

	bad, err := Register(ctx, Options{Relay: rl.url, Identity: thief, Token: rl.Token, Locators: loc})
	if err != nil {
		t.Fatal(err)
	}
	defer bad.Close()
	if bad.LocatorsRefused() != 1 {
		t.Fatalf("relay refused %d locators of another key, want 1", bad.LocatorsRefused())
	}
	locateEventually(t, ctx, find, c1.PublicAddr())

	c2, err := Register(ctx, Options{Relay: rl.url, Identity: cam, Token: rl.Token, Locators: loc})
	if err != nil {
		t.Fatal(err)
	}
	if c2.LocatorsRefused() != 0 {
		t.Fatalf("the camera's own second registration had %d locators refused", c2.LocatorsRefused())
	}
	locateEventually(t, ctx, find, c2.PublicAddr()) // the newest
	c2.Close()
	locateEventually(t, ctx, find, c1.PublicAddr()) // falls back

	// The thief cannot take it over while the camera is away either
	// (the binding outlives the registration for a grace period).
	c1.Close()
	locateEventually(t, ctx, find, netip.AddrPort{})
	bad2, err := Register(ctx, Options{Relay: rl.url, Identity: thief, Token: rl.Token, Locators: loc})
	if err != nil {
		t.Fatal(err)
	}
	defer bad2.Close()
	if bad2.LocatorsRefused() != 1 {
		t.Fatalf("relay gave a vacated locator to another key (refused %d)", bad2.LocatorsRefused())
	}
}

// TestSetLocators: the camera adds and removes locators on a live
// registration (a viewer paired, a viewer revoked) without registering
// again.
func TestSetLocators(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	rl := startRelay(t, relayserver.Config{})
	cam := newKey(t)
	alice := ViewerSecret(cam, rl.url.Fingerprint, "alice", "1")
	bob := ViewerSecret(cam, rl.url.Fingerprint, "bob", "1")
	c, err := Register(ctx, Options{Relay: rl.url, Identity: cam, Token: rl.Token, Locators: [][32]byte{LocatorHash(alice)}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	locateEventually(t, ctx, rl.url.WithSecret(alice), c.PublicAddr())
	locateEventually(t, ctx, rl.url.WithSecret(bob), netip.AddrPort{})
	c.SetLocators([][32]byte{LocatorHash(bob)}) // alice revoked, bob paired
	locateEventually(t, ctx, rl.url.WithSecret(bob), c.PublicAddr())
	locateEventually(t, ctx, rl.url.WithSecret(alice), netip.AddrPort{})
}

// TestSecretsDifferPerRelayAndViewer: a viewer's secret at one relay says
// nothing about its secret at another, or another viewer's.
func TestSecretsDifferPerRelayAndViewer(t *testing.T) {
	cam := newKey(t)
	r1, r2 := newKey(t).Fingerprint, newKey(t).Fingerprint
	a := string(ViewerSecret(cam, r1, "v1", "e"))
	for _, other := range [][]byte{
		ViewerSecret(cam, r2, "v1", "e"), ViewerSecret(cam, r1, "v2", "e"),
		ViewerSecret(cam, r1, "v1", "e2"), PairingSecret(cam, r1, "v1"),
		ViewerSecret(newKey(t), r1, "v1", "e"),
	} {
		if string(other) == a {
			t.Fatal("two locator secrets collide")
		}
	}
}

// TestGateAdmitsOnlyLocatingIP: a gated registration drops a stranger's
// packets; a locate opens it to the locating IP (any port) and no other;
// the camera's own IP (its mapping probe) and peers it wrote to (NAT
// traversal) get through.
func TestGateAdmitsOnlyLocatingIP(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	// All of loopback is a permitted target here, so that what drops
	// packets is the gate, not the target policy.
	rl := startRelay(t, relayserver.Config{AllowTargets: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}})
	camID := newKey(t)
	camSock, err := net.ListenPacket("udp", "127.0.0.2:0")
	if err != nil {
		t.Fatal(err)
	}
	camTr := &quic.Transport{Conn: camSock}
	defer camTr.Close()
	c, err := Register(ctx, Options{Relay: rl.url, Identity: camID, Token: rl.Token, Transport: camTr,
		Locators: [][32]byte{LocatorHash(testSecret(camID, rl.url))}, Gate: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	got := make(chan netip.AddrPort, 16)
	go func() {
		buf := make([]byte, 1500)
		for {
			_, from, err := c.ReadFrom(buf)
			if err != nil {
				return
			}
			got <- from.(*net.UDPAddr).AddrPort()
		}
	}()
	send := func(src string) netip.AddrPort {
		t.Helper()
		s, err := net.ListenPacket("udp", src)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if _, err := s.WriteTo([]byte("hello camera"), net.UDPAddrFromAddrPort(c.PublicAddr())); err != nil {
			t.Fatal(err)
		}
		return s.LocalAddr().(*net.UDPAddr).AddrPort()
	}
	expect := func(what string, from netip.AddrPort, through bool) {
		t.Helper()
		timeout := time.After(300 * time.Millisecond)
		for {
			select {
			case p := <-got:
				if p == from {
					if !through {
						t.Fatalf("%s: packet from %v reached the camera", what, from)
					}
					return
				}
			case <-timeout:
				if through {
					t.Fatalf("%s: packet from %v did not reach the camera", what, from)
				}
				return
			}
		}
	}
	drops := rl.Server.Metrics().DropFirewall.Load()
	expect("stranger before any locate", send("127.0.0.1:0"), false)
	if rl.Server.Metrics().DropFirewall.Load() == drops {
		t.Fatal("no firewall drop counted")
	}
	// Locate dials from this host's address toward the relay: 127.0.0.1.
	if _, err := Locate(ctx, rl.url.WithSecret(testSecret(camID, rl.url)), nil); err != nil {
		t.Fatal(err)
	}
	expect("the locating IP, another port", send("127.0.0.1:0"), true)
	expect("another IP after the locate", send("127.0.0.3:0"), false)
	expect("the camera's own IP", send("127.0.0.2:0"), true)

	// The camera writes to a peer first (traversal through the relay):
	// that peer's answers get through.
	peer, err := net.ListenPacket("udp", "127.0.0.4:0")
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	peerAddr := peer.LocalAddr().(*net.UDPAddr)
	if _, err := c.WriteTo([]byte("punch"), peerAddr); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 100)
	peer.SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, _, err := peer.ReadFrom(buf); err != nil {
		t.Fatalf("camera's packet to the peer: %v", err)
	}
	peer.WriteTo([]byte("answer"), net.UDPAddrFromAddrPort(c.PublicAddr()))
	expect("a peer the camera wrote to", peerAddr.AddrPort(), true)
}

// TestLocateSendsNoCertificate: the relay sees no client certificate on a
// locate, whatever identity the caller has.
func TestLocateSendsNoCertificate(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rl := startRelay(t, relayserver.Config{})
	conf := rl.url.tlsConfig(nil)
	if len(conf.Certificates) != 0 || conf.GetClientCertificate != nil {
		t.Fatal("a locate's TLS config carries a certificate")
	}
	if _, err := Locate(ctx, rl.url.WithSecret(make([]byte, 32)), newKey(t)); !errors.Is(err, ErrNotRegistered) {
		t.Fatalf("locate of an unknown secret: %v", err)
	}
}
