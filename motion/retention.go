package motion

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/camagent/camagent/internal/base/atomicfile"
)

// Retention of events. The recorder's retention (storage) decides what
// goes and when; the Log removes events with their snapshots and compacts
// itself. Compaction rewrites the whole log with internal/base/atomicfile
// (temporary file, fsync, rename, fsync of the directory) and only then
// deletes the removed events' snapshots, so a power cut at any point
// leaves either the old log or the new one, plus at worst snapshots no
// event refers to or a temporary file, both removed by the next OpenLog.
// The log only holds what retention keeps (a line or two per event), so a
// rewrite costs little next to the snapshots it frees.

// crashPoint, when set by a test, is called at each step of a compaction
// so that the test can kill the process there.
var crashPoint func(step string)

func crash(step string) {
	if crashPoint != nil {
		crashPoint(step)
	}
}

// load reads the log into memory and tidies the directory after a crash:
// temporary files of atomicfile and snapshots of no logged event go.
func (l *Log) load() error {
	f, err := os.Open(filepath.Join(l.dir, LogFile))
	if err != nil {
		return fmt.Errorf("motion: %w", err)
	}
	events, err := parseLog(f)
	f.Close()
	if err != nil {
		return err
	}
	info, err := l.f.Stat()
	if err != nil {
		return fmt.Errorf("motion: %w", err)
	}
	l.events, l.size = events, info.Size()
	referenced := map[string]bool{}
	for _, e := range events {
		if e.Snapshot != "" {
			referenced[e.Snapshot] = true
		}
	}
	entries, err := os.ReadDir(l.dir)
	if err != nil {
		return fmt.Errorf("motion: %w", err)
	}
	for _, ent := range entries {
		name := ent.Name()
		switch {
		case strings.HasPrefix(name, ".") && strings.Contains(name, ".tmp"):
			// A write cut short: of the log (the old log is whole) or of a
			// snapshot (whose event was never logged).
			os.Remove(filepath.Join(l.dir, name))
		case strings.HasSuffix(name, ".jpg") && !referenced[name]:
			// Its event was pruned (the log rewritten) but the power went
			// before the snapshot was deleted, or the event's start line
			// never made it to the log.
			os.Remove(filepath.Join(l.dir, name))
		case referenced[name]:
			if fi, err := ent.Info(); err == nil {
				l.snaps[name] = fi.Size()
				l.snapBytes += fi.Size()
			}
		}
	}
	return nil
}

// Events returns the events in the log, oldest first.
func (l *Log) Events() []Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]Event(nil), l.events...)
}

// Bytes is the space the events take: the log and the snapshots.
func (l *Log) Bytes() int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.size + l.snapBytes
}

// eventTime is when an event ended, or, if its end was never logged, when
// it started.
func eventTime(e Event) time.Time {
	if e.End.IsZero() {
		return e.Start
	}
	return e.End
}

// PruneBefore removes the events that ended before t, and their
// snapshots. The event in progress is kept. It returns the bytes freed.
func (l *Log) PruneBefore(t time.Time) (int64, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.prune(func(i int, e Event) bool { return eventTime(e).Before(t) })
}

// PruneBytes removes the oldest events until at least n bytes are freed
// (or none is left but the one in progress), in one compaction. It
// returns the bytes freed.
func (l *Log) PruneBytes(n int64) (int64, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var planned int64
	return l.prune(func(i int, e Event) bool {
		if planned >= n {
			return false
		}
		planned += l.snaps[e.Snapshot] + int64(len(logLine(e)))
		return true
	})
}

// logLine is an event's line in a compacted log: one start record with
// the end in it.
func logLine(e Event) []byte {
	line, _ := json.Marshal(record{Kind: "start", Event: e})
	return append(line, '\n')
}

// prune removes the events (oldest first) for which drop says so, except
// the one in progress: the log is rewritten without them, then their
// snapshots are deleted. l.mu is held.
func (l *Log) prune(drop func(i int, e Event) bool) (int64, error) {
	var keep, gone []Event
	for i, e := range l.events {
		if e.ID != l.live && drop(i, e) {
			gone = append(gone, e)
		} else {
			keep = append(keep, e)
		}
	}
	if len(gone) == 0 {
		return 0, nil
	}
	var freed int64
	var buf bytes.Buffer
	for _, e := range keep {
		buf.Write(logLine(e))
	}
	crash("before-rewrite")
	err := l.rewrite(buf.Bytes())
	if err == nil {
		freed += l.size - int64(buf.Len())
		l.size = int64(buf.Len())
		l.events = keep
	}
	crash("rewritten")
	// The snapshots go even if the rewrite failed: on a full disk they are
	// the space to win back, and the event stays listed without its
	// picture until the next compaction succeeds.
	for i, e := range gone {
		if e.Snapshot == "" {
			continue
		}
		if rerr := os.Remove(filepath.Join(l.dir, e.Snapshot)); rerr != nil && !errors.Is(rerr, os.ErrNotExist) {
			err = errors.Join(err, fmt.Errorf("motion: %w", rerr))
			continue
		}
		freed += l.snaps[e.Snapshot]
		l.snapBytes -= l.snaps[e.Snapshot]
		delete(l.snaps, e.Snapshot)
		if i == 0 {
			crash("snapshot-removed")
		}
	}
	if serr := atomicfile.SyncDir(l.dir); serr != nil {
		err = errors.Join(err, serr)
	}
	return freed, err
}

// rewrite replaces the log with data. The append handle still points at
// the old, now unlinked file, so it is closed; the next append reopens the
// new one.
func (l *Log) rewrite(data []byte) error {
	if err := atomicfile.WriteFile(filepath.Join(l.dir, LogFile), data, 0o600); err != nil {
		return fmt.Errorf("motion: compact event log: %w", err)
	}
	if l.f != nil {
		l.f.Close()
		l.f = nil
	}
	return nil
}
