// Package playback serves recordings, motion events and stills to paired
// viewers over QUIC (ALPN camagent-rec/1, wire format in storage/recwire),
// and is the viewer's client for them: list, play from any time (seek is a
// new play request), export a clip as MP4.
package playback

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/camagent/camagent/internal/base/media"
	"github.com/camagent/camagent/storage"
	"github.com/camagent/camagent/storage/recwire"
)

// ALPN is the recordings protocol. The camera admits it, like live video,
// only for paired viewers (identity.ServerTLSConfigALPNs).
const ALPN = "camagent-rec/1"

// Stream error codes.
const (
	errCodeCancelled quic.StreamErrorCode = 1
)

// Source is what the server serves; any part may be missing.
type Source struct {
	Recorder *storage.Recorder // nil: no recordings
	Events   EventLog          // nil: no events
	// Still returns the next camera frame as a JPEG. It is called for every
	// still request; bounding the encodes camera-wide is its job (the agent
	// encodes a few at a time).
	Still func(ctx context.Context) ([]byte, error)
	// MaxRequests bounds the requests served at once on one connection;
	// 0 means DefaultMaxRequests. Further streams wait, unread, within
	// QUIC's stream limit and flow control.
	MaxRequests int
}

// DefaultMaxRequests is Source.MaxRequests when unset: a viewer that seeks
// while fetching a still and a listing needs three.
const DefaultMaxRequests = 8

// EventLog is the camera's motion event log as this server needs it. The
// composition root adapts the motion package to it, so that playback, like
// storage itself (storage.Companion), does not depend on motion.
type EventLog interface {
	// Events lists every event, oldest first; an open event has a zero End.
	Events() ([]recwire.Event, error)
	// Snapshot is the JPEG of the event with the given id (already checked
	// to be an event id, never a path).
	Snapshot(id string) ([]byte, error)
}

// Serve answers requests on conn until it closes or ctx ends. It runs on
// the caller's goroutine, so it has no Close, Done or Err: cancel ctx or
// close conn to stop it. Each request is answered on a goroutine of its
// own that ends with its stream, conn or ctx; Serve does not wait for
// those still running when it returns.
func Serve(ctx context.Context, conn *quic.Conn, src Source, log *slog.Logger) error {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	n := src.MaxRequests
	if n <= 0 {
		n = DefaultMaxRequests
	}
	// A slot is taken before a stream is accepted: a viewer that opens a
	// hundred streams (quic-go's default stream limit) has n served and
	// the rest held by QUIC, which also bounds the bytes they may send.
	slots := make(chan struct{}, n)
	for {
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			return ctx.Err()
		case <-conn.Context().Done():
			return context.Cause(conn.Context())
		}
		str, err := conn.AcceptStream(ctx)
		if err != nil {
			return err
		}
		go func() {
			defer func() { <-slots }()
			if err := serveStream(ctx, str, src); err != nil {
				log.Info("playback request failed", "err", err)
			}
		}()
	}
}

// requestTimeout bounds how long a viewer may take to send its request.
const requestTimeout = 10 * time.Second

func serveStream(ctx context.Context, str *quic.Stream, src Source) error {
	defer str.Close()
	str.SetReadDeadline(time.Now().Add(requestTimeout))
	req, err := recwire.ReadRequest(str)
	if err != nil {
		str.CancelRead(errCodeCancelled)
		if errors.Is(err, recwire.ErrTooLarge) {
			// Refused on its length alone, before any of it was read:
			// say why, so the viewer does not just see a cut stream.
			recwire.WriteMessage(str, recwire.Response{Error: err.Error()})
		}
		return err
	}
	// A viewer that seeks cancels this stream: stop when it does.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	context.AfterFunc(str.Context(), cancel)
	w := bufio.NewWriterSize(str, 64<<10)
	err = answer(ctx, w, req, src)
	var started errStarted
	if errors.As(err, &started) {
		// Frames were sent: the reset tells the viewer the clip is cut.
		str.CancelWrite(errCodeCancelled)
		return err
	}
	if err != nil {
		if werr := recwire.WriteMessage(w, recwire.Response{Error: err.Error()}); werr != nil {
			return werr
		}
	}
	if ferr := w.Flush(); ferr != nil && err == nil {
		err = ferr
	}
	return err
}

// errStarted marks an error after the response header was sent, when no
// error response can follow.
type errStarted struct{ error }

func answer(ctx context.Context, w io.Writer, req recwire.Request, src Source) error {
	switch req.Op {
	case recwire.OpList:
		return list(w, req, src)
	case recwire.OpPlay:
		return play(ctx, w, req, src)
	case recwire.OpStill:
		if src.Still == nil {
			return errors.New("no camera frames")
		}
		sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		jpg, err := src.Still(sctx)
		cancel()
		if err != nil {
			return err
		}
		return sendBlob(w, jpg)
	case recwire.OpEventSnapshot:
		return eventSnapshot(w, req, src)
	}
	return fmt.Errorf("unknown request %q", req.Op)
}

func list(w io.Writer, req recwire.Request, src Source) error {
	var resp recwire.Response
	if src.Recorder != nil {
		for _, s := range src.Recorder.Segments() {
			if inRange(s.Start, s.End(), req) {
				resp.Segments = append(resp.Segments, recwire.Segment{Start: s.Start, Duration: s.Duration, Size: s.Size, Open: s.Open})
			}
		}
	}
	if src.Events != nil {
		events, err := src.Events.Events()
		if err != nil {
			return err
		}
		for _, e := range events {
			end := e.End
			if end.IsZero() {
				end = e.Start
			}
			if inRange(e.Start, end, req) {
				resp.Events = append(resp.Events, e)
			}
		}
	}
	return recwire.WriteMessage(w, resp)
}

// inRange reports whether [start, end] meets the request's [From, To)
// (zero bounds are open).
func inRange(start, end time.Time, req recwire.Request) bool {
	return (req.To.IsZero() || start.Before(req.To)) && (req.From.IsZero() || !end.Before(req.From))
}

func play(ctx context.Context, w io.Writer, req recwire.Request, src Source) error {
	if src.Recorder == nil {
		return errors.New("this camera does not record (storage.mode is off)")
	}
	to := req.To
	if to.IsZero() {
		to = time.Now().Add(24 * time.Hour)
	}
	if !req.From.Before(to) {
		return fmt.Errorf("empty range %v to %v", req.From, to)
	}
	if err := recwire.WriteMessage(w, recwire.Response{}); err != nil {
		return err
	}
	err := storage.ReadRange(ctx, src.Recorder.Dir(), src.Recorder.Segments(), req.From, to, func(au media.AccessUnit) error {
		return recwire.WriteFrame(w, recwire.Frame{Key: au.Key, Captured: au.Captured, Data: au.Data})
	})
	if err != nil {
		return errStarted{err} // the viewer sees the stream end without an end record
	}
	return recwire.WriteEnd(w)
}

func eventSnapshot(w io.Writer, req recwire.Request, src Source) error {
	if src.Events == nil {
		return errors.New("no motion events on this camera")
	}
	// Event ids are timestamps; anything else (say "../key.pem") is refused.
	if _, err := time.Parse("20060102T150405.000Z", req.ID); err != nil {
		return fmt.Errorf("bad event id %q", req.ID)
	}
	jpg, err := src.Events.Snapshot(req.ID)
	if err != nil {
		return fmt.Errorf("event %s has no snapshot", req.ID)
	}
	return sendBlob(w, jpg)
}

func sendBlob(w io.Writer, b []byte) error {
	if len(b) > recwire.MaxFrame {
		return recwire.ErrTooLarge
	}
	if err := recwire.WriteMessage(w, recwire.Response{Size: len(b)}); err != nil {
		return err
	}
	_, err := w.Write(b)
	return err
}
