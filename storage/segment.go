package storage

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/camagent/camagent/internal/base/atomicfile"
	"github.com/camagent/camagent/internal/base/fmp4"
	"github.com/camagent/camagent/internal/base/media"
)

// maxSpaceRetries bounds how many segments one write may delete to find
// room on a full disk.
const maxSpaceRetries = 16

// segmentWriter is the open segment: an fmp4.Writer over a file. It is
// the io.Writer under the fmp4.Writer, which writes each fragment with one
// Write, so a failed write can be undone whole.
type segmentWriter struct {
	r        *Recorder
	name     string
	start    time.Time
	firstPTS time.Duration
	f        *os.File
	w        *fmp4.Writer

	size      int64 // bytes written, all whole boxes
	fragments int
	lastPTS   time.Duration // of the last access unit, relative to firstPTS
	lastDur   time.Duration // between the last two access units
}

func newSegmentWriter(r *Recorder, start time.Time, firstPTS time.Duration) (*segmentWriter, error) {
	name := openName(start)
	f, err := os.OpenFile(filepath.Join(r.cfg.Dir, name), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("storage: %w", err)
	}
	s := &segmentWriter{r: r, name: name, start: start, firstPTS: firstPTS, f: f}
	s.w, err = fmp4.NewWriter(s, r.track, fmp4.Options{
		MaxFragmentDuration: r.cfg.FragmentDuration,
		AfterFragment:       s.afterFragment,
	})
	if err != nil {
		f.Close()
		removeFile(f.Name())
		return nil, err
	}
	return s, nil
}

func (s *segmentWriter) write(au media.AccessUnit) error {
	rel := au.PTS - s.firstPTS
	if s.w == nil {
		return fmp4.ErrClosed
	}
	au.PTS = rel
	if err := s.w.WriteAccessUnit(au); err != nil {
		return err
	}
	if rel > s.lastPTS {
		s.lastDur = rel - s.lastPTS
	}
	s.lastPTS = rel
	return nil
}

// Write appends p. On ENOSPC it undoes the partial write, has the recorder
// delete the oldest segment (or, with none left, the oldest events) and
// tries again: a full disk costs old video,
// never new.
func (s *segmentWriter) Write(p []byte) (int, error) {
	for attempt := 0; ; attempt++ {
		n, err := s.f.WriteAt(p, s.size)
		s.r.fileBytes.Add(int64(n))
		if err == nil {
			s.size += int64(n)
			return n, nil
		}
		if n > 0 {
			s.f.Truncate(s.size) // keep the file made of whole boxes
		}
		if !errors.Is(err, syscall.ENOSPC) || attempt == maxSpaceRetries || !s.r.makeRoom(int64(len(p))) {
			return 0, err
		}
	}
}

// afterFragment makes the fragment durable (and, for the first one, the
// file's directory entry), then applies retention.
func (s *segmentWriter) afterFragment() error {
	if s.r.cfg.Fsync {
		if err := s.f.Sync(); err != nil {
			return err
		}
		s.r.fsyncs.Add(1)
		if s.fragments == 0 {
			if err := atomicfile.SyncDir(s.r.cfg.Dir); err != nil {
				return err
			}
		}
	}
	s.fragments++
	s.r.fragments.Add(1)
	s.r.updateSegment(s.name, &Segment{Name: s.name, Start: s.start, Duration: s.lastPTS, Size: s.size, Open: true})
	s.r.enforceRetention()
	return nil
}

// duration is the length of the written video: the last sample gets the
// previous one's duration, as fmp4.Writer does.
func (s *segmentWriter) duration() time.Duration {
	return s.lastPTS + s.lastDur
}

func (s *segmentWriter) close() error {
	var err error
	if s.w != nil {
		err = s.w.Close()
		s.w = nil
	}
	if s.r.cfg.Fsync {
		if serr := s.f.Sync(); serr != nil && err == nil {
			err = serr
		}
		s.r.fsyncs.Add(1)
	}
	if cerr := s.f.Close(); cerr != nil && err == nil {
		err = cerr
	}
	return err
}
