// Package testav supplies a real H.264 stream (x264, 160x120, 30 fps, IDR
// every 45 frames, 300 frames) as access units for the storage tests.
package testav

import (
	_ "embed"
	"time"

	"github.com/camagent/camagent/internal/base/h264"
	"github.com/camagent/camagent/internal/base/media"
)

//go:embed stream-160x120-300.h264
var stream []byte

// Width, Height and FPS of the stream.
const (
	Width  = 160
	Height = 120
	FPS    = 30
)

// FrameDuration is one frame at FPS.
const FrameDuration = time.Second / FPS

// AccessUnits returns n access units (the 300 frames repeated as needed,
// always restarting at the first IDR) with PTS at 30 fps and Captured
// starting at start.
func AccessUnits(n int, start time.Time) []media.AccessUnit {
	nalus, err := h264.SplitAnnexB(stream)
	if err != nil {
		panic(err)
	}
	var groups [][][]byte
	for _, nu := range nalus {
		if h264.Type(nu) == h264.NALUTypeAUD || len(groups) == 0 {
			groups = append(groups, nil)
		}
		groups[len(groups)-1] = append(groups[len(groups)-1], nu)
	}
	aus := make([]media.AccessUnit, n)
	for i := range aus {
		g := groups[i%len(groups)]
		pts := time.Duration(i) * FrameDuration
		aus[i] = media.AccessUnit{
			Codec: media.CodecH264, Data: h264.JoinAnnexB(g),
			Key: h264.HasType(g, h264.NALUTypeIDR), PTS: pts, Captured: start.Add(pts),
		}
	}
	return aus
}

// Track describes the stream.
func Track() media.Track {
	aus := AccessUnits(1, time.Time{})
	sps, pps := h264.ParameterSets(aus[0].Data)
	return media.Track{Codec: media.CodecH264, Width: Width, Height: Height, FPS: FPS, SPS: sps, PPS: pps}
}
