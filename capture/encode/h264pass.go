package encode

import (
	"bytes"
	"fmt"
	"log/slog"
	"time"

	"github.com/camagent/camagent/internal/base/h264"
	"github.com/camagent/camagent/internal/base/media"
)

// h264Packager post-processes encoded H.264 from any source (camera or
// openh264): it drops access units before the first key frame, remembers the
// latest SPS and PPS, and makes every key frame carry them in band so that a
// viewer can start decoding at any group of pictures.
type h264Packager struct {
	log      *slog.Logger
	track    *trackState
	sps, pps []byte
	seenKey  bool
	warnedPS bool
}

func newH264Packager(log *slog.Logger, track *trackState) *h264Packager {
	return &h264Packager{log: log, track: track}
}

// pack turns one Annex-B access unit into zero or one AccessUnit.
func (p *h264Packager) pack(data []byte, pts time.Duration, captured time.Time) ([]media.AccessUnit, error) {
	nalus, err := h264.SplitAnnexB(data)
	if err != nil {
		return nil, err
	}
	p.remember(h264.FindParameterSets(nalus))
	if !hasVCL(nalus) {
		// Some cameras deliver SPS and PPS in a buffer of their own.
		return nil, nil
	}
	key := h264.HasType(nalus, h264.NALUTypeIDR)
	if !key && !p.seenKey {
		return nil, nil // undecodable without the preceding IDR
	}
	if key {
		p.seenKey = true
		data = p.withParameterSets(nalus, data)
	}
	return []media.AccessUnit{{Codec: media.CodecH264, Data: data, Key: key, PTS: pts, Captured: captured}}, nil
}

func hasVCL(nalus [][]byte) bool {
	for _, n := range nalus {
		if h264.IsVCL(n) {
			return true
		}
	}
	return false
}

// withParameterSets returns the key access unit with the remembered SPS and
// PPS inserted if it lacks them.
func (p *h264Packager) withParameterSets(nalus [][]byte, data []byte) []byte {
	if p.sps == nil || p.pps == nil {
		if !p.warnedPS {
			p.warnedPS = true
			p.log.Warn("H.264 key frame without SPS/PPS and none seen before: viewers cannot start decoding")
		}
		return data
	}
	out, inserted := h264.WithParameterSets(nalus, p.sps, p.pps)
	if !inserted {
		return data
	}
	return h264.JoinAnnexB(out)
}

// remember keeps copies of new parameter sets (the NAL units alias a buffer
// that will be reused) and updates the track when they change.
func (p *h264Packager) remember(sps, pps []byte) {
	changed := false
	if sps != nil && !bytes.Equal(sps, p.sps) {
		p.sps, changed = bytes.Clone(sps), true
	}
	if pps != nil && !bytes.Equal(pps, p.pps) {
		p.pps, changed = bytes.Clone(pps), true
	}
	if !changed || p.sps == nil || p.pps == nil {
		return
	}
	w, h, err := h264.ParseSize(p.sps)
	if err != nil {
		p.log.Warn("cannot parse H.264 SPS", "err", err)
	}
	p.track.update(func(t *media.Track) {
		t.SPS, t.PPS = p.sps, p.pps
		if err == nil {
			t.Width, t.Height = w, h
		}
	})
}

// h264Passthrough forwards camera-native H.264.
type h264Passthrough struct {
	track  trackState
	pack   *h264Packager
	clock  ptsClock
	closed bool
}

func newH264Passthrough(cfg Config) *h264Passthrough {
	e := &h264Passthrough{}
	e.track.t = media.Track{Codec: media.CodecH264, Width: cfg.Width, Height: cfg.Height, FPS: cfg.FPS}
	e.pack = newH264Packager(cfg.Logger, &e.track)
	return e
}

func (e *h264Passthrough) Encode(f media.RawFrame) ([]media.AccessUnit, error) {
	if e.closed {
		return nil, ErrClosed
	}
	aus, err := e.pack.pack(f.Data, e.clock.pts(f.Timestamp), f.Captured)
	if err != nil {
		return nil, fmt.Errorf("h264 passthrough: %w", err)
	}
	return aus, nil
}

func (e *h264Passthrough) Track() media.Track { return e.track.get() }
func (e *h264Passthrough) Close() error       { e.closed = true; return nil }
