package agent

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/camagent/camagent/internal/base/ffprobe"

	"github.com/quic-go/quic-go"

	"github.com/camagent/camagent/capture/encode"
	"github.com/camagent/camagent/internal/base/config"
	"github.com/camagent/camagent/internal/base/h264"
	"github.com/camagent/camagent/internal/base/media"
	"github.com/camagent/camagent/internal/base/testtier"
	"github.com/camagent/camagent/internal/core/viewer"
	"github.com/camagent/camagent/internal/feature/identity"
	"github.com/camagent/camagent/stream"
	"github.com/camagent/camagent/stream/wire"
)

// testAgent starts an agent on the synthetic source on loopback and returns
// it with a function that stops it and reports Run's error.
func testAgent(t *testing.T, mutate func(*config.Config)) *Agent {
	t.Helper()
	return testAgentWith(t, mutate, nil)
}

// testAgentWith is testAgent with a hook between New and Run.
func testAgentWith(t *testing.T, mutate func(*config.Config), beforeRun func(*Agent)) *Agent {
	t.Helper()
	testtier.Slow(t, "an agent streaming QUIC on loopback")
	cfg := config.Default()
	cfg.Name = "test-camera"
	cfg.StateDir = t.TempDir()
	cfg.Listen = "127.0.0.1:0"
	cfg.Capture.Device = "test"
	cfg.Capture.Width, cfg.Capture.Height, cfg.Capture.FPS = 320, 240, 30
	cfg.Encode.KeyframeInterval = 30
	if !encode.SoftwareH264Available() {
		cfg.Encode.Codec = "mjpeg"
	}
	if mutate != nil {
		mutate(&cfg)
	}
	a, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if beforeRun != nil {
		beforeRun(a)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("agent Run: %v", err)
		}
	})
	select {
	case <-a.Ready():
	case err := <-done:
		t.Fatalf("agent stopped before streaming: %v", err)
	case <-time.After(20 * time.Second):
		t.Fatal("agent not streaming after 20 s")
	}
	return a
}

// pairViewer creates a one-time code on the camera's state dir, as `camagent
// pair` does, and joins with a fresh viewer identity.
func pairViewer(t *testing.T, a *Agent, name string) (*identity.Identity, identity.Camera) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	id, cam, err := joinOffer(ctx, t, a, name, a.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	return id, cam
}

func connectViewer(t *testing.T, id *identity.Identity, cam identity.Camera) (*quic.Conn, *stream.Client) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := dial(ctx, id, cam, stream.ALPN)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.CloseWithError(0, "") })
	c, err := stream.NewClient(ctx, conn, "test-viewer")
	if err != nil {
		t.Fatal(err)
	}
	return conn, c
}

// TestEndToEnd is the first-light slice in one process: test source ->
// encoder -> hub -> QUIC on loopback -> paired viewer -> MP4, checked by
// parsing the H.264 and by ffprobe.
func TestEndToEnd(t *testing.T) {
	if !encode.SoftwareH264Available() {
		t.Skip("software H.264 unavailable (CGO_ENABLED=0)")
	}
	a := testAgent(t, nil)
	id, cam := pairViewer(t, a, "phone")
	_, client := connectViewer(t, id, cam)
	tr := client.Track()
	if tr.Codec != "h264" || tr.Width != 320 || tr.Height != 240 {
		t.Fatalf("catalog %+v", tr)
	}
	w, h, err := h264.ParseSize(tr.SPS)
	if err != nil || w != 320 || h != 240 {
		t.Fatalf("catalog SPS says %dx%d (%v)", w, h, err)
	}

	dir := t.TempDir()
	raw := filepath.Join(dir, "live.h264")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	sum, err := viewer.Watch(ctx, client, viewer.Options{Output: raw, Duration: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	// 2 s at 30 fps is 60 frames; the paced source drops frames it could
	// not produce in time, as a camera does, so a loaded machine sees fewer.
	if sum.Frames < 30 || sum.KeyFrames < 2 {
		t.Fatalf("2 s at 30 fps with a key frame every 30: got %+v", sum)
	}
	data, err := os.ReadFile(raw)
	if err != nil {
		t.Fatal(err)
	}
	nalus, err := h264.SplitAnnexB(data)
	if err != nil {
		t.Fatal(err)
	}
	if h264.Type(nalus[0]) != 7 {
		t.Fatalf("stream starts with NAL type %d, want an SPS", h264.Type(nalus[0]))
	}
	frames := ffprobeFrames(t, raw, "h264", 320, 240)
	if frames != sum.Frames {
		t.Fatalf("ffprobe decoded %d frames, viewer wrote %d", frames, sum.Frames)
	}

	// A second session on the same agent writes MP4.
	_, client2 := connectViewer(t, id, cam)
	mp4 := filepath.Join(dir, "live.mp4")
	sum2, err := viewer.Watch(ctx, client2, viewer.Options{Output: mp4, Duration: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if got := ffprobeFrames(t, mp4, "h264", 320, 240); got != sum2.Frames {
		t.Fatalf("ffprobe read %d frames from the MP4, viewer wrote %d", got, sum2.Frames)
	}
}

// ffprobeFrames decodes the file with ffprobe and returns its frame count
// after checking codec and size.
func ffprobeFrames(t *testing.T, path, codec string, width, height int) int {
	t.Helper()
	if !ffprobe.Available() {
		t.Skip("ffprobe not installed (make test installs it)")
	}
	v, err := ffprobe.Probe(path)
	if err != nil {
		t.Fatal(err)
	}
	if v.Codec != codec || v.Width != width || v.Height != height {
		t.Fatalf("ffprobe: %+v, want %s %dx%d", v, codec, width, height)
	}
	return v.Frames
}

func TestUnpairedViewerRefusedAtHandshake(t *testing.T) {
	a := testAgent(t, nil)
	stranger, err := identity.LoadOrCreate(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	cam := identity.Camera{Name: "x", Fingerprint: a.Identity().Fingerprint, Addrs: []string{a.Addr().String()}}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := dial(ctx, stranger, cam, stream.ALPN)
	if err == nil {
		// TLS 1.3 lets the client finish before the server has checked its
		// certificate; the refusal then arrives as the connection's close.
		_, err = stream.NewClient(ctx, conn, "stranger")
	}
	var te *quic.TransportError
	if !errors.As(err, &te) || !te.ErrorCode.IsCryptoError() {
		t.Fatalf("unpaired viewer: got %v, want a TLS (crypto) error", err)
	}
	if a.Hub().Stats().ViewersTotal != 0 {
		t.Fatal("an unpaired viewer reached the hub")
	}
}

func TestRevokedViewerIsDisconnected(t *testing.T) {
	a := testAgent(t, nil)
	id, cam := pairViewer(t, a, "old-phone")
	conn, client := connectViewer(t, id, cam)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := client.ReadFrame(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := a.viewers.Revoke("old-phone"); err != nil {
		t.Fatal(err)
	}
	select {
	case <-conn.Context().Done():
	case <-ctx.Done():
		t.Fatal("revoked viewer still connected after 10 s")
	}
	var ae *quic.ApplicationError
	if err := context.Cause(conn.Context()); !errors.As(err, &ae) || ae.ErrorCode != quic.ApplicationErrorCode(wire.ErrorUnauthorised) {
		t.Fatalf("close reason %v, want UNAUTHORISED", err)
	}
	if _, err := dial(ctx, id, cam, stream.ALPN); err == nil {
		// As above, the refusal may come just after the client's handshake.
		if _, err = connectAfterRevoke(ctx, id, cam); err == nil {
			t.Fatal("revoked viewer could connect again")
		}
	}
}

func connectAfterRevoke(ctx context.Context, id *identity.Identity, cam identity.Camera) (*stream.Client, error) {
	conn, err := dial(ctx, id, cam, stream.ALPN)
	if err != nil {
		return nil, err
	}
	defer conn.CloseWithError(0, "")
	return stream.NewClient(ctx, conn, "again")
}

// TestEndToEndMJPEG runs in both builds: MJPEG needs no cgo, so this is what
// a CGO_ENABLED=0 camera streams from a raw source.
func TestEndToEndMJPEG(t *testing.T) {
	a := testAgent(t, func(c *config.Config) { c.Encode.Codec = "mjpeg" })
	id, cam := pairViewer(t, a, "phone")
	_, client := connectViewer(t, id, cam)
	if tr := client.Track(); tr.Codec != "mjpeg" || tr.Width != 320 || tr.Height != 240 {
		t.Fatalf("catalog %+v", tr)
	}
	out := filepath.Join(t.TempDir(), "live.mjpeg")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	sum, err := viewer.Watch(ctx, client, viewer.Options{Output: out, Duration: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Frames < 15 {
		t.Fatalf("1 s at 30 fps: got %+v", sum)
	}
	if got := ffprobeFrames(t, out, "mjpeg", 320, 240); got != sum.Frames {
		t.Fatalf("ffprobe decoded %d JPEG frames, viewer wrote %d", got, sum.Frames)
	}
}

// TestPureGoBuildSaysNoH264: without cgo, asking for H.264 from a raw
// source fails at start with an error that says what to do.
func TestPureGoBuildSaysNoH264(t *testing.T) {
	if encode.SoftwareH264Available() {
		t.Skip("this build has software H.264; the CGO_ENABLED=0 run checks the error")
	}
	cfg := config.Default()
	cfg.StateDir, cfg.Listen, cfg.Capture.Device = t.TempDir(), "127.0.0.1:0", "test"
	cfg.Encode.Codec = "h264"
	a, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = a.Run(context.Background())
	if !errors.Is(err, encode.ErrNoSoftwareH264) {
		t.Fatalf("Run: %v, want ErrNoSoftwareH264", err)
	}
	if !strings.Contains(err.Error(), "encode.codec: mjpeg") {
		t.Fatalf("error does not say how to fix it: %v", err)
	}
}

// TestEncodeSize: encode.width/height scale the captured picture.
func TestEncodeSize(t *testing.T) {
	a := testAgent(t, func(c *config.Config) { c.Encode.Width, c.Encode.Height = 160, 120 })
	id, cam := pairViewer(t, a, "phone")
	_, client := connectViewer(t, id, cam)
	tr := client.Track()
	if tr.Width != 160 || tr.Height != 120 {
		t.Fatalf("catalog says %dx%d, want 160x120", tr.Width, tr.Height)
	}
	out := filepath.Join(t.TempDir(), "small.raw")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	sum, err := viewer.Watch(ctx, client, viewer.Options{Output: out, Duration: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if got := ffprobeFrames(t, out, string(tr.Codec), 160, 120); got != sum.Frames {
		t.Fatalf("ffprobe decoded %d frames, viewer wrote %d", got, sum.Frames)
	}
}

func TestTrackChanged(t *testing.T) {
	base := media.Track{Codec: "h264", Width: 640, Height: 480, FPS: 30, SPS: []byte{0x67, 1}, PPS: []byte{0x68, 1}}
	tests := []struct {
		name   string
		mutate func(*media.Track)
		want   bool
	}{
		{"same", func(*media.Track) {}, false},
		{"new parameter set ids", func(tr *media.Track) { tr.SPS, tr.PPS = []byte{0x67, 2}, []byte{0x68, 2} }, false},
		{"size", func(tr *media.Track) { tr.Width = 1280 }, true},
		{"codec", func(tr *media.Track) { tr.Codec = "mjpeg" }, true},
		{"rate", func(tr *media.Track) { tr.FPS = 15 }, true},
		{"parameter sets now known", func(tr *media.Track) {}, true},
	}
	for _, tt := range tests {
		old := base
		if tt.name == "parameter sets now known" {
			old.SPS, old.PPS = nil, nil
		}
		t2 := base
		tt.mutate(&t2)
		if got := trackChanged(old, t2); got != tt.want {
			t.Errorf("%s: trackChanged = %v, want %v", tt.name, got, tt.want)
		}
	}
}
