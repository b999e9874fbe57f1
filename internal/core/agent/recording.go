package agent

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/camagent/camagent/internal/base/config"
	"github.com/camagent/camagent/internal/base/media"
	"github.com/camagent/camagent/motion"
	"github.com/camagent/camagent/storage"
	"github.com/camagent/camagent/storage/playback"
	"github.com/camagent/camagent/storage/recwire"
)

// recording is the agent's recorder, motion monitor and still-frame
// requests. A nil *recording (nothing configured) does nothing. Its
// goroutines are the recorder's, the monitor's and, when motion runs
// without recording, the pruning of events; Close stops them all.
type recording struct {
	rec     *storage.Recorder // nil when storage.mode is off
	monitor *motion.Monitor   // nil when motion is off
	events  *motion.Log       // nil when motion is off
	stills  *stills           // snapshot requests (still.go)
	// recRequests bounds camagent-rec/1 requests per connection.
	recRequests int
	log         *slog.Logger
	// stopPrune ends the pruning of events when nothing is recorded (the
	// recorder prunes them otherwise); pruned is closed when it has.
	stopPrune, pruned chan struct{}

	closeOnce sync.Once
	done      chan struct{} // closed when Close has stopped everything
}

// RecordingsDir and EventsDir are where the agent keeps recordings and
// motion events by default.
func RecordingsDir(cfg config.Config) string {
	if cfg.Storage.Dir != "" {
		return cfg.Storage.Dir
	}
	return filepath.Join(cfg.StateDir, "recordings")
}

// EventsDir holds the event log and snapshots.
func EventsDir(cfg config.Config) string { return filepath.Join(cfg.StateDir, "events") }

func newRecording(cfg config.Config, log *slog.Logger) (*recording, error) {
	r := &recording{stills: newStills(cfg.Limits.StillEncodes, log.With("component", "stills")), recRequests: cfg.Limits.RecRequests, log: log, done: make(chan struct{})}
	sc := cfg.Storage
	if sc.Mode == storage.ModeEvent && !cfg.Motion.Enabled {
		return nil, errors.New("storage.mode event needs motion.enabled: true")
	}
	if cfg.Motion.Enabled {
		// The event log first: the recorder keeps it under its bounds.
		events, err := motion.OpenLog(EventsDir(cfg))
		if err != nil {
			return nil, err
		}
		r.events = events
	}
	bounds := storage.Config{
		Mode:            sc.Mode,
		SegmentDuration: sc.SegmentDuration, FragmentDuration: sc.FragmentDuration, Fsync: sc.Fsync,
		MaxBytes: int64(sc.MaxMegabytes) << 20, MaxAge: sc.MaxAge, MinFree: int64(sc.MinFreeMegabytes) << 20,
		PreRoll: sc.PreRoll, PostRoll: sc.PostRoll,
		Logger: log.With("component", "storage"),
	}
	if r.events != nil {
		bounds.Companion = r.events
	}
	if sc.Mode != storage.ModeOff {
		bounds.Dir = RecordingsDir(cfg)
		rec, err := storage.New(bounds)
		if err != nil {
			r.Close()
			return nil, err
		}
		r.rec = rec
		log.Info("recording", "mode", sc.Mode, "dir", RecordingsDir(cfg), "segments", len(rec.Segments()))
	} else if r.events != nil {
		// Motion without recording: the snapshots still must not fill the
		// card, so the same bounds apply to them alone.
		bounds.Dir = EventsDir(cfg)
		r.stopPrune, r.pruned = make(chan struct{}), make(chan struct{})
		go r.pruneEvents(bounds)
	}
	if cfg.Motion.Enabled {
		if err := r.openMotion(cfg, log); err != nil {
			r.Close()
			return nil, err
		}
	}
	return r, nil
}

// eventPruneInterval is how often events are pruned when nothing is
// recorded.
const eventPruneInterval = time.Minute

func (r *recording) pruneEvents(bounds storage.Config) {
	defer close(r.pruned)
	t := time.NewTicker(eventPruneInterval)
	defer t.Stop()
	for {
		storage.PruneCompanion(bounds, r.events)
		select {
		case <-r.stopPrune:
			return
		case <-t.C:
		}
	}
}

func (r *recording) openMotion(cfg config.Config, log *slog.Logger) error {
	mc := cfg.Motion
	det := motion.DetectorConfig{Sensitivity: mc.Sensitivity}
	for _, z := range mc.Zones {
		rect, err := motion.ParseRect(z)
		if err != nil {
			return fmt.Errorf("motion.zones: %w", err)
		}
		det.Zones = append(det.Zones, rect)
	}
	for _, m := range mc.Masks {
		rect, err := motion.ParseRect(m)
		if err != nil {
			return fmt.Errorf("motion.masks: %w", err)
		}
		det.Masks = append(det.Masks, rect)
	}
	mcfg := motion.MonitorConfig{Detector: det, Interval: mc.Interval, Cooldown: mc.Cooldown,
		Log: r.events, Logger: log.With("component", "motion")}
	if r.rec != nil {
		mcfg.OnMotion = r.rec.Trigger
	}
	r.monitor = motion.NewMonitor(mcfg)
	return nil
}

// observe runs motion detection and hands the raw frame, before it is
// encoded, to waiting still requests.
func (r *recording) observe(f media.RawFrame) {
	if r == nil {
		return
	}
	if r.monitor != nil {
		r.monitor.Observe(f)
	}
	r.stills.offer(f)
}

func (r *recording) setTrack(t media.Track) {
	if r != nil && r.rec != nil {
		r.rec.SetTrack(t)
	}
}

func (r *recording) write(au media.AccessUnit) {
	if r != nil && r.rec != nil {
		r.rec.Write(au)
	}
}

// Close ends an event in progress, seals the open segment and waits for
// the goroutines to end. It is safe to call more than once; every call
// waits.
func (r *recording) Close() error {
	if r == nil {
		return nil
	}
	r.closeOnce.Do(func() {
		if r.monitor != nil {
			r.monitor.Close()
		}
		if r.stopPrune != nil {
			close(r.stopPrune)
			<-r.pruned
		}
		// The recorder before the log: its retention prunes the log.
		if r.rec != nil {
			r.rec.Close()
		}
		if r.events != nil {
			r.events.Close()
		}
		close(r.done)
	})
	<-r.done
	return nil
}

// Done is closed once Close has stopped everything.
func (r *recording) Done() <-chan struct{} { return r.done }

// Err is nil once Done is closed: recording stops only by Close, and
// failures to record are logged, never fatal to the agent.
func (r *recording) Err() error {
	<-r.done
	return nil
}

// playbackSource is what the recordings protocol serves.
func (r *recording) playbackSource() playback.Source {
	src := playback.Source{Still: r.stills.still, MaxRequests: r.recRequests}
	if r.rec != nil {
		src.Recorder = r.rec
	}
	if r.events != nil {
		src.Events = motionEvents{dir: r.events.Dir()}
	}
	return src
}

// motionEvents serves motion's event log to the recordings protocol.
type motionEvents struct{ dir string }

func (m motionEvents) Events() ([]recwire.Event, error) {
	events, err := motion.ReadEvents(m.dir)
	if err != nil {
		return nil, err
	}
	out := make([]recwire.Event, len(events))
	for i, e := range events {
		out[i] = recwire.Event{ID: e.ID, Start: e.Start, End: e.End, Score: e.Score}
	}
	return out, nil
}

func (m motionEvents) Snapshot(id string) ([]byte, error) {
	return os.ReadFile(filepath.Join(m.dir, id+".jpg"))
}
