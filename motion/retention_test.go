package motion

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/camagent/camagent/internal/base/testtier"
)

var rt0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

// logEvents logs n events a minute apart from rt0, each 10 s long with a
// 1000-byte snapshot, as the Monitor does; the last stays in progress if
// live.
func logEvents(t *testing.T, l *Log, n int, live bool) {
	t.Helper()
	for i := range n {
		start := rt0.Add(time.Duration(i) * time.Minute)
		ev := Event{ID: start.Format("20060102T150405.000Z"), Start: start, Score: 0.2}
		ev.Snapshot = ev.ID + ".jpg"
		if err := l.saveSnapshot(ev.Snapshot, bytes.Repeat([]byte{byte(i)}, 1000)); err != nil {
			t.Fatal(err)
		}
		if err := l.append(record{Kind: "start", Event: ev}); err != nil {
			t.Fatal(err)
		}
		if live && i == n-1 {
			continue
		}
		ev.End = start.Add(10 * time.Second)
		if err := l.append(record{Kind: "end", Event: ev}); err != nil {
			t.Fatal(err)
		}
	}
}

// minutes lists the events' starts in minutes after rt0.
func minutes(events []Event) []int {
	var m []int
	for _, e := range events {
		m = append(m, int(e.Start.Sub(rt0)/time.Minute))
	}
	return m
}

// checkDir: the log on disk says what the Log says, every event has its
// snapshot, no other file is left, and Bytes is what the files take.
func checkDir(t *testing.T, l *Log) {
	t.Helper()
	disk, err := ReadEvents(l.Dir())
	if err != nil {
		t.Fatal(err)
	}
	if got, want := minutes(disk), minutes(l.Events()); !slices.Equal(got, want) {
		t.Fatalf("log on disk has events %v, memory %v", got, want)
	}
	want := map[string]bool{LogFile: true}
	for _, e := range disk {
		if e.Snapshot != "" {
			want[e.Snapshot] = true
		}
	}
	entries, _ := os.ReadDir(l.Dir())
	var size int64
	for _, e := range entries {
		if !want[e.Name()] {
			t.Fatalf("stray file %s", e.Name())
		}
		delete(want, e.Name())
		info, _ := e.Info()
		size += info.Size()
	}
	if len(want) > 0 {
		t.Fatalf("missing files %v", want)
	}
	if l.Bytes() != size {
		t.Fatalf("Bytes %d, files take %d", l.Bytes(), size)
	}
}

func TestLogPrune(t *testing.T) {
	tests := []struct {
		name  string
		live  bool // the newest event is in progress
		prune func(l *Log) (int64, error)
		want  []int
	}{
		{"before a time", false, func(l *Log) (int64, error) { return l.PruneBefore(rt0.Add(2 * time.Minute)) }, []int{2, 3, 4}},
		// An event is judged by its end: the one from minute 2 ends at 2:10.
		{"an event ending after the cut stays", false, func(l *Log) (int64, error) { return l.PruneBefore(rt0.Add(2*time.Minute + 5*time.Second)) }, []int{2, 3, 4}},
		{"nothing older", false, func(l *Log) (int64, error) { return l.PruneBefore(rt0) }, []int{0, 1, 2, 3, 4}},
		{"the event in progress stays", true, func(l *Log) (int64, error) { return l.PruneBefore(rt0.Add(time.Hour)) }, []int{4}},
		{"bytes: oldest first", false, func(l *Log) (int64, error) { return l.PruneBytes(1500) }, []int{2, 3, 4}},
		{"bytes: all but the event in progress", true, func(l *Log) (int64, error) { return l.PruneBytes(1 << 30) }, []int{4}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, err := OpenLog(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			logEvents(t, l, 5, tt.live)
			before := l.Bytes()
			freed, err := tt.prune(l)
			if err != nil {
				t.Fatal(err)
			}
			if got := minutes(l.Events()); !slices.Equal(got, tt.want) {
				t.Fatalf("events left %v, want %v", got, tt.want)
			}
			if freed != before-l.Bytes() {
				t.Fatalf("freed %d, Bytes went from %d to %d", freed, before, l.Bytes())
			}
			checkDir(t, l)
			// The log goes on after a compaction, and a reopened log sees
			// the same events.
			end := Event{ID: "20250301T130000.000Z", Start: rt0.Add(time.Hour), End: rt0.Add(time.Hour + time.Second)}
			if err := l.append(record{Kind: "start", Event: end}); err != nil {
				t.Fatal(err)
			}
			if tt.live { // the event in progress ends after the compaction
				ev := l.Events()[0]
				ev.End = ev.Start.Add(time.Second)
				if err := l.append(record{Kind: "end", Event: ev}); err != nil {
					t.Fatal(err)
				}
			}
			l.Close()
			l2, err := OpenLog(l.Dir())
			if err != nil {
				t.Fatal(err)
			}
			defer l2.Close()
			if got, want := minutes(l2.Events()), append(slices.Clone(tt.want), 60); !slices.Equal(got, want) {
				t.Fatalf("after reopening: events %v, want %v", got, want)
			}
			for _, e := range l2.Events() {
				if e.End.IsZero() {
					t.Fatalf("event %s lost its end", e.ID)
				}
			}
			checkDir(t, l2)
		})
	}
}

// TestLogPruneCrash kills a process in the middle of a compaction (SIGKILL
// at each step; also a temporary log cut short, as a power cut inside
// atomicfile leaves it) and checks that the next OpenLog finds either all
// the events or only those kept, each with its snapshot and no stray file.
func TestLogPruneCrash(t *testing.T) {
	if dir := os.Getenv("MOTION_CRASH_DIR"); dir != "" {
		crashChild(dir, os.Getenv("MOTION_CRASH_STEP"))
		return
	}
	testtier.Slow(t, "re-executes the test binary and kills it mid-write")
	for _, step := range []string{"before-rewrite", "rewritten", "snapshot-removed", "torn-temp"} {
		t.Run(step, func(t *testing.T) {
			dir := t.TempDir()
			l, err := OpenLog(dir)
			if err != nil {
				t.Fatal(err)
			}
			logEvents(t, l, 5, false)
			l.Close()
			if step == "torn-temp" {
				// What a cut inside atomicfile.WriteFile leaves: a partial
				// temporary file beside the whole old log.
				os.WriteFile(filepath.Join(dir, "."+LogFile+".tmp123"), []byte(`{"kind":"start","id":"2025`), 0o600)
			} else {
				cmd := exec.Command(os.Args[0], "-test.run=^TestLogPruneCrash$")
				cmd.Env = append(os.Environ(), "MOTION_CRASH_DIR="+dir, "MOTION_CRASH_STEP="+step)
				out, err := cmd.CombinedOutput()
				if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
					t.Fatalf("child was not killed at %s: %v\n%s", step, err, out)
				}
			}
			l, err = OpenLog(dir)
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			got := minutes(l.Events())
			if !slices.Equal(got, []int{0, 1, 2, 3, 4}) && !slices.Equal(got, []int{3, 4}) {
				t.Fatalf("after a crash at %s: events %v", step, got)
			}
			checkDir(t, l)
			t.Logf("crash at %s: events %v", step, got)
		})
	}
}

// crashChild prunes the events before minute 3 and kills itself at step.
func crashChild(dir, step string) {
	crashPoint = func(s string) {
		if s == step {
			syscall.Kill(os.Getpid(), syscall.SIGKILL)
			time.Sleep(time.Minute)
		}
	}
	l, err := OpenLog(dir)
	if err != nil {
		fmt.Println(err)
		os.Exit(3)
	}
	if _, err := l.PruneBefore(rt0.Add(3 * time.Minute)); err != nil {
		fmt.Println(err)
	}
	fmt.Println("not killed at", step)
	os.Exit(4)
}
