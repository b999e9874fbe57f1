// Package viewer is the phone's side of camagent: it dials a paired camera
// (Dialer, the one way to reach it, direct or through its relays), runs a
// viewing session on the link (Session: stream client, NAT traversal,
// resuming), and writes the live stream as raw H.264 or MP4 while
// measuring frame rate, bitrate and latency.
package viewer

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/camagent/camagent/stream"
)

// Options control one viewing session.
type Options struct {
	// Output is a file path, "-" for standard output, or "" to discard.
	Output string
	// Format is "raw" (Annex-B H.264 or concatenated JPEGs), "mp4", or ""
	// to choose by the output's extension.
	Format string
	// Duration of video to record, measured on the stream's own clock
	// (presentation times), so 10 s at 30 fps is 300 frames; 0 runs until
	// ctx ends.
	Duration time.Duration
	// Progress receives a figures line every Interval; nil for none.
	Progress io.Writer
	Interval time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Paths, if set, gives the path figures for the summary (Link.PathStats
	// or Paths.Stats; a Session sets it).
	Paths func() PathStats
}

// Watch receives frames from c until opts.Duration of video has arrived or
// ctx ends, writing them to opts.Output, and returns the figures.
func Watch(ctx context.Context, c *stream.Client, opts Options) (Summary, error) {
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	if opts.Interval <= 0 {
		opts.Interval = time.Second
	}
	sink, err := OpenSink(opts.Output, opts.Format, c.Track())
	if err != nil {
		return Summary{}, err
	}
	m := newMeter(now())
	nextReport := now().Add(opts.Interval)
	var firstPTS time.Duration
	started := false
	for {
		f, err := c.ReadFrame(ctx)
		if err != nil {
			if ctx.Err() != nil {
				err = nil // the user's Ctrl-C or deadline: a normal end
			}
			return finish(m, now(), sink, c, opts, err)
		}
		if !started {
			firstPTS, started = f.PTS, true
		}
		if opts.Duration > 0 && f.PTS-firstPTS >= opts.Duration {
			return finish(m, now(), sink, c, opts, nil)
		}
		if err := sink.WriteAccessUnit(f.AccessUnit); err != nil {
			return finish(m, now(), sink, c, opts, fmt.Errorf("write %s: %w", opts.Output, err))
		}
		t := now()
		m.add(len(f.Data), f.Key, t.Sub(f.Captured))
		if opts.Progress != nil && !t.Before(nextReport) {
			fmt.Fprintln(opts.Progress, m.line(t))
			nextReport = t.Add(opts.Interval)
		}
	}
}

func finish(m *meter, t time.Time, sink Sink, c *stream.Client, opts Options, err error) (Summary, error) {
	s := m.summary(t)
	tr := c.Track()
	s.Camera, s.Codec, s.Width, s.Height = c.CameraName(), string(tr.Codec), tr.Width, tr.Height
	s.GroupsSkipped = c.Stats().GroupsSkipped
	s.Output = opts.Output
	if opts.Paths != nil {
		ps := opts.Paths()
		s.PathStats = &ps
	}
	if cerr := sink.Close(); cerr != nil && err == nil {
		err = fmt.Errorf("close %s: %w", opts.Output, cerr)
	}
	return s, err
}
