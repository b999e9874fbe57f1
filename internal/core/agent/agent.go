// Package agent is the camera's composition root: RunService is the whole
// process that `camagent agent` runs under systemd: the Agent (capture,
// encoding, the QUIC server that serves paired viewers, recordings and
// pairing requests, relay registrations, and the health figures), the
// board around it (status LED, PIR, IR-cut, hardware watchdog, the local
// status endpoint) and the systemd notifier that feeds the watchdog from
// those health figures.
package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/camagent/camagent/capture"
	"github.com/camagent/camagent/internal/base/config"
	"github.com/camagent/camagent/internal/base/logging"
	"github.com/camagent/camagent/internal/base/media"
	"github.com/camagent/camagent/internal/feature/identity"
	"github.com/camagent/camagent/internal/feature/pairing"
	"github.com/camagent/camagent/storage/playback"
	"github.com/camagent/camagent/stream"
)

// Agent is one running camera.
type Agent struct {
	cfg     config.Config
	log     *slog.Logger
	id      *identity.Identity
	viewers *identity.ViewerStore
	codes   *pairing.CodeStore
	hub     *stream.Hub
	rec     *recording // recordings, motion events, stills
	ln      *quic.Listener
	relays  *relayState // nil without relays
	limits  *connLimits // viewer connections per key and camera-wide
	now     func() time.Time

	// openSource opens the capture source; replaced in tests.
	openSource func() (capture.Source, error)

	lastFrame atomic.Int64 // unix nanoseconds of the last encoded frame
	frames    atomic.Uint64
	ready     chan struct{}
	readyOnce sync.Once

	mu    sync.Mutex
	conns map[*quic.Conn]string // live viewer connections and their fingerprints

	serving sync.WaitGroup // serveConn goroutines; run waits for them

	// Lifecycle: Run or Close ends in done, err.
	life    sync.Mutex
	started bool               // Run was called
	closed  bool               // Close was called
	cancel  context.CancelFunc // stops Run
	done    chan struct{}
	err     error
}

// New prepares an agent: identity, stores and the listening socket. It does
// not open the camera yet; Run does. Close releases it whether or not it
// ran.
func New(cfg config.Config, log *slog.Logger) (*Agent, error) {
	log = logging.Discard(log)
	if err := os.MkdirAll(cfg.StateDir, 0o700); err != nil {
		return nil, fmt.Errorf("state dir: %w", err)
	}
	id, err := identity.LoadOrCreate(cfg.StateDir)
	if err != nil {
		return nil, err
	}
	viewers, err := identity.OpenViewerStore(filepath.Join(cfg.StateDir, identity.ViewersFile))
	if err != nil {
		return nil, err
	}
	codes, err := pairing.OpenCodeStore(pairing.CodesPath(cfg.StateDir))
	if err != nil {
		return nil, err
	}
	rec, err := newRecording(cfg, log)
	if err != nil {
		return nil, err
	}
	tlsConf := identity.ServerTLSConfigALPNs(id, viewers, []string{stream.ALPN, playback.ALPN}, pairing.ALPN, log.With("component", "tls"))
	locators := &locatorSource{id: id, viewers: viewers, codes: codes, log: log.With("component", "relay"), now: time.Now}
	ln, relays, err := listen(cfg, id, tlsConf, locators, log)
	if err != nil {
		rec.Close()
		return nil, err
	}
	a := &Agent{
		cfg: cfg, log: log, id: id, viewers: viewers, codes: codes, ln: ln, rec: rec, relays: relays,
		now:   time.Now,
		ready: make(chan struct{}),
		done:  make(chan struct{}),
		conns: map[*quic.Conn]string{},
		hub:   stream.NewHub(stream.HubConfig{CameraName: cfg.Name, Logger: log.With("component", "hub")}),
	}
	a.openSource = a.defaultSource
	a.limits = newConnLimits(cfg.Limits)
	log.Info("camera identity", "fingerprint", identity.ShortFingerprint(id.Fingerprint), "listen", ln.Addr().String())
	return a, nil
}

// Addr is the UDP address viewers connect to.
func (a *Agent) Addr() net.Addr { return a.ln.Addr() }

// Identity is the camera's key and certificate.
func (a *Agent) Identity() *identity.Identity { return a.id }

// Hub is the fan-out that viewers are served from.
func (a *Agent) Hub() *stream.Hub { return a.hub }

// Ready is closed once the first frame has been captured and encoded.
func (a *Agent) Ready() <-chan struct{} { return a.ready }

// Healthy reports whether the capture loop produced a frame recently; the
// systemd watchdog is pinged only while it does.
func (a *Agent) Healthy() bool {
	last := a.lastFrame.Load()
	if last == 0 {
		return false
	}
	limit := 2*a.cfg.Capture.StallTimeout + 10*time.Second // covers a device reopen
	return a.now().Sub(time.Unix(0, last)) < limit
}

// Frames is the number of access units captured and encoded since start.
func (a *Agent) Frames() uint64 { return a.frames.Load() }

// Status is a one-line summary for systemd's STATUS= and logs.
func (a *Agent) Status() string {
	st := a.hub.Stats()
	return fmt.Sprintf("%d viewers, %d frames captured", st.Viewers, a.frames.Load())
}

// errRunAgain is Run's answer on an agent that already ran or was closed.
var errRunAgain = errors.New("agent: Run called twice or after Close")

// Run captures and serves until ctx ends, Close is called or the capture
// or the listener fails, then closes everything. It returns what Err
// returns.
func (a *Agent) Run(ctx context.Context) error {
	a.life.Lock()
	if a.started || a.closed {
		a.life.Unlock()
		return errRunAgain
	}
	ctx, a.cancel = context.WithCancel(ctx)
	a.started = true
	a.life.Unlock()
	a.err = a.run(ctx)
	close(a.done)
	return a.err
}

// Close stops Run and waits for it to have closed everything; on an agent
// that never ran it releases what New opened. It is safe to call more than
// once and from any goroutine.
func (a *Agent) Close() error {
	a.life.Lock()
	first := !a.closed
	a.closed = true
	started := a.started
	if started {
		a.cancel()
	}
	a.life.Unlock()
	if first && !started {
		a.release()
		close(a.done)
	}
	<-a.done
	return nil
}

// Done is closed when the agent has stopped (Run returned, or Close
// released an agent that never ran).
func (a *Agent) Done() <-chan struct{} { return a.done }

// Err is why the agent stopped, once Done is closed: nil when Run's
// context ended or Close stopped it, otherwise the capture or listener
// failure.
func (a *Agent) Err() error {
	<-a.done
	return a.err
}

func (a *Agent) run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errc := make(chan error, 2)
	wg.Add(4)
	go func() { defer wg.Done(); a.relays.run(ctx) }()
	go func() { defer wg.Done(); errc <- a.captureLoop(ctx) }()
	go func() { defer wg.Done(); errc <- a.acceptLoop(ctx) }()
	go func() { defer wg.Done(); a.watchRevocations(ctx) }()
	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	cancel()
	a.ln.Close()
	a.relays.close()
	a.hub.Close()
	wg.Wait()
	// Every connection's goroutine ends once ctx is cancelled and the
	// listener's transport has closed the connections; playback must
	// have stopped reading recordings before they are sealed.
	a.serving.Wait()
	a.rec.Close() // after the capture loop: seals the last segment
	if errors.Is(err, context.Canceled) {
		err = nil
	}
	return err
}

// release closes what New opened, for an agent that never ran.
func (a *Agent) release() {
	a.ln.Close()
	a.relays.close()
	a.hub.Close()
	a.rec.Close()
}

func (a *Agent) defaultSource() (capture.Source, error) {
	var pix media.PixelFormat
	if !strings.EqualFold(a.cfg.Capture.Format, "auto") {
		var err error
		if pix, err = capture.ParsePixelFormat(a.cfg.Capture.Format); err != nil {
			return nil, fmt.Errorf("capture.format: %w", err)
		}
	}
	return capture.Open(capture.Config{
		Device: a.cfg.Capture.Device, Pixel: pix,
		Width: a.cfg.Capture.Width, Height: a.cfg.Capture.Height, FPS: a.cfg.Capture.FPS,
		StallTimeout: a.cfg.Capture.StallTimeout,
		Logger:       a.log.With("component", "capture"),
	})
}
