package motion

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/camagent/camagent/internal/base/atomicfile"
)

// LogFile is the event log's name in the events directory.
const LogFile = "events.jsonl"

// Event is one motion event.
type Event struct {
	ID    string    `json:"id"`
	Start time.Time `json:"start"`
	// End is zero while the event lasts, or if the camera stopped before
	// it could log the end.
	End time.Time `json:"end,omitzero"`
	// Score is the largest share of the watched area that changed.
	Score float64 `json:"score"`
	// Snapshot is the JPEG file's name in the events directory.
	Snapshot string `json:"snapshot,omitempty"`
}

// record is one line of the log: an event's start or its end.
type record struct {
	Kind string `json:"kind"` // "start" or "end"
	Event
}

// Log is the append-only event log: one JSON line per record, fsynced, so
// a power cut loses at most the line being written, and a torn last line
// is skipped when read.
//
// The Log also keeps the events in memory, with the size of the log and of
// each snapshot, so that retention (Prune*, retention.go) can decide what
// to delete after every recorded fragment without reading the disk.
type Log struct {
	dir string
	mu  sync.Mutex
	f   *os.File

	events    []Event          // as in the log, oldest first
	size      int64            // of the log file
	snaps     map[string]int64 // snapshot file name -> size
	snapBytes int64            // sum of snaps
	live      string           // id of the event started and not yet ended
}

// OpenLog opens (creating) the log in dir.
func OpenLog(dir string) (*Log, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("motion: %w", err)
	}
	path := filepath.Join(dir, LogFile)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("motion: %w", err)
	}
	// A torn last line (no newline) would glue itself to the next record:
	// end it first.
	if info, err := f.Stat(); err == nil && info.Size() > 0 {
		last := make([]byte, 1)
		if r, err := os.Open(path); err == nil {
			r.ReadAt(last, info.Size()-1)
			r.Close()
		}
		if last[0] != '\n' {
			f.Write([]byte{'\n'})
		}
	}
	l := &Log{dir: dir, f: f, snaps: map[string]int64{}}
	if err := l.load(); err != nil {
		f.Close()
		return nil, err
	}
	if err := atomicfile.SyncDir(dir); err != nil {
		f.Close()
		return nil, err
	}
	return l, nil
}

// Dir is the events directory (log and snapshots).
func (l *Log) Dir() string { return l.dir }

func (l *Log) append(rec record) error {
	line, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil { // compacted since the last append
		f, err := os.OpenFile(filepath.Join(l.dir, LogFile), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
		if err != nil {
			return fmt.Errorf("motion: event log: %w", err)
		}
		l.f = f
	}
	n, err := l.f.Write(append(line, '\n'))
	l.size += int64(n)
	if err != nil {
		return fmt.Errorf("motion: event log: %w", err)
	}
	switch rec.Kind {
	case "start":
		l.events = append(l.events, rec.Event)
		l.live = rec.ID
	case "end":
		for i := len(l.events) - 1; i >= 0; i-- {
			if l.events[i].ID == rec.ID {
				l.events[i].End, l.events[i].Score = rec.End, rec.Score
				break
			}
		}
		if l.live == rec.ID {
			l.live = ""
		}
	}
	return l.f.Sync()
}

// saveSnapshot writes an event's JPEG (crash-safe) and counts its size.
func (l *Log) saveSnapshot(name string, jpg []byte) error {
	if err := atomicfile.WriteFile(filepath.Join(l.dir, name), jpg, 0o600); err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.snapBytes += int64(len(jpg)) - l.snaps[name]
	l.snaps[name] = int64(len(jpg))
	return nil
}

// Close closes the log.
func (l *Log) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return nil
	}
	err := l.f.Close()
	l.f = nil
	return err
}

// maxLine bounds one log line; longer lines are skipped as corrupt.
const maxLine = 64 << 10

// ReadEvents reads the log in dir, oldest first. Lines that do not parse
// (a torn write) are skipped.
func ReadEvents(dir string) ([]Event, error) {
	f, err := os.Open(filepath.Join(dir, LogFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("motion: %w", err)
	}
	defer f.Close()
	return parseLog(f)
}

func parseLog(r io.Reader) ([]Event, error) {
	byID := map[string]int{}
	var events []Event
	br := bufio.NewReaderSize(r, 4096)
	for {
		line, err := readLine(br)
		if len(line) > 0 {
			var rec record
			if json.Unmarshal(line, &rec) == nil && rec.ID != "" {
				i, ok := byID[rec.ID]
				switch {
				case rec.Kind == "start" && !ok:
					byID[rec.ID] = len(events)
					events = append(events, rec.Event)
				case rec.Kind == "end" && ok:
					events[i].End, events[i].Score = rec.End, rec.Score
				}
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return events, fmt.Errorf("motion: event log: %w", err)
		}
	}
	slices.SortStableFunc(events, func(a, b Event) int { return a.Start.Compare(b.Start) })
	return events, nil
}

// readLine returns the next line without its newline; an over-long line
// is returned empty (skipped).
func readLine(br *bufio.Reader) ([]byte, error) {
	var line []byte
	skip := false
	for {
		chunk, err := br.ReadSlice('\n')
		if !skip && len(line)+len(chunk) <= maxLine {
			line = append(line, chunk...)
		} else {
			skip, line = true, nil
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		return bytes.TrimSuffix(line, []byte{'\n'}), err
	}
}
