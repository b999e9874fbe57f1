package stream

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/camagent/camagent/internal/base/media"
	"github.com/camagent/camagent/p2p/natwire"
	"github.com/camagent/camagent/stream/wire"
)

// pingInterval is how often a Client measures the round-trip time.
const pingInterval = 5 * time.Second

// groupStreamBuffer is the read buffer of one group stream.
const groupStreamBuffer = 64 << 10

// Frame is one received picture.
type Frame struct {
	media.AccessUnit
	// Group is the sequence number of the group the frame belongs to.
	Group uint64
	// Received is when the frame had fully arrived; Received minus
	// Captured is the end-to-end latency (with synchronised clocks).
	Received time.Time
}

// ClientStats are cumulative counters of a Client.
type ClientStats struct {
	Frames uint64 // frames returned by ReadFrame
	Bytes  uint64 // payload bytes returned by ReadFrame
	Groups uint64 // groups started (streams accepted in order)
	// GroupsSkipped counts groups not read to their end: reset by the
	// camera as stale, abandoned by ReadFrame for a newer group, or
	// arriving after a newer one.
	GroupsSkipped uint64
	// RTT is the latest PING/PONG round trip; 0 before the first PONG.
	RTT time.Duration
}

// Client is the viewer side of the protocol. ReadFrame is meant for one
// goroutine; the other methods may be called from any.
type Client struct {
	conn  *quic.Conn
	ctrl  *quic.Stream
	epoch time.Time // origin of PING timestamps

	ctrlMu sync.Mutex // serialises control writes

	mu             sync.Mutex
	cameraName     string
	track          media.Track
	catalogUpdated chan struct{} // closed and replaced per CATALOG
	rttUpdated     chan struct{} // closed and replaced per PONG
	goAwayReason   string
	pending        *groupReader  // newest group not yet read
	pendingChanged chan struct{} // closed and replaced when pending is set
	pendingSince   time.Time     // when pending was set
	newestSeq      uint64
	stats          ClientStats
	failure        error // first protocol failure of the camera

	cur *groupReader // the group ReadFrame reads; ReadFrame's goroutine only

	nat *natChannel // NAT traversal frames from the camera (NATChannel)

	done    chan struct{} // closed when the connection is gone
	wg      sync.WaitGroup
	stopped chan struct{} // closed when the connection is gone and wg is done
	byClose bool          // Close ended a live connection: Err is nil; mu
}

// NewClient opens the control stream on conn, sends HELLO and waits for
// the camera's CATALOG. conn must have completed its handshake with ALPN.
func NewClient(ctx context.Context, conn *quic.Conn, viewerName string) (*Client, error) {
	str, err := conn.OpenStreamSync(ctx)
	if err != nil {
		return nil, fmt.Errorf("open control stream: %w", err)
	}
	c := &Client{
		conn:           conn,
		ctrl:           str,
		epoch:          time.Now(),
		catalogUpdated: make(chan struct{}),
		rttUpdated:     make(chan struct{}),
		pendingChanged: make(chan struct{}),
		done:           make(chan struct{}),
		stopped:        make(chan struct{}),
	}
	c.nat = newNATChannel(c.writeMessage, conn.Context().Done())
	str.SetPriority(0, false)
	if err := c.writeMessage(&wire.Hello{Version: wire.Version1, Software: viewerName, Start: wire.StartLive}); err != nil {
		return nil, c.abort(err)
	}
	r := bufio.NewReaderSize(str, controlBufferSize)
	if err := c.awaitCatalog(ctx, r); err != nil {
		return nil, c.abort(err)
	}
	c.start(r)
	return c, nil
}

// awaitCatalog reads control messages until the first CATALOG.
func (c *Client) awaitCatalog(ctx context.Context, r *bufio.Reader) error {
	stop := context.AfterFunc(ctx, func() { _ = c.ctrl.SetReadDeadline(time.Now()) })
	defer stop()
	for {
		m, err := wire.ReadMessage(r)
		if err != nil {
			if ctx.Err() != nil {
				return context.Cause(ctx)
			}
			return cameraReadError("wait for CATALOG", err)
		}
		done, err := c.handleControl(m)
		if err != nil || done {
			return err
		}
	}
}

// abort closes the connection after a failed NewClient.
func (c *Client) abort(err error) error {
	closeConn(c.conn, codeOf(err), err.Error())
	return err
}

func (c *Client) start(ctrlReader *bufio.Reader) {
	c.wg.Go(func() {
		<-c.conn.Context().Done()
		close(c.done)
	})
	c.wg.Go(func() { c.fail(c.readControl(ctrlReader)) })
	c.wg.Go(c.acceptGroups)
	c.wg.Go(c.pingLoop)
	go func() {
		c.wg.Wait()
		close(c.stopped)
	}()
}

// Done is closed once the connection is gone and the client's goroutines
// have ended.
func (c *Client) Done() <-chan struct{} { return c.stopped }

// Err is why the client stopped, once Done is closed: nil after Close,
// otherwise what ReadFrame returns (the camera went away, the connection
// was lost or broke the protocol).
func (c *Client) Err() error {
	<-c.stopped
	c.mu.Lock()
	byClose := c.byClose
	c.mu.Unlock()
	if byClose {
		return nil
	}
	return c.connError()
}

// fail ends the connection after err, a broken rule by the camera or a
// connection loss (in which case closing again is a no-op).
func (c *Client) fail(err error) {
	if err == nil {
		return
	}
	c.mu.Lock()
	if c.failure == nil {
		c.failure = err
	}
	c.mu.Unlock()
	closeConn(c.conn, codeOf(err), err.Error())
}

// cameraReadError classifies a failed control read from the camera.
func cameraReadError(what string, err error) error {
	switch {
	case errors.Is(err, wire.ErrMalformed), errors.Is(err, io.ErrUnexpectedEOF):
		return violation(fmt.Errorf("%s: %w", what, err))
	case errors.Is(err, io.EOF):
		return withCode(wire.ErrorNone, "%s: camera closed the control stream", what)
	}
	return fmt.Errorf("%s: %w", what, err)
}

func (c *Client) readControl(r *bufio.Reader) error {
	for {
		m, err := wire.ReadMessage(r)
		if err != nil {
			return cameraReadError("read control", err)
		}
		if _, err := c.handleControl(m); err != nil {
			return err
		}
	}
}

// handleControl acts on one control message; catalog reports a CATALOG.
func (c *Client) handleControl(m wire.Message) (catalog bool, err error) {
	switch m := m.(type) {
	case *wire.Catalog:
		c.mu.Lock()
		c.cameraName, c.track = m.CameraName, m.Track
		close(c.catalogUpdated)
		c.catalogUpdated = make(chan struct{})
		c.mu.Unlock()
		return true, nil
	case *wire.Ping:
		return false, c.writeMessage(&wire.Pong{Timestamp: m.Timestamp})
	case *wire.Pong:
		c.recordRTT(m.Timestamp)
	case *wire.GoAway:
		c.mu.Lock()
		c.goAwayReason = m.Reason
		c.mu.Unlock()
	case *wire.Unknown:
		if isNATMessage(m) {
			return false, c.nat.deliver(m)
		}
		// Reserved for later extensions (protocol.md §3): skip.
	default:
		return false, violation(fmt.Errorf("camera sent %v", m.Type()))
	}
	return false, nil
}

func (c *Client) recordRTT(timestamp uint64) {
	sent := time.Duration(timestamp) * time.Microsecond
	rtt := time.Since(c.epoch) - sent
	if rtt < 0 {
		return // not a timestamp of ours
	}
	c.mu.Lock()
	c.stats.RTT = rtt
	close(c.rttUpdated)
	c.rttUpdated = make(chan struct{})
	c.mu.Unlock()
}

func (c *Client) writeMessage(m wire.Message) error {
	b, err := wire.AppendMessage(nil, m)
	if err != nil {
		return withCode(wire.ErrorInternal, "encode %v: %w", m.Type(), err)
	}
	c.ctrlMu.Lock()
	defer c.ctrlMu.Unlock()
	_ = c.ctrl.SetWriteDeadline(time.Now().Add(controlWriteTimeout))
	if _, err := c.ctrl.Write(b); err != nil {
		return fmt.Errorf("write %v: %w", m.Type(), err)
	}
	return nil
}

func (c *Client) pingLoop() {
	ticker := time.NewTicker(pingInterval)
	defer ticker.Stop()
	for {
		ts := uint64(time.Since(c.epoch) / time.Microsecond)
		if err := c.writeMessage(&wire.Ping{Timestamp: ts}); err != nil {
			c.fail(err)
			return
		}
		select {
		case <-ticker.C:
		case <-c.done:
			return
		}
	}
}

// NATChannel is the NAT traversal channel over the control stream
// (docs/nat-traversal.md §2): the camera's ADD_ADDRESS, REMOVE_ADDRESS and
// OBSERVED_ADDRESS frames, buffered from the start of the connection (up
// to 64; later ones are dropped until Receive takes them), and a Send for
// PUNCH_ME_NOW and OBSERVED_ADDRESS. One receiver at a time.
func (c *Client) NATChannel() natwire.Channel { return c.nat }

// Track returns the track from the latest CATALOG.
func (c *Client) Track() media.Track {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.track
}

// CameraName returns the camera name from the latest CATALOG.
func (c *Client) CameraName() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cameraName
}

// CatalogUpdated returns a channel that is closed when the next CATALOG
// arrives (e.g. after a resolution change); call Track then.
func (c *Client) CatalogUpdated() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.catalogUpdated
}

// Stats returns a snapshot of the client's counters.
func (c *Client) Stats() ClientStats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stats
}

// Close closes the connection with ErrorNone and waits for the client's
// goroutines. It is safe to call more than once.
func (c *Client) Close() error {
	c.mu.Lock()
	if c.failure == nil && c.conn.Context().Err() == nil {
		c.byClose = true
	}
	c.mu.Unlock()
	closeConn(c.conn, wire.ErrorNone, "viewer closed")
	c.wg.Wait()
	return nil
}

// connError is what ReadFrame returns once the connection is gone.
func (c *Client) connError() error {
	c.mu.Lock()
	failure, reason := c.failure, c.goAwayReason
	c.mu.Unlock()
	err := context.Cause(c.conn.Context())
	if failure != nil && codeOf(failure) != wire.ErrorNone {
		err = failure
	}
	if reason != "" {
		return fmt.Errorf("camera going away (%s): %w", reason, err)
	}
	return err
}
