package storage

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/camagent/camagent/internal/base/fmp4"
	"github.com/camagent/camagent/internal/base/media"
)

// Stats are the recorder's counters since it started.
type Stats struct {
	MediaBytes    int64 `json:"media_bytes"`    // access unit bytes handed to the writer
	FileBytes     int64 `json:"file_bytes"`     // bytes written to segment files
	Fsyncs        int64 `json:"fsyncs"`         // fsync calls on segment files
	Fragments     int64 `json:"fragments"`      // fragments written
	Dropped       int64 `json:"dropped"`        // access units dropped (queue full)
	Deleted       int64 `json:"deleted"`        // segments deleted by retention or for space
	WriteErrors   int64 `json:"write_errors"`   // failed writes (the segment was closed)
	Segments      int   `json:"segments"`       // segments on disk
	RecordedBytes int64 `json:"recorded_bytes"` // their total size
}

// item is one unit of work for the run loop.
type item struct {
	au        media.AccessUnit
	track     *media.Track
	gapBefore bool // access units were dropped just before this one
}

// Recorder writes access units to segments in its own goroutine. Write and
// SetTrack never block the capture loop: when the disk is too slow the
// queue overflows and recording resumes at the next key frame. New starts
// it; Close stops it; Done and Err say when and why it stopped.
type Recorder struct {
	cfg  Config
	log  *slog.Logger
	in   chan item
	done chan struct{}
	stop chan struct{}
	once sync.Once

	gap bool // producer side only
	// ModeEvent: record access units captured within [activeFrom, activeUntil]
	// (unix ns), plus the pre-roll before activeFrom.
	activeFrom, activeUntil atomic.Int64

	mu   sync.Mutex
	segs []Segment // oldest first; the last may be Open

	mediaBytes, fileBytes, fsyncs, fragments, dropped, deleted, writeErrors atomic.Int64

	// run loop state
	track   media.Track
	cur     *segmentWriter
	needKey bool
	ring    preRoll
	written bool          // lastPTS is set
	lastPTS time.Duration // of the last access unit written
}

// New recovers the directory (trimming a torn last fragment) and starts
// the recorder.
func New(cfg Config) (*Recorder, error) {
	if err := cfg.applyDefaults(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("storage: %w", err)
	}
	segs, err := loadIndex(cfg.Dir, cfg.Logger)
	if err != nil {
		return nil, err
	}
	r := &Recorder{
		cfg: cfg, log: cfg.Logger, segs: segs,
		in:   make(chan item, cfg.QueueLength),
		done: make(chan struct{}),
		stop: make(chan struct{}),
		ring: preRoll{length: cfg.PreRoll},
	}
	r.enforceRetention()
	go r.run()
	return r, nil
}

// SetTrack announces the track of the access units that follow.
func (r *Recorder) SetTrack(t media.Track) { r.enqueue(item{track: &t}) }

// Write queues one access unit. It must be called from one goroutine.
func (r *Recorder) Write(au media.AccessUnit) { r.enqueue(item{au: au}) }

func (r *Recorder) enqueue(it item) {
	it.gapBefore = r.gap
	select {
	case r.in <- it:
		r.gap = false
	case <-r.done:
	default:
		r.gap = true
		r.dropped.Add(1)
	}
}

// Trigger records, in ModeEvent, from PreRoll before at until PostRoll
// after it; repeated calls extend the recording.
func (r *Recorder) Trigger(at time.Time) {
	until := at.Add(r.cfg.PostRoll).UnixNano()
	for {
		old := r.activeUntil.Load()
		if old >= until {
			return
		}
		if old < at.UnixNano() {
			r.activeFrom.Store(at.UnixNano()) // a new event, not an extension
		}
		if r.activeUntil.CompareAndSwap(old, until) {
			return
		}
	}
}

// Close writes out and seals the open segment and stops the recorder. It
// is safe to call more than once.
func (r *Recorder) Close() error {
	r.once.Do(func() { close(r.stop) })
	<-r.done
	return nil
}

// Done is closed when the recorder has stopped.
func (r *Recorder) Done() <-chan struct{} { return r.done }

// Err is why the recorder stopped, once Done is closed: always nil, since
// it stops only by Close. A failed write is not fatal: it is counted
// (Stats.WriteErrors) and recording resumes at the next key frame.
func (r *Recorder) Err() error {
	<-r.done
	return nil
}

// Dir is the recordings directory.
func (r *Recorder) Dir() string { return r.cfg.Dir }

// Segments returns the segments on disk, oldest first.
func (r *Recorder) Segments() []Segment {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Segment(nil), r.segs...)
}

// Stats returns the counters.
func (r *Recorder) Stats() Stats {
	s := Stats{
		MediaBytes: r.mediaBytes.Load(), FileBytes: r.fileBytes.Load(), Fsyncs: r.fsyncs.Load(),
		Fragments: r.fragments.Load(), Dropped: r.dropped.Load(), Deleted: r.deleted.Load(),
		WriteErrors: r.writeErrors.Load(),
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	s.Segments = len(r.segs)
	for _, seg := range r.segs {
		s.RecordedBytes += seg.Size
	}
	return s
}

func (r *Recorder) run() {
	defer close(r.done)
	tick := time.NewTicker(retentionInterval)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
			r.enforceRetention()
		case <-r.stop:
			r.drain()
			r.closeSegment()
			return
		case it := <-r.in:
			r.handle(it)
		}
	}
}

// drain writes what was queued before Close.
func (r *Recorder) drain() {
	for {
		select {
		case it := <-r.in:
			r.handle(it)
		default:
			return
		}
	}
}

func (r *Recorder) handle(it item) {
	if it.track != nil {
		if r.cur != nil && (it.track.Width != r.track.Width || it.track.Height != r.track.Height || it.track.Codec != r.track.Codec) {
			r.closeSegment()
		}
		r.track = *it.track
		return
	}
	au := it.au
	if au.Codec != media.CodecH264 {
		return // MJPEG is streamed live but not recorded
	}
	if it.gapBefore {
		r.ring.reset()
		r.flush()
		r.needKey = true
	}
	if r.needKey && !au.Key {
		return
	}
	r.needKey = false
	if r.cfg.Mode == ModeContinuous {
		r.write(au)
		return
	}
	r.ring.push(au)
	if t := au.Captured.UnixNano(); t > r.activeUntil.Load() || t < r.activeFrom.Load() {
		r.closeSegment()
		return
	}
	if r.cur == nil {
		for _, p := range r.ring.aus {
			if !r.written || p.PTS > r.lastPTS { // not already in the last event's file
				r.write(p)
			}
		}
		return
	}
	r.write(au)
}

// write adds au to the open segment, opening one at a key frame and
// starting the next once the segment is long enough.
func (r *Recorder) write(au media.AccessUnit) {
	if r.cur != nil && au.Key && au.PTS-r.cur.firstPTS >= r.cfg.SegmentDuration {
		r.closeSegment()
	}
	if r.cur == nil {
		if !au.Key {
			return
		}
		if err := r.openSegment(au); err != nil {
			r.writeErrors.Add(1)
			r.log.Warn("cannot start segment; retrying at the next key frame", "err", err)
			return
		}
	}
	err := r.cur.write(au)
	if errors.Is(err, fmp4.ErrParameterSetsChanged) {
		r.closeSegment()
		if err = r.openSegment(au); err == nil {
			err = r.cur.write(au)
		}
	}
	if err != nil {
		r.writeErrors.Add(1)
		r.log.Warn("recording write failed; closing segment, resuming at the next key frame", "err", err)
		r.closeSegment()
		r.needKey = true
		return
	}
	r.mediaBytes.Add(int64(len(au.Data)))
	r.written, r.lastPTS = true, au.PTS
}

// flush writes out the open fragment (before a gap in the stream).
func (r *Recorder) flush() {
	if r.cur != nil {
		if err := r.cur.w.Flush(); err != nil {
			r.log.Warn("recording flush failed", "err", err)
			r.closeSegment()
		}
	}
}

func (r *Recorder) openSegment(au media.AccessUnit) error {
	start := au.Captured
	if start.IsZero() {
		start = r.cfg.Now()
	}
	start = start.Truncate(time.Millisecond)
	r.mu.Lock()
	if n := len(r.segs); n > 0 && !start.After(r.segs[n-1].Start) {
		start = r.segs[n-1].Start.Add(time.Millisecond) // names stay unique and ordered
	}
	r.mu.Unlock()
	sw, err := newSegmentWriter(r, start, au.PTS)
	if err != nil {
		return err
	}
	r.cur = sw
	r.mu.Lock()
	r.segs = append(r.segs, Segment{Name: sw.name, Start: start, Open: true})
	r.mu.Unlock()
	return nil
}

// closeSegment writes the last fragment, then renames the file to its
// sealed name.
func (r *Recorder) closeSegment() {
	sw := r.cur
	if sw == nil {
		return
	}
	r.cur = nil
	if err := sw.close(); err != nil {
		r.log.Warn("closing segment", "name", sw.name, "err", err)
	}
	d := sw.duration().Truncate(time.Millisecond) // as the name will say
	sealed := sealedName(sw.start, d)
	dir := r.cfg.Dir
	if sw.fragments == 0 {
		// Nothing playable: the file holds at most an init segment.
		removeFile(filepath.Join(dir, sw.name))
		r.updateSegment(sw.name, nil)
		return
	}
	if err := os.Rename(filepath.Join(dir, sw.name), filepath.Join(dir, sealed)); err != nil {
		r.log.Warn("sealing segment", "err", err) // repaired at the next start
		sealed = sw.name
	}
	r.updateSegment(sw.name, &Segment{Name: sealed, Start: sw.start, Duration: d, Size: sw.size})
}

// updateSegment replaces (or with nil removes) the index entry name.
func (r *Recorder) updateSegment(name string, seg *Segment) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := len(r.segs) - 1; i >= 0; i-- {
		if r.segs[i].Name == name {
			if seg == nil {
				r.segs = append(r.segs[:i], r.segs[i+1:]...)
			} else {
				r.segs[i] = *seg
			}
			return
		}
	}
}
