package encode

import (
	"bytes"
	"image"
	"testing"

	"github.com/camagent/camagent/internal/base/media"
)

func TestConvertFormats(t *testing.T) {
	const w, h = 64, 48
	want := gradientI420(w, h, 3)
	for _, format := range []media.PixelFormat{media.PixI420, media.PixNV12, media.PixYUYV} {
		t.Run(string(format), func(t *testing.T) {
			got, err := newI420Converter(w, h).convert(syntheticFrame(t, format, w, h, 3))
			if err != nil {
				t.Fatal(err)
			}
			assertSamePicture(t, got, want)
		})
	}
}

func TestConvertStride(t *testing.T) {
	const w, h, pad = 32, 16, 8
	want := gradientI420(w, h, 1)
	// YU12 with a padded luma stride: chroma rows are padded by half.
	var data []byte
	for y := 0; y < h; y++ {
		data = append(data, want.Y[y*want.YStride:y*want.YStride+w]...)
		data = append(data, make([]byte, pad)...)
	}
	for _, plane := range [][]byte{want.Cb, want.Cr} {
		for y := 0; y < h/2; y++ {
			data = append(data, plane[y*want.CStride:y*want.CStride+w/2]...)
			data = append(data, make([]byte, pad/2)...)
		}
	}
	f := media.RawFrame{Format: media.PixI420, Width: w, Height: h, Stride: w + pad, Data: data}
	got, err := newI420Converter(w, h).convert(f)
	if err != nil {
		t.Fatal(err)
	}
	assertSamePicture(t, got, want)
}

func TestConvertRejectsShortFrames(t *testing.T) {
	tests := []struct {
		name string
		f    media.RawFrame
	}{
		{"YU12 short", media.RawFrame{Format: media.PixI420, Width: 16, Height: 16, Data: make([]byte, 100)}},
		{"NV12 short", media.RawFrame{Format: media.PixNV12, Width: 16, Height: 16, Data: make([]byte, 300)}},
		{"YUYV short", media.RawFrame{Format: media.PixYUYV, Width: 16, Height: 16, Data: make([]byte, 511)}},
		{"YUYV odd width", media.RawFrame{Format: media.PixYUYV, Width: 15, Height: 16, Data: make([]byte, 1024)}},
		{"stride too small", media.RawFrame{Format: media.PixI420, Width: 16, Height: 16, Stride: 8, Data: make([]byte, 1024)}},
		{"zero size", media.RawFrame{Format: media.PixI420, Data: make([]byte, 1024)}},
		{"bad JPEG", media.RawFrame{Format: media.PixMJPEG, Width: 16, Height: 16, Data: []byte{0xff, 0xd8, 0xff}}},
		{"JPEG of another size", func() media.RawFrame {
			f := syntheticFrame(t, media.PixMJPEG, 32, 16, 0)
			f.Width = 16
			return f
		}()},
		{"H264 is not raw", media.RawFrame{Format: media.PixH264, Width: 16, Height: 16, Data: make([]byte, 1024)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := newI420Converter(16, 16).convert(tt.f); err == nil {
				t.Fatal("accepted a bad frame")
			}
		})
	}
}

func TestConvertScales(t *testing.T) {
	src := gradientI420(64, 48, 0)
	f := media.RawFrame{Format: media.PixI420, Width: 64, Height: 48, Data: packI420(src)}
	got, err := newI420Converter(32, 24).convert(f)
	if err != nil {
		t.Fatal(err)
	}
	if got.Rect.Dx() != 32 || got.Rect.Dy() != 24 {
		t.Fatalf("size %v", got.Rect)
	}
	// Nearest neighbour halving picks every other sample.
	for _, p := range []image.Point{{0, 0}, {5, 7}, {31, 23}} {
		if g, w := got.Y[got.YOffset(p.X, p.Y)], src.Y[src.YOffset(2*p.X, 2*p.Y)]; g != w {
			t.Errorf("Y at %v = %d, want %d", p, g, w)
		}
		if g, w := got.Cb[got.COffset(p.X, p.Y)], src.Cb[src.COffset(2*p.X, 2*p.Y)]; g != w {
			t.Errorf("Cb at %v = %d, want %d", p, g, w)
		}
	}
}

func assertSamePicture(t *testing.T, got, want *image.YCbCr) {
	t.Helper()
	w, h := want.Rect.Dx(), want.Rect.Dy()
	if got.Rect.Dx() != w || got.Rect.Dy() != h || got.SubsampleRatio != image.YCbCrSubsampleRatio420 {
		t.Fatalf("got %v %v, want %v 4:2:0", got.Rect, got.SubsampleRatio, want.Rect)
	}
	for y := 0; y < h; y++ {
		if !bytes.Equal(got.Y[y*got.YStride:y*got.YStride+w], want.Y[y*want.YStride:y*want.YStride+w]) {
			t.Fatalf("Y row %d differs", y)
		}
	}
	for y := 0; y < h/2; y++ {
		gc, wc := got.Cb[y*got.CStride:y*got.CStride+w/2], want.Cb[y*want.CStride:y*want.CStride+w/2]
		gr, wr := got.Cr[y*got.CStride:y*got.CStride+w/2], want.Cr[y*want.CStride:y*want.CStride+w/2]
		if !bytes.Equal(gc, wc) || !bytes.Equal(gr, wr) {
			t.Fatalf("chroma row %d differs", y)
		}
	}
}

func BenchmarkConvertYUYV_720p(b *testing.B) {
	f := syntheticFrame(b, media.PixYUYV, 1280, 720, 0)
	c := newI420Converter(1280, 720)
	b.SetBytes(int64(len(f.Data)))
	for b.Loop() {
		if _, err := c.convert(f); err != nil {
			b.Fatal(err)
		}
	}
}
