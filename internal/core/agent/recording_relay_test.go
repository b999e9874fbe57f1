package agent

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/camagent/camagent/capture/encode"
	"github.com/camagent/camagent/internal/base/config"
	"github.com/camagent/camagent/internal/base/media"
	"github.com/camagent/camagent/internal/core/viewer"
	"github.com/camagent/camagent/p2p/relayserver"
	"github.com/camagent/camagent/p2p/relayserver/relaytest"
	"github.com/camagent/camagent/p2p/traversal"
	"github.com/camagent/camagent/storage/playback"
	"github.com/camagent/camagent/storage/recwire"
)

// TestRecordingExportThroughRelay exports a clip over the recordings
// protocol (camagent-rec/1) from a camera the viewer reaches only through
// a real relay on loopback: the viewer knows no address of the camera,
// locates it at the relay, and dials the relay's public address for it.
// The clip must play in ffprobe, and the relay, which carried it, must not
// have seen a byte of the video in the clear.
func TestRecordingExportThroughRelay(t *testing.T) {
	if !encode.SoftwareH264Available() {
		t.Skip("software H.264 unavailable (CGO_ENABLED=0): nothing to record")
	}
	var tap tapBuffer
	rl := relaytest.Start(t, relayserver.Config{Tap: tap.tap})

	a := testAgent(t, func(c *config.Config) {
		useRelay(c, rl)
		c.Storage.Mode = "continuous"
		c.Storage.SegmentDuration = 2 * time.Second
		c.Storage.MinFreeMegabytes = 0
	})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	public := waitRegistered(ctx, t, a, rl)

	// Pair, then forget the camera's address: only its relay is left, as
	// for a phone away from home.
	id, cam := pairViewer(t, a, "phone")
	relays, err := a.ViewerRelayURLs(id.Fingerprint)
	if err != nil {
		t.Fatal(err)
	}
	cam.Addrs, cam.Relays = nil, relays

	link, err := viewer.Dialer{Identity: id, ALPN: playback.ALPN}.Dial(ctx, cam)
	if err != nil {
		t.Fatalf("recordings through the relay: %v", err)
	}
	defer link.Close()
	if !link.Relayed() || link.Conn.RemoteAddr().String() != public {
		t.Fatalf("viewer connected to %s (relayed %v), want the relay's public address %s",
			link.Conn.RemoteAddr(), link.Relayed(), public)
	}
	if got := link.Conn.ConnectionState().TLS.NegotiatedProtocol; got != playback.ALPN {
		t.Fatalf("negotiated %q, want %q", got, playback.ALPN)
	}
	client := playback.NewClient(link.Conn)

	// Wait for a closed segment of at least 1.5 s, listing through the
	// relay as a viewer app polls. (On a loaded machine a segment may be
	// cut short where the recorder's queue overflowed, so the clip is
	// taken from inside one segment rather than at a fixed offset.)
	var seg recwire.Segment
	for seg.Duration < 1500*time.Millisecond {
		list, err := client.List(ctx, time.Time{}, time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range list.Segments {
			if !s.Open && s.Duration > seg.Duration {
				seg = s
			}
		}
		if seg.Duration >= 1500*time.Millisecond {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("no recording of 1.5 s after 60 s: %+v", list)
		case <-time.After(500 * time.Millisecond):
		}
	}
	from, to := seg.Start.Add(500*time.Millisecond), seg.Start.Add(seg.Duration)

	clip := filepath.Join(t.TempDir(), "clip.mp4")
	f, err := os.Create(clip)
	if err != nil {
		t.Fatal(err)
	}
	frames, first, err := client.Export(ctx, from, to, f)
	f.Close()
	if err != nil {
		t.Fatalf("export through the relay: %v", err)
	}
	if first.After(from) || from.Sub(first) > 2*time.Second || frames < 15 {
		t.Fatalf("clip of %d frames from %v, asked from %v", frames, first, from)
	}
	if got := ffprobeFrames(t, clip, "h264", 320, 240); got != frames {
		t.Fatalf("ffprobe decoded %d frames of %d", got, frames)
	}

	// The same range played as Annex-B, to look for its NAL units in what
	// the relay forwarded: end-to-end TLS must hide recordings too.
	var video bytes.Buffer
	if err := client.Play(ctx, from, to, func(au media.AccessUnit) error {
		video.Write(au.Data)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	assertNoPlaintext(t, video.Bytes(), &tap)
	t.Logf("exported %d frames (%d bytes of H.264) through the relay at %s", frames, video.Len(), public)
}

// TestRecordingsThroughRelayGoDirect: a recordings connection dialled
// through the relay moves to a direct path once the viewer accepts the
// camera's NAT traversal stream, as live video does, and keeps serving
// requests there; the relay then carries none of them.
func TestRecordingsThroughRelayGoDirect(t *testing.T) {
	rl := relaytest.Start(t, relayserver.Config{})
	a := testAgent(t, func(c *config.Config) {
		useRelay(c, rl)
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	waitRegistered(ctx, t, a, rl)
	id, cam := pairViewer(t, a, "phone")
	relays, err := a.ViewerRelayURLs(id.Fingerprint)
	if err != nil {
		t.Fatal(err)
	}
	cam.Addrs, cam.Relays = nil, relays

	link, err := viewer.Dialer{Identity: id, Route: viewer.RouteRelay, ALPN: playback.ALPN}.Dial(ctx, cam)
	if err != nil {
		t.Fatal(err)
	}
	defer link.Close()
	events := make(chan traversal.Event, 16)
	link.AcceptTraversal(func(e traversal.Event) { events <- e })
	client := playback.NewClient(link.Conn)
	if _, err := client.List(ctx, time.Time{}, time.Time{}); err != nil {
		t.Fatalf("list through the relay: %v", err)
	}
	for direct := false; !direct; {
		select {
		case e := <-events:
			direct = e.Kind == traversal.EventDirect
		case <-ctx.Done():
			t.Fatal("recordings connection never went direct")
		}
	}
	// Stills: tens of kilobytes each, so that answers through the relay
	// would stand out from a stray packet.
	before := rl.Server.Metrics().BytesFromCamera.Load()
	var got int
	for range 3 {
		jpeg, err := client.Still(ctx)
		if err != nil {
			t.Fatalf("still on the direct path: %v", err)
		}
		got += len(jpeg)
	}
	if ps := link.PathStats(); ps.Path != "direct" || ps.Switches != 1 {
		t.Fatalf("path figures %+v", ps)
	}
	relayed := rl.Server.Metrics().BytesFromCamera.Load() - before
	t.Logf("3 stills, %d bytes, on the direct path; the relay carried %d bytes meanwhile", got, relayed)
	if relayed > uint64(got)/100 {
		t.Fatalf("the relay carried %d bytes while %d bytes of stills came direct", relayed, got)
	}
}
