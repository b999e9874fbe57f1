package agent

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/camagent/camagent/capture/encode"
	"github.com/camagent/camagent/internal/base/config"
	"github.com/camagent/camagent/internal/base/h264"
	"github.com/camagent/camagent/internal/core/viewer"
	"github.com/camagent/camagent/p2p/relayserver"
	"github.com/camagent/camagent/p2p/relayserver/relaytest"
	"github.com/camagent/camagent/stream"
)

// tapBuffer keeps everything the relay forwarded (bounded).
type tapBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *tapBuffer) tap(_ bool, p []byte) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.buf.Len() < 64<<20 {
		b.buf.Write(p)
	}
}

// TestViewerThroughRelaySeesVideoRelaySeesNoPlaintext runs the agent with a
// relay on loopback, pairs and watches only through the relay's public
// address, and checks that nothing the relay forwarded contains the video.
func TestViewerThroughRelaySeesVideoRelaySeesNoPlaintext(t *testing.T) {
	if !encode.SoftwareH264Available() {
		t.Skip("software H.264 unavailable (CGO_ENABLED=0)")
	}
	var tap tapBuffer
	rl := relaytest.Start(t, relayserver.Config{Tap: tap.tap})

	a := testAgent(t, func(c *config.Config) {
		useRelay(c, rl)
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	public := waitRegistered(ctx, t, a, rl)

	// Pair through the relay's public address: the offer has no direct one.
	vid, cam, err := joinOffer(ctx, t, a, "phone", public)
	if err != nil {
		t.Fatalf("pairing through the relay: %v", err)
	}
	if len(cam.Relays) != 1 {
		t.Fatalf("paired camera keeps relays %v", cam.Relays)
	}

	link, err := viewer.Dialer{Identity: vid, Route: viewer.RouteRelay}.Dial(ctx, cam)
	if err != nil {
		t.Fatal(err)
	}
	defer link.Close()
	conn := link.Conn
	if got := conn.RemoteAddr().String(); got != public {
		t.Fatalf("viewer connected to %s, want the relay's public address %s", got, public)
	}
	client, err := stream.NewClient(ctx, conn, "phone")
	if err != nil {
		t.Fatal(err)
	}
	raw := filepath.Join(t.TempDir(), "relay.h264")
	sum, err := viewer.Watch(ctx, client, viewer.Options{Output: raw, Duration: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Frames < 30 {
		t.Fatalf("2 s through the relay gave %+v", sum)
	}
	if got := ffprobeFrames(t, raw, "h264", 320, 240); got != sum.Frames {
		t.Fatalf("ffprobe %d frames, viewer wrote %d", got, sum.Frames)
	}
	data, err := os.ReadFile(raw)
	if err != nil {
		t.Fatal(err)
	}
	assertNoPlaintext(t, data, &tap)
}

// assertNoPlaintext looks for 24-byte pieces of every NAL unit the viewer
// received in the bytes the relay forwarded. With TLS end to end there are
// none; a relay that could read the video would match thousands.
func assertNoPlaintext(t *testing.T, video []byte, tap *tapBuffer) {
	t.Helper()
	nalus, err := h264.SplitAnnexB(video)
	if err != nil {
		t.Fatal(err)
	}
	tap.mu.Lock()
	seen := tap.buf.Bytes()
	tap.mu.Unlock()
	if len(seen) < len(video) {
		t.Fatalf("relay forwarded %d bytes, less than the %d bytes of video: not through the relay?", len(seen), len(video))
	}
	const piece = 24
	checked := 0
	for _, n := range nalus {
		for off := 0; off+piece <= len(n); off += 512 {
			checked++
			if bytes.Contains(seen, n[off:off+piece]) {
				t.Fatalf("the relay forwarded plaintext video (NAL type %d, offset %d)", h264.Type(n), off)
			}
		}
	}
	if checked < 50 {
		t.Fatalf("only %d pieces checked", checked)
	}
	t.Logf("relay forwarded %d bytes; none of %d video pieces found in them", len(seen), checked)
}
