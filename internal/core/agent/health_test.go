package agent

import (
	"testing"
	"time"

	"github.com/camagent/camagent/internal/base/config"
)

// TestHealthy: the watchdog is fed only while frames keep coming; the
// allowance covers a stall and one device reopen.
func TestHealthy(t *testing.T) {
	start := time.Unix(1_000_000, 0)
	now := start
	cfg := config.Default()
	cfg.Capture.StallTimeout = 2 * time.Second
	a := &Agent{cfg: cfg, now: func() time.Time { return now }}
	if a.Healthy() {
		t.Fatal("healthy before the first frame")
	}
	a.lastFrame.Store(start.UnixNano())
	for _, tt := range []struct {
		after time.Duration
		want  bool
	}{{0, true}, {13 * time.Second, true}, {14 * time.Second, false}, {time.Hour, false}} {
		now = start.Add(tt.after)
		if got := a.Healthy(); got != tt.want {
			t.Errorf("%v after the last frame: healthy=%v, want %v", tt.after, got, tt.want)
		}
	}
}
