package capture

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/camagent/camagent/internal/base/media"
)

// Backoff bounds used when ResilientOptions leaves them zero.
const (
	DefaultMinBackoff = 250 * time.Millisecond
	DefaultMaxBackoff = 10 * time.Second
)

// ResilientOptions configures a Resilient source. Zero fields take defaults.
type ResilientOptions struct {
	// First is an already opened source to start with; nil opens one on
	// the first Read.
	First Source
	// StallTimeout is how long Read waits for a frame before it declares
	// the device stalled and reopens it (default 2 s).
	StallTimeout time.Duration
	// MinBackoff and MaxBackoff bound the wait before each reopen attempt
	// (default 250 ms and 10 s); it doubles after every attempt that does
	// not lead to a frame and is jittered by ±25%.
	MinBackoff, MaxBackoff time.Duration
	Logger                 *slog.Logger
	Clock                  Clock
	// Jitter returns a number in [0, 1); default math/rand/v2.Float64.
	Jitter func() float64
}

// ResilientStats counts what a Resilient source has been through.
type ResilientStats struct {
	Frames uint64 // frames delivered
	// Drops counts frames the inner source reported missing through gaps
	// in its sequence numbers. Frames lost while a device was being
	// reopened are not counted: nobody numbered them.
	Drops          uint64
	Stalls         uint64 // reads that saw no frame within StallTimeout
	Errors         uint64 // reads that failed (ENODEV on unplug, I/O errors)
	Reopens        uint64 // successful reopens
	ReopenFailures uint64 // failed reopen attempts
}

// Resilient wraps a device so that stalls and unplugs become a pause in
// the frame stream rather than an error: when the inner source delivers
// nothing for StallTimeout or fails, Resilient closes it and reopens it
// through the factory with jittered exponential backoff, while the
// caller's Read stays blocked (until its context ends). Sequence numbers
// continue across reopens.
//
// Read must be called from one goroutine at a time; Close may be called
// concurrently and makes a blocked Read return ErrClosed.
//
// Resilient is a Source, not a long-lived component with the lifecycle
// shape of docs/design.md (Conventions): it has no goroutine of its own
// (recovery runs inside the caller's Read) and so nothing to wait for and
// no Done or Err; the capture loop that calls Read has the lifecycle.
// Close releases the device and is safe to call more than once.
type Resilient struct {
	open func(context.Context) (Source, error)
	opts ResilientOptions
	log  *slog.Logger
	// closing is cancelled by Close; every Read's context derives from it.
	closing  context.Context
	closeNow context.CancelFunc

	mu        sync.Mutex // guards the fields below
	inner     Source
	format    Format // of the latest inner source, kept while reopening
	stats     ResilientStats
	failures  int    // consecutive recoveries without a frame: the backoff exponent
	fresh     bool   // inner has not delivered a frame yet
	offset    uint64 // added to the inner Seq to continue our numbering
	lastInner uint64 // Seq of the inner source's previous frame
	nextSeq   uint64
	hadSource bool // an inner source existed before: reopens wait first
}

// errStalled is the cancellation cause of a read that timed out.
var errStalled = errors.New("no frame within the stall timeout")

// NewResilient returns a source that opens devices through open.
func NewResilient(open func(context.Context) (Source, error), opts ResilientOptions) *Resilient {
	if opts.StallTimeout <= 0 {
		opts.StallTimeout = DefaultStallTimeout
	}
	if opts.MinBackoff <= 0 {
		opts.MinBackoff = DefaultMinBackoff
	}
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = max(DefaultMaxBackoff, opts.MinBackoff)
	}
	opts.MaxBackoff = max(opts.MaxBackoff, opts.MinBackoff)
	if opts.Clock == nil {
		opts.Clock = systemClock{}
	}
	if opts.Jitter == nil {
		opts.Jitter = rand.Float64
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	r := &Resilient{open: open, opts: opts, log: log, fresh: true}
	r.closing, r.closeNow = context.WithCancel(context.Background())
	if opts.First != nil {
		r.inner = opts.First
		r.format = opts.First.Format()
		r.hadSource = true
	}
	return r
}

// Format is the format of the current device, or of the last one while
// reopening.
func (r *Resilient) Format() Format {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.format
}

// Stats returns a snapshot of the counters.
func (r *Resilient) Stats() ResilientStats {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.stats
}

// Recycle hands a frame buffer to the current device's source, if it
// reuses buffers (one from before a reopen fits if its size does).
func (r *Resilient) Recycle(data []byte) {
	r.mu.Lock()
	inner := r.inner
	r.mu.Unlock()
	if inner != nil {
		Recycle(inner, data)
	}
}

// Close closes the current device and ends any blocked Read. A second
// Close does nothing and returns nil.
func (r *Resilient) Close() error {
	r.closeNow()
	r.mu.Lock()
	inner := r.inner
	r.inner = nil
	r.mu.Unlock()
	if inner != nil {
		return inner.Close()
	}
	return nil
}

// Read returns the next frame, recovering the device as often as needed.
func (r *Resilient) Read(ctx context.Context) (media.RawFrame, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(r.closing, cancel)
	defer stop()
	for {
		inner, err := r.current(ctx)
		if err != nil {
			return media.RawFrame{}, r.closedOr(err)
		}
		frame, err := r.readInner(ctx, inner)
		if err == nil {
			return r.deliver(frame), nil
		}
		if ctx.Err() != nil || r.closing.Err() != nil {
			// The caller gave up or Close ran (which may have closed
			// inner before our ctx saw the cancellation): not a failure.
			return media.RawFrame{}, r.closedOr(err)
		}
		r.discard(inner, err)
	}
}

// closedOr maps any error seen after Close to ErrClosed.
func (r *Resilient) closedOr(err error) error {
	if r.closing.Err() != nil {
		return ErrClosed
	}
	return err
}

// readInner reads one frame, giving up after the stall timeout.
func (r *Resilient) readInner(ctx context.Context, inner Source) (media.RawFrame, error) {
	readCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	t := r.opts.Clock.AfterFunc(r.opts.StallTimeout, func() { cancel(errStalled) })
	defer t.Stop()
	frame, err := inner.Read(readCtx)
	if err != nil && ctx.Err() == nil && errors.Is(context.Cause(readCtx), errStalled) {
		err = errStalled
	}
	return frame, err
}

// deliver renumbers a frame so that Seq continues across devices, and
// counts the gaps the inner source reported.
func (r *Resilient) deliver(f media.RawFrame) media.RawFrame {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fresh {
		r.offset = r.nextSeq - f.Seq
		r.fresh = false
	} else if f.Seq > r.lastInner+1 {
		r.stats.Drops += f.Seq - r.lastInner - 1
	}
	r.lastInner = f.Seq
	f.Seq += r.offset
	r.nextSeq = f.Seq + 1
	r.stats.Frames++
	r.failures = 0
	return f
}

// discard closes an inner source that stalled or failed.
func (r *Resilient) discard(inner Source, err error) {
	r.mu.Lock()
	stalled := errors.Is(err, errStalled)
	if stalled {
		r.stats.Stalls++
	} else {
		r.stats.Errors++
	}
	if r.inner == inner {
		r.inner = nil
	}
	r.mu.Unlock()
	if stalled {
		r.log.Warn("capture stalled, reopening", "no_frame_for", r.opts.StallTimeout)
	} else {
		r.log.Warn("capture failed, reopening", "err", err)
	}
	if cerr := inner.Close(); cerr != nil {
		r.log.Debug("close after failure", "err", cerr)
	}
}

// current returns the open inner source, reopening with backoff until it
// succeeds or ctx ends. Only the very first open (when no First source was
// given) skips the wait.
func (r *Resilient) current(ctx context.Context) (Source, error) {
	for {
		r.mu.Lock()
		inner, failures, waitFirst := r.inner, r.failures, r.hadSource || r.failures > 0
		r.mu.Unlock()
		if inner != nil {
			return inner, nil
		}
		if waitFirst {
			wait := backoff(failures, r.opts.MinBackoff, r.opts.MaxBackoff, r.opts.Jitter())
			r.log.Debug("waiting before reopen", "wait", wait)
			if err := sleep(ctx, r.opts.Clock, wait, r.closing.Done()); err != nil {
				return nil, err
			}
		}
		src, err := r.open(ctx)
		r.mu.Lock()
		r.failures++
		if err != nil {
			r.stats.ReopenFailures++
			r.mu.Unlock()
			r.log.Warn("reopen failed", "err", err, "attempt", failures+1)
			continue
		}
		if r.closing.Err() != nil { // Close ran while we were opening
			r.mu.Unlock()
			src.Close()
			return nil, ErrClosed
		}
		reopen := r.hadSource
		if reopen {
			r.stats.Reopens++
		}
		r.inner, r.fresh, r.hadSource = src, true, true
		r.format = src.Format()
		r.mu.Unlock()
		if reopen {
			r.log.Info("capture reopened", "format", src.Format().String(), "attempts", failures+1)
		}
		return src, nil
	}
}

// backoff is the wait before reopen attempt n (from 0): lo doubled n
// times, capped at hi, then spread by ±25% with jitter in [0, 1) and kept
// within [lo, hi].
func backoff(n int, lo, hi time.Duration, jitter float64) time.Duration {
	d := lo
	for i := 0; i < n && d < hi; i++ {
		d *= 2
	}
	d = clamp(d, lo, hi)
	d = time.Duration(float64(d) * (0.75 + 0.5*jitter))
	return clamp(d, lo, hi)
}

func clamp(d, lo, hi time.Duration) time.Duration {
	if d < lo {
		return lo
	}
	if d > hi {
		return hi
	}
	return d
}

// String describes the counters for logs.
func (s ResilientStats) String() string {
	return fmt.Sprintf("frames=%d drops=%d stalls=%d errors=%d reopens=%d reopen_failures=%d",
		s.Frames, s.Drops, s.Stalls, s.Errors, s.Reopens, s.ReopenFailures)
}
