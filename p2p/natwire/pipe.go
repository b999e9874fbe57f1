package natwire

import (
	"context"
	"errors"
	"sync"
)

// ErrClosed is returned by a closed Pipe end.
var ErrClosed = errors.New("natwire: channel closed")

// Pipe is one end of an in-memory Channel pair, for tests and for wiring
// two components in one process. Frames are encoded and parsed on the way,
// so a Pipe exercises the same bytes as a stream.
type Pipe struct {
	in   chan []byte
	out  chan []byte
	once *sync.Once
	done chan struct{}
}

// NewPipe returns two connected ends. Each direction buffers up to 256
// messages; Send fails rather than blocks when the peer stopped reading.
func NewPipe() (*Pipe, *Pipe) {
	ab, ba := make(chan []byte, 256), make(chan []byte, 256)
	once, done := new(sync.Once), make(chan struct{})
	return &Pipe{in: ba, out: ab, once: once, done: done},
		&Pipe{in: ab, out: ba, once: once, done: done}
}

// Send encodes f and queues it for the other end.
func (p *Pipe) Send(f Frame) error {
	b, err := AppendMessage(nil, f)
	if err != nil {
		return err
	}
	select {
	case <-p.done:
		return ErrClosed
	default:
	}
	select {
	case p.out <- b:
		return nil
	default:
		return errors.New("natwire: pipe full")
	}
}

// Receive returns the next frame from the other end.
func (p *Pipe) Receive(ctx context.Context) (Frame, error) {
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-p.done:
		return nil, ErrClosed
	case b := <-p.in:
		typ, payload, err := SplitMessage(b)
		if err != nil {
			return nil, err
		}
		return ParsePayload(typ, payload)
	}
}

// Close closes both ends.
func (p *Pipe) Close() error {
	p.once.Do(func() { close(p.done) })
	return nil
}
