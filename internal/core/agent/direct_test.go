package agent

import (
	"context"
	"net"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/camagent/camagent/capture"
	"github.com/camagent/camagent/internal/base/config"
	"github.com/camagent/camagent/internal/base/flakytest"
	"github.com/camagent/camagent/internal/base/media"
	"github.com/camagent/camagent/internal/core/viewer"
	"github.com/camagent/camagent/p2p/natwire"
	"github.com/camagent/camagent/p2p/relayserver"
	"github.com/camagent/camagent/p2p/relayserver/relaytest"
	"github.com/camagent/camagent/p2p/traversal"
	"github.com/camagent/camagent/stream"
)

// recordingSource notes the timestamp of every frame the capture loop
// reads, so that the test knows exactly which frames the camera produced.
type recordingSource struct {
	capture.Source
	mu sync.Mutex
	ts []time.Duration
}

func (s *recordingSource) Read(ctx context.Context) (media.RawFrame, error) {
	f, err := s.Source.Read(ctx)
	if err == nil {
		s.mu.Lock()
		s.ts = append(s.ts, f.Timestamp)
		s.mu.Unlock()
	}
	return f, err
}

// frameSlot is the source's frame number for a timestamp: the wire
// carries presentation times at a coarser resolution than the source's
// nanoseconds, so frames are matched by slot.
func frameSlot(ts time.Duration) int64 {
	const interval = time.Second / 30 // testAgent's frame rate
	return int64((ts + interval/2) / interval)
}

// missing counts frames the source produced with timestamps in [from, to]
// that are not in got (sorted).
func (s *recordingSource) missing(got []time.Duration, from, to time.Duration) int {
	slots := make(map[int64]bool, len(got))
	for _, ts := range got {
		slots[frameSlot(ts)] = true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, ts := range s.ts {
		if ts >= from && ts <= to && !slots[frameSlot(ts)] {
			n++
		}
	}
	return n
}

// TestViewerThroughRelayGoesDirect is issue 4's loopback end to end: a real
// agent registered with a real relay, a viewer that knows only the relay's
// public address, NAT traversal over the control stream, migration of the
// live connection to the direct path, no frame lost at the switch, and the
// relay's own byte counter showing that media then bypasses it.
// It runs over IPv4 and, where the host has it, IPv6: the IPv6 run
// carries the drafts' IPv6 frame types and candidates end to end.
func TestViewerThroughRelayGoesDirect(t *testing.T) {
	flakytest.Mark(t, "the relay share counted from the switch itself holds media the camera sent before its quic-go saw the viewer move; "+
		"on a loaded 2-core machine that took 1.58% (1216 bytes over the 1% bound) once, while every other run stayed under 1% (issue 10 merge, Dec 2026)")
	for _, ip := range []string{"127.0.0.1", "::1"} {
		t.Run(ip, func(t *testing.T) {
			if pc, err := net.ListenPacket("udp", net.JoinHostPort(ip, "0")); err != nil {
				t.Skipf("no %s here: %v", ip, err)
			} else {
				pc.Close()
			}
			testGoesDirect(t, netip.MustParseAddr(ip))
		})
	}
}

func testGoesDirect(t *testing.T, ip netip.Addr) {
	rl := relaytest.StartAt(t, ip, relayserver.Config{})

	src := &recordingSource{}
	a := testAgentWith(t, func(c *config.Config) {
		useRelay(c, rl)
		c.Listen = net.JoinHostPort(ip.String(), "0")
	}, func(a *Agent) {
		open := a.openSource
		a.openSource = func() (capture.Source, error) {
			s, err := open()
			src.Source = s
			return src, err
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	public := waitRegistered(ctx, t, a, rl)
	// The relay observed the registration on the camera's QUIC socket: a
	// reflexive candidate (here the same as the host one).
	if !slices.Contains(a.relays.nat.candidates(), netip.MustParseAddrPort(a.Addr().String())) {
		t.Fatalf("camera candidates %v lack its QUIC socket %v", a.relays.nat.candidates(), a.Addr())
	}

	vid, cam, err := joinOffer(ctx, t, a, "phone", public)
	if err != nil {
		t.Fatal(err)
	}

	link, err := viewer.Dialer{Identity: vid, Route: viewer.RouteRelay}.Dial(ctx, cam)
	if err != nil {
		t.Fatal(err)
	}
	defer link.Close()
	if !link.Relayed() || link.Conn.RemoteAddr().String() != public {
		t.Fatalf("viewer connected to %v, want the relay's public address %s", link.Conn.RemoteAddr(), public)
	}
	client, err := stream.NewClient(ctx, link.Conn, "phone")
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	events := make(chan traversal.Event, 16)
	if err := link.StartTraversal(client.NATChannel(), func(e traversal.Event) { events <- e }); err != nil {
		t.Fatal(err)
	}

	// Read frames throughout; note each frame's source timestamp.
	type rx struct {
		ts time.Duration
		at time.Time
	}
	frames := make(chan rx, 1024)
	go func() {
		defer close(frames)
		for {
			f, err := client.ReadFrame(ctx)
			if err != nil {
				return
			}
			frames <- rx{ts: f.PTS, at: f.Received}
		}
	}()
	var got []rx
	var switched time.Time
	var relayAtSwitch, directAtSwitch uint64
	// The steady state starts once what was in flight through the relay
	// at the switch (and the relay path's validation) has arrived.
	var relaySteady, directSteady uint64
	steady := false
	deadline := time.After(20 * time.Second)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for switched.IsZero() || time.Since(switched) < 3500*time.Millisecond {
		select {
		case <-tick.C:
			if !switched.IsZero() && !steady && time.Since(switched) >= 500*time.Millisecond {
				steady = true
				relaySteady = rl.Server.Metrics().BytesFromCamera.Load()
				directSteady = link.PathStats().BytesDirect
			}
		case f, ok := <-frames:
			if !ok {
				t.Fatalf("stream ended after %d frames", len(got))
			}
			got = append(got, f)
		case e := <-events:
			switch e.Kind {
			case traversal.EventDirect:
				if e.Addr.Addr().Is4() != ip.Is4() {
					t.Fatalf("direct path to %v over the other address family", e.Addr)
				}
				if switched.IsZero() {
					switched = e.At
					relayAtSwitch = rl.Server.Metrics().BytesFromCamera.Load()
					directAtSwitch = link.PathStats().BytesDirect
				}
			case traversal.EventRelay:
				t.Fatalf("fell back to the relay on loopback: %+v", e)
			}
		case <-deadline:
			t.Fatalf("not direct within 20 s (%d frames); path %+v", len(got), link.PathStats())
		}
	}
	ps := link.PathStats()
	// Loopback translates nothing: the relay's STUN answer and the
	// camera's report agree (viewer), and so do the camera's probe and
	// its registration (camera).
	if m := link.Mapping(); m != natwire.MappingIndependent || ps.NATMapping != m.String() {
		t.Errorf("viewer measured its mapping as %v (summary %q)", m, ps.NATMapping)
	}
	if m := a.NATMapping(); m != natwire.MappingIndependent {
		t.Errorf("camera measured its mapping as %v", m)
	}
	if st := a.NATStats(); st.PunchRequests == 0 || st.PunchesSent == 0 {
		t.Errorf("NAT counters %+v after a punched switch", st)
	}
	if n := a.ViewersRelayed(); n != 0 {
		t.Errorf("%d viewers counted as relayed after the switch", n)
	}
	relayEnd := rl.Server.Metrics().BytesFromCamera.Load()
	relayAfter := relayEnd - relayAtSwitch
	directAfter := ps.BytesDirect - directAtSwitch
	relaySteadyBytes, directSteadyBytes := relayEnd-relaySteady, ps.BytesDirect-directSteady

	// The encoder's PTS counts from the first frame's source timestamp.
	src.mu.Lock()
	base := src.ts[0]
	src.mu.Unlock()
	var ts []time.Duration
	var firstAfter time.Duration = -1
	for _, f := range got {
		ts = append(ts, f.ts+base)
		if firstAfter < 0 && f.at.After(switched) {
			firstAfter = f.ts + base
		}
	}
	slices.Sort(ts)
	if firstAfter < 0 || len(ts) < 60 {
		t.Fatalf("%d frames, none after the switch", len(ts))
	}
	// Frames around the switch: one second either side of the first frame
	// that arrived after it.
	// (clamped to what the viewer was there for: it joins at a key frame).
	lostAtSwitch := src.missing(ts, max(firstAfter-time.Second, ts[0]), firstAfter+time.Second)
	lostOverall := src.missing(ts, ts[0], ts[len(ts)-1])
	share := float64(relayAfter) / float64(relayAfter+directAfter)
	steadyShare := float64(relaySteadyBytes) / float64(relaySteadyBytes+directSteadyBytes)
	t.Logf("time to direct %v ms; frames %d, lost at switch %d, lost overall %d; 3.5 s after the switch: relay %d bytes, direct %d bytes (relay share %.2f%%); from 0.5 s after it: relay %d, direct %d (%.2f%%)",
		*ps.TimeToDirectMs, len(ts), lostAtSwitch, lostOverall, relayAfter, directAfter, 100*share,
		relaySteadyBytes, directSteadyBytes, 100*steadyShare)
	if lostAtSwitch != 0 {
		t.Errorf("%d frames lost around the switch to direct", lostAtSwitch)
	}
	if ps.Path != "direct" || ps.Switches != 1 {
		t.Errorf("path figures %+v", ps)
	}
	if directAfter < 20_000 {
		t.Errorf("only %d bytes direct in 3 s after the switch", directAfter)
	}
	if steadyShare > 0.01 {
		t.Errorf("relay carried %.2f%% of the bytes from 0.5 s after the switch, want <= 1%%", 100*steadyShare)
	}
	if share > 0.01 {
		// Issue 4: >= 99% direct from the switch on. Nothing but media
		// the camera sent before it saw the viewer move belongs here (no
		// relay-path validation: traversal mutes the relay route).
		t.Errorf("relay carried %.2f%% of the bytes after the switch, want <= 1%%", 100*share)
	}
}
