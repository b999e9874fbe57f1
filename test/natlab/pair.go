//go:build linux

package natlab

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/camagent/camagent/internal/feature/identity"
	"github.com/camagent/camagent/p2p/traversal"
)

// Pair names one cell of the matrix.
type Pair struct {
	Camera, Viewer Kind
	// Hairpin: both behind one port-restricted router on one LAN.
	Hairpin bool
}

func (p Pair) String() string {
	if p.Hairpin {
		return "hairpin (same LAN)"
	}
	return fmt.Sprintf("%s / %s", p.Camera, p.Viewer)
}

// ExpectDirect is whether a direct path can exist (DirectPossible; the
// same LAN always can, over host candidates).
func (p Pair) ExpectDirect() bool { return p.Hairpin || DirectPossible(p.Camera, p.Viewer) }

// Result is what one pair measured. Times are milliseconds, shares
// percent.
type Result struct {
	Camera       Kind   `json:"camera"`
	Viewer       Kind   `json:"viewer"`
	Hairpin      bool   `json:"hairpin,omitempty"`
	ExpectDirect bool   `json:"expect_direct"`
	Path         string `json:"path"` // "direct" or "relayed" at the end of the run
	DirectAddr   string `json:"direct_addr,omitempty"`
	// TimeToDirectMS: from the connection established through the relay
	// to running on the direct path.
	TimeToDirectMS float64 `json:"time_to_direct_ms,omitempty"`
	// RelayShareAfterSwitchPct: bytes the relay carried to the viewer after
	// the switch over bytes the viewer's socket received in that time.
	RelayShareAfterSwitchPct float64 `json:"relay_share_after_switch_pct"`
	// RelaySteadySharePct is the same from settle after the switch on:
	// without the packets in flight on the relay at the switch and the
	// relay path's re-validation that follows it (one padded
	// PATH_CHALLENGE/PATH_RESPONSE, 1200 bytes each way, which keeps
	// the fallback instant; traversal DefaultRelayRefresh).
	RelaySteadySharePct float64 `json:"relay_share_steady_pct"`
	// FramesLostAtSwitch: frames missing in the numbering within
	// [switch-0.5 s, switch+1 s]; FramesLost over the whole run.
	FramesLostAtSwitch int `json:"frames_lost_at_switch"`
	FramesLost         int `json:"frames_lost"`
	// FramesSkippedBySource: missing at the viewer and never published
	// by the camera (its reference viewer on loopback did not see them
	// either): the test source was late on a busy CPU. Not counted as
	// lost.
	FramesSkippedBySource int `json:"frames_skipped_by_source"`
	Frames                int `json:"frames"`
	// MaxGapMS is the longest time between two frames' arrivals.
	MaxGapMS  float64  `json:"max_gap_ms"`
	Rounds    uint64   `json:"rounds"`
	Probes    uint64   `json:"probes"`
	Fallbacks uint64   `json:"fallbacks"`
	Events    []string `json:"events"`
	Met       bool     `json:"targets_met"`
	Failures  []string `json:"failures,omitempty"`
	Error     string   `json:"error,omitempty"`
}

// Targets of issue 4, checked per pair.
const (
	MaxTimeToDirect = time.Second
	// MaxRelayShareAllPct is the issue's ">= 99% of media bytes direct
	// after the switch", counted from the viewer's switch itself: what
	// the camera sent through the relay before it saw the viewer move
	// counts against it.
	MaxRelayShareAllPct = 1.0
	// MaxRelaySharePct bounds the share from settle after the switch on:
	// nothing but media belongs there either.
	MaxRelaySharePct   = 1.0
	settle             = 500 * time.Millisecond
	MaxRelayedGap      = 300 * time.Millisecond // "no interruption" at 30 fps
	switchWindowBefore = 500 * time.Millisecond
	switchWindowAfter  = time.Second
)

// RunPair builds the lab for p, starts the relay in its wan namespace,
// the agent in the camera's and the viewer in the viewer's, streams for
// hold after the viewer connected through the relay and measures. The lab
// is torn down before it returns.
func RunPair(ctx context.Context, p Pair, hold time.Duration) (res Result) {
	res = Result{Camera: p.Camera, Viewer: p.Viewer, Hairpin: p.Hairpin, ExpectDirect: p.ExpectDirect(), Path: "relayed"}
	if p.Hairpin {
		res.Camera, res.Viewer = PortRestricted, PortRestricted
	}
	defer func() { res.check() }()
	lab, err := New(p.Camera, p.Viewer, p.Hairpin)
	if err != nil {
		res.Error = err.Error()
		return
	}
	defer lab.Close()
	relay, err := StartRelay(lab.WAN)
	if err != nil {
		res.Error = err.Error()
		return
	}
	defer relay.Close()
	vdir, err := os.MkdirTemp("", "natlab-viewer")
	if err != nil {
		res.Error = err.Error()
		return
	}
	defer os.RemoveAll(vdir)
	vid, err := identity.LoadOrCreate(vdir)
	if err != nil {
		res.Error = err.Error()
		return
	}
	cam, err := StartCamera(ctx, lab.Camera, relay, vid)
	if err != nil {
		res.Error = "camera: " + err.Error()
		return
	}
	defer cam.Close()
	ref, err := cam.StartReference(ctx, lab.Camera, vid)
	if err != nil {
		res.Error = "camera: " + err.Error()
		return
	}
	defer ref.Close()
	v, err := StartViewer(ctx, lab.Viewer, vid, cam.Offer, relay)
	if err != nil {
		res.Error = "viewer: " + err.Error()
		return
	}
	defer v.Close()

	if os.Getenv("NATLAB_TRACE") != "" {
		go func() {
			for i := 0; i < 70; i++ {
				time.Sleep(100 * time.Millisecond)
				c, _ := relay.Counters()
				fmt.Fprintf(os.Stderr, "trace %5.0fms relay-from-cam=%d to-cam=%d viewer=%d\n", ms(time.Since(v.Connected)), c.FromCamera, c.ToCamera, v.socketBytes())
			}
		}()
	}
	select {
	case <-time.After(time.Until(v.Connected.Add(hold))):
	case <-ctx.Done():
		res.Error = ctx.Err().Error()
		return
	}
	frames, events, relayEnd, viewerEnd, readErr := v.Snapshot()
	if readErr != nil {
		res.Error = "frames stopped: " + readErr.Error()
	}
	cs := v.ClientStats()
	res.Rounds, res.Probes, res.Fallbacks = cs.Rounds, cs.Probes, cs.Fallbacks
	if cs.Direct {
		res.Path = "direct"
	}
	var switched *PathEvent
	for i, e := range events {
		ev := fmt.Sprintf("%+.0fms %v", ms(e.At.Sub(v.Connected)), e.Kind)
		if e.Addr.IsValid() {
			ev += " " + e.Addr.String()
		}
		res.Events = append(res.Events, ev)
		if e.Kind == traversal.EventDirect && switched == nil {
			switched = &events[i]
		}
	}
	res.Frames = len(frames)
	for i := 1; i < len(frames); i++ {
		// Missing between two received frames: published by the camera
		// (lost on the way or dropped by the hub) or skipped by its source.
		lost := 0
		for n := frames[i-1].N + 1; n < frames[i].N; n++ {
			if ref.Published(n) {
				lost++
			} else {
				res.FramesSkippedBySource++
			}
		}
		res.FramesLost += lost
		res.MaxGapMS = max(res.MaxGapMS, ms(frames[i].At.Sub(frames[i-1].At)))
		if switched != nil && lost > 0 &&
			frames[i].At.After(switched.At.Add(-switchWindowBefore)) && frames[i].At.Before(switched.At.Add(switchWindowAfter)) {
			res.FramesLostAtSwitch += lost
		}
	}
	if switched != nil {
		res.DirectAddr = switched.Addr.String()
		res.TimeToDirectMS = ms(switched.At.Sub(v.Connected))
		if got := viewerEnd - switched.ViewerBytes; got > 0 {
			res.RelayShareAfterSwitchPct = 100 * float64(relayEnd-switched.RelayBytes) / float64(got)
		}
		if st, ok := v.Settled(); ok && viewerEnd > st.ViewerBytes {
			res.RelaySteadySharePct = 100 * float64(relayEnd-st.RelayBytes) / float64(viewerEnd-st.ViewerBytes)
		} else {
			res.RelaySteadySharePct = 100
		}
	} else {
		res.RelayShareAfterSwitchPct, res.RelaySteadySharePct = 100, 100
	}
	return res
}

// check compares the result with the targets of issue 4.
func (r *Result) check() {
	fail := func(format string, a ...any) { r.Failures = append(r.Failures, fmt.Sprintf(format, a...)) }
	switch {
	case r.Error != "":
		fail("%s", r.Error)
	case r.ExpectDirect && r.TimeToDirectMS == 0:
		fail("never went direct")
	case r.ExpectDirect:
		if r.TimeToDirectMS >= ms(MaxTimeToDirect) {
			fail("time to direct %.0f ms >= %v", r.TimeToDirectMS, MaxTimeToDirect)
		}
		if r.RelaySteadySharePct > MaxRelaySharePct {
			fail("%.2f%% of media bytes via the relay from %v after the switch", r.RelaySteadySharePct, settle)
		}
		if r.RelayShareAfterSwitchPct > MaxRelayShareAllPct {
			fail("%.2f%% of bytes via the relay after the switch", r.RelayShareAfterSwitchPct)
		}
		if r.FramesLostAtSwitch > 0 {
			fail("%d frames lost at the switch", r.FramesLostAtSwitch)
		}
		if r.Fallbacks > 0 {
			fail("fell back to the relay %d times", r.Fallbacks)
		}
	default:
		if r.TimeToDirectMS != 0 {
			fail("went direct where no direct path should exist: the lab's NAT is not what it claims")
		}
		if r.FramesLost > 0 || r.MaxGapMS > ms(MaxRelayedGap) {
			fail("relayed stream interrupted: %d frames lost, longest gap %.0f ms", r.FramesLost, r.MaxGapMS)
		}
	}
	if r.Frames == 0 && r.Error == "" {
		fail("no frames")
	}
	r.Met = len(r.Failures) == 0
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
