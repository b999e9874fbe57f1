package encode

import (
	"bytes"
	"image/jpeg"
	"testing"
	"time"

	"github.com/camagent/camagent/internal/base/h264"
	"github.com/camagent/camagent/internal/base/media"
	"github.com/camagent/camagent/internal/base/media/mediatest"
)

func TestNewRejects(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		in   media.PixelFormat
		w, h int
	}{
		{"unknown codec", Config{Codec: "vp8"}, media.PixI420, 64, 48},
		{"unknown format", Config{Codec: media.CodecMJPEG}, "RGB3", 64, 48},
		{"zero source size", Config{Codec: media.CodecMJPEG}, media.PixI420, 0, 48},
		{"H264 to MJPEG", Config{Codec: media.CodecMJPEG}, media.PixH264, 64, 48},
		{"passthrough scaling", Config{Codec: media.CodecH264, Width: 32, Height: 24}, media.PixH264, 64, 48},
		{"MJPEG passthrough scaling", Config{Codec: media.CodecMJPEG, Width: 32, Height: 24}, media.PixMJPEG, 64, 48},
		{"odd H264 size", Config{Codec: media.CodecH264, Width: 63, Height: 48}, media.PixI420, 64, 48},
		{"half a size", Config{Codec: media.CodecMJPEG, Width: 32}, media.PixI420, 64, 48},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if enc, err := New(tt.cfg, tt.in, tt.w, tt.h); err == nil {
				enc.Close()
				t.Fatal("New accepted the configuration")
			}
		})
	}
}

func TestMJPEGEncoder(t *testing.T) {
	tests := []struct {
		in         media.PixelFormat
		outW, outH int
	}{
		{media.PixI420, 0, 0},
		{media.PixNV12, 0, 0},
		{media.PixYUYV, 0, 0},
		{media.PixI420, 80, 60},
		{media.PixMJPEG, 0, 0}, // passthrough
	}
	const w, h = 160, 120
	for _, tt := range tests {
		t.Run(string(tt.in), func(t *testing.T) {
			enc, err := New(Config{Codec: media.CodecMJPEG, Width: tt.outW, Height: tt.outH}, tt.in, w, h)
			if err != nil {
				t.Fatal(err)
			}
			defer enc.Close()
			wantW, wantH := w, h
			if tt.outW != 0 {
				wantW, wantH = tt.outW, tt.outH
			}
			for n := range 3 {
				f := syntheticFrame(t, tt.in, w, h, n)
				aus, err := enc.Encode(f)
				if err != nil {
					t.Fatal(err)
				}
				if len(aus) != 1 || !aus[0].Key || aus[0].Codec != media.CodecMJPEG {
					t.Fatalf("frame %d: got %+v", n, aus)
				}
				if want := time.Duration(n) * frameInterval; aus[0].PTS != want || !aus[0].Captured.Equal(f.Captured) {
					t.Errorf("frame %d: PTS %v captured %v, want %v %v", n, aus[0].PTS, aus[0].Captured, want, f.Captured)
				}
				img, err := jpeg.Decode(bytes.NewReader(aus[0].Data))
				if err != nil {
					t.Fatalf("frame %d: %v", n, err)
				}
				if b := img.Bounds(); b.Dx() != wantW || b.Dy() != wantH {
					t.Fatalf("frame %d: JPEG is %v, want %dx%d", n, b, wantW, wantH)
				}
			}
			if tr := enc.Track(); tr.Codec != media.CodecMJPEG || tr.Width != wantW || tr.Height != wantH || tr.FPS != 30 {
				t.Errorf("track %+v", tr)
			}
		})
	}
}

func TestMJPEGPassthroughRejectsGarbage(t *testing.T) {
	enc, err := New(Config{Codec: media.CodecMJPEG}, media.PixMJPEG, 64, 48)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := enc.Encode(media.RawFrame{Format: media.PixMJPEG, Data: []byte{0, 1, 2}}); err == nil {
		t.Fatal("accepted a non-JPEG frame")
	}
	enc.Close()
	if _, err := enc.Encode(syntheticFrame(t, media.PixMJPEG, 64, 48, 0)); err != ErrClosed {
		t.Fatalf("after Close: %v, want ErrClosed", err)
	}
}

// dropTypes removes NAL units of the given types from an access unit.
func dropTypes(t testing.TB, au []byte, types ...h264.NALUType) []byte {
	nalus, err := h264.SplitAnnexB(au)
	if err != nil {
		t.Fatal(err)
	}
	var kept [][]byte
	for _, n := range nalus {
		drop := false
		for _, typ := range types {
			drop = drop || h264.Type(n) == typ
		}
		if !drop {
			kept = append(kept, n)
		}
	}
	return h264.JoinAnnexB(kept)
}

func TestH264Passthrough(t *testing.T) {
	aus := mediatest.Stream100x60.Units()
	sps, pps := h264.ParameterSets(aus[0])
	headersOnly := h264.JoinAnnexB([][]byte{sps, pps})
	// A camera that sends a P frame first, its headers in a buffer of their
	// own, and no headers with later IDRs.
	input := [][]byte{aus[1], headersOnly, dropTypes(t, aus[0], h264.NALUTypeSPS, h264.NALUTypePPS)}
	for _, au := range aus[1:] {
		input = append(input, dropTypes(t, au, h264.NALUTypeSPS, h264.NALUTypePPS))
	}

	enc, err := New(Config{Codec: media.CodecH264}, media.PixH264, 100, 60)
	if err != nil {
		t.Fatal(err)
	}
	defer enc.Close()
	if tr := enc.Track(); tr.SPS != nil {
		t.Fatal("track has an SPS before any frame")
	}
	var out []media.AccessUnit
	for i, data := range input {
		got, err := enc.Encode(media.RawFrame{Format: media.PixH264, Width: 100, Height: 60, Data: data, Timestamp: time.Duration(i) * frameInterval})
		if err != nil {
			t.Fatalf("input %d: %v", i, err)
		}
		out = append(out, got...)
	}
	if len(out) != len(aus) {
		t.Fatalf("got %d access units, want %d (leading P frame and header buffer dropped)", len(out), len(aus))
	}
	for i, au := range out {
		wantKey := i%6 == 0
		if au.Key != wantKey || h264.IsKeyFrame(au.Data) != wantKey {
			t.Errorf("AU %d: Key %v, want %v", i, au.Key, wantKey)
		}
		s, p := h264.ParameterSets(au.Data)
		if hasPS := s != nil && p != nil; hasPS != wantKey {
			t.Errorf("AU %d: carries SPS/PPS = %v, want %v", i, hasPS, wantKey)
		}
		if want := time.Duration(i+2) * frameInterval; au.PTS != want {
			t.Errorf("AU %d: PTS %v, want %v", i, au.PTS, want)
		}
	}
	tr := enc.Track()
	if !bytes.Equal(tr.SPS, sps) || !bytes.Equal(tr.PPS, pps) || tr.Width != 100 || tr.Height != 60 {
		t.Errorf("track %+v", tr)
	}
	if _, err := enc.Encode(media.RawFrame{Format: media.PixH264, Data: []byte{1, 2, 3}}); err == nil {
		t.Error("accepted garbage")
	}
}

func TestPTSClockNeverGoesBack(t *testing.T) {
	var c ptsClock
	in := []time.Duration{10 * time.Second, 10*time.Second + 33*time.Millisecond, 2 * time.Second, 10*time.Second + 100*time.Millisecond}
	want := []time.Duration{0, 33 * time.Millisecond, 33 * time.Millisecond, 100 * time.Millisecond}
	for i := range in {
		if got := c.pts(in[i]); got != want[i] {
			t.Errorf("pts(%v) = %v, want %v", in[i], got, want[i])
		}
	}
}

func BenchmarkEncodeMJPEG_480p(b *testing.B) {
	benchmarkEncode(b, Config{Codec: media.CodecMJPEG}, media.PixI420, 640, 480)
}

func BenchmarkEncodeMJPEG_720p(b *testing.B) {
	benchmarkEncode(b, Config{Codec: media.CodecMJPEG}, media.PixI420, 1280, 720)
}

// benchmarkEncode reports the cost of one Encode call on a cycle of 30
// prepared frames.
func benchmarkEncode(b *testing.B, cfg Config, in media.PixelFormat, w, h int) {
	enc, err := New(cfg, in, w, h)
	if err != nil {
		b.Fatal(err)
	}
	defer enc.Close()
	frames := make([]media.RawFrame, 30)
	for i := range frames {
		frames[i] = syntheticFrame(b, in, w, h, i)
	}
	var bytesOut int
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		aus, err := enc.Encode(frames[i%len(frames)])
		if err != nil {
			b.Fatal(err)
		}
		for _, au := range aus {
			bytesOut += len(au.Data)
		}
		i++
	}
	b.ReportMetric(float64(bytesOut)/float64(i), "B/frame")
}

func hasParameterSets(au []byte) bool {
	sps, pps := h264.ParameterSets(au)
	return sps != nil && pps != nil
}
