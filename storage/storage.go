// Package storage records the camera's H.264 to fragmented MP4 segments on
// the board's flash, so that recordings survive power cuts: fragments of at
// most a second are fsynced as they are written, the segment being written
// is trimmed back to its last complete fragment at the next start, and
// retention by size, age and free space deletes the oldest segments first.
package storage

import (
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"
)

// Recording modes.
const (
	ModeOff        = "off"
	ModeContinuous = "continuous"
	ModeEvent      = "event" // record around Trigger calls, with pre- and post-roll
)

// Config configures a Recorder.
type Config struct {
	// Dir holds the segments (one directory per camera, under the state dir).
	Dir string
	// Mode is ModeContinuous or ModeEvent.
	Mode string
	// SegmentDuration is the target length of a file; a segment is cut at
	// the first key frame after it.
	SegmentDuration time.Duration
	// FragmentDuration bounds a fragment, the unit a power cut can lose
	// (at most 1 s).
	FragmentDuration time.Duration
	// Fsync makes each fragment durable before the next is written.
	Fsync bool
	// Retention: 0 disables a bound.
	MaxBytes int64
	MaxAge   time.Duration
	MinFree  int64
	// Companion, if set, is kept under the same bounds (motion events and
	// their snapshots; retention.go).
	Companion Companion
	// PreRoll and PostRoll widen event recordings (ModeEvent).
	PreRoll, PostRoll time.Duration
	// QueueLength is how many access units may wait for the writer.
	QueueLength int

	Logger *slog.Logger
	// Now is the clock for retention by age; nil means time.Now.
	Now func() time.Time
	// FreeSpace reports the bytes available in dir; nil means statfs.
	FreeSpace func(dir string) (int64, error)
}

func (c *Config) applyDefaults() error {
	if c.Dir == "" {
		return errors.New("storage: no directory")
	}
	switch c.Mode {
	case ModeContinuous, ModeEvent:
	default:
		return fmt.Errorf("storage: mode %q is neither %s nor %s", c.Mode, ModeContinuous, ModeEvent)
	}
	if c.SegmentDuration <= 0 {
		c.SegmentDuration = time.Minute
	}
	if c.FragmentDuration <= 0 || c.FragmentDuration > time.Second {
		c.FragmentDuration = time.Second
	}
	if c.QueueLength <= 0 {
		c.QueueLength = 256
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.FreeSpace == nil {
		c.FreeSpace = freeSpace
	}
	return nil
}

// Segment is one recorded file.
type Segment struct {
	Name     string        `json:"name"`
	Start    time.Time     `json:"start"`
	Duration time.Duration `json:"duration"`
	Size     int64         `json:"size"`
	// Open is set while the segment is being written.
	Open bool `json:"open,omitempty"`
}

// End is when the segment's last sample ends.
func (s Segment) End() time.Time { return s.Start.Add(s.Duration) }

// File names: segments are named by the UTC wall-clock time of their first
// frame, to the millisecond. While written a segment is START.mp4; once
// closed (or repaired at start-up) it is renamed START_DURATIONms.mp4, so
// that start-up needs only the directory listing for all but the segment
// that was open when the power went.
const (
	timeLayout = "20060102T150405.000Z"
	ext        = ".mp4"
)

func openName(start time.Time) string { return start.UTC().Format(timeLayout) + ext }

func sealedName(start time.Time, d time.Duration) string {
	return start.UTC().Format(timeLayout) + "_" + strconv.FormatInt(d.Milliseconds(), 10) + "ms" + ext
}

// parseName returns the start, duration and whether the name is sealed.
func parseName(name string) (start time.Time, d time.Duration, sealed bool, err error) {
	base, ok := strings.CutSuffix(name, ext)
	if !ok {
		return start, 0, false, fmt.Errorf("storage: %q is not an MP4 segment", name)
	}
	stamp, dur, sealed := strings.Cut(base, "_")
	start, err = time.Parse(timeLayout, stamp)
	if err != nil {
		return start, 0, false, fmt.Errorf("storage: segment name %q: %w", name, err)
	}
	if sealed {
		ms, ok := strings.CutSuffix(dur, "ms")
		n, perr := strconv.ParseInt(ms, 10, 64)
		if !ok || perr != nil || n < 0 || n > int64(24*time.Hour/time.Millisecond) {
			return start, 0, false, fmt.Errorf("storage: segment name %q: bad duration", name)
		}
		d = time.Duration(n) * time.Millisecond
	}
	return start, d, sealed, nil
}

// ParseSegmentName reads a segment file name (sealed or open; an open
// one has zero duration).
func ParseSegmentName(name string) (Segment, error) {
	start, d, sealed, err := parseName(name)
	return Segment{Name: name, Start: start, Duration: d, Open: !sealed}, err
}
