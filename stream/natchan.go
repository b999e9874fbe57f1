package stream

import (
	"context"
	"fmt"
	"net"
	"sync/atomic"

	"github.com/camagent/camagent/p2p/natwire"
	"github.com/camagent/camagent/stream/wire"
)

// natQueue bounds the NAT traversal frames received but not yet taken by
// the traversal code. The camera sends at most a few dozen (16 candidates
// plus reports); beyond the bound frames are dropped rather than stall the
// control reader, so a flooding peer costs memory for 64 frames at most.
const natQueue = 64

// natChannel is a natwire.Channel over the control stream
// (docs/nat-traversal.md §2): control messages of types 0x20 and 0x40 are
// parsed into frames for Receive, and Send writes frames as such messages
// through the session's or client's serialised control writer.
type natChannel struct {
	in      chan natwire.Frame
	write   func(wire.Message) error
	closed  <-chan struct{} // the connection is gone
	dropped atomic.Uint64
}

func newNATChannel(write func(wire.Message) error, closed <-chan struct{}) *natChannel {
	return &natChannel{in: make(chan natwire.Frame, natQueue), write: write, closed: closed}
}

// isNATMessage reports whether m is a control message the channel carries.
func isNATMessage(m *wire.Unknown) bool { return natwire.IsCarrierType(uint64(m.MessageType)) }

// deliver parses one carrier message. A malformed frame, or one under the
// wrong message type, is a protocol violation (docs/nat-traversal.md §2).
func (c *natChannel) deliver(m *wire.Unknown) error {
	f, err := natwire.ParsePayload(uint64(m.MessageType), m.Payload)
	if err != nil {
		return violation(fmt.Errorf("control message %#x: %w", uint64(m.MessageType), err))
	}
	select {
	case c.in <- f:
	default:
		c.dropped.Add(1)
	}
	return nil
}

// Send writes f as one control message.
func (c *natChannel) Send(f natwire.Frame) error {
	payload, err := f.Append(nil)
	if err != nil {
		return err
	}
	return c.write(&wire.Unknown{MessageType: wire.MessageType(natwire.MessageType(f)), Payload: payload})
}

// Receive returns the next frame from the peer; net.ErrClosed once the
// connection is gone.
func (c *natChannel) Receive(ctx context.Context) (natwire.Frame, error) {
	select {
	case f := <-c.in:
		return f, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-c.closed:
		return nil, net.ErrClosed
	}
}
