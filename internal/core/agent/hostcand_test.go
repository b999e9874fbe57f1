package agent

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/camagent/camagent/internal/base/config"
	"github.com/camagent/camagent/p2p/candidate"
	"github.com/camagent/camagent/p2p/relayserver"
	"github.com/camagent/camagent/p2p/relayserver/relaytest"
)

// TestNoHostCandidatesIsNotFatal is issue 11 item 2: under the unit's
// RestrictAddressFamilies= without AF_NETLINK, listing interfaces fails.
// The agent must still start, register with its relay and offer the
// reflexive candidate the relay observed, instead of exiting (and being
// restarted every 2 s by Restart=always).
func TestNoHostCandidatesIsNotFatal(t *testing.T) {
	orig := hostAddrs
	hostAddrs = func(port uint16, opts candidate.HostOptions) ([]netip.AddrPort, []netip.Prefix, error) {
		opts.InterfaceAddrs = func() ([]net.Addr, error) {
			return nil, errors.New("socket: address family not supported by protocol")
		}
		return orig(port, opts)
	}
	t.Cleanup(func() { hostAddrs = orig })

	rl := relaytest.Start(t, relayserver.Config{})
	a := testAgent(t, func(c *config.Config) { useRelay(c, rl) })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	public := waitRegistered(ctx, t, a, rl)
	if public == "" {
		t.Fatal("registered without a public address")
	}
	// The reflexive candidate arrives with the registration's OnChange.
	deadline := time.Now().Add(5 * time.Second)
	for {
		cands := a.relays.nat.candidates()
		if len(cands) > 0 {
			for _, c := range cands {
				if c.Port() != a.relays.mux.LocalAddr().(*net.UDPAddr).AddrPort().Port() {
					t.Errorf("candidate %v is not on the agent's socket", c)
				}
			}
			t.Logf("candidates without host addresses: %v (relay public %s)", cands, public)
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("no reflexive candidate from the relay")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
