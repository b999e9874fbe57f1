package viewer

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/camagent/camagent/stream"
)

// connectFunc opens a stream client, for watchResuming.
type connectFunc func(ctx context.Context) (*stream.Client, error)

// ResumeStats says how often and for how long a resuming watch was cut off.
type ResumeStats struct {
	Reconnects int     `json:"reconnects"`
	MaxGapSec  float64 `json:"max_gap_s"` // longest wall-clock time without a frame
}

// watchResuming is Watch that survives the connection: when frames stop
// for stall, or the connection fails, it reconnects (the relay or the
// camera may have restarted; connect finds it again) and keeps writing to
// the same output. Duration counts video received, so gaps are not padded.
func watchResuming(ctx context.Context, connect connectFunc, opts Options, stall time.Duration) (Summary, ResumeStats, error) {
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	var rs ResumeStats
	c, err := connect(ctx)
	if err != nil {
		return Summary{}, rs, err
	}
	sink, err := OpenSink(opts.Output, opts.Format, c.Track())
	if err != nil {
		c.Close()
		return Summary{}, rs, err
	}
	m := newMeter(now())
	var received time.Duration
	var lastPTS time.Duration
	havePTS := false
	lastFrame := now()
	for {
		fctx, cancel := context.WithTimeout(ctx, stall)
		f, err := c.ReadFrame(fctx)
		cancel()
		if ctx.Err() != nil {
			c.Close()
			sum, err := finish(m, now(), sink, c, opts, nil)
			return sum, rs, err
		}
		if err != nil {
			c.Close()
			next, err := reconnect(ctx, connect, now, lastFrame, &rs, opts)
			if err != nil {
				sum, _ := finish(m, now(), sink, c, opts, err)
				return sum, rs, err
			}
			c, havePTS = next, false
			continue
		}
		t := now()
		if gap := t.Sub(lastFrame).Seconds(); gap > rs.MaxGapSec {
			rs.MaxGapSec = gap
		}
		lastFrame = t
		if havePTS && f.PTS > lastPTS {
			received += f.PTS - lastPTS
		}
		lastPTS, havePTS = f.PTS, true
		if opts.Duration > 0 && received >= opts.Duration {
			c.Close()
			sum, err := finish(m, t, sink, c, opts, nil)
			return sum, rs, err
		}
		if err := sink.WriteAccessUnit(f.AccessUnit); err != nil {
			c.Close()
			sum, err := finish(m, t, sink, c, opts, fmt.Errorf("write %s: %w", opts.Output, err))
			return sum, rs, err
		}
		m.add(len(f.Data), f.Key, t.Sub(f.Captured))
	}
}

func reconnect(ctx context.Context, connect connectFunc, now func() time.Time, lastFrame time.Time, rs *ResumeStats, opts Options) (*stream.Client, error) {
	for {
		if opts.Progress != nil {
			fmt.Fprintf(opts.Progress, "stream lost %.1fs ago; reconnecting\n", now().Sub(lastFrame).Seconds())
		}
		c, err := connect(ctx)
		if err == nil {
			rs.Reconnects++
			return c, nil
		}
		if ctx.Err() != nil {
			return nil, errors.Join(ctx.Err(), err)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}
