package stream

import (
	"bufio"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/quicvarint"

	"github.com/camagent/camagent/internal/base/media"
	"github.com/camagent/camagent/stream/wire"
)

// TestEndToEnd publishes 120 access units in lock step with one viewer,
// which must receive every one in order with its PTS, flags and payload.
func TestEndToEnd(t *testing.T) {
	env := newTestEnv(t, HubConfig{CameraName: "porch"})
	env.hub.SetTrack(testTrack)
	c := env.client()
	if c.CameraName() != "porch" || !sameTrack(c.Track(), testTrack) {
		t.Fatalf("catalog: %q %+v", c.CameraName(), c.Track())
	}
	for i := range 120 {
		au := smallAU(i)
		env.hub.Publish(au)
		f := readFrame(t, c)
		checkFrame(t, f, au)
		if want := uint64(i/30 + 1); f.Group != want {
			t.Fatalf("frame %d in group %d, want %d", i, f.Group, want)
		}
		if f.Received.IsZero() {
			t.Fatal("no receive time")
		}
	}
	st := c.Stats()
	if st.Frames != 120 || st.Groups != 4 || st.GroupsSkipped != 0 {
		t.Errorf("client stats %+v", st)
	}
	hs := env.hub.Stats()
	if hs.FramesPublished != 120 || hs.FramesSent != 120 || hs.GroupsStarted != 4 || hs.GroupsSent != 3 || hs.GroupsReset != 0 {
		t.Errorf("hub stats %+v", hs)
	}
}

// TestLateJoinerStartsAtCachedKeyFrame joins in the middle of a group: the
// viewer must get the group's key frame and the frames after it at once.
func TestLateJoinerStartsAtCachedKeyFrame(t *testing.T) {
	env := newTestEnv(t, HubConfig{})
	env.hub.SetTrack(testTrack)
	for i := range 45 { // group 1 complete, group 2 has frames 30..44
		env.hub.Publish(smallAU(i))
	}
	c := env.client()
	for i := 30; i < 45; i++ { // nothing more is published meanwhile
		checkFrame(t, readFrame(t, c), smallAU(i))
	}
	env.hub.Publish(smallAU(45))
	checkFrame(t, readFrame(t, c), smallAU(45))
}

// TestViewerWaitsForFirstKeyFrame connects before any key frame: frames
// published before it are dropped and the viewer starts at the key frame.
func TestViewerWaitsForFirstKeyFrame(t *testing.T) {
	env := newTestEnv(t, HubConfig{})
	env.hub.SetTrack(testTrack)
	c := env.client()
	for i := 25; i < 32; i++ {
		env.hub.Publish(smallAU(i))
	}
	for i := 30; i < 32; i++ {
		checkFrame(t, readFrame(t, c), smallAU(i))
	}
	if got := env.hub.Stats().FramesDropped; got != 5 {
		t.Errorf("dropped %d frames before the key frame, want 5", got)
	}
}

func TestManyViewers(t *testing.T) {
	env := newTestEnv(t, HubConfig{})
	env.hub.SetTrack(testTrack)
	clients := make([]*Client, 20)
	for i := range clients {
		clients[i] = env.client()
	}
	for i := range 60 {
		au := smallAU(i)
		env.hub.Publish(au)
		for _, c := range clients {
			checkFrame(t, readFrame(t, c), au)
		}
	}
	if st := env.hub.Stats(); st.Viewers != 20 || st.FramesSent != 20*60 || st.GroupsReset != 0 {
		t.Errorf("hub stats %+v", st)
	}
}

// slowViewer speaks HELLO, reads CATALOG, and then never accepts or reads
// a group stream; its tiny flow-control windows stall the hub's writes.
func slowViewer(t *testing.T, env *testEnv) *quic.Conn {
	t.Helper()
	conn := env.dial(&quic.Config{
		InitialStreamReceiveWindow:     16 << 10,
		MaxStreamReceiveWindow:         16 << 10,
		InitialConnectionReceiveWindow: 24 << 10,
		MaxConnectionReceiveWindow:     24 << 10,
	})
	r := rawHello(t, conn)
	if m, err := wire.ReadMessage(r); err != nil || m.Type() != wire.TypeCatalog {
		t.Fatalf("slow viewer: %v, %v", m, err)
	}
	return conn
}

// rawHello opens the control stream and sends HELLO.
func rawHello(t *testing.T, conn *quic.Conn) *bufio.Reader {
	t.Helper()
	str := rawControl(t, conn)
	writeRaw(t, str, mustMessage(t, &wire.Hello{Version: wire.Version1, Software: "raw"}))
	return bufio.NewReader(str)
}

func rawControl(t *testing.T, conn *quic.Conn) *quic.Stream {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	str, err := conn.OpenStreamSync(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { str.CancelRead(0) })
	return str
}

func writeRaw(t *testing.T, str *quic.Stream, b []byte) {
	t.Helper()
	if _, err := str.Write(b); err != nil {
		t.Fatal(err)
	}
}

func mustMessage(t *testing.T, m wire.Message) []byte {
	t.Helper()
	b, err := wire.AppendMessage(nil, m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestSlowViewerGetsStaleGroupsReset runs a viewer that stops reading next
// to one that keeps up: Publish must not block (the lock step with the
// fast viewer would hang), the slow viewer's groups are reset, the fast
// viewer misses nothing and the hub holds at most two groups.
func TestSlowViewerGetsStaleGroupsReset(t *testing.T) {
	env := newTestEnv(t, HubConfig{})
	env.hub.SetTrack(testTrack)
	slowViewer(t, env)
	fast := env.client()

	const groups = 5
	groupBytes := int64(0)
	for i := range 30 {
		groupBytes += int64(len(syntheticAU(i, 60_000, 8_000).Data) + wire.FrameOverhead)
	}
	maxBuffered := int64(0)
	for i := range groups * 30 {
		au := syntheticAU(i, 60_000, 8_000)
		env.hub.Publish(au)
		checkFrame(t, readFrame(t, fast), au)
		maxBuffered = max(maxBuffered, env.hub.Stats().BufferedBytes)
	}
	st := env.hub.Stats()
	if st.GroupsReset < groups-2 {
		t.Errorf("%d groups reset for the slow viewer, want at least %d (stats %+v)", st.GroupsReset, groups-2, st)
	}
	if maxBuffered > 2*groupBytes {
		t.Errorf("hub buffered up to %d bytes, more than two groups (%d)", maxBuffered, 2*groupBytes)
	}
	if fs := fast.Stats(); fs.Frames != groups*30 || fs.GroupsSkipped != 0 {
		t.Errorf("fast viewer stats %+v", fs)
	}
}

// TestMalformedInputClosesOnlyThatViewer sends broken control data from one
// viewer per case while a well-behaved viewer keeps streaming.
func TestMalformedInputClosesOnlyThatViewer(t *testing.T) {
	env := newTestEnv(t, HubConfig{})
	env.hub.SetTrack(testTrack)
	good := env.client()
	hello := mustMessage(t, &wire.Hello{Version: wire.Version1, Software: "raw"})
	oversized := quicvarint.Append(quicvarint.Append(nil, uint64(wire.TypePing)), wire.MaxMessageSize+1)
	tests := []struct {
		name  string
		bytes []byte
		fin   bool
		want  wire.ErrorCode
	}{
		{"oversized message", append(hello, oversized...), false, wire.ErrorProtocolViolation},
		{"first message not HELLO", mustMessage(t, &wire.Ping{Timestamp: 1}), false, wire.ErrorProtocolViolation},
		{"HELLO twice", append(append([]byte{}, hello...), hello...), false, wire.ErrorProtocolViolation},
		{"bad UTF-8 in HELLO", []byte{0x01, 0x03, 0x01, 0x01, 0xff}, false, wire.ErrorProtocolViolation},
		{"truncated message then FIN", append(append([]byte{}, hello...), 0x03, 0x05, 0x01), true, wire.ErrorProtocolViolation},
		{"CATALOG from viewer", append(append([]byte{}, hello...), mustMessage(t, &wire.Catalog{Track: testTrack})...), false, wire.ErrorProtocolViolation},
		{"wrong version", mustMessage(t, &wire.Hello{Version: 99}), false, wire.ErrorUnsupportedVersion},
	}
	frame := 0
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bad := env.dial(nil)
			str := rawControl(t, bad)
			writeRaw(t, str, tt.bytes)
			if tt.fin {
				_ = str.Close()
			}
			err := waitClosed(t, bad)
			if code, ok := ErrorCode(err); !ok || code != tt.want {
				t.Fatalf("bad viewer closed with %s, want %v", describe(err), tt.want)
			}
			// The viewer sees the close before the camera's Serve has
			// returned and left the hub: wait for that too.
			select {
			case <-env.serveResult(viewerName(bad.LocalAddr())):
			case <-time.After(testTimeout):
				t.Fatal("Serve did not return for the bad viewer")
			}
			for range 31 { // crosses a group boundary
				au := smallAU(frame)
				env.hub.Publish(au)
				checkFrame(t, readFrame(t, good), au)
				frame++
			}
		})
	}
	if st := env.hub.Stats(); st.Viewers != 1 {
		t.Errorf("%d viewers left, want only the good one", st.Viewers)
	}
}

// TestUnknownMessagesAndStreamsAreSkipped checks the extension rules: an
// unknown control message and a viewer-opened stream do not end the
// session, and PING is answered.
func TestUnknownMessagesAndStreamsAreSkipped(t *testing.T) {
	env := newTestEnv(t, HubConfig{})
	env.hub.SetTrack(testTrack)
	conn := env.dial(nil)
	str := rawControl(t, conn)
	writeRaw(t, str, mustMessage(t, &wire.Hello{Version: wire.Version1, Software: "raw"}))
	writeRaw(t, str, mustMessage(t, &wire.Unknown{MessageType: 0x21, Payload: []byte("observed address")}))
	uni, err := conn.OpenUniStream()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := uni.Write([]byte{0x3f, 1, 2, 3}); err != nil {
		t.Fatal(err)
	}
	writeRaw(t, str, mustMessage(t, &wire.Ping{Timestamp: 42}))
	// CATALOG and PONG come from different loops in either order.
	r := bufio.NewReader(str)
	seen := map[wire.MessageType]bool{}
	for range 2 {
		m, err := wire.ReadMessage(r)
		if err != nil {
			t.Fatal(err)
		}
		seen[m.Type()] = true
		if p, ok := m.(*wire.Pong); ok && p.Timestamp != 42 {
			t.Errorf("PONG %d, want 42", p.Timestamp)
		}
	}
	if !seen[wire.TypeCatalog] || !seen[wire.TypePong] {
		t.Errorf("got %v, want CATALOG and PONG", seen)
	}
}

func TestCatalogUpdateReachesViewers(t *testing.T) {
	env := newTestEnv(t, HubConfig{})
	env.hub.SetTrack(testTrack)
	clients := []*Client{env.client(), env.client()}
	updated := make([]<-chan struct{}, len(clients))
	for i, c := range clients {
		updated[i] = c.CatalogUpdated()
	}
	env.hub.SetTrack(testTrack) // unchanged: no CATALOG
	next := media.Track{Codec: media.CodecMJPEG, Width: 640, Height: 480, FPS: 15}
	env.hub.SetTrack(next)
	for i, c := range clients {
		select {
		case <-updated[i]:
		case <-c.done:
			t.Fatal("connection closed")
		}
		if !sameTrack(c.Track(), next) {
			t.Errorf("viewer %d has track %+v, want %+v", i, c.Track(), next)
		}
	}
}

func TestMaxViewers(t *testing.T) {
	env := newTestEnv(t, HubConfig{MaxViewers: 1})
	env.hub.SetTrack(testTrack)
	env.client()
	extra := env.dial(nil)
	if code, ok := ErrorCode(waitClosed(t, extra)); !ok || code != wire.ErrorBusy {
		t.Errorf("extra viewer closed with %v, want BUSY", code)
	}
}

func TestHubCloseSendsGoAway(t *testing.T) {
	env := newTestEnv(t, HubConfig{})
	env.hub.SetTrack(testTrack)
	c := env.client()
	env.hub.Publish(smallAU(0))
	readFrame(t, c)
	if err := env.hub.Close(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	_, err := c.ReadFrame(ctx)
	if code, ok := ErrorCode(err); !ok || code != wire.ErrorGoingAway {
		t.Errorf("ReadFrame after Close: %s, want GOING_AWAY", describe(err))
	}
	if st := env.hub.Stats(); st.Viewers != 0 {
		t.Errorf("%d viewers after Close", st.Viewers)
	}
}

// TestViewerLeavingEndsServe checks that a viewer closing cleanly makes
// Serve return nil.
func TestViewerLeavingEndsServe(t *testing.T) {
	env := newTestEnv(t, HubConfig{})
	env.hub.SetTrack(testTrack)
	c := env.client()
	viewer := viewerName(c.conn.LocalAddr())
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-env.serveResult(viewer); err != nil {
		t.Errorf("Serve returned %v, want nil", err)
	}
}

func TestPublishDropsUnencodable(t *testing.T) {
	h := NewHub(HubConfig{})
	h.Publish(media.AccessUnit{Key: true, Data: make([]byte, wire.MaxFrameSize)})
	if st := h.Stats(); st.FramesDropped != 1 || st.GroupsStarted != 0 {
		t.Errorf("stats %+v", st)
	}
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestServeAfterClose(t *testing.T) {
	env := newTestEnv(t, HubConfig{})
	if err := env.hub.Close(); err != nil {
		t.Fatal(err)
	}
	conn := env.dial(nil)
	if code, ok := ErrorCode(waitClosed(t, conn)); !ok || code != wire.ErrorGoingAway {
		t.Errorf("viewer of a closed hub got %v, want GOING_AWAY", code)
	}
	if err := <-env.serveResult(viewerName(conn.LocalAddr())); !errors.Is(err, ErrHubClosed) {
		t.Errorf("Serve after Close: %v", err)
	}
}

func TestPublishStampsMissingCaptureTime(t *testing.T) {
	stamp := time.UnixMicro(1_800_000_000_000_000)
	env := newTestEnv(t, HubConfig{Now: func() time.Time { return stamp }})
	env.hub.SetTrack(testTrack)
	c := env.client()
	au := smallAU(0)
	au.Captured = time.Time{}
	env.hub.Publish(au)
	if got := readFrame(t, c).Captured; !got.Equal(stamp) {
		t.Errorf("captured %v, want %v", got, stamp)
	}
}

func TestHubLifecycle(t *testing.T) {
	env := newTestEnv(t, HubConfig{})
	env.hub.SetTrack(testTrack)
	c := env.client()
	env.hub.Publish(smallAU(0))
	readFrame(t, c)
	select {
	case <-env.hub.Done():
		t.Fatal("Done closed before Close")
	default:
	}
	if err := env.hub.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	<-env.hub.Done()
	if err := env.hub.Err(); err != nil {
		t.Fatalf("Err after Close: %v", err)
	}
	if st := env.hub.Stats(); st.Viewers != 0 {
		t.Errorf("%d viewers once Done", st.Viewers)
	}
	if err := env.hub.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}
