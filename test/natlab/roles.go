//go:build linux

package natlab

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/camagent/camagent/capture/encode"
	"github.com/camagent/camagent/internal/base/config"
	"github.com/camagent/camagent/internal/core/agent"
	"github.com/camagent/camagent/internal/core/viewer"
	"github.com/camagent/camagent/internal/feature/identity"
	"github.com/camagent/camagent/p2p/portspray"
	"github.com/camagent/camagent/p2p/traversal"
	"github.com/camagent/camagent/stream"
)

// The camera's picture: the agent's synthetic test source, encoded as the
// product encodes it (H.264 with a key frame every second; MJPEG in a
// build without the software H.264 encoder).
const (
	FPS           = 30
	KeyEvery      = 30
	frameInterval = time.Second / FPS
	captureWidth  = 640
	captureHeight = 360
)

// Camera is the camera role: the agent itself (internal/core/agent, as `camagent
// agent` runs it) on the synthetic test source, registered with the relay,
// with its NAT traversal wiring, its socket in the camera's namespace.
type Camera struct {
	Agent *agent.Agent
	// Offer is the camera as a paired viewer knows it: fingerprint and
	// relay URLs carrying its locator, no direct address.
	Offer identity.Camera

	dir string
}

// StartCamera starts the agent in namespace ns with viewer vid paired
// and waits until it streams and is registered with r.
func StartCamera(ctx context.Context, ns string, r *Relay, vid *identity.Identity) (*Camera, error) {
	dir, err := os.MkdirTemp("", "natlab-camera")
	if err != nil {
		return nil, err
	}
	// Paired beforehand, as `camagent pair` and `join` leave it: the
	// viewer's key in the camera's store (pairing is not under test here).
	vs, err := identity.OpenViewerStore(identity.ViewersPath(dir))
	if err == nil {
		_, err = vs.Add("natlab-viewer", vid.Fingerprint)
	}
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	cfg := config.Default()
	cfg.Name = "natlab"
	cfg.StateDir = dir
	cfg.Listen = fmt.Sprintf("0.0.0.0:%d", CameraPort)
	cfg.Capture.Device = "test"
	cfg.Capture.Width, cfg.Capture.Height, cfg.Capture.FPS = captureWidth, captureHeight, FPS
	cfg.Encode.KeyframeInterval = KeyEvery
	if !encode.SoftwareH264Available() {
		cfg.Encode.Codec = "mjpeg"
	}
	cfg.Relay.URLs = []string{r.URL.String()}
	cfg.Relay.Token = r.Token
	var a *agent.Agent
	// New opens the agent's socket and enumerates its interfaces: both in
	// the namespace. Run dials the relay on that socket.
	err = InNamespace(ns, func() (err error) {
		a, err = agent.New(cfg, debugLogger("camera"))
		return err
	})
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	a.SetFanOutListener(listenIn(ns))
	cam := &Camera{Agent: a, dir: dir}
	go a.Run(ctx) // its result is a.Err(), once a.Done() is closed
	fail := func(err error) (*Camera, error) {
		cam.Close()
		return nil, err
	}
	timeout := time.After(10 * time.Second)
	for _, wait := range []struct {
		what string
		c    <-chan struct{}
	}{{"streaming", a.Ready()}, {"registered with the relay", registered(a)}} {
		select {
		case <-wait.c:
		case <-a.Done():
			return fail(fmt.Errorf("agent stopped before %s: %v", wait.what, a.Err()))
		case <-timeout:
			return fail(fmt.Errorf("agent not %s after 10 s", wait.what))
		}
	}
	relays, err := a.ViewerRelayURLs(vid.Fingerprint)
	if err != nil {
		return fail(err)
	}
	cam.Offer = identity.Camera{Name: cfg.Name, Fingerprint: a.Identity().Fingerprint, Relays: relays}
	return cam, nil
}

// Reference is a second viewer inside the camera's namespace, on
// loopback straight to the agent: the frames the camera actually
// published. A frame missing there was skipped by the source (the test
// source drops slots it is late for on a busy CPU), not lost on the way.
type Reference struct {
	client *stream.Client
	cancel context.CancelFunc
	done   chan struct{}

	mu   sync.Mutex
	seen map[int]bool
	err  error
}

// StartReference connects vid to the agent over loopback in ns.
func (cam *Camera) StartReference(ctx context.Context, ns string, vid *identity.Identity) (*Reference, error) {
	ctx, cancel := context.WithCancel(ctx)
	r := &Reference{cancel: cancel, done: make(chan struct{}), seen: map[int]bool{}}
	local := cam.Offer
	local.Addrs, local.Relays = []string{fmt.Sprintf("127.0.0.1:%d", CameraPort)}, nil
	err := InNamespace(ns, func() (err error) {
		dctx, dcancel := context.WithTimeout(ctx, 5*time.Second)
		defer dcancel()
		s := viewer.Session{Dialer: viewer.Dialer{Identity: vid, Route: viewer.RouteDirect}, Camera: local, Name: "natlab-reference"}
		r.client, _, err = s.Open(dctx)
		return err
	})
	if err != nil {
		cancel()
		return nil, fmt.Errorf("reference viewer: %w", err)
	}
	go func() {
		defer close(r.done)
		for {
			f, err := r.client.ReadFrame(ctx)
			r.mu.Lock()
			if err != nil {
				r.err = err
				r.mu.Unlock()
				return
			}
			r.seen[frameNumber(f.PTS)] = true
			r.mu.Unlock()
		}
	}()
	return r, nil
}

// Published reports whether the camera published frame n.
func (r *Reference) Published(n int) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.seen[n]
}

// Close ends the reference viewer.
func (r *Reference) Close() {
	r.cancel()
	r.client.Close()
	<-r.done
}

// frameNumber is the source's slot of a frame: the source stamps frames
// with their due time.
func frameNumber(pts time.Duration) int { return int((pts + frameInterval/2) / frameInterval) }

// registered is closed at the agent's first registration with a relay.
func registered(a *agent.Agent) <-chan struct{} {
	c := make(chan struct{})
	go func() {
		<-a.RelayKeeper().Registered()
		close(c)
	}()
	return c
}

// Close stops the agent and removes its state.
func (cam *Camera) Close() error {
	go cam.Agent.Close()
	var err error
	select {
	case <-cam.Agent.Done():
		err = cam.Agent.Err()
	case <-time.After(10 * time.Second):
		err = errors.New("agent did not stop within 10 s")
	}
	os.RemoveAll(cam.dir)
	return err
}

// debugLogger logs to stderr when NATLAB_DEBUG is set, and nothing
// otherwise.
func debugLogger(role string) *slog.Logger {
	if os.Getenv("NATLAB_DEBUG") == "" {
		return nil
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("role", role)
}

// FrameRecord is one received frame: its number and arrival time.
type FrameRecord struct {
	N  int
	At time.Time
}

// PathEvent is a traversal event with the byte counters at that moment:
// the relay's (bytes it forwarded from the camera) and the viewer
// socket's (bytes received on any path).
type PathEvent struct {
	traversal.Event
	RelayBytes, ViewerBytes uint64
}

// Viewer is the viewer role, as `camagent view --via relay` runs it: a
// viewer.Session locates the camera at the relay and connects through it,
// its stream.Client reads the video, NAT traversal on its Link moves the
// connection to a direct path when one opens.
type Viewer struct {
	Connected time.Time
	Link      *viewer.Link

	client *stream.Client
	relay  *Relay
	cancel context.CancelFunc
	read   chan struct{}

	mu      sync.Mutex
	frames  []FrameRecord
	events  []PathEvent
	settled *PathEvent // the counters settle after the first switch
	err     error
}

// StartViewer connects viewer vid to cam through its relay from namespace
// ns, starts reading frames and NAT traversal.
func StartViewer(ctx context.Context, ns string, vid *identity.Identity, cam identity.Camera, r *Relay) (*Viewer, error) {
	ctx, cancel := context.WithCancel(ctx)
	v := &Viewer{relay: r, cancel: cancel}
	fail := func(err error) (*Viewer, error) {
		v.Close()
		return nil, err
	}
	log := debugLogger("viewer")
	// The session opens the viewer's socket (and the locate connection to
	// the relay), and its NAT traversal enumerates the host's interfaces:
	// both in the namespace.
	err := InNamespace(ns, func() (err error) {
		dctx, dcancel := context.WithTimeout(ctx, 10*time.Second)
		defer dcancel()
		var noTraversal error
		s := viewer.Session{
			Dialer: viewer.Dialer{Identity: vid, Route: viewer.RouteRelay, Logger: log},
			Camera: cam, Name: "natlab-viewer",
			Listen: listenIn(ns), OnPath: v.onEvent,
			TraversalFailed: func(err error) { noTraversal = err },
		}
		v.client, v.Link, err = s.Open(dctx)
		if err != nil {
			return err
		}
		v.Connected = v.Link.Connected()
		return noTraversal
	})
	if err != nil {
		return fail(err)
	}
	v.read = make(chan struct{})
	go v.readFrames(ctx)
	return v, nil
}

func (v *Viewer) onEvent(link *viewer.Link, e traversal.Event) {
	if os.Getenv("NATLAB_TRACE") != "" {
		fmt.Fprintf(os.Stderr, "event %s %v\n", time.Now().Format("15:04:05.000"), e.Kind)
	}
	pe := PathEvent{Event: e, RelayBytes: v.relay.FromCamera(), ViewerBytes: socketBytes(link)}
	v.mu.Lock()
	first := e.Kind == traversal.EventDirect && !slices.ContainsFunc(v.events, func(p PathEvent) bool { return p.Kind == traversal.EventDirect })
	v.events = append(v.events, pe)
	v.mu.Unlock()
	if first {
		time.AfterFunc(settle, func() {
			st := PathEvent{Event: traversal.Event{Kind: e.Kind, At: time.Now()}, RelayBytes: v.relay.FromCamera(), ViewerBytes: socketBytes(link)}
			v.mu.Lock()
			v.settled = &st
			v.mu.Unlock()
		})
	}
}

// Settled is the byte counters settle after the first switch to direct.
func (v *Viewer) Settled() (PathEvent, bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.settled == nil {
		return PathEvent{}, false
	}
	return *v.settled, true
}

// socketBytes is what the viewer's socket received on every path.
func (v *Viewer) socketBytes() uint64 { return socketBytes(v.Link) }

func socketBytes(l *viewer.Link) uint64 {
	ps := l.PathStats()
	return ps.BytesDirect + ps.BytesRelay
}

func (v *Viewer) readFrames(ctx context.Context) {
	defer close(v.read)
	for {
		f, err := v.client.ReadFrame(ctx)
		if err != nil {
			v.mu.Lock()
			v.err = err
			v.mu.Unlock()
			return
		}
		v.mu.Lock()
		v.frames = append(v.frames, FrameRecord{N: frameNumber(f.PTS), At: f.Received})
		v.mu.Unlock()
	}
}

// Snapshot returns the frames and events so far, the byte counters now,
// and the reader's error if it stopped.
func (v *Viewer) Snapshot() (frames []FrameRecord, events []PathEvent, relayBytes, viewerBytes uint64, err error) {
	relayBytes, viewerBytes = v.relay.FromCamera(), v.socketBytes()
	v.mu.Lock()
	defer v.mu.Unlock()
	return append([]FrameRecord(nil), v.frames...), append([]PathEvent(nil), v.events...), relayBytes, viewerBytes, v.err
}

// ClientStats are the traversal client's counters.
func (v *Viewer) ClientStats() traversal.ClientStats {
	st, _ := v.Link.TraversalStats()
	return st
}

// Close ends the connection.
func (v *Viewer) Close() error {
	v.cancel()
	if v.client != nil {
		v.client.Close()
	}
	if v.Link != nil {
		v.Link.Close()
	}
	if v.read != nil {
		<-v.read
	}
	return nil
}

// listenIn opens the sockets of a port-spray fan-out in namespace ns,
// where the role's own socket is (the roles run as goroutines on threads
// of the test's namespace).
func listenIn(ns string) portspray.ListenFunc {
	return func(n int) (conns []net.PacketConn, err error) {
		err = InNamespace(ns, func() (err error) {
			conns, err = portspray.ListenUDP(netip.IPv4Unspecified())(n)
			return err
		})
		return conns, err
	}
}
