package viewer

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/camagent/camagent/internal/feature/identity"
	"github.com/camagent/camagent/p2p/portspray"
	"github.com/camagent/camagent/p2p/traversal"
	"github.com/camagent/camagent/storage/playback"
	"github.com/camagent/camagent/stream"
)

const (
	// handshakeTimeout bounds the stream client's hello once the link is
	// up; a resuming session gives up sooner, to try again.
	handshakeTimeout       = 10 * time.Second
	resumeHandshakeTimeout = 5 * time.Second
	// watchSlack bounds the wall-clock time of a session with a Duration,
	// in case the camera stalls: the duration plus this. A resuming
	// session allows for reconnections.
	watchSlack       = 30 * time.Second
	resumeWatchSlack = 60 * time.Second
	// resumeStall is how long a resuming session waits for a frame before
	// it reconnects.
	resumeStall = 1500 * time.Millisecond
)

// Session is the viewer's side of one paired camera, as `camagent view`,
// `camagent recordings` and the NAT lab run it: the link (Dialer), the
// stream client on it, NAT traversal when the link went through a relay
// (docs/nat-traversal.md), and with Resume, reconnection when the stream
// stops, keeping one output.
type Session struct {
	// Dialer reaches the camera; the session sets its ALPN.
	Dialer Dialer
	Camera identity.Camera
	// Name is how the stream client introduces itself to the camera
	// ("camagent-view/VERSION").
	Name string
	// Resume makes Watch reconnect (directly or through a relay) when the
	// stream stops, keeping one output.
	Resume bool
	// Messages receives lines for a person: what is watched, each change
	// of path, a NAT traversal that could not start; nil for none.
	Messages io.Writer
	// OnPath, if set, hears each change of path of a relayed link.
	OnPath func(*Link, traversal.Event)
	// TraversalFailed, if set, hears why NAT traversal could not start on
	// a relayed link. The session stays on the relay either way.
	TraversalFailed func(error)
	// Listen, if set, opens the sockets of port-spray fan-outs
	// (Link.Listen).
	Listen portspray.ListenFunc
}

// Report is a session's summary: its figures, and for a resuming session
// how often and how long it was cut off. It marshals as one JSON object.
type Report struct {
	Summary
	*ResumeStats
}

// Open dials the camera's live video, opens the stream client on the link
// and, on a relayed link, starts NAT traversal over the client's control
// stream. Closing the client closes the link's connection.
func (s *Session) Open(ctx context.Context) (*stream.Client, *Link, error) {
	d := s.Dialer
	d.ALPN = stream.ALPN
	link, err := d.Dial(ctx, s.Camera)
	if err != nil {
		return nil, nil, err
	}
	link.Listen = s.Listen
	timeout := handshakeTimeout
	if s.Resume {
		timeout = resumeHandshakeTimeout
	}
	hctx, cancel := context.WithTimeout(ctx, timeout)
	c, err := stream.NewClient(hctx, link.Conn, s.Name)
	cancel()
	if err != nil {
		link.Close()
		return nil, nil, err
	}
	if s.Resume {
		s.say("watching %s via %s\n", c.CameraName(), link.Conn.RemoteAddr())
	}
	s.traverse(link, func(onEvent func(traversal.Event)) error {
		return link.StartTraversal(c.NATChannel(), onEvent)
	})
	if !s.Resume {
		tr := c.Track()
		s.say("watching %s: %s %dx%d @ %g fps\n", c.CameraName(), tr.Codec, tr.Width, tr.Height, tr.FPS)
	}
	return c, link, nil
}

// OpenRecordings dials the camera's recordings protocol (camagent-rec/1)
// the way live video goes: direct when the camera answers there,
// otherwise through one of its relays, where the link moves to a direct
// path when one opens, as live video does (the camera opens the NAT
// traversal stream; Link.AcceptTraversal).
func (s *Session) OpenRecordings(ctx context.Context) (*playback.Client, *Link, error) {
	d := s.Dialer
	d.ALPN = playback.ALPN
	link, err := d.Dial(ctx, s.Camera)
	if err != nil {
		return nil, nil, err
	}
	link.Listen = s.Listen
	if link.Relayed() {
		link.AcceptTraversal(s.pathEvents(link))
	}
	return playback.NewClient(link.Conn), link, nil
}

// Watch watches the live stream until opts.Duration of video has arrived
// or ctx ends (see the function Watch), reconnecting with Resume. The
// Report is nil only when the first connection failed without Resume.
func (s *Session) Watch(ctx context.Context, opts Options) (*Report, error) {
	if s.Resume {
		return s.watchResuming(ctx, opts)
	}
	c, link, err := s.Open(ctx)
	if err != nil {
		return nil, err
	}
	defer link.Close()
	defer c.Close()
	opts.Paths = link.PathStats
	if opts.Duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, opts.Duration+watchSlack)
		defer cancel()
	}
	sum, err := Watch(ctx, c, opts)
	return &Report{Summary: sum}, err
}

func (s *Session) watchResuming(ctx context.Context, opts Options) (*Report, error) {
	var paths Paths
	defer paths.close()
	connect := func(ctx context.Context) (*stream.Client, error) {
		c, link, err := s.Open(ctx)
		if err != nil {
			return nil, err
		}
		paths.Add(link)
		return c, nil
	}
	opts.Paths = paths.Stats
	if opts.Duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, opts.Duration+resumeWatchSlack)
		defer cancel()
	}
	sum, rs, err := watchResuming(ctx, connect, opts, resumeStall)
	return &Report{Summary: sum, ResumeStats: &rs}, err
}

// traverse starts NAT traversal on a relayed link with start, saying so
// when it cannot: the session then stays on the relay.
func (s *Session) traverse(link *Link, start func(onEvent func(traversal.Event)) error) {
	if !link.Relayed() {
		return
	}
	if err := start(s.pathEvents(link)); err != nil {
		s.say("staying on the relay: %v\n", err)
		if s.TraversalFailed != nil {
			s.TraversalFailed(err)
		}
	}
}

// pathEvents is the traversal event handler of link: each change of path
// goes to Messages and OnPath.
func (s *Session) pathEvents(link *Link) func(traversal.Event) {
	return func(e traversal.Event) {
		if s.Messages != nil {
			switch e.Kind {
			case traversal.EventDirect:
				ps := link.PathStats()
				how := ""
				if ps.PortSprays > 0 {
					how = ", by port spraying" // docs/nat-traversal.md §3.4
				}
				s.say("path: direct to %s (%.0f ms after connecting through the relay%s)\n", e.Addr, *ps.TimeToDirectMs, how)
			case traversal.EventRelay:
				s.say("path: direct path to %s lost; back on the relay\n", e.Addr)
			}
		}
		if s.OnPath != nil {
			s.OnPath(link, e)
		}
	}
}

func (s *Session) say(format string, args ...any) {
	if s.Messages != nil {
		fmt.Fprintf(s.Messages, format, args...)
	}
}
