package stream

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/camagent/camagent/internal/base/media"
	"github.com/camagent/camagent/p2p/natwire"
	"github.com/camagent/camagent/stream/wire"
)

// HubConfig configures a Hub.
type HubConfig struct {
	// CameraName is announced to viewers in CATALOG.
	CameraName string
	// Logger receives per-viewer events; nil discards them.
	Logger *slog.Logger
	// Now is the clock that stamps access units published without a
	// capture time; nil means time.Now.
	Now func() time.Time
	// MaxViewers limits concurrent viewers; 0 means no limit. Viewers over
	// the limit are closed with ErrorBusy.
	MaxViewers int
}

// HubStats are cumulative counters of a Hub, summed over all viewers.
type HubStats struct {
	Viewers         int    // connected now
	ViewersTotal    uint64 // ever admitted
	FramesPublished uint64 // access units passed to Publish
	FramesDropped   uint64 // before the first key frame, unencodable, or over the group cap
	GroupsStarted   uint64 // key frames published
	GroupsSent      uint64 // group streams completed (FIN)
	GroupsReset     uint64 // group streams reset as stale by the hub
	GroupsStopped   uint64 // group streams the viewer stopped (STOP_SENDING)
	FramesSent      uint64 // frames handed to QUIC
	BytesSent       uint64 // group stream bytes handed to QUIC
	// BufferedBytes is the frame data held now: the current group plus any
	// older group a viewer is still sending. Frames are shared, not copied
	// per viewer.
	BufferedBytes int64
}

// ErrHubClosed is returned by Serve after Close.
var ErrHubClosed = errors.New("stream: hub closed")

// Hub is the camera side of the protocol: it caches the current group of
// pictures and serves it to every viewer. Publish never waits for viewers.
//
// Memory: the hub holds the current group (capped at 64 MiB). A viewer
// holds a reference to at most one group, and a viewer still sending an
// older group when a key frame is published is reset (at once, or after one
// more frame if it was only writing the group's last frame), so in steady
// state at most two groups are alive however many viewers there are. Per viewer, on top of that: two goroutines plus one per group being
// sent, a 4 KiB control buffer, and quic-go's send state, which is bounded
// by the congestion window (quic-go reads the shared frame bytes in place
// and does not queue copies of unsent data).
type Hub struct {
	cfg HubConfig
	log *slog.Logger

	mu           sync.Mutex
	closed       bool
	track        media.Track
	trackVersion uint64        // 0: no track yet
	trackChanged chan struct{} // closed and replaced by SetTrack
	current      *group
	lastSeq      uint64
	groupStarted chan struct{} // closed and replaced when a group starts
	published    chan struct{} // closed and replaced when a frame is added
	sessions     map[*session]struct{}
	serving      sync.WaitGroup
	done         chan struct{} // closed when Close has seen every Serve return

	buffered atomic.Int64
	counters hubCounters
}

type hubCounters struct {
	viewersTotal, framesPublished, framesDropped, groupsStarted   atomic.Uint64
	groupsSent, groupsReset, groupsStopped, framesSent, bytesSent atomic.Uint64
}

// NewHub returns a hub with no track and no group; viewers that connect
// before SetTrack and the first key frame wait for them.
func NewHub(cfg HubConfig) *Hub {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return &Hub{
		cfg:          cfg,
		log:          log,
		trackChanged: make(chan struct{}),
		groupStarted: make(chan struct{}),
		published:    make(chan struct{}),
		sessions:     make(map[*session]struct{}),
		done:         make(chan struct{}),
	}
}

// SetTrack announces t to every viewer in a CATALOG; it is a no-op if t is
// the track already announced. Call it before the first key frame and
// again when the encoder's output changes (e.g. after a camera replug),
// then publish a key frame in the new format.
func (h *Hub) SetTrack(t media.Track) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.trackVersion > 0 && sameTrack(h.track, t) {
		return
	}
	t.SPS, t.PPS = slices.Clone(t.SPS), slices.Clone(t.PPS)
	h.track = t
	h.trackVersion++
	close(h.trackChanged)
	h.trackChanged = make(chan struct{})
}

func sameTrack(a, b media.Track) bool {
	return a.Codec == b.Codec && a.Width == b.Width && a.Height == b.Height &&
		a.FPS == b.FPS && slices.Equal(a.SPS, b.SPS) && slices.Equal(a.PPS, b.PPS)
}

// trackState returns the current track, its version (0 if none) and a
// channel closed on the next change.
func (h *Hub) trackState() (media.Track, uint64, <-chan struct{}) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.track, h.trackVersion, h.trackChanged
}

// Publish adds one access unit. A key frame starts a new group, which makes
// the previous group stale for viewers still sending it. Frames before the
// first key frame are dropped. A zero au.Captured is replaced by the hub's
// clock. Publish copies au.Data once (into the wire
// encoding shared by all viewers) and never blocks on a viewer.
func (h *Hub) Publish(au media.AccessUnit) {
	h.counters.framesPublished.Add(1)
	if au.Captured.IsZero() {
		au.Captured = h.cfg.Now() // the best latency origin left
	}
	frame, err := wire.AppendFrame(make([]byte, 0, len(au.Data)+wire.FrameOverhead), wire.Frame{
		PTS:      max(au.PTS, 0), // the wire has no negative times
		Captured: au.Captured,
		Key:      au.Key,
		Payload:  au.Data,
	})
	if err != nil {
		h.counters.framesDropped.Add(1)
		h.log.Warn("dropping access unit", "err", err)
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return
	}
	if au.Key {
		h.startGroupLocked()
	}
	if h.current == nil || !h.current.append(frame) {
		h.counters.framesDropped.Add(1)
		return
	}
	close(h.published)
	h.published = make(chan struct{})
}

// nextPublish returns a channel closed when the next frame is added.
func (h *Hub) nextPublish() <-chan struct{} {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.published
}

func (h *Hub) startGroupLocked() {
	h.endGroupLocked()
	h.lastSeq++
	h.current = newGroup(h.lastSeq, &h.buffered)
	h.counters.groupsStarted.Add(1)
	close(h.groupStarted)
	h.groupStarted = make(chan struct{})
}

func (h *Hub) endGroupLocked() {
	if h.current != nil {
		h.current.end()
		h.current.release()
		h.current = nil
	}
}

// waitGroupAfter waits until a group newer than seq exists.
func (h *Hub) waitGroupAfter(ctx context.Context, seq uint64) error {
	for {
		h.mu.Lock()
		closed, ready, wait := h.closed, h.current != nil && h.current.seq > seq, h.groupStarted
		h.mu.Unlock()
		switch {
		case closed:
			return ErrHubClosed
		case ready:
			return nil
		}
		select {
		case <-wait:
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	}
}

// acquireCurrent returns the current group with a reference the caller
// must release, or nil if there is none.
func (h *Hub) acquireCurrent() *group {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.current != nil {
		h.current.acquire()
	}
	return h.current
}

// Serve runs the protocol with one viewer until the viewer leaves, ctx
// ends, the viewer breaks the protocol or the hub closes, and closes conn
// with the matching error code. conn must have completed its handshake with
// ALPN and an authorised peer; viewer names it in logs. Serve returns nil
// when the viewer closed the connection without error.
func (h *Hub) Serve(ctx context.Context, conn *quic.Conn, viewer string, opts ...ServeOption) error {
	s := newSession(h, conn, viewer)
	for _, o := range opts {
		o(s)
	}
	if err := h.admit(s); err != nil {
		closeConn(conn, codeOf(err), err.Error())
		return err
	}
	defer h.leave(s)
	return s.run(ctx)
}

// ServeOption adds to what Serve does for one viewer.
type ServeOption func(*session)

// WithNAT runs nat for the session, from the viewer's HELLO until the
// session ends (then ctx is cancelled and Serve waits for nat to return),
// with a natwire.Channel over the control stream: NAT traversal control
// messages (types 0x20 and 0x40) go to it instead of being skipped, and
// what nat sends is written on the control stream. nat's failure does not
// end the session: the viewer just stays on its current path.
func WithNAT(nat func(ctx context.Context, ch natwire.Channel)) ServeOption {
	return func(s *session) { s.natFn = nat }
}

func (h *Hub) admit(s *session) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return withCode(wire.ErrorGoingAway, "%w", ErrHubClosed)
	}
	if h.cfg.MaxViewers > 0 && len(h.sessions) >= h.cfg.MaxViewers {
		return withCode(wire.ErrorBusy, "viewer limit %d reached", h.cfg.MaxViewers)
	}
	h.sessions[s] = struct{}{}
	h.serving.Add(1)
	h.counters.viewersTotal.Add(1)
	return nil
}

func (h *Hub) leave(s *session) {
	h.mu.Lock()
	delete(h.sessions, s)
	h.mu.Unlock()
	h.serving.Done()
}

// Stats returns a snapshot of the hub's counters.
func (h *Hub) Stats() HubStats {
	h.mu.Lock()
	viewers := len(h.sessions)
	h.mu.Unlock()
	c := &h.counters
	return HubStats{
		Viewers:         viewers,
		ViewersTotal:    c.viewersTotal.Load(),
		FramesPublished: c.framesPublished.Load(),
		FramesDropped:   c.framesDropped.Load(),
		GroupsStarted:   c.groupsStarted.Load(),
		GroupsSent:      c.groupsSent.Load(),
		GroupsReset:     c.groupsReset.Load(),
		GroupsStopped:   c.groupsStopped.Load(),
		FramesSent:      c.framesSent.Load(),
		BytesSent:       c.bytesSent.Load(),
		BufferedBytes:   h.buffered.Load(),
	}
}

// Close sends GOAWAY to every viewer, closes their connections with
// ErrorGoingAway and waits for their Serve calls to return. It is safe to
// call more than once; every call waits.
//
// The hub has no goroutine of its own: each viewer's session runs in the
// caller's Serve. Done and Err complete the lifecycle shape.
func (h *Hub) Close() error {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		<-h.done
		return nil
	}
	h.closed = true
	h.endGroupLocked()
	close(h.groupStarted) // wake senders so that they see closed
	h.groupStarted = make(chan struct{})
	sessions := make([]*session, 0, len(h.sessions))
	for s := range h.sessions {
		sessions = append(sessions, s)
	}
	h.mu.Unlock()
	for _, s := range sessions {
		s.goAway("camera shutting down")
	}
	h.serving.Wait()
	close(h.done)
	return nil
}

// Done is closed once Close has ended every viewer's session.
func (h *Hub) Done() <-chan struct{} { return h.done }

// Err is nil once Done is closed: the hub stops only by Close, and a
// viewer's failure ends that viewer's Serve, not the hub.
func (h *Hub) Err() error {
	<-h.done
	return nil
}
