package encode

import (
	"testing"

	"github.com/camagent/camagent/internal/base/media"
	"github.com/camagent/camagent/internal/base/media/mediatest"
)

// FuzzConvert feeds arbitrary frame data and geometry to the converter: it
// must reject what it cannot read, never index out of range.
func FuzzConvert(f *testing.F) {
	for _, format := range []media.PixelFormat{media.PixI420, media.PixNV12, media.PixYUYV, media.PixMJPEG} {
		fr := syntheticFrame(f, format, 16, 8, 0)
		f.Add(string(format), fr.Data, 16, 8, 0, 16, 8)
		f.Add(string(format), fr.Data, 16, 8, 20, 8, 4)
	}
	f.Fuzz(func(t *testing.T, format string, data []byte, w, h, stride, outW, outH int) {
		if w > 256 || h > 256 || outW <= 0 || outH <= 0 || outW > 256 || outH > 256 || stride > 1024 {
			return // keep allocations small; sizes are validated by New
		}
		fr := media.RawFrame{Format: media.PixelFormat(format), Width: w, Height: h, Stride: stride, Data: data}
		img, err := newI420Converter(outW, outH).convert(fr)
		if err != nil {
			return
		}
		if img.Rect.Dx() != outW || img.Rect.Dy() != outH {
			t.Fatalf("converted to %v, want %dx%d", img.Rect, outW, outH)
		}
	})
}

// FuzzH264Passthrough feeds arbitrary camera buffers: errors are fine,
// panics are not, and any key frame emitted must carry parameter sets once
// some were seen.
func FuzzH264Passthrough(f *testing.F) {
	camera := mediatest.Stream100x60.Units()
	for _, au := range camera[:3] {
		f.Add(au)
	}
	f.Add([]byte{0, 0, 0, 1, 0x65, 0x88})
	f.Fuzz(func(t *testing.T, data []byte) {
		enc, err := New(Config{Codec: media.CodecH264}, media.PixH264, 100, 60)
		if err != nil {
			t.Fatal(err)
		}
		defer enc.Close()
		if _, err := enc.Encode(media.RawFrame{Format: media.PixH264, Data: camera[0]}); err != nil {
			t.Fatal(err)
		}
		aus, err := enc.Encode(media.RawFrame{Format: media.PixH264, Data: data})
		if err != nil {
			return
		}
		for _, au := range aus {
			if au.Key && !hasParameterSets(au.Data) {
				t.Fatal("key frame without SPS/PPS")
			}
		}
	})
}
