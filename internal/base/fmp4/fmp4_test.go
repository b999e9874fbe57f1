package fmp4

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/camagent/camagent/internal/base/ffprobe"
	"github.com/camagent/camagent/internal/base/media/mediatest"

	"github.com/Eyevinn/mp4ff/mp4"

	"github.com/camagent/camagent/internal/base/h264"
	"github.com/camagent/camagent/internal/base/media"
)

// The test stream (mediatest): 160x120, 30 fps, IDR every 45 frames, AUD
// and SPS/PPS before each IDR, 300 frames.
var testStream = mediatest.Stream160x120

const (
	testW, testH = 160, 120
	testGOP      = 45 // IDR period of the test stream
	frameDur     = time.Second / 30
)

// testAccessUnits is the test stream's 300 frames with PTS at 30 fps.
func testAccessUnits() []media.AccessUnit {
	return testStream.AccessUnits(testStream.Frames, time.Time{})
}

// firstSlice returns the first slice NAL unit of an Annex-B access unit.
func firstSlice(t testing.TB, au []byte) []byte {
	t.Helper()
	nalus, err := h264.SplitAnnexB(au)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range nalus {
		if h264.IsVCL(n) {
			return n
		}
	}
	t.Fatal("no slice")
	return nil
}

// writeAll writes aus through a Writer and returns the file and the number
// of fragments reported by AfterFragment.
func writeAll(t *testing.T, track media.Track, aus []media.AccessUnit, opts Options) ([]byte, int) {
	t.Helper()
	var buf bytes.Buffer
	fragments := 0
	opts.AfterFragment = func() error { fragments++; return nil }
	w, err := NewWriter(&buf, track, opts)
	if err != nil {
		t.Fatal(err)
	}
	for i, au := range aus {
		if err := w.WriteAccessUnit(au); err != nil {
			t.Fatalf("AU %d: %v", i, err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes(), fragments
}

// parsedSample is one sample read back with mp4ff.
type parsedSample struct {
	mp4.FullSample
	fragment int
}

func parse(t *testing.T, file []byte) (*mp4.File, []parsedSample) {
	t.Helper()
	f, err := mp4.DecodeFile(bytes.NewReader(file))
	if err != nil {
		t.Fatalf("mp4ff cannot decode the file: %v", err)
	}
	if f.Init == nil {
		t.Fatal("no init segment")
	}
	trex := f.Init.Moov.Mvex.Trex
	var samples []parsedSample
	n := 0
	for _, seg := range f.Segments {
		for _, frag := range seg.Fragments {
			fs, err := frag.GetFullSamples(trex)
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range fs {
				samples = append(samples, parsedSample{s, n})
			}
			n++
		}
	}
	return f, samples
}

func TestWriterRoundTrip(t *testing.T) {
	aus := testAccessUnits()
	if len(aus) != 300 {
		t.Fatalf("test stream has %d access units, want 300", len(aus))
	}
	file, fragments := writeAll(t, testStream.Track(), aus, Options{})
	f, samples := parse(t, file)

	if got := f.Init.Moov.Trak.Mdia.Mdhd.Timescale; got != Timescale {
		t.Errorf("timescale %d", got)
	}
	avc1 := f.Init.Moov.Trak.Mdia.Minf.Stbl.Stsd.AvcX
	if avc1 == nil || avc1.Width != testW || avc1.Height != testH {
		t.Fatalf("avc1 sample entry %+v", avc1)
	}
	if len(samples) != len(aus) {
		t.Fatalf("%d samples, want %d", len(samples), len(aus))
	}
	// Fragments: a new one at each IDR and after at most 1 s (30 frames),
	// so each of the six 45-frame groups splits into 30 + 15, and the last,
	// 30-frame group fits in one.
	if want := 6*2 + 1; fragments != want {
		t.Errorf("%d fragments, want %d", fragments, want)
	}
	for i, s := range samples {
		if want := uint64(i) * 3000; s.DecodeTime != want || s.Dur != 3000 {
			t.Fatalf("sample %d: decode time %d dur %d, want %d 3000", i, s.DecodeTime, s.Dur, want)
		}
		if key := i%testGOP == 0; mp4.IsSyncSampleFlags(s.Flags) != key {
			t.Errorf("sample %d: sync %v, want %v", i, !key, key)
		}
		nalus, err := h264.SplitAVCC(s.Data)
		if err != nil {
			t.Fatalf("sample %d: %v", i, err)
		}
		for _, n := range nalus {
			typ := h264.Type(n)
			if typ == h264.NALUTypeAUD {
				t.Fatalf("sample %d carries an access unit delimiter", i)
			}
			// avc3: parameter sets stay in band, on key samples only.
			if (typ == h264.NALUTypeSPS || typ == h264.NALUTypePPS) && i%testGOP != 0 {
				t.Fatalf("non-key sample %d carries NAL type %v", i, typ)
			}
		}
		if i%testGOP == 0 && i > 0 && samples[i-1].fragment == s.fragment {
			t.Errorf("key sample %d does not start a fragment", i)
		}
	}

	path := filepath.Join(t.TempDir(), "out.mp4")
	if err := os.WriteFile(path, file, 0o644); err != nil {
		t.Fatal(err)
	}
	probeMP4(t, path, len(aus), 10*time.Second)
}

// probeMP4 checks the file with ffprobe when it is installed.
func probeMP4(t *testing.T, path string, frames int, duration time.Duration) {
	t.Helper()
	if !ffprobe.Available() {
		t.Log("ffprobe not installed; skipping the external check")
		return
	}
	v, err := ffprobe.Probe(path)
	if err != nil {
		t.Fatal(err)
	}
	if v.Codec != "h264" || v.Width != testW || v.Height != testH || v.Frames != frames {
		t.Fatalf("ffprobe: %+v, want h264 %dx%d, %d frames", v, testW, testH, frames)
	}
	if v.Duration < duration-100*time.Millisecond || v.Duration > duration+100*time.Millisecond {
		t.Fatalf("ffprobe duration %v, want about %v", v.Duration, duration)
	}
}

func TestWriterDefersInitUntilKeyFrame(t *testing.T) {
	aus := testAccessUnits()
	var buf bytes.Buffer
	w, err := NewWriter(&buf, media.Track{Codec: media.CodecH264}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if buf.Len() != 0 {
		t.Fatal("init segment written without parameter sets")
	}
	// Join mid-group: frames 40-44 are skipped, 45 is the IDR.
	for _, au := range aus[40:100] {
		if err := w.WriteAccessUnit(au); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if w.Skipped() != 5 {
		t.Errorf("skipped %d, want 5", w.Skipped())
	}
	_, samples := parse(t, buf.Bytes())
	if len(samples) != 55 || !mp4.IsSyncSampleFlags(samples[0].Flags) {
		t.Fatalf("%d samples, first sync %v", len(samples), samples[0].Flags)
	}
	if samples[0].DecodeTime != 45*3000 {
		t.Errorf("first decode time %d, want %d", samples[0].DecodeTime, 45*3000)
	}
}

func TestWriterFlushMidStream(t *testing.T) {
	aus := testAccessUnits()
	var buf bytes.Buffer
	w, err := NewWriter(&buf, testStream.Track(), Options{MaxFragmentDuration: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	for _, au := range aus[:10] {
		if err := w.WriteAccessUnit(au); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	// What is on the "disk" now is a complete, playable file of 10 frames.
	_, samples := parse(t, bytes.Clone(buf.Bytes()))
	if len(samples) != 10 || samples[9].Dur != 3000 {
		t.Fatalf("after Flush: %d samples, last dur %d", len(samples), samples[len(samples)-1].Dur)
	}
	if err := w.Flush(); err != nil { // nothing pending: a no-op
		t.Fatal(err)
	}
	for _, au := range aus[10:20] {
		if err := w.WriteAccessUnit(au); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	_, samples = parse(t, buf.Bytes())
	if len(samples) != 20 {
		t.Fatalf("%d samples, want 20", len(samples))
	}
	for i := 1; i < len(samples); i++ {
		if samples[i].DecodeTime != samples[i-1].DecodeTime+uint64(samples[i-1].Dur) {
			t.Fatalf("sample %d: timeline gap or overlap", i)
		}
	}
	if err := w.WriteAccessUnit(aus[20]); !errors.Is(err, ErrClosed) {
		t.Fatalf("after Close: %v", err)
	}
}

func TestWriterRepeatedTimestamps(t *testing.T) {
	aus := testAccessUnits()[:6]
	for i := range aus {
		aus[i].PTS = time.Duration(i/3) * frameDur // 0 0 0 33ms 33ms 33ms
	}
	file, _ := writeAll(t, testStream.Track(), aus, Options{})
	_, samples := parse(t, file)
	for i, s := range samples {
		if s.Dur == 0 {
			t.Fatalf("sample %d has zero duration", i)
		}
		if i > 0 && s.DecodeTime <= samples[i-1].DecodeTime {
			t.Fatalf("sample %d: decode time not increasing", i)
		}
	}
}

func TestWriterErrors(t *testing.T) {
	aus := testAccessUnits()
	track := testStream.Track()
	// An SPS for another picture size (mediatest's 100x60 stream).
	otherSPS := mediatest.Stream100x60.Track().SPS
	changed := h264.JoinAnnexB([][]byte{otherSPS, track.PPS, firstSlice(t, aus[0].Data)})

	tests := []struct {
		name  string
		track media.Track
		aus   []media.AccessUnit
		want  error
	}{
		{"MJPEG track", media.Track{Codec: media.CodecMJPEG}, nil, ErrUnsupportedCodec},
		{"MJPEG access unit", track, []media.AccessUnit{{Codec: media.CodecMJPEG, Data: []byte{0xff, 0xd8}, Key: true}}, ErrUnsupportedCodec},
		{"no parameter sets", media.Track{Codec: media.CodecH264},
			[]media.AccessUnit{{Codec: media.CodecH264, Key: true, Data: h264.JoinAnnexB([][]byte{firstSlice(t, aus[0].Data)})}}, ErrNoParameterSets},
		{"parameter sets change", track, []media.AccessUnit{aus[0], {Codec: media.CodecH264, Key: true, Data: changed, PTS: frameDur}}, ErrParameterSetsChanged},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w, err := NewWriter(&bytes.Buffer{}, tt.track, Options{})
			for _, au := range tt.aus {
				if err != nil {
					break
				}
				err = w.WriteAccessUnit(au)
			}
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestAfterFragmentError(t *testing.T) {
	aus := testAccessUnits()
	boom := errors.New("fsync failed")
	w, err := NewWriter(&bytes.Buffer{}, testStream.Track(), Options{AfterFragment: func() error { return boom }})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.WriteAccessUnit(aus[0]); err != nil {
		t.Fatal(err)
	}
	if err := w.Flush(); !errors.Is(err, boom) {
		t.Fatalf("Flush: %v, want %v", err, boom)
	}
}

func BenchmarkWriteAccessUnit(b *testing.B) {
	aus := testAccessUnits()
	w, err := NewWriter(discard{}, testStream.Track(), Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		au := aus[i%len(aus)]
		au.PTS = time.Duration(i) * frameDur
		if err := w.WriteAccessUnit(au); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }
