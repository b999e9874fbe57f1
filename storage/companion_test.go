package storage

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/camagent/camagent/internal/base/media/mediatest"
	"github.com/camagent/camagent/motion"
)

// evSpec is a motion event left by an earlier run: it starts at t0+at,
// lasts 1 s, and has a snapshot of snap bytes.
type evSpec struct {
	at   time.Duration
	snap int
}

// writeEvents lays out an events directory as motion.Monitor leaves it: a
// JSON-lines log and one JPEG per event.
func writeEvents(t *testing.T, dir string, specs []evSpec) {
	t.Helper()
	var log bytes.Buffer
	for _, s := range specs {
		start := t0.Add(s.at)
		id := start.UTC().Format("20060102T150405.000Z")
		ev := motion.Event{ID: id, Start: start, Score: 0.1, Snapshot: id + ".jpg"}
		for _, kind := range []string{"start", "end"} {
			if kind == "end" {
				ev.End = start.Add(time.Second)
			}
			line, _ := json.Marshal(struct {
				Kind string `json:"kind"`
				motion.Event
			}{kind, ev})
			log.Write(append(line, '\n'))
		}
		if err := os.WriteFile(filepath.Join(dir, ev.Snapshot), bytes.Repeat([]byte{0xff}, s.snap), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, motion.LogFile), log.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
}

// dirBytes is what the files in dir take.
func dirBytes(dir string) int64 {
	var n int64
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if info, err := e.Info(); err == nil {
			n += info.Size()
		}
	}
	return n
}

// TestRetentionCoversEvents: motion events and their snapshots are kept
// under the recordings' bounds. 30 s of video in 1.5 s segments is
// recorded from t0 with the events of an earlier run on disk; the clock
// follows the video.
func TestRetentionCoversEvents(t *testing.T) {
	const capacity = 120_000 // of the fake disk for min free space
	tests := []struct {
		name     string
		cfg      Config
		noVideo  bool // event mode without motion: nothing is recorded
		events   []evSpec
		wantKept []time.Duration // the at of the events left
	}{{
		name:     "older than the oldest recording",
		cfg:      Config{MaxBytes: 40_000},
		events:   []evSpec{{-time.Hour, 100}, {2 * time.Second, 100}, {20 * time.Second, 100}, {27 * time.Second, 100}},
		wantKept: []time.Duration{20 * time.Second, 27 * time.Second},
	}, {
		name:     "older than max age",
		cfg:      Config{MaxAge: 10 * time.Second},
		events:   []evSpec{{-time.Hour, 100}, {5 * time.Second, 100}, {25 * time.Second, 100}},
		wantKept: []time.Duration{25 * time.Second},
	}, {
		// Recent events with big snapshots leave less room for video: the
		// oldest segments go, and events older than the oldest one left.
		name:     "snapshots count toward max bytes",
		cfg:      Config{MaxBytes: 60_000},
		events:   []evSpec{{10 * time.Second, 15_000}, {28 * time.Second, 15_000}, {29 * time.Second, 15_000}},
		wantKept: []time.Duration{28 * time.Second, 29 * time.Second},
	}, {
		name:     "snapshots count toward min free space",
		cfg:      Config{MinFree: 40_000},
		events:   []evSpec{{10 * time.Second, 20_000}, {28 * time.Second, 20_000}},
		wantKept: []time.Duration{28 * time.Second},
	}, {
		// No recording at all: the snapshots alone are held to max bytes,
		// oldest first, and to max age.
		name:     "event mode with no recording kept",
		cfg:      Config{Mode: ModeEvent, MaxBytes: 25_000, MaxAge: time.Hour},
		noVideo:  true,
		events:   []evSpec{{-2 * time.Hour, 1000}, {-30 * time.Minute, 10_000}, {-20 * time.Minute, 10_000}, {-10 * time.Minute, 10_000}},
		wantKept: []time.Duration{-20 * time.Minute, -10 * time.Minute},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			recDir, evDir := t.TempDir(), t.TempDir()
			writeEvents(t, evDir, tt.events)
			events, err := motion.OpenLog(evDir)
			if err != nil {
				t.Fatal(err)
			}
			defer events.Close()
			now := t0
			cfg := tt.cfg
			cfg.Dir, cfg.SegmentDuration, cfg.Companion = recDir, time.Second, events
			cfg.Now = func() time.Time { return now }
			cfg.FreeSpace = func(string) (int64, error) { return capacity - dirBytes(recDir) - dirBytes(evDir), nil }
			r := newRecorder(t, cfg)
			if !tt.noVideo {
				r.SetTrack(mediatest.Stream160x120.Track())
				for _, au := range mediatest.Stream160x120.AccessUnits(900, t0) {
					now = au.Captured // read only by the run loop
					r.Write(au)
				}
			}
			r.Close()

			var kept []time.Duration
			for _, e := range events.Events() {
				kept = append(kept, e.Start.Sub(t0))
			}
			if !equalDurations(kept, tt.wantKept) {
				t.Fatalf("events kept at %v, want %v (segments from %v)", kept, tt.wantKept, firstStart(r))
			}
			// What the log says is what is on disk, and it persists.
			reread, err := motion.ReadEvents(evDir)
			if err != nil || len(reread) != len(kept) {
				t.Fatalf("log on disk holds %d events (%v), want %d", len(reread), err, len(kept))
			}
			assertEventFiles(t, evDir, reread)
			if got, want := events.Bytes(), dirBytes(evDir); got != want {
				t.Fatalf("events counted as %d bytes, %d on disk", got, want)
			}
			total := dirBytes(recDir) + dirBytes(evDir)
			if cfg.MaxBytes > 0 && total > cfg.MaxBytes {
				t.Fatalf("%d bytes kept, bound %d", total, cfg.MaxBytes)
			}
			if cfg.MinFree > 0 && capacity-total < cfg.MinFree {
				t.Fatalf("%d bytes free, bound %d", capacity-total, cfg.MinFree)
			}
			if !tt.noVideo && len(r.Segments()) == 0 {
				t.Fatal("no video kept")
			}
		})
	}
}

// TestPruneCompanionWithoutRecording: motion on, recording off.
func TestPruneCompanionWithoutRecording(t *testing.T) {
	dir := t.TempDir()
	writeEvents(t, dir, []evSpec{{-48 * time.Hour, 5000}, {-2 * time.Hour, 5000}, {-time.Hour, 5000}, {-time.Minute, 5000}})
	events, err := motion.OpenLog(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer events.Close()
	PruneCompanion(Config{Dir: dir, MaxAge: 24 * time.Hour, MaxBytes: 11_000, Now: func() time.Time { return t0 }}, events)
	var kept []time.Duration
	for _, e := range events.Events() {
		kept = append(kept, e.Start.Sub(t0))
	}
	if want := []time.Duration{-time.Hour, -time.Minute}; !equalDurations(kept, want) {
		t.Fatalf("kept %v, want %v", kept, want)
	}
	if dirBytes(dir) > 11_000 {
		t.Fatalf("%d bytes kept", dirBytes(dir))
	}
	reread, _ := motion.ReadEvents(dir)
	assertEventFiles(t, dir, reread)
}

// assertEventFiles checks that every event's snapshot is there and that no
// other file is.
func assertEventFiles(t *testing.T, dir string, events []motion.Event) {
	t.Helper()
	want := map[string]bool{motion.LogFile: true}
	for _, e := range events {
		want[e.Snapshot] = true
		if _, err := os.Stat(filepath.Join(dir, e.Snapshot)); err != nil {
			t.Fatalf("event %s lost its snapshot: %v", e.ID, err)
		}
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if !want[e.Name()] {
			t.Fatalf("stray file %s (files: %v)", e.Name(), names(entries))
		}
	}
}

func names(entries []os.DirEntry) string {
	var s []string
	for _, e := range entries {
		s = append(s, e.Name())
	}
	return strings.Join(s, " ")
}

func equalDurations(a, b []time.Duration) bool {
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

func firstStart(r *Recorder) time.Duration {
	if segs := r.Segments(); len(segs) > 0 {
		return segs[0].Start.Sub(t0)
	}
	return -1
}
