package natwire

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/quic-go/quic-go/quicvarint"
)

// Control message types that carry one frame each, in the ranges that
// docs/protocol.md §3 reserves (docs/nat-traversal.md §2).
const (
	// TypeAddressDiscovery carries an OBSERVED_ADDRESS frame.
	TypeAddressDiscovery uint64 = 0x20
	// TypeNATTraversal carries ADD_ADDRESS, PUNCH_ME_NOW or REMOVE_ADDRESS.
	TypeNATTraversal uint64 = 0x40
	// TypeCamagentNAT carries camagent's extension frames NAT_BEHAVIOR
	// and PUNCH_MANY (birthday.go); peers that do not know it skip it.
	TypeCamagentNAT uint64 = 0x41
)

// maxMessage bounds a carrier message payload. The largest frame
// (PUNCH_ME_NOW for IPv6 with 8-byte varints) is 4+8+8+16+2 = 38 bytes.
const maxMessage = 64

// MessageType is the control message type that carries f.
func MessageType(f Frame) uint64 {
	switch f.(type) {
	case *ObservedAddress:
		return TypeAddressDiscovery
	case *NATBehavior, *PunchMany:
		return TypeCamagentNAT
	}
	return TypeNATTraversal
}

// AppendMessage appends f wrapped in a control message:
// {Type (i), Length (i), Frame}.
func AppendMessage(b []byte, f Frame) ([]byte, error) {
	payload, err := f.Append(nil)
	if err != nil {
		return b, err
	}
	b = quicvarint.Append(b, MessageType(f))
	b = quicvarint.Append(b, uint64(len(payload)))
	return append(b, payload...), nil
}

// ParsePayload parses the payload of a control message of type typ. The
// frame must fill the payload exactly and belong to the message type, so
// that a frame cannot be smuggled under the other type.
func ParsePayload(typ uint64, payload []byte) (Frame, error) {
	f, n, err := ParseFrame(payload)
	if err != nil {
		return nil, err
	}
	if n != len(payload) {
		return nil, fmt.Errorf("%w: %d trailing bytes after %v", ErrMalformed, len(payload)-n, f.Type())
	}
	if MessageType(f) != typ {
		return nil, fmt.Errorf("%w: %v in control message type %#x", ErrMalformed, f.Type(), typ)
	}
	return f, nil
}

// IsCarrierType reports whether a control message of type typ carries a
// frame of this package: the hook for stream's control-message loop.
func IsCarrierType(typ uint64) bool {
	return typ == TypeAddressDiscovery || typ == TypeNATTraversal || typ == TypeCamagentNAT
}

// ReadMessage reads one carrier message from r. Messages of other types
// are an error here: a dedicated stream carries nothing else.
func ReadMessage(r *bufio.Reader) (Frame, error) {
	typ, err := readVarint(r)
	if err != nil {
		return nil, err // io.EOF at a clean boundary
	}
	length, err := readVarint(r)
	if err != nil {
		return nil, unexpectedEOF(err)
	}
	if !IsCarrierType(typ) {
		return nil, fmt.Errorf("%w: control message type %#x on the NAT stream", ErrMalformed, typ)
	}
	if length > maxMessage {
		return nil, fmt.Errorf("%w: message of %d bytes, limit %d", ErrMalformed, length, maxMessage)
	}
	var buf [maxMessage]byte
	if _, err := io.ReadFull(r, buf[:length]); err != nil {
		return nil, unexpectedEOF(err)
	}
	return ParsePayload(typ, buf[:length])
}

// readVarint reads one QUIC varint: io.EOF before its first byte,
// io.ErrUnexpectedEOF inside it.
func readVarint(r io.ByteReader) (uint64, error) {
	first, err := r.ReadByte()
	if err != nil {
		return 0, err
	}
	v := uint64(first & 0x3f)
	for range 1<<(first>>6) - 1 {
		b, err := r.ReadByte()
		if err != nil {
			return 0, unexpectedEOF(err)
		}
		v = v<<8 | uint64(b)
	}
	return v, nil
}

// SplitMessage splits one carrier message at the start of b into its type
// and payload, without parsing the payload.
func SplitMessage(b []byte) (typ uint64, payload []byte, err error) {
	typ, n, err := quicvarint.Parse(b)
	if err != nil {
		return 0, nil, fmt.Errorf("%w: message type: %v", ErrMalformed, err)
	}
	length, m, err := quicvarint.Parse(b[n:])
	if err != nil || length > uint64(len(b)-n-m) {
		return 0, nil, fmt.Errorf("%w: message length", ErrMalformed)
	}
	return typ, b[n+m : n+m+int(length)], nil
}

func unexpectedEOF(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

// Channel carries frames between the two ends of one QUIC connection,
// reliably and in order. Send may be called from several goroutines;
// Receive from one.
type Channel interface {
	Send(Frame) error
	Receive(ctx context.Context) (Frame, error)
}

// StreamChannel is a Channel over one byte stream (a QUIC bidirectional
// stream): the frames wrapped as control messages, nothing else.
type StreamChannel struct {
	mu sync.Mutex // serialises writes
	w  io.Writer
	r  *bufio.Reader
	rw io.ReadWriter
}

// readDeadliner is implemented by quic-go streams and net.Conn.
type readDeadliner interface {
	SetReadDeadline(time.Time) error
}

// NewStreamChannel returns a Channel over rw. If rw is closed or reset,
// Receive returns the error.
func NewStreamChannel(rw io.ReadWriter) *StreamChannel {
	return &StreamChannel{w: rw, r: bufio.NewReaderSize(rw, 512), rw: rw}
}

// Send writes f as one message.
func (c *StreamChannel) Send(f Frame) error {
	b, err := AppendMessage(nil, f)
	if err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, err := c.w.Write(b); err != nil {
		return fmt.Errorf("send %v: %w", f.Type(), err)
	}
	return nil
}

// Receive reads the next frame. If ctx ends first and the stream supports
// read deadlines, Receive returns the context's error; the channel may then
// have lost its place in the byte stream and must not be used again.
func (c *StreamChannel) Receive(ctx context.Context) (Frame, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if d, ok := c.rw.(readDeadliner); ok {
		stop := context.AfterFunc(ctx, func() { _ = d.SetReadDeadline(time.Now()) })
		defer stop()
	}
	f, err := ReadMessage(c.r)
	if err != nil && ctx.Err() != nil {
		return nil, ctx.Err()
	}
	return f, err
}
