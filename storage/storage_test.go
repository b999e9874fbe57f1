package storage

import (
	"bytes"
	"context"
	"encoding/json"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/camagent/camagent/internal/base/fmp4"
	"github.com/camagent/camagent/internal/base/h264"
	"github.com/camagent/camagent/internal/base/media"
	"github.com/camagent/camagent/internal/base/media/mediatest"
	"github.com/camagent/camagent/internal/base/testtier"
	"github.com/camagent/camagent/storage/mp4scan"
)

var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

func newRecorder(t *testing.T, cfg Config) *Recorder {
	t.Helper()
	if cfg.Dir == "" {
		cfg.Dir = t.TempDir()
	}
	if cfg.Mode == "" {
		cfg.Mode = ModeContinuous
	}
	if cfg.Now == nil {
		cfg.Now = func() time.Time { return t0 }
	}
	cfg.QueueLength = 100_000 // tests feed faster than real time
	r, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

func feed(r *Recorder, aus []media.AccessUnit) {
	r.SetTrack(mediatest.Stream160x120.Track())
	for _, au := range aus {
		r.Write(au)
	}
}

// fileFrames scans a segment and returns its sample count and duration.
func fileFrames(t *testing.T, path string) (int, time.Duration) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	info, _ := f.Stat()
	l, err := mp4scan.Scan(f, info.Size())
	if err != nil {
		t.Fatal(err)
	}
	if l.Torn != "" || l.ValidEnd != info.Size() {
		t.Fatalf("%s: torn tail (%s)", path, l.Torn)
	}
	n, end := 0, uint64(0)
	for _, fr := range l.Fragments {
		s, err := mp4scan.ReadSamples(f, fr)
		if err != nil {
			t.Fatal(err)
		}
		n += len(s)
		end = s[len(s)-1].DecodeTime + uint64(s[len(s)-1].Duration)
	}
	return n, time.Duration(end) * time.Second / fmp4.Timescale
}

func TestContinuousSegments(t *testing.T) {
	// 2.9 s: the test stream's 33333333 ns frames put the key frame
	// "at 3 s" a few ns before it.
	r := newRecorder(t, Config{SegmentDuration: 2900 * time.Millisecond, Fsync: true})
	feed(r, mediatest.Stream160x120.AccessUnits(300, t0)) // 10 s, IDR every 1.5 s
	r.Close()
	segs := r.Segments()
	if len(segs) != 4 { // cuts at the first key frame after 3 s: 0, 3, 6, 9 s
		t.Fatalf("%d segments: %+v", len(segs), segs)
	}
	total := 0
	for i, s := range segs {
		wantStart := t0.Add(time.Duration(i) * 3 * time.Second)
		if s.Start.Sub(wantStart).Abs() > time.Millisecond || s.Open {
			t.Fatalf("segment %d: %+v, want start %v", i, s, wantStart)
		}
		n, d := fileFrames(t, filepath.Join(r.Dir(), s.Name))
		if (d - s.Duration).Abs() > time.Millisecond {
			t.Fatalf("segment %s: file says %v, index %v", s.Name, d, s.Duration)
		}
		total += n
		probe(t, filepath.Join(r.Dir(), s.Name), n)
	}
	if total != 300 {
		t.Fatalf("recorded %d frames, wrote 300", total)
	}
	st := r.Stats()
	if st.Fsyncs < st.Fragments || st.Fragments < 10 {
		t.Fatalf("stats %+v: want an fsync per fragment, fragments <= 1 s", st)
	}
	// A restart finds the same index from the names alone.
	r2 := newRecorder(t, Config{Dir: r.Dir()})
	if got := r2.Segments(); len(got) != len(segs) || got[3] != segs[3] {
		t.Fatalf("reopened index %+v, want %+v", got, segs)
	}
}

// probe checks with ffprobe, when installed, that the file decodes with
// the given number of frames.
func probe(t *testing.T, path string, frames int) {
	t.Helper()
	if !testtier.SlowStep(t, "the ffprobe decode check") {
		return
	}
	if _, err := exec.LookPath("ffprobe"); err != nil {
		t.Log("ffprobe not installed; skipping the decode check (make test installs it)")
		return
	}
	out, err := exec.Command("ffprobe", "-v", "error", "-count_frames", "-select_streams", "v:0",
		"-show_entries", "stream=codec_name,nb_read_frames", "-of", "json", path).CombinedOutput()
	if err != nil {
		t.Fatalf("ffprobe %s: %v\n%s", path, err, out)
	}
	var res struct {
		Streams []struct {
			Codec  string `json:"codec_name"`
			Frames string `json:"nb_read_frames"`
		} `json:"streams"`
	}
	if err := json.Unmarshal(out, &res); err != nil || len(res.Streams) != 1 {
		t.Fatalf("ffprobe %s: %s", path, out)
	}
	if n, _ := strconv.Atoi(res.Streams[0].Frames); n != frames || res.Streams[0].Codec != "h264" {
		t.Fatalf("ffprobe %s: %s with %s frames, want h264 with %d", path, res.Streams[0].Codec, res.Streams[0].Frames, frames)
	}
}

// TestRecoverTornSegment writes a segment as a crashed recorder leaves it
// (unsealed name) and cuts it at random offsets: start-up must keep exactly
// the complete fragments, seal it and leave a file that plays.
func TestRecoverTornSegment(t *testing.T) {
	src := t.TempDir()
	r := newRecorder(t, Config{Dir: src, SegmentDuration: time.Hour, FragmentDuration: 500 * time.Millisecond})
	feed(r, mediatest.Stream160x120.AccessUnits(150, t0))
	r.Close()
	whole, err := os.ReadFile(filepath.Join(src, r.Segments()[0].Name))
	if err != nil {
		t.Fatal(err)
	}
	full, _ := mp4scan.Scan(bytesReader(whole), int64(len(whole)))
	rng := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 40; i++ {
		cut := rng.Int64N(int64(len(whole)) + 1)
		dir := t.TempDir()
		name := openName(t0)
		if err := os.WriteFile(filepath.Join(dir, name), whole[:cut], 0o600); err != nil {
			t.Fatal(err)
		}
		var want int64
		frags := 0
		for _, f := range full.Fragments {
			if f.End() <= cut {
				want, frags = f.End(), frags+1
			}
		}
		rec := newRecorder(t, Config{Dir: dir})
		segs := rec.Segments()
		if frags == 0 {
			if len(segs) != 0 {
				t.Fatalf("cut at %d: kept %+v with no complete fragment", cut, segs)
			}
			continue
		}
		if len(segs) != 1 || segs[0].Size != want || segs[0].Name != sealedName(t0, segs[0].Duration) {
			t.Fatalf("cut at %d: index %+v, want one sealed segment of %d bytes", cut, segs, want)
		}
		n, d := fileFrames(t, filepath.Join(dir, segs[0].Name))
		if (d - segs[0].Duration).Abs() > time.Millisecond {
			t.Fatalf("cut at %d: duration %v in name, %v in file", cut, segs[0].Duration, d)
		}
		if i%8 == 0 {
			probe(t, filepath.Join(dir, segs[0].Name), n)
		}
		rec.Close()
	}
}

func TestRetentionMaxBytes(t *testing.T) {
	r := newRecorder(t, Config{SegmentDuration: time.Second, MaxBytes: 40_000})
	feed(r, mediatest.Stream160x120.AccessUnits(900, t0)) // 30 s in 1.5 s segments
	r.Close()
	segs := r.Segments()
	var total int64
	for _, s := range segs {
		total += s.Size
	}
	if total > 40_000 || r.Stats().Deleted == 0 {
		t.Fatalf("%d bytes kept in %d segments, bound 40000 (deleted %d)", total, len(segs), r.Stats().Deleted)
	}
	last := segs[len(segs)-1]
	if want := t0.Add(30 * time.Second); last.End().Before(want.Add(-2 * time.Second)) {
		t.Fatalf("newest segment ends %v; the newest video must be kept", last.End())
	}
	assertDirMatches(t, r)
}

func TestRetentionMaxAge(t *testing.T) {
	now := t0
	r := newRecorder(t, Config{SegmentDuration: time.Second, MaxAge: 10 * time.Second,
		Now: func() time.Time { return now }})
	r.SetTrack(mediatest.Stream160x120.Track())
	for _, au := range mediatest.Stream160x120.AccessUnits(900, t0) {
		now = au.Captured // the clock follows the video; read only by the run loop
		r.Write(au)
	}
	r.Close()
	for _, s := range r.Segments() {
		if s.End().Before(now.Add(-10*time.Second - 2*time.Second)) {
			t.Fatalf("segment %s ends %v, more than max_age before %v", s.Name, s.End(), now)
		}
	}
	if r.Stats().Deleted == 0 {
		t.Fatal("nothing deleted by age")
	}
	assertDirMatches(t, r)
}

func TestRetentionMinFree(t *testing.T) {
	// A 60 kB disk: free space is what the segment files leave.
	const capacity, minFree = 60_000, 20_000
	var dir string
	free := func(string) (int64, error) {
		var used int64
		entries, _ := os.ReadDir(dir)
		for _, e := range entries {
			if info, err := e.Info(); err == nil {
				used += info.Size()
			}
		}
		return capacity - used, nil
	}
	dir = t.TempDir()
	r := newRecorder(t, Config{Dir: dir, SegmentDuration: time.Second, MinFree: minFree, FreeSpace: free})
	feed(r, mediatest.Stream160x120.AccessUnits(900, t0))
	r.Close()
	if f, _ := free(dir); f < minFree {
		t.Fatalf("%d bytes free, bound %d", f, minFree)
	}
	if r.Stats().Deleted == 0 {
		t.Fatal("nothing deleted for free space")
	}
	assertDirMatches(t, r)
}

// assertDirMatches checks the index against the directory.
func assertDirMatches(t *testing.T, r *Recorder) {
	t.Helper()
	entries, _ := os.ReadDir(r.Dir())
	segs := r.Segments()
	if len(entries) != len(segs) {
		t.Fatalf("%d files on disk, %d in the index", len(entries), len(segs))
	}
	for i, e := range entries {
		if e.Name() != segs[i].Name {
			t.Fatalf("file %s, index %s", e.Name(), segs[i].Name)
		}
	}
}

func TestEventModePreAndPostRoll(t *testing.T) {
	r := newRecorder(t, Config{Mode: ModeEvent, PreRoll: 2 * time.Second, PostRoll: 3 * time.Second})
	trigger := t0.Add(10 * time.Second)
	r.Trigger(trigger)                                    // ahead of the frames: only those from 10 s on count
	feed(r, mediatest.Stream160x120.AccessUnits(900, t0)) // 30 s; key frames every 1.5 s
	r.Close()
	segs := r.Segments()
	if len(segs) != 1 {
		t.Fatalf("segments %+v, want one event recording", segs)
	}
	s := segs[0]
	// Pre-roll: the last key frame at least 2 s before the trigger is 7.5 s.
	if s.Start.Sub(t0.Add(7500*time.Millisecond)).Abs() > time.Millisecond || s.End().Before(trigger.Add(3*time.Second)) ||
		s.End().After(trigger.Add(4*time.Second)) {
		t.Fatalf("event recording %v to %v, want 7.5 s to 13 s", s.Start.Sub(t0), s.End().Sub(t0))
	}
	n, _ := fileFrames(t, filepath.Join(r.Dir(), s.Name))
	probe(t, filepath.Join(r.Dir(), s.Name), n)
}

func TestReadRange(t *testing.T) {
	r := newRecorder(t, Config{SegmentDuration: 2900 * time.Millisecond})
	src := mediatest.Stream160x120.AccessUnits(300, t0)
	feed(r, src)
	r.Close()
	// Frame i is at i/30 s; key frames are every 45 frames.
	tests := []struct {
		name        string
		from, to    time.Duration
		first, last int // frame numbers
	}{
		{"across segments", 4010 * time.Millisecond, 8010 * time.Millisecond, 90, 240},
		{"on a key frame", 4501 * time.Millisecond, 5010 * time.Millisecond, 135, 150},
		{"whole", -time.Hour, time.Hour, 0, 299},
		{"after the end", 20 * time.Second, time.Hour, -1, -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []media.AccessUnit
			err := ReadRange(context.Background(), r.Dir(), r.Segments(), t0.Add(tt.from), t0.Add(tt.to),
				func(au media.AccessUnit) error { got = append(got, au); return nil })
			if err != nil {
				t.Fatal(err)
			}
			if tt.first < 0 {
				if len(got) != 0 {
					t.Fatalf("read %d frames past the end", len(got))
				}
				return
			}
			if len(got) != tt.last-tt.first+1 || !got[0].Key {
				t.Fatalf("read %d frames (first key %v), want frames %d..%d", len(got), got[0].Key, tt.first, tt.last)
			}
			for i, au := range got {
				want := src[tt.first+i]
				if au.Captured.Sub(want.Captured).Abs() > 2*time.Millisecond || !bytes.Equal(lastNAL(t, au.Data), lastNAL(t, want.Data)) {
					t.Fatalf("frame %d: at %v, want frame %d at %v", i, au.Captured.Sub(t0), tt.first+i, want.Captured.Sub(t0))
				}
			}
		})
	}
}

func TestSegmentNames(t *testing.T) {
	start := time.Date(2025, 1, 2, 3, 4, 5, 678e6, time.UTC)
	for _, name := range []string{openName(start), sealedName(start, 61234*time.Millisecond)} {
		got, d, sealed, err := parseName(name)
		if err != nil || !got.Equal(start) || sealed != (d != 0) {
			t.Fatalf("%s: %v %v %v %v", name, got, d, sealed, err)
		}
	}
	for _, bad := range []string{"x.mp4", "20250102T030405.678Z_12.mp4", "20250102T030405.678Z_-5ms.mp4", "20250102T030405.678Z.mkv"} {
		if _, _, _, err := parseName(bad); err == nil {
			t.Fatalf("%s parsed", bad)
		}
	}
}

func lastNAL(t *testing.T, au []byte) []byte {
	t.Helper()
	nalus, err := h264.SplitAnnexB(au)
	if err != nil {
		t.Fatal(err)
	}
	return nalus[len(nalus)-1]
}
