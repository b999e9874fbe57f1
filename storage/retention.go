package storage

import (
	"path/filepath"
	"time"
)

// enforceRetention deletes the oldest closed segments while any bound is
// exceeded: older than MaxAge, more than MaxBytes in total, or less than
// MinFree left on the filesystem. The open segment is never deleted.
func (r *Recorder) enforceRetention() {
	now := r.cfg.Now()
	for {
		why := r.retentionReason(now)
		if why == "" || !r.deleteOldest(why) {
			return
		}
	}
}

// retentionReason names the bound the oldest closed segment breaks, or "".
func (r *Recorder) retentionReason(now time.Time) string {
	r.mu.Lock()
	var total int64
	for _, s := range r.segs {
		total += s.Size
	}
	oldest, ok := r.oldestClosedLocked()
	r.mu.Unlock()
	if !ok {
		return ""
	}
	switch {
	case r.cfg.MaxAge > 0 && oldest.End().Before(now.Add(-r.cfg.MaxAge)):
		return "older than storage.max_age"
	case r.cfg.MaxBytes > 0 && total > r.cfg.MaxBytes:
		return "over storage.max_bytes"
	}
	if r.cfg.MinFree > 0 {
		free, err := r.cfg.FreeSpace(r.cfg.Dir)
		if err != nil {
			r.log.Warn("cannot check free space", "err", err)
			return ""
		}
		if free < r.cfg.MinFree {
			return "under storage.min_free"
		}
	}
	return ""
}

func (r *Recorder) oldestClosedLocked() (Segment, bool) {
	for _, s := range r.segs {
		if !s.Open {
			return s, true
		}
	}
	return Segment{}, false
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
