package agent

import (
	"bytes"
	"context"
	"errors"
	"image/jpeg"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/camagent/camagent/capture/encode"
	"github.com/camagent/camagent/internal/base/config"
	"github.com/camagent/camagent/internal/base/media"
	"github.com/camagent/camagent/internal/feature/identity"
	"github.com/camagent/camagent/storage"
	"github.com/camagent/camagent/storage/playback"
)

// TestRecordingPlaybackOverQUIC records the test source continuously with
// motion detection on, then, as a paired viewer over the recordings ALPN,
// lists recordings and events, exports a clip checked by ffprobe, fetches
// a still and an event snapshot; a stranger is refused at the handshake.
func TestRecordingPlaybackOverQUIC(t *testing.T) {
	if !encode.SoftwareH264Available() {
		t.Skip("software H.264 unavailable (CGO_ENABLED=0): nothing to record")
	}
	a := testAgent(t, func(c *config.Config) {
		c.Storage.Mode = "continuous"
		c.Storage.SegmentDuration = 2 * time.Second
		c.Storage.MinFreeMegabytes = 0
		c.Motion.Enabled = true
		c.Motion.Sensitivity = 0.9
	})
	id, cam := pairViewer(t, a, "phone")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	conn, err := dial(ctx, id, cam, playback.ALPN)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.CloseWithError(0, "")
	client := playback.NewClient(conn)

	// Wait for about 5 s of video in closed segments.
	var list, _ = client.List(ctx, time.Time{}, time.Time{})
	for closed := 0; closed < 2; {
		select {
		case <-ctx.Done():
			t.Fatalf("no recordings after 60 s: %+v", list)
		case <-time.After(500 * time.Millisecond): // polling the camera, as a viewer app does
		}
		if list, err = client.List(ctx, time.Time{}, time.Time{}); err != nil {
			t.Fatal(err)
		}
		closed = 0
		for _, s := range list.Segments {
			if !s.Open {
				closed++
			}
		}
	}
	start := list.Segments[0].Start
	from, to := start.Add(time.Second), start.Add(3*time.Second)
	clip := filepath.Join(t.TempDir(), "clip.mp4")
	f, err := os.Create(clip)
	if err != nil {
		t.Fatal(err)
	}
	frames, first, err := client.Export(ctx, from, to, f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	if first.After(from) || from.Sub(first) > 2*time.Second || frames < 30 {
		t.Fatalf("clip of %d frames from %v, asked from %v", frames, first, from)
	}
	if got := ffprobeFrames(t, clip, "h264", 320, 240); got != frames {
		t.Fatalf("ffprobe decoded %d frames of %d", got, frames)
	}

	// Seek: abandon a playback after a few frames, play from 2 s later on
	// the same connection.
	errSeek := errors.New("seek")
	n := 0
	err = client.Play(ctx, start, to, func(media.AccessUnit) error {
		if n++; n == 5 {
			return errSeek
		}
		return nil
	})
	if !errors.Is(err, errSeek) {
		t.Fatalf("first play: %v", err)
	}
	seekTo := start.Add(2 * time.Second)
	var got []media.AccessUnit
	if err := client.Play(ctx, seekTo, seekTo.Add(500*time.Millisecond), func(au media.AccessUnit) error {
		got = append(got, au)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	// Playback starts at the last key frame at or before the seek point:
	// no later key frame may precede it. (Key frames come every 30 frames,
	// which is more than a second when a loaded machine drops frames.)
	if len(got) == 0 || !got[0].Key || got[0].Captured.After(seekTo) ||
		!got[len(got)-1].Captured.Before(seekTo.Add(500*time.Millisecond)) {
		t.Fatalf("after seeking to +2 s: %d frames", len(got))
	}
	for i, au := range got[1:] {
		if au.Key && !au.Captured.After(seekTo) {
			t.Fatalf("after seeking to +2 s: playback started at %v, but frame %d at %v is a later key frame before the seek point",
				got[0].Captured.Sub(start), i+1, au.Captured.Sub(start))
		}
	}

	still, err := client.Still(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if img, err := jpeg.Decode(bytes.NewReader(still)); err != nil || img.Bounds().Dx() != 320 {
		t.Fatalf("still: %v", err)
	}
	// The test pattern's moving box is motion.
	if len(list.Events) == 0 {
		t.Fatal("no motion events from the moving test pattern")
	}
	var snap []byte
	for range 20 { // the snapshot is written just after the event starts
		if snap, err = client.EventSnapshot(ctx, list.Events[0].ID); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if _, err := jpeg.Decode(bytes.NewReader(snap)); err != nil {
		t.Fatalf("event snapshot: %v", err)
	}
	if _, err := client.EventSnapshot(ctx, "../key"); err == nil {
		t.Fatal("path in event id accepted")
	}

	stranger, _ := identity.LoadOrCreate(t.TempDir())
	sconn, err := dial(ctx, stranger, cam, playback.ALPN)
	if err == nil {
		_, err = playback.NewClient(sconn).List(ctx, time.Time{}, time.Time{})
	}
	var te *quic.TransportError
	if !errors.As(err, &te) || !te.ErrorCode.IsCryptoError() {
		t.Fatalf("unpaired viewer on the recordings ALPN: %v, want a TLS error", err)
	}
}

// TestRecordingLifecycle: with motion on and recording off, the events
// are pruned by a goroutine of recording's own; Close stops it, Done
// closes, Err is nil and a second Close is harmless.
func TestRecordingLifecycle(t *testing.T) {
	cfg := config.Default()
	cfg.StateDir = t.TempDir()
	cfg.Storage.Mode = storage.ModeOff
	cfg.Motion.Enabled = true
	r, err := newRecording(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if r.stopPrune == nil {
		t.Fatal("no event pruning: the test covers nothing")
	}
	if err := r.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	<-r.Done()
	select {
	case <-r.pruned:
	default:
		t.Fatal("Done closed before the pruning ended")
	}
	if err := r.Err(); err != nil {
		t.Fatalf("Err after Close: %v", err)
	}
	if err := r.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}
