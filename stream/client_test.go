package stream

import (
	"context"
	"testing"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/quicvarint"

	"github.com/camagent/camagent/internal/base/media"
	"github.com/camagent/camagent/internal/base/testtier"
	"github.com/camagent/camagent/stream/wire"
)

// waitNewestGroup waits until c has seen group seq arrive.
func waitNewestGroup(t *testing.T, c *Client, seq uint64) {
	t.Helper()
	for {
		c.mu.Lock()
		newest, changed := c.newestSeq, c.pendingChanged
		c.mu.Unlock()
		if newest >= seq {
			return
		}
		select {
		case <-changed:
		case <-c.done:
			t.Fatal("connection closed")
		}
	}
}

// TestClientSkipsToNewestGroup lets the application fall behind by a whole
// group: ReadFrame must abandon the old group and start at the new key frame.
func TestClientSkipsToNewestGroup(t *testing.T) {
	env := newTestEnv(t, HubConfig{})
	env.hub.SetTrack(testTrack)
	c := env.client()
	env.hub.Publish(smallAU(0))
	checkFrame(t, readFrame(t, c), smallAU(0))
	for i := 1; i <= 30; i++ { // the rest of group 1 and the key frame of group 2
		env.hub.Publish(smallAU(i))
	}
	waitNewestGroup(t, c, 2)
	f := readFrame(t, c)
	checkFrame(t, f, smallAU(30))
	if f.Group != 2 {
		t.Errorf("group %d, want 2", f.Group)
	}
	if st := c.Stats(); st.GroupsSkipped != 1 || st.Frames != 2 {
		t.Errorf("stats %+v", st)
	}
	env.hub.Publish(smallAU(31))
	checkFrame(t, readFrame(t, c), smallAU(31))
}

func TestClientMeasuresRTT(t *testing.T) {
	env := newTestEnv(t, HubConfig{})
	env.hub.SetTrack(testTrack)
	c := env.client()
	for {
		c.mu.Lock()
		rtt, updated := c.stats.RTT, c.rttUpdated
		c.mu.Unlock()
		if rtt > 0 {
			break
		}
		select {
		case <-updated:
		case <-c.done:
			t.Fatal("connection closed")
		}
	}
	if rtt := c.Stats().RTT; rtt > testTimeout {
		t.Errorf("RTT %v", rtt)
	}
}

// TestClientReadsGroupTailArrivingAfterNextKeyFrame: when the connection
// moves between paths, the last frame of a group can arrive after the next
// group's key frame. Within staleGrace the viewer still gets it, in order,
// instead of dropping it.
func TestClientReadsGroupTailArrivingAfterNextKeyFrame(t *testing.T) {
	testtier.Slow(t, "a camera over QUIC on loopback")
	ln, err := quic.ListenAddr("127.0.0.1:0", selfSignedTLS(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	camera := make(chan error, 1)
	readFirst := make(chan struct{}) // the viewer is reading group 1
	release := make(chan struct{})   // the viewer has seen group 2 arrive
	go func() { camera <- rawCamera(ctx, ln, readFirst, release) }()

	c, err := NewClient(ctx, (&testEnv{tb: t, ln: ln}).dial(nil), "test-viewer/1")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	checkFrame(t, readFrame(t, c), smallAU(0))
	close(readFirst)
	waitNewestGroup(t, c, 2)
	close(release)
	for _, want := range []struct {
		au    media.AccessUnit
		group uint64
	}{{smallAU(1), 1}, {smallAU(30), 2}} {
		f := readFrame(t, c)
		checkFrame(t, f, want.au)
		if f.Group != want.group {
			t.Fatalf("frame %d in group %d, want %d", frameIndex(f.Data), f.Group, want.group)
		}
	}
	if st := c.Stats(); st.GroupsSkipped != 0 {
		t.Fatalf("skipped %d groups, want none: %+v", st.GroupsSkipped, st)
	}
	if err := <-camera; err != nil {
		t.Fatal(err)
	}
}

// rawCamera speaks the protocol by hand: it sends group 1's key frame,
// then (once the viewer read it) group 2's key frame, and group 1's second
// frame only after release.
func rawCamera(ctx context.Context, ln *quic.Listener, readFirst, release <-chan struct{}) error {
	conn, err := ln.Accept(ctx)
	if err != nil {
		return err
	}
	ctrl, err := conn.AcceptStream(ctx)
	if err != nil {
		return err
	}
	if _, err := wire.ReadMessage(quicvarint.NewReader(ctrl)); err != nil {
		return err
	}
	catalog, _ := wire.AppendMessage(nil, &wire.Catalog{CameraName: "raw", Track: testTrack})
	if _, err := ctrl.Write(catalog); err != nil {
		return err
	}
	group := func(seq uint64, aus ...media.AccessUnit) (*quic.SendStream, error) {
		str, err := conn.OpenUniStreamSync(ctx)
		if err != nil {
			return nil, err
		}
		b, _ := wire.AppendGroupHeader(nil, wire.GroupHeader{Sequence: seq})
		for _, au := range aus {
			b, _ = wire.AppendFrame(b, wire.Frame{PTS: au.PTS, Captured: au.Captured, Key: au.Key, Payload: au.Data})
		}
		_, err = str.Write(b)
		return str, err
	}
	g1, err := group(1, smallAU(0))
	if err != nil {
		return err
	}
	<-readFirst
	g2, err := group(2, smallAU(30))
	if err != nil {
		return err
	}
	<-release
	tail, _ := wire.AppendFrame(nil, wire.Frame{PTS: smallAU(1).PTS, Captured: smallAU(1).Captured, Payload: smallAU(1).Data})
	if _, err := g1.Write(tail); err != nil {
		return err
	}
	g1.Close()
	return g2.Close()
}

func TestClientLifecycle(t *testing.T) {
	t.Run("Close", func(t *testing.T) {
		env := newTestEnv(t, HubConfig{})
		env.hub.SetTrack(testTrack)
		c := env.client()
		env.hub.Publish(smallAU(0))
		readFrame(t, c)
		select {
		case <-c.Done():
			t.Fatal("Done closed before Close")
		default:
		}
		if err := c.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		<-c.Done()
		if err := c.Err(); err != nil {
			t.Fatalf("Err after Close: %v", err)
		}
		if err := c.Close(); err != nil {
			t.Fatalf("second Close: %v", err)
		}
	})
	t.Run("camera goes away", func(t *testing.T) {
		env := newTestEnv(t, HubConfig{})
		env.hub.SetTrack(testTrack)
		c := env.client()
		env.hub.Publish(smallAU(0))
		readFrame(t, c)
		if err := env.hub.Close(); err != nil {
			t.Fatal(err)
		}
		<-c.Done()
		if code, ok := ErrorCode(c.Err()); !ok || code != wire.ErrorGoingAway {
			t.Fatalf("Err = %s, want GOING_AWAY", describe(c.Err()))
		}
		if err := c.Close(); err != nil {
			t.Fatalf("Close after the camera left: %v", err)
		}
		if c.Err() == nil {
			t.Fatal("Close after the camera left hid its cause")
		}
	})
}
