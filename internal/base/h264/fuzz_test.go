package h264_test

import (
	"testing"

	"github.com/camagent/camagent/internal/base/h264"
	"github.com/camagent/camagent/internal/base/media/mediatest"
)

func FuzzSplitAnnexB(f *testing.F) {
	for _, au := range mediatest.Stream100x60.Units()[:3] {
		f.Add(au)
	}
	f.Add([]byte{0, 0, 1})
	f.Add([]byte{0, 0, 0, 1, 0x65, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		nalus, err := h264.SplitAnnexB(b)
		if err != nil {
			return
		}
		for _, n := range nalus {
			if len(n) == 0 || n[len(n)-1] == 0 {
				t.Fatalf("unit %x is empty or ends in zero", n)
			}
		}
		// Joining and splitting again is stable.
		again, err := h264.SplitAnnexB(h264.JoinAnnexB(nalus))
		if err != nil || len(again) != len(nalus) {
			t.Fatalf("re-split: %d units, err %v; want %d", len(again), err, len(nalus))
		}
		_ = h264.IsKeyFrame(b)
		sps, pps := h264.ParameterSets(b)
		if out, inserted := h264.WithParameterSets(nalus, sps, pps); inserted {
			if s, p := h264.FindParameterSets(out); s == nil || p == nil {
				t.Fatal("inserted parameter sets missing")
			}
		}
	})
}

func FuzzSplitAVCC(f *testing.F) {
	for _, au := range mediatest.Stream100x60.Units()[:3] {
		avcc, _ := h264.AnnexBToAVCC(au)
		f.Add(avcc)
	}
	f.Add([]byte{0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		nalus, err := h264.SplitAVCC(b)
		if err != nil {
			return
		}
		if back, err := h264.SplitAVCC(h264.JoinAVCC(nalus)); err != nil || len(back) != len(nalus) {
			t.Fatalf("round trip: %d units, err %v", len(back), err)
		}
		total := 0
		for _, n := range nalus {
			total += 4 + len(n)
		}
		if total > len(b) {
			t.Fatalf("units add up to %d bytes from %d", total, len(b))
		}
	})
}

func FuzzParseSPS(f *testing.F) {
	sps, _ := h264.ParameterSets(mediatest.Stream100x60.Units()[0])
	f.Add(sps)
	f.Add([]byte{0x67, 0x64, 0x00, 0x1f, 0xac, 0xd9, 0x40, 0x50, 0x05, 0xbb, 0x01, 0x10})
	f.Add([]byte{0x67})
	f.Fuzz(func(t *testing.T, b []byte) {
		info, err := h264.ParseSPS(b)
		if err != nil {
			return
		}
		if info.Width <= 0 || info.Height <= 0 || info.Width > h264.MaxDimension || info.Height > h264.MaxDimension {
			t.Fatalf("accepted size %dx%d", info.Width, info.Height)
		}
	})
}
