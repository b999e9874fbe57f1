package stream

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/camagent/camagent/p2p/natwire"
	"github.com/camagent/camagent/stream/wire"
)

const (
	// helloTimeout bounds how long a new viewer may take to open the
	// control stream and send HELLO.
	helloTimeout = 10 * time.Second
	// controlWriteTimeout bounds one control message write; a viewer that
	// does not take a few hundred bytes in this time is gone.
	controlWriteTimeout = 10 * time.Second
	controlBufferSize   = 4 << 10
)

// errViewerLeft ends a session whose viewer closed its control stream.
var errViewerLeft = errors.New("viewer closed the control stream")

// session serves one viewer: a control reader, a catalog sender, a group
// sender and two loops that refuse streams the viewer may not open.
type session struct {
	hub    *Hub
	conn   *quic.Conn
	viewer string
	log    *slog.Logger

	ctrlMu  sync.Mutex // serialises writes on ctrl
	ctrl    *quic.Stream
	ctrlBuf []byte

	catalogSent chan struct{} // closed after the first CATALOG

	natFn func(context.Context, natwire.Channel) // WithNAT, or nil
	nat   *natChannel                            // set before readControl runs when natFn is
}

func newSession(h *Hub, conn *quic.Conn, viewer string) *session {
	return &session{
		hub:         h,
		conn:        conn,
		viewer:      viewer,
		log:         h.log.With("viewer", viewer, "remote", conn.RemoteAddr().String()),
		catalogSent: make(chan struct{}),
	}
}

func (s *session) run(parent context.Context) error {
	ctx, cancel := context.WithCancelCause(parent)
	defer cancel(nil)
	// Connection loss cancels everything the session waits on.
	stop := context.AfterFunc(s.conn.Context(), func() { cancel(context.Cause(s.conn.Context())) })
	defer stop()

	ctrlReader, err := s.handshake(ctx)
	if err != nil {
		return s.finish(parent, err)
	}
	s.log.Info("viewer joined")
	if s.natFn != nil {
		s.nat = newNATChannel(s.writeMessage, ctx.Done())
		natDone := make(chan struct{})
		go func() { defer close(natDone); s.natFn(ctx, s.nat) }()
		defer func() { cancel(nil); <-natDone }()
	}
	loops := []func(context.Context) error{
		func(ctx context.Context) error { return s.readControl(ctrlReader) },
		s.sendCatalogs,
		s.sendGroups,
		s.refuseUniStreams,
		s.refuseBidiStreams,
	}
	errs := make(chan error, len(loops))
	for _, loop := range loops {
		go func() { errs <- loop(ctx) }()
	}
	first := <-errs
	cancel(first)
	err = s.finish(parent, first) // closes the connection, which unblocks stream reads
	for range len(loops) - 1 {
		<-errs
	}
	return err
}

// handshake accepts the control stream and reads HELLO (protocol.md §3.1).
func (s *session) handshake(ctx context.Context) (*bufio.Reader, error) {
	hctx, cancel := context.WithTimeout(ctx, helloTimeout)
	defer cancel()
	str, err := s.conn.AcceptStream(hctx)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return nil, withCode(wire.ErrorTimeout, "no control stream within %v", helloTimeout)
		}
		return nil, err
	}
	_ = str.SetReadDeadline(time.Now().Add(helloTimeout))
	r := bufio.NewReaderSize(str, controlBufferSize)
	m, err := wire.ReadMessage(r)
	if err != nil {
		return nil, controlReadError("read HELLO", err)
	}
	hello, ok := m.(*wire.Hello)
	if !ok {
		return nil, violation(fmt.Errorf("first control message is %v, want HELLO", m.Type()))
	}
	if hello.Version != wire.Version1 {
		return nil, withCode(wire.ErrorUnsupportedVersion, "viewer speaks version %d", hello.Version)
	}
	_ = str.SetReadDeadline(time.Time{})
	str.SetPriority(0, false) // control messages overtake video
	s.ctrlMu.Lock()
	s.ctrl = str
	s.ctrlMu.Unlock()
	s.log = s.log.With("software", hello.Software)
	return r, nil
}

// controlReadError classifies a failed control read: bad bytes and a
// message cut short are violations; a timeout is a timeout.
func controlReadError(what string, err error) error {
	var netErr net.Error
	var appErr *quic.ApplicationError
	switch {
	case errors.Is(err, wire.ErrMalformed), errors.Is(err, io.ErrUnexpectedEOF):
		return violation(fmt.Errorf("%s: %w", what, err))
	case errors.As(err, &netErr) && netErr.Timeout():
		return withCode(wire.ErrorTimeout, "%s: %w", what, err)
	case errors.Is(err, io.EOF):
		return errViewerLeft
	case errors.As(err, &appErr) && appErr.Remote && appErr.ErrorCode == quic.ApplicationErrorCode(wire.ErrorNone):
		// The viewer closed the connection cleanly; the read can see it
		// before conn.Context() is done, which finish checks first.
		return errViewerLeft
	}
	if isStream, _ := streamErrorOrigin(err); isStream {
		return violation(fmt.Errorf("%s: control stream reset: %w", what, err))
	}
	return fmt.Errorf("%s: %w", what, err)
}

// finish closes the connection with the code that err calls for and
// returns what Serve reports.
func (s *session) finish(parent context.Context, err error) error {
	if cause := context.Cause(s.conn.Context()); s.conn.Context().Err() != nil {
		// The connection is already closed: by the viewer, by goAway or
		// by an idle timeout.
		var appErr *quic.ApplicationError
		if errors.As(cause, &appErr) && appErr.Remote && appErr.ErrorCode == quic.ApplicationErrorCode(wire.ErrorNone) {
			s.log.Info("viewer left")
			return nil
		}
		s.log.Info("viewer connection closed", "cause", cause)
		return fmt.Errorf("viewer %s: %w", s.viewer, cause)
	}
	switch {
	case errors.Is(err, errViewerLeft):
		closeConn(s.conn, wire.ErrorNone, "")
		s.log.Info("viewer left")
		return nil
	case parent.Err() != nil:
		s.goAway("server stopping")
		return context.Cause(parent)
	}
	code := codeOf(err)
	s.log.Warn("closing viewer", "code", code, "err", err)
	closeConn(s.conn, code, err.Error())
	return fmt.Errorf("viewer %s: %w", s.viewer, err)
}

// goAway tells the viewer why it is being closed and closes the
// connection. It does not wait behind a stalled control write.
func (s *session) goAway(reason string) {
	if s.ctrlMu.TryLock() {
		if s.ctrl != nil {
			b, err := wire.AppendMessage(nil, &wire.GoAway{Reason: reason})
			if err == nil {
				_ = s.ctrl.SetWriteDeadline(time.Now().Add(time.Second))
				_, _ = s.ctrl.Write(b)
			}
		}
		s.ctrlMu.Unlock()
	}
	closeConn(s.conn, wire.ErrorGoingAway, reason)
}

func (s *session) writeMessage(m wire.Message) error {
	s.ctrlMu.Lock()
	defer s.ctrlMu.Unlock()
	b, err := wire.AppendMessage(s.ctrlBuf[:0], m)
	if err != nil {
		return withCode(wire.ErrorInternal, "encode %v: %w", m.Type(), err)
	}
	s.ctrlBuf = b
	_ = s.ctrl.SetWriteDeadline(time.Now().Add(controlWriteTimeout))
	if _, err := s.ctrl.Write(b); err != nil {
		var netErr net.Error
		if errors.As(err, &netErr) && netErr.Timeout() {
			return withCode(wire.ErrorTimeout, "write %v: %w", m.Type(), err)
		}
		return fmt.Errorf("write %v: %w", m.Type(), err)
	}
	return nil
}

// readControl answers PING and skips unknown messages (protocol.md §3).
func (s *session) readControl(r *bufio.Reader) error {
	for {
		m, err := wire.ReadMessage(r)
		if err != nil {
			return controlReadError("read control", err)
		}
		switch m := m.(type) {
		case *wire.Ping:
			if err := s.writeMessage(&wire.Pong{Timestamp: m.Timestamp}); err != nil {
				return err
			}
		case *wire.Pong:
			// The hub sends no PING; an unsolicited PONG is harmless.
		case *wire.GoAway:
			s.log.Info("viewer going away", "reason", m.Reason)
		case *wire.Unknown:
			if s.nat != nil && isNATMessage(m) {
				if err := s.nat.deliver(m); err != nil {
					return err
				}
				continue
			}
			s.log.Debug("skipping unknown control message", "type", m.MessageType, "bytes", len(m.Payload))
		default:
			return violation(fmt.Errorf("viewer sent %v", m.Type()))
		}
	}
}

// sendCatalogs sends CATALOG once a track is known and again after every
// change (protocol.md §3.2).
func (s *session) sendCatalogs(ctx context.Context) error {
	var sent uint64
	for {
		track, version, changed := s.hub.trackState()
		if version != 0 && version != sent {
			err := s.writeMessage(&wire.Catalog{CameraName: s.hub.cfg.CameraName, Track: track})
			if err != nil {
				return err
			}
			if sent == 0 {
				close(s.catalogSent)
			}
			sent = version
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	}
}

// refuseUniStreams stops every unidirectional stream the viewer opens:
// version 1 defines none in that direction (protocol.md §4).
func (s *session) refuseUniStreams(ctx context.Context) error {
	for {
		str, err := s.conn.AcceptUniStream(ctx)
		if err != nil {
			return err
		}
		str.CancelRead(quic.StreamErrorCode(wire.ErrorNone))
	}
}

// refuseBidiStreams refuses bidirectional streams after the control stream.
func (s *session) refuseBidiStreams(ctx context.Context) error {
	for {
		str, err := s.conn.AcceptStream(ctx)
		if err != nil {
			return err
		}
		str.CancelRead(quic.StreamErrorCode(wire.ErrorNone))
		str.CancelWrite(quic.StreamErrorCode(wire.ErrorNone))
	}
}
