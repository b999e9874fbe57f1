package storage

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/camagent/camagent/internal/base/fmp4"
	"github.com/camagent/camagent/internal/base/h264"
	"github.com/camagent/camagent/internal/base/media"
	"github.com/camagent/camagent/storage/mp4scan"
)

// ReadRange calls fn with the recorded access units from the last key
// frame at or before from (so that the first one decodes) until to, in
// order, across segments. Each unit's Captured is its wall-clock time and
// its PTS counts from the first unit passed to fn. segs is an index as
// returned by Recorder.Segments; files deleted meanwhile are skipped.
func ReadRange(ctx context.Context, dir string, segs []Segment, from, to time.Time, fn func(media.AccessUnit) error) error {
	rd := rangeReader{from: from, to: to, fn: fn}
	for _, seg := range segs {
		if !seg.Start.Before(to) || (!seg.Open && !seg.End().After(from)) {
			continue
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		done, err := rd.segment(ctx, dir, seg)
		if err != nil || done {
			return err
		}
	}
	// Frames held back here all come before from: nothing to play.
	return nil
}

type rangeReader struct {
	from, to time.Time
	fn       func(media.AccessUnit) error
	held     []media.AccessUnit // the group of pictures in progress before from
	started  bool
	origin   time.Time
}

// segment reads one file; done means to was reached.
func (rd *rangeReader) segment(ctx context.Context, dir string, seg Segment) (done bool, err error) {
	f, err := os.Open(filepath.Join(dir, seg.Name))
	if os.IsNotExist(err) {
		return false, nil // deleted by retention meanwhile
	}
	if err != nil {
		return false, fmt.Errorf("storage: %w", err)
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return false, fmt.Errorf("storage: %w", err)
	}
	l, err := mp4scan.Scan(f, info.Size())
	if err != nil {
		return false, fmt.Errorf("storage: %s: %w", seg.Name, err)
	}
	rd.held = rd.held[:0] // a segment starts with a key frame
	for _, frag := range l.Fragments {
		if err := ctx.Err(); err != nil {
			return false, err
		}
		samples, err := mp4scan.ReadSamples(f, frag)
		if err != nil {
			return false, fmt.Errorf("storage: %s: %w", seg.Name, err)
		}
		for _, s := range samples {
			at := seg.Start.Add(time.Duration(s.DecodeTime) * time.Second / fmp4.Timescale)
			if !at.Before(rd.to) {
				return true, nil // held frames, if any, precede from: nothing to play
			}
			data, err := h264.AVCCToAnnexB(s.Data)
			if err != nil {
				return false, fmt.Errorf("storage: %s: %w", seg.Name, err)
			}
			au := media.AccessUnit{Codec: media.CodecH264, Data: data, Key: s.Key, Captured: at}
			if err := rd.add(au); err != nil {
				return false, err
			}
		}
	}
	return false, nil
}

// add holds frames before from (from the latest key frame) and passes
// the rest on.
func (rd *rangeReader) add(au media.AccessUnit) error {
	if !rd.started && au.Captured.Before(rd.from) {
		if au.Key {
			rd.held = rd.held[:0]
		}
		if au.Key || len(rd.held) > 0 {
			rd.held = append(rd.held, au)
		}
		return nil
	}
	if err := rd.emitHeld(); err != nil {
		return err
	}
	return rd.emit(au)
}

func (rd *rangeReader) emitHeld() error {
	for _, au := range rd.held {
		if err := rd.emit(au); err != nil {
			return err
		}
	}
	rd.held = rd.held[:0]
	return nil
}

func (rd *rangeReader) emit(au media.AccessUnit) error {
	if !rd.started {
		rd.started, rd.origin = true, au.Captured
	}
	au.PTS = au.Captured.Sub(rd.origin)
	return rd.fn(au)
}
