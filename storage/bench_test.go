package storage

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/camagent/camagent/capture"
	"github.com/camagent/camagent/capture/encode"
	"github.com/camagent/camagent/internal/base/media"
	"github.com/camagent/camagent/internal/base/media/mediatest"
)

// encodedStream returns n frames of the test pattern encoded at 1280x720,
// 30 fps, 2 Mbit/s, key frame every 2 s (the agent's defaults), or the
// small x264 test stream when software H.264 is not built in.
func encodedStream(b *testing.B, n int) (media.Track, []media.AccessUnit) {
	b.Helper()
	if !encode.SoftwareH264Available() {
		b.Log("software H.264 unavailable: using the 160x120 test stream")
		return mediatest.Stream160x120.Track(), mediatest.Stream160x120.AccessUnits(n, time.Now())
	}
	src, err := capture.Open(capture.Config{Device: "test", Width: 1280, Height: 720, FPS: 30, Unpaced: true})
	if err != nil {
		b.Fatal(err)
	}
	defer src.Close()
	f := src.Format()
	enc, err := encode.New(encode.Config{Codec: media.CodecH264, Bitrate: 2_000_000, KeyframeInterval: 60, FPS: 30}, f.Pixel, f.Width, f.Height)
	if err != nil {
		b.Fatal(err)
	}
	defer enc.Close()
	start := time.Now()
	var aus []media.AccessUnit
	for len(aus) < n {
		frame, err := src.Read(context.Background())
		if err != nil {
			b.Fatal(err)
		}
		out, err := enc.Encode(frame)
		if err != nil {
			b.Fatal(err)
		}
		for _, au := range out {
			// Unpaced frames come faster than 30 fps: give them camera times.
			au.PTS = time.Duration(len(aus)) * time.Second / 30
			au.Captured = start.Add(au.PTS)
			aus = append(aus, au)
		}
	}
	return enc.Track(), aus
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkRecording records 60 s of 720p30 2 Mbit/s H.264 with an fsync
// per fragment to the temp directory and reports write amplification
// (file bytes / media bytes; target <= 1.05), fsyncs per minute of video,
// and CPU per second of video, against a baseline in the same run that
// writes the same bytes as a raw H.264 stream with one fsync a second.
//
// The test pattern compresses far below 2 Mbit/s, which flatters nothing
// but makes per-fragment overhead look larger; the "2Mbit" case pads each
// access unit with an H.264 filler-data NAL unit (type 12, as CBR encoders
// send) to the agent's default 2 Mbit/s.
func BenchmarkRecording(b *testing.B) {
	const frames = 1800 // 60 s
	track, aus := encodedStream(b, frames)
	b.Run("encoder-rate", func(b *testing.B) { benchRecording(b, track, aus) })
	padded := make([]media.AccessUnit, len(aus))
	for i, au := range aus {
		padded[i] = au
		if fill := 2_000_000/8/30 - len(au.Data) - 6; fill > 0 {
			nal := append([]byte{0, 0, 0, 1, 12}, bytes.Repeat([]byte{0xff}, fill)...)
			padded[i].Data = append(append(bytes.Clone(au.Data), nal...), 0x80)
		}
	}
	b.Run("2Mbit", func(b *testing.B) { benchRecording(b, track, padded) })
}

func benchRecording(b *testing.B, track media.Track, aus []media.AccessUnit) {
	frames := len(aus)
	var mediaBytes int64
	for _, au := range aus {
		mediaBytes += int64(len(au.Data))
	}
	video := time.Duration(frames) * time.Second / 30
	for b.Loop() {
		dir := b.TempDir()
		cpu0 := cpuTime()
		r, err := New(Config{Dir: dir, Mode: ModeContinuous, Fsync: true, QueueLength: frames + 10})
		if err != nil {
			b.Fatal(err)
		}
		r.SetTrack(track)
		for _, au := range aus {
			r.Write(au)
		}
		r.Close()
		cpuRec := cpuTime() - cpu0
		st := r.Stats()

		cpu0 = cpuTime()
		rawBaseline(b, filepath.Join(dir, "baseline.h264"), aus)
		cpuRaw := cpuTime() - cpu0

		b.ReportMetric(float64(st.FileBytes)/float64(mediaBytes), "write-amplification")
		b.ReportMetric(float64(st.Fsyncs)/video.Minutes(), "fsyncs/min")
		b.ReportMetric(float64(cpuRec)/float64(video)*100, "cpu-%-of-core")
		b.ReportMetric(float64(cpuRec)/float64(max(cpuRaw, 1)), "cpu-x-raw-write")
		b.ReportMetric(float64(mediaBytes)*8/video.Seconds()/1e6, "Mbit/s")
	}
}

// rawBaseline writes the access units as they are, fsyncing every 30.
func rawBaseline(b *testing.B, path string, aus []media.AccessUnit) {
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	for i, au := range aus {
		if _, err := f.Write(au.Data); err != nil {
			b.Fatal(err)
		}
		if i%30 == 29 {
			f.Sync()
		}
	}
	f.Sync()
}

// BenchmarkStartup10000Segments is the recorder's start-up (index rebuild
// and repair of the segment open at a crash) with 10,000 segments on disk;
// target < 1 s. The baseline is listing the directory alone.
func BenchmarkStartup10000Segments(b *testing.B) {
	dir := b.TempDir()
	src := b.TempDir()
	r, err := New(Config{Dir: src, Mode: ModeContinuous, SegmentDuration: time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	r.SetTrack(mediatest.Stream160x120.Track())
	for _, au := range mediatest.Stream160x120.AccessUnits(60, time.Now()) {
		r.Write(au)
	}
	r.Close()
	seg, err := os.ReadFile(filepath.Join(src, r.Segments()[0].Name))
	if err != nil {
		b.Fatal(err)
	}
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range 10_000 {
		name := sealedName(t0.Add(time.Duration(i)*time.Minute), 2*time.Second)
		if err := os.WriteFile(filepath.Join(dir, name), seg, 0o600); err != nil {
			b.Fatal(err)
		}
	}
	// Flush the 10,000 new files now: on a board they are old, and the
	// repair's fsync would otherwise pay for writing them all back.
	syscall.Sync()
	openSeg := filepath.Join(dir, openName(t0.Add(10_000*time.Minute)))
	var listing, startup time.Duration
	for b.Loop() {
		b.StopTimer()
		// A torn segment as a crash leaves it: repaired at each start.
		if err := os.WriteFile(openSeg, seg[:len(seg)-100], 0o600); err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		entries, _ := os.ReadDir(dir)
		listing += time.Since(start)
		b.StartTimer()
		start = time.Now()
		r, err := New(Config{Dir: dir, Mode: ModeContinuous})
		startup += time.Since(start)
		if err != nil {
			b.Fatal(err)
		}
		if n := len(r.Segments()); n != 10_001 || len(entries) != 10_001 {
			b.Fatalf("%d segments indexed from %d files, want 10001", n, len(entries))
		}
		r.Close()
		b.StopTimer()
		for _, s := range r.Segments()[10_000:] {
			os.Remove(filepath.Join(dir, s.Name))
		}
		b.StartTimer()
	}
	b.ReportMetric(float64(startup.Milliseconds())/float64(b.N), "startup-ms")
	b.ReportMetric(float64(startup)/float64(max(listing, 1)), "x-readdir")
}
