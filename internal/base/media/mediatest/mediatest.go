package mediatest

import (
	_ "embed"
	"time"

	"github.com/camagent/camagent/internal/base/h264"
	"github.com/camagent/camagent/internal/base/media"
)

//go:embed stream-160x120-300.h264
var stream160x120 []byte

//go:embed stream-100x60.h264
var stream100x60 []byte

// Stream is one H.264 elementary stream in Annex-B with an access unit
// delimiter before every frame and SPS and PPS before every IDR.
type Stream struct {
	Width, Height int
	FPS           int
	KeyEvery      int // frames from one IDR to the next
	Frames        int // frames in the file
	annexB        []byte
}

// The streams (x264, baseline profile).
var (
	// Stream160x120: 160x120, 30 fps, IDR every 45 frames, 300 frames
	// (10 s, 24.6 kB).
	Stream160x120 = Stream{Width: 160, Height: 120, FPS: 30, KeyEvery: 45, Frames: 300, annexB: stream160x120}
	// Stream100x60: 100x60 (coded as 112x64, cropped), 30 fps, IDR every
	// 6 frames, 12 frames (4 kB).
	Stream100x60 = Stream{Width: 100, Height: 60, FPS: 30, KeyEvery: 6, Frames: 12, annexB: stream100x60}
)

// FrameDuration is one frame at the stream's rate.
func (s Stream) FrameDuration() time.Duration { return time.Second / time.Duration(s.FPS) }

// AnnexB is the whole stream (a copy: callers may change it).
func (s Stream) AnnexB() []byte { return append([]byte(nil), s.annexB...) }

// Units is the stream's frames in order, each an Annex-B access unit
// (AUD first), cut at the delimiters.
func (s Stream) Units() [][]byte {
	nalus, err := h264.SplitAnnexB(s.annexB)
	if err != nil {
		panic("mediatest: " + err.Error())
	}
	var groups [][][]byte
	for _, nu := range nalus {
		if h264.Type(nu) == h264.NALUTypeAUD || len(groups) == 0 {
			groups = append(groups, nil)
		}
		groups[len(groups)-1] = append(groups[len(groups)-1], nu)
	}
	units := make([][]byte, len(groups))
	for i, g := range groups {
		units[i] = h264.JoinAnnexB(g)
	}
	return units
}

// AccessUnits returns n access units: the stream's frames, repeated from
// the first IDR as often as needed, with PTS at the stream's rate and,
// unless start is zero, Captured at start+PTS.
func (s Stream) AccessUnits(n int, start time.Time) []media.AccessUnit {
	units := s.Units()
	aus := make([]media.AccessUnit, n)
	for i := range aus {
		u := units[i%len(units)]
		pts := time.Duration(i) * s.FrameDuration()
		aus[i] = media.AccessUnit{Codec: media.CodecH264, Data: u, Key: h264.IsKeyFrame(u), PTS: pts}
		if !start.IsZero() {
			aus[i].Captured = start.Add(pts)
		}
	}
	return aus
}

// Track describes the stream, with its parameter sets.
func (s Stream) Track() media.Track {
	sps, pps := h264.ParameterSets(s.annexB)
	return media.Track{Codec: media.CodecH264, Width: s.Width, Height: s.Height, FPS: float64(s.FPS), SPS: sps, PPS: pps}
}
