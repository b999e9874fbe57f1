package mediatest_test

import (
	"bytes"
	"testing"
	"time"

	"github.com/camagent/camagent/internal/base/h264"
	"github.com/camagent/camagent/internal/base/media/mediatest"
)

// TestStreamsAreWhatTheySay: frame count, IDR period and picture size of
// each stream, read from the stream itself.
func TestStreamsAreWhatTheySay(t *testing.T) {
	for _, s := range []mediatest.Stream{mediatest.Stream160x120, mediatest.Stream100x60} {
		units := s.Units()
		if len(units) != s.Frames {
			t.Fatalf("%dx%d: %d frames, want %d", s.Width, s.Height, len(units), s.Frames)
		}
		for i, u := range units {
			if got, want := h264.IsKeyFrame(u), i%s.KeyEvery == 0; got != want {
				t.Fatalf("%dx%d: frame %d key %v, want %v", s.Width, s.Height, i, got, want)
			}
		}
		tr := s.Track()
		w, h, err := h264.ParseSize(tr.SPS)
		if err != nil || w != s.Width || h != s.Height || tr.PPS == nil {
			t.Fatalf("%dx%d: SPS says %dx%d, %v; PPS %x", s.Width, s.Height, w, h, err, tr.PPS)
		}
		aus := s.AccessUnits(s.Frames+1, time.Unix(100, 0))
		if !aus[s.Frames].Key || !bytes.Equal(aus[s.Frames].Data, aus[0].Data) ||
			aus[1].PTS != s.FrameDuration() || !aus[1].Captured.Equal(time.Unix(100, 0).Add(s.FrameDuration())) {
			t.Fatalf("%dx%d: access units do not repeat from the first IDR at the stream's rate", s.Width, s.Height)
		}
		if a := s.AnnexB(); len(a) == 0 {
			t.Fatal("empty stream")
		} else {
			a[0] = 0xff // a copy: the stream is unchanged
			if s.Units()[0][0] == 0xff {
				t.Fatal("AnnexB is not a copy")
			}
		}
	}
}
