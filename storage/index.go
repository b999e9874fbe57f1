package storage

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/camagent/camagent/internal/base/atomicfile"
	"github.com/camagent/camagent/internal/base/fmp4"
	"github.com/camagent/camagent/storage/mp4scan"
)

// loadIndex lists dir and returns its segments oldest first. Sealed
// segments are taken from their names; an open one (the process died while
// writing it) is repaired first: cut back to its last complete fragment and
// sealed, or removed if not one fragment survived.
func loadIndex(dir string, log *slog.Logger) ([]Segment, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("storage: %w", err)
	}
	segs := make([]Segment, 0, len(entries))
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || !strings.HasSuffix(name, ext) {
			continue
		}
		start, d, sealed, err := parseName(name)
		if err != nil {
			log.Warn("ignoring file in recordings directory", "name", name, "err", err)
			continue
		}
		if !sealed {
			seg, ok, err := repair(dir, name, start, log)
			if err != nil {
				return nil, err
			}
			if ok {
				segs = append(segs, seg)
			}
			continue
		}
		info, err := e.Info()
		if err != nil {
			continue // removed meanwhile
		}
		segs = append(segs, Segment{Name: name, Start: start, Duration: d, Size: info.Size()})
	}
	slices.SortFunc(segs, func(a, b Segment) int { return a.Start.Compare(b.Start) })
	return segs, nil
}

// repair trims an unsealed segment to its last complete fragment, fsyncs
// it and renames it to its sealed name.
func repair(dir, name string, start time.Time, log *slog.Logger) (Segment, bool, error) {
	path := filepath.Join(dir, name)
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return Segment{}, false, fmt.Errorf("storage: repair: %w", err)
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return Segment{}, false, fmt.Errorf("storage: repair: %w", err)
	}
	l, err := mp4scan.Scan(f, info.Size())
	var d time.Duration
	if err == nil && len(l.Fragments) > 0 {
		d, err = fileDuration(f, l)
	}
	if err != nil || len(l.Fragments) == 0 {
		log.Warn("removing segment with no complete fragment", "name", name, "err", err)
		return Segment{}, false, removeFile(path)
	}
	if l.ValidEnd < info.Size() {
		log.Warn("cutting torn fragment off segment", "name", name,
			"from", info.Size(), "to", l.ValidEnd, "reason", l.Torn)
		if err := f.Truncate(l.ValidEnd); err != nil {
			return Segment{}, false, fmt.Errorf("storage: repair %s: %w", name, err)
		}
	}
	if err := f.Sync(); err != nil {
		return Segment{}, false, fmt.Errorf("storage: repair %s: %w", name, err)
	}
	d = d.Truncate(time.Millisecond) // as the name will say
	sealed := sealedName(start, d)
	if err := os.Rename(path, filepath.Join(dir, sealed)); err != nil {
		return Segment{}, false, fmt.Errorf("storage: repair: %w", err)
	}
	if err := atomicfile.SyncDir(dir); err != nil {
		return Segment{}, false, err
	}
	log.Info("recovered segment", "name", sealed, "fragments", len(l.Fragments))
	return Segment{Name: sealed, Start: start, Duration: d, Size: l.ValidEnd}, true, nil
}

// fileDuration is where the last sample of the last fragment ends: our
// segments start at decode time 0.
func fileDuration(f *os.File, l mp4scan.Layout) (time.Duration, error) {
	samples, err := mp4scan.ReadSamples(f, l.Fragments[len(l.Fragments)-1])
	if err != nil {
		return 0, err
	}
	if len(samples) == 0 {
		return 0, errors.New("last fragment has no samples")
	}
	last := samples[len(samples)-1]
	if end := last.DecodeTime + uint64(last.Duration); end > 24*3600*fmp4.Timescale {
		return 0, fmt.Errorf("implausible segment end %d ticks", end)
	}
	return ticksToDuration(last.DecodeTime + uint64(last.Duration)), nil
}

func ticksToDuration(ticks uint64) time.Duration {
	return time.Duration(ticks) * time.Second / fmp4.Timescale
}

func removeFile(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("storage: %w", err)
	}
	return nil
}
