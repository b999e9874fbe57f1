package relayserver

import (
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/camagent/camagent/internal/feature/identity"
)

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func testServer(t *testing.T, clock *fakeClock) *Server {
	t.Helper()
	id, err := identity.LoadOrCreate(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(Config{Identity: id, PublicIP: netip.MustParseAddr("127.0.0.1"), Now: clock.now})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// register adds a registration of key to s, as serveBind does.
func register(t *testing.T, s *Server, key string, hashes ...[32]byte) (*tunnel, int) {
	t.Helper()
	sock, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sock.Close() })
	tn := newTunnel(s, sock)
	tn.loc.owner = key
	if err := s.addTunnel(tn, owner{identity: "token:test"}); err != nil {
		t.Fatal(err)
	}
	return tn, s.setLocators(tn, hashes)
}

// TestLocatorBookkeeping: first key wins; the newest registration of the
// owner answers and a leave falls back; the binding outlives the owner's
// registrations for locatorGrace and then lapses.
func TestLocatorBookkeeping(t *testing.T) {
	clock := &fakeClock{t: time.Unix(1e9, 0)}
	s := testServer(t, clock)
	h := [32]byte{1}
	t1, r := register(t, s, "camera", h)
	if r != 0 || s.lookupLocator(h) != t1 {
		t.Fatalf("first registration: refused %d", r)
	}
	if _, r := register(t, s, "thief", h); r != 1 || s.lookupLocator(h) != t1 {
		t.Fatalf("another key: refused %d, lookup moved", r)
	}
	if _, r := register(t, s, "", h); r != 1 {
		t.Fatal("a client without a key bound a locator")
	}
	t2, _ := register(t, s, "camera", h)
	if s.lookupLocator(h) != t2 {
		t.Fatal("the newest registration of the owner does not answer")
	}
	s.removeTunnel(t2)
	if s.lookupLocator(h) != t1 {
		t.Fatal("no fallback to the surviving registration")
	}
	s.removeTunnel(t1)
	if s.lookupLocator(h) != nil {
		t.Fatal("a locator without registrations answers")
	}
	clock.add(locatorGrace - time.Second)
	if _, r := register(t, s, "thief", h); r != 1 {
		t.Fatal("a vacated locator went to another key within the grace period")
	}
	clock.add(2 * time.Second)
	s.sweepLocators()
	if len(s.locators) != 0 {
		t.Fatalf("%d bindings left after the grace period", len(s.locators))
	}
	t4, r := register(t, s, "camera", h)
	if r != 0 || s.lookupLocator(h) != t4 {
		t.Fatal("the camera cannot register its locator after its binding lapsed")
	}
	// Replacing the set detaches what is left out.
	h2 := [32]byte{2}
	if r := s.setLocators(t4, [][32]byte{h2}); r != 0 || s.lookupLocator(h) != nil || s.lookupLocator(h2) != t4 {
		t.Fatal("setLocators did not replace the set")
	}
}
