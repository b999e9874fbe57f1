package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/camagent/camagent/internal/base/media"
	"github.com/camagent/camagent/motion"
)

// stills answers still requests (camagent-rec/1 "still",
// docs/recording.md) with the next captured frame as a JPEG. The capture
// loop only hands over a copy of the frame; the JPEG is encoded in the
// requester's goroutine, at most `slots` at a time camera-wide (issue 11
// item 8): two hundred concurrent requests neither stall capture nor run
// two hundred encodes at once; they wait their turn within their own
// deadline.
type stills struct {
	slots  chan struct{}
	frames chan chan<- media.RawFrame // requests for the next frame, served by the capture loop
	log    *slog.Logger

	inFlight, peak atomic.Int64
	encoded        atomic.Uint64
}

// StillStats count still encodes since start.
type StillStats struct {
	Limit    int    // encodes allowed at once (limits.still_encodes)
	InFlight int    // encoding now
	Peak     int    // most ever encoding at once
	Encoded  uint64 // stills encoded
}

func newStills(limit int, log *slog.Logger) *stills {
	if limit <= 0 {
		limit = 1
	}
	return &stills{slots: make(chan struct{}, limit), frames: make(chan chan<- media.RawFrame, limit), log: log}
}

// offer gives every request waiting for a frame (at most as many as there
// are slots) one copy of f, shared: the capture loop reuses f's buffer
// once this returns, and it must not encode anything itself.
func (s *stills) offer(f media.RawFrame) {
	var shared *media.RawFrame
	for {
		select {
		case reply := <-s.frames:
			if shared == nil {
				c := f
				c.Data = bytes.Clone(f.Data)
				shared = &c
			}
			reply <- *shared // buffered
		default:
			return
		}
	}
}

// still waits for a slot and the next captured frame, and encodes it.
func (s *stills) still(ctx context.Context) ([]byte, error) {
	start := time.Now()
	select {
	case s.slots <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("camera busy: stills are encoded %d at a time (limits.still_encodes) and this one waited %v: %w",
			cap(s.slots), time.Since(start).Round(time.Millisecond), ctx.Err())
	}
	defer func() { <-s.slots }()
	reply := make(chan media.RawFrame, 1)
	select {
	case s.frames <- reply:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	var f media.RawFrame
	select {
	case f = <-reply:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	n := s.inFlight.Add(1)
	defer s.inFlight.Add(-1)
	for p := s.peak.Load(); n > p && !s.peak.CompareAndSwap(p, n); p = s.peak.Load() {
	}
	jpg, err := motion.JPEG(f, 90)
	if err != nil || jpg == nil {
		s.log.Warn("snapshot", "err", err)
		return nil, errors.New("cannot encode a still from this camera's frames")
	}
	s.encoded.Add(1)
	s.log.Debug("still encoded", "in_flight", n, "peak", s.peak.Load(), "limit", cap(s.slots),
		"bytes", len(jpg), "waited_ms", time.Since(start).Milliseconds())
	return jpg, nil
}

func (s *stills) stats() StillStats {
	return StillStats{Limit: cap(s.slots), InFlight: int(s.inFlight.Load()), Peak: int(s.peak.Load()), Encoded: s.encoded.Load()}
}

// StillStats are the agent's still encodes since start (zero-valued when
// it has no recordings side).
func (a *Agent) StillStats() StillStats {
	if a.rec == nil || a.rec.stills == nil {
		return StillStats{}
	}
	return a.rec.stills.stats()
}
