package stream

import (
	"context"
	"fmt"
	"sync"

	"github.com/quic-go/quic-go"

	"github.com/camagent/camagent/stream/wire"
)

// sendGroups sends groups to the viewer one after another, each on its own
// unidirectional stream (protocol.md §4), always jumping to the newest
// group: a viewer that fell behind skips the groups it missed.
func (s *session) sendGroups(ctx context.Context) error {
	select {
	case <-s.catalogSent: // the viewer learns the codec before any frame
	case <-ctx.Done():
		return context.Cause(ctx)
	}
	var last uint64
	for {
		if err := s.hub.waitGroupAfter(ctx, last); err != nil {
			return err
		}
		// Opening may wait for stream credit from a slow viewer; pick the
		// group only afterwards so that the wait never pins an old group.
		str, err := s.conn.OpenUniStreamSync(ctx)
		if err != nil {
			return err
		}
		g := s.hub.acquireCurrent()
		if g == nil { // the hub closed meanwhile
			str.CancelWrite(quic.StreamErrorCode(wire.ErrorGoingAway))
			return ErrHubClosed
		}
		last = g.seq
		err = s.sendGroup(ctx, str, g)
		g.release()
		if err != nil {
			return err
		}
	}
}

// groupSend is one group stream in flight. Its mutex orders the sender's
// "finished" against the stale-group watcher's "reset", because quic-go
// forbids Close after CancelWrite.
type groupSend struct {
	str *quic.SendStream
	g   *group

	mu      sync.Mutex
	written int // frames fully handed to QUIC
	state   sendState
}

type sendState int

const (
	sending sendState = iota
	finished
	reset
)

// sendGroup writes g to str as it grows and closes str when g ends. It
// returns nil when the group is done with, sent or abandoned, and an error
// only when the session must end.
func (s *session) sendGroup(ctx context.Context, str *quic.SendStream, g *group) error {
	gs := &groupSend{str: str, g: g}
	stopWatch := make(chan struct{})
	defer close(stopWatch)
	go gs.resetWhenStale(stopWatch, s.hub)

	header, err := wire.AppendGroupHeader(nil, wire.GroupHeader{Sequence: g.seq})
	if err != nil {
		return withCode(wire.ErrorInternal, "group header: %w", err)
	}
	if _, err := str.Write(header); err != nil {
		return s.groupWriteError(err)
	}
	for i := 0; ; {
		frame, ended, wait := g.next(i)
		switch {
		case frame != nil:
			if _, err := str.Write(frame); err != nil {
				return s.groupWriteError(err)
			}
			gs.wrote()
			s.hub.counters.framesSent.Add(1)
			s.hub.counters.bytesSent.Add(uint64(len(frame)))
			i++
		case ended:
			gs.finish(s.hub)
			return nil
		default:
			select {
			case <-wait:
			case <-ctx.Done():
				str.CancelWrite(quic.StreamErrorCode(wire.ErrorGoingAway))
				return context.Cause(ctx)
			}
		}
	}
}

// groupWriteError sorts a failed group write: a reset (ours, stale) or a
// STOP_SENDING (the viewer skipped the group) only ends this group.
func (s *session) groupWriteError(err error) error {
	isStream, remote := streamErrorOrigin(err)
	switch {
	case isStream && remote:
		s.hub.counters.groupsStopped.Add(1)
		return nil
	case isStream:
		return nil // reset as stale; counted by resetWhenStale
	}
	return fmt.Errorf("write group: %w", err)
}

func (gs *groupSend) wrote() {
	gs.mu.Lock()
	gs.written++
	gs.mu.Unlock()
}

// finish sends FIN unless the watcher has already reset the stream.
func (gs *groupSend) finish(h *Hub) {
	gs.mu.Lock()
	if gs.state != sending {
		gs.mu.Unlock()
		return
	}
	gs.state = finished
	gs.mu.Unlock()
	if gs.str.Close() == nil {
		h.counters.groupsSent.Add(1)
	}
}

// resetWhenStale waits for the group to end (the next key frame was
// published) and resets the stream (RESET_STREAM with STALE_GROUP) if the
// viewer is behind: the rest of this group is then worthless, the reset
// unblocks a Write stuck on flow control, and the sender moves on to the
// newest group. A healthy sender may still be inside the Write of the last
// frame when the key frame arrives, so one frame of lag is forgiven until
// the next frame is published.
func (gs *groupSend) resetWhenStale(stop <-chan struct{}, h *Hub) {
	select {
	case <-gs.g.done:
	case <-stop:
		return
	}
	switch lag := gs.lag(); {
	case lag == 0:
		return
	case lag == 1:
		select {
		case <-h.nextPublish():
		case <-stop:
			return
		}
	}
	gs.mu.Lock()
	defer gs.mu.Unlock()
	if gs.state == sending && gs.written < gs.g.count() {
		gs.state = reset
		gs.str.CancelWrite(quic.StreamErrorCode(wire.ErrorStaleGroup))
		h.counters.groupsReset.Add(1)
	}
}

// lag is the number of frames of the group not yet handed to QUIC.
func (gs *groupSend) lag() int {
	gs.mu.Lock()
	defer gs.mu.Unlock()
	if gs.state != sending {
		return 0
	}
	return gs.g.count() - gs.written
}
