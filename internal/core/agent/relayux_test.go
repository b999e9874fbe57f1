package agent

import (
	"context"
	"errors"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/camagent/camagent/internal/base/config"
	"github.com/camagent/camagent/internal/base/dialrace"
	"github.com/camagent/camagent/internal/core/viewer"
	"github.com/camagent/camagent/p2p/relayclient"
	"github.com/camagent/camagent/p2p/relayserver"
	"github.com/camagent/camagent/p2p/relayserver/relaytest"
	"github.com/camagent/camagent/stream"
)

// relayedAgent starts a relay and an agent registered with it, on
// loopback, and returns the agent and its public address at the relay.
func relayedAgent(t *testing.T) (*Agent, string) {
	t.Helper()
	rl := relaytest.Start(t, relayserver.Config{})
	a := testAgent(t, func(c *config.Config) {
		useRelay(c, rl)
	})
	select {
	case <-a.RelayKeeper().Registered():
	case <-time.After(20 * time.Second):
		t.Fatal("agent never registered with the relay")
	}
	return a, a.RelayKeeper().Public()[rl.Addr.String()]
}

// blackHole is an address that takes UDP packets and never answers: a
// camera's LAN address seen from outside, or a public address its NAT
// drops. A QUIC handshake to it only ends by timeout or cancellation.
func blackHole(t *testing.T) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	return pc.LocalAddr().String()
}

// manualClock hands out head-start timers that the test fires itself.
type manualClock struct {
	asked chan chan time.Time
}

func (c manualClock) After(time.Duration) <-chan time.Time {
	ch := make(chan time.Time, 1)
	c.asked <- ch
	return ch
}

type traceLog struct {
	mu     sync.Mutex
	events []dialrace.Event
}

func (l *traceLog) add(e dialrace.Event) {
	l.mu.Lock()
	l.events = append(l.events, e)
	l.mu.Unlock()
}

// TestPairThroughRelayAndRaceDirectAgainstRelay covers a camera behind
// NAT end to end: the agent writes its public address for `camagent pair`;
// a viewer pairs from an offer whose only address never answers, by
// locating the camera through its relay; then `view --via auto` races that
// dead direct address against the relay and gets its first frame through
// the relay without waiting for the direct attempt to time out.
func TestPairThroughRelayAndRaceDirectAgainstRelay(t *testing.T) {
	a, public := relayedAgent(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	// What `camagent pair` adds to the offer.
	got, err := ReadPublicAddrs(a.cfg.StateDir)
	if err != nil || !slices.Equal(got, []string{public}) {
		t.Fatalf("%s lists %v, %v; want [%s]", PublicFile, got, err, public)
	}

	// Pair: the offer's address is dead, only the relay's locator works.
	dead := blackHole(t)
	vid, cam, err := joinOffer(ctx, t, a, "phone", dead)
	if err != nil {
		t.Fatalf("pairing with a dead address and a relay: %v", err)
	}
	if _, ok := a.viewers.Allowed(vid.Fingerprint); !ok {
		t.Fatal("camera did not register the viewer")
	}

	// View --via auto with the head start on a clock the test drives.
	clock := manualClock{asked: make(chan chan time.Time, 4)}
	var trace traceLog
	d := viewer.Dialer{Identity: vid, After: clock.After, Trace: trace.add}
	start := time.Now()
	type dialed struct {
		l   *viewer.Link
		err error
	}
	res := make(chan dialed, 1)
	go func() {
		l, err := d.Dial(ctx, cam)
		res <- dialed{l, err}
	}()
	// The direct attempt starts alone and asks for its head start; the
	// relay attempt starts only when the test lets that elapse.
	var fire chan time.Time
	select {
	case fire = <-clock.asked:
	case <-ctx.Done():
		t.Fatal("no head start asked for")
	}
	trace.mu.Lock()
	before := slices.Clone(trace.events)
	trace.mu.Unlock()
	if len(before) != 1 || before[0].Name != "direct" || !before[0].Started {
		t.Fatalf("before the head start: %+v, want only the direct attempt started", before)
	}
	fire <- time.Now()
	r := <-res
	if r.err != nil {
		t.Fatal(r.err)
	}
	defer r.l.Close()
	if !r.l.Relayed() || r.l.Conn.RemoteAddr().String() != public {
		t.Fatalf("connected to %s (relayed %v), want the relay's public address %s", r.l.Conn.RemoteAddr(), r.l.Relayed(), public)
	}
	client, err := stream.NewClient(ctx, r.l.Conn, "phone")
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	if _, err := client.ReadFrame(ctx); err != nil {
		t.Fatal(err)
	}
	firstFrame := time.Since(start)

	// The direct attempt was cut short by the relay's win, not by its own
	// timeout: that is what makes the dead address cost only the head
	// start. Exactly one attempt of each kind, in this order.
	trace.mu.Lock()
	events := slices.Clone(trace.events)
	trace.mu.Unlock()
	var names []string
	for _, e := range events {
		state := "end"
		if e.Started {
			state = "start"
		}
		names = append(names, e.Name+" "+state)
	}
	ru, err := relayclient.ParseRelayURL(cam.Relays[0])
	if err != nil {
		t.Fatal(err)
	}
	relayName := "relay " + ru.Addr
	want := []string{"direct start", relayName + " start", relayName + " end", "direct end"}
	if !slices.Equal(names, want) {
		t.Fatalf("attempts %q, want %q", names, want)
	}
	if last := events[3]; !errors.Is(last.Err, context.Canceled) {
		t.Fatalf("direct attempt ended with %v, want cancelled by the relay's win", last.Err)
	}
	if events[2].Err != nil {
		t.Fatalf("relay attempt: %v", events[2].Err)
	}
	t.Logf("first frame through the relay %v after dialling, with a dead direct address (head start on a manual clock)", firstFrame.Round(time.Millisecond))
}
