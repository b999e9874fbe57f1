package storage

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/camagent/camagent/internal/base/media/mediatest"
	"github.com/camagent/camagent/internal/base/testtier"
)

// TestDiskFull records onto a real 64 kB tmpfs with no retention bounds:
// every ENOSPC must delete the oldest segment and recording go on to the
// end, with every file left whole.
func TestDiskFull(t *testing.T) {
	testtier.Slow(t, "mounts a tmpfs as root")
	if os.Geteuid() != 0 {
		t.Skip("mounting a small tmpfs needs root (CI runs as root)")
	}
	dir := filepath.Join(t.TempDir(), "disk")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size=64k"); err != nil {
		t.Skipf("cannot mount tmpfs: %v", err)
	}
	t.Cleanup(func() { syscall.Unmount(dir, syscall.MNT_DETACH) })
	r := newRecorder(t, Config{Dir: dir, SegmentDuration: time.Second})
	aus := mediatest.Stream160x120.AccessUnits(6000, t0) // 200 s, about 500 kB: eight disks full
	feed(r, aus)
	r.Close()
	st := r.Stats()
	segs := r.Segments()
	if st.Deleted < 20 || len(segs) == 0 {
		t.Fatalf("stats %+v with %d segments: the disk never filled?", st, len(segs))
	}
	last := segs[len(segs)-1]
	if end := aus[len(aus)-1].Captured; last.End().Before(end.Add(-time.Second)) {
		t.Fatalf("recording stopped at %v, video ran to %v (stats %+v)", last.End().Sub(t0), end.Sub(t0), st)
	}
	for _, s := range segs {
		fileFrames(t, filepath.Join(dir, s.Name)) // whole: no torn tail
	}
	assertDirMatches(t, r)
	t.Logf("%d segments deleted for space, %d write errors; %d segments kept", st.Deleted, st.WriteErrors, len(segs))
}
