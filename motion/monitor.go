package motion

import (
	"bytes"
	"log/slog"
	"sync"
	"time"

	"github.com/camagent/camagent/internal/base/media"
)

// MonitorConfig configures a Monitor.
type MonitorConfig struct {
	Detector DetectorConfig
	// Interval is the least time between analysed frames.
	Interval time.Duration
	// Cooldown: an event ends after this long without motion.
	Cooldown time.Duration
	// Log receives the events (nil: none are kept).
	Log *Log
	// OnMotion is called for every frame with motion, e.g. to trigger an
	// event recording.
	OnMotion func(at time.Time)
	Logger   *slog.Logger
}

// Monitor turns per-frame motion into events with snapshots. Observe is
// called from the capture loop, one frame at a time, and not concurrently
// with Close. The Monitor has no loop of its own: its goroutines write
// snapshots, and Close waits for them; Done and Err complete the
// lifecycle shape (docs/design.md, Conventions).
type Monitor struct {
	cfg MonitorConfig
	log *slog.Logger
	det *Detector

	last       time.Time // last analysed frame
	lastMotion time.Time
	current    *Event
	errLogged  bool

	snapshots sync.WaitGroup
	mu        sync.Mutex
	events    int

	closeOnce sync.Once
	closed    bool          // Close has run: Observe ignores frames
	done      chan struct{} // closed when Close has written the last snapshot
}

// NewMonitor makes a monitor.
func NewMonitor(cfg MonitorConfig) *Monitor {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Cooldown <= 0 {
		cfg.Cooldown = 5 * time.Second
	}
	return &Monitor{cfg: cfg, log: cfg.Logger, det: NewDetector(cfg.Detector), done: make(chan struct{})}
}

// Events is how many events have started.
func (m *Monitor) Events() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.events
}

// Observe analyses the frame if Interval has passed since the last one.
// It reads the frame only during the call. After Close it does nothing.
func (m *Monitor) Observe(f media.RawFrame) {
	if m.closed {
		return
	}
	t := f.Captured
	if t.IsZero() {
		t = time.Now()
	}
	if !m.last.IsZero() && t.Sub(m.last) < m.cfg.Interval {
		return
	}
	m.last = t
	res, err := m.det.Analyse(f)
	if err != nil {
		if !m.errLogged {
			m.log.Warn("motion detection cannot use these frames", "err", err)
			m.errLogged = true
		}
		return
	}
	switch {
	case res.Motion:
		m.lastMotion = t
		if m.cfg.OnMotion != nil {
			m.cfg.OnMotion(t)
		}
		if m.current == nil {
			m.start(f, t, res.Score)
		} else {
			m.current.Score = max(m.current.Score, res.Score)
		}
	case m.current != nil && t.Sub(m.lastMotion) >= m.cfg.Cooldown:
		m.end(m.lastMotion)
	}
}

func (m *Monitor) start(f media.RawFrame, t time.Time, score float64) {
	id := t.UTC().Format("20060102T150405.000Z")
	ev := &Event{ID: id, Start: t, Score: score}
	m.current = ev
	m.mu.Lock()
	m.events++
	m.mu.Unlock()
	m.log.Info("motion event started", "id", id, "score", score)
	if m.cfg.Log == nil {
		return
	}
	ev.Snapshot = id + ".jpg"
	frame := f
	frame.Data = bytes.Clone(f.Data) // the capture loop reuses its buffers
	m.snapshots.Add(1)
	go func() {
		defer m.snapshots.Done()
		m.writeSnapshot(frame, ev.Snapshot)
	}()
	if err := m.cfg.Log.append(record{Kind: "start", Event: *ev}); err != nil {
		m.log.Warn("event log", "err", err)
	}
}

func (m *Monitor) writeSnapshot(f media.RawFrame, name string) {
	jpg, err := JPEG(f, 85)
	if err == nil {
		err = m.cfg.Log.saveSnapshot(name, jpg)
	}
	if err != nil {
		m.log.Warn("event snapshot", "err", err)
	}
}

func (m *Monitor) end(at time.Time) {
	ev := m.current
	m.current = nil
	ev.End = at
	m.log.Info("motion event ended", "id", ev.ID, "duration", ev.End.Sub(ev.Start), "score", ev.Score)
	if m.cfg.Log != nil {
		if err := m.cfg.Log.append(record{Kind: "end", Event: *ev}); err != nil {
			m.log.Warn("event log", "err", err)
		}
	}
}

// Close ends an event in progress and waits for snapshots to be written.
// It is safe to call more than once; every call waits.
func (m *Monitor) Close() error {
	m.closeOnce.Do(func() {
		m.closed = true
		if m.current != nil {
			m.end(m.lastMotion)
		}
		m.snapshots.Wait()
		close(m.done)
	})
	<-m.done
	return nil
}

// Done is closed once Close has ended the event in progress and every
// snapshot has been written.
func (m *Monitor) Done() <-chan struct{} { return m.done }

// Err is nil once Done is closed: the Monitor stops only by Close, and a
// failure to detect or to save an event is logged, never fatal.
func (m *Monitor) Err() error {
	<-m.done
	return nil
}
