package storage

import (
	"log/slog"
	"path/filepath"
	"time"
)

// Companion is what a camera keeps beside its recordings, motion events
// and their snapshots (motion.Log), which retention bounds together with
// them: it counts toward MaxBytes and MinFree, goes once older than MaxAge
// or than the oldest recording kept, and, when no closed segment is left
// to delete, goes oldest first to make room.
type Companion interface {
	// Bytes is the space it takes.
	Bytes() int64
	// PruneBefore removes what ended before t; it returns the bytes freed.
	PruneBefore(t time.Time) (int64, error)
	// PruneBytes removes the oldest items until n bytes are freed.
	PruneBytes(n int64) (int64, error)
}

// retentionInterval is how often retention runs when nothing is being
// written (event mode without motion): ages pass without fragments.
const retentionInterval = time.Minute

// enforceRetention deletes the oldest closed segments while any bound is
// exceeded: older than MaxAge, more than MaxBytes in total, or less than
// MinFree left on the filesystem. The open segment is never deleted.
// The Companion goes with the recordings: first what is older than MaxAge
// or than the oldest segment, then, once only the open segment is left,
// the oldest of it while a bound is still broken.
func (r *Recorder) enforceRetention() {
	now := r.cfg.Now()
	for {
		r.pruneCompanion(now)
		why, excess := r.retentionReason(now)
		if why == "" {
			return
		}
		if r.hasClosed() {
			if !r.deleteOldest(why) {
				return
			}
			continue
		}
		if !pruneCompanionBytes(r.cfg.Companion, excess, why, r.log) {
			return
		}
	}
}

// pruneCompanion removes events older than the oldest recording kept (the
// open one counts) or than MaxAge.
func (r *Recorder) pruneCompanion(now time.Time) {
	if r.cfg.Companion == nil {
		return
	}
	var cutoff time.Time
	r.mu.Lock()
	if len(r.segs) > 0 {
		cutoff = r.segs[0].Start
	}
	r.mu.Unlock()
	if r.cfg.MaxAge > 0 {
		if byAge := now.Add(-r.cfg.MaxAge); byAge.After(cutoff) {
			cutoff = byAge
		}
	}
	if cutoff.IsZero() {
		return // no recording yet and no age bound
	}
	if freed, err := r.cfg.Companion.PruneBefore(cutoff); err != nil {
		r.log.Warn("retention: cannot prune events", "err", err)
	} else if freed > 0 {
		r.log.Info("pruned events", "before", cutoff, "freed", freed)
	}
}

// pruneCompanionBytes frees excess bytes (at least one item) of c; false if
// nothing could be freed.
func pruneCompanionBytes(c Companion, excess int64, why string, log *slog.Logger) bool {
	if c == nil {
		return false
	}
	freed, err := c.PruneBytes(max(excess, 1))
	if err != nil {
		log.Warn("retention: cannot prune events", "err", err)
	}
	if freed > 0 {
		log.Info("pruned events", "reason", why, "freed", freed)
	}
	return freed > 0
}

// retentionReason names the bound broken, or "", and for the size bounds
// how many bytes are too many.
func (r *Recorder) retentionReason(now time.Time) (string, int64) {
	r.mu.Lock()
	var total int64
	for _, s := range r.segs {
		total += s.Size
	}
	oldest, ok := r.oldestClosedLocked()
	r.mu.Unlock()
	if ok && r.cfg.MaxAge > 0 && oldest.End().Before(now.Add(-r.cfg.MaxAge)) {
		return "older than storage.max_age", 0
	}
	if r.cfg.Companion != nil {
		total += r.cfg.Companion.Bytes()
	}
	return sizeReason(r.cfg, total, r.log)
}

// sizeReason checks MaxBytes against total and MinFree against the
// filesystem.
func sizeReason(cfg Config, total int64, log *slog.Logger) (string, int64) {
	if cfg.MaxBytes > 0 && total > cfg.MaxBytes {
		return "over storage.max_bytes", total - cfg.MaxBytes
	}
	if cfg.MinFree > 0 {
		free, err := cfg.FreeSpace(cfg.Dir)
		if err != nil {
			log.Warn("cannot check free space", "err", err)
			return "", 0
		}
		if free < cfg.MinFree {
			return "under storage.min_free", cfg.MinFree - free
		}
	}
	return "", 0
}

func (r *Recorder) hasClosed() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	_, ok := r.oldestClosedLocked()
	return ok
}

func (r *Recorder) oldestClosedLocked() (Segment, bool) {
	for _, s := range r.segs {
		if !s.Open {
			return s, true
		}
	}
	return Segment{}, false
}

// makeRoom frees space for a write that failed with ENOSPC: the oldest
// closed segment, or, with none left, the oldest events.
func (r *Recorder) makeRoom(need int64) bool {
	if r.hasClosed() {
		return r.deleteOldest("disk full")
	}
	return pruneCompanionBytes(r.cfg.Companion, need, "disk full", r.log)
}

// deleteOldest removes the oldest closed segment; false if there is none.
func (r *Recorder) deleteOldest(why string) bool {
	r.mu.Lock()
	oldest, ok := r.oldestClosedLocked()
	r.mu.Unlock()
	if !ok {
		return false
	}
	if err := removeFile(filepath.Join(r.cfg.Dir, oldest.Name)); err != nil {
		r.log.Warn("retention: cannot delete segment", "name", oldest.Name, "err", err)
		return false
	}
	r.updateSegment(oldest.Name, nil)
	r.deleted.Add(1)
	r.log.Info("deleted segment", "name", oldest.Name, "reason", why)
	return true
}

// PruneCompanion applies the bounds of cfg (MaxAge, MaxBytes, MinFree on
// cfg.Dir's filesystem) to c alone: for a camera that keeps motion events
// but records no video. Call it periodically.
func PruneCompanion(cfg Config, c Companion) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.FreeSpace == nil {
		cfg.FreeSpace = freeSpace
	}
	if cfg.MaxAge > 0 {
		if _, err := c.PruneBefore(cfg.Now().Add(-cfg.MaxAge)); err != nil {
			cfg.Logger.Warn("retention: cannot prune events", "err", err)
		}
	}
	for {
		why, excess := sizeReason(cfg, c.Bytes(), cfg.Logger)
		if why == "" || !pruneCompanionBytes(c, excess, why, cfg.Logger) {
			return
		}
	}
}
