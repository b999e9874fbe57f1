package stream

import (
	"bufio"
	"context"
	"errors"
	"io"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/camagent/camagent/stream/wire"
)

// groupReader reads one group stream in its own goroutine and hands frames
// over through a one-slot channel, so that at most two parsed frames per
// group wait in memory and QUIC flow control holds back the rest.
type groupReader struct {
	seq    uint64
	str    *quic.ReceiveStream
	frames chan Frame
	err    error         // why frames was closed; nil after a clean FIN
	quit   chan struct{} // closed by abandon
}

func (g *groupReader) abandon() {
	select {
	case <-g.quit:
	default:
		close(g.quit)
		g.str.CancelRead(quic.StreamErrorCode(wire.ErrorStaleGroup))
	}
}

// acceptGroups accepts the camera's unidirectional streams until the
// connection ends.
func (c *Client) acceptGroups() {
	for {
		str, err := c.conn.AcceptUniStream(context.Background())
		if err != nil {
			return
		}
		c.wg.Go(func() { c.readGroup(str) })
	}
}

// readGroup reads the stream header, offers the group, then reads frames
// until the group ends or is abandoned.
func (c *Client) readGroup(str *quic.ReceiveStream) {
	r := bufio.NewReaderSize(str, groupStreamBuffer)
	typ, err := wire.ReadStreamType(r)
	if err != nil {
		c.groupStreamFailed(err)
		return
	}
	if typ != wire.StreamGroup { // a later extension: not for us
		str.CancelRead(quic.StreamErrorCode(wire.ErrorNone))
		return
	}
	header, err := wire.ReadGroupHeader(r)
	if err != nil {
		c.groupStreamFailed(err)
		return
	}
	g := &groupReader{seq: header.Sequence, str: str, frames: make(chan Frame, 1), quit: make(chan struct{})}
	if !c.offer(g) {
		return
	}
	defer close(g.frames)
	codec := c.Track().Codec
	for {
		f, err := wire.ReadFrame(r)
		if err != nil {
			g.err = c.groupStreamFailed(err)
			return
		}
		frame := Frame{Group: g.seq, Received: time.Now()}
		frame.Codec, frame.Data, frame.Key = codec, f.Payload, f.Key
		frame.PTS, frame.Captured = f.PTS, f.Captured
		select {
		case g.frames <- frame:
		case <-g.quit:
			return
		case <-c.done:
			return
		}
	}
}

// groupStreamFailed handles a failed group stream read: malformed bytes end
// the connection; a reset or our own abandonment ends only the group. It
// returns nil for a clean end of group.
func (c *Client) groupStreamFailed(err error) error {
	if errors.Is(err, io.EOF) {
		return nil
	}
	if errors.Is(err, wire.ErrMalformed) || errors.Is(err, io.ErrUnexpectedEOF) {
		c.fail(violation(err))
	}
	return err
}

// offer makes g the pending group unless a newer group has already been
// seen. Older pending groups are abandoned unread.
func (c *Client) offer(g *groupReader) bool {
	c.mu.Lock()
	if g.seq <= c.newestSeq {
		c.stats.GroupsSkipped++
		c.mu.Unlock()
		g.abandon()
		return false
	}
	c.newestSeq = g.seq
	old := c.pending
	c.pending = g
	c.pendingSince = time.Now()
	c.stats.Groups++
	if old != nil {
		c.stats.GroupsSkipped++
	}
	close(c.pendingChanged)
	c.pendingChanged = make(chan struct{})
	c.mu.Unlock()
	if old != nil {
		old.abandon()
	}
	return true
}

// takePending removes and returns the pending group, if any, with a
// channel closed when a group becomes pending.
func (c *Client) takePending() (*groupReader, <-chan struct{}) {
	c.mu.Lock()
	defer c.mu.Unlock()
	g := c.pending
	c.pending = nil
	return g, c.pendingChanged
}

// staleGrace is how long frames of the current group are still read after
// a newer group has arrived. Packets of a group's tail can arrive after the
// next group's key frame when the connection moves between paths (relay
// to direct: the tail was in flight on the slower path) or are merely
// reordered; within the grace they are delivered, not dropped. A viewer
// that is really behind gets at most this much more of the old group.
const staleGrace = 250 * time.Millisecond

// ReadFrame returns the next frame in decode order. When a newer group has
// arrived and the current one has still not ended staleGrace later, the
// current group is abandoned (STOP_SENDING with STALE_GROUP) and reading
// continues at the newer group's key frame: latency wins over completeness.
func (c *Client) ReadFrame(ctx context.Context) (Frame, error) {
	for {
		if c.cur == nil {
			g, err := c.waitGroup(ctx)
			if err != nil {
				return Frame{}, err
			}
			c.cur = g
		}
		pendingFor, hasPending, changed := c.pendingState()
		var grace *time.Timer
		var expired <-chan time.Time
		if hasPending {
			if pendingFor >= staleGrace {
				c.skipCurrent()
				continue
			}
			grace = time.NewTimer(staleGrace - pendingFor)
			expired, changed = grace.C, nil
		}
		f, ok, err := c.readCurrent(ctx, changed, expired)
		if grace != nil {
			grace.Stop()
		}
		if err != nil || ok {
			return f, err
		}
	}
}

// readCurrent waits for the current group's next frame (ok), for a newer
// group to arrive, or for the grace to expire (the group is then skipped).
func (c *Client) readCurrent(ctx context.Context, changed <-chan struct{}, expired <-chan time.Time) (Frame, bool, error) {
	select {
	case f, ok := <-c.cur.frames:
		if !ok {
			c.groupEnded()
			return Frame{}, false, nil
		}
		c.mu.Lock()
		c.stats.Frames++
		c.stats.Bytes += uint64(len(f.Data))
		c.mu.Unlock()
		return f, true, nil
	case <-changed: // a newer group arrived: the caller starts its grace
	case <-expired:
		c.skipCurrent()
	case <-ctx.Done():
		return Frame{}, false, context.Cause(ctx)
	case <-c.done:
		return Frame{}, false, c.connError()
	}
	return Frame{}, false, nil
}

// pendingState reports how long a newer group has been waiting, whether
// there is one, and a channel closed when one arrives.
func (c *Client) pendingState() (time.Duration, bool, <-chan struct{}) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.pending == nil {
		return 0, false, c.pendingChanged
	}
	return time.Since(c.pendingSince), true, c.pendingChanged
}

func (c *Client) waitGroup(ctx context.Context) (*groupReader, error) {
	for {
		g, changed := c.takePending()
		if g != nil {
			return g, nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return nil, context.Cause(ctx)
		case <-c.done:
			return nil, c.connError()
		}
	}
}

// groupEnded moves past a group whose stream ended; one that did not end
// with a clean FIN counts as skipped.
func (c *Client) groupEnded() {
	if c.cur.err != nil {
		c.mu.Lock()
		c.stats.GroupsSkipped++
		c.mu.Unlock()
	}
	c.cur = nil
}

func (c *Client) skipCurrent() {
	c.cur.abandon()
	c.mu.Lock()
	c.stats.GroupsSkipped++
	c.mu.Unlock()
	c.cur = nil
}
