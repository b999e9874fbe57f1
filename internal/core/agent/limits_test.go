package agent

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/camagent/camagent/internal/base/config"
	"github.com/camagent/camagent/internal/base/media"
)

func TestConnLimits(t *testing.T) {
	l := newConnLimits(config.LimitsConfig{ConnsPerViewer: 2, Conns: 3})
	ra1, err := l.take("a")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.take("a"); err != nil {
		t.Fatal(err)
	}
	if _, err := l.take("a"); err == nil || !strings.Contains(err.Error(), "limits.conns_per_viewer") {
		t.Fatalf("third connection of one key: %v", err)
	}
	if _, err := l.take("b"); err != nil {
		t.Fatal(err)
	}
	if _, err := l.take("c"); err == nil || !strings.Contains(err.Error(), "limits.conns") {
		t.Fatalf("connection over the camera-wide limit: %v", err)
	}
	ra1()
	ra1() // a second release gives nothing back
	if total, ofA := l.counts("a"); total != 2 || ofA != 1 {
		t.Fatalf("counts %d, %d", total, ofA)
	}
	if _, err := l.take("c"); err != nil {
		t.Fatalf("slot not given back: %v", err)
	}
	if d := newConnLimits(config.LimitsConfig{}); d.perKey != config.DefaultLimits().ConnsPerViewer || d.total != config.DefaultLimits().Conns {
		t.Fatalf("zero config: %+v", d)
	}
}

// TestStillsEncodeAFewAtATime: many concurrent still requests are encoded
// at most limit at a time, outside the capture loop, and all are served.
func TestStillsEncodeAFewAtATime(t *testing.T) {
	const limit, requests = 2, 30
	s := newStills(limit, slog.New(slog.DiscardHandler))
	w, h := 320, 240
	frame := media.RawFrame{Format: media.PixI420, Width: w, Height: h, Data: make([]byte, w*h*3/2)}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	stop := make(chan struct{})
	var feeder sync.WaitGroup
	feeder.Go(func() { // the capture loop at 200 fps
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				start := time.Now()
				s.offer(frame)
				if d := time.Since(start); d > 20*time.Millisecond {
					t.Errorf("offer held the capture loop for %v", d)
				}
			}
		}
	})
	var wg sync.WaitGroup
	for range requests {
		wg.Go(func() {
			jpg, err := s.still(ctx)
			if err != nil || len(jpg) < 4 || jpg[0] != 0xff || jpg[1] != 0xd8 {
				t.Errorf("still: %d bytes, %v", len(jpg), err)
			}
		})
	}
	wg.Wait()
	close(stop)
	feeder.Wait()
	st := s.stats()
	if st.Encoded != requests || st.Peak > limit || st.Peak < 1 || st.InFlight != 0 {
		t.Fatalf("stats %+v, want %d encoded, at most %d at once", st, requests, limit)
	}
	// A request that cannot get a slot in time says why.
	for range limit {
		s.slots <- struct{}{}
	}
	short, cancelShort := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancelShort()
	if _, err := s.still(short); err == nil || !strings.Contains(err.Error(), "limits.still_encodes") {
		t.Fatalf("busy still: %v", err)
	}
}
