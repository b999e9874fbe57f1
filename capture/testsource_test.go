package capture

import (
	"bytes"
	"context"
	"errors"
	"image/jpeg"
	"testing"
	"time"

	"github.com/camagent/camagent/internal/base/media"
)

func openTestSource(t testing.TB, cfg Config, clock Clock) *testSource {
	t.Helper()
	s, err := newTestSource(cfg, clock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestTestSourceFormats(t *testing.T) {
	tests := []struct {
		pixel      media.PixelFormat
		w, h       int
		wantPixel  media.PixelFormat
		wantLen    int
		wantStride int
	}{
		{"", 320, 240, media.PixI420, 320*240 + 2*160*120, 320},
		{media.PixI420, 33, 17, media.PixI420, 33*17 + 2*17*9, 33},
		{media.PixNV12, 640, 360, media.PixNV12, 640*360 + 2*320*180, 640},
		{media.PixNV12, 33, 17, media.PixNV12, 33*17 + 2*17*9, 33},
		{media.PixYUYV, 320, 240, media.PixYUYV, 320 * 240 * 2, 640},
		{media.PixYUYV, 33, 17, media.PixYUYV, 68 * 17, 68}, // odd width padded to a pair
		{media.PixMJPEG, 320, 240, media.PixMJPEG, -1, 0},
		{media.PixMJPEG, 2, 2, media.PixMJPEG, -1, 0},
	}
	for _, tt := range tests {
		t.Run(string(tt.wantPixel)+"/"+Format{Width: tt.w, Height: tt.h}.String(), func(t *testing.T) {
			s := openTestSource(t, Config{Pixel: tt.pixel, Width: tt.w, Height: tt.h}, newFakeClock(true))
			want := Format{Pixel: tt.wantPixel, Width: tt.w, Height: tt.h, FPS: DefaultFPS}
			if s.Format() != want {
				t.Errorf("Format = %v, want %v", s.Format(), want)
			}
			f, err := s.Read(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if f.Format != tt.wantPixel || f.Width != tt.w || f.Height != tt.h || f.Stride != tt.wantStride {
				t.Errorf("frame %s %dx%d stride %d, want %s %dx%d stride %d",
					f.Format, f.Width, f.Height, f.Stride, tt.wantPixel, tt.w, tt.h, tt.wantStride)
			}
			if tt.wantLen >= 0 && len(f.Data) != tt.wantLen {
				t.Errorf("len(Data) = %d, want %d", len(f.Data), tt.wantLen)
			}
			if tt.wantPixel == media.PixMJPEG {
				img, err := jpeg.Decode(bytes.NewReader(f.Data))
				if err != nil {
					t.Fatalf("MJPEG frame does not decode: %v", err)
				}
				if b := img.Bounds(); b.Dx() != tt.w || b.Dy() != tt.h {
					t.Errorf("JPEG is %v, want %dx%d", b, tt.w, tt.h)
				}
			}
		})
	}
}

func TestTestSourceRejects(t *testing.T) {
	tests := []Config{
		{Pixel: media.PixH264},
		{Pixel: "RGB3"},
		{Width: maxDimension + 2, Height: 100},
	}
	for _, cfg := range tests {
		if _, err := newTestSource(cfg, newFakeClock(true)); err == nil {
			t.Errorf("newTestSource(%+v) succeeded", cfg)
		}
	}
}

// TestTestSourcePacing reads frames with a reader that spends the given
// time between reads, and checks the frame numbers and due times.
func TestTestSourcePacing(t *testing.T) {
	const fps = 25 // 40 ms per frame
	interval := time.Second / fps
	tests := []struct {
		name    string
		busy    []time.Duration // reader's time between reads
		wantSeq []uint64
	}{
		{"idle reader", []time.Duration{0, 0, 0, 0}, []uint64{0, 1, 2, 3, 4}},
		{"busy but in time", []time.Duration{39 * time.Millisecond, 10 * time.Millisecond, 25 * time.Millisecond}, []uint64{0, 1, 2, 3}},
		{"late by a frame and a half", []time.Duration{100 * time.Millisecond, 0}, []uint64{0, 2, 3}},
		{"late by exactly one interval", []time.Duration{80 * time.Millisecond}, []uint64{0, 2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := newFakeClock(true)
			start := clock.Now()
			s := openTestSource(t, Config{Width: 64, Height: 48, FPS: fps}, clock)
			var gotSeq []uint64
			for i := 0; i <= len(tt.busy); i++ {
				if i > 0 {
					clock.Advance(tt.busy[i-1])
				}
				f, err := s.Read(context.Background())
				if err != nil {
					t.Fatal(err)
				}
				gotSeq = append(gotSeq, f.Seq)
				// Due times sit exactly on the grid: no drift.
				if due := start.Add(time.Duration(f.Seq) * interval); !f.Captured.Equal(due) {
					t.Errorf("frame %d captured %v, want %v", f.Seq, f.Captured.Sub(start), due.Sub(start))
				}
				if f.Timestamp != f.Captured.Sub(start) {
					t.Errorf("frame %d Timestamp %v, want %v", f.Seq, f.Timestamp, f.Captured.Sub(start))
				}
				if now := clock.Now(); now.Before(f.Captured) {
					t.Errorf("frame %d returned %v before its due time", f.Seq, f.Captured.Sub(now))
				}
			}
			if !equalSeqs(gotSeq, tt.wantSeq) {
				t.Errorf("Seq = %v, want %v", gotSeq, tt.wantSeq)
			}
		})
	}
}

func equalSeqs(a, b []uint64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestTestSourceUnpaced(t *testing.T) {
	clock := newFakeClock(true)
	s := openTestSource(t, Config{Width: 64, Height: 48, Unpaced: true}, clock)
	for want := uint64(0); want < 5; want++ {
		f, err := s.Read(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if f.Seq != want || !f.Captured.Equal(clock.Now()) {
			t.Fatalf("frame %d captured %v, want Seq %d at now", f.Seq, f.Captured, want)
		}
	}
	if len(clock.sleeps) != 0 {
		t.Errorf("unpaced source waited: %v", clock.sleeps)
	}
}

// TestTestSourceDrawsClock reads the label back out of the output frames.
func TestTestSourceDrawsClock(t *testing.T) {
	for _, size := range [][2]int{{1280, 720}, {320, 240}, {80, 60}} {
		w, h := size[0], size[1]
		t.Run(Format{Width: w, Height: h}.String(), func(t *testing.T) {
			clock := newFakeClock(true)
			s := openTestSource(t, Config{Width: w, Height: h, FPS: 30}, clock)
			var prev media.RawFrame
			for i := 0; i < 3; i++ {
				f, err := s.Read(context.Background())
				if err != nil {
					t.Fatal(err)
				}
				luma := plane{pix: f.Data[:w*h], w: w, h: h, stride: w}
				x, y := s.labelOrigin()
				if got, want := readText(luma, x, y, s.scale, labelChars, 128), clockText(f.Captured); got != want {
					t.Errorf("frame %d shows time %q, want %q", f.Seq, got, want)
				}
				if got, want := readText(luma, x, y+cellH*s.scale, s.scale, 8, 128), frameText(f.Seq); got != want {
					t.Errorf("frame %d shows number %q, want %q", f.Seq, got, want)
				}
				if i > 0 && bytes.Equal(prev.Data, f.Data) {
					t.Errorf("frame %d is identical to the previous one", f.Seq)
				}
				prev = f
			}
		})
	}
}

func TestTestSourceBoxMoves(t *testing.T) {
	s := openTestSource(t, Config{Width: 640, Height: 480}, newFakeClock(true))
	seen := map[rect]bool{}
	for seq := uint64(0); seq < 400; seq++ {
		r := s.boxAt(seq)
		if r.x0 < 0 || r.y0 < 0 || r.x1 > 640 || r.y1 > 480 || r.x0%2 != 0 || r.y0%2 != 0 {
			t.Fatalf("frame %d: box %v outside the picture or not chroma aligned", seq, r)
		}
		seen[r] = true
	}
	if len(seen) < 100 {
		t.Errorf("box took only %d positions in 400 frames", len(seen))
	}
}

func TestTestSourceCancelAndClose(t *testing.T) {
	clock := newFakeClock(false) // timers never fire on their own
	s := openTestSource(t, Config{Width: 64, Height: 48}, clock)
	if _, err := s.Read(context.Background()); err != nil { // frame 0 is due at once
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	res := readAsync(ctx, s)
	clock.expectArmed(t, 33333333*time.Nanosecond) // 1/30 s
	cancel()
	if got := await(t, res); !errors.Is(got.err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", got.err)
	}

	res = readAsync(context.Background(), s)
	<-clock.armed
	s.Close()
	if got := await(t, res); !errors.Is(got.err, ErrClosed) {
		t.Fatalf("err = %v, want ErrClosed", got.err)
	}
}

func TestClockAndFrameText(t *testing.T) {
	tests := []struct {
		got, want string
	}{
		{clockText(time.Date(2026, 1, 2, 3, 4, 5, 678_900_000, time.UTC)), "03:04:05.678"},
		{clockText(time.Date(2026, 1, 2, 23, 59, 59, 999_999_999, time.FixedZone("X", 3600))), "22:59:59.999"},
		{frameText(0), "#0000000"},
		{frameText(1234), "#0001234"},
		{frameText(12_345_678), "#2345678"},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("got %q, want %q", tt.got, tt.want)
		}
	}
}

func TestFontRoundTrip(t *testing.T) {
	p := newPlane(200, 20)
	const text = "0123456789:.# "
	drawText(p, 1, 2, 2, text[:10], 255)
	if got := readText(p, 1, 2, 2, 10, 128); got != text[:10] {
		t.Errorf("read %q, want %q", got, text[:10])
	}
	for c := range font {
		for d := range font {
			if c != d && font[c] == font[d] {
				t.Errorf("glyphs %q and %q are the same", c, d)
			}
		}
	}
	// Clipped drawing must not panic.
	drawText(p, -7, -3, 5, text, 255)
	drawText(p, 190, 15, 9, text, 255)
}

func BenchmarkTestSource720p(b *testing.B) {
	for _, pix := range []media.PixelFormat{media.PixI420, media.PixNV12, media.PixYUYV, media.PixMJPEG} {
		b.Run(string(pix), func(b *testing.B) {
			s := openTestSource(b, Config{Pixel: pix, Width: 1280, Height: 720, Unpaced: true}, systemClock{})
			ctx := context.Background()
			b.ReportAllocs()
			var bytes int64
			for b.Loop() {
				f, err := s.Read(ctx)
				if err != nil {
					b.Fatal(err)
				}
				bytes = int64(len(f.Data))
			}
			b.SetBytes(bytes)
		})
	}
}

// BenchmarkTestSourceDraw720p measures the per-frame drawing alone (box
// and label), without the copy into a fresh output buffer.
func BenchmarkTestSourceDraw720p(b *testing.B) {
	s := openTestSource(b, Config{Width: 1280, Height: 720, Unpaced: true}, systemClock{})
	now := time.Now()
	var seq uint64
	b.ReportAllocs()
	for b.Loop() {
		s.draw(seq, now)
		seq++
	}
}

// TestTestSourceRecycle: a buffer handed back is filled with a later frame
// (same backing array), and that frame is whole: it matches a source that
// never recycled.
func TestTestSourceRecycle(t *testing.T) {
	for _, pix := range []media.PixelFormat{media.PixI420, media.PixNV12} {
		t.Run(string(pix), func(t *testing.T) {
			cfg := Config{Width: 64, Height: 48, Unpaced: true, Pixel: pix}
			clockA, clockB := newFakeClock(true), newFakeClock(true)
			recycling, plain := openTestSource(t, cfg, clockA), openTestSource(t, cfg, clockB)
			var src Source = recycling
			var recycled []byte
			for i := 0; i < 4; i++ {
				f, err := recycling.Read(context.Background())
				if err != nil {
					t.Fatal(err)
				}
				want, err := plain.Read(context.Background())
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(f.Data, want.Data) {
					t.Fatalf("frame %d differs from the same frame without recycling", i)
				}
				if i > 0 && &f.Data[0] != &recycled[0] {
					t.Fatalf("frame %d did not reuse the recycled buffer", i)
				}
				recycled = f.Data
				Recycle(src, f.Data)
			}
		})
	}
}
