package agent

import (
	"context"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/camagent/camagent/internal/base/config"
	"github.com/camagent/camagent/internal/base/logging"
	"github.com/camagent/camagent/p2p/natwire"
	"github.com/camagent/camagent/p2p/relayserver"
	"github.com/camagent/camagent/p2p/relayserver/relaytest"
)

// On loopback nothing translates: the probe comes back from the address
// the relay saw the registration come from, so the mapping is
// endpoint-independent.
func TestAgentMeasuresItsNATMappingThroughTheRelay(t *testing.T) {
	rl := relaytest.Start(t, relayserver.Config{})
	a := testAgent(t, func(c *config.Config) {
		useRelay(c, rl)
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	waitRegistered(ctx, t, a, rl)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for a.NATMapping() != natwire.MappingIndependent {
		select {
		case <-tick.C:
		case <-ctx.Done():
			t.Fatalf("mapping %v after 30 s", a.NATMapping())
		}
	}
}

// The result compares the probe's source with the registration's
// observed address; unknown and replayed tokens teach nothing.
func TestMappingProbesCompare(t *testing.T) {
	observed := netip.MustParseAddrPort("203.0.113.2:4433")
	p := newMappingProbes(func(b []byte, _ net.Addr) (int, error) { return len(b), nil }, logging.Discard(nil))
	defer p.close()
	p.pending[1] = probeState{relay: "r1", observed: observed}
	p.pending[2] = probeState{relay: "r2", observed: observed}

	p.answered(99, netip.MustParseAddrPort("203.0.113.2:1")) // forged token
	if got := p.mapping(); got != natwire.MappingUnknown {
		t.Fatalf("a forged probe made the mapping %v", got)
	}
	p.answered(1, observed)
	if got := p.mapping(); got != natwire.MappingIndependent {
		t.Fatalf("mapping %v, want endpoint-independent", got)
	}
	p.answered(1, netip.MustParseAddrPort("203.0.113.2:5")) // replayed
	if got := p.mapping(); got != natwire.MappingIndependent {
		t.Fatalf("a replayed probe changed the mapping to %v", got)
	}
	// Another relay saw a new port: the NAT maps per destination.
	p.answered(2, netip.MustParseAddrPort("203.0.113.2:40001"))
	if got := p.mapping(); got != natwire.MappingDependent {
		t.Fatalf("mapping %v, want endpoint-dependent", got)
	}
	p.registered("r2", nil) // that registration ended
	if got := p.mapping(); got != natwire.MappingIndependent {
		t.Fatalf("mapping %v after r2 left", got)
	}
}
