//go:build cgo

package encode

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/camagent/camagent/internal/base/ffprobe"

	"github.com/camagent/camagent/internal/base/h264"
	"github.com/camagent/camagent/internal/base/media"
	"github.com/camagent/camagent/internal/base/testtier"
)

// encodeAll feeds n synthetic frames to enc and returns all output.
func encodeAll(t testing.TB, enc Encoder, in media.PixelFormat, w, h, n int) []media.AccessUnit {
	t.Helper()
	var out []media.AccessUnit
	for i := range n {
		aus, err := enc.Encode(syntheticFrame(t, in, w, h, i))
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if len(aus) != 1 {
			t.Fatalf("frame %d: %d access units, want 1", i, len(aus))
		}
		out = append(out, aus...)
	}
	return out
}

// checkH264 verifies the structure of an encoded sequence: every AU parses,
// key frames come every keyInt frames and carry SPS and PPS of the right
// size.
func checkH264(t *testing.T, aus []media.AccessUnit, keyInt, w, h int) {
	t.Helper()
	for i, au := range aus {
		if len(au.Data) == 0 || au.Codec != media.CodecH264 {
			t.Fatalf("AU %d: empty or wrong codec %q", i, au.Codec)
		}
		nalus, err := h264.SplitAnnexB(au.Data)
		if err != nil {
			t.Fatalf("AU %d: %v", i, err)
		}
		wantKey := i%keyInt == 0
		if au.Key != wantKey || h264.HasType(nalus, h264.NALUTypeIDR) != wantKey {
			t.Fatalf("AU %d: Key %v, want %v", i, au.Key, wantKey)
		}
		if !wantKey {
			continue
		}
		sps, pps := h264.FindParameterSets(nalus)
		if sps == nil || pps == nil {
			t.Fatalf("key AU %d lacks SPS/PPS", i)
		}
		if gw, gh, err := h264.ParseSize(sps); err != nil || gw != w || gh != h {
			t.Fatalf("key AU %d: SPS size %dx%d (%v), want %dx%d", i, gw, gh, err, w, h)
		}
	}
}

func TestSoftwareH264(t *testing.T) {
	testtier.Slow(t, "the cgo openh264 encoder")
	if !SoftwareH264Available() {
		t.Fatal("cgo build without software H.264")
	}
	const w, h, keyInt, frames = 320, 240, 15, 60
	enc, err := New(Config{Codec: media.CodecH264, KeyframeInterval: keyInt, Bitrate: 500_000}, media.PixI420, w, h)
	if err != nil {
		t.Fatal(err)
	}
	defer enc.Close()
	aus := encodeAll(t, enc, media.PixI420, w, h, frames)
	checkH264(t, aus, keyInt, w, h)
	for i, au := range aus {
		if want := syntheticFrame(t, media.PixI420, w, h, i); au.PTS != want.Timestamp-syntheticFrame(t, media.PixI420, w, h, 0).Timestamp || !au.Captured.Equal(want.Captured) {
			t.Fatalf("AU %d: PTS %v, captured %v", i, au.PTS, au.Captured)
		}
	}
	tr := enc.Track()
	if tr.Codec != media.CodecH264 || tr.Width != w || tr.Height != h || tr.SPS == nil || tr.PPS == nil {
		t.Fatalf("track %+v", tr)
	}

	path := filepath.Join(t.TempDir(), "out.h264")
	var stream []byte
	for _, au := range aus {
		stream = append(stream, au.Data...)
	}
	if err := os.WriteFile(path, stream, 0o644); err != nil {
		t.Fatal(err)
	}
	probeH264(t, path, w, h, frames)
}

// probeH264 checks a raw H.264 file with ffprobe when it is installed.
func probeH264(t *testing.T, path string, w, h, frames int) {
	t.Helper()
	if !ffprobe.Available() {
		t.Log("ffprobe not installed; skipping the external check")
		return
	}
	v, err := ffprobe.Probe(path)
	if err != nil {
		t.Fatal(err)
	}
	if v.Codec != "h264" || v.Width != w || v.Height != h || v.Frames != frames {
		t.Fatalf("ffprobe: %+v, want h264 %dx%d %d frames", v, w, h, frames)
	}
}

func TestSoftwareH264Inputs(t *testing.T) {
	testtier.Slow(t, "the cgo openh264 encoder")
	tests := []struct {
		in         media.PixelFormat
		outW, outH int
	}{
		{media.PixNV12, 0, 0},
		{media.PixYUYV, 0, 0},
		{media.PixMJPEG, 0, 0},
		{media.PixI420, 96, 64}, // scaled
		{media.PixMJPEG, 96, 64},
	}
	const w, h = 160, 120
	for _, tt := range tests {
		t.Run(string(tt.in), func(t *testing.T) {
			enc, err := New(Config{Codec: media.CodecH264, KeyframeInterval: 4, Width: tt.outW, Height: tt.outH}, tt.in, w, h)
			if err != nil {
				t.Fatal(err)
			}
			defer enc.Close()
			wantW, wantH := w, h
			if tt.outW != 0 {
				wantW, wantH = tt.outW, tt.outH
			}
			checkH264(t, encodeAll(t, enc, tt.in, w, h, 9), 4, wantW, wantH)
		})
	}
}

func TestSoftwareH264ForceKeyFrame(t *testing.T) {
	testtier.Slow(t, "the cgo openh264 encoder")
	const w, h = 128, 96
	enc, err := New(Config{Codec: media.CodecH264, KeyframeInterval: 1000}, media.PixI420, w, h)
	if err != nil {
		t.Fatal(err)
	}
	defer enc.Close()
	forcer, ok := enc.(KeyFrameForcer)
	if !ok {
		t.Fatal("software encoder does not implement KeyFrameForcer")
	}
	for i := range 8 {
		if i == 5 {
			forcer.ForceKeyFrame()
		}
		aus, err := enc.Encode(syntheticFrame(t, media.PixI420, w, h, i))
		if err != nil || len(aus) != 1 {
			t.Fatalf("frame %d: %d AUs, %v", i, len(aus), err)
		}
		wantKey := i == 0 || i == 5
		if aus[0].Key != wantKey {
			t.Errorf("frame %d: Key %v, want %v", i, aus[0].Key, wantKey)
		}
		if wantKey {
			if s, p := h264.ParameterSets(aus[0].Data); s == nil || p == nil {
				t.Errorf("frame %d: forced key frame lacks SPS/PPS", i)
			}
		}
	}
	if err := enc.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := enc.Encode(syntheticFrame(t, media.PixI420, w, h, 9)); err != ErrClosed {
		t.Fatalf("after Close: %v, want ErrClosed", err)
	}
}

func BenchmarkEncodeH264_480p(b *testing.B) {
	benchmarkEncode(b, Config{Codec: media.CodecH264}, media.PixI420, 640, 480)
}

func BenchmarkEncodeH264_720p(b *testing.B) {
	benchmarkEncode(b, Config{Codec: media.CodecH264}, media.PixI420, 1280, 720)
}

func BenchmarkEncodeH264_480p_YUYV(b *testing.B) {
	benchmarkEncode(b, Config{Codec: media.CodecH264}, media.PixYUYV, 640, 480)
}

func BenchmarkEncodeH264_480p_MJPEG(b *testing.B) {
	benchmarkEncode(b, Config{Codec: media.CodecH264}, media.PixMJPEG, 640, 480)
}

// TestSoftwareH264ConcurrentControl exercises ForceKeyFrame and Track from
// another goroutine while encoding; run with -race.
func TestSoftwareH264ConcurrentControl(t *testing.T) {
	testtier.Slow(t, "the cgo openh264 encoder")
	const w, h = 64, 48
	enc, err := New(Config{Codec: media.CodecH264}, media.PixI420, w, h)
	if err != nil {
		t.Fatal(err)
	}
	defer enc.Close()
	frames := make([]media.RawFrame, 10)
	for i := range frames {
		frames[i] = syntheticFrame(t, media.PixI420, w, h, i)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 10 {
			enc.(KeyFrameForcer).ForceKeyFrame()
			_ = enc.Track()
		}
	}()
	for _, f := range frames {
		if _, err := enc.Encode(f); err != nil {
			t.Fatal(err)
		}
	}
	<-done
}
